"""A wall-clock deadline on a whole venue exchange, not on each socket read.

httpx's timeouts bound each connect, write and read, so a venue that trickles one byte at a
time (or a worker paused between two reads) can stretch one call without end. A submission
attempt holds a lease with a deadline; past it, reconciliation may hand the withdrawal to
another attempt. So the worker must not start any request after its deadline (the one fence
that keeps a stalled worker from sending late) and must stop reading soon after it.
"""

from __future__ import annotations

import time
from datetime import datetime

import httpx


class DeadlinePassed(httpx.ConnectTimeout):
    """Raised before a request leaves: nothing was sent (hence a connect-time failure)."""


class DeadlineTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, deadline: datetime) -> None:
        self._inner = inner
        self._deadline = deadline.timestamp()

    def _remaining(self) -> float:
        return self._deadline - time.time()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        remaining = self._remaining()
        if remaining <= 0:
            raise DeadlinePassed("the attempt's deadline passed before sending", request=request)
        timeouts = dict(request.extensions.get("timeout") or {})
        request.extensions["timeout"] = {
            key: min(value, remaining) if value is not None else remaining
            for key, value in {
                "connect": timeouts.get("connect"),
                "read": timeouts.get("read"),
                "write": timeouts.get("write"),
                "pool": timeouts.get("pool"),
            }.items()
        }
        response = self._inner.handle_request(request)
        chunks: list[bytes] = []
        try:
            for chunk in response.stream:
                chunks.append(chunk)
                if self._remaining() <= 0:
                    raise httpx.ReadTimeout(
                        "the attempt's deadline passed mid-answer", request=request
                    )
        finally:
            response.close()
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            content=b"".join(chunks),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self._inner.close()
