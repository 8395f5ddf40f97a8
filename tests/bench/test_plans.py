"""What makes the history pages fast on PostgreSQL, asserted without timing: the filters' SQL
can be served by the indexes meant for it (sequential scans off, so a table of a few rows
still answers which index the query can use), and the audit table carries only indexes a page
or check reads."""

import pytest
from django.db import connection

from oversight.selectors import audit_events_filtered
from withdrawals.selectors import withdrawals_filtered

pytestmark = pytest.mark.postgresql


def _plan(qs) -> str:
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        # Scans of the whole table or of its id order are off, so even a table of a few rows
        # answers which index the filter itself can use (a bitmap scan of it).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
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
