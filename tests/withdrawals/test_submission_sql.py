"""How many SQL statements one submission costs, pinned: each is paid by every withdrawal at
200 a second. A new statement in the submission path must be a deliberate change here.

The safety checks are counted too, so none disappears unnoticed: the row is read under its lock
three times (open the attempt, the fence, the outcome), the live approvals are counted twice
(before calling the venue at all, then in the fence), and each transition writes its audit event
in its own transaction.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.withdrawals.test_services import approved, create, no_tasks, reload, sandbox
from withdrawals import services
from withdrawals.models import State

pytestmark = pytest.mark.django_db

# Savepoints are the test's own transaction showing through; in production they are BEGIN and
# COMMIT, which Django does not list either.
_BOOKKEEPING = re.compile(r"^(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b")
# SQLite writes an ignored-conflict insert as INSERT OR IGNORE; PostgreSQL as ON CONFLICT.
_VERB_TABLE = re.compile(r'^(SELECT|INSERT (?:OR IGNORE )?INTO|UPDATE|DELETE FROM)\b.*?"(\w+)"')


def _statements(queries: list[dict[str, str]]) -> Counter[str]:
    counted: Counter[str] = Counter()
    for query in queries:
        sql = query["sql"]
        if _BOOKKEEPING.match(sql):
            continue
        match = _VERB_TABLE.match(sql)
        verb, table = match.groups() if match else (sql.split()[0], "?")
        if verb == "SELECT":
            # The table a SELECT reads is the one after FROM, not its first column's; an audit
            # event's id reserved from its sequence (PostgreSQL) counts as a read of its table,
            # as the same reservation does on SQLite.
            table = (
                re.search(r'FROM "(\w+)"', sql)
                or re.search(r"pg_get_serial_sequence\('(\w+)'", sql)
            ).group(1)
        counted[f"{verb.split()[0]} {table}"] += 1
    return counted


def test_one_submission_costs_28_statements(alice, bob, address, fresh_code, settings):
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 3600.0
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))

    with CaptureQueriesContext(connection) as ctx, no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)

    assert reload(withdrawal).state == State.SUBMITTED
    assert sandbox().count_withdrawals() == 1
    counted = _statements(ctx.captured_queries)
    assert counted == {
        # Open the attempt, the fence, the outcome: each under the row lock (the 3 reads of the
        # withdrawal).
        "INSERT withdrawals_submissionattempt": 1,
        "UPDATE withdrawals_submissionattempt": 2,  # sent_at in the fence; the outcome
        "UPDATE withdrawals_withdrawalrequest": 2,  # submitting; submitted
        "UPDATE withdrawals_submissionintent": 1,
        "SELECT withdrawals_approval": 2,  # live approvals: before the venue calls, in the fence
        # Two audit events (submitting, submitted): lock the head, append, move the head.
        "SELECT audit_auditchainhead": 2,
        "INSERT audit_auditevent": 2,
        "UPDATE audit_auditchainhead": 2,
        # The venue's own bookkeeping: one nonce per signed call (the saved-address check and
        # the send), each in one UPDATE ... RETURNING; the submit journal before and after the
        # send.
        "UPDATE venues_apinonce": 2,
        "INSERT venues_submitattempt": 1,
        "UPDATE venues_submitattempt": 1,
        # The evidence: every exchange of the send in one insert.
        "INSERT audit_venueexchange": 1,
        # The requester is told it was submitted, through the outbox in the same transaction,
        # before the event that reports it takes the chain head: the requester (through the
        # withdrawal, in one read), the event's id reserved, the notification and its
        # recipient, their channels, the delivery.
        "SELECT withdrawals_withdrawalrequest": 3,
        "SELECT auth_user": 1,
        "SELECT audit_auditevent": 1,
        "INSERT notifications_notification": 1,
        "INSERT notifications_notification_recipients": 1,
        "SELECT notifications_preference": 1,
        "INSERT notifications_delivery": 1,
    }
    assert sum(counted.values()) == 28


def test_only_the_read_that_opens_the_attempt_joins_the_addresses_venue(
    alice, bob, address, fresh_code, settings
):
    """The saved-address check after the opening needs the address's venue; the fence and the
    outcome do not, and a table joined in each of them is CPU paid by every withdrawal."""
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 3600.0
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))

    with CaptureQueriesContext(connection) as ctx, no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)

    locked_reads = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith("SELECT")
        and 'FROM "withdrawals_withdrawalrequest"' in q["sql"]
        and 'JOIN "whitelist_whitelistedaddress"' in q["sql"]
    ]
    assert [sql.count('JOIN "venues_venue"') for sql in locked_reads] == [2, 1, 1]


def test_the_status_poll_after_a_send_costs_7_statements(alice, bob, address, fresh_code, settings):
    """Every withdrawal sent is polled once right after: the withdrawal is read to poll it and
    again under its lock to record the answer, never more."""
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 3600.0
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)

    with CaptureQueriesContext(connection) as ctx, no_tasks():
        services.withdrawal_status_refresh(withdrawal_id=withdrawal.pk)

    withdrawal = reload(withdrawal)
    assert withdrawal.state == State.SUBMITTED and withdrawal.last_checked_at is not None
    assert _statements(ctx.captured_queries) == {
        "SELECT withdrawals_withdrawalrequest": 2,  # what to poll; under the lock to record it
        # Every reference the venue may list it under: its attempts', the submit journal's.
        "SELECT withdrawals_submissionattempt": 1,
        "SELECT venues_submitattempt": 1,
        "UPDATE venues_apinonce": 1,
        "UPDATE withdrawals_withdrawalrequest": 1,  # the venue's status, when it was checked
        "INSERT audit_venueexchange": 1,  # the status changed (none → pending): its evidence
    }
