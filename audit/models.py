from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class AppendOnlyError(Exception):
    """Raised when code tries to change or remove a recorded audit event."""


class AuditEventQuerySet(models.QuerySet):
    """Bulk update and delete are refused: the trail only grows."""

    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events are append-only: they cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events are append-only: they cannot be deleted.")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise AppendOnlyError("Audit events are append-only: they cannot be updated.")


class AuditEvent(models.Model):
    """One append-only, hash-chained record of something that happened.

    ``seq`` numbers the chain without gaps; ``prev_hash`` is the previous event's ``hash``;
    ``hash`` is an HMAC over this event's content and ``prev_hash`` (see audit.chain).
    The application offers no update or delete path; on PostgreSQL a trigger refuses both.
    """

    seq = models.BigIntegerField(unique=True)
    # No index of its own: audit_created_seq_idx (created_at, seq) leads with it.
    created_at = models.DateTimeField()
    # No index of its own: audit_actor_idx (actor, seq) leads with it, and every index here is
    # paid for by each append.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    actor_name = models.CharField(max_length=150, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    # The application role may only read and insert these rows (audit.db_roles).
    append_only_for_app_role = True

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["object_type", "object_id", "seq"], name="audit_object_idx"),
            # A date range, newest first, paged on (created_at, seq): read in index order.
            models.Index(fields=["created_at", "seq"], name="audit_created_seq_idx"),
            # The action filter is a prefix (LIKE 'x%'), which a btree serves under a non-C
            # collation only with the pattern operator class; equality still uses it.
            models.Index(
                fields=["action", "seq"],
                name="audit_action_prefix_idx",
                opclasses=["varchar_pattern_ops", "int8_ops"],
            ),
            models.Index(fields=["actor", "seq"], name="audit_actor_idx"),
            # History filtered by kind of object (e.g. whitelist changes), newest first.
            models.Index(fields=["object_type", "-seq"], name="audit_type_seq_idx"),
            # The user filter matches the recorded name: failed logins have no actor row.
            models.Index(fields=["actor_name", "-seq"], name="audit_actor_name_seq_idx"),
        ]
        permissions = [("view_everything", "Can read every record, audit trail and export")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events are append-only: they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError("Audit events are append-only: they cannot be deleted.")


class AuditChainHead(models.Model):
    """A single row, locked by every append, so the chain never forks under concurrency."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit head #{self.seq}"


class ChainCheck(models.Model):
    """The outcome of one walk of the chain (``verify_audit`` or the periodic task)."""

    append_only_for_app_role = True

    checked_at = models.DateTimeField(db_index=True)
    ok = models.BooleanField()
    events_checked = models.BigIntegerField(default=0)
    first_broken_seq = models.BigIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500)

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"chain check {self.checked_at:%Y-%m-%d %H:%M:%S}: {'ok' if self.ok else 'BROKEN'}"
