"""Venue clients share one connection pool and one SSL context per process.

Building an ``httpx.Client`` used to load the CA bundle each time (about 28 ms), two or three
times per withdrawal. Now a client borrows the process's pool: closing it leaves the pool to
the others, and a forked worker (Celery's prefork pool) never uses its parent's connections.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.factories import VenueFactory
from venues import http as venue_http
from venues.registry import build_client


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def fresh_pool(monkeypatch):
    """This test's own process-wide pool, so counts start from nothing."""
    monkeypatch.setattr(venue_http, "_shared", venue_http._SharedPool())


@pytest.fixture
def ca_loads(monkeypatch) -> list[object]:
    loads: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):
        loads.append(args or kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    return loads


def test_clients_share_one_ssl_context_and_load_the_ca_bundle_once(fresh_pool, ca_loads):
    first = venue_http.http_client(base_url="https://venue-a.invalid", timeout=2.0)
    second = venue_http.http_client(base_url="https://venue-b.invalid", timeout=2.0)
    for _ in range(5):
        venue_http.http_client(base_url="https://venue-c.invalid", timeout=2.0).close()

    assert len(ca_loads) == 1
    assert venue_http.ssl_context() is venue_http.ssl_context()
    assert first._transport.pool is second._transport.pool


def test_venue_clients_built_by_the_registry_borrow_the_shared_pool(fresh_pool, ca_loads):
    venues = [VenueFactory.build(kind="kraken"), VenueFactory.build(kind="kucoin")]
    clients = [
        build_client(kind=v.kind, base_url="https://api.venue.invalid", credentials=v.credentials)
        for v in venues
    ]
    for client in clients:
        client.close()

    assert len(ca_loads) == 1


def test_closing_one_client_does_not_break_another(fresh_pool, server):
    first = venue_http.http_client(base_url=server, timeout=2.0)
    second = venue_http.http_client(base_url=server, timeout=2.0)
    assert first.get("/one").json() == {"path": "/one"}

    first.close()

    assert second.get("/two").json() == {"path": "/two"}
    third = venue_http.http_client(base_url=server, timeout=2.0)
    assert third.get("/three").json() == {"path": "/three"}


def test_a_forked_process_builds_its_own_pool_and_never_touches_the_parents(
    fresh_pool, monkeypatch
):
    parent = venue_http.shared_transport().pool
    parent_context = venue_http.ssl_context()
    monkeypatch.setattr(venue_http.os, "getpid", lambda: -1)

    child = venue_http.shared_transport().pool

    assert child is not parent
    assert venue_http.ssl_context() is not parent_context
    assert venue_http.shared_transport().pool is child


def test_threads_get_the_same_pool(fresh_pool):
    seen: list[object] = []
    barrier = threading.Barrier(8)

    def borrow() -> None:
        barrier.wait()
        seen.append(venue_http.shared_transport().pool)

    threads = [threading.Thread(target=borrow) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len({id(t) for t in seen}) == 1
