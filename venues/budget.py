"""One call budget per venue key, shared by every process, spent in order of importance.

Kraken's call counter (NOTES.md §1.3) is per API key: every call adds to it, it decays at a
fixed rate, and a call that would take it over the tier's maximum is refused. Web and worker
share the key, so they share one picture of that counter, kept in Django's cache (Redis in
production, the file cache in the demo): :class:`CallBudget`.

Not every call is worth the same. A submission must never wait behind a requester's typing, so
each :class:`Purpose` may fill the counter only up to its own ceiling: typing previews stop
first, then status polls, then approvers' quotes, and submissions may use all of it. Whatever a
lower purpose leaves unused, a higher one always finds free.

A venue that signs with a nonce and allows no nonce window (Kraken spot, Kraken Embed: NOTES
§1.2, §2.1) refuses a request whose nonce is lower than one it has already seen. Two requests
on one key therefore must not overlap between taking a nonce and being answered:
:func:`key_turn` serialises them, across processes, through the same cache.

Both are safeguards, not gates: if the cache itself is down, calls go ahead uncounted and
unserialised (logged). The venue still enforces its counter and its nonces, and refuses before
processing anything - an outcome the clients already read as "unavailable, retry".
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from .interface import VenueUnavailable

logger = logging.getLogger(__name__)
CACHE_DOWN = object()


def cache_call(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One cache operation, or ``CACHE_DOWN`` if the cache is unreachable. Any backend error counts
    (Redis raises its own types): a cache outage must not stop a withdrawal."""
    try:
        return operation(*args, **kwargs)
    except Exception:
        logger.warning("venue call budget: cache unavailable", exc_info=True)
        return CACHE_DOWN


class Purpose(enum.IntEnum):
    """Why a venue is called, most important first."""

    SUBMIT = 0  # sending an approved withdrawal (and reconciling one whose outcome is unknown)
    APPROVER_QUOTE = 1  # the fresh quote an approver confirms
    STATUS = 2  # polling a submitted withdrawal, reading history
    PREVIEW = 3  # the requester's preview while typing


# The share of the venue's counter each purpose may fill. With Kraken's starter tier (15 units)
# previews stop at 6, status polls at 9, approvers' quotes at 12; a submission may use all 15.
CEILINGS: dict[Purpose, float] = {
    Purpose.SUBMIT: 1.0,
    Purpose.APPROVER_QUOTE: 0.8,
    Purpose.STATUS: 0.6,
    Purpose.PREVIEW: 0.4,
}


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """A venue's counter: its maximum and how fast it decays (units per second)."""

    capacity: float
    decay_per_second: float


# Status polls back off as a withdrawal stays pending: (pending for at least, poll every), in
# seconds. A fresh withdrawal is watched closely; one held for review for hours costs a call
# every few minutes, not every few seconds.
POLL_SCHEDULE: tuple[tuple[float, float], ...] = (
    (0, 3),
    (60, 15),
    (600, 60),
    (3600, 300),
)


def status_poll_delay(pending_seconds: float) -> float:
    """How long to wait before the next status poll of a withdrawal pending this long."""
    return next(delay for since, delay in reversed(POLL_SCHEDULE) if pending_seconds >= since)


KEY_TURN_SECONDS = 60.0  # a turn left by a crashed process lapses after this
KEY_TURN_WAIT = 30.0  # how long a caller waits for its turn before giving up (nothing sent)
_POLL = 0.02


@contextmanager
def key_turn(scope: str, *, wait: float = KEY_TURN_WAIT) -> Iterator[None]:
    """Hold the one turn of API key ``scope``: between taking a nonce and reading the answer,
    no other request on that key may leave. Raises :class:`VenueUnavailable` (nothing was sent)
    if the turn does not come within ``wait`` seconds."""
    name = f"venues:turn:{scope}"
    token = secrets.token_hex(8)
    give_up = time.monotonic() + wait
    while not (taken := cache_call(cache.add, name, token, timeout=KEY_TURN_SECONDS)):
        if time.monotonic() >= give_up:
            raise VenueUnavailable(
                "Another request on this venue key is still in flight", retry_after=1.0
            )
        time.sleep(_POLL)
    try:
        yield
    finally:
        # Only our own turn: one that lapsed and was taken by another caller stays theirs.
        if taken is not CACHE_DOWN and cache_call(cache.get, name) == token:
            cache_call(cache.delete, name)


class CallBudget:
    """The shared picture of one key's counter. Call :meth:`spend` inside :func:`key_turn`
    (it reads and writes the cache entry without a lock of its own)."""

    def __init__(
        self, scope: str, rule: BudgetRule, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._name = f"venues:budget:{scope}"
        self._rule = rule
        self._clock = clock

    def level(self) -> float:
        """The counter as it stands now, decayed since the last call."""
        state = cache_call(cache.get, self._name)
        if not isinstance(state, dict):
            return 0.0
        elapsed = max(self._clock() - float(state["at"]), 0.0)
        return max(float(state["level"]) - elapsed * self._rule.decay_per_second, 0.0)

    def spend(self, cost: float, purpose: Purpose | None) -> None:
        """Count ``cost`` units for a call made for ``purpose``, or refuse it before it is made.

        Refused: :class:`VenueUnavailable` with the seconds until the counter has decayed
        enough for this purpose; nothing was sent, so the caller may retry then. A caller that
        does not say why it calls (``None``) is counted but never held back: only callers that
        name their purpose can be ranked.
        """
        level = self.level()
        ceiling = self._rule.capacity * CEILINGS[purpose] if purpose is not None else None
        if ceiling is not None and level + cost > ceiling:
            wait = (level + cost - ceiling) / self._rule.decay_per_second
            raise VenueUnavailable(
                f"The venue's call budget is kept for more important calls "
                f"({purpose.name.lower()} waits {wait:.1f} s)",
                retry_after=max(math.ceil(wait * 100) / 100, 0.1),  # never a moment too soon
            )
        cache_call(
            cache.set, self._name, {"level": level + cost, "at": self._clock()}, timeout=None
        )

    def exhausted(self) -> None:
        """The venue said the counter is full (calls we did not count, e.g. from another
        application on the key): take its word for it."""
        state = {"level": self._rule.capacity, "at": self._clock()}
        cache_call(cache.set, self._name, state, timeout=None)
