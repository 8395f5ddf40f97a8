"""KuCoin's documented refusal codes, in words a finance team can act on (NOTES §3.4).

Keys are KuCoin's ``code`` values. 400100 is KuCoin's catch-all: its ``msg`` is kept beside it.
"""

REFUSALS: dict[str, str] = {
    "200004": "The KuCoin account does not hold enough of this asset.",
    "260210": ("KuCoin has closed withdrawals on this network for now (or the account is frozen)."),
    "260325": "KuCoin refused the address: it is not on the account's withdrawal whitelist.",
    "400100": (
        "KuCoin refused a parameter. Its own message follows; an insufficient balance and a "
        "wrong network are known to show up this way."
    ),
    "400003": "KuCoin does not know our API key. An administrator must check the venue's key.",
    "400004": "KuCoin refused our API passphrase. An administrator must check the venue.",
    "400005": "KuCoin refused our request signature. An administrator must check the secret.",
    "400006": "KuCoin refused the server's IP address: it is not on the API key's IP whitelist.",
    "400007": "Our KuCoin API key lacks the permission to withdraw.",
    "411100": "The KuCoin account is frozen.",
    "precision": "The amount has more decimal places than KuCoin accepts for this asset.",
}
