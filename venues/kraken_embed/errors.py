"""Kraken Embed's refusals, in words a finance team can act on (NOTES §2; the error strings
its client maps). Keys are Kraken's own error strings, matched whole."""

REFUSALS: dict[str, str] = {
    "EFunding:Invalid amount": (
        "Kraken refused the amount: the account may not hold enough, or the amount is outside "
        "what Kraken allows for this asset."
    ),
    "EFunding:Insufficient funds": "The Kraken Embed account does not hold enough for this.",
    "EFunding:Unknown withdraw key": (
        "Kraken has no saved withdrawal address under this name. Check the address key at "
        "Kraken and on the whitelist."
    ),
    "EFunding:Duplicate withdraw key": "Kraken holds two saved addresses under this name.",
    "EFunding:Invalid fee token": (
        "The fee Kraken quoted is no longer guaranteed. The withdrawal needs a fresh quote and "
        "a new approval."
    ),
    "ENexus:Unknown asset": "Kraken does not know this asset.",
    "EGeneral:Bad data": "Kraken refused the request as malformed.",
    "EGeneral:Invalid arguments": "Kraken refused the request as malformed.",
    "EGeneral:Permission denied": (
        "Kraken refused our API key: it lacks the permission for this. An administrator must "
        "fix the key at Kraken."
    ),
    "EAPI:Invalid key": "Kraken refused our API key. An administrator must check the venue's key.",
    "EAPI:Invalid signature": (
        "Kraken refused our request signature. An administrator must check the venue's secret."
    ),
    "Missing API-Key": "Kraken received no API key. An administrator must check the venue.",
}
