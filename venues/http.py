"""Shared HTTP plumbing for venue clients: send bytes, map transport failures to outcomes."""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx

from .interface import VenueOutcomeUnknown, VenueUnavailable


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
    """
    try:
        return http.send(request)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise VenueUnavailable(f"Venue unreachable: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        message = f"No answer from the venue ({type(exc).__name__})"
        if mutating:
            raise VenueOutcomeUnknown(message + "; it may have accepted the request") from exc
        raise VenueUnavailable(message) from exc


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
