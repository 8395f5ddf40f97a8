from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp import models as otp_totp_models
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import (
    TotpClock,
    UserFactory,
    VenueFactory,
    WhitelistedAddressFactory,
    totp_code,
)


@pytest.fixture(autouse=True)
def sandbox_state(tmp_path, settings):
    """Each test gets its own sandbox state file: venues start empty."""
    settings.VENUE_SANDBOX_DB = str(tmp_path / "sandbox.sqlite3")
    return settings.VENUE_SANDBOX_DB


@pytest.fixture(autouse=True)
def checkpoint_log(tmp_path, settings):
    """Each test its own audit checkpoint log: a test database starts a new chain, which the
    checkpoints of an earlier test's chain would (rightly) call cut."""
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "audit-checkpoints")
    return settings.AUDIT_CHECKPOINT_DIR


@pytest.fixture(autouse=True)
def fresh_cache():
    """The cache outlives a test's database: sign-in failure counts (and venue tokens) from
    one test must not decide another."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite tests run on a file, not shared-cache memory, so threads (each with its own
    connection) serialise on the database lock like real concurrent workers."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")
        # A throwaway database: no fsync on every commit.
        options = db.setdefault("OPTIONS", {})
        options["init_command"] = options.get("init_command", "") + "PRAGMA synchronous=OFF;"


@pytest.fixture
def quiet_refusals(monkeypatch):
    """Crawls make thousands of expected 403/404/405 warnings, whose tracebacks would dominate
    the run time. Errors (5xx) are still logged."""
    import logging

    monkeypatch.setattr(logging.getLogger("django.request"), "level", logging.ERROR)


# --- TOTP time ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def totp_clock(monkeypatch) -> TotpClock:
    """Freeze the time TOTP devices see (only theirs). ``advance()`` makes the next step."""
    import time

    clock = TotpClock(float(int(time.time()) // 30 * 30 + 5))
    monkeypatch.setattr(otp_totp_models, "time", SimpleNamespace(time=clock.time))
    return clock


@pytest.fixture
def code_now(totp_clock) -> Callable[[Any], str]:
    """The code the user's authenticator shows right now."""
    return lambda user: totp_code(user, at=totp_clock.now)


@pytest.fixture
def fresh_code(totp_clock) -> Callable[[Any], str]:
    """Wait for the next time step (30 s on the TOTP clock), then read the code."""

    def read(user: Any) -> str:
        totp_clock.advance()
        return totp_code(user, at=totp_clock.now)

    return read


# --- personas -------------------------------------------------------------------------------


@pytest.fixture
def alice(db):
    """Requester."""
    return UserFactory(username="alice", roles=["requester"])


@pytest.fixture
def frank(db):
    """A second requester: must never see alice's withdrawals."""
    return UserFactory(username="frank", roles=["requester"])


@pytest.fixture
def bob(db):
    """Approver."""
    return UserFactory(username="bob", roles=["approver"])


@pytest.fixture
def bianca(db):
    """A second approver (quorum and concurrency tests)."""
    return UserFactory(username="bianca", roles=["approver"])


@pytest.fixture
def carol(db):
    """Whitelist admin."""
    return UserFactory(username="carol", roles=["whitelist_admin"])


@pytest.fixture
def dave(db):
    """Auditor: reads everything, changes nothing."""
    return UserFactory(username="dave", roles=["auditor"])


@pytest.fixture
def mallory(db):
    """Logged in with TOTP, but holds no role at all."""
    return UserFactory(username="mallory", roles=[])


@pytest.fixture
def personas(alice, bob, carol, dave, mallory) -> dict[str, Any]:
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "mallory": mallory}


# --- venues ---------------------------------------------------------------------------------


@pytest.fixture
def venue(db):
    return VenueFactory(name="Treasury sandbox")


@pytest.fixture
def address(venue):
    return WhitelistedAddressFactory(venue=venue, destination=0)


# --- clients --------------------------------------------------------------------------------


def verified_login(client: Client, user: Any) -> Client:
    """Log ``user`` in with password and mark the session verified by their TOTP device,
    as django_otp.login does after the verify step."""
    client.force_login(user)
    session = client.session
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


@pytest.fixture
def login() -> Callable[..., Client]:
    def make(user: Any, **client_kwargs: Any) -> Client:
        return verified_login(Client(**client_kwargs), user)

    return make


@pytest.fixture
def alice_client(alice, login):
    return login(alice)


@pytest.fixture
def frank_client(frank, login):
    return login(frank)


@pytest.fixture
def bob_client(bob, login):
    return login(bob)


@pytest.fixture
def carol_client(carol, login):
    return login(carol)


@pytest.fixture
def dave_client(dave, login):
    return login(dave)


@pytest.fixture
def mallory_client(mallory, login):
    return login(mallory)


# --- parallel runs (pytest-xdist) -----------------------------------------------------------


# Before xdist's own hook, which reads the group marker into the test's id.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` every integration test runs on one worker, one after another:
    they share the real Redis, which some of them stop and start, and a Celery worker that
    would take another test's tasks. The bench tests stay together too, in their order: the
    plan tests read the planner's choice on a table the bench test has just filled and
    emptied, which a serial run has always given them. Everything else has its own database,
    sandbox files and cache per worker, and spreads over the workers."""
    for item in items:
        if item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.xdist_group("stack"))
        elif item.path.parent.name == "bench":
            item.add_marker(pytest.mark.xdist_group("bench"))
