"""The restore drill: a backup taken while the app writes, restored into a new database, holds
its audit chain against the backed-up checkpoints, and what was in flight at backup time
(``submitting``, ``outcome_unknown``) is reconciled from the venue after restore, never resent.

scripts/backup.sh and scripts/restore.sh are run as an operator would (docs/operations.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections
from psycopg import sql

from audit.checkpoints import checkpoint_write
from audit.services import audit_event_record
from tests.withdrawals.test_exactly_once import (
    let_lease_run_out,
    reconcile,
    stalled_attempt,
    unknown_after_timeout,
)
from tests.withdrawals.test_services import approved, create, reload, sandbox
from withdrawals.models import State

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def pending_at_venue(settings):
    """Sandbox withdrawals stay pending, so what reconciliation finds is visible."""
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 3600.0


def _url(name: str) -> str:
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        pytest.fail(
            "needs PostgreSQL: run it through scripts/run-tests.sh, or export the lines of "
            '`scripts/services.sh env` and pass -m ""'
        )
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


@pytest.fixture
def new_database() -> Iterator[str]:
    name = f"countersign_restore_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(_url("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _operator_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    return {
        **env,
        # The keys of this test process, as production hands its own to every process.
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "COUNTERSIGN_AUDIT_KEY": settings.AUDIT_HMAC_KEY,
        "COUNTERSIGN_CREDENTIALS_KEYS": ",".join(settings.CREDENTIALS_KEYS),
        "COUNTERSIGN_AUDIT_CHECKPOINT_DIR": settings.AUDIT_CHECKPOINT_DIR,
        # restore.sh runs manage.py with this interpreter, wherever the venv lives.
        "PYTHON": sys.executable,
        **extra,
    }


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own scripts, with arguments this test builds
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


class Traffic:
    """Audit events appended from another connection while the backup runs."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.written = 0
        self.thread = threading.Thread(target=self._write)

    def _write(self) -> None:
        try:
            while not self.stop.is_set():
                audit_event_record(action="drill.traffic", message=f"write {self.written}")
                self.written += 1
        finally:
            connections.close_all()

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def test_backup_while_writing_restores_verifies_and_reconciles_without_resending(
    alice, bob, address, fresh_code, tmp_path, new_database
):
    in_doubt = unknown_after_timeout(
        approved(create(alice, address), bob, fresh_code(bob)), "timeout_after_accept"
    )
    stalled = approved(create(alice, address), bob, fresh_code(bob))
    stalled_attempt(stalled)
    checkpoint_write()
    sent_before = sandbox().count_withdrawals()
    assert sent_before == 1  # the in-doubt one reached the venue; the stalled one never did

    with Traffic() as traffic:
        backup = _run(
            "scripts/backup.sh",
            str(tmp_path / "backups"),
            env=_operator_env(DATABASE_URL=_url(connection.settings_dict["NAME"])),
        )
    assert backup.returncode == 0, backup.stderr
    assert traffic.written > 0
    backup_dir = Path(backup.stdout.strip().splitlines()[-1])
    assert (backup_dir / "database.dump").stat().st_size > 0
    assert (backup_dir / "audit-checkpoints" / "checkpoints.jsonl").exists()

    restored = _run("scripts/restore.sh", str(backup_dir), _url(new_database), env=_operator_env())
    assert restored.returncode == 0, restored.stdout + restored.stderr
    verified = _run(
        sys.executable,
        "manage.py",
        "verify_audit",
        "--no-record",
        "--checkpoint",
        str(backup_dir / "audit-checkpoints" / "checkpoints.jsonl"),
        env=_operator_env(DATABASE_URL=_url(new_database)),
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # The restored database takes over, as after a real restore: this process now uses it.
    original = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = new_database
    try:
        assert reload(in_doubt).state == State.OUTCOME_UNKNOWN
        assert reload(stalled).state == State.SUBMITTING
        let_lease_run_out(stalled)

        after_in_doubt = reconcile(in_doubt)
        after_stalled = reconcile(stalled)

        assert after_in_doubt.state == State.SUBMITTED  # found at the venue, not sent again
        assert after_in_doubt.venue_reference
        assert after_stalled.state not in (State.SUBMITTING, State.OUTCOME_UNKNOWN)
        assert sandbox().count_withdrawals() == sent_before
    finally:
        connection.close()
        connection.settings_dict["NAME"] = original
