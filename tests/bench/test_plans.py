"""What makes the history pages fast on PostgreSQL, asserted without timing: the filters' SQL
can be served by the indexes meant for it (sequential scans off, so a table of a few rows
still answers which index the query can use), and the audit table carries only indexes a page
or check reads."""

from datetime import date

import pytest
from django.db import connection

from oversight.selectors import audit_events_filtered
from tests.factories import WithdrawalFactory
from venues.models import Venue
from withdrawals import policy
from withdrawals.selectors import withdrawal_history_query, withdrawals_filtered

pytestmark = pytest.mark.postgresql


def _plan(qs, *, ordered: bool = False) -> str:
    """The plan of ``qs`` with sequential scans off, so a table of a few rows still answers
    which index a query can use. Unordered, only bitmap scans remain: they answer which index
    the filter alone can use. ``ordered`` leaves only index scans: they answer which index
    gives the page its rows in order (the planner of a tiny table would rather sort)."""
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        # Statistics of this test's rows: a row count left by an earlier test's bulk seed (kept
        # by PostgreSQL though its rows rolled back) would otherwise steer the plan.
        cursor.execute(f"ANALYZE {connection.ops.quote_name(qs.model._meta.db_table)}")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"SET LOCAL {'enable_bitmapscan' if ordered else 'enable_indexscan'} = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"q": "abc"}, "withdrawal_address_trgm"),
        ({"q": "abc"}, "withdrawal_reference_trgm"),
        ({"q": "abc"}, "withdrawal_note_trgm"),
        ({"asset": "btc"}, "withdrawal_asset_upper_id_idx"),
        # The requester's id, looked up first, then an index that leads with requested_by.
        ({"user": "alice"}, "Index Cond: (requested_by_id ="),
    ],
)
def test_withdrawal_history_filters_use_their_index(dave, alice, filters, expected):
    qs = withdrawals_filtered(user=dave, filters=filters).order_by("-id")[:51]
    assert expected in _plan(qs)


def test_a_destinations_payment_history_reads_its_own_index(db):
    """Every approval reads the destination's last payments of the asset, newest first (the
    median red flag): without its index this walked the whole table backwards."""
    withdrawal = WithdrawalFactory()
    history = policy.released_to_destination(withdrawal)
    newest_first = history.filter(asset=withdrawal.asset).order_by("-id")[: policy.MEDIAN_HISTORY]
    with connection.cursor() as cursor:
        # Of a table this small the planner would rather read any index and sort.
        cursor.execute("SET LOCAL enable_sort = off")
    assert "withdrawal_released_to_idx" in _plan(newest_first, ordered=True)


def test_audit_action_prefix_uses_the_pattern_index(db):
    qs = audit_events_filtered(filters={"action": "auth."}).order_by("-seq")[:51]
    assert "audit_action_prefix_idx" in _plan(qs)


def test_audit_table_keeps_no_index_that_nothing_reads(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_auditevent'")
        definitions = [row[0] for row in cursor.fetchall()]
    assert not [d for d in definitions if "(hash varchar_pattern_ops)" in d]
    assert not [d for d in definitions if d.endswith("(actor_id)")]
    assert len(definitions) == 9


def test_an_unknown_requester_costs_one_lookup_and_no_walk(dave, django_assert_num_queries):
    qs = withdrawals_filtered(user=dave, filters={"user": "nobody"})
    with django_assert_num_queries(0):
        assert list(qs) == []


RANGE = {"since": date(2026, 1, 1), "until": date(2026, 1, 30)}


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "Index Scan Backward using withdrawals_withdrawalrequest_pkey"),
        ({"before": 1000}, "Index Scan Backward using withdrawals_withdrawalrequest_pkey"),
        ({"venue": "venue"}, "using withdrawal_venue_id_idx"),
        ({"state": "failed"}, "using withdrawal_state_id_idx"),
        ({"user": "alice"}, "using withdrawal_requester_id_idx"),
        (RANGE, "using withdrawal_created_id_idx"),
        ({**RANGE, "before": "cursor"}, "using withdrawal_created_id_idx"),
        ({**RANGE, "state": "failed"}, "using withdrawal_created_id_idx"),
    ],
)
def test_each_history_page_reads_its_rows_in_order_from_its_index(dave, alice, filters, index):
    withdrawal = WithdrawalFactory(requested_by=alice)
    if filters.get("venue") == "venue":
        filters = {**filters, "venue": Venue.objects.get(pk=withdrawal.venue_id)}
    if filters.get("before") == "cursor":
        filters = {**filters, "before": withdrawal.pk}
    plan = _plan(withdrawal_history_query(user=dave, filters=filters), ordered=True)
    assert index in plan
    assert "Sort" not in plan  # the index gives the page's order: no sort of the matches


def test_a_date_range_page_after_the_first_starts_inside_the_index(dave, alice):
    withdrawal = WithdrawalFactory(requested_by=alice)
    filters = {**RANGE, "before": withdrawal.pk}
    plan = _plan(withdrawal_history_query(user=dave, filters=filters), ordered=True)
    # The cursor is an index condition (where the scan starts), not a filter of rows read.
    conds = [line for line in plan.splitlines() if "Index Cond" in line and "created_at" in line]
    assert conds and "ROW(" in conds[0].upper()


def test_the_amount_filter_uses_its_index(dave):
    qs = withdrawal_history_query(user=dave, filters={"amount_min": 1000000})
    assert "withdrawal_amount_idx" in _plan(qs)


def test_the_amount_histogram_is_fine_enough_to_choose_the_amount_index(db):
    # With the default 100 buckets the planner guessed 500 of 100,000 rows at or above 1M where
    # there was one, and walked every id backwards instead of reading the amount index.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstattarget FROM pg_attribute"
            " WHERE attrelid = 'withdrawals_withdrawalrequest'::regclass AND attname = 'amount'"
        )
        assert cursor.fetchone()[0] == 10000


def test_the_created_at_range_has_one_index_not_two(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'withdrawals_withdrawalrequest'"
        )
        on_created = [row[0] for row in cursor.fetchall() if "(created_at" in row[0]]
    assert len(on_created) == 1 and "created_at DESC, id DESC" in on_created[0]
