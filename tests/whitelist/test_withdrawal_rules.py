"""The whitelist rules that bind withdrawals."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory, VenueFactory, WhitelistedAddressFactory, good_amount
from tests.whitelist.conftest import embed_repoint_key
from venues.sandbox.registry import sandbox_for
from whitelist import services as whitelist_services
from whitelist.models import AddressState
from withdrawals import services
from withdrawals.models import State, WithdrawalRequest
from withdrawals.services import WithdrawalError

pytestmark = pytest.mark.django_db


def create(requester, address):
    return services.withdrawal_create(
        requester=requester,
        venue_id=address.venue_id,
        address_id=address.pk,
        amount=good_amount(address.venue),
    )


def approve(withdrawal, approver, code):
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=approver)
    return services.withdrawal_approve(
        withdrawal_id=withdrawal.pk, approver=approver, code=code, quote_id=quote.pk
    )


def sent(withdrawal):
    return WithdrawalRequest.objects.get(pk=withdrawal.pk)


@pytest.mark.parametrize("state", [AddressState.PROPOSED, AddressState.COOLING_OFF])
def test_alice_cannot_use_an_address_that_is_not_active(alice, venue, state):
    address = WhitelistedAddressFactory(venue=venue, state=state)
    with pytest.raises(WithdrawalError, match="not active"):
        create(alice, address)
    assert not WithdrawalRequest.objects.exists()


def test_an_address_revoked_after_the_request_cannot_be_approved(
    alice, bob, carol, address, fresh_code, django_capture_on_commit_callbacks
):
    withdrawal = create(alice, address)
    whitelist_services.address_revoke(
        address_id=address.pk, admin=carol, reason="compromised", code=fresh_code(carol)
    )
    with pytest.raises(WithdrawalError, match="no longer active"):
        approve(withdrawal, bob, fresh_code(bob))
    assert sent(withdrawal).state == State.PENDING_APPROVAL
    assert not sent(withdrawal).approvals.exists()


def test_an_address_revoked_after_approval_is_never_submitted(
    alice, bob, carol, address, fresh_code, monkeypatch
):
    monkeypatch.setattr(services, "_on_commit_enqueue", lambda *a, **k: None)
    withdrawal = approve(create(alice, address), bob, fresh_code(bob))
    assert withdrawal.state == State.APPROVED
    whitelist_services.address_revoke(
        address_id=address.pk, admin=carol, reason="compromised", code=fresh_code(carol)
    )
    services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert sent(withdrawal).state == State.FAILED
    assert "revoked" in sent(withdrawal).status_detail
    assert not sent(withdrawal).venue_reference


def test_ward_whitelisted_the_address_so_cannot_approve_the_first_withdrawal_to_it(
    alice, bob, ward, venue, fresh_code, monkeypatch
):
    monkeypatch.setattr(services, "_on_commit_enqueue", lambda *a, **k: None)
    address = WhitelistedAddressFactory(venue=venue, proposed_by=ward)
    first = create(alice, address)
    with pytest.raises(WithdrawalError, match="first withdrawal"):
        approve(first, ward, fresh_code(ward))
    assert sent(first).state == State.PENDING_APPROVAL
    assert not sent(first).approvals.exists()
    approve(first, bob, fresh_code(bob))
    services.withdrawal_submit(withdrawal_id=first.pk)
    assert sent(first).state in {State.SUBMITTED, State.COMPLETED}
    # Once someone independent released a payment to it, ward may approve later ones.
    second = create(alice, address)
    assert approve(second, ward, fresh_code(ward)).state == State.APPROVED


def test_the_approver_of_the_address_is_bound_too(alice, venue, fresh_code):
    wendy = UserFactory(username="wendy", roles=["whitelist_admin", "approver"])
    address = WhitelistedAddressFactory(venue=venue, approved_by=wendy)
    withdrawal = create(alice, address)
    with pytest.raises(WithdrawalError, match="proposed or approved this destination"):
        approve(withdrawal, wendy, fresh_code(wendy))


def test_venue_key_repointed_before_submission_fails_it_without_a_venue_call(
    alice, bob, fresh_code, monkeypatch
):
    monkeypatch.setattr(services, "_on_commit_enqueue", lambda *a, **k: None)
    venue = VenueFactory(kind="kraken_embed")
    address = WhitelistedAddressFactory(venue=venue, destination=0)
    withdrawal = approve(create(alice, address), bob, fresh_code(bob))
    embed_repoint_key(venue, key=address.venue_key, address="1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2")
    services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    after = sent(withdrawal)
    assert after.state == State.FAILED
    assert "Not sent" in after.status_detail
    assert "points to 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2" in after.status_detail
    assert sandbox_for("kraken_embed").count_withdrawals() == 0
    address.refresh_from_db()
    assert "points to" in address.drift_detail
    assert address.state == AddressState.ACTIVE


def test_kraken_spot_key_repointed_before_submission_fails_it_without_a_venue_call(
    alice, bob, fresh_code, monkeypatch
):
    """Kraken's Withdraw would refuse a mismatched ``address`` itself; we look first anyway."""
    monkeypatch.setattr(services, "_on_commit_enqueue", lambda *a, **k: None)
    venue = VenueFactory(kind="kraken")
    address = WhitelistedAddressFactory(venue=venue, destination=0)
    withdrawal = approve(create(alice, address), bob, fresh_code(bob))
    sandbox = sandbox_for("kraken")
    api_key = venue.credentials.api_key
    with sandbox.store.tx() as tx:
        saved = sandbox.account(tx, api_key)["addresses"]
    for entry in saved:
        if entry["key"] == address.venue_key:
            entry["address"] = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"
    sandbox.account_upsert(api_key, addresses=saved)

    services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    after = sent(withdrawal)
    assert after.state == State.FAILED
    assert "points to 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2" in after.status_detail
    assert sandbox.count_withdrawals() == 0


def test_venue_that_cannot_list_addresses_defers_the_submission(
    alice, bob, fresh_code, monkeypatch
):
    monkeypatch.setattr(services, "_on_commit_enqueue", lambda *a, **k: None)
    venue = VenueFactory(kind="kraken_embed")
    address = WhitelistedAddressFactory(venue=venue, destination=0)
    withdrawal = approve(create(alice, address), bob, fresh_code(bob))
    sandbox = sandbox_for("kraken_embed")
    sandbox.inject("http_error", path="/b2b/funds/withdrawals/addresses", status=503)
    services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    after = sent(withdrawal)
    assert after.state == State.APPROVED
    assert "Waiting to check the destination" in after.status_detail
    assert after.intent.not_before is not None
    assert sandbox.count_withdrawals() == 0
    services.withdrawal_submit(withdrawal_id=withdrawal.pk)  # the venue answers again
    assert sent(withdrawal).state in {State.SUBMITTED, State.COMPLETED}
    assert sandbox.count_withdrawals() == 1
