"""Each event reaches the people it concerns, never the person who acted, and never asks a
requester to approve or settle their own withdrawal.

Personas: alice requests, bob and bianca approve, rita both requests and approves, carol and
erin are whitelist admins, dave audits, uma administers users, mallory holds no role.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from audit import tasks as audit_tasks
from audit.actions import AuditAction
from audit.services import audit_event_record
from notifications.models import Kind, Notification
from notifications.services import ROUTES, SILENT, routes_for
from tests.audit.test_chain import raw as tamper
from tests.factories import WithdrawalFactory, good_amount
from withdrawals import services as withdrawal_services

pytestmark = pytest.mark.django_db


def told(kind: str) -> set[str]:
    return {u.username for n in Notification.objects.filter(kind=kind) for u in n.recipients.all()}


def record(action: str, *, actor=None, target=None, message: str = "") -> None:
    with transaction.atomic():
        audit_event_record(action=action, actor=actor, target=target, message=message)


def admins_of(address) -> set[str]:
    """The whitelist admins the address factory made to propose and approve it."""
    return {address.proposed_by.username, address.approved_by.username}


@pytest.fixture
def everyone(alice, bob, bianca, carol, dave, mallory, uma, erin, rita):
    return None


def test_a_new_withdrawal_asks_every_approver_but_its_requester(
    everyone, rita, address, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        withdrawal_services.withdrawal_create(
            requester=rita,
            venue_id=address.venue_id,
            address_id=address.pk,
            amount=good_amount(address.venue),
        )
    assert told(Kind.APPROVAL_NEEDED) == {"bob", "bianca"}
    assert sorted(m.to[0] for m in mail.outbox) == ["bianca@example.com", "bob@example.com"]
    assert all("waits for your approval" in m.subject for m in mail.outbox)


@pytest.mark.parametrize("action", ["withdrawal.requoted", "withdrawal.sent_back"])
def test_voided_approvals_ask_the_approvers_again_but_not_the_requester(
    everyone, rita, address, action
):
    record(action, target=WithdrawalFactory(requested_by=rita, whitelisted_address=address))
    assert told(Kind.APPROVAL_NEEDED) == {"bob", "bianca"}


def test_approval_and_rejection_reach_the_requester_only(everyone, alice, bob, address):
    approved = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    rejected = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    record("withdrawal.approved", actor=bob, target=approved)
    withdrawal_services.withdrawal_reject(withdrawal_id=rejected.pk, approver=bob, reason="no")
    assert told(Kind.WITHDRAWAL_APPROVED) == {"alice"}
    assert told(Kind.WITHDRAWAL_REJECTED) == {"alice"}


@pytest.mark.parametrize(
    "action, kind",
    [
        ("withdrawal.submitted", Kind.WITHDRAWAL_SUBMITTED),
        ("withdrawal.completed", Kind.WITHDRAWAL_COMPLETED),
        ("withdrawal.failed", Kind.WITHDRAWAL_FAILED),
        ("withdrawal.expired", Kind.WITHDRAWAL_REJECTED),
    ],
)
def test_the_system_tells_the_requester_how_her_withdrawal_went(
    everyone, alice, address, action, kind
):
    record(action, target=WithdrawalFactory(requested_by=alice, whitelisted_address=address))
    assert told(kind) == {"alice"}


def test_an_unknown_outcome_goes_to_those_who_may_settle_it_but_not_its_requester(
    everyone, rita, address
):
    withdrawal = WithdrawalFactory(requested_by=rita, whitelisted_address=address)
    record("withdrawal.outcome_unknown", target=withdrawal)
    assert told(Kind.ATTENTION) == {"bob", "bianca", "carol", "erin"} | admins_of(address)


def test_a_duplicate_payment_goes_to_approvers_admins_and_auditors(everyone, alice, address):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    record("withdrawal.duplicate_detected", target=withdrawal)
    expected = {"bob", "bianca", "rita", "carol", "erin", "dave"} | admins_of(address)
    assert told(Kind.DUPLICATE) == expected


def test_a_whitelist_proposal_and_its_cooling_off_go_to_admins_and_auditors(
    everyone, carol, erin, address
):
    record("whitelist.proposed", actor=carol, target=address)
    record("whitelist.approved", actor=erin, target=address)
    record("whitelist.drift_detected", target=address, message="saved key differs")
    others = admins_of(address)
    assert told(Kind.WHITELIST_PROPOSED) == {"erin", "dave"} | others
    assert told(Kind.WHITELIST_COOLING_OFF) == {"carol", "dave"} | others
    assert told(Kind.VENUE_DRIFT) == {"carol", "erin", "dave"} | others


def test_a_role_change_tells_the_overseers_and_the_person_concerned(everyone, uma, bob, settings):
    record("people.role_granted", actor=uma, target=bob, message="Approved with TOTP: grant")
    assert told(Kind.ACCESS_CHANGED) == {"carol", "erin", "dave"}
    assert told(Kind.MY_ACCESS_CHANGED) == {"bob"}
    # bob may not open the access review: his own message takes him home.
    assert Notification.objects.get(kind=Kind.MY_ACCESS_CHANGED).link == settings.SITE_URL + "/"
    overseen = Notification.objects.get(kind=Kind.ACCESS_CHANGED)
    assert overseen.link.endswith("/people/access-review/")


@pytest.mark.parametrize(
    "action",
    [AuditAction.VENUE_UPDATED, AuditAction.POLICY_CHANGE_APPROVED, AuditAction.PRICE_SEEDED],
)
def test_every_configuration_change_reaches_admins_and_auditors(everyone, carol, venue, action):
    record(action, actor=carol, target=venue)
    assert told(Kind.CONFIGURATION_CHANGED) == {"erin", "dave", "uma"}


def test_events_nobody_needs_to_hear_of_make_no_notification(everyone, alice):
    record("login.succeeded", actor=alice, target=alice)
    record("export.created", actor=alice)
    assert not Notification.objects.exists()


def test_a_broken_audit_chain_alerts_admins_and_auditors(
    everyone, django_capture_on_commit_callbacks
):
    record("test.event")
    tamper("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE seq = 1")
    with django_capture_on_commit_callbacks(execute=True):
        assert audit_tasks.verify_audit_chain.delay().get() is False
    assert told(Kind.CHAIN_BROKEN) == {"carol", "erin", "dave", "uma"}
    assert any("audit chain is broken" in m.subject for m in mail.outbox)


def test_the_cooling_off_message_names_the_veto_deadline(everyone, erin, address):
    address.state = "cooling_off"
    address.active_from = timezone.now() + timedelta(hours=24)
    address.save()
    record("whitelist.approved", actor=erin, target=address)
    notification = Notification.objects.get(kind=Kind.WHITELIST_COOLING_OFF)
    deadline = f"{address.active_from:%Y-%m-%d %H:%M} UTC"
    assert f"may veto it until {deadline}" in notification.body
    assert notification.link.endswith(f"/whitelist/{address.pk}/")


@pytest.mark.parametrize("action", list(AuditAction))
def test_every_catalogued_action_is_routed_or_deliberately_silent(action):
    if action in SILENT:
        assert routes_for(action) == ()
    else:
        assert ROUTES[action], f"{action} reaches nobody: route it, or list it in SILENT"


def test_an_action_outside_the_catalogue_reaches_nobody(everyone, carol, venue):
    record("venue.renamed_by_hand", actor=carol, target=venue)
    assert not Notification.objects.exists()
