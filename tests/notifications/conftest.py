from __future__ import annotations

import pytest

from tests.factories import UserFactory


@pytest.fixture
def uma(db):
    """User admin."""
    return UserFactory(username="uma", roles=["user_admin"])


@pytest.fixture
def erin(db):
    """A second whitelist admin."""
    return UserFactory(username="erin", roles=["whitelist_admin"])


@pytest.fixture
def rita(db):
    """Requests and approves: must never be asked to approve her own withdrawal."""
    return UserFactory(username="rita", roles=["requester", "approver"])
