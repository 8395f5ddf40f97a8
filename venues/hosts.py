"""Where a venue may be reached: its kind's documented hosts, over https, outside the demo.

A venue's base URL decides where its credentials are sent. An admin who could point it at any
host could collect them (the Nord-Pay key alone moves money), so production accepts only the
hosts each venue documents (venue-docs/NOTES.md) and those an operator names in
``COUNTERSIGN_VENUE_EXTRA_HOSTS``. The demo and the tests also take http:// and loopback hosts,
and ``sandbox://`` when sandboxes are on.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from .registry import SANDBOX_SCHEME

# From each venue's own documentation. 1Konto's pages do not name its API host (NOTES.md §4):
# an operator must name it in COUNTERSIGN_VENUE_EXTRA_HOSTS as "onekonto=<host>".
DOCUMENTED_HOSTS: dict[str, tuple[str, ...]] = {
    "kraken": ("api.kraken.com",),
    "kraken_embed": ("nexus.kraken.com",),
    "kucoin": ("api.kucoin.com",),
    "onekonto": (),
    "nordpay": ("api.nord-pay.com",),
}


def allowed_hosts(kind: str) -> list[str]:
    """The documented hosts of ``kind`` and the extra ones the settings name for it."""
    hosts = list(DOCUMENTED_HOSTS.get(kind, ()))
    for entry in settings.VENUE_EXTRA_HOSTS:
        entry_kind, sep, host = entry.partition("=")
        if not sep:
            entry_kind, host = "", entry_kind
        if entry_kind in ("", kind):
            hosts.append(host.strip().lower())
    return hosts


def base_url_refusal(*, kind: str, base_url: str) -> str:
    """Why ``base_url`` may not be used for a venue of ``kind`` here, or '' when it may."""
    if base_url.startswith(SANDBOX_SCHEME):
        if settings.VENUE_SANDBOXES_ENABLED:
            return ""
        return "sandbox:// venues exist only in the demo; give the venue's https:// address."
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return "This is not a URL the venue could be reached at."
    restricted = settings.VENUE_HOSTS_RESTRICTED
    schemes = ("https",) if restricted else ("https", "http")
    if parts.scheme not in schemes or not parts.hostname:
        allowed = "https://" if restricted else "https://, http://"
        if settings.VENUE_SANDBOXES_ENABLED:
            allowed += " or sandbox://"
        return f"The base URL must start with {allowed} and name a host."
    if parts.username is not None or parts.password is not None:
        return "The base URL must not carry a user name or password."
    if parts.query or parts.fragment:
        return "The base URL must not carry a query or a fragment."
    if not restricted:
        return ""
    hosts = allowed_hosts(kind)
    if parts.hostname.lower() not in hosts or port not in (None, 443):
        documented = ", ".join(hosts) or "none documented"
        return (
            f"{parts.hostname} is not a host this kind of venue is reached at (allowed: "
            f"{documented}). An operator can name more in COUNTERSIGN_VENUE_EXTRA_HOSTS."
        )
    return ""
