"""How many SQL statements one approval costs, through the view and every middleware, pinned:
twenty approvers act within the same second on two cores, so each statement is paid twenty
times over. A new statement in the approve path must be a deliberate change here.

The safety checks are counted too, so none disappears unnoticed: the approver's refusals are
checked before the code is spent and again under the row lock, the code is consumed in its own
transaction, and the audit event is the last write (after the requester's notification).
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import policy_install
from tests.withdrawals.test_services import create, no_tasks, reload
from tests.withdrawals.test_submission_sql import _statements
from withdrawals import services
from withdrawals.models import Approval, State, SubmissionIntent

pytestmark = pytest.mark.django_db

# What every signed-in request reads before any view runs: the session, then the person with
# their roles and confirmed TOTP devices (accounts.backends, one statement).
MIDDLEWARE = {
    "SELECT django_session": 1,
    "SELECT auth_user": 1,
}
# Before the code is spent, so a refusal leaves it usable: the withdrawal as the viewer may see
# it (the view), then with its destination (the service), the approver's earlier approval, the
# quote they were shown. The code is then consumed under the device's lock.
BEFORE_THE_LOCK = {
    "SELECT withdrawals_withdrawalrequest": 2,
    "SELECT withdrawals_approval": 1,
    "SELECT withdrawals_quote": 1,
    "SELECT otp_totp_totpdevice": 1,
    "UPDATE otp_totp_totpdevice": 1,
}
# Under the row lock: the lock, the earlier approval again, the red flags (this destination's
# history, near duplicates, the rule and its policy version), the approval, the distinct live
# approvers; last, the requester's notification (who, the audit event's id reserved, the
# notification, its recipient, their channels, the email delivery) and then the audit event
# (head, event, head): the chain head, which every audited write waits for, is taken last.
UNDER_THE_LOCK = {
    "SELECT withdrawals_withdrawalrequest": 1 + 2,
    "SELECT withdrawals_approval": 1 + 1,
    "SELECT policies_rule": 1,
    "INSERT withdrawals_approval": 1,
    "SELECT audit_auditevent": 1,
    "SELECT audit_auditchainhead": 1,
    "INSERT audit_auditevent": 1,
    "UPDATE audit_auditchainhead": 1,
    "SELECT auth_user": 1,
    "INSERT notifications_notification": 1,
    "INSERT notifications_notification_recipients": 1,
    "SELECT notifications_preference": 1,
    "INSERT notifications_delivery": 1,
}
# The approval that reaches the quorum also moves the withdrawal to approved and opens the
# submission intent (one upsert).
QUORUM = {
    "UPDATE withdrawals_withdrawalrequest": 1,
    "INSERT withdrawals_submissionintent": 1,
}
# Under a rule with a 24 h limit: the red flags read the scope's window to say whether this one
# comes near it, and the final approval locks the scope (one statement) and counts it again.
VELOCITY = {
    "SELECT withdrawals_withdrawalrequest": 2,
    "SELECT policies_velocitylock": 1,
}


def _earlier_payment(alice, address, approvers, fresh_code) -> None:
    """The steady state: this destination already received money (its history is one read, not
    two), and its velocity scopes already have their lock rows."""
    earlier = create(alice, address)
    with no_tasks():
        for approver in approvers:
            services.withdrawal_approve(
                withdrawal_id=earlier.pk,
                approver=approver,
                code=fresh_code(approver),
                quote_id=services.withdrawal_quote_fresh(
                    withdrawal_id=earlier.pk, user=approver
                ).pk,
            )
    assert reload(earlier).state == State.APPROVED


def _approve_counted(client, withdrawal, approver, code) -> Counter[str]:
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=approver)
    url = reverse("withdrawals:approve", kwargs={"pk": withdrawal.pk})
    with CaptureQueriesContext(connection) as ctx, no_tasks():
        response = client.post(url, {"quote": quote.pk, "code": code})
    assert response.status_code == 302
    counted = _statements(ctx.captured_queries)
    # The idle deadline is pushed forward at most once a minute (config.middleware): whether
    # this request is the one that writes it is the session's business, not the approval's.
    del counted["UPDATE django_session"]
    return counted


def _total(*parts: dict[str, int]) -> Counter[str]:
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part)
    return total


def test_the_approval_that_reaches_the_quorum_costs_26_statements(
    alice, bob, bob_client, address, fresh_code
):
    policy_install()
    _earlier_payment(alice, address, [bob], fresh_code)
    withdrawal = create(alice, address)

    counted = _approve_counted(bob_client, withdrawal, bob, fresh_code(bob))

    assert reload(withdrawal).state == State.APPROVED
    assert SubmissionIntent.objects.filter(withdrawal=withdrawal, done_at=None).exists()
    assert counted == _total(MIDDLEWARE, BEFORE_THE_LOCK, UNDER_THE_LOCK, QUORUM)
    assert counted.total() == 26
    # A rule that limits nothing takes no velocity lock: approvals to one destination must
    # not queue behind each other for a count nobody makes.
    assert "SELECT policies_velocitylock" not in counted


def test_under_a_destination_limit_the_final_approval_locks_and_counts_its_scope(
    alice, bob, bob_client, address, fresh_code
):
    policy_install({"destination_daily_count": 10})
    _earlier_payment(alice, address, [bob], fresh_code)
    withdrawal = create(alice, address)

    counted = _approve_counted(bob_client, withdrawal, bob, fresh_code(bob))

    assert reload(withdrawal).state == State.APPROVED
    assert counted == _total(MIDDLEWARE, BEFORE_THE_LOCK, UNDER_THE_LOCK, QUORUM, VELOCITY)
    assert counted.total() == 29


def test_an_approval_short_of_the_quorum_costs_24_statements(
    alice, bob, bianca, bob_client, address, fresh_code
):
    policy_install({"quorum": 2})
    _earlier_payment(alice, address, [bob, bianca], fresh_code)
    withdrawal = create(alice, address)

    counted = _approve_counted(bob_client, withdrawal, bob, fresh_code(bob))

    assert reload(withdrawal).state == State.PENDING_APPROVAL
    assert Approval.objects.filter(withdrawal=withdrawal, approver=bob).exists()
    assert AuditEvent.objects.filter(action="withdrawal.approval_added").exists()
    assert counted == _total(MIDDLEWARE, BEFORE_THE_LOCK, UNDER_THE_LOCK)
    assert counted.total() == 24


def test_the_audit_event_is_the_last_write_of_the_approval(
    alice, bob, bob_client, address, fresh_code
):
    # Every audited write in the system waits for the chain head the event takes: nothing of
    # the withdrawal's own is written while it is held.
    policy_install()
    withdrawal = create(alice, address)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    url = reverse("withdrawals:approve", kwargs={"pk": withdrawal.pk})
    with CaptureQueriesContext(connection) as ctx, no_tasks():
        bob_client.post(url, {"quote": quote.pk, "code": fresh_code(bob)})

    assert reload(withdrawal).state == State.APPROVED
    writes = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    head = next(i for i, sql in enumerate(writes) if '"audit_auditevent"' in sql)
    assert any('"withdrawals_withdrawalrequest"' in sql for sql in writes[:head])
    assert any('"withdrawals_submissionintent"' in sql for sql in writes[:head])
    assert not any('"withdrawals_' in sql for sql in writes[head:])
