"""What makes the audit history's date range fast on PostgreSQL, asserted without timing: the
page reads (created_at, seq) in index order, and the table carries only indexes a page or check
reads. Sequential scans and sorts are off, so a table of a few rows still answers which index
can serve the query in the page's order."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.services import audit_event_record
from oversight import selectors

pytestmark = pytest.mark.postgresql


def _plan(qs) -> str:
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def _range() -> dict:
    until = timezone.localdate()
    return {"since": until - timedelta(days=29), "until": until}


def test_a_thirty_day_range_reads_the_created_seq_index_in_order(db):
    audit_event_record(action="test.event")
    qs = selectors.audit_events_filtered(filters=_range())
    page = selectors.audit_events_after(qs=qs, before=None, by_time=True)
    plan = _plan(page[: selectors.PAGE_SIZE + 1])
    assert "Index Scan Backward using audit_created_seq_idx" in plan
    assert "Sort" not in plan


def test_the_next_page_of_a_range_starts_its_scan_at_the_cursor(db):
    last = [audit_event_record(action="test.event") for _ in range(3)][-1]
    qs = selectors.audit_events_filtered(filters=_range())
    page = selectors.audit_events_after(qs=qs, before=last.seq, by_time=True)
    plan = _plan(page[: selectors.PAGE_SIZE + 1])
    assert "Index Scan Backward using audit_created_seq_idx" in plan
    cond = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "created_at <=" in cond


def test_the_audit_table_holds_only_the_indexes_its_readers_use(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_auditevent'")
        names = {row[0] for row in cursor.fetchall()}
    named = {n for n in names if n.startswith("audit_") and n.endswith("_idx")}
    assert named == {
        "audit_object_idx",  # one object's events (evidence, withdrawal and address pages)
        "audit_created_seq_idx",  # date ranges, newest first
        "audit_action_prefix_idx",  # the action filter
        "audit_actor_idx",  # people's last sign-in and approval (access review)
        "audit_type_seq_idx",  # whitelist changes
        "audit_actor_name_seq_idx",  # the user filter
    }
    # The rest: the primary key and the two unique constraints (seq, hash), no LIKE twin.
    assert len(names - named) == 3 and not [n for n in names if n.endswith("_like")]
