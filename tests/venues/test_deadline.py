"""A submission attempt's deadline bounds the whole venue exchange, not each socket read."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from venues.deadline import DeadlinePassed, DeadlineTransport
from venues.http import send
from venues.interface import VenueOutcomeUnknown, VenueUnavailable


class TricklingVenue:
    """A loopback HTTP server that answers one byte every ``pause`` seconds: each read is
    quick, so per-read timeouts never fire, but the answer takes ``len(body) * pause``."""

    def __init__(self, body: bytes, pause: float) -> None:
        self.body, self.pause = body, pause
        self.requests = 0
        self.bytes_sent = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self._sock.settimeout(10)
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            self.requests += 1
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\n\r\n".encode()
            try:
                conn.sendall(head)
                for byte in self.body:
                    conn.sendall(bytes([byte]))
                    self.bytes_sent += 1
                    time.sleep(self.pause)
            except OSError:
                return  # the client gave up: what this test wants

    def __enter__(self) -> TricklingVenue:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
        self._thread.join(5)


@pytest.fixture
def trickling() -> Iterator[TricklingVenue]:
    with TricklingVenue(b'{"result": "' + b"x" * 200 + b'"}', pause=0.05) as venue:
        yield venue


def client(url: str, seconds: float) -> httpx.Client:
    deadline = timezone.now() + timedelta(seconds=seconds)
    # A per-read timeout far longer than the deadline: only the deadline can end the exchange.
    return httpx.Client(
        base_url=url, transport=DeadlineTransport(httpx.HTTPTransport(), deadline), timeout=30
    )


def test_a_trickling_answer_is_cut_off_at_the_deadline(trickling):
    with client(trickling.url, 0.5) as http, pytest.raises(VenueOutcomeUnknown):
        send(http, http.build_request("POST", "/withdraw"), mutating=True)
    # The venue had far more to send: the exchange ended at the deadline, not at the answer's end.
    assert trickling.bytes_sent < len(trickling.body)


def test_no_request_leaves_after_the_deadline(trickling):
    with client(trickling.url, -1) as http, pytest.raises(VenueUnavailable) as refused:
        send(http, http.build_request("POST", "/withdraw"), mutating=True)
    assert isinstance(refused.value.__cause__, DeadlinePassed)
    assert trickling.requests == 0  # nothing reached the venue


def test_an_answer_within_the_deadline_is_read_whole():
    with TricklingVenue(b'{"ok": true}', pause=0.0) as venue, client(venue.url, 10) as http:
        response = send(http, http.build_request("GET", "/"), mutating=False)
    assert response.json() == {"ok": True}
