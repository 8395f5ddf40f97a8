"""Prometheus metrics at /metrics, for the operator's dashboards and alerts (docs/operations.md).

Counters and histograms of events (requests, venue calls) live in the process that sees them.
With several gunicorn workers and a Celery worker on one host, set PROMETHEUS_MULTIPROC_DIR to
one directory shared by all of them, so the scrape sums every process. Everything that the
database already knows (approvals waiting, states, latencies, outbox, unknown outcomes, the
chain check) is read at scrape time, so it is right however many processes there are.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from audit.models import ChainCheck
from config.middleware import trusted_networks
from core.metrics import INSTRUMENTS
from venues.budget import CallBudget
from venues.kraken.client import RATE_TIERS
from venues.models import Venue
from venues.nonces import nonce_scope
from withdrawals.models import State, SubmissionIntent, WithdrawalRequest

log = logging.getLogger(__name__)

# Approval to submission is seconds; submission to final can be hours (network confirmations).
LATENCY_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600)
# The latency histograms describe the recent past: a scrape reads only this window, however
# long the history.
LATENCY_WINDOW = timedelta(hours=24)


def _histogram(name: str, doc: str, values: Iterable[float]) -> HistogramMetricFamily:
    counts = [0] * len(LATENCY_BUCKETS)
    total, count = 0.0, 0
    for value in values:
        count += 1
        total += value
        for i, bound in enumerate(LATENCY_BUCKETS):
            if value <= bound:
                counts[i] += 1
    buckets = [(str(float(b)), c) for b, c in zip(LATENCY_BUCKETS, counts, strict=True)]
    buckets.append(("+Inf", count))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=total)


class DatabaseCollector(Collector):
    """Gauges and histograms read from the database at each scrape."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        by_state = GaugeMetricFamily(
            "countersign_withdrawals", "Withdrawals by state.", labels=["state"]
        )
        counts = dict(
            WithdrawalRequest.objects.order_by()
            .values("state")
            .annotate(n=Count("pk"))
            .values_list("state", "n")
        )
        for state in State.values:
            by_state.add_metric([state], counts.get(state, 0))
        yield by_state
        yield GaugeMetricFamily(
            "countersign_approvals_waiting",
            "Withdrawals waiting for approval.",
            value=counts.get(State.PENDING_APPROVAL, 0),
        )
        yield GaugeMetricFamily(
            "countersign_outbox_depth",
            "Submission intents not yet done (approved withdrawals not yet handed to a venue).",
            value=SubmissionIntent.objects.filter(done_at__isnull=True).count(),
        )
        oldest = (
            WithdrawalRequest.objects.filter(state=State.OUTCOME_UNKNOWN)
            .exclude(unknown_since=None)
            .order_by("unknown_since")
            .values_list("unknown_since", flat=True)
            .first()
        )
        yield GaugeMetricFamily(
            "countersign_oldest_outcome_unknown_seconds",
            "Age of the oldest withdrawal whose outcome is unknown (0: none).",
            value=(now - oldest).total_seconds() if oldest else 0.0,
        )
        yield GaugeMetricFamily(
            "countersign_attention_open",
            "Withdrawals raised on the Needs attention page.",
            value=WithdrawalRequest.objects.exclude(attention_since=None)
            .filter(state=State.OUTCOME_UNKNOWN)
            .count(),
        )
        # approved_at: when the approval that reached the quorum was given.
        approved = (
            WithdrawalRequest.objects.filter(submitted_at__gte=now - LATENCY_WINDOW)
            .exclude(approved_at=None)
            .values_list("approved_at", "submitted_at")
        )
        yield _histogram(
            "countersign_approval_to_submitted_seconds",
            "From the last approval to the venue's acceptance (submitted in the last 24 hours).",
            (max((s - a).total_seconds(), 0.0) for a, s in approved.iterator()),
        )
        finished = (
            WithdrawalRequest.objects.filter(finished_at__gte=now - LATENCY_WINDOW)
            .exclude(submitted_at=None)
            .values_list("submitted_at", "finished_at")
        )
        yield _histogram(
            "countersign_submitted_to_final_seconds",
            "From the venue's acceptance to completed or failed (finished in the last 24 hours).",
            (max((f - s).total_seconds(), 0.0) for s, f in finished.iterator()),
        )
        check = ChainCheck.objects.order_by("-checked_at").first()
        yield GaugeMetricFamily(
            "countersign_audit_chain_ok",
            "Last audit chain verification: 1 intact, 0 broken, -1 never run.",
            value=-1 if check is None else int(check.ok),
        )
        yield GaugeMetricFamily(
            "countersign_audit_chain_checked_age_seconds",
            "Seconds since the last audit chain verification (-1: never run).",
            value=-1 if check is None else (now - check.checked_at).total_seconds(),
        )
        yield self._budgets()

    def _budgets(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "countersign_venue_budget_left",
            "Units left of the venue key's call counter (Kraken's), as we track it.",
            labels=["venue"],
        )
        rule = RATE_TIERS.get(settings.VENUE_KRAKEN_RATE_TIER)
        if rule is None:
            return family
        for venue in Venue.objects.filter(kind="kraken", enabled=True):
            try:
                api_key = venue.credentials.api_key
            except Exception:  # a venue whose credentials cannot be read has no budget to show
                log.warning("metrics: credentials of venue %s unreadable", venue.pk)
                continue
            level = CallBudget(nonce_scope(venue.kind, api_key), rule).level()
            family.add_metric([venue.name], max(rule.capacity - level, 0.0))
        return family


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in INSTRUMENTS:
            registry.register(collector)
    registry.register(DatabaseCollector())
    return registry


def allowed(request: HttpRequest) -> bool:
    """A scrape from METRICS_ALLOWED_IPS, or one bearing METRICS_TOKEN; nobody by default."""
    token = settings.METRICS_TOKEN
    auth = request.headers.get("Authorization", "")
    if token and auth.startswith("Bearer ") and hmac.compare_digest(auth[7:], token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    try:
        networks = trusted_networks(settings.METRICS_ALLOWED_IPS)
    except ImproperlyConfigured:
        # A mistyped entry must not open the endpoint, nor turn every scrape into a 500.
        log.error("METRICS_ALLOWED_IPS holds an entry that is not an address or CIDR block")
        return False
    return any(address in net for net in networks)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
