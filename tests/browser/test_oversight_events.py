"""Dave, the auditor, narrows the audit events in real Chromium and exports what he sees: the
filter swaps rows, count and export links together, and the file holds exactly those rows."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from audit.models import AuditEvent
from audit.services import audit_event_record
from tests.browser.conftest import SERVER_LOCK
from tests.browser.test_flow import TIMEOUT_MS, sign_in


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_audit_events_export_after_filtering_holds_exactly_the_filtered_rows(
    live_server, browser, screenshots
):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    with SERVER_LOCK, transaction.atomic():
        for i in range(4):
            audit_event_record(action="test.kept", message=f"kept {i}")
            audit_event_record(action="test.dropped", message=f"dropped {i}")
    base = live_server.url
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, base, "dave")

    page.get_by_role("link", name="Audit", exact=True).click()
    page.get_by_role("link", name="Audit events").click()
    today = timezone.localdate().isoformat()
    page.get_by_label("Action starts with").fill("test.kept")
    page.get_by_label("From (YYYY-MM-DD)").fill(today)
    page.get_by_label("To (YYYY-MM-DD)").fill(today)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#history-count")).to_have_text("4 events shown")
    # The change events of typing and the Filter click each send a request: wait for the last
    # one's address, not just for a count that the first one may already show.
    expect(page).to_have_url(re.compile(rf"since={today}"))
    assert "action=test.kept" in page.url
    page.screenshot(path=screenshots / "oversight-01-filtered.png", full_page=True)

    with SERVER_LOCK:
        expected = list(
            AuditEvent.objects.filter(action="test.kept")
            .order_by("seq")
            .values_list("seq", flat=True)
        )
    with page.expect_download() as csv_download:
        page.locator("#export-csv").click()
    rows = list(csv.DictReader(io.StringIO(open(csv_download.value.path()).read())))  # noqa: SIM115
    assert [int(r["seq"]) for r in rows] == expected
    assert {r["action"] for r in rows} == {"test.kept"}

    with page.expect_download() as json_download:
        page.locator("#export-json").click()
    lines = open(json_download.value.path()).read().splitlines()  # noqa: SIM115
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == expected

    # A reversed range: the message, no rows, and nothing to export.
    page.get_by_label("From (YYYY-MM-DD)").fill("2030-01-02")
    page.get_by_label("To (YYYY-MM-DD)").fill("2030-01-01")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#history .error")).to_contain_text("The start date is after the end date.")
    expect(page.locator("#history tbody tr")).to_have_count(0)
    expect(page.locator("#export-csv")).to_have_count(0)
    context.close()
