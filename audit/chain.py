"""The HMAC chain over audit events."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

GENESIS = "0" * 64


def event_digest(*, prev_hash: str, content: dict[str, Any]) -> str:
    message = (
        prev_hash.encode()
        + b"\n"
        + json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()
    )
    return hmac.new(settings.AUDIT_HMAC_KEY.encode(), message, hashlib.sha256).hexdigest()


def event_content(event: Any) -> dict[str, Any]:
    """The fields the hash covers, in a form that survives a database round trip."""
    return {
        "seq": event.seq,
        "created_at": event.created_at.isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "ip": event.ip or "",
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "message": event.message,
        "data": event.data,
    }


@dataclass(frozen=True)
class ChainReport:
    """What one walk of the chain found. ``first_broken_seq`` is None when it is intact."""

    ok: bool
    events_checked: int
    first_broken_seq: int | None
    message: str


def chain_walk(events: Iterable[Any], *, head_seq: int, head_hash: str) -> ChainReport:
    """Walk ``events`` (in ``seq`` order) and report the first one that breaks the chain.

    Three checks per event: ``seq`` follows the previous one with no gap, ``prev_hash`` is the
    previous event's hash, and ``hash`` is the HMAC recomputed from the stored content. The
    head row then catches events cut off the end of the chain.
    """
    expected_seq, prev_hash, checked = 1, GENESIS, 0
    for event in events:
        checked += 1
        if event.seq != expected_seq:
            missing = "missing or reordered" if event.seq > expected_seq else "duplicated"
            return _broken(
                checked,
                expected_seq,
                f"event #{expected_seq} is {missing} (found #{event.seq} in its place)",
            )
        if event.prev_hash != prev_hash:
            return _broken(
                checked, event.seq, f"event #{event.seq} does not link to the event before it"
            )
        if event.hash != event_digest(prev_hash=event.prev_hash, content=event_content(event)):
            return _broken(
                checked, event.seq, f"event #{event.seq} was altered: its hash does not match"
            )
        prev_hash = event.hash
        expected_seq += 1
    last_seq = expected_seq - 1
    if last_seq != head_seq or prev_hash != head_hash:
        return _broken(
            checked,
            last_seq + 1 if last_seq < head_seq else last_seq,
            f"the chain ends at #{last_seq} but its head records #{head_seq}: "
            "events were removed from the end",
        )
    return ChainReport(
        ok=True,
        events_checked=checked,
        first_broken_seq=None,
        message=f"Intact: {checked} event(s), head #{head_seq}",
    )


def _broken(checked: int, seq: int, message: str) -> ChainReport:
    return ChainReport(ok=False, events_checked=checked, first_broken_seq=seq, message=message)
