"""Shared HTTP plumbing for venue clients: one connection pool per process, send bytes, map
transport failures to outcomes."""

from __future__ import annotations

import json
import logging
import os
import ssl
import sys
import threading
import time
from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx

from core.metrics import observe_venue_call

from .interface import VenueOutcomeUnknown, VenueUnavailable

log = logging.getLogger(__name__)


class _SharedPool:
    """The process's one SSL context and connection pool, made on first use.

    Building them costs a CA bundle load (about 28 ms), which every client used to pay. They
    belong to the process that made them: a process forked afterwards (Celery's prefork pool)
    makes its own instead of writing into its parent's TLS sessions. httpx's pool is safe to
    share between threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._context: ssl.SSLContext | None = None
        self._transport: httpx.HTTPTransport | None = None

    def _current(self) -> tuple[ssl.SSLContext, httpx.HTTPTransport]:
        with self._lock:
            if self._pid != os.getpid() or self._context is None or self._transport is None:
                # A parent's pool is left alone, not closed: its sockets are the parent's.
                self._context = httpx.create_ssl_context()
                self._transport = httpx.HTTPTransport(verify=self._context)
                self._pid = os.getpid()
            return self._context, self._transport

    def context(self) -> ssl.SSLContext:
        return self._current()[0]

    def transport(self) -> httpx.HTTPTransport:
        return self._current()[1]


_shared = _SharedPool()


class BorrowedTransport(httpx.BaseTransport):
    """The shared pool lent to one client: closing the client gives it back, never closes it."""

    def __init__(self, pool: httpx.HTTPTransport) -> None:
        self.pool = pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.pool.handle_request(request)

    def close(self) -> None:
        pass


def ssl_context() -> ssl.SSLContext:
    """This process's SSL context for venue connections (CA bundle loaded once)."""
    return _shared.context()


def shared_transport() -> BorrowedTransport:
    """This process's venue connection pool, lent to one client."""
    return BorrowedTransport(_shared.transport())


def http_client(
    *,
    base_url: str,
    timeout: float,
    transport: httpx.BaseTransport | None = None,
    event_hooks: dict[str, list[Any]] | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` for one venue client's life, on ``transport`` or the shared pool.
    Cheap to build and to close: it owns no connections."""
    return httpx.Client(
        base_url=base_url,
        transport=transport if transport is not None else shared_transport(),
        verify=ssl_context(),
        timeout=timeout,
        follow_redirects=False,
        event_hooks=event_hooks,
    )


def compact_json(data: Any) -> bytes:
    """The exact bytes we sign and send (NOTES.md §0.1: never let httpx re-serialise)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def amount_str(amount: Decimal, places: int | None = None) -> str:
    """A Decimal as a plain string (no exponent), quantised down to ``places`` if given."""
    if places is not None:
        amount = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def send(http: httpx.Client, request: httpx.Request, *, mutating: bool) -> httpx.Response:
    """Send ``request``; reduce transport failures to the outcome they imply.

    A failure to connect means nothing reached the venue. Anything later (a read timeout, a
    dropped connection) may have reached it: for a mutating call that is ``outcome unknown``.
    5xx answers are handled by the caller, which knows the venue's envelope.

    Every call is logged and counted (venue, endpoint, outcome, duration): only the URL's path,
    never its query, headers or body, which carry keys, signatures and tokens.
    """
    venue = _calling_venue()
    endpoint = endpoint_label(request.url.path)
    started = time.monotonic()
    outcome = "error"
    try:
        response = http.send(request)
        outcome = f"http_{response.status_code}"
        return response
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        outcome = "unreachable"
        raise VenueUnavailable(f"Venue unreachable: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        outcome = "no_answer"
        message = f"No answer from the venue ({type(exc).__name__})"
        if mutating:
            raise VenueOutcomeUnknown(message + "; it may have accepted the request") from exc
        raise VenueUnavailable(message) from exc
    finally:
        seconds = time.monotonic() - started
        observe_venue_call(venue=venue, endpoint=endpoint, outcome=outcome, seconds=seconds)
        log.info(
            "venue call %s %s: %s in %.0f ms",
            venue,
            endpoint,
            outcome,
            seconds * 1000,
            extra={
                "venue": venue,
                "endpoint": endpoint,
                "outcome": outcome,
                "duration_ms": round(seconds * 1000, 1),
            },
        )


def endpoint_label(path: str) -> str:
    """The path with account numbers and ids replaced by ``{id}``: one label per endpoint for
    the metrics, and no account number in the logs."""
    return "/".join(
        "{id}" if sum(c.isdigit() for c in part) >= 4 or len(part) >= 24 else part
        for part in path.split("/")
    )


def _calling_venue() -> str:
    # Every client lives in venues/<kind>/client.py and calls send() directly, so the caller's
    # module names the venue without widening send()'s signature in five clients.
    module = sys._getframe(2).f_globals.get("__name__", "")
    parts = module.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "venues" else "unknown"


def server_error(response: httpx.Response, *, mutating: bool, message: str = "") -> None:
    """Raise the outcome a 5xx/408 implies: unknown for a mutating call, else unavailable."""
    text = message or f"Venue error HTTP {response.status_code}"
    if mutating:
        raise VenueOutcomeUnknown(
            text + "; it may have accepted the request", http_status=response.status_code
        )
    raise VenueUnavailable(
        text, http_status=response.status_code, retry_after=retry_after(response)
    )
