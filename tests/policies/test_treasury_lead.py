"""Treasury lead is a role like the others: granted by one user admin, approved by a second."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.roles import TREASURY_LEAD
from accounts.services import PeopleError, access_change_approve, access_change_propose
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_treasury_lead_is_granted_under_four_eyes(bob, fresh_code):
    uma = UserFactory(username="uma", roles=["user_admin"])
    ulf = UserFactory(username="ulf", roles=["user_admin"])
    change = access_change_propose(admin=uma, subject_id=bob.pk, kind="grant", role=TREASURY_LEAD)
    assert not bob.groups.filter(name=TREASURY_LEAD).exists()
    with pytest.raises(PeopleError):
        access_change_approve(approver=uma, change_id=change.pk, code=fresh_code(uma))

    access_change_approve(approver=ulf, change_id=change.pk, code=fresh_code(ulf))

    assert bob.groups.filter(name=TREASURY_LEAD).exists()
    # A marker role: it grants no permission by itself.
    assert not Group.objects.get(name=TREASURY_LEAD).permissions.exists()
