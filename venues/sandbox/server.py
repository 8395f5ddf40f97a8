"""Serve sandboxes over loopback HTTP, one port per venue kind (``manage.py runvenues``)."""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .app import SandboxApp, SandboxRequest

logger = logging.getLogger(__name__)

# How long a "timeout" fault holds the connection: longer than any client timeout we configure.
TIMEOUT_HOLD_SECONDS = 30.0


def make_handler(app: SandboxApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = SandboxRequest(
                method=self.command,
                target=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            response = app.handle(request)
            if response.timeout:
                time.sleep(TIMEOUT_HOLD_SECONDS)
                self.close_connection = True
                return
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve

        def log_message(self, format: str, *args) -> None:
            logger.debug("%s %s", app.kind, format % args)

    return Handler


class LoopbackServer:
    """One sandbox on 127.0.0.1:port, served from a daemon thread."""

    def __init__(self, app: SandboxApp, port: int = 0, host: str = "127.0.0.1") -> None:
        self.app = app
        self.httpd = ThreadingHTTPServer((host, port), make_handler(app))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
