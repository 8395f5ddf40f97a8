"""Thin Celery tasks of the audit app."""

from __future__ import annotations

from celery import shared_task

from .checkpoints import checkpoint_write, checkpoints_on_file
from .services import audit_chain_verify


@shared_task
def verify_audit_chain() -> bool:
    """The periodic walk of the chain, held against the checkpoints written outside the
    database; the auditors' dashboard shows its latest result."""
    return audit_chain_verify(record=True, checkpoints=checkpoints_on_file()).ok


@shared_task
def write_audit_checkpoint() -> int:
    """The periodic signed checkpoint of the chain's head, outside the database."""
    return checkpoint_write(only_if_moved=True).seq
