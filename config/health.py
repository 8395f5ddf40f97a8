"""Liveness of the parts a withdrawal needs: the database, the broker and a running worker.

The worker proves it is alive by running a periodic (beat) task that writes a timestamp to the
cache (Redis in production); ``/healthz`` reads it back. Open without login, so it says nothing
a stranger could use: a yes/no per part, the heartbeat's age, never an address or an error text.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "countersign:worker-heartbeat"


def heartbeat_interval() -> float:
    return float(getattr(settings, "WORKER_HEARTBEAT_SECONDS", 15.0))


def heartbeat_max_age() -> float:
    """A heartbeat older than this means no worker (or no beat) is running."""
    return 3 * heartbeat_interval()


def worker_heartbeat_record(*, now: float | None = None) -> float:
    """Write the worker's heartbeat. Called by the beat-scheduled task on the worker."""
    stamp = time.time() if now is None else now
    cache.set(HEARTBEAT_KEY, stamp, timeout=None)
    return stamp


def _database_check() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any failure means "down"; the details go to the log, not the page
        logger.warning("healthz: database check failed", exc_info=True)
        return {"ok": False}
    return {"ok": True}


def _broker_check() -> dict[str, Any]:
    from config.celery import app

    try:
        with app.connection_for_read() as conn:
            # One attempt, no retry: a probe answers now, it does not wait for the broker.
            conn.ensure_connection(max_retries=0, timeout=2)
    except Exception:
        logger.warning("healthz: broker check failed", exc_info=True)
        return {"ok": False}
    return {"ok": True}


def _heartbeat_check() -> dict[str, Any]:
    try:
        stamp = cache.get(HEARTBEAT_KEY)
    except Exception:  # the cache lives on Redis: down with it
        logger.warning("healthz: heartbeat read failed", exc_info=True)
        return {"ok": False, "age_seconds": None}
    if stamp is None:
        return {"ok": False, "age_seconds": None}
    age = max(time.time() - float(stamp), 0.0)
    return {"ok": age <= heartbeat_max_age(), "age_seconds": round(age, 1)}


def health_report() -> dict[str, dict[str, Any]]:
    return {
        "database": _database_check(),
        "broker": _broker_check(),
        "worker_heartbeat": _heartbeat_check(),
    }


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    healthy = all(part["ok"] for part in report.values())
    return JsonResponse({"ok": healthy, **report}, status=200 if healthy else 503)
