"""Serve every venue sandbox over loopback HTTP, one port per kind."""

from __future__ import annotations

import contextlib
import signal
import threading

from django.core.management.base import BaseCommand, CommandParser

from venues.registry import KINDS
from venues.sandbox.registry import sandbox_for
from venues.sandbox.server import LoopbackServer


class Command(BaseCommand):
    help = "Run the venue sandboxes on 127.0.0.1 (ports from --port-base, in kind order)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port-base", type=int, default=8701)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--seed", action="store_true", help="create a funded account per kind")

    def handle(self, *args, port_base: int, host: str, seed: bool, **options) -> None:
        servers = []
        for offset, kind in enumerate(sorted(KINDS)):
            app = sandbox_for(kind)
            server = LoopbackServer(app, port=port_base + offset, host=host).start()
            servers.append(server)
            line = f"{kind:<13} {server.url}"
            if seed:
                s = app.seed(api_key=f"loopback-{kind}-key")
                line += f"  api key {s.credentials.api_key}"
            self.stdout.write(line)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        for server in servers:
            server.stop()
