"""Helpers shared by the KuCoin tests."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import httpx

from venues.interface import VenueCredentials, WithdrawalSpec
from venues.kucoin.client import auth_headers
from venues.sandbox.app import SandboxApp
from venues.sandbox.transport import InProcessTransport


def make_spec(seed, *, amount: Decimal | None = None, index: int = 0, **changes) -> WithdrawalSpec:
    """A spec for the seed's destination number ``index`` (0 is the primary)."""
    dest = seed.destinations[index]
    fields = {
        "request_id": uuid.uuid4(),
        "asset": dest["asset"],
        "network": dest["network"],
        "address": dest["address"],
        "memo": dest["memo"],
        "amount": amount if amount is not None else dest["minimum"] * 2,
    }
    return WithdrawalSpec(**(fields | changes))


def raw_call(
    sandbox: SandboxApp,
    credentials: VenueCredentials,
    method: str,
    target: str,
    *,
    body: bytes = b"",
    key_version: str = "3",
    timestamp: str | None = None,
    sent_target: str | None = None,
    tamper: dict[str, str | None] | None = None,
) -> httpx.Response:
    """One request to the sandbox, signed over ``target``; ``tamper`` edits or drops headers."""
    headers: dict[str, str] = auth_headers(
        credentials=credentials,
        key_version=key_version,
        timestamp=timestamp or str(int(time.time() * 1000)),
        method=method,
        target=target,
        body=body,
    )
    for name, value in (tamper or {}).items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    with httpx.Client(
        base_url="http://sandbox.invalid", transport=InProcessTransport(sandbox)
    ) as http:
        return http.request(method, sent_target or target, content=body or None, headers=headers)
