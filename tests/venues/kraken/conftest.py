"""Kraken's own tests run with our call budget on, at the starter tier their sandbox keys use."""

import pytest


@pytest.fixture(autouse=True)
def starter_tier(settings):
    settings.VENUE_KRAKEN_RATE_TIER = "starter"
