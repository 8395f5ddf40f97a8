from __future__ import annotations

import pytest

from tests.factories import UserFactory


@pytest.fixture
def erin(db):
    """A second whitelist admin: approves what carol proposes."""
    return UserFactory(username="erin", roles=["whitelist_admin"])


@pytest.fixture
def tina(db):
    """An approver who is also a treasury lead."""
    return UserFactory(username="tina", roles=["approver", "treasury_lead"])
