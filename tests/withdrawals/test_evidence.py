"""A withdrawal's venue evidence stays bounded: repeated status polls past the retention go,
everything else stays (submissions, reconciliations, and every poll that saw a change)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tests.config.test_production_settings import PRODUCTION_ENV, manage
from tests.factories import WithdrawalFactory
from withdrawals import tasks
from withdrawals.evidence import venue_exchanges_compact
from withdrawals.models import VenueExchange

pytestmark = pytest.mark.django_db

HISTORY = "/0/private/WithdrawStatus"


def _exchange(withdrawal, *, days_ago: float, body: str, purpose: str = "status", url=HISTORY):
    return VenueExchange.objects.create(
        withdrawal=withdrawal,
        purpose=purpose,
        started_at=timezone.now() - timedelta(days=days_ago),
        method="POST",
        url=url,
        request_body=f"nonce={days_ago}",
        status_code=200,
        response_body=body,
    )


def _bodies(withdrawal) -> list[tuple[str, str]]:
    return list(
        VenueExchange.objects.filter(withdrawal=withdrawal)
        .order_by("started_at", "id")
        .values_list("purpose", "response_body")
    )


@pytest.fixture
def retention(settings):
    settings.EVIDENCE_POLL_RETENTION_DAYS = 30
    return settings


def test_repeated_polls_past_retention_go_and_every_change_of_status_stays(retention):
    withdrawal = WithdrawalFactory()
    _exchange(withdrawal, days_ago=50, body='{"ok":1}', purpose="submit", url="/0/private/Withdraw")
    for days_ago, status in [(49, "Pending"), (48, "Pending"), (47, "Pending"), (46, "Success")]:
        _exchange(withdrawal, days_ago=days_ago, body=f'{{"status":"{status}"}}')
    _exchange(withdrawal, days_ago=45, body='{"status":"Success"}')
    _exchange(withdrawal, days_ago=44, body='{"status":"Pending"}')

    assert venue_exchanges_compact(using="default") == 3

    assert _bodies(withdrawal) == [
        ("submit", '{"ok":1}'),
        ("status", '{"status":"Pending"}'),
        ("status", '{"status":"Success"}'),
        ("status", '{"status":"Pending"}'),
    ]


def test_polls_within_retention_stay_even_when_identical(retention):
    withdrawal = WithdrawalFactory()
    for days_ago in (3, 2, 1):
        _exchange(withdrawal, days_ago=days_ago, body='{"status":"Pending"}')

    assert venue_exchanges_compact(using="default") == 0
    assert len(_bodies(withdrawal)) == 3


def test_the_retention_is_configurable(retention):
    withdrawal = WithdrawalFactory()
    for days_ago in (3, 2, 1):
        _exchange(withdrawal, days_ago=days_ago, body='{"status":"Pending"}')
    retention.EVIDENCE_POLL_RETENTION_DAYS = 0

    assert venue_exchanges_compact(using="default") == 2


def test_submissions_and_reconciliations_are_kept_in_full(retention):
    withdrawal = WithdrawalFactory()
    for days_ago in (60, 59, 58):
        _exchange(withdrawal, days_ago=days_ago, body="{}", purpose="submit")
        _exchange(withdrawal, days_ago=days_ago, body="[]", purpose="reconcile")

    assert venue_exchanges_compact(using="default") == 0
    assert len(_bodies(withdrawal)) == 6


def test_polls_compare_only_within_one_withdrawal_and_one_endpoint(retention):
    first, second = WithdrawalFactory(), WithdrawalFactory()
    same = '{"status":"Pending"}'
    _exchange(first, days_ago=40, body=same)
    _exchange(second, days_ago=39, body=same)
    _exchange(first, days_ago=38, body=same, url="/0/private/WithdrawInfo")

    assert venue_exchanges_compact(using="default") == 0


def test_a_poll_without_an_answer_is_never_dropped(retention):
    withdrawal = WithdrawalFactory()
    for days_ago in (40, 39):
        VenueExchange.objects.create(
            withdrawal=withdrawal,
            purpose="status",
            started_at=timezone.now() - timedelta(days=days_ago),
            method="POST",
            url=HISTORY,
            error="no response received",
        )

    assert venue_exchanges_compact(using="default") == 0


def test_beat_runs_the_compaction_on_the_owner_connection(retention, monkeypatch):
    entry = next(
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "withdrawals.tasks.compact_venue_evidence"
    )
    assert entry["schedule"] > 0
    seen = {}
    monkeypatch.setattr(
        tasks.evidence, "venue_exchanges_compact", lambda *, using: seen.setdefault("using", using)
    )
    retention.EVIDENCE_COMPACT_DATABASE = "owner"

    tasks.compact_venue_evidence()

    assert seen == {"using": "owner"}


def _production(tmp_path, **env: str):
    code = (
        "from django.conf import settings as s; "
        "print(s.EVIDENCE_COMPACT_DATABASE, sorted(s.DATABASES))"
    )
    return manage("shell", "-v", "0", "-c", code, env={**PRODUCTION_ENV, **env}, tmp_path=tmp_path)


def test_production_compacts_on_the_owner_connection_when_its_url_is_given(tmp_path):
    owner = "postgres://countersign_owner:secret@127.0.0.1:1/countersign"
    result = _production(tmp_path, COUNTERSIGN_OWNER_DATABASE_URL=owner)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["owner", "['default',", "'owner']"]

    without = _production(tmp_path)
    assert without.returncode == 0, without.stderr
    assert without.stdout.split() == ["default", "['default']"]


def test_production_refuses_an_owner_url_that_is_not_postgresql(tmp_path):
    result = _production(tmp_path, COUNTERSIGN_OWNER_DATABASE_URL="sqlite:///owner.sqlite3")
    assert result.returncode != 0
    assert "COUNTERSIGN_OWNER_DATABASE_URL must point at PostgreSQL" in result.stderr
