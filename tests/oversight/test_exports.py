"""The exports: what a withdrawal row carries, that COPY (PostgreSQL) and the Python path
(SQLite) write the same bytes from the same rows, and that memory stays flat however many rows.

Personas: dave audits and exports; alice requests; bob and carol approve.
"""

from __future__ import annotations

import csv
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_event_record
from oversight import exports
from oversight import services as exports_services
from tests.factories import WithdrawalFactory
from withdrawals.models import Approval, State, WithdrawalRequest

pytestmark = pytest.mark.django_db
# Committed rows: the export's second connection sees only what is committed, so a test of the
# two-connection path cannot keep its rows in a transaction rolled back at the end.
committed = pytest.mark.django_db(transaction=True)


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
@pytest.mark.parametrize(
    "width",
    [
        pytest.param(exports.CHUNK_KEYS, id="in-the-callers-transaction"),
        pytest.param(exports.CHUNK_KEYS, marks=committed, id="two-connections"),
        pytest.param(1, marks=committed, id="two-connections-chunk-per-key"),
    ],
)
@pytest.mark.parametrize("dataset", ["withdrawals", "audit"])
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_copy_and_python_paths_write_the_same_bytes(awkward, dataset, fmt, width):
    chosen = exports.DATASETS[dataset]
    model = WithdrawalRequest if dataset == "withdrawals" else AuditEvent
    qs = model.objects.all()
    copied = b"".join(exports.copy_stream(dataset=chosen, fmt=fmt, qs=qs, width=width))
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
@pytest.mark.parametrize("path", [pytest.param("savepoint"), pytest.param("own", marks=committed)])
def test_the_copy_leaves_the_connection_settings_as_it_found_them(awkward, path):
    # The export plans its statements serially and without JIT; the next request on the same
    # connection must get the server's settings back, in the caller's transaction or out of any.
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
                dataset=exports.WITHDRAWALS, fmt=fmt, qs=WithdrawalRequest.objects.all(), width=2
            )
        )
    assert current() == before
    assert connection.in_atomic_block == (path == "savepoint")
    idle = psycopg.pq.TransactionStatus.IDLE
    assert (connection.connection.info.transaction_status == idle) == (path == "own")


@pytest.mark.postgresql
def test_copy_export_follows_the_filter(awkward, dave):
    qs = AuditEvent.objects.filter(action="test.awkward")
    text = b"".join(exports.copy_stream(dataset=exports.AUDIT, fmt="json", qs=qs)).decode()
    (record,) = [json.loads(line) for line in text.splitlines()]
    assert record["ip"] == "203.0.113.9" and record["actor"] == "bob"
    assert record["data"]["a"] == {"é": "x", "bb": "y\n"}


@pytest.mark.postgresql
@committed
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


# --- PostgreSQL: chunks on two connections, one snapshot --------------------------------------


def elsewhere(work):
    """``work`` on a connection of its own, committed, as another request would: the test's
    connection is the export's, busy with a COPY while the stream is paused."""

    def run():
        try:
            with transaction.atomic():
                return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def extra_connections() -> int:
    def count() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                # This test database's only: another worker's exports are its own.
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database()",
                [exports.EXTRA_APPLICATION],
            )
            return cursor.fetchone()[0]

    return elsewhere(count)


def extra_connections_gone() -> bool:
    # A closed connection's backend leaves pg_stat_activity a moment after its client.
    for _ in range(100):
        if extra_connections() == 0:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def many(alice, address):
    """Twelve withdrawals with gaps in their ids (two deleted), half of them completed."""
    made = [
        WithdrawalFactory(
            whitelisted_address=address,
            requested_by=alice,
            note=f"n{i}",
            state=State.COMPLETED if i % 2 else State.PENDING_APPROVAL,
        )
        for i in range(14)
    ]
    WithdrawalRequest.objects.filter(pk__in=[made[3].pk, made[4].pk]).delete()
    return WithdrawalRequest.objects.order_by("pk")


@pytest.mark.postgresql
@committed
@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("width", [1, 2, 3, 5])
def test_a_chunked_export_writes_the_bytes_of_one_copy(many, fmt, width):
    # Chunks of a few keys: some empty (the deleted ids, the filtered-out rows), an odd count
    # and an even one, the selection's last chunk cut short.
    for qs in (many, many.filter(state=State.COMPLETED), many.filter(pk__gt=many[5].pk)):
        whole = b"".join(
            exports.copy_stream(dataset=exports.WITHDRAWALS, fmt=fmt, qs=qs, width=10**9)
        )
        chunked = b"".join(
            exports.copy_stream(dataset=exports.WITHDRAWALS, fmt=fmt, qs=qs, width=width)
        )
        assert (
            chunked
            == whole
            == b"".join(exports.python_stream(dataset=exports.WITHDRAWALS, fmt=fmt, qs=qs))
        )
        assert whole.count(b"\n") == qs.count() + (fmt == "csv")


@pytest.mark.postgresql
@committed
def test_an_empty_selection_exports_only_the_header(many):
    qs = many.filter(state=State.FAILED)
    assert b"".join(exports.copy_stream(dataset=exports.WITHDRAWALS, fmt="csv", qs=qs)) == (
        exports._csv_header(exports.WITHDRAWALS).encode()
    )
    assert b"".join(exports.copy_stream(dataset=exports.WITHDRAWALS, fmt="json", qs=qs)) == b""


@pytest.mark.postgresql
@committed
def test_an_export_holds_the_rows_of_one_moment(many, alice, address, bob, monkeypatch):
    before = b"".join(exports.copy_stream(dataset=exports.WITHDRAWALS, fmt="json", qs=many))
    later = list(many.values_list("pk", flat=True))[2:]
    # A buffer of one piece holds the worker back: the chunks after the first, on both
    # connections, run after the changes.
    monkeypatch.setattr(exports, "AHEAD_BYTES", exports.PIECE_BYTES)
    # One change commits while the second connection opens, after the export's moment and
    # before that connection's first read.
    applied = []
    real_settings = exports._apply_copy_settings

    def settings_then_change(cursor) -> None:
        applied.append(cursor)
        if len(applied) == 2:
            elsewhere(lambda: WithdrawalRequest.objects.filter(pk__in=later).update(note="early"))
        real_settings(cursor)

    monkeypatch.setattr(exports, "_apply_copy_settings", settings_then_change)
    # Closed whatever happens: a stream left open mid-COPY holds its connection.
    with closing(
        exports.copy_stream(dataset=exports.WITHDRAWALS, fmt="json", qs=many, width=1)
    ) as stream:
        first = next(stream)

        def change() -> None:
            WithdrawalRequest.objects.filter(pk__in=later).update(note="late")
            approve(WithdrawalRequest.objects.get(pk=later[-1]), bob)
            WithdrawalRequest.objects.filter(pk=later[0]).delete()
            WithdrawalFactory(whitelisted_address=address, requested_by=alice)

        elsewhere(change)
        rest = b"".join(stream)
    assert first + rest == before and len(applied) == 2
    after = b"".join(exports.copy_stream(dataset=exports.WITHDRAWALS, fmt="json", qs=many))
    assert b"late" in after and after != before


@pytest.mark.postgresql
@committed
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_the_rows_recorded_are_the_rows_in_the_file_whatever_changes_meanwhile(
    dave_client, many, monkeypatch, fmt
):
    """The count and the file come from one snapshot: a withdrawal that leaves the filter, and
    one that joins it, while the export's event is written change neither."""
    pending = list(many.filter(state=State.PENDING_APPROVAL).values_list("pk", flat=True))
    completed = list(many.filter(state=State.COMPLETED).values_list("pk", flat=True))
    real = exports_services.audit_export_record

    def change_then_record(**kwargs):
        elsewhere(
            lambda: (
                WithdrawalRequest.objects.filter(pk=pending[0]).update(state=State.CANCELLED),
                WithdrawalRequest.objects.filter(pk=completed[0]).update(
                    state=State.PENDING_APPROVAL
                ),
            )
        )
        return real(**kwargs)

    monkeypatch.setattr(exports_services, "audit_export_record", change_then_record)
    response = dave_client.get(f"/audit/export/withdrawals.{fmt}", {"state": "pending_approval"})
    text = streamed(response)
    if fmt == "csv":
        ids = [int(row["id"]) for row in csv.DictReader(io.StringIO(text))]
    else:
        ids = [json.loads(line)["id"] for line in text.splitlines()]
    event = AuditEvent.objects.get(action="export.created")
    assert ids == pending  # the rows of the moment the export began
    assert event.data["rows"] == len(ids)


@pytest.mark.postgresql
@committed
def test_an_export_never_read_still_ends_its_snapshot(dave_client, many):
    response = dave_client.get("/audit/export/withdrawals.json")
    assert response.status_code == 200 and extra_connections() == 1  # the snapshot, held
    response.close()  # the client went away before the first byte
    assert extra_connections_gone()


@pytest.mark.postgresql
@committed
def test_an_export_whose_event_cannot_be_written_sends_nothing_and_holds_nothing(
    dave_client, many, monkeypatch
):
    def refused(**kwargs):
        raise RuntimeError("audit trail unavailable")

    monkeypatch.setattr(exports_services, "audit_export_record", refused)
    with pytest.raises(RuntimeError):
        dave_client.get("/audit/export/withdrawals.csv")
    assert extra_connections_gone()
    assert not AuditEvent.objects.filter(action="export.created").exists()


@pytest.mark.postgresql
@committed
def test_a_reader_that_stops_early_leaves_no_connection_or_transaction_behind(many):
    stream = exports.copy_stream(dataset=exports.WITHDRAWALS, fmt="json", qs=many, width=1)
    try:
        next(stream)
        running = extra_connections()
    finally:
        stream.close()
    assert running == 1
    assert extra_connections_gone()
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@pytest.mark.postgresql
@committed
def test_an_error_in_the_worker_surfaces_in_the_stream(many, monkeypatch):
    real = exports.copy_sql
    made = []

    def failing_second(**kwargs):
        made.append(kwargs)
        # The second chunk is the other connection's.
        failing = exports.CopyStatement("COPY (SELECT 1 / 0) TO STDOUT", ())
        return failing if len(made) == 2 else real(**kwargs)

    monkeypatch.setattr(exports, "copy_sql", failing_second)
    stream = exports.copy_stream(dataset=exports.WITHDRAWALS, fmt="json", qs=many, width=1)
    with pytest.raises(psycopg.errors.DivisionByZero):
        b"".join(stream)
    assert len(made) > 2
    assert extra_connections_gone()
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_times_are_written_in_utc_whatever_zone_they_come_in():
    local = timezone.localtime(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    assert exports._time(local) == "2026-01-01T12:00:00.000000+00:00"
