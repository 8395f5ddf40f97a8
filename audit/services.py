"""Appending to the audit trail. Call inside the transaction of the change being recorded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models, transaction
from django.db.models import Max
from django.dispatch import Signal
from django.utils import timezone

from .chain import GENESIS, ChainReport, chain_walk, event_content, event_digest
from .checkpoints import Checkpoint, checkpoint_gap
from .models import AuditChainHead, AuditEvent, ChainCheck

# Sent inside an append's transaction, before the chain head is taken, with the event about to
# be appended (``event``: no seq or hash yet, and an id only once a receiver reserves one with
# ``audit_event_id_reserve``). Receivers write what refers to the event (its notifications): it
# shares the fate of the change, and the head is not held while they do.
event_appending = Signal()

_VERIFY_CHUNK = 2000
_HASHED_FIELDS = (
    "seq",
    "created_at",
    "actor_id",
    "actor_name",
    "ip",
    "action",
    "object_type",
    "object_id",
    "message",
    "data",
    "prev_hash",
    "hash",
)


def audit_event_record(
    *,
    action: str,
    actor: Any = None,
    ip: str | None = None,
    target: models.Model | None = None,
    message: str = "",
    data: dict[str, Any] | None = None,
    actor_name: str = "",
) -> AuditEvent:
    """Append one event to the chain.

    The chain head row is locked, so concurrent appends serialise and ``seq`` has no gaps. When
    the caller's transaction rolls back, the event and the head move back with it. No savepoint
    of its own: an append that fails must fail the change it records, never be caught and
    committed without it (and each savepoint is two more round trips under the head's lock).

    Every audited write in the system waits for the head, so it is taken last and held only
    for the event itself: what refers to the event (``event_appending``) is written first.
    """
    user = actor if getattr(actor, "is_authenticated", False) else None
    event = AuditEvent(
        created_at=timezone.now(),
        actor=user,
        actor_name=actor_name or (user.get_username() if user else "system"),
        ip=ip or None,
        action=action,
        object_type=target._meta.model_name if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        message=message[:500],
        data=json_safe(data or {}),
    )
    with transaction.atomic(savepoint=False):
        event_appending.send(sender=AuditEvent, event=event)
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
        event.seq, event.prev_hash = head.seq + 1, head.hash
        event.hash = event_digest(prev_hash=head.hash, content=event_content(event))
        event.save(force_insert=True)
        head.seq, head.hash = event.seq, event.hash
        head.save(update_fields=["seq", "hash"])
        return event


def audit_event_id_reserve(*, event: AuditEvent) -> int:
    """The id ``event`` will be written with, for an ``event_appending`` receiver that writes
    rows referring to it before it exists (foreign keys are checked at commit). PostgreSQL
    draws it from the table's sequence, outside any lock. SQLite takes the write lock at the
    start of every transaction (``transaction_mode`` IMMEDIATE, in settings), so the next after
    the largest is this transaction's alone."""
    if event.pk is None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [AuditEvent._meta.db_table]
                )
                event.pk = cursor.fetchone()[0]
        else:
            event.pk = (AuditEvent.objects.aggregate(largest=Max("id"))["largest"] or 0) + 1
    return event.pk


def json_safe(value: Any) -> Any:
    """Data fit for a JSON field: Decimal, UUID and datetime kept as their exact text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def _snapshot_isolation() -> None:
    """Make the head and the events one snapshot. Under PostgreSQL's default READ COMMITTED each
    statement sees the latest commits, so an append between reading the head and walking the
    events looked like a chain whose tail had been cut. Call first in the outermost atomic block;
    nested in another transaction (a test's), that transaction's snapshot rules instead."""
    if connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1:
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def audit_chain_verify(
    *, record: bool = True, checkpoints: Sequence[Checkpoint] = ()
) -> ChainCheck:
    """Walk the whole chain and, when ``record``, store the outcome for the dashboard.

    Reads in chunks so memory stays flat however long the chain is. Runs in one transaction
    so appends made during the walk cannot look like a broken tail. Each of ``checkpoints``
    (signed heads kept outside the database) must still be on the chain: a cut tail with a
    rewound head passes the walk but not them.
    """
    with transaction.atomic():
        _snapshot_isolation()
        head = AuditChainHead.objects.filter(id=1).first()
        events = (
            AuditEvent.objects.order_by("seq")
            .only(*_HASHED_FIELDS)
            .iterator(chunk_size=_VERIFY_CHUNK)
        )
        report = chain_walk(
            events,
            head_seq=head.seq if head else 0,
            head_hash=head.hash if head else GENESIS,
        )
        # The highest checkpoint is enough: each event's hash covers the one before it, so
        # an intact chain that holds it holds every earlier checkpoint too.
        strongest = max(checkpoints, key=lambda c: c.seq, default=None)
        head_seq = head.seq if head else 0
        gap = checkpoint_gap(strongest, head_seq=head_seq) if report.ok and strongest else ""
        if gap:
            report = ChainReport(
                ok=False,
                events_checked=report.events_checked,
                first_broken_seq=min(strongest.seq, head_seq + 1),
                message=gap,
            )
        check = ChainCheck(
            checked_at=timezone.now(),
            ok=report.ok,
            events_checked=report.events_checked,
            first_broken_seq=report.first_broken_seq,
            message=report.message[:500],
        )
        if record:
            check.save()
    return check
