"""An httpx transport that hands requests to a sandbox in the same process.

The client code is the same as against a real venue: it builds, signs and sends bytes; only the
socket is skipped. A ``timeout`` response becomes the exception httpx would raise.
"""

from __future__ import annotations

import httpx

from .app import SandboxApp, SandboxRequest


class InProcessTransport(httpx.BaseTransport):
    def __init__(self, app: SandboxApp) -> None:
        self.app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode("ascii")
        sandbox_request = SandboxRequest(
            method=request.method,
            target=target,
            headers={k.decode().lower(): v.decode() for k, v in request.headers.raw},
            body=request.read(),
        )
        response = self.app.handle(sandbox_request)
        if response.timeout:
            raise httpx.ReadTimeout("sandbox: read timed out", request=request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            content=response.body,
            request=request,
        )
