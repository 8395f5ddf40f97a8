"""Kraken spot's documented refusals, in words a finance team can act on (NOTES §1.4).

Keys are Kraken's own error strings, matched whole.
"""

REFUSALS: dict[str, str] = {
    "EFunding:Invalid amount": (
        "Kraken refused the amount: the account may not hold enough, or the amount is outside "
        "what Kraken allows for this asset."
    ),
    "EFunding:Unknown withdraw key": (
        "Kraken has no saved withdrawal address under this name. Check the address key at "
        "Kraken and on the whitelist."
    ),
    "EFunding:Max fee exceeded": (
        "Kraken's fee is now above the fee cap that was approved. The requester must re-quote."
    ),
    "EFunding:Unknown asset": "Kraken does not know this asset.",
    "EFunding:Too many addresses": "Kraken refused: too many withdrawal addresses on the account.",
    "EFunding:Invalid reference id": "Kraken did not accept the withdrawal reference.",
    "EFunding:Unknown reference id": "Kraken has no withdrawal with this reference.",
    "EGeneral:Permission denied": (
        "Kraken refused our API key: it lacks the permission to withdraw. An administrator must "
        "fix the key at Kraken."
    ),
    "EGeneral:Invalid arguments": "Kraken refused the request as malformed.",
    "EAPI:Invalid key": "Kraken refused our API key. An administrator must check the venue's key.",
    "EAPI:Invalid signature": (
        "Kraken refused our request signature. An administrator must check the venue's secret."
    ),
}
