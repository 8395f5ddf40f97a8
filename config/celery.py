"""The Celery app. Tasks are thin: they load by id and call a service."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

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


@task_prerun.connect
def bind_task_context(
    task_id: str, task: object, args: tuple, kwargs: dict, **extra: object
) -> None:
    # Every line a task writes names its withdrawal and attempt (config.observability).
    from config.observability import task_context_start

    task_context_start(task, task_id, tuple(args or ()), dict(kwargs or {}))


@task_postrun.connect
def clear_task_context(**extra: object) -> None:
    from config.observability import task_context_end

    task_context_end()
