"""Withdrawal pages: full pages, htmx partials, actions, authorisation and CSRF.

Personas: alice and frank request, bob approves, dave audits, mallory holds no role.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests.conftest import verified_login
from tests.factories import VENUE_KIND, WithdrawalFactory, good_amount
from venues.sandbox.registry import sandbox_for
from withdrawals import services
from withdrawals.models import Approval, State, WithdrawalRequest

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def url(name: str, pk: int | None = None) -> str:
    return reverse(f"withdrawals:{name}", kwargs={"pk": pk} if pk is not None else None)


def form_for(address, amount=None) -> dict[str, str]:
    amount = good_amount(address.venue) if amount is None else amount
    return {"venue": str(address.venue_id), "address": str(address.pk), "amount": f"{amount:f}"}


def requested(alice, address) -> WithdrawalRequest:
    return services.withdrawal_create(
        requester=alice,
        venue_id=address.venue_id,
        address_id=address.pk,
        amount=good_amount(address.venue),
    )


def is_partial(response) -> bool:
    return b"<html" not in response.content and b"<body" not in response.content


# --- full pages and partials ----------------------------------------------------------------


def test_alice_dashboard_shows_her_requests(alice_client, alice, address):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    response = alice_client.get(url("dashboard"))
    assert response.status_code == 200
    assert b"<html" in response.content
    assert (
        f"#{withdrawal.pk}".encode() in response.content
        or url("detail", withdrawal.pk).encode() in response.content
    )


def test_bob_dashboard_queue_holds_alices_pending_withdrawal(bob_client, alice, address):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    response = bob_client.get(url("dashboard"))
    assert response.status_code == 200
    assert url("detail", withdrawal.pk).encode() in response.content


def test_list_full_page_and_rows_partial(bob_client, alice, address):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    full = bob_client.get(url("list"))
    assert (
        full.status_code == 200
        and b"<html" in full.content
        and b"<h1>Withdrawals</h1>" in full.content
    )
    partial = bob_client.get(url("list"), {"state": "pending_approval"}, **HX)
    assert partial.status_code == 200 and is_partial(partial)
    assert url("detail", withdrawal.pk).encode() in partial.content
    none = bob_client.get(url("list"), {"state": "completed"}, **HX)
    assert url("detail", withdrawal.pk).encode() not in none.content
    assert b"No withdrawals match" in none.content


@pytest.mark.parametrize(
    "junk", [{"state": "nonsense"}, {"before": "-5"}, {"venue": "abc"}, {"before": "x"}]
)
def test_list_with_junk_filters_is_not_a_500(bob_client, junk):
    assert bob_client.get(url("list"), junk).status_code == 200


def test_list_paginates_by_keyset(bob_client, alice, address, monkeypatch):
    from withdrawals import selectors

    monkeypatch.setattr(selectors, "PAGE_SIZE", 2)
    rows = [WithdrawalFactory(requested_by=alice, whitelisted_address=address) for _ in range(3)]
    first = bob_client.get(url("list"))
    assert f"before={rows[1].pk}".encode() in first.content
    older = bob_client.get(url("list"), {"before": rows[1].pk}, **HX)
    assert url("detail", rows[0].pk).encode() in older.content
    assert url("detail", rows[2].pk).encode() not in older.content


def test_detail_full_page_and_status_partial(alice_client, alice, address):
    withdrawal = WithdrawalFactory(
        requested_by=alice, whitelisted_address=address, state=State.SUBMITTED
    )
    full = alice_client.get(url("detail", withdrawal.pk))
    assert full.status_code == 200 and b"<html" in full.content
    assert f"Withdrawal #{withdrawal.pk}".encode() in full.content
    assert f"{url('status', withdrawal.pk)}?poll=1".encode() in full.content  # venue holds it
    live = alice_client.get(url("status", withdrawal.pk), {"poll": "1"}, **HX)
    assert live.status_code == 200 and is_partial(live)
    assert b"Submitted" in live.content


@pytest.mark.parametrize(
    "state", [State.APPROVED, State.SUBMITTING, State.SUBMITTED, State.OUTCOME_UNKNOWN]
)
def test_the_page_polls_while_the_venue_holds_it(alice_client, alice, address, state):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address, state=state)
    page = alice_client.get(url("detail", withdrawal.pk))
    assert url("status", withdrawal.pk).encode() in page.content
    assert alice_client.get(url("status", withdrawal.pk), **HX).status_code == 200


@pytest.mark.parametrize(
    "state",
    [
        State.PENDING_APPROVAL,
        State.COMPLETED,
        State.FAILED,
        State.REJECTED,
        State.CANCELLED,
        State.EXPIRED,
    ],
)
def test_the_page_does_not_poll_when_nothing_moves_on_its_own(alice_client, alice, address, state):
    """Pending approval waits for people (up to days): polling it would only keep an idle
    session busy. A final state never changes."""
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address, state=state)
    page = alice_client.get(url("detail", withdrawal.pk))
    assert url("status", withdrawal.pk).encode() not in page.content
    live = alice_client.get(url("status", withdrawal.pk), **HX)
    assert live.status_code == 286  # htmx stops polling; the last render is still swapped in
    assert withdrawal.get_state_display().encode() in live.content


def test_new_withdrawal_form_and_addresses_partial(alice_client, address):
    page = alice_client.get(url("new"))
    assert page.status_code == 200 and b"<html" in page.content
    assert address.venue.name.encode() in page.content
    assert (
        url("preview").encode() in page.content and b'hx-trigger="input delay:400ms' in page.content
    )
    partial = alice_client.get(url("addresses"), {"venue": address.venue_id}, **HX)
    assert partial.status_code == 200 and is_partial(partial)
    assert address.label.encode() in partial.content
    empty = alice_client.get(url("addresses"), {"venue": "abc"}, **HX)
    assert empty.status_code == 200 and address.label.encode() not in empty.content


def test_live_preview_shows_the_venue_quote_and_saves_nothing(alice_client, address):
    before = (WithdrawalRequest.objects.count(), AuditEvent.objects.count())
    response = alice_client.post(url("preview"), form_for(address), **HX)
    assert response.status_code == 200 and is_partial(response)
    assert b"Venue fee" in response.content and b"Received" in response.content
    # Every figure names its asset.
    assert re.search(rb"<dt>Received</dt><dd class=\"mono\">[\d,.]+ BTC</dd>", response.content)
    assert (WithdrawalRequest.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0", b"greater than zero"),
        ("-1", b"greater than zero"),
        ("abc", b"plain number"),
        ("1e3", b"plain number"),
        ("1" * 50, b"digits before the point"),
        ("1" * 21 + ".5", b"digits before the point"),
        ("0." + "1" * 30, b"decimal places"),
    ],
)
def test_live_preview_bad_amount_shows_the_error(alice_client, address, amount, text):
    response = alice_client.post(url("preview"), form_for(address) | {"amount": amount}, **HX)
    assert response.status_code == 200
    assert b'class="error"' in response.content and text in response.content


def test_live_preview_without_an_address_gives_a_hint(alice_client, address):
    response = alice_client.post(url("preview"), {"venue": address.venue_id, "amount": "1"}, **HX)
    assert response.status_code == 200 and b"Choose a venue and an address" in response.content


def test_alice_requests_through_the_form(alice_client, alice, address):
    response = alice_client.post(url("new"), form_for(address) | {"note": "rebalance"})
    withdrawal = WithdrawalRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == url("detail", withdrawal.pk)
    assert withdrawal.requested_by == alice and withdrawal.note == "rebalance"
    assert withdrawal.state == State.PENDING_APPROVAL


def _error_after_field(content: bytes, field: str) -> bool:
    """An error block follows the field's own input (rendered next to it)."""
    html = content.decode()
    at = html.find(f'name="{field}"')
    return at != -1 and re.search(r'class="error"', html[at : at + 3000]) is not None


@pytest.mark.parametrize(
    "amount",
    [
        "0",
        "-3",
        "abc",
        "0.000000000000000000001",
        "99999999",
        "1,5",
        "",
        "9" * 50,
        "\u0663",
        "\uff13",
    ],
)
def test_bad_amount_is_shown_next_to_the_field_and_nothing_saved(alice_client, address, amount):
    before = (WithdrawalRequest.objects.count(), AuditEvent.objects.count())
    response = alice_client.post(url("new"), form_for(address) | {"amount": amount})
    assert response.status_code == 400
    assert _error_after_field(response.content, "amount")
    assert (WithdrawalRequest.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize("tampered", ["999999", "abc", "-1", ""])
def test_tampered_address_is_refused_on_the_form(alice_client, address, tampered):
    response = alice_client.post(url("new"), form_for(address) | {"address": tampered})
    assert response.status_code == 400
    assert b"whitelisted address" in response.content
    assert WithdrawalRequest.objects.count() == 0


def test_tampered_venue_is_refused_on_the_form(alice_client, address):
    response = alice_client.post(url("new"), form_for(address) | {"venue": "999999"})
    assert response.status_code == 400
    assert WithdrawalRequest.objects.count() == 0


@pytest.mark.parametrize("persona", ["bob", "dave", "mallory"])
def test_only_requesters_reach_the_new_withdrawal_pages(request, persona, address, login):
    client = login(request.getfixturevalue(persona))
    assert client.get(url("new")).status_code == 403
    assert client.post(url("new"), form_for(address)).status_code == 403
    assert client.post(url("preview"), form_for(address), **HX).status_code == 403
    assert client.get(url("addresses"), {"venue": address.venue_id}, **HX).status_code == 403
    assert WithdrawalRequest.objects.count() == 0


# --- approve / reject / cancel --------------------------------------------------------------


def test_bob_loads_a_quote_then_confirms_and_it_completes(
    bob_client, bob, alice, address, fresh_code, django_capture_on_commit_callbacks
):
    withdrawal = requested(alice, address)
    page = bob_client.get(url("detail", withdrawal.pk))
    assert (
        b"Approve or reject" in page.content
        and url("quote", withdrawal.pk).encode() in page.content
    )
    panel = bob_client.post(url("quote", withdrawal.pk), **HX)
    assert panel.status_code == 200 and is_partial(panel)
    assert b"Fresh quote" in panel.content and b"Confirm &amp; submit" in panel.content
    quote_id = re.search(rb'name="quote" value="(\d+)"', panel.content).group(1).decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = bob_client.post(
            url("approve", withdrawal.pk), {"code": fresh_code(bob), "quote": quote_id}, **HX
        )
    assert response.status_code == 204
    assert response["HX-Redirect"] == url("detail", withdrawal.pk)
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.COMPLETED
    assert sandbox_for(VENUE_KIND).count_withdrawals() == 1
    page = bob_client.get(url("detail", withdrawal.pk))
    assert withdrawal.venue_reference.encode() in page.content
    assert b"withdrawal.completed" in page.content


def test_bob_wrong_code_is_shown_in_the_panel_and_changes_nothing(
    bob_client, bob, alice, address, fresh_code
):
    withdrawal = requested(alice, address)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    good = fresh_code(bob)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    response = bob_client.post(
        url("approve", withdrawal.pk), {"code": wrong, "quote": quote.pk}, **HX
    )
    assert response.status_code == 200 and is_partial(response)
    assert b"wrong or was already used" in response.content
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.PENDING_APPROVAL and Approval.objects.count() == 0
    full = bob_client.post(url("approve", withdrawal.pk), {"code": "", "quote": quote.pk})
    assert full.status_code == 400


def test_bob_approve_without_quote_is_refused(bob_client, bob, alice, address, fresh_code):
    withdrawal = requested(alice, address)
    response = bob_client.post(
        url("approve", withdrawal.pk), {"code": fresh_code(bob), "quote": "abc"}
    )
    assert response.status_code == 400
    assert Approval.objects.count() == 0


def test_alice_may_not_approve_even_with_a_code(
    alice_client, alice, frank, address, fresh_code, login
):
    own = requested(alice, address)
    response = alice_client.post(url("approve", own.pk), {"code": fresh_code(alice), "quote": "1"})
    assert response.status_code == 403
    assert alice_client.post(url("quote", own.pk)).status_code == 403
    assert alice_client.post(url("reject", own.pk), {"reason": "x"}).status_code == 403
    page = alice_client.get(url("detail", own.pk))
    assert b"Approve or reject" not in page.content
    own.refresh_from_db()
    assert own.state == State.PENDING_APPROVAL


def test_bob_rejects_with_a_reason(bob_client, alice, address):
    withdrawal = requested(alice, address)
    missing = bob_client.post(url("reject", withdrawal.pk), {"reason": ""}, **HX)
    assert missing.status_code == 200 and b'class="error"' in missing.content
    response = bob_client.post(url("reject", withdrawal.pk), {"reason": "Not budgeted"})
    assert response.status_code == 302
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.REJECTED and withdrawal.reason == "Not budgeted"


def test_alice_cancels_her_own(alice_client, alice, address):
    withdrawal = requested(alice, address)
    response = alice_client.post(url("cancel", withdrawal.pk), **HX)
    assert response.status_code == 204 and response["HX-Redirect"] == url("detail", withdrawal.pk)
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.CANCELLED
    again = alice_client.post(url("cancel", withdrawal.pk), follow=True)
    assert again.status_code == 200 and b"too late" in again.content


def test_bob_cannot_cancel_alices(bob_client, alice, address):
    withdrawal = requested(alice, address)
    assert bob_client.post(url("cancel", withdrawal.pk)).status_code == 403
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.PENDING_APPROVAL


def test_alice_requotes_via_post(alice_client, alice, address):
    withdrawal = requested(alice, address)
    response = alice_client.post(url("requote", withdrawal.pk))
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="withdrawal.requoted").count() == 1


@pytest.mark.parametrize("name", ["quote", "approve", "reject", "cancel", "requote"])
def test_get_on_a_post_only_url_is_405(bob_client, alice, address, name):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    snapshot = list(WithdrawalRequest.objects.values())
    assert bob_client.get(url(name, withdrawal.pk)).status_code == 405
    assert list(WithdrawalRequest.objects.values()) == snapshot


def test_get_on_preview_is_405(alice_client):
    assert alice_client.get(url("preview")).status_code == 405


# --- object-level authorisation -------------------------------------------------------------


@pytest.mark.parametrize("name", ["detail", "status"])
def test_frank_cannot_see_alices_withdrawal(frank_client, alice, address, name):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    assert frank_client.get(url(name, withdrawal.pk)).status_code == 404
    listing = frank_client.get(url("list"))
    assert url("detail", withdrawal.pk).encode() not in listing.content


@pytest.mark.parametrize("name", ["cancel", "requote", "approve", "reject", "quote"])
def test_frank_tampered_id_on_actions_is_404(frank_client, alice, address, name):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    assert (
        frank_client.post(url(name, withdrawal.pk), {"reason": "x", "code": "123456"}).status_code
        == 404
    )
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.PENDING_APPROVAL


@pytest.mark.parametrize("persona", ["alice", "bob", "dave", "mallory"])
def test_nonexistent_withdrawal_is_404(request, persona, login):
    client = login(request.getfixturevalue(persona))
    assert client.get(url("detail", 987654)).status_code == 404
    assert client.post(url("cancel", 987654)).status_code == 404


def test_mallory_sees_no_withdrawal(mallory_client, alice, address):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    assert mallory_client.get(url("detail", withdrawal.pk)).status_code == 404
    assert url("detail", withdrawal.pk).encode() not in mallory_client.get(url("list")).content


def test_dave_sees_every_withdrawal_but_no_action(dave_client, alice, address):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    page = dave_client.get(url("detail", withdrawal.pk))
    assert page.status_code == 200
    assert b"Approve or reject" not in page.content and b"Cancel withdrawal" not in page.content
    for name in ("quote", "approve", "reject", "cancel", "requote"):
        assert dave_client.post(url(name, withdrawal.pk), {"reason": "x"}).status_code == 403
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.PENDING_APPROVAL


# --- CSRF -----------------------------------------------------------------------------------


def test_csrf_token_travels_in_hx_headers_and_is_enforced(alice, address):
    client = verified_login(Client(enforce_csrf_checks=True), alice)
    withdrawal = requested(alice, address)
    page = client.get(url("detail", withdrawal.pk))
    match = re.search(rb"<body hx-headers='\{\"X-CSRFToken\": \"([A-Za-z0-9]+)\"\}'>", page.content)
    assert match, "the <body> must carry the CSRF token for htmx"
    token = match.group(1).decode()

    refused = client.post(url("cancel", withdrawal.pk), **HX)
    assert refused.status_code == 403
    forged = client.post(url("cancel", withdrawal.pk), HTTP_X_CSRFTOKEN="x" * 64, **HX)
    assert forged.status_code == 403
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.PENDING_APPROVAL

    accepted = client.post(url("cancel", withdrawal.pk), HTTP_X_CSRFTOKEN=token, **HX)
    assert accepted.status_code == 204
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.CANCELLED


def test_csrf_preview_needs_the_token_too(alice, address):
    client = verified_login(Client(enforce_csrf_checks=True), alice)
    page = client.get(url("new"))
    token = re.search(rb'"X-CSRFToken": "([A-Za-z0-9]+)"', page.content).group(1).decode()
    assert client.post(url("preview"), form_for(address), **HX).status_code == 403
    ok = client.post(url("preview"), form_for(address), HTTP_X_CSRFTOKEN=token, **HX)
    assert ok.status_code == 200 and b"Venue fee" in ok.content


def test_pages_send_a_content_security_policy(alice_client):
    response = alice_client.get(url("dashboard"))
    policy = response.headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers.get("X-Frame-Options") == "DENY"
