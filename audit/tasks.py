"""Thin Celery tasks of the audit app."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from .actions import AuditAction
from .checkpoints import checkpoint_write, checkpoints_on_file
from .selectors import chain_break_is_news
from .services import audit_chain_verify, audit_event_record


@shared_task
def verify_audit_chain() -> bool:
    """The periodic walk of the chain, held against the checkpoints written outside the
    database; the auditors' dashboard shows its latest result. A break goes on the trail too,
    so that it alerts people (notifications) rather than waiting for someone to look; once per
    break, not at every walk that finds it again."""
    check = audit_chain_verify(record=True, checkpoints=checkpoints_on_file())
    if not check.ok and chain_break_is_news(check):
        with transaction.atomic():
            audit_event_record(
                action=AuditAction.AUDIT_CHAIN_BROKEN,
                target=check,
                message=check.message,
                data={"first_broken_seq": check.first_broken_seq},
            )
    return check.ok


@shared_task
def write_audit_checkpoint() -> int:
    """The periodic signed checkpoint of the chain's head, outside the database."""
    return checkpoint_write(only_if_moved=True).seq
