"""The "Needs attention" page: who sees it, who may settle, and that it takes two people.

Personas: bob and bianca approve, carol is a whitelist admin, dave audits, alice requested the
withdrawal and may not settle it, mallory has no role.
"""

from __future__ import annotations

import pytest

from tests.withdrawals.test_exactly_once import reconcile, submit, unknown_after_timeout
from tests.withdrawals.test_services import approved, create, sandbox
from withdrawals.models import Resolution, State

pytestmark = pytest.mark.django_db

PAGE = "/withdrawals/attention/"


@pytest.fixture
def unknown(alice, bob, address, fresh_code, settings):
    settings.RECONCILE_ATTENTION_SECONDS = 0
    withdrawal = unknown_after_timeout(
        approved(create(alice, address), bob, fresh_code(bob)), "timeout_before_accept"
    )
    sandbox().inject("error", path=sandbox().HISTORY_PATH, error="EAPI:Invalid key")
    return reconcile(withdrawal)


def finding(code: str, **extra: str) -> dict[str, str]:
    return {
        "finding": "never_sent",
        "reference": "",
        "evidence": "Venue withdrawal list for the last day shows nothing for this request id.",
        "code": code,
        **extra,
    }


def test_approvers_admins_and_auditors_see_the_queue_with_the_reason(
    unknown, bob_client, carol_client, dave_client
):
    for client in (bob_client, carol_client, dave_client):
        page = client.get(PAGE)
        assert page.status_code == 200
        assert f"Withdrawal #{unknown.pk}" in page.text
        assert "EAPI:Invalid key" in page.text


def test_only_people_who_may_settle_get_the_form(unknown, bob_client, dave_client):
    assert "Record finding" in bob_client.get(PAGE).text
    assert "Record finding" not in dave_client.get(PAGE).text


def test_requesters_and_strangers_are_refused(unknown, alice_client, mallory_client):
    assert alice_client.get(PAGE).status_code == 403
    assert mallory_client.get(PAGE).status_code == 403


def test_two_people_settle_never_sent_through_the_page(
    unknown, bob, bianca, bob_client, login, fresh_code
):
    response = bob_client.post(f"/withdrawals/{unknown.pk}/resolve/", finding(fresh_code(bob)))
    assert response.status_code == 302
    resolution = Resolution.objects.get(withdrawal=unknown)
    page = bob_client.get(PAGE).text
    assert "Waiting for a second person" in page
    assert "Confirm: confirmed never sent" not in page  # not for the one who recorded it

    bianca_client = login(bianca)
    assert "Confirm: confirmed never sent" in bianca_client.get(PAGE).text
    response = bianca_client.post(
        f"/withdrawals/resolutions/{resolution.pk}/confirm/",
        {"code": fresh_code(bianca)},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "Confirmed and applied." in response.text
    unknown.refresh_from_db()
    assert unknown.state == State.APPROVED
    assert submit(unknown).state == State.SUBMITTED
    assert sandbox().count_withdrawals() == 1


def test_the_recorder_cannot_confirm_her_own_finding_by_posting(
    unknown, bob, bob_client, fresh_code
):
    bob_client.post(f"/withdrawals/{unknown.pk}/resolve/", finding(fresh_code(bob)))
    resolution = Resolution.objects.get(withdrawal=unknown)

    response = bob_client.post(
        f"/withdrawals/resolutions/{resolution.pk}/confirm/", {"code": fresh_code(bob)}
    )

    assert response.status_code == 400
    assert "a second person must confirm it" in response.text
    unknown.refresh_from_db()
    assert unknown.state == State.OUTCOME_UNKNOWN


def test_a_wrong_code_saves_nothing_and_says_so(unknown, bob_client):
    response = bob_client.post(f"/withdrawals/{unknown.pk}/resolve/", finding("000000"))
    assert response.status_code == 400
    assert "wrong" in response.text
    assert not Resolution.objects.exists()


def test_found_without_a_reference_is_refused_next_to_the_field(
    unknown, bob, bob_client, fresh_code
):
    response = bob_client.post(
        f"/withdrawals/{unknown.pk}/resolve/",
        finding(fresh_code(bob), finding="found"),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "Give the venue&#x27;s reference" in response.text
    assert not Resolution.objects.exists()


def test_the_auditor_cannot_post_a_finding(unknown, dave, dave_client, fresh_code):
    response = dave_client.post(f"/withdrawals/{unknown.pk}/resolve/", finding(fresh_code(dave)))
    assert response.status_code == 403
    assert not Resolution.objects.exists()


def test_tampered_ids_are_not_found(unknown, bob_client):
    assert bob_client.post("/withdrawals/999999/resolve/", {}).status_code == 404
    assert bob_client.post("/withdrawals/resolutions/999999/confirm/", {}).status_code == 404
    assert bob_client.post("/withdrawals/duplicates/999999/acknowledge/", {}).status_code == 404
