"""Request plumbing that every app relies on but none owns: the client's address behind a
proxy, no caching of what a signed-in person sees, and idle sessions that expire."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: list[str]) -> list[Network]:
    """Parse TRUSTED_PROXIES (addresses or CIDR blocks); a typo stops start-up, not a request."""
    networks = []
    for entry in filter(None, (e.strip() for e in entries)):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR block."
            ) from None
    return networks


def _address(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(raw.strip())
    except ValueError:
        return None


def client_address(*, remote_addr: str, forwarded_for: str, trusted: list[Network]) -> str | None:
    """The address of the person, not of our proxy.

    Only a peer that is one of our proxies may speak for someone else. Its X-Forwarded-For is
    read from the right: entries our own proxies appended come last, and the first one that is
    not a proxy of ours is the client. Anything to its left was sent by the client and may be
    forged. When the header is missing or unreadable we keep the proxy's address rather than
    guess.
    """
    peer = _address(remote_addr)
    if peer is None:
        return remote_addr or None
    if not any(peer in net for net in trusted):
        return str(peer)
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()]
    client = peer
    for raw in reversed(hops):
        hop = _address(raw)
        if hop is None:
            break
        client = hop
        if not any(hop in net for net in trusted):
            break
    return str(client)


class TrustedProxyMiddleware:
    """Rewrite REMOTE_ADDR to the client's address, so every reader of it (audit events,
    approvals, sign-in throttles) records the person and not the proxy in front of gunicorn."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.trusted = trusted_networks(settings.TRUSTED_PROXIES)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.trusted:
            address = client_address(
                remote_addr=request.META.get("REMOTE_ADDR", ""),
                forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR", ""),
                trusted=self.trusted,
            )
            if address:
                request.META["REMOTE_ADDR"] = address
        return self.get_response(request)


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every page and export Django renders.

    They show balances, addresses and approvals: neither the browser's back button on a shared
    machine nor a proxy may keep a copy. Static files are served before this runs (whitenoise)
    and stay cacheable.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        add_never_cache_headers(response)
        return response


# The query flag an element that polls on its own sets (templates/withdrawals/detail.html).
POLL_FLAG = "poll"
REFRESHED_KEY = "_idle_refreshed_at"


def is_poll(request: HttpRequest) -> bool:
    return request.GET.get(POLL_FLAG) == "1"


class IdleSessionMiddleware:
    """Idle expiry: a signed-in session's deadline (SESSION_COOKIE_AGE from its last save)
    moves forward when the person does something, not when an open page polls by itself.

    The session row is written at most once every SESSION_REFRESH_SECONDS, so a page view does
    not cost a database write each time; the deadline is late by at most that much.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_poll(request) and not request.user.is_authenticated:
            return _to_sign_in(request)
        # Before the view: a view that signs the person out flushes the session, and nothing
        # may be written into the next one.
        if request.user.is_authenticated and not is_poll(request):
            now = int(timezone.now().timestamp())
            last = request.session.get(REFRESHED_KEY, 0)
            if not isinstance(last, int) or now - last >= settings.SESSION_REFRESH_SECONDS:
                request.session[REFRESHED_KEY] = now  # a change: the session is saved
        return self.get_response(request)


def _to_sign_in(request: HttpRequest) -> HttpResponse:
    """The whole polling page goes to the sign-in page (htmx would otherwise swap the sign-in
    form into the polled part), and back to itself afterwards (a path on this site only)."""
    login = resolve_url(settings.LOGIN_URL)
    page = urlsplit(request.headers.get("HX-Current-URL", "")).path
    # "//host/..." is another site to a browser: only a path on this one comes back.
    on_site = page.startswith("/") and not page.startswith("//")
    target = f"{login}?{urlencode({'next': page})}" if on_site else login
    return HttpResponse(status=204, headers={"HX-Redirect": target})
