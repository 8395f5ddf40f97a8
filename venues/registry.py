"""Which client serves each venue kind, and how a client is built.

Sandboxes are not imported here: a ``sandbox://`` venue is served by venues.sandbox.registry,
loaded by name only where the settings turn sandboxes on (the demo and the tests).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import httpx
from django.conf import settings
from django.utils.module_loading import import_string

from .budget import Purpose
from .deadline import DeadlineTransport
from .http import http_client, shared_transport
from .interface import VenueClient, VenueCredentials, VenueSettings
from .nonces import DatabaseNonceSource

if TYPE_CHECKING:
    from .models import Venue

ExchangeLog = Callable[[httpx.Request, "httpx.Response | None"], None]

# kind -> client class. Each kind is one package under venues/ (its sandbox beside it).
KINDS: dict[str, str] = {
    "kraken": "venues.kraken.client.KrakenClient",
    "kraken_embed": "venues.kraken_embed.client.KrakenEmbedClient",
    "kucoin": "venues.kucoin.client.KucoinClient",
    "onekonto": "venues.onekonto.client.OneKontoClient",
    "nordpay": "venues.nordpay.client.NordPayClient",
}
SANDBOX_SCHEME = "sandbox://"
SANDBOX_TRANSPORT = "venues.sandbox.registry.in_process_transport"


def client_class(kind: str) -> type[VenueClient]:
    return import_string(KINDS[kind])


class SandboxesOffTransport(httpx.BaseTransport):
    """Refuses every request of a ``sandbox://`` venue where the settings turn sandboxes off."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("sandbox venues are turned off in this profile", request=request)


def build_client(
    *,
    kind: str,
    base_url: str,
    credentials: VenueCredentials,
    options: VenueSettings | None = None,
    timeout: float | None = None,
    exchange_log: ExchangeLog | None = None,
    deadline: datetime | None = None,
    purpose: Purpose | None = None,
) -> VenueClient:
    """A client for one venue account. ``sandbox://`` base URLs run the sandbox in-process.

    ``exchange_log`` is called with each request (response None), then with the request and
    its read response, so a withdrawal's evidence can keep what was said to the venue.
    ``deadline``: no request starts after it, and none reads on long past it (venues.deadline).
    ``purpose``: why the venue is called; where the key has a call budget (venues.budget), a
    less important purpose waits before a more important one does. None: counted, never held.
    """
    if base_url.startswith(SANDBOX_SCHEME):
        # Production turns sandboxes off: such a venue is unreachable, and nothing is sent.
        transport: httpx.BaseTransport | None = (
            import_string(SANDBOX_TRANSPORT)(kind)
            if settings.VENUE_SANDBOXES_ENABLED
            else SandboxesOffTransport()
        )
        base_url = "http://sandbox.invalid"
    else:
        transport = None
    if deadline is not None:
        transport = DeadlineTransport(transport or shared_transport(), deadline)
    http = http_client(
        base_url=base_url,
        transport=transport,
        timeout=timeout if timeout is not None else settings.VENUE_HTTP_TIMEOUT,
        event_hooks=_exchange_hooks(exchange_log) if exchange_log else None,
    )
    return client_class(kind)(
        http=http,
        credentials=credentials,
        options=options or VenueSettings(),
        nonces=DatabaseNonceSource(),
        purpose=purpose,
    )


def _exchange_hooks(exchange_log: ExchangeLog) -> dict[str, list[Callable[..., None]]]:
    def on_request(request: httpx.Request) -> None:
        exchange_log(request, None)

    def on_response(response: httpx.Response) -> None:
        response.read()
        exchange_log(response.request, response)

    return {"request": [on_request], "response": [on_response]}


def client_for(
    venue: Venue,
    *,
    exchange_log: ExchangeLog | None = None,
    deadline: datetime | None = None,
    purpose: Purpose | None = None,
) -> VenueClient:
    return build_client(
        kind=venue.kind,
        base_url=venue.base_url,
        credentials=venue.credentials,
        options=venue.options,
        exchange_log=exchange_log,
        deadline=deadline,
        purpose=purpose,
    )
