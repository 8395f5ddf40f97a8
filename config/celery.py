"""The Celery app. Tasks are thin: they load by id and call a service."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("countersign")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="config.worker_heartbeat", ignore_result=True)
def worker_heartbeat() -> None:
    from config.health import worker_heartbeat_record

    worker_heartbeat_record()


@app.on_after_configure.connect
def schedule_heartbeat(sender: Celery, **kwargs: object) -> None:
    # Beat schedules it, a worker runs it: a fresh stamp proves both are up (see /healthz).
    from config.health import heartbeat_interval

    sender.add_periodic_task(heartbeat_interval(), worker_heartbeat, name="worker-heartbeat")
