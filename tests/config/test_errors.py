"""Error reporting: with SENTRY_DSN set, an exception in a view reaches the service, and no
credential, TOTP code or session cookie goes with it (a fake DSN endpoint on loopback)."""

from __future__ import annotations

import gzip
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

import config.urls
from config.errors import init_error_reporting

pytestmark = pytest.mark.django_db

CANARY_SECRET = "canary-api-secret-7d1e0f"
CANARY_CODE = "482913"


class Envelopes(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            pytest.fail("brotli envelope; the test cannot read it")
        self.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sentry_endpoint():
    Envelopes.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Envelopes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/1", Envelopes.received
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.init(dsn=None)  # later tests run with reporting off, as configured
    server.shutdown()


@csrf_exempt
def failing_view(request: HttpRequest) -> HttpResponse:
    api_secret = request.POST.get("api_secret")  # a local variable holding a credential
    raise RuntimeError(f"venue refused the key ({len(api_secret or '')} chars)")


urlpatterns = [path("fail-here", failing_view), *config.urls.urlpatterns]


def test_no_dsn_no_reporting():
    assert init_error_reporting("") is False


def test_a_view_error_reaches_the_service_without_secrets(
    alice, alice_client, settings, sentry_endpoint
):
    dsn, received = sentry_endpoint
    assert init_error_reporting(dsn, environment="test") is True
    settings.ROOT_URLCONF = __name__
    alice_client.raise_request_exception = False
    session_cookie = alice_client.cookies[settings.SESSION_COOKIE_NAME].value

    response = alice_client.post(
        "/fail-here",
        {"api_secret": CANARY_SECRET, "code": CANARY_CODE, "passphrase": CANARY_SECRET},
        headers={"Authorization": f"Bearer {CANARY_SECRET}"},
    )
    assert response.status_code == 500
    sentry_sdk.flush(timeout=5)

    sent = b"\n".join(received).decode(errors="replace")
    assert "venue refused the key" in sent  # the error did reach the service
    for secret in (CANARY_SECRET, CANARY_CODE, session_cookie):
        assert secret not in sent


def test_a_worker_error_is_scrubbed_too(sentry_endpoint):
    dsn, received = sentry_endpoint
    init_error_reporting(dsn)
    # Names the SDK's own scrubber does not know: only scrub_event stands in the way.
    totp_code = CANARY_CODE
    try:
        raise ValueError(f"approval refused ({len(totp_code)} digits)")
    except ValueError:
        sentry_sdk.set_extra("approval", {"code": CANARY_CODE, "venue_token": CANARY_SECRET})
        sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=5)
    sent = b"\n".join(received).decode(errors="replace")
    assert "approval refused" in sent
    assert CANARY_CODE not in sent
    assert CANARY_SECRET not in sent
