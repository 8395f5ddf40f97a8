"""The audit chain: verify_audit, tampering behind the application's back, append-only rows.

Personas: dave audits (reads the result), the superuser "root" tries the admin, nobody edits.
"""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from audit import tasks
from audit.models import AppendOnlyError, AuditChainHead, AuditEvent, ChainCheck
from audit.services import audit_chain_verify, audit_event_record
from tests.factories import UserFactory
from venues.services import venue_change_approve, venue_change_propose

pytestmark = pytest.mark.django_db


def chain_of(n: int) -> list[AuditEvent]:
    with transaction.atomic():
        return [
            audit_event_record(action="test.event", message=f"event {i}", data={"i": i})
            for i in range(n)
        ]


def raw(sql: str, params: list | None = None) -> None:
    """Change the table the way a DBA with a SQL prompt would: no model, no trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Deferred foreign-key checks pending in the test transaction block ALTER TABLE.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(sql, params or [])
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
            # Back to deferred, as the application runs: a notification is written before the
            # event it refers to, which is checked at commit.
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def verify_fails_at(seq: int) -> str:
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit")
    assert f"#{seq}" in str(failure.value)
    return str(failure.value)


def test_an_intact_chain_verifies_and_the_result_is_stored(capsys):
    chain_of(5)
    call_command("verify_audit")
    assert "Audit chain OK" in capsys.readouterr().out
    check = ChainCheck.objects.get()
    assert check.ok and check.events_checked == 5 and check.first_broken_seq is None


def test_an_empty_chain_verifies():
    assert audit_chain_verify(record=False).ok


def test_an_edited_message_is_caught_and_named():
    events = chain_of(5)
    raw("UPDATE audit_auditevent SET message = %s WHERE seq = %s", ["nothing to see", 3])
    assert "altered" in verify_fails_at(3)
    assert events[2].seq == 3
    check = ChainCheck.objects.get()
    assert not check.ok and check.first_broken_seq == 3


def test_an_edited_amount_inside_the_data_is_caught():
    chain_of(4)
    raw("UPDATE audit_auditevent SET data = %s WHERE seq = %s", ['{"i": 99}', 2])
    verify_fails_at(2)


def test_a_deleted_middle_event_is_caught():
    chain_of(5)
    raw("DELETE FROM audit_auditevent WHERE seq = %s", [3])
    assert "missing" in verify_fails_at(3)


def test_a_deleted_last_event_is_caught_by_the_head():
    chain_of(4)
    raw("DELETE FROM audit_auditevent WHERE seq = %s", [4])
    assert "removed from the end" in verify_fails_at(4)


def test_reordered_events_are_caught():
    chain_of(4)
    # Swap #2 and #3 through a free number, as the unique constraint demands.
    raw("UPDATE audit_auditevent SET seq = 1000 WHERE seq = 2")
    raw("UPDATE audit_auditevent SET seq = 2 WHERE seq = 3")
    raw("UPDATE audit_auditevent SET seq = 3 WHERE seq = 1000")
    verify_fails_at(2)


def test_a_rehashed_event_still_breaks_the_link_to_the_next_one():
    """Forging one event's hash without the key is impossible; even copying a valid hash
    from elsewhere breaks the next event's prev_hash link."""
    events = chain_of(3)
    raw("UPDATE audit_auditevent SET hash = %s WHERE seq = 2", [events[0].hash[::-1]])
    verify_fails_at(2)


def test_the_periodic_task_runs_the_same_check_and_records_it():
    chain_of(2)
    assert tasks.verify_audit_chain.delay().get() is True
    raw("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE seq = 1")
    assert tasks.verify_audit_chain.delay().get() is False
    latest = ChainCheck.objects.order_by("-id").first()
    assert latest.first_broken_seq == 1


def broken_events() -> int:
    return AuditEvent.objects.filter(action="audit.chain_broken").count()


def test_a_break_goes_on_the_trail_once_not_at_every_periodic_walk():
    chain_of(2)
    raw("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE seq = 1")
    for _ in range(3):
        assert tasks.verify_audit_chain.delay().get() is False
    assert broken_events() == 1
    assert ChainCheck.objects.filter(ok=False).count() == 3  # each walk is still recorded


def test_a_new_break_or_a_break_after_a_whole_chain_goes_on_the_trail_again():
    chain_of(4)
    raw("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE seq = 3")
    assert tasks.verify_audit_chain.delay().get() is False
    # An earlier event tampered with too: the walk now breaks sooner, which is news.
    raw("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE seq = 1")
    assert tasks.verify_audit_chain.delay().get() is False
    assert broken_events() == 2
    assert list(
        ChainCheck.objects.filter(ok=False)
        .order_by("id")
        .values_list("first_broken_seq", flat=True)
    ) == [3, 1]

    # Once a walk has found the chain whole, the same break is news again.
    ChainCheck.objects.create(checked_at=timezone.now(), ok=True, events_checked=7, message="")
    assert tasks.verify_audit_chain.delay().get() is False
    assert broken_events() == 3


def test_appends_keep_the_head_in_step():
    events = chain_of(3)
    head = AuditChainHead.objects.get()
    assert (head.seq, head.hash) == (3, events[-1].hash)
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]


# --- append-only ----------------------------------------------------------------------------


def test_the_application_has_no_update_or_delete_path():
    event = chain_of(1)[0]
    event.message = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(message="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).message == "event 0"


def test_the_database_refuses_updates_and_deletes_on_postgresql():
    """On PostgreSQL a trigger refuses raw UPDATE and DELETE. SQLite has no such trigger, so
    there the guarantee is the application's: the model and queryset refuse (above), and the
    raw statement goes through, which verify_audit then catches."""
    chain_of(2)
    if connection.vendor == "postgresql":
        from django.db import DatabaseError

        for sql in (
            "UPDATE audit_auditevent SET message = 'x' WHERE seq = 1",
            "DELETE FROM audit_auditevent WHERE seq = 2",
        ):
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(sql)
        assert audit_chain_verify(record=False).ok
    else:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE audit_auditevent SET message = 'x' WHERE seq = 1")
        assert audit_chain_verify(record=False).first_broken_seq == 1


def test_the_admin_is_read_only_even_for_a_superuser(client):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    event = chain_of(1)[0]
    from tests.conftest import verified_login

    verified_login(client, root)
    base = f"/admin/audit/auditevent/{event.pk}"
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get(f"{base}/change/").status_code == 200  # view only
    assert client.post(f"{base}/change/", {"message": "x"}).status_code == 403
    assert client.post(f"{base}/delete/", {"post": "yes"}).status_code == 403
    assert client.post("/admin/audit/auditevent/add/", {}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).message == "event 0"
    assert audit_chain_verify(record=False).ok


def test_a_fresh_demo_has_a_chain_that_verifies(capsys):
    call_command("seed_demo")
    assert AuditEvent.objects.filter(action="venue.created").exists()
    call_command("verify_audit")
    assert "Audit chain OK" in capsys.readouterr().out


def test_carol_venue_changes_are_on_the_trail_without_secrets(carol, fresh_code):
    erin = UserFactory(username="erin", roles=["whitelist_admin"])
    created = venue_change_propose(
        actor=carol,
        kind="kraken",
        name="Trail venue",
        base_url="sandbox://kraken",
        api_key="trail-key-0001",
        api_secret="dHJhaWwtc2VjcmV0LW5ldmVyLWxvZ2dlZA==",
    )
    venue = venue_change_approve(change_id=created.pk, approver=erin, code=fresh_code(erin))
    changed = venue_change_propose(
        actor=carol, venue_id=venue.pk, api_secret="bmV3LXNlY3JldC1uZXZlci1sb2dnZWQ="
    )
    venue_change_approve(change_id=changed.pk, approver=erin, code=fresh_code(erin))
    events = AuditEvent.objects.filter(object_type="venue", object_id=str(venue.pk))
    assert [e.action for e in events.order_by("seq")] == [
        "venue.created",
        "venue.change_proposed",
        "venue.updated",
    ]
    stored = " ".join(f"{e.message} {e.data}" for e in AuditEvent.objects.all())
    for secret in ("dHJhaWwtc2VjcmV0LW5ldmVyLWxvZ2dlZA==", "bmV3LXNlY3JldC1uZXZlci1sb2dnZWQ="):
        assert secret not in stored
    assert events.get(action="venue.updated").data["credentials_replaced"] == ["api_secret"]
