"""The HMAC chain over audit events."""

from __future__ import annotations

import hashlib
import hmac
import json
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
