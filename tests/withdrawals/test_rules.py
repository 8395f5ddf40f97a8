"""The withdrawal page shows a button exactly when the service would accept the act.

For every state and persona, the page is read (is the button there?) and then the service is
asked to do the act on an identical withdrawal (does it accept?): the two answers must agree.
Personas: alice requested it, bob approves, dave audits, mallory holds no role.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from accounts.roles import APPROVER
from tests.factories import WithdrawalFactory
from withdrawals import rules, services
from withdrawals.models import Approval, Quote, State

pytestmark = pytest.mark.django_db


def url(name: str, pk: int) -> str:
    return reverse(f"withdrawals:{name}", kwargs={"pk": pk})


def _approve(withdrawal, user, fresh_code):
    quote = Quote.objects.create(
        withdrawal=withdrawal, fee=None, expires_at=timezone.now() + timedelta(minutes=1),
        shown_to=user,
    )  # fmt: skip
    services.withdrawal_approve(
        withdrawal_id=withdrawal.pk, approver=user, code=fresh_code(user), quote_id=quote.pk
    )


# act -> (what on the page offers it, how the service is asked)
ACTS = {
    "approve": ('id="fresh-quote"', _approve),
    "quote": (
        'id="fresh-quote"',
        lambda w, user, _: services.withdrawal_quote_fresh(withdrawal_id=w.pk, user=user),
    ),
    "reject": (
        "reject",
        lambda w, user, _: services.withdrawal_reject(
            withdrawal_id=w.pk, approver=user, reason="Not budgeted"
        ),
    ),
    "cancel": (
        "cancel",
        lambda w, user, _: services.withdrawal_cancel(withdrawal_id=w.pk, requester=user),
    ),
    "requote": (
        "requote",
        lambda w, user, _: services.withdrawal_requote(withdrawal_id=w.pk, requester=user),
    ),
}


def offered(client, withdrawal, act: str) -> bool:
    response = client.get(url("detail", withdrawal.pk))
    if response.status_code == 404:
        return False
    assert response.status_code == 200
    marker = ACTS[act][0]
    if marker in ACTS:  # a URL name: the form posting to it
        marker = f'action="{url(marker, withdrawal.pk)}"'
    return marker.encode() in response.content


def accepted(withdrawal, user, act: str, fresh_code) -> bool:
    try:
        ACTS[act][1](withdrawal, user, fresh_code)
    except (services.WithdrawalError, PermissionDenied):
        return False
    return True


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("persona", ["alice", "bob", "dave", "mallory"])
def test_a_button_is_shown_exactly_when_the_service_accepts(
    request, login, alice, address, fresh_code, state, persona
):
    user = request.getfixturevalue(persona)
    client = login(user)
    for act in ACTS:
        shown_on = WithdrawalFactory(requested_by=alice, whitelisted_address=address, state=state)
        acted_on = WithdrawalFactory(requested_by=alice, whitelisted_address=address, state=state)
        shown = offered(client, shown_on, act)
        assert shown == accepted(acted_on, user, act, fresh_code), (act, state, persona, shown)


def test_an_approver_who_already_approved_is_offered_no_second_approval(
    login, alice, bob, address, fresh_code
):
    withdrawal = WithdrawalFactory(
        requested_by=alice, whitelisted_address=address, approval_quorum=2
    )
    _approve(withdrawal, bob, fresh_code)
    page = login(bob).get(url("detail", withdrawal.pk))
    assert b'id="fresh-quote"' not in page.content
    assert b"You have already approved this withdrawal" in page.content
    assert b"1 of 2" in page.content
    assert not accepted(withdrawal, bob, "approve", fresh_code)
    assert not accepted(withdrawal, bob, "quote", fresh_code)
    assert Approval.objects.filter(withdrawal=withdrawal).count() == 1


def test_whoever_whitelisted_the_address_is_offered_no_first_approval(
    login, alice, address, fresh_code
):
    approver = address.approved_by
    approver.groups.add(Group.objects.get_or_create(name=APPROVER)[0])
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    page = login(approver).get(url("detail", withdrawal.pk))
    assert b'id="fresh-quote"' not in page.content
    assert b"first withdrawal to it" in page.content
    assert rules.approve_refusal(approver, withdrawal)
    assert not accepted(withdrawal, approver, "approve", fresh_code)
