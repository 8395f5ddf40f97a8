"""Browser tests: Playwright's sync API driving the system's Chromium against the live server.

Playwright's own browser download is never used: scripts/ensure-system-deps.sh installs
Chromium from the distribution, and the tests launch it by path.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import expect

# Playwright's sync API keeps an event loop in the test thread; the ORM calls the test makes
# between browser steps are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# The test database is SQLite in memory: the live server's request threads and the test thread
# share one connection. Two of them inside it at once (an htmx poll during an approval, a test
# reading a row while a page polls) can interleave transactions. So the live server handles one
# request at a time under this lock, and a test takes it for its own ORM calls while pages are
# open (``with SERVER_LOCK: ...``).
SERVER_LOCK = threading.RLock()

# The suite runs on every core at once (scripts/run-tests.sh): a step that takes one second on a
# quiet machine can take several while another worker renders pages too. Waiting longer for
# what a test expects changes no assertion; it only stops slowness from reading as failure.
expect.set_options(timeout=15_000)

CHROMIUM = os.environ.get("COUNTERSIGN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(tmp_path_factory):
    """A fresh Chromium (fresh profile directory) for one test; closed afterwards."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"{CHROMIUM} not found: run scripts/ensure-system-deps.sh (make test does)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            # Playwright makes its own temporary profile per launch; keep its files in tmp too.
            env={**os.environ, "HOME": str(profile), "TMPDIR": str(profile)},
        )
        try:
            yield browser
        finally:
            browser.close()
            # The connection the test's own ORM calls opened while Playwright ran is not the
            # one pytest-django sees at the end of the session: left open, it kept the test
            # database from being dropped ("being accessed by other users").
            connections.close_all()


@pytest.fixture
def screenshots(tmp_path):
    """Where the test saves screenshots of its key steps (COUNTERSIGN_SCREENSHOTS overrides)."""
    target = Path(os.environ.get("COUNTERSIGN_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture(autouse=True)
def _serialised_live_server(request):
    """Run the live server's requests one at a time, under SERVER_LOCK (see above)."""
    if "live_server" not in request.fixturenames:
        yield
        return
    httpd = request.getfixturevalue("live_server").thread.httpd
    app = httpd.get_app()

    def serialised(environ, start_response):
        with SERVER_LOCK:
            response = app(environ, start_response)
            try:
                body = b"".join(response)
            finally:
                if hasattr(response, "close"):
                    response.close()
        return [body]

    httpd.set_app(serialised)
    try:
        yield
    finally:
        httpd.set_app(app)
