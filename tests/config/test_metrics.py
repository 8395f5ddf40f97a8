"""/metrics: Prometheus text for configured scrapers only, with what the runbook alerts on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audit.models import ChainCheck
from tests.withdrawals.test_services import approved, create
from withdrawals import tasks
from withdrawals.models import State, WithdrawalRequest

pytestmark = pytest.mark.django_db
TOKEN = "scrape-token-0123456789"


@pytest.fixture
def scraper(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []


def samples(response) -> dict[tuple[str, tuple], float]:
    text = response.content.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_nobody_scrapes_without_a_token_or_an_allowed_address(client, alice_client, scraper):
    assert client.get("/metrics").status_code == 403
    # Being signed in is not enough: metrics are for the monitoring system.
    assert alice_client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 403


def test_nothing_configured_means_nobody(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 403


def test_the_bearer_token_or_an_allowed_address_scrapes(client, scraper, settings):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 403


def test_a_mistyped_allowed_address_closes_the_endpoint_without_a_500(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.0.0.300"]
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.1").status_code == 403


def test_what_the_runbook_alerts_on_is_exported(
    client, scraper, alice, bob, address, code_now, settings
):
    waiting = create(alice, address)
    sent = approved(create(alice, address), bob, code_now(bob))
    tasks.submit_withdrawal.apply(args=[sent.pk])
    unknown = create(alice, address)
    WithdrawalRequest.objects.filter(pk=unknown.pk).update(
        state=State.OUTCOME_UNKNOWN, unknown_since=timezone.now() - timedelta(minutes=20)
    )
    ChainCheck.objects.create(checked_at=timezone.now(), ok=False, message="broken at 2")
    client.get("/healthz")

    got = samples(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}))

    assert waiting.state == State.PENDING_APPROVAL
    assert got[("countersign_approvals_waiting", ())] == 1
    submitted_state = WithdrawalRequest.objects.get(pk=sent.pk).state
    assert got[("countersign_withdrawals", (("state", submitted_state),))] == 1
    assert got[("countersign_withdrawals", (("state", "outcome_unknown"),))] == 1
    assert got[("countersign_outbox_depth", ())] == 0
    assert 1190 < got[("countersign_oldest_outcome_unknown_seconds", ())] < 1300
    assert got[("countersign_audit_chain_ok", ())] == 0
    assert got[("countersign_approval_to_submitted_seconds_count", ())] == 1
    assert got[("countersign_approval_to_submitted_seconds_bucket", (("le", "+Inf"),))] == 1
    assert ("countersign_submitted_to_final_seconds_count", ()) in got
    venue_calls = {
        labels: value
        for (name, labels), value in got.items()
        if name == "countersign_venue_calls_total"
    }
    assert any(dict(labels)["venue"] == address.venue.kind for labels in venue_calls)
    assert any(
        name == "countersign_request_seconds_count" and dict(labels)["view"] == "healthz"
        for name, labels in got
    )


def test_the_call_budget_left_per_kraken_key(client, scraper, settings):
    from tests.factories import VenueFactory

    settings.VENUE_KRAKEN_RATE_TIER = "starter"
    venue = VenueFactory(kind="kraken", name="Kraken main")
    got = samples(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}))
    assert got[("countersign_venue_budget_left", (("venue", venue.name),))] == 15
