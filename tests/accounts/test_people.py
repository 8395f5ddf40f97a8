"""People and roles under four eyes (issue 11, item 5): invitations, role grants and removals,
device resets, immediate deactivation, the access review, and a read-only Django admin.

Personas: uma and ulf (user admins), alice (requester), bob (approver), carol (whitelist
admin, no say over people), dave (auditor), root (a superuser in the Django admin).
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AccessChange, ChangeState, Invitation
from accounts.selectors import invitation_open_get
from accounts.services import (
    PeopleError,
    TotpRefused,
    access_change_approve,
    access_change_propose,
    access_change_reject,
    enrolment_link_issue,
    person_deactivate,
    person_invite,
)
from audit.models import AuditEvent
from audit.services import audit_chain_verify
from tests.conftest import verified_login
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

PEOPLE = reverse("people:list")
REVIEW = reverse("people:access_review")


def roles_of(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def test_user_admin_role_is_a_group_after_migrate():
    group = Group.objects.get(name="user_admin")
    assert {p.codename for p in group.permissions.all()} == {"manage_people"}


def test_a_grant_takes_a_second_user_admin_with_a_fresh_code(uma, ulf, alice, fresh_code):
    change = access_change_propose(
        admin=uma, subject_id=alice.pk, kind="grant", role="approver", reason="Covers Q3"
    )
    assert roles_of(alice) == {"requester"}  # a proposal changes nothing
    with pytest.raises(PeopleError, match="second user admin"):
        access_change_approve(approver=uma, change_id=change.pk, code=fresh_code(uma))
    with pytest.raises(TotpRefused):
        access_change_approve(approver=ulf, change_id=change.pk, code="000000")
    assert roles_of(alice) == {"requester"}
    TOTPDevice.objects.filter(user=ulf).update(throttling_failure_timestamp=None)
    access_change_approve(approver=ulf, change_id=change.pk, code=fresh_code(ulf))
    assert roles_of(alice) == {"requester", "approver"}
    event = AuditEvent.objects.get(action="people.role_granted")
    assert event.actor == ulf and event.object_id == str(alice.pk)
    assert event.data["role"] == "approver" and event.data["proposed_by"] == uma.pk
    assert audit_chain_verify(record=False).ok


def test_nobody_approves_a_change_to_their_own_access(uma, ulf, fresh_code):
    change = access_change_propose(admin=uma, subject_id=ulf.pk, kind="grant", role="approver")
    with pytest.raises(PeopleError, match="your own access"):
        access_change_approve(approver=ulf, change_id=change.pk, code=fresh_code(ulf))
    assert "approver" not in roles_of(ulf)


def test_the_database_refuses_an_approval_by_the_proposer_or_the_subject(uma, ulf, alice):
    change = access_change_propose(admin=uma, subject_id=alice.pk, kind="grant", role="approver")
    for approver in (uma, alice):
        with pytest.raises(IntegrityError), transaction.atomic():
            AccessChange.objects.filter(pk=change.pk).update(
                state=ChangeState.APPROVED, decided_by=approver
            )
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessChange.objects.filter(pk=change.pk).update(state=ChangeState.APPROVED)


def test_a_removal_is_four_eyes_too(uma, ulf, bob, fresh_code):
    change = access_change_propose(admin=uma, subject_id=bob.pk, kind="remove", role="approver")
    assert "approver" in roles_of(bob)
    access_change_approve(approver=ulf, change_id=change.pk, code=fresh_code(ulf))
    assert "approver" not in roles_of(bob)
    assert AuditEvent.objects.filter(action="people.role_removed", actor=ulf).exists()


def test_proposals_that_make_no_sense_are_refused_with_a_message(uma, bob):
    with pytest.raises(PeopleError, match="already has"):
        access_change_propose(admin=uma, subject_id=bob.pk, kind="grant", role="approver")
    with pytest.raises(PeopleError, match="does not have"):
        access_change_propose(admin=uma, subject_id=bob.pk, kind="remove", role="auditor")
    with pytest.raises(PeopleError, match="Choose a role"):
        access_change_propose(admin=uma, subject_id=bob.pk, kind="grant", role="superuser")
    access_change_propose(admin=uma, subject_id=bob.pk, kind="grant", role="auditor")
    with pytest.raises(PeopleError, match="already waiting"):
        access_change_propose(admin=uma, subject_id=bob.pk, kind="grant", role="auditor")


def test_a_rejected_proposal_changes_nothing(uma, ulf, alice, fresh_code):
    change = access_change_propose(admin=uma, subject_id=alice.pk, kind="grant", role="approver")
    access_change_reject(admin=ulf, change_id=change.pk, reason="Not in finance")
    with pytest.raises(PeopleError, match="rejected"):
        access_change_approve(approver=ulf, change_id=change.pk, code=fresh_code(ulf))
    assert roles_of(alice) == {"requester"}
    assert AuditEvent.objects.filter(action="people.change_rejected").exists()


def test_deactivation_is_one_step_and_immediate(uma, alice, alice_client):
    assert alice_client.get(reverse("withdrawals:dashboard")).status_code == 200
    person_deactivate(admin=uma, user_id=alice.pk, reason="Left the company")
    response = alice_client.get(reverse("withdrawals:dashboard"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    event = AuditEvent.objects.get(action="people.deactivated")
    assert event.actor == uma and event.data["roles"] == ["requester"]
    with pytest.raises(PeopleError, match="yourself"):
        person_deactivate(admin=uma, user_id=uma.pk, reason="oops")


def test_a_device_reset_is_proposed_and_approved_by_two(uma, ulf, bob, fresh_code):
    change = access_change_propose(admin=uma, subject_id=bob.pk, kind="device_reset")
    assert TOTPDevice.objects.filter(user=bob).exists()
    access_change_approve(approver=ulf, change_id=change.pk, code=fresh_code(ulf))
    assert not TOTPDevice.objects.filter(user=bob).exists()
    assert AuditEvent.objects.filter(action="people.device_reset", actor=ulf).exists()


def test_a_link_is_only_for_someone_without_a_device_and_a_new_one_voids_the_old(uma, bob):
    with pytest.raises(PeopleError, match="propose a device reset"):
        enrolment_link_issue(admin=uma, user_id=bob.pk)
    nina, first = person_invite(admin=uma, username="nina", email="nina@example.com")
    second = enrolment_link_issue(admin=uma, user_id=nina.pk)
    assert invitation_open_get(token=first) is None
    assert invitation_open_get(token=second).user == nina
    person_deactivate(admin=uma, user_id=nina.pk, reason="Offer withdrawn")
    assert invitation_open_get(token=second) is None
    assert AuditEvent.objects.filter(action="people.enrolment_link_issued").count() == 2


def test_only_user_admins_manage_people(carol, alice, bob):
    for service, kwargs in (
        (person_invite, {"username": "x", "email": "x@example.com"}),
        (access_change_propose, {"subject_id": alice.pk, "kind": "grant", "role": "approver"}),
        (person_deactivate, {"user_id": alice.pk, "reason": "no"}),
    ):
        with pytest.raises(PermissionDenied):
            service(admin=carol, **kwargs)
    carol_client = verified_login(Client(), carol)
    assert carol_client.get(PEOPLE).status_code == 403
    assert carol_client.post(reverse("people:invite"), {"username": "x"}).status_code == 403
    assert carol_client.post(reverse("people:deactivate", args=[bob.pk])).status_code == 403


def test_uma_invites_and_the_link_is_shown_once_and_audited(uma_client):
    response = uma_client.post(
        reverse("people:invite"), {"username": "nina", "email": "nina@example.com"}
    )
    assert response.status_code == 200
    url = re.search(rb'id="enrolment-url">([^<]+)<', response.content).group(1).decode()
    token = url.rstrip("/").rsplit("/", 1)[1]
    # Only a hash is kept; the page never shows the link again.
    assert not Invitation.objects.filter(token_hash=token).exists()
    assert token.encode() not in uma_client.get(PEOPLE).content
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"people.invited", "people.enrolment_link_issued"} <= actions
    assert token not in str(list(AuditEvent.objects.values_list("message", "data")))


def test_bad_invitations_get_a_message_not_a_500(uma_client, alice):
    for data, text in (
        ({"username": "alice", "email": "a@example.com"}, b"already has this username"),
        ({"username": "ALICE", "email": "a@example.com"}, b"already has this username"),
        ({"username": "bad name!", "email": "a@example.com"}, b"letters, digits"),
        ({"username": "nina", "email": "not-an-email"}, b"valid email"),
        ({"username": "x" * 200, "email": "a@example.com"}, b"at most 150"),
    ):
        response = uma_client.post(reverse("people:invite"), data)
        assert response.status_code == 400 and text in response.content, data


def test_the_people_page_flow_through_htmx(uma, ulf, alice, uma_client, ulf_client, fresh_code):
    proposed = uma_client.post(
        reverse("people:propose", args=[alice.pk]),
        {"kind": "grant", "role": "approver", "reason": "Covers Q3"},
        HTTP_HX_REQUEST="true",
    )
    assert proposed.status_code == 204 and proposed["HX-Redirect"] == PEOPLE
    change = AccessChange.objects.get()
    page = uma_client.get(PEOPLE).content
    assert b"You proposed it" in page and b'name="c%d-code"' % change.pk not in page
    approve = reverse("people:approve", args=[change.pk])
    wrong = ulf_client.post(approve, {f"c{change.pk}-code": "12"}, HTTP_HX_REQUEST="true")
    assert wrong.status_code == 200 and b"6-digit" in wrong.content
    TOTPDevice.objects.filter(user=ulf).update(throttling_failure_timestamp=None)
    done = ulf_client.post(approve, {f"c{change.pk}-code": fresh_code(ulf)}, HTTP_HX_REQUEST="true")
    assert done.status_code == 204
    assert "approver" in roles_of(alice)


def test_dave_reviews_who_may_do_what(uma, ulf, alice, bob, dave, fresh_code, login):
    change = access_change_propose(admin=uma, subject_id=alice.pk, kind="grant", role="approver")
    access_change_approve(approver=ulf, change_id=change.pk, code=fresh_code(ulf))
    dave_client = login(dave)
    page = dave_client.get(REVIEW)
    assert page.status_code == 200
    row = re.search(rb'<tr id="review-alice">(.*?)</tr>', page.content, re.S).group(1).decode()
    assert "approver" in row and "uma + ulf" in row and "requester" in row
    assert "before records" in row  # requester was granted outside the app (the factory)
    ulf_row = re.search(rb'<tr id="review-ulf">(.*?)</tr>', page.content, re.S).group(1).decode()
    assert "never" not in ulf_row.split("</td>")[4]  # ulf's last approval is the grant


def test_the_access_review_shows_last_sign_in(alice, dave, code_now, login):
    client = Client()
    client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    client.post(reverse("accounts:verify"), {"code": code_now(alice)})
    page = login(dave).get(REVIEW).content
    row = re.search(rb'<tr id="review-alice">(.*?)</tr>', page, re.S).group(1).decode()
    assert row.split("</td>")[3].strip() != "<td>never"


def test_only_auditors_and_user_admins_see_the_access_review(alice_client, bob_client, uma_client):
    assert alice_client.get(REVIEW).status_code == 403
    assert bob_client.get(REVIEW).status_code == 403
    assert uma_client.get(REVIEW).status_code == 200


# --- the Django admin -----------------------------------------------------------------------


@pytest.fixture
def root_client(db):
    root = UserFactory(username="root", roles=[])
    root.is_staff = root.is_superuser = True
    root.save()
    return verified_login(Client(), root)


def test_the_admin_never_shows_a_totp_secret_or_qr_code(root_client, bob):
    device = TOTPDevice.objects.get(user=bob)
    pages = [
        "/admin/otp_totp/totpdevice/",
        f"/admin/otp_totp/totpdevice/{device.pk}/change/",
        "/admin/auth/user/",
        f"/admin/auth/user/{bob.pk}/change/",
    ]
    for path in pages:
        response = root_client.get(path)
        assert response.status_code == 200, path
        text = response.content.decode()
        assert device.key not in text and device.key.upper() not in text, path
        assert "qrcode" not in text.lower() and "otpauth" not in text, path
        assert bob.password not in text and "pbkdf2" not in text and "md5$" not in text, path
    for path in (
        f"/admin/otp_totp/totpdevice/{device.pk}/config/",
        f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/",
    ):
        assert root_client.get(path).status_code in {302, 404}, path


def test_the_admin_is_read_only_for_users_groups_and_devices(root_client, alice, bob):
    device = TOTPDevice.objects.get(user=bob)
    before = (
        set(alice.groups.values_list("name", flat=True)),
        device.key,
        TOTPDevice.objects.count(),
    )
    for path in (
        "/admin/auth/user/add/",
        "/admin/auth/group/add/",
        "/admin/otp_totp/totpdevice/add/",
    ):
        assert root_client.get(path).status_code == 403, path
    approver = Group.objects.get(name="approver")
    changed = root_client.post(
        f"/admin/auth/user/{alice.pk}/change/",
        {"username": "alice", "groups": [approver.pk, Group.objects.get(name="requester").pk]},
    )
    assert changed.status_code == 403
    planted = root_client.post(
        "/admin/otp_totp/totpdevice/add/",
        {"user": alice.pk, "name": "planted", "key": "00" * 20, "confirmed": "on"},
    )
    assert planted.status_code == 403
    assert root_client.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/").status_code == 403
    # Django's password form is gone: the old URL only leads to the read-only page.
    password = alice.password
    root_client.post(f"/admin/auth/user/{alice.pk}/password/", {"password1": "x", "password2": "x"})
    alice.refresh_from_db()
    assert alice.password == password
    device.refresh_from_db()
    after = (
        set(alice.groups.values_list("name", flat=True)),
        device.key,
        TOTPDevice.objects.count(),
    )
    assert after == before


def test_the_people_page_offers_only_what_the_rules_allow(uma, alice, uma_client):
    person_invite(admin=uma, username="nina", email="nina@example.com")
    page = uma_client.get(PEOPLE).content.decode()

    def row(name: str) -> str:
        return re.search(rf'<tr id="person-{name}">(.*?)</tr>', page, re.S).group(1)

    assert "Deactivate now" in row("alice") and "Deactivate now" not in row("uma")
    assert "enrolment link" not in row("alice").lower()  # she has a device: a reset first
    assert "New enrolment link" in row("nina") and "link open until" in row("nina")
