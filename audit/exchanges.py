"""Capture of venue HTTP exchanges for the evidence pack, with credentials redacted.

``ExchangeRecorder`` is handed to ``venues.registry.client_for(..., exchange_log=...)``; httpx
event hooks call it with each request, then with its response. Nothing secret is kept: the
auth headers and any password, secret, passphrase or bearer token in a body are replaced.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from django.utils import timezone

REDACTED = "[redacted]"
SECRET_HEADERS = frozenset(
    {"api-key", "api-sign", "x-api-key", "authorization", "cookie", "set-cookie"}
)
SECRET_HEADER_PREFIXES = ("kc-api-",)
# Body keys whose value is a credential wherever they appear (1Konto's login answers a bearer
# "token" and takes the login "user" with the password; Kraken Embed's fee_token and
# idempotency_token are evidence, not secrets).
SECRET_KEYS = frozenset(
    {
        "token",
        "access_token",
        "refresh_token",
        "jwt",
        "api_key",
        "apikey",
        "signature",
        "sign",
        "user",
        "username",
        "login",
    }
)
SECRET_KEY_PARTS = ("password", "secret", "passphrase")
MAX_BODY = 20_000


def _secret_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in SECRET_KEYS or any(part in lowered for part in SECRET_KEY_PARTS)


def redact_headers(headers: Any) -> dict[str, str]:
    # httpx lowercases names in items(); its raw list keeps them as sent.
    pairs = (
        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers.raw]
        if isinstance(headers, httpx.Headers)
        else headers.items()
    )
    clean = {}
    for name, value in pairs:
        lowered = name.lower()
        secret = lowered in SECRET_HEADERS or lowered.startswith(SECRET_HEADER_PREFIXES)
        clean[name] = REDACTED if secret else value
    return clean


def _redact_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _secret_key(str(k)) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    return value


def redact_body(raw: bytes, content_type: str = "") -> str:
    """The body as text, with secret fields replaced. JSON and form bodies are understood;
    anything else is kept only if it carries no secret-looking key."""
    text = raw.decode("utf-8", errors="replace")
    if not text:
        return ""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict | list):
        return json.dumps(_redact_value(parsed), ensure_ascii=False)[:MAX_BODY]
    if "form-urlencoded" in content_type or ("=" in text and " " not in text):
        pairs = parse_qsl(text, keep_blank_values=True)
        if pairs:
            return urlencode([(k, REDACTED if _secret_key(k) else v) for k, v in pairs])[:MAX_BODY]
    if any(part in text.lower() for part in (*SECRET_KEY_PARTS, "token")):
        return REDACTED
    return text[:MAX_BODY]


class ExchangeRecorder:
    """Collects the exchanges of one client's life (``exchanges``), for the caller to store."""

    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = []
        self._open: dict[int, dict[str, Any]] = {}

    def __call__(self, request: httpx.Request, response: httpx.Response | None) -> None:
        if response is None:
            entry = {
                "started_at": timezone.now(),
                "method": request.method,
                "url": str(request.url.copy_with(query=None))[:500],
                "request_headers": redact_headers(request.headers),
                "request_body": _request_body(request),
                "status_code": None,
                "response_headers": {},
                "response_body": "",
                "error": "no response received",
            }
            self.exchanges.append(entry)
            self._open[id(request)] = entry
            return
        entry = self._open.pop(id(request), None)
        if entry is None:
            return
        entry["status_code"] = response.status_code
        entry["response_headers"] = redact_headers(response.headers)
        entry["response_body"] = redact_body(
            response.content, response.headers.get("content-type", "")
        )
        entry["error"] = ""


def _request_body(request: httpx.Request) -> str:
    body = redact_body(request.content, request.headers.get("content-type", ""))
    query = request.url.query.decode()
    if query:
        params = parse_qsl(query, keep_blank_values=True)
        clean = urlencode([(k, REDACTED if _secret_key(k) else v) for k, v in params])
        body = f"?{clean}" + (f"\n{body}" if body else "")
    return body
