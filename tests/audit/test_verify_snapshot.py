"""verify_audit reads the chain's head and its events in one snapshot, so appends made while it
walks (every withdrawal writes some) never look like a cut tail. PostgreSQL only: its default
READ COMMITTED gives each statement a fresh snapshot, which is what raised the false alarms."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from audit import services
from audit.services import audit_chain_verify, audit_event_record

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


def append_elsewhere() -> None:
    """Another process writing to the trail: its own connection, committed at once."""

    def run() -> None:
        try:
            audit_event_record(action="test.concurrent", message="written during the walk")
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)


def test_an_append_during_the_walk_is_no_tamper_alarm(monkeypatch):
    assert connection.vendor == "postgresql", "run with DATABASE_URL (make test's second pass)"
    for n in range(3):
        audit_event_record(action="test.seed", message=f"event {n}")
    real_walk = services.chain_walk

    def walk_after_an_append(events, **kwargs):
        append_elsewhere()  # between reading the head and reading the events
        return real_walk(events, **kwargs)

    monkeypatch.setattr(services, "chain_walk", walk_after_an_append)
    check = audit_chain_verify(record=False)

    assert check.ok, check.message
    assert check.events_checked == 3
    monkeypatch.undo()
    assert audit_chain_verify(record=False).events_checked == 4
