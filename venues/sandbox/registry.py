"""Which sandbox stands in for each venue kind. Only the demo and the tests reach this module:
the client registry (venues.registry) loads it, by name, only where settings turn sandboxes on,
so production never imports an emulator that accepts any withdrawal."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from .app import SandboxApp
from .store import SandboxStore
from .transport import InProcessTransport

SANDBOXES: dict[str, str] = {
    "kraken": "venues.kraken.sandbox.KrakenSandbox",
    "kraken_embed": "venues.kraken_embed.sandbox.KrakenEmbedSandbox",
    "kucoin": "venues.kucoin.sandbox.KucoinSandbox",
    "onekonto": "venues.onekonto.sandbox.OneKontoSandbox",
    "nordpay": "venues.nordpay.sandbox.NordPaySandbox",
}


@cache
def _store(path: str) -> SandboxStore:
    return SandboxStore(path)


def sandbox_for(kind: str) -> SandboxApp:
    """The sandbox of ``kind``, on the state file named by settings.VENUE_SANDBOX_DB."""
    app_class = import_string(SANDBOXES[kind])
    return app_class(
        _store(settings.VENUE_SANDBOX_DB), settle_seconds=settings.VENUE_SANDBOX_SETTLE_SECONDS
    )


def in_process_transport(kind: str) -> InProcessTransport:
    """The transport that answers a ``sandbox://KIND`` venue's requests in this process."""
    return InProcessTransport(sandbox_for(kind))
