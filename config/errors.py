"""Error reporting to Sentry (or a compatible service), on when SENTRY_DSN is set.

Web and worker both call ``init_error_reporting`` from the settings, so an exception in a view
or a task reaches the same project. An event is scrubbed before it leaves the process
(``scrub_event``): venue credentials, passwords, TOTP and recovery codes, session and CSRF
cookies, bearer tokens. Whatever a form posts under those names never reaches the service, and
neither do cookies or the Authorization header at all.
"""

from __future__ import annotations

import re
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

SCRUBBED = "[scrubbed]"
# Keys whose values are secrets wherever they appear (POST data, local variables, extras).
SECRET_KEYS = re.compile(
    r"api_?key|api_?secret|secret|passphrase|password|passwd|token|code|otp|totp|"
    r"recovery|credential|authorization|cookie|session|csrf|signature|sign|nonce|dsn",
    re.IGNORECASE,
)


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {
            k: SCRUBBED if isinstance(k, str) and SECRET_KEYS.search(k) else _scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v, depth + 1) for v in value]
    return value


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry before_send: drop cookies and auth headers, mask every secret-named field."""
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("cookies", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                k: SCRUBBED if SECRET_KEYS.search(k) else v for k, v in headers.items()
            }
        if "data" in request:
            data = request["data"]
            request["data"] = _scrub(data) if isinstance(data, dict | list) else SCRUBBED
        if request.get("query_string"):
            request["query_string"] = SCRUBBED
    for exception in (event.get("exception") or {}).get("values") or []:
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            if "vars" in frame:
                frame["vars"] = _scrub(frame["vars"])
    for key in ("extra", "contexts", "tags"):
        if key in event:
            event[key] = _scrub(event[key])
    for crumb in (event.get("breadcrumbs") or {}).get("values") or []:
        if "data" in crumb:
            crumb["data"] = _scrub(crumb["data"])
    return event


def init_error_reporting(dsn: str, *, environment: str = "") -> bool:
    """Start the SDK for this process when a DSN is configured; True if it did."""
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        environment=environment or None,
        integrations=[DjangoIntegration(), CeleryIntegration(), LoggingIntegration()],
        # Request bodies stay home; scrub_event covers what remains (locals, extras, headers).
        max_request_body_size="never",
        include_local_variables=True,
        before_send=scrub_event,
        before_send_transaction=scrub_event,
    )
    return True
