"""Signed checkpoints of the chain's head, kept outside the database.

The chain proves that no event was altered or removed from the middle, and the head row that
none was removed from the end. Someone who can write the database can delete the last events
and rewind the head row too: nothing inside the database then shows the cut. A checkpoint
(sequence number, head hash, time, HMAC with the audit key) written where the database's users
cannot reach - an append-only file, a webhook, an auditor's download - still remembers the
tail, and ``verify_audit --checkpoint FILE`` compares the chain with it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .chain import GENESIS
from .models import AuditChainHead, AuditEvent

logger = logging.getLogger(__name__)

LOG_NAME = "checkpoints.jsonl"
# Read at most this much of the log's end to find its last line.
_TAIL_BYTES = 4096


class CheckpointError(Exception):
    """The checkpoint file cannot be used (unreadable, or not signed with our key)."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head_hash: str
    at: str
    mac: str

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def _mac(*, seq: int, head_hash: str, at: str) -> str:
    message = json.dumps(
        {"kind": "countersign.audit.checkpoint", "seq": seq, "head_hash": head_hash, "at": at},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return hmac.new(settings.AUDIT_HMAC_KEY.encode(), message, hashlib.sha256).hexdigest()


def checkpoint_take() -> Checkpoint:
    """A signed statement of the chain's head as it is now."""
    with transaction.atomic():
        head = AuditChainHead.objects.filter(id=1).first()
        seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    at = timezone.now().isoformat(timespec="seconds")
    return Checkpoint(
        seq=seq, head_hash=head_hash, at=at, mac=_mac(seq=seq, head_hash=head_hash, at=at)
    )


def checkpoint_parse(raw: dict[str, Any]) -> Checkpoint:
    """A checkpoint read back from a file or a download; refused unless our key signed it."""
    try:
        checkpoint = Checkpoint(
            seq=int(raw["seq"]),
            head_hash=str(raw["head_hash"]),
            at=str(raw["at"]),
            mac=str(raw["mac"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"not a checkpoint: {exc}") from None
    expected = _mac(seq=checkpoint.seq, head_hash=checkpoint.head_hash, at=checkpoint.at)
    if not hmac.compare_digest(expected, checkpoint.mac):
        raise CheckpointError(
            f"the checkpoint of {checkpoint.at} (#{checkpoint.seq}) is not signed with this "
            "installation's audit key: altered, or from elsewhere"
        )
    return checkpoint


def checkpoints_read(path: Path) -> list[Checkpoint]:
    """Every checkpoint in ``path``: one JSON object, or one per line (the append-only log)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise CheckpointError(f"{path} holds no checkpoint")
    try:
        return [checkpoint_parse(json.loads(line)) for line in lines]
    except json.JSONDecodeError:
        pass
    try:
        return [checkpoint_parse(json.loads(text))]
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not JSON: {exc}") from None


def checkpoint_gap(checkpoint: Checkpoint, *, head_seq: int) -> str:
    """How the chain as it is now falls short of ``checkpoint``, or '' when it holds it.

    Call inside the transaction (snapshot) that read ``head_seq`` and walked the chain.
    """
    if checkpoint.seq == 0:
        return ""
    if head_seq < checkpoint.seq:
        return (
            f"the chain ends at #{head_seq}, but the checkpoint of {checkpoint.at} recorded "
            f"#{checkpoint.seq}: events #{head_seq + 1} to #{checkpoint.seq} were removed"
        )
    stored = AuditEvent.objects.filter(seq=checkpoint.seq).values_list("hash", flat=True).first()
    if stored != checkpoint.head_hash:
        return (
            f"event #{checkpoint.seq} differs from the checkpoint of {checkpoint.at}: the chain "
            "was rewritten from there or before"
        )
    return ""


def _last_line(path: Path) -> str:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - _TAIL_BYTES))
        tail = f.read().decode("utf-8", errors="replace")
    lines = [line for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def checkpoints_on_file() -> list[Checkpoint]:
    """Every checkpoint in the directory's log ([] when there is none yet)."""
    directory = settings.AUDIT_CHECKPOINT_DIR
    path = Path(directory) / LOG_NAME if directory else None
    if path is None or not path.exists():
        return []
    return checkpoints_read(path)


def checkpoint_latest() -> Checkpoint | None:
    """The last checkpoint written to the directory, or None when there is none."""
    directory = settings.AUDIT_CHECKPOINT_DIR
    path = Path(directory) / LOG_NAME if directory else None
    if path is None or not path.exists():
        return None
    line = _last_line(path)
    if not line:
        return None
    try:
        return checkpoint_parse(json.loads(line))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"the last line of {path} is not JSON: {exc}") from None


def checkpoint_write(*, only_if_moved: bool = False) -> Checkpoint:
    """Take a checkpoint and hand it to every sink: the directory's append-only log and, when
    configured, the webhook. ``only_if_moved``: skip when the log already ends at this head
    (the periodic task, on a quiet chain)."""
    checkpoint = checkpoint_take()
    directory = settings.AUDIT_CHECKPOINT_DIR
    if directory:
        path = Path(directory) / LOG_NAME
        if only_if_moved and path.exists():
            last = _last_line(path)
            if last:
                previous = json.loads(last)
                if (previous.get("seq"), previous.get("head_hash")) == (
                    checkpoint.seq,
                    checkpoint.head_hash,
                ):
                    return checkpoint
        try:
            _append(path, checkpoint)
        except OSError as exc:
            # An export must not fail for it; the error log and the webhook still have it,
            # and the next checkpoint carries the head forward.
            logger.error("audit checkpoint #%s not written to %s: %s", checkpoint.seq, path, exc)
    if settings.AUDIT_CHECKPOINT_WEBHOOK_URL:
        _webhook_send(checkpoint)
    return checkpoint


def _append(path: Path, checkpoint: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND: every write lands at the end, whatever else holds the file open; nothing here
    # ever truncates or rewrites it.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (checkpoint.as_json() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _webhook_send(checkpoint: Checkpoint) -> None:
    # A sink that is down must not stop an export or the periodic task: the directory keeps
    # the checkpoint, and the next one carries the head forward anyway.
    try:
        httpx.post(
            settings.AUDIT_CHECKPOINT_WEBHOOK_URL,
            content=checkpoint.as_json(),
            headers={"Content-Type": "application/json"},
            timeout=5.0,
        ).raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("audit checkpoint #%s: webhook failed: %s", checkpoint.seq, exc)
