from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def sandbox_state(tmp_path, settings):
    """Each test gets its own sandbox state file: venues start empty."""
    settings.VENUE_SANDBOX_DB = str(tmp_path / "sandbox.sqlite3")
    return settings.VENUE_SANDBOX_DB
