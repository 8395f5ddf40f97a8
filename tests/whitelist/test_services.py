"""The whitelist lifecycle and every attack of the issue: each refused with a clear message,
leaving the whitelist as it was."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import TotpRefused
from audit.models import AuditEvent
from tests.factories import VenueFactory, WhitelistedAddressFactory
from tests.whitelist.conftest import (
    LOOKALIKE_ETH,
    NEW_ETH,
    OTHER_ETH,
    kraken_save_key,
    propose,
)
from whitelist import services, tasks
from whitelist.models import AddressSource, AddressState, WhitelistedAddress
from whitelist.services import WhitelistError

pytestmark = pytest.mark.django_db


def snapshot() -> tuple:
    """Everything a refused change must leave alone (TOTP refusals add their own event)."""
    return (
        list(WhitelistedAddress.objects.order_by("pk").values()),
        AuditEvent.objects.exclude(action="totp.refused").count(),
    )


def actions(address) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="whitelistedaddress", object_id=str(address.pk))
        .order_by("seq")
        .values_list("action", flat=True)
    )


def approve(address, user, code, **kwargs):
    return services.address_approve(address_id=address.pk, approver=user, code=code, **kwargs)


# --- the lifecycle --------------------------------------------------------------------------


def test_carol_proposes_with_totp_and_nothing_is_usable_yet(carol, venue, new_key, fresh_code):
    address = propose(carol, venue, fresh_code(carol))
    assert address.state == AddressState.PROPOSED
    assert address.proposed_by == carol
    assert address.approved_by is None
    assert actions(address) == ["whitelist.proposed"]
    event = AuditEvent.objects.get(action="whitelist.proposed")
    assert event.actor == carol
    assert event.ip == "198.51.100.20"
    assert event.data["address"] == NEW_ETH
    assert event.data["totp_step"]


def test_erin_approves_and_with_no_cooling_off_it_is_active(proposal, erin, fresh_code):
    address = approve(proposal, erin, fresh_code(erin))
    assert address.state == AddressState.ACTIVE
    assert address.approved_by == erin
    assert address.active_from <= timezone.now()
    assert actions(address) == ["whitelist.proposed", "whitelist.approved", "whitelist.activated"]


def test_cooling_off_then_activation_by_the_periodic_task(proposal, erin, fresh_code, settings):
    settings.WHITELIST_COOLING_OFF_SECONDS = 3600
    address = approve(proposal, erin, fresh_code(erin))
    assert address.state == AddressState.COOLING_OFF
    assert address.active_from > timezone.now() + timedelta(minutes=59)
    tasks.activate_due_addresses()
    assert WhitelistedAddress.objects.get(pk=address.pk).state == AddressState.COOLING_OFF
    # The hour passes.
    WhitelistedAddress.objects.filter(pk=address.pk).update(
        active_from=timezone.now() - timedelta(seconds=1)
    )
    tasks.activate_due_addresses()
    assert WhitelistedAddress.objects.get(pk=address.pk).state == AddressState.ACTIVE
    assert actions(address)[-1] == "whitelist.activated"


def test_dave_the_auditor_vetoes_during_cooling_off_with_totp_and_a_reason(
    proposal, erin, dave, fresh_code, settings
):
    settings.WHITELIST_COOLING_OFF_SECONDS = 3600
    approve(proposal, erin, fresh_code(erin))
    address = services.address_veto(
        address_id=proposal.pk, user=dave, reason="Not our vendor", code=fresh_code(dave)
    )
    assert address.state == AddressState.VETOED
    assert address.ended_by == dave
    assert address.end_reason == "Not our vendor"
    assert actions(address)[-1] == "whitelist.vetoed"
    tasks.activate_due_addresses()
    assert WhitelistedAddress.objects.get(pk=address.pk).state == AddressState.VETOED


def test_veto_needs_a_reason_and_totp(proposal, dave, fresh_code):
    before = snapshot()
    with pytest.raises(WhitelistError, match="reason"):
        services.address_veto(address_id=proposal.pk, user=dave, reason=" ", code="123456")
    with pytest.raises(TotpRefused):
        services.address_veto(address_id=proposal.pk, user=dave, reason="no", code="")
    assert snapshot() == before


def test_alice_the_requester_cannot_veto(proposal, alice, fresh_code):
    before = snapshot()
    with pytest.raises(PermissionDenied):
        services.address_veto(address_id=proposal.pk, user=alice, reason="x", code="1")
    assert snapshot() == before


def test_an_active_address_cannot_be_vetoed_only_revoked(proposal, erin, carol, fresh_code):
    approve(proposal, erin, fresh_code(erin))
    before = snapshot()
    with pytest.raises(WhitelistError, match="Revoke it instead"):
        services.address_veto(address_id=proposal.pk, user=carol, reason="x", code="1")
    assert snapshot() == before
    address = services.address_revoke(
        address_id=proposal.pk, admin=carol, reason="Vendor changed bank", code=fresh_code(carol)
    )
    assert address.state == AddressState.REVOKED
    assert actions(address)[-1] == "whitelist.revoked"


def test_revoke_needs_totp_and_an_admin(address, carol, dave, fresh_code):
    before = snapshot()
    with pytest.raises(PermissionDenied):
        services.address_revoke(address_id=address.pk, admin=dave, reason="x", code="1")
    with pytest.raises(TotpRefused):
        services.address_revoke(address_id=address.pk, admin=carol, reason="x", code="000000")
    assert snapshot() == before


def test_an_edit_is_a_revoke_plus_a_new_proposal(address, carol, venue, fresh_code):
    """There is no service that changes an address: the old one is revoked, a new one
    proposed and it takes the whole four-eyes path again."""
    assert not [n for n in dir(services) if n.startswith("address_") and "update" in n]
    services.address_revoke(
        address_id=address.pk, admin=carol, reason="edit", code=fresh_code(carol)
    )
    kraken_save_key(venue, key="btc-cold-wallet-2", address=NEW_ETH)
    new = propose(carol, venue, fresh_code(carol), venue_key="btc-cold-wallet-2")
    assert new.pk != address.pk
    assert new.state == AddressState.PROPOSED
    assert WhitelistedAddress.objects.get(pk=address.pk).state == AddressState.REVOKED


# --- approval attacks -----------------------------------------------------------------------


def test_carol_cannot_approve_her_own_proposal(proposal, carol, fresh_code):
    before = snapshot()
    with pytest.raises(WhitelistError, match="you proposed"):
        approve(proposal, carol, fresh_code(carol))
    assert snapshot() == before


def test_self_approval_is_refused_by_the_database_constraint(proposal, carol):
    with pytest.raises(IntegrityError), transaction.atomic():
        WhitelistedAddress.objects.filter(pk=proposal.pk).update(approved_by=carol)


def test_approval_without_totp_is_refused(proposal, erin):
    before = snapshot()
    with pytest.raises(TotpRefused, match="6-digit"):
        approve(proposal, erin, "")
    assert snapshot() == before


def test_replayed_totp_is_refused(proposal, erin, carol, venue, fresh_code, code_now):
    kraken_save_key(venue, key="eth-other", address=OTHER_ETH)
    second = propose(
        carol, venue, fresh_code(carol), address=OTHER_ETH, venue_key="eth-other", label="Other"
    )
    code = fresh_code(erin)
    approve(proposal, erin, code)
    before = snapshot()
    with pytest.raises(TotpRefused, match="already used"):
        approve(second, erin, code)
    assert snapshot() == before


@pytest.mark.parametrize("who", ["dave", "alice", "bob", "mallory"])
def test_auditor_requester_approver_or_nobody_cannot_approve(proposal, personas, who, code_now):
    user = personas[who]
    before = snapshot()
    with pytest.raises(PermissionDenied):
        approve(proposal, user, code_now(user))
    assert snapshot() == before


@pytest.mark.parametrize("end", ["veto", "revoke"])
def test_approving_a_vetoed_or_revoked_address_is_refused(
    proposal, carol, erin, dave, fresh_code, settings, end
):
    if end == "veto":
        services.address_veto(address_id=proposal.pk, user=dave, reason="no", code=fresh_code(dave))
        state = "vetoed"
    else:
        settings.WHITELIST_COOLING_OFF_SECONDS = 3600
        approve(proposal, erin, fresh_code(erin))
        services.address_revoke(
            address_id=proposal.pk, admin=carol, reason="no", code=fresh_code(carol)
        )
        state = "revoked"
    before = snapshot()
    with pytest.raises(WhitelistError, match=f"is {state}, not waiting"):
        approve(proposal, erin, fresh_code(erin))
    assert snapshot() == before


# --- proposal attacks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"address": "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}, "address"),  # bad EIP-55
        ({"address": "0x123"}, "address"),
        ({"network": "Solana"}, "network"),
        (
            {"asset": "XRP", "network": "Ripple", "address": "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"},
            "memo",
        ),
        ({"label": ""}, "label"),
        ({"asset": "DOGE"}, "asset"),  # a tampered asset
        ({"asset": "<script>"}, "asset"),
    ],
)
def test_malformed_proposals_are_refused_and_nothing_is_saved(
    carol, venue, new_key, code_now, overrides, field
):
    before = snapshot()
    with pytest.raises(WhitelistError) as info:
        propose(carol, venue, code_now(carol), **overrides)
    assert info.value.field == field
    assert info.value.message
    assert snapshot() == before


@pytest.mark.parametrize("tampered", ["999999", "abc", None, "-1"])
def test_tampered_venue_id_is_refused(carol, venue, code_now, tampered):
    before = snapshot()
    with pytest.raises(WhitelistError, match="Choose a venue") as info:
        services.address_propose(
            proposer=carol, venue_id=tampered, asset="ETH", network="Ethereum",
            address=NEW_ETH, label="x", venue_key="eth-new", code=code_now(carol),
        )  # fmt: skip
    assert info.value.field == "venue"
    assert snapshot() == before


def test_disabled_venue_is_refused(carol, venue, new_key, code_now):
    venue.enabled = False
    venue.save()
    with pytest.raises(WhitelistError, match="Choose a venue"):
        propose(carol, venue, code_now(carol))


def test_duplicate_is_refused_even_in_another_case(address, carol, code_now):
    before = snapshot()
    with pytest.raises(WhitelistError, match="already on the whitelist"):
        propose(
            carol,
            address.venue,
            code_now(carol),
            asset=address.asset,
            network=address.network,
            address=address.address.upper(),  # bech32 in upper case is the same address
            venue_key=address.venue_key,
        )
    assert snapshot() == before


def test_a_revoked_address_can_be_proposed_again(address, carol, fresh_code):
    services.address_revoke(address_id=address.pk, admin=carol, reason="x", code=fresh_code(carol))
    again = propose(
        carol,
        address.venue,
        fresh_code(carol),
        asset=address.asset,
        network=address.network,
        address=address.address,
        venue_key=address.venue_key,
    )
    assert again.state == AddressState.PROPOSED


def test_lookalike_is_refused_unless_acknowledged_then_the_approver_must_acknowledge(
    carol, erin, venue, new_key, fresh_code, code_now
):
    original = propose(carol, venue, fresh_code(carol))
    kraken_save_key(venue, key="eth-poison", address=LOOKALIKE_ETH)
    before = snapshot()
    with pytest.raises(WhitelistError, match="looks like") as info:
        propose(
            carol,
            venue,
            code_now(carol),
            address=LOOKALIKE_ETH,
            venue_key="eth-poison",
            label="ETH supplier",
        )
    assert info.value.field == "acknowledge_lookalike"
    assert original.address in info.value.message
    assert snapshot() == before

    poison = propose(
        carol,
        venue,
        fresh_code(carol),
        address=LOOKALIKE_ETH,
        venue_key="eth-poison",
        label="ETH supplier",
        acknowledge_lookalike=True,
    )
    assert AuditEvent.objects.filter(action="whitelist.proposed").last().data["lookalike_of"] == [
        original.pk
    ]
    before = snapshot()
    with pytest.raises(WhitelistError, match="looks like"):
        approve(poison, erin, code_now(erin))
    assert snapshot() == before
    approved = approve(poison, erin, fresh_code(erin), acknowledge_lookalike=True)
    assert approved.state == AddressState.ACTIVE
    event = AuditEvent.objects.filter(action="whitelist.approved").last()
    assert event.data["lookalike_acknowledged"] is True


# --- checked against the venue ----------------------------------------------------------------


def test_proposal_whose_venue_key_is_unknown_or_points_elsewhere_is_refused(carol, venue, code_now):
    before = snapshot()
    with pytest.raises(WhitelistError, match="no saved address under the key"):
        propose(carol, venue, code_now(carol))
    kraken_save_key(venue, key="eth-new", address=OTHER_ETH)
    with pytest.raises(WhitelistError, match="points to") as info:
        propose(carol, venue, code_now(carol))
    assert info.value.field == "venue_key"
    with pytest.raises(WhitelistError, match="give the name"):
        propose(carol, venue, code_now(carol), venue_key="")
    assert snapshot() == before


def test_approval_is_refused_when_the_key_was_repointed_after_proposal(
    proposal, erin, venue, code_now
):
    kraken_save_key(venue, key="eth-new", address=OTHER_ETH)
    before = snapshot()
    with pytest.raises(WhitelistError, match="points to"):
        approve(proposal, erin, code_now(erin))
    assert snapshot() == before


def test_memo_mismatch_at_the_venue_is_drift(carol, fresh_code):
    venue = VenueFactory(kind="kraken")
    xrp = WhitelistedAddressFactory(venue=venue, destination=4)
    assert xrp.memo
    sandbox_account_memo(venue, "xrp-ledger", "999")
    assert "memo/tag “999”" in services.address_venue_verify(address_id=xrp.pk)


def sandbox_account_memo(venue, key, memo):
    from venues.sandbox.registry import sandbox_for

    sandbox = sandbox_for("kraken")
    api_key = venue.credentials.api_key
    with sandbox.store.tx() as tx:
        account = sandbox.account(tx, api_key)
    for saved in account["addresses"]:
        if saved["key"] == key:
            saved["memo"] = memo
    sandbox.account_upsert(api_key, addresses=account["addresses"])


def test_scheduled_check_records_drift_once_with_an_audit_event(address, venue):
    assert services.addresses_venue_check_all() == {"checked": 1, "drift": 0, "unavailable": 0}
    # Repointed at the venue, behind Countersign's back.
    kraken_save_key(
        venue,
        key=address.venue_key,
        address="1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
        asset="XXBT",
        method="Bitcoin",
    )
    tasks.check_venue_addresses()
    tasks.check_venue_addresses()
    address.refresh_from_db()
    assert "points to" in address.drift_detail
    assert actions(address).count("whitelist.drift_detected") == 1
    assert address.state == AddressState.ACTIVE  # nothing changes the approved data


def test_venues_without_saved_addresses_are_not_checked(carol, fresh_code):
    venue = VenueFactory(kind="kucoin")
    address = WhitelistedAddressFactory(venue=venue, destination=0)
    assert services.address_venue_verify(address_id=address.pk) == ""


def test_import_brings_saved_addresses_in_as_proposals_only(carol, erin, fresh_code):
    venue = VenueFactory(kind="kraken_embed")
    existing = WhitelistedAddressFactory(venue=venue, destination=0)
    result = services.addresses_import_from_venue(
        admin=carol, venue_id=venue.pk, code=fresh_code(carol)
    )
    assert [key for key, _ in result.skipped] == [existing.venue_key]
    assert len(result.proposed) == 3
    for address in result.proposed:
        assert address.state == AddressState.PROPOSED
        assert address.source == AddressSource.IMPORT
        assert address.proposed_by == carol
    assert WhitelistedAddress.objects.filter(state=AddressState.ACTIVE).count() == 1
    with pytest.raises(WhitelistError, match="you proposed"):
        approve(result.proposed[0], carol, fresh_code(carol))
    assert approve(result.proposed[0], erin, fresh_code(erin)).state == AddressState.ACTIVE


def test_import_from_a_venue_without_saved_addresses_is_refused(carol, code_now):
    venue = VenueFactory(kind="nordpay")
    with pytest.raises(WhitelistError, match="does not list saved addresses"):
        services.addresses_import_from_venue(admin=carol, venue_id=venue.pk, code=code_now(carol))
    assert not WhitelistedAddress.objects.exists()
