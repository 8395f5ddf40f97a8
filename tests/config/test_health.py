"""/healthz: the database, the broker and the worker's heartbeat, without login."""

from __future__ import annotations

import time

import pytest
from django.db import OperationalError
from django.test import Client

from config.celery import app, worker_heartbeat
from config.health import HEARTBEAT_KEY, heartbeat_max_age, worker_heartbeat_record


@pytest.fixture(autouse=True)
def no_heartbeat():
    from django.core.cache import cache

    cache.delete(HEARTBEAT_KEY)


@pytest.fixture
def anonymous(db) -> Client:
    return Client()


def test_healthy_when_database_broker_and_a_fresh_heartbeat_are_there(anonymous):
    worker_heartbeat.delay()  # what beat has the worker run (eager here)

    response = anonymous.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["database"] == {"ok": True}
    assert body["broker"] == {"ok": True}
    assert body["worker_heartbeat"]["ok"] is True
    assert body["worker_heartbeat"]["age_seconds"] < heartbeat_max_age()


def test_no_heartbeat_yet_means_no_worker(anonymous):
    response = anonymous.get("/healthz")

    assert response.status_code == 503
    assert response.json()["worker_heartbeat"] == {"ok": False, "age_seconds": None}
    assert response.json()["database"] == {"ok": True}


def test_a_stale_heartbeat_is_a_dead_worker(anonymous):
    worker_heartbeat_record(now=time.time() - heartbeat_max_age() - 5)

    response = anonymous.get("/healthz")

    assert response.status_code == 503
    assert response.json()["worker_heartbeat"]["ok"] is False
    assert response.json()["worker_heartbeat"]["age_seconds"] > heartbeat_max_age()


def test_database_down_is_reported(anonymous, monkeypatch):
    worker_heartbeat_record()

    class Unreachable:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr("config.health.connection", Unreachable())
    response = anonymous.get("/healthz")

    assert response.status_code == 503
    assert response.json()["database"] == {"ok": False}
    assert "refused" not in response.content.decode()  # no error text for strangers


def test_broker_down_is_reported(anonymous, monkeypatch):
    worker_heartbeat_record()
    # Nothing listens on port 1 of loopback: a broker that is down.
    monkeypatch.setattr(app.conf, "broker_read_url", "redis://127.0.0.1:1/0")

    response = anonymous.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"] == {"ok": False}
    assert response.json()["database"] == {"ok": True}


def test_beat_schedules_the_heartbeat():
    schedule = app.conf.beat_schedule
    entry = schedule["worker-heartbeat"]
    assert entry["task"] == "config.worker_heartbeat"


def test_healthz_changes_nothing_on_post(anonymous):
    assert anonymous.post("/healthz").status_code == 405
