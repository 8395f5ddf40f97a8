"""The exports: what a withdrawal row carries, that COPY (PostgreSQL) and the Python path
(SQLite) write the same bytes from the same rows, and that memory stays flat however many rows.

Personas: dave audits and exports; alice requests; bob and carol approve.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_event_record
from oversight import exports
from tests.factories import WithdrawalFactory
from withdrawals.models import Approval, State, WithdrawalRequest

pytestmark = pytest.mark.django_db


def streamed(response) -> str:
    return b"".join(response.streaming_content).decode()


def approve(
    withdrawal: WithdrawalRequest, approver, *, voided: bool = False, step: int = 1
) -> Approval:
    return Approval.objects.create(
        withdrawal=withdrawal,
        approver=approver,
        requester=withdrawal.requested_by,
        payload_hash=withdrawal.payload_hash,
        totp_step=step,
        voided=voided,
    )


@pytest.fixture
def paid(alice, bob, carol, address):
    """A completed withdrawal with a voided approval (carol's, before a re-quote) and a live one."""
    withdrawal = WithdrawalFactory(
        whitelisted_address=address,
        requested_by=alice,
        amount=Decimal("1.50000000"),
        fee_cap=Decimal("0.00010000"),
        note='payroll, "november"\nsecond line',
        state=State.COMPLETED,
        venue_reference="REF-1",
        venue_txid="0xabc",
        submitted_at=datetime(2026, 11, 2, 10, 0, 0, 1, tzinfo=UTC),
        finished_at=datetime(2026, 11, 2, 11, 0, tzinfo=UTC),
        fee_charged=Decimal("0.00005000"),
    )
    approve(withdrawal, carol, voided=True)
    approval = approve(withdrawal, bob)
    withdrawal.approved_at = approval.created_at  # the quorum of one reached by bob
    withdrawal.save(update_fields=["approved_at"])
    return withdrawal


def test_withdrawal_export_carries_approvers_times_note_reason_label_and_txid(
    dave_client, paid, alice, address
):
    cancelled = WithdrawalFactory(
        whitelisted_address=address,
        requested_by=alice,
        state=State.CANCELLED,
        reason="=wrong amount",
    )
    text = streamed(dave_client.get("/audit/export/withdrawals.csv"))
    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(text))}
    row = rows[paid.pk]
    approval = paid.approvals.get(voided=False)
    when = approval.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    assert row["approvers"] == f"bob {when}" and "carol" not in row["approvers"]
    assert row["approved_at"] == when
    assert row["requested_at"].endswith("+00:00")
    assert row["submitted_at"] == "2026-11-02T10:00:00.000001+00:00"
    assert row["completed_at"] == row["finished_at"] == "2026-11-02T11:00:00.000000+00:00"
    assert row["amount"] == "1.5" and row["fee_cap"] == "0.0001"
    assert row["fee_charged"] == "0.00005"
    assert row["note"] == 'payroll, "november"\nsecond line'
    assert row["destination_label"] == address.label
    assert row["txid"] == "0xabc" and row["venue_reference"] == "REF-1"
    other = rows[cancelled.pk]
    assert other["reason"] == "'=wrong amount"  # a formula never reaches a spreadsheet
    assert other["approvers"] == other["approved_at"] == other["completed_at"] == ""


def test_an_export_records_the_filter_and_the_rows_it_holds(dave_client, paid, address):
    WithdrawalFactory(whitelisted_address=address)
    text = streamed(dave_client.get("/audit/export/withdrawals.json", {"state": "completed"}))
    lines = text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [paid.pk]
    assert json.loads(lines[0])["amount"] == "1.5"  # a string: never a float
    event = AuditEvent.objects.get(action="export.created")
    assert event.data["rows"] == 1 and event.data["filters"] == {"state": "completed"}


def test_an_audit_export_holds_exactly_the_rows_it_counted(dave_client):
    with transaction.atomic():
        for i in range(3):
            audit_event_record(action="test.event", message=f"e{i}")
    text = streamed(dave_client.get("/audit/export/audit.csv"))
    rows = list(csv.DictReader(io.StringIO(text)))
    event = AuditEvent.objects.get(action="export.created")
    assert len(rows) == event.data["rows"] == AuditEvent.objects.filter(seq__lt=event.seq).count()
    assert "export.created" not in {r["action"] for r in rows}


# --- PostgreSQL: COPY and the Python path agree ---------------------------------------------


@pytest.fixture
def awkward(paid, alice, bob, address, django_user_model):
    """Rows with every kind of cell that a formatter could get wrong: formula starts in every
    text column that a person or a venue fills (usernames included), JSON escapes next to rows
    that need none, and times with and without microseconds."""
    WithdrawalFactory(
        whitelisted_address=address,
        requested_by=alice,
        amount=Decimal("100"),
        memo="",
        note="+1 café, \t tab",
        reason="-",
    )
    WithdrawalFactory(whitelisted_address=address, amount=Decimal("0.00000001"))
    dash = django_user_model.objects.create_user(username="-dash")
    at = django_user_model.objects.create_user(username="@at")
    odd = WithdrawalFactory(
        whitelisted_address=address,
        requested_by=dash,
        memo="\rmemo",
        note="back\\slash \x01 and ünïcode",
        reason="\tindented",
        venue_reference="=SUM(A1)",
        venue_txid="@txid",
        state=State.COMPLETED,
        submitted_at=datetime(2026, 11, 3, 0, 0, tzinfo=UTC),
        finished_at=datetime(2026, 11, 3, 0, 0, 0, 999999, tzinfo=UTC),
    )
    approve(odd, at)
    approve(odd, bob, step=2)
    with transaction.atomic():
        audit_event_record(
            action="test.awkward",
            actor=bob,
            ip="203.0.113.9",
            target=paid,
            message='@quoted "text", with\r\nnewlines \\ and \x01',
            data={"zz": [1, True, None], "a": {"é": "x", "bb": "y\n"}, "": "empty key"},
        )
        audit_event_record(action="test.plain", data={})
    return paid


@pytest.mark.postgresql
@pytest.mark.parametrize("dataset", ["withdrawals", "audit"])
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_copy_and_python_paths_write_the_same_bytes(awkward, dataset, fmt):
    chosen = exports.DATASETS[dataset]
    model = WithdrawalRequest if dataset == "withdrawals" else AuditEvent
    qs = model.objects.all()
    copied = b"".join(exports.copy_stream(dataset=chosen, fmt=fmt, qs=qs))
    python = b"".join(exports.python_stream(dataset=chosen, fmt=fmt, qs=qs))
    assert copied == python
    lines = copied.decode().splitlines()
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        assert [list(r) for r in records[:1]] == [[c.name for c in chosen.columns]]
        assert len(records) == qs.count()
    else:
        parsed = list(csv.reader(io.StringIO(copied.decode())))
        assert parsed[0] == [c.name for c in chosen.columns] and len(parsed) == qs.count() + 1
        if dataset == "withdrawals":
            (odd,) = [
                r
                for r in csv.DictReader(io.StringIO(copied.decode()))
                if "dash" in r["requested_by"]
            ]
            assert odd["requested_by"] == "'-dash" and odd["approvers"].startswith("'@at ")
            assert odd["venue_reference"] == "'=SUM(A1)" and odd["memo"] == "'\rmemo"


@pytest.mark.postgresql
def test_the_copy_leaves_the_connection_settings_as_it_found_them(awkward):
    # The export plans its statement serially and without JIT; the next request on the same
    # connection must get the server's settings back.
    settings = ("jit", "max_parallel_workers_per_gather")

    def current() -> list[str]:
        with connection.cursor() as cursor:
            shown = []
            for name in settings:
                cursor.execute(f"SHOW {name}")
                shown.append(cursor.fetchone()[0])
            return shown

    before = current()
    for fmt in exports.FORMATS:
        b"".join(
            exports.copy_stream(
                dataset=exports.WITHDRAWALS, fmt=fmt, qs=WithdrawalRequest.objects.all()
            )
        )
    assert current() == before


@pytest.mark.postgresql
def test_copy_export_follows_the_filter(awkward, dave):
    qs = AuditEvent.objects.filter(action="test.awkward")
    text = b"".join(exports.copy_stream(dataset=exports.AUDIT, fmt="json", qs=qs)).decode()
    (record,) = [json.loads(line) for line in text.splitlines()]
    assert record["ip"] == "203.0.113.9" and record["actor"] == "bob"
    assert record["data"]["a"] == {"é": "x", "bb": "y\n"}


@pytest.mark.postgresql
def test_the_export_view_uses_copy_on_postgresql(dave_client, awkward, monkeypatch):
    calls = []
    real = exports.copy_stream

    def spy(**kwargs):
        calls.append(kwargs["fmt"])
        return real(**kwargs)

    monkeypatch.setattr(exports, "copy_stream", spy)
    text = streamed(dave_client.get("/audit/export/withdrawals.csv"))
    assert calls == ["csv"] and connection.vendor == "postgresql"
    assert len(list(csv.DictReader(io.StringIO(text)))) == WithdrawalRequest.objects.count()


def test_times_are_written_in_utc_whatever_zone_they_come_in():
    local = timezone.localtime(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    assert exports._time(local) == "2026-01-01T12:00:00.000000+00:00"
