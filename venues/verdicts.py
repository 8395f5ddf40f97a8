"""What "Test connection" may say: our own verdict, and a venue's error only as documented.

The answer comes from whatever host the venue's base URL names. Showing its body would turn the
button into a reader of any server the application can reach, so nothing from the network is
shown: a recognised documented error is shown in our copy of the venue's documented words,
anything else only by its HTTP status.
"""

from __future__ import annotations

from dataclasses import dataclass

from .interface import VenueError, VenueRejected

# From venue-docs/NOTES.md: the errors each venue documents for authentication and access.
DOCUMENTED_ERRORS: dict[str, dict[str, str]] = {
    "kraken": {
        "EAPI:Invalid key": "EAPI:Invalid key (the API key is not known)",
        "EAPI:Invalid signature": "EAPI:Invalid signature (the API secret does not match)",
        "EAPI:Invalid nonce": "EAPI:Invalid nonce",
        "EAPI:Rate limit exceeded": "EAPI:Rate limit exceeded",
        "EGeneral:Permission denied": "EGeneral:Permission denied (the key lacks a permission)",
        "EGeneral:Temporary lockout": "EGeneral:Temporary lockout",
        "EService:Unavailable": "EService:Unavailable",
        "EService:Busy": "EService:Busy",
    },
    "kraken_embed": {
        "EAPI:Invalid key": "EAPI:Invalid key (the API key is not known)",
        "EAPI:Invalid signature": "EAPI:Invalid signature (the API secret does not match)",
        "EAPI:Invalid nonce": "EAPI:Invalid nonce",
        "EGeneral:Permission denied": "EGeneral:Permission denied (the key lacks a permission)",
        "EGeneral:Bad data": "EGeneral:Bad data",
    },
    "kucoin": {
        "400001": "400001: a KC-API header is missing",
        "400002": "400002: Invalid KC-API-TIMESTAMP (clock skew over 5 s)",
        "400003": "400003: KC-API-KEY does not exist",
        "400004": "400004: Invalid KC-API-PASSPHRASE",
        "400005": "400005: Invalid KC-API-SIGN",
        "400006": "400006: Invalid request IP (the key's IP whitelist)",
        "400007": "400007: Access denied, requires more permission",
        "400008": "400008: V1/V2 keys unsupported",
        "400009": "400009: Invalid KC-API-KEY-VERSION",
        "411100": "411100: User are frozen",
    },
    "onekonto": {},
    "nordpay": {},
}
KIND_LABELS = {
    "kraken": "Kraken spot",
    "kraken_embed": "Kraken Embed",
    "kucoin": "KuCoin",
    "onekonto": "1Konto",
    "nordpay": "Nord-Pay",
}


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


def check_passed(kind: str) -> CheckResult:
    return CheckResult(True, f"{KIND_LABELS.get(kind, kind)} accepted the credentials.")


def check_failed(kind: str, exc: VenueError) -> CheckResult:
    """Our words for a failed check; the venue's only where they are documented."""
    status = f"HTTP {exc.http_status}" if exc.http_status else ""
    if isinstance(exc, VenueRejected):
        for marker, documented in DOCUMENTED_ERRORS.get(kind, {}).items():
            if exc.code == marker or marker in exc.message:
                return CheckResult(False, f"venue refused: {documented}")
        detail = f" ({status})" if status else ""
        return CheckResult(False, f"venue refused{detail}: an undocumented answer, not shown here")
    if status:
        return CheckResult(False, f"unreachable: the venue answered {status}")
    return CheckResult(False, "unreachable: no answer from the venue's host")
