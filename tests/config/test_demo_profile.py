"""The demo stays in the demo: its seed, its sandboxes and its files.

Personas: an operator who runs the demo's commands against settings that are not the demo's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.factories import VenueFactory
from venues.interface import VenueUnavailable
from venues.models import Venue
from venues.registry import client_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_seed_demo_refuses_where_sandboxes_are_off(settings):
    settings.VENUE_SANDBOXES_ENABLED = False
    with pytest.raises(CommandError, match="public passwords"):
        call_command("seed_demo")
    assert not User.objects.exists() and not Venue.objects.exists()


@pytest.mark.django_db
def test_a_sandbox_venue_is_unreachable_where_sandboxes_are_off(settings):
    venue = VenueFactory(kind="kraken")
    settings.VENUE_SANDBOXES_ENABLED = False
    client = client_for(venue)
    try:
        with pytest.raises(VenueUnavailable):
            client.check_connection()
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_demo_database_is_readable_by_its_owner_only(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    # The demo's own profile: SQLite and the filesystem broker, whatever this run uses.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CELERY_", "COUNTERSIGN_"))
        and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(COUNTERSIGN_VAR_DIR=str(var), PORT=str(_free_port()))
    demo = subprocess.Popen(
        ["scripts/run-demo.sh"],  # noqa: S607
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and demo.poll() is None:
            if (var / "countersign.sqlite3").exists() and (var / "worker.log").exists():
                break
            time.sleep(0.2)
        assert (var / "countersign.sqlite3").exists(), "the demo did not create its database"
        assert stat.S_IMODE(var.stat().st_mode) == 0o700
        for path in var.glob("*.sqlite3*"):
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGTERM)
        output = demo.communicate(timeout=60)[0]
    assert demo.returncode in (0, 143, -signal.SIGTERM), output
