"""On PostgreSQL the application role still cannot delete venue evidence, and the compaction
task does its deleting through the owner role's connection (COUNTERSIGN_OWNER_DATABASE_URL).

A database of its own is migrated as the owner (tests/audit/test_db_roles.py), then a process
connected as the application role records evidence and runs the beat task.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest

from tests.audit.test_db_roles import ROOT, owner_migrated_database  # noqa: F401

pytestmark = pytest.mark.integration

SCRIPT = """
import json
from datetime import timedelta
from django.utils import timezone
from tests.factories import WithdrawalFactory
from withdrawals import tasks
from withdrawals.evidence import CompactionRefused, venue_exchanges_compact
from withdrawals.models import VenueExchange

w = WithdrawalFactory()
now = timezone.now()
for days_ago, purpose, body in [
    (50, "submit", "{}"), (49, "status", "Pending"), (48, "status", "Pending"),
    (47, "status", "Success"), (46, "status", "Success"), (45, "reconcile", "[]"),
    (44, "reconcile", "[]"), (2, "status", "Success"), (1, "status", "Success"),
]:
    VenueExchange.objects.create(
        withdrawal=w, purpose=purpose, started_at=now - timedelta(days=days_ago),
        method="POST", url="/history", status_code=200, response_body=body,
    )
try:
    venue_exchanges_compact(using="default")
    refused = ""
except CompactionRefused as exc:
    refused = str(exc)
tasks.compact_venue_evidence()
left = list(VenueExchange.objects.filter(withdrawal=w).order_by("started_at")
            .values_list("purpose", "response_body"))
print(json.dumps({"refused": refused, "left": left, "withdrawal": w.pk}))
"""


def test_compaction_runs_as_the_owner_while_the_app_role_cannot_delete(
    owner_migrated_database,  # noqa: F811
    tmp_path,
):
    owner_db, app_db = owner_migrated_database
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    run = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", SCRIPT],
        cwd=ROOT,
        env={
            **env,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": app_db,
            "COUNTERSIGN_OWNER_DATABASE_URL": owner_db,
            "EVIDENCE_POLL_RETENTION_DAYS": "30",
            "COUNTERSIGN_VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout.strip().splitlines()[-1])

    assert "COUNTERSIGN_OWNER_DATABASE_URL" in outcome["refused"]
    assert [tuple(row) for row in outcome["left"]] == [
        ("submit", "{}"),
        ("status", "Pending"),
        ("status", "Success"),
        ("reconcile", "[]"),
        ("reconcile", "[]"),
        ("status", "Success"),
        ("status", "Success"),
    ]
    with psycopg.connect(app_db, autocommit=True) as conn:
        for statement in (
            "DELETE FROM audit_venueexchange",
            "UPDATE audit_venueexchange SET response_body = ''",
            "TRUNCATE audit_venueexchange",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        count = conn.execute("SELECT count(*) FROM audit_venueexchange").fetchone()[0]
    assert count == 7
