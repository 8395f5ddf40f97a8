"""The daily rollup the auditors' charts read: it equals a direct aggregate of the withdrawals,
a refresh is idempotent and follows late state changes, and the dashboard reads only it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_event_record
from oversight import services, tasks
from oversight.models import DailyWithdrawalTotals
from tests.factories import WhitelistedAddressFactory, WithdrawalFactory
from withdrawals.models import State, WithdrawalRequest

pytestmark = pytest.mark.django_db


def made(address, *, days_ago: int, state: str, amount: str) -> WithdrawalRequest:
    withdrawal = WithdrawalFactory(whitelisted_address=address, state=state, amount=Decimal(amount))
    WithdrawalRequest.objects.filter(pk=withdrawal.pk).update(
        created_at=timezone.now() - timedelta(days=days_ago)
    )
    withdrawal.refresh_from_db()
    return withdrawal


def direct() -> set[tuple]:
    rows = (
        WithdrawalRequest.objects.annotate(day=TruncDate("created_at"))
        .values("day", "venue_id", "asset", "state")
        .annotate(n=Count("id"), total=Sum("amount"))
        .order_by()
    )
    return {
        (str(r["day"]), r["venue_id"], r["asset"], r["state"], r["n"], r["total"]) for r in rows
    }


def rolled() -> set[tuple]:
    return {
        (str(t.day), t.venue_id, t.asset, t.state, t.count, t.amount_sum)
        for t in DailyWithdrawalTotals.objects.all()
    }


@pytest.fixture
def history(address):
    other = WhitelistedAddressFactory(destination=1)
    made(address, days_ago=0, state=State.COMPLETED, amount="1.5")
    made(address, days_ago=0, state=State.COMPLETED, amount="0.25")
    made(address, days_ago=0, state=State.REJECTED, amount="9")
    made(address, days_ago=3, state=State.COMPLETED, amount="0.000000000000000001")
    made(other, days_ago=3, state=State.PENDING_APPROVAL, amount="2")
    made(other, days_ago=40, state=State.FAILED, amount="7")
    return address


def test_the_rollup_equals_a_direct_aggregate_and_a_rerun_changes_nothing(history):
    services.daily_totals_refresh(days=None)
    assert rolled() == direct() and len(rolled()) == 5
    services.daily_totals_refresh(days=None)
    assert rolled() == direct()


def test_the_first_periodic_run_backfills_every_day(history):
    tasks.refresh_daily_totals()
    assert rolled() == direct()
    oldest = DailyWithdrawalTotals.objects.order_by("day").first()
    assert oldest.day == timezone.localdate() - timedelta(days=40)


def test_a_late_state_change_moves_an_old_days_totals(history, address):
    services.daily_totals_refresh(days=None)
    pending = WithdrawalRequest.objects.get(state=State.PENDING_APPROVAL)
    WithdrawalRequest.objects.filter(pk=pending.pk).update(state=State.COMPLETED)
    with transaction.atomic():
        audit_event_record(action=AuditAction.WITHDRAWAL_COMPLETED, target=pending)
    tasks.refresh_daily_totals()
    assert rolled() == direct()
    assert not DailyWithdrawalTotals.objects.filter(state=State.PENDING_APPROVAL).exists()


def test_a_refresh_of_some_days_leaves_the_others_alone(history):
    services.daily_totals_refresh(days=None)
    old = timezone.localdate() - timedelta(days=40)
    before = DailyWithdrawalTotals.objects.get(day=old)
    assert services.daily_totals_refresh(days={timezone.localdate()}) == 2
    assert DailyWithdrawalTotals.objects.get(day=old).refreshed_at == before.refreshed_at
    assert rolled() == direct()


def test_the_dashboard_charts_from_the_rollup_in_a_constant_number_of_queries(
    history, address, dave_client
):
    def queries() -> tuple[int, str]:
        services.daily_totals_refresh(days=None)
        dave_client.get("/audit/")  # warm the session and permission caches the same way
        with CaptureQueriesContext(connection) as captured:
            page = dave_client.get("/audit/").content.decode()
        sql = " ".join(q["sql"] for q in captured.captured_queries)
        assert "withdrawals_withdrawalrequest" not in sql
        return len(captured), page

    few, page = queries()
    assert "Completed: 3" in page and "Totals as of" in page
    for _ in range(20):
        made(address, days_ago=1, state=State.COMPLETED, amount="1")
    many, page = queries()
    assert few == many and "Completed: 23" in page
