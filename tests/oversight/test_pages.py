"""The auditors' pages: dashboard, history with keyset pages, evidence pack, exports.

Personas: dave audits (may read everything), bob approves and alice requests (may not open
the audit pages), carol governs the whitelist.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.http import StreamingHttpResponse
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AuditEvent, ChainCheck
from audit.services import audit_chain_verify, audit_event_record
from oversight import selectors as audit_selectors
from oversight.services import daily_totals_refresh
from tests.factories import PASSWORD, WithdrawalFactory, good_amount
from withdrawals import selectors as withdrawal_selectors
from withdrawals import services
from withdrawals.models import State, VenueExchange

pytestmark = pytest.mark.django_db


def record(n: int, **kwargs) -> None:
    with transaction.atomic():
        for i in range(n):
            audit_event_record(action=kwargs.get("action", "test.event"), message=f"e{i}")


def streamed(response) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


# --- who may -------------------------------------------------------------------------------


AUDIT_PAGES = ("/audit/", "/audit/events/", "/audit/whitelist/", "/audit/export/audit.csv")


@pytest.mark.parametrize("path", AUDIT_PAGES)
def test_dave_reads_every_audit_page_and_bob_and_alice_are_refused(
    path, dave_client, bob_client, alice_client
):
    assert dave_client.get(path).status_code == 200
    assert bob_client.get(path).status_code == 403
    assert alice_client.get(path).status_code == 403


@pytest.mark.parametrize("path", AUDIT_PAGES)
def test_audit_pages_refuse_every_mutating_method_even_for_dave(path, dave_client):
    for method in ("post", "put", "patch", "delete"):
        assert getattr(dave_client, method)(path).status_code == 405


def test_dave_sees_the_audit_link_and_bob_does_not(dave_client, bob_client):
    assert 'href="/audit/"' in dave_client.get("/").content.decode()
    assert 'href="/audit/"' not in bob_client.get("/").content.decode()


# --- dashboard ------------------------------------------------------------------------------


def test_dashboard_shows_the_latest_chain_check_and_when_it_ran(dave_client):
    page = dave_client.get("/audit/").content.decode()
    assert "Not verified yet" in page
    record(2)
    audit_chain_verify()
    page = dave_client.get("/audit/").content.decode()
    assert "Intact" in page and "Last verified" in page
    ChainCheck.objects.create(
        checked_at=timezone.now() + timedelta(seconds=1),
        ok=False,
        events_checked=1,
        first_broken_seq=2,
        message="event #2 was altered",
    )
    assert "BROKEN at event #2" in dave_client.get("/audit/").content.decode()


def test_dashboard_charts_are_svg_without_inline_styles(dave_client, address):
    WithdrawalFactory(whitelisted_address=address, state=State.COMPLETED)
    WithdrawalFactory(whitelisted_address=address, state=State.COMPLETED, amount=Decimal("0.5"))
    WithdrawalFactory(whitelisted_address=address, state=State.REJECTED)
    daily_totals_refresh(days=None)
    page = dave_client.get("/audit/?days=7").content.decode()
    assert "<svg" in page and "<rect" in page
    assert "style=" not in page and "<script" not in page.split("</head>")[1]
    assert f"{address.venue.name} · {address.asset}" in page
    assert "Withdrawals by state" in page and "Rejected: 1" in page and "Completed: 2" in page


def test_dashboard_with_a_bad_period_falls_back_to_thirty_days(dave_client):
    response = dave_client.get("/audit/?days=abc")
    assert response.status_code == 200 and "last 30 days" in response.content.decode()


# --- history ------------------------------------------------------------------------------


def test_event_history_pages_newest_first_with_a_keyset(dave_client, monkeypatch):
    record(7)
    monkeypatch.setattr(audit_selectors, "PAGE_SIZE", 3)
    first = dave_client.get("/audit/events/", {"action": "test."})
    seqs = [e.seq for e in first.context["rows"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 3
    before = first.context["next_before"]
    assert before == seqs[-1]
    second = dave_client.get("/audit/events/", {"action": "test.", "before": before})
    assert [e.seq for e in second.context["rows"]] == [s - 3 for s in seqs]


def test_event_history_filters_by_user_and_date(dave_client, dave):
    with transaction.atomic():
        audit_event_record(action="test.mine", actor=dave)
        audit_event_record(action="test.other")
    rows = dave_client.get("/audit/events/", {"user": "dave", "action": "test."}).context["rows"]
    assert [e.action for e in rows] == ["test.mine"]
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert dave_client.get("/audit/events/", {"since": tomorrow}).context["rows"] == []


def test_event_history_reports_a_reversed_date_range_and_shows_no_rows(dave_client):
    record(2)
    reversed_range = {"since": "2030-01-02", "until": "2030-01-01"}
    for headers in ({}, {"HX-Request": "true"}):
        response = dave_client.get("/audit/events/", reversed_range, headers=headers)
        assert response.status_code == 200
        history = _history_part(response.content.decode())
        assert "The start date is after the end date." in history
        assert response.context["rows"] == [] and "<tbody" not in history
        assert "/audit/export/" not in history


def _history_part(page: str) -> str:
    """The part of the page a filter swaps: from its opening tag to the end of the page."""
    start = page.index('<div id="history"')
    return page[start:]


def test_a_filter_swaps_rows_count_and_export_links_together(dave_client):
    record(3, action="test.kept")
    record(2, action="test.dropped")
    response = dave_client.get(
        "/audit/events/", {"action": "test.kept"}, headers={"HX-Request": "true"}
    )
    part = response.content.decode()
    assert part.lstrip().startswith('<div id="history"') and "<form" not in part
    assert "3 events shown" in part
    assert "/audit/export/audit.csv?action=test.kept" in part
    assert "/audit/export/audit.json?action=test.kept" in part
    assert part.count('title="test.kept"') == 3 and "test.dropped" not in part


@pytest.mark.parametrize("path", ["/audit/events/", "/audit/whitelist/"])
def test_every_history_filter_has_a_visible_label_and_dates_say_their_format(
    path, dave_client, venue
):
    response = dave_client.get(path)
    page = response.content.decode()
    for field in response.context["form"].visible_fields():
        assert f'<label for="{field.id_for_label}"' in page, field.name
    assert page.count("YYYY-MM-DD") >= 2
    assert "None" not in page


def test_dashboard_period_shows_the_period_it_charts(dave_client):
    for query, days in (({}, 30), ({"days": "7"}, 7), ({"days": "abc"}, 30), ({"days": "90"}, 90)):
        page = dave_client.get("/audit/", query).content.decode()
        assert f"last {days} days" in page
        assert f'<option value="{days}" selected>' in page
        assert page.count(" selected>") == 1
        assert '<label for="id_days"' in page


@pytest.mark.parametrize(
    "url,module,make",
    [
        ("/audit/events/", audit_selectors, "events"),
        ("/audit/whitelist/", audit_selectors, "whitelist"),
        ("/withdrawals/", withdrawal_selectors, "withdrawals"),
    ],
)
def test_history_pages_run_the_same_queries_whatever_the_page_size(
    url, module, make, dave_client, address, monkeypatch, django_assert_num_queries
):
    for _ in range(12):
        WithdrawalFactory(whitelisted_address=address)
    with transaction.atomic():
        for _ in range(12):
            audit_event_record(action="whitelist.test", target=address)
    counts = []
    for size in (2, 10):
        monkeypatch.setattr(module, "PAGE_SIZE", size)
        dave_client.get(url)  # warm the session and permission caches the same way
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            response = dave_client.get(url)
        assert len(response.context["rows"]) == size
        counts.append(len(captured))
        joined = " ".join(q["sql"].upper() for q in captured.captured_queries)
        assert "OFFSET" not in joined and "COUNT(" not in joined
    assert counts[0] == counts[1]
    with django_assert_num_queries(counts[0]):
        dave_client.get(url)


def test_whitelist_history_lists_only_address_changes_and_filters_by_venue_and_asset(
    dave_client, address, venue
):
    with transaction.atomic():
        audit_event_record(action="whitelist.approved", target=address, message="approved")
        audit_event_record(action="withdrawal.requested", message="not an address")
    rows = dave_client.get("/audit/whitelist/").context["rows"]
    assert {e.action for e in rows} == {"whitelist.approved"}
    assert dave_client.get("/audit/whitelist/", {"venue": venue.pk}).context["rows"]
    assert dave_client.get("/audit/whitelist/", {"asset": "NOPE"}).context["rows"] == []


def test_withdrawal_list_filters_by_requester_dates_and_amounts(dave_client, alice, address):
    small = WithdrawalFactory(whitelisted_address=address, requested_by=alice, amount=Decimal("1"))
    big = WithdrawalFactory(whitelisted_address=address, amount=Decimal("50"))

    def ids(**query) -> set[int]:
        return {w.pk for w in dave_client.get("/withdrawals/", query).context["rows"]}

    assert ids(user="alice") == {small.pk}
    assert ids(amount_min="10") == {big.pk}
    assert ids(amount_max="10") == {small.pk}
    today = timezone.localdate().isoformat()
    assert ids(since=today, until=today) == {small.pk, big.pk}
    response = dave_client.get("/withdrawals/", {"amount_min": "9", "amount_max": "1"})
    assert "The minimum amount is above the maximum." in response.content.decode()


# --- evidence -------------------------------------------------------------------------------


@pytest.fixture
def completed(alice, bob, address, fresh_code, django_capture_on_commit_callbacks):
    withdrawal = services.withdrawal_create(
        requester=alice,
        venue_id=address.venue_id,
        address_id=address.pk,
        amount=good_amount(address.venue),
        ip="198.51.100.7",
    )
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    with django_capture_on_commit_callbacks(execute=True):
        services.withdrawal_approve(
            withdrawal_id=withdrawal.pk,
            approver=bob,
            code=fresh_code(bob),
            quote_id=quote.pk,
            ip="203.0.113.9",
        )
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.COMPLETED
    return withdrawal


def test_evidence_pack_holds_the_whole_story(dave_client, completed, address):
    response = dave_client.get(f"/audit/withdrawals/{completed.pk}/evidence/")
    assert response.status_code == 200
    pack = response.context["pack"]
    assert pack["withdrawal"]["request_id"] == str(completed.request_id)
    assert pack["payload_hash"] == completed.payload_hash == pack["payload_hash_recomputed"]
    assert len(pack["quotes"]) == 2 and sum(q["confirmed"] for q in pack["quotes"]) == 1
    (approval,) = pack["approvals"]
    assert approval["approver"] == "bob" and approval["ip"] == "203.0.113.9"
    assert approval["totp_step"] == completed.approvals.get().totp_step
    assert pack["venue"]["reference"] == completed.venue_reference
    assert [s["to"] for s in pack["status_history"]] == ["submitting", "submitted", "completed"]
    hashes = [e["hash"] for e in pack["audit_events"]]
    mine = AuditEvent.objects.filter(object_type="withdrawalrequest", object_id=str(completed.pk))
    assert hashes == list(mine.order_by("seq").values_list("hash", flat=True))
    purposes = {x["purpose"] for x in pack["venue_exchanges"]}
    assert "submit" in purposes
    page = response.content.decode()
    assert completed.venue_reference in page and "TOTP step" in page


def test_evidence_never_shows_venue_credentials(dave_client, completed):
    creds = completed.venue.credentials
    assert VenueExchange.objects.filter(withdrawal=completed).exists()
    page = dave_client.get(f"/audit/withdrawals/{completed.pk}/evidence/").content.decode()
    download = dave_client.get(f"/audit/withdrawals/{completed.pk}/evidence.json").content
    for text in (page, download.decode()):
        assert creds.api_key not in text and creds.api_secret not in text
        assert "[redacted]" in text


def test_evidence_json_download_is_audited(dave_client, completed):
    response = dave_client.get(f"/audit/withdrawals/{completed.pk}/evidence.json")
    assert response["Content-Disposition"].startswith("attachment;")
    pack = json.loads(response.content)
    assert pack["withdrawal"]["id"] == completed.pk and pack["audit_events"]
    event = AuditEvent.objects.filter(action="export.created").get()
    assert event.actor_name == "dave"
    assert event.data["dataset"] == "evidence" and event.data["filters"] == {
        "withdrawal": completed.pk
    }


def test_evidence_is_for_auditors_only_and_unknown_ids_are_404(dave_client, bob_client, completed):
    assert bob_client.get(f"/audit/withdrawals/{completed.pk}/evidence/").status_code == 403
    assert dave_client.get("/audit/withdrawals/999999/evidence/").status_code == 404


# --- exports --------------------------------------------------------------------------------


def test_withdrawal_csv_export_is_streamed_filtered_and_audited(dave_client, alice, address):
    mine = WithdrawalFactory(whitelisted_address=address, requested_by=alice)
    WithdrawalFactory(whitelisted_address=address)
    response = dave_client.get("/audit/export/withdrawals.csv", {"user": "alice"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(streamed(response))))
    assert [int(r["id"]) for r in rows] == [mine.pk]
    assert rows[0]["amount"] == format(mine.amount.normalize(), "f")
    assert rows[0]["requested_by"] == "alice"
    event = AuditEvent.objects.get(action="export.created")
    assert event.actor_name == "dave"
    assert event.data == {
        "dataset": "withdrawals",
        "format": "csv",
        "filters": {"user": "alice"},
        "rows": 1,
    }


def test_audit_json_export_carries_the_chain_hashes(dave_client):
    record(3)
    response = dave_client.get("/audit/export/audit.json", {"action": "test."})
    assert response["Content-Type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in streamed(response).splitlines()]
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows) and len(rows) == 3
    assert all(len(r["hash"]) == 64 and len(r["prev_hash"]) == 64 for r in rows)
    assert rows[1]["prev_hash"] == rows[0]["hash"]


def test_export_with_a_bad_filter_is_refused_with_a_message(dave_client):
    response = dave_client.get("/audit/export/withdrawals.csv", {"since": "yesterday"})
    assert response.status_code == 400 and b"Enter a valid date" in response.content
    assert not AuditEvent.objects.filter(action="export.created").exists()


def test_unknown_export_is_404(dave_client):
    assert dave_client.get("/audit/export/passwords.csv").status_code == 404
    assert dave_client.get("/audit/export/audit.xml").status_code == 404


def test_csv_export_defuses_spreadsheet_formulas(dave_client):
    with transaction.atomic():
        audit_event_record(action="test.formula", message="=HYPERLINK(1)")
    text = streamed(dave_client.get("/audit/export/audit.csv", {"action": "test.formula"}))
    assert "'=HYPERLINK(1)" in text


def test_login_page_password_is_never_exported(client, dave_client, alice):
    client.post("/accounts/login/", {"username": "alice", "password": "not-" + PASSWORD})
    text = streamed(dave_client.get("/audit/export/audit.csv"))
    assert "login.failed" in text and PASSWORD not in text


def test_dave_finds_the_evidence_pack_from_the_withdrawal_page(dave_client, bob_client, address):
    withdrawal = WithdrawalFactory(whitelisted_address=address)
    link = f'href="/audit/withdrawals/{withdrawal.pk}/evidence/"'
    assert link in dave_client.get(f"/withdrawals/{withdrawal.pk}/").content.decode()
    assert link not in bob_client.get(f"/withdrawals/{withdrawal.pk}/").content.decode()


def test_event_history_shows_the_label_and_keeps_the_name_in_a_title(dave_client, address):
    with transaction.atomic():
        audit_event_record(action=AuditAction.WHITELIST_APPROVED, target=address)
    page = dave_client.get("/audit/events/").content.decode()
    assert '<td title="whitelist.approved">Address approved</td>' in page


def test_a_date_range_pages_on_time_and_seq_without_gaps_or_repeats(dave_client, monkeypatch):
    record(7, action="test.ranged")
    monkeypatch.setattr(audit_selectors, "PAGE_SIZE", 3)
    today = timezone.localdate().isoformat()
    query = {"action": "test.ranged", "since": today, "until": today}
    seen, before = [], None
    while True:
        response = dave_client.get(
            "/audit/events/", {**query, **({"before": before} if before else {})}
        )
        seen += [e.seq for e in response.context["rows"]]
        before = response.context["next_before"]
        if before is None:
            break
    expected = AuditEvent.objects.filter(action="test.ranged").order_by("-created_at", "-seq")
    assert seen == list(expected.values_list("seq", flat=True)) and len(seen) == 7
