from __future__ import annotations

import pytest

from venues.registry import build_client
from venues.sandbox.registry import sandbox_for


@pytest.fixture
def sandbox():
    return sandbox_for("kucoin")


@pytest.fixture
def seed(sandbox):
    return sandbox.seed()


@pytest.fixture
def client(seed):
    client = build_client(
        kind="kucoin",
        base_url="sandbox://kucoin",
        credentials=seed.credentials,
        options=seed.options,
    )
    yield client
    client.close()
