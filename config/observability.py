"""What every log line carries, so one withdrawal's story can be followed across web, worker
and beat: the request id and user of a page, the withdrawal id and attempt of a task.

The context lives in contextvars (one per thread or task), set by ``RequestContextMiddleware``
and by Celery's task signals, and is copied onto each record by ``ContextFilter``; production
writes the records as JSON lines (``JsonFormatter``).
"""

from __future__ import annotations

import contextvars
import inspect
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse

from core.metrics import observe_request

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only if it is short and plain, so a forged header cannot inject
# fields or newlines into the log.
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
user_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("user_id", default=None)
withdrawal_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "withdrawal_id", default=None
)
attempt: contextvars.ContextVar[int | None] = contextvars.ContextVar("attempt", default=None)

CONTEXT_FIELDS = ("request_id", "user_id", "withdrawal_id", "attempt")
_VARS = {
    "request_id": request_id,
    "user_id": user_id,
    "withdrawal_id": withdrawal_id,
    "attempt": attempt,
}
# Fields a caller may pass in ``extra=`` that the JSON line keeps (venue calls use them).
EXTRA_FIELDS = ("venue", "endpoint", "outcome", "duration_ms", "task", "view", "status")


def bind_attempt(number: int) -> None:
    """Called when a submission attempt opens, so the task's later lines name it."""
    attempt.set(number)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Set context fields for the duration of a block, restoring them afterwards."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copy the current context onto every record (None where it does not apply)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers parse without a grok pattern."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*CONTEXT_FIELDS, *EXTRA_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class PlainFormatter(logging.Formatter):
    """The demo's human-readable line, with the context appended where there is one."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}"
            for name in (*CONTEXT_FIELDS, *EXTRA_FIELDS)
            if getattr(record, name, None) is not None
        )
        return f"{text} [{context}]" if context else text


def incoming_request_id(raw: str | None) -> str:
    """The caller's X-Request-ID when it is well-formed, else a new one."""
    if raw and _REQUEST_ID_OK.match(raw):
        return raw
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Give each request an id (the proxy's X-Request-ID or a new one), echo it in the response,
    name the signed-in user on its log lines, and time it per view for /metrics."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = incoming_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = rid  # type: ignore[attr-defined]
        started = time.monotonic()
        with bound(request_id=rid, user_id=None):
            response = self.get_response(request)
            match = getattr(request, "resolver_match", None)
            observe_request(
                view=match.view_name if match else "<unresolved>",
                method=request.method or "",
                seconds=time.monotonic() - started,
            )
        response[REQUEST_ID_HEADER] = rid
        return response

    def process_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        # Runs after the authentication middleware, so the user is known here.
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            user_id.set(user.pk)


def task_context_start(
    task: Any, task_id: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Celery task_prerun: a task about one withdrawal (its first parameter is
    ``withdrawal_id``) names it and its current attempt on every line it writes."""
    request_id.set(task_id)
    wid = kwargs.get("withdrawal_id")
    if wid is None and args and _first_parameter(task) == "withdrawal_id":
        wid = args[0]
    withdrawal_id.set(wid)
    attempt.set(None)
    if wid is not None:
        from withdrawals.models import WithdrawalRequest

        attempt.set(
            WithdrawalRequest.objects.filter(pk=wid).values_list("attempt", flat=True).first()
        )


def _first_parameter(task: Any) -> str | None:
    params = list(inspect.signature(task.run).parameters)
    return params[0] if params else None


def task_context_end() -> None:
    """Celery task_postrun: a worker's next task starts from a clean context."""
    for var in _VARS.values():
        var.set(None)
