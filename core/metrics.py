"""The event instruments of /metrics (config.metrics serves them with what the database knows).

Here, on the lowest floor, so the venue clients and the request middleware can count without
importing the apps whose tables the scrape reads.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUEST_SECONDS = Histogram(
    "countersign_request_seconds", "Time to answer a request, by view.", ["view", "method"]
)
VENUE_CALLS = Counter(
    "countersign_venue_calls_total",
    "Calls to venues by venue kind, endpoint and outcome.",
    ["venue", "endpoint", "outcome"],
)
VENUE_CALL_SECONDS = Histogram(
    "countersign_venue_call_seconds", "Duration of venue calls.", ["venue", "endpoint"]
)
INSTRUMENTS = (REQUEST_SECONDS, VENUE_CALLS, VENUE_CALL_SECONDS)


def observe_request(*, view: str, method: str, seconds: float) -> None:
    REQUEST_SECONDS.labels(view=view, method=method).observe(seconds)


def observe_venue_call(*, venue: str, endpoint: str, outcome: str, seconds: float) -> None:
    VENUE_CALLS.labels(venue=venue, endpoint=endpoint, outcome=outcome).inc()
    VENUE_CALL_SECONDS.labels(venue=venue, endpoint=endpoint).observe(seconds)
