"""On PostgreSQL the application's role cannot change the audit trail, whatever SQL it sends.

Production runs ``migrate`` as an owner role and the web and worker processes as an application
role (scripts/services.sh creates both, as production should). This test migrates a database of
its own as the owner, then connects as the application role: it can append events and verify
the chain, and is refused UPDATE, DELETE, TRUNCATE and disabling the append-only trigger.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def owner_migrated_database(tmp_path) -> Iterator[tuple[str, str]]:
    """(owner URL, application URL) of a fresh database migrated by the owner role."""
    owner_url = os.environ.get("DATABASE_URL", "")
    app_url = os.environ.get("COUNTERSIGN_APP_DATABASE_URL", "")
    if not owner_url.startswith("postgres") or not app_url.startswith("postgres"):
        pytest.fail(
            "needs PostgreSQL with two roles: run it through scripts/run-tests.sh, or export "
            'the lines of `scripts/services.sh env` and pass -m ""'
        )
    name = f"countersign_roles_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(owner_url, autocommit=True) as conn:
        # template0: nobody connects to it, so a concurrent CREATE DATABASE cannot block this one.
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    owner_db, app_db = _with_database(owner_url, name), _with_database(app_url, name)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env={
                **env,
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "DATABASE_URL": owner_db,
                "COUNTERSIGN_DB_APP_ROLE": urlsplit(app_url).username or "",
                "COUNTERSIGN_VAR_DIR": str(tmp_path),
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert migrated.returncode == 0, migrated.stderr
        yield owner_db, app_db
    finally:
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_the_app_role_appends_and_verifies_but_cannot_change_the_trail(
    owner_migrated_database, tmp_path
):
    _owner_db, app_db = owner_migrated_database
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    code = (
        "from audit.services import audit_event_record, audit_chain_verify; "
        "[audit_event_record(action='test.roles', message=f'event {i}') for i in range(3)]; "
        "c = audit_chain_verify(record=True); print(c.ok, c.events_checked)"
    )
    app = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=ROOT,
        env={
            **env,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": app_db,
            "COUNTERSIGN_VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert app.returncode == 0, app.stderr
    assert app.stdout.split() == ["True", "3"]

    refused = {
        "UPDATE audit_auditevent SET message = 'rewritten'": "permission denied",
        "DELETE FROM audit_auditevent WHERE seq > 1": "permission denied",
        "TRUNCATE audit_auditevent": "permission denied",
        "TRUNCATE audit_auditchainhead": "permission denied",
        "DELETE FROM audit_auditchainhead": "permission denied",
        "DELETE FROM audit_chaincheck": "permission denied",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only": "must be owner",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL": "must be owner",
        "DROP TRIGGER audit_event_append_only ON audit_auditevent": "must be owner",
        "CREATE TRIGGER sneak BEFORE INSERT ON audit_auditevent "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()": "permission denied",
    }
    with psycopg.connect(app_db, autocommit=True) as conn:
        for statement, words in refused.items():
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
                conn.execute(statement)
            assert words in str(caught.value), statement
        count = conn.execute("SELECT count(*) FROM audit_auditevent").fetchone()[0]
    assert count == 3
