"""Structured logs: the request id and user of a page, the withdrawal id and attempt of a task,
and venue calls logged by venue, endpoint, outcome and duration without any credential."""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.http import HttpRequest, HttpResponse
from django.urls import path

import config.urls
from config.observability import ContextFilter, JsonFormatter
from tests.config.test_production_settings import PRODUCTION_ENV, manage
from tests.withdrawals.test_services import approved, create
from venues.http import endpoint_label
from withdrawals import tasks
from withdrawals.models import State, WithdrawalRequest

pytestmark = pytest.mark.django_db


class Capture(logging.Handler):
    """Every record, filtered as production's console handler is, formatted as JSON."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def captured():
    handler = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_a_proxy_request_id_is_kept_and_echoed(client):
    response = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.91"})
    assert response["X-Request-ID"] == "lb-7f3a.91"


@pytest.mark.parametrize("sent", [None, "", "two words", "x" * 200, 'a"}\n{"level":"x'])
def test_a_missing_or_malformed_request_id_is_replaced_by_a_new_one(client, sent):
    headers = {"X-Request-ID": sent} if sent is not None else {}
    response = client.get("/healthz", headers=headers)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def logging_view(request: HttpRequest) -> HttpResponse:
    logging.getLogger("tests.page").info("inside the view")
    return HttpResponse("ok")


urlpatterns = [path("log-here", logging_view), *config.urls.urlpatterns]


def test_a_page_logs_its_request_id_and_the_signed_in_user(alice, alice_client, captured, settings):
    settings.ROOT_URLCONF = __name__
    response = alice_client.get("/log-here", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200
    logging.getLogger("tests.page").info("outside any request")
    inside, outside = captured.parsed()[-2:]
    assert inside["message"] == "inside the view"
    assert (inside["request_id"], inside["user_id"]) == ("req-42", alice.pk)
    assert "request_id" not in outside
    assert "user_id" not in outside


def test_a_task_names_its_withdrawal_and_attempt_and_venue_calls_carry_no_credential(
    alice, bob, address, code_now, captured
):
    withdrawal = approved(create(alice, address), bob, code_now(bob))
    credentials = withdrawal.venue.credentials
    captured.lines.clear()

    tasks.submit_withdrawal.apply(args=[withdrawal.pk])

    assert WithdrawalRequest.objects.get(pk=withdrawal.pk).state in (
        State.SUBMITTED,
        State.COMPLETED,
    )
    lines = captured.parsed()
    assert lines
    assert all(line.get("withdrawal_id") == withdrawal.pk for line in lines), lines
    calls = [line for line in lines if line["logger"] == "venues.http"]
    assert calls, lines
    for call in calls:
        assert call["attempt"] == 1
        assert call["venue"] == withdrawal.venue.kind
        assert call["endpoint"].startswith("/")
        assert call["outcome"].startswith("http_")
        assert call["duration_ms"] >= 0
    # The canary: the venue key and secret the calls were signed with appear on no line.
    text = "\n".join(captured.lines)
    for secret in (credentials.api_key, credentials.api_secret, credentials.passphrase):
        if secret:
            assert secret not in text


def test_a_task_about_no_withdrawal_names_none(captured):
    tasks.sweep_submission_intents.apply()
    logging.getLogger("tests.after").info("after")
    assert "withdrawal_id" not in captured.parsed()[-1]


def test_production_writes_json_lines_and_the_demo_readable_ones(tmp_path):
    code = "import logging; logging.getLogger('countersign.probe').warning('probe line')"
    production = manage("shell", "-c", code, env=PRODUCTION_ENV, tmp_path=tmp_path)
    assert production.returncode == 0, production.stderr
    line = next(ln for ln in production.stderr.splitlines() if "probe line" in ln)
    assert json.loads(line)["logger"] == "countersign.probe"

    demo = manage("shell", "-c", code, env={"LOG_FORMAT": "plain"}, tmp_path=tmp_path)
    line = next(ln for ln in demo.stderr.splitlines() if "probe line" in ln)
    assert "WARNING countersign.probe probe line" in line


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/0/private/WithdrawInfo", "/0/private/WithdrawInfo"),
        (
            "/api/v1/accounting/account/100200300/request/withdraw",
            "/api/v1/accounting/account/{id}/request/withdraw",
        ),
        ("/api/v1/withdrawals/5c2dc64e03aa675aa263f1ac", "/api/v1/withdrawals/{id}"),
        ("/b2b/funds/withdrawals/methods/", "/b2b/funds/withdrawals/methods/"),
    ],
)
def test_venue_endpoints_are_labelled_without_ids(path, label):
    assert endpoint_label(path) == label
