"""Shared HTTP plumbing for venue clients: send bytes, map transport failures to outcomes."""

from __future__ import annotations

import json
import logging
import sys
import time
from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx

from core.metrics import observe_venue_call

from .interface import VenueOutcomeUnknown, VenueUnavailable

log = logging.getLogger(__name__)


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
