"""The production profile on its real parts: PostgreSQL, Redis, a Celery worker (with beat) and
gunicorn, all separate processes, against a venue sandbox served over loopback HTTP.

``scripts/run-tests.sh`` (``make test``) starts throwaway PostgreSQL and Redis servers
(scripts/services.sh) and runs these tests in its PostgreSQL pass. The worker and the web
process run ``config.settings.production`` on the test database; the sandbox's loopback server
runs in this process, so the tests count the venue's withdrawals directly.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote as urlquote
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from audit.db_roles import app_role_statements
from tests.conftest import verified_login
from tests.factories import (
    UserFactory,
    VenueFactory,
    WhitelistedAddressFactory,
    policy_install,
    seed_of,
    totp_code,
)
from venues.sandbox.registry import sandbox_for
from venues.sandbox.server import LoopbackServer
from withdrawals.models import WithdrawalRequest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HOST = "countersign.test"
ORIGIN = f"https://{HOST}"
KIND = "kraken"
QUORUM = 2  # a first approver, then the race for the last approval
# Long enough for a lapsed lease (deadline + margin) and the grace period, with room to spare.
WAIT_SECONDS = 300.0

# The production clocks: no shortened lease, grace period, resend or polling interval, so no
# race is hidden by a clock tuned to avoid it. Only the heartbeat (a health signal) is faster.
PROCESS_ENV = {
    "WORKER_HEARTBEAT_SECONDS": "1",
    "LOG_LEVEL": "INFO",
}


def _require_real_parts() -> str:
    redis_url = os.environ.get("REDIS_URL", "")
    engine = settings.DATABASES["default"]["ENGINE"]
    if not redis_url or engine != "django.db.backends.postgresql":
        pytest.fail(
            "integration tests need PostgreSQL (DATABASE_URL) and Redis (REDIS_URL): run them "
            "with `make test`, or `eval $(scripts/services.sh start)` first"
        )
    return redis_url


def wait_until(
    what: str,
    check: Callable[[], Any],
    timeout: float = WAIT_SECONDS,
    log: Callable[[], str] | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` otherwise (with
    the tail of a process log, when one can explain it)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}" + (f"\n{log()}" if log else ""))
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child process in its own process group, so SIGKILL takes every one of its children.

    ``supervised``: restarted when it exits on its own, as a process manager (systemd's
    ``Restart=always``) does in production; a Celery worker ends itself on some broker failures
    (kombu: "Unrecoverable error" when the connection drops during an acknowledgement).
    """

    def __init__(
        self, argv: list[str], env: dict[str, str], log: Path, *, supervised: bool = False
    ) -> None:
        self.argv, self.env, self.log = argv, env, log
        self.popen: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._wanted = False
        if supervised:
            threading.Thread(target=self._supervise, daemon=True).start()

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own venv binaries
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wanted = True
        return self

    def _supervise(self) -> None:
        while True:
            time.sleep(0.5)
            if self._wanted and self.popen is not None and self.popen.poll() is not None:
                self.restarts += 1
                self.start()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def pause(self) -> None:
        """SIGSTOP the whole group: a VM or GC pause, as far as the processes can tell."""
        os.killpg(self.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.popen.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, no warning: the crash the acks_late/visibility-timeout setup is for."""
        self._wanted = False
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        self._wanted = False
        if not self.alive():
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def logged_since(self, offset: int) -> str:
        """Everything logged after ``offset`` (from ``log_size``): a line searched for must not
        scroll out of ``tail`` under a busy beat."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _require_real_parts()


@pytest.fixture(scope="session")
def redis_control(redis_url: str) -> Callable[[str], None]:
    """``redis_control("redis-stop")`` / ``("redis-start")``: the broker outage, for real."""
    port = str(urlsplit(redis_url).port)

    def run(action: str) -> None:
        subprocess.run(  # noqa: S603
            [str(ROOT / "scripts/services.sh"), action],
            check=True,
            env={**os.environ, "COUNTERSIGN_REDIS_PORT": port},
            capture_output=True,
        )

    return run


@pytest.fixture(scope="session")
def stack_env(
    django_db_setup, django_db_blocker, redis_url, tmp_path_factory
) -> Iterator[dict[str, str]]:
    """The environment of the worker and web processes: production settings, the test
    database, and this process's keys (they decrypt the venue credentials it writes).

    Like production, they connect as the application role, which owns nothing: this process
    (the owner, which created and migrated the test database) grants it what ``migrate`` grants
    it in production, so the stack runs without UPDATE, DELETE or TRUNCATE on the audit trail.
    """
    app = urlsplit(os.environ.get("COUNTERSIGN_APP_DATABASE_URL", ""))
    if not app.username:
        pytest.fail("set COUNTERSIGN_APP_DATABASE_URL (the lines of `scripts/services.sh env`)")
    with django_db_blocker.unblock():
        db = connection.settings_dict
        with connection.cursor() as cursor:
            for statement in app_role_statements(app.username, quote=connection.ops.quote_name):
                cursor.execute(statement)
    database_url = "postgres://{}:{}@{}:{}/{}".format(
        urlquote(app.username, safe=""),
        urlquote(app.password or "", safe=""),
        db["HOST"],
        db["PORT"],
        db["NAME"],
    )
    var_dir = tmp_path_factory.mktemp("stack-var")
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # nothing left over from an earlier run
    env = {
        **os.environ,
        **PROCESS_ENV,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": settings.SECRET_KEY,
        "COUNTERSIGN_CREDENTIALS_KEY": settings.CREDENTIALS_KEY,
        "COUNTERSIGN_AUDIT_KEY": settings.AUDIT_HMAC_KEY,
        "ALLOWED_HOSTS": HOST,
        "CSRF_TRUSTED_ORIGINS": ORIGIN,
        "COUNTERSIGN_VAR_DIR": str(var_dir),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_BROKER_URL", None)
    yield env
    # Every test has run and the worker and web processes are stopped (they depend on this
    # fixture). Sessions still open on the test database (theirs, ending a moment late, or ones
    # left by finished threads of this process) would make dropping it fail: end them.
    with django_db_blocker.unblock():
        wait_until("other database sessions to end", _other_sessions_ended, 30)


def _other_sessions_ended() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] == 0


def start_worker(
    env: dict[str, str],
    name: str,
    *,
    pool: str = "prefork",
    beat: bool = True,
    supervised: bool = False,
) -> Process:
    """``celery -A config worker`` (with embedded beat unless told not), as one process group."""
    var_dir = Path(env["COUNTERSIGN_VAR_DIR"])
    argv = [
        str(ROOT / ".venv/bin/celery"),
        "-A",
        "config",
        "worker",
        f"--pool={pool}",
        "--loglevel=INFO",
        f"--hostname={name}@%h",
    ]
    if pool == "prefork":
        argv.append("--concurrency=2")
    if beat:
        argv += ["--beat", f"--schedule={var_dir / f'{name}-beat-schedule'}"]
    return Process(argv, env, var_dir / f"{name}.log", supervised=supervised).start()


@pytest.fixture(scope="session")
def worker(stack_env) -> Iterator[Process]:
    proc = start_worker(stack_env, "worker", supervised=True)
    wait_until(
        "the worker's first heartbeat", lambda: _heartbeat_seen(stack_env), 60, log=proc.tail
    )
    yield proc
    proc.stop()


def _heartbeat_seen(env: dict[str, str]) -> bool:
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    return any(True for _ in client.scan_iter(match="*countersign:worker-heartbeat*"))


@pytest.fixture(scope="session")
def web(stack_env) -> Iterator[str]:
    """gunicorn serving config.wsgi (production settings) after collectstatic, as the README
    documents; 2 processes x 25 threads, so 50 requests really are in flight at once."""
    var_dir = Path(stack_env["COUNTERSIGN_VAR_DIR"])
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=stack_env,
        check=True,
    )
    port = free_port()
    proc = Process(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "gthread",
            "--threads",
            "25",
            "--timeout",
            "60",
        ],
        stack_env,
        var_dir / "web.log",
    ).start()
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", headers=web_headers(), timeout=2).status_code > 0
        except httpx.HTTPError:
            return False

    wait_until("gunicorn to answer", up, 60, log=proc.tail)
    yield url
    proc.stop()


def web_headers() -> dict[str, str]:
    # Behind the TLS proxy production runs behind: the proxy says the request came over HTTPS.
    return {"Host": HOST, "X-Forwarded-Proto": "https", "Origin": ORIGIN}


class Browser:
    """One signed-in user talking to gunicorn: session and CSRF cookies, form posts."""

    def __init__(self, base_url: str, user: Any) -> None:
        self.base_url = base_url
        self.user = user
        client = verified_login(Client(), user)  # the session row lives in the shared database
        self.session_id = client.cookies[settings.SESSION_COOKIE_NAME].value
        self.csrf = secrets.token_hex(16)  # any 32-character secret the cookie also carries

    def post(self, path: str, data: dict[str, Any], **headers: str) -> httpx.Response:
        cookies = f"{settings.SESSION_COOKIE_NAME}={self.session_id}; csrftoken={self.csrf}"
        return httpx.post(
            f"{self.base_url}{path}",
            data={**data, "csrfmiddlewaretoken": self.csrf},
            headers={**web_headers(), "Cookie": cookies, **headers},
            timeout=60,
            follow_redirects=False,
        )

    def follow(self, response: httpx.Response) -> httpx.Response:
        """The page a redirect leads to, with the one-time messages it set (cookie storage)."""
        carried = "; ".join(f"{name}={value}" for name, value in response.cookies.items())
        cookies = f"{settings.SESSION_COOKIE_NAME}={self.session_id}; csrftoken={self.csrf}"
        return httpx.get(
            f"{self.base_url}{response.headers['location']}",
            headers={**web_headers(), "Cookie": f"{cookies}; {carried}" if carried else cookies},
            timeout=60,
        )

    def request(self, address: Any, amount: Any) -> Any:
        """The requester's form: a withdrawal created by the web process (its quote too)."""
        form = {"venue": address.venue_id, "address": address.pk, "amount": f"{amount:f}"}
        response = self.post("/withdrawals/new/", form)
        assert response.status_code == 302, response.text
        return WithdrawalRequest.objects.get(pk=int(response.headers["location"].split("/")[-2]))

    def quote(self, withdrawal: Any) -> str:
        """Load a fresh quote in the approve panel, as the approver's button does; the venue's
        call budget may hold it back for a moment (the panel says so): try again, as a person
        would."""
        path = f"/withdrawals/{withdrawal.pk}/quote/"
        found = wait_until(
            f"a quote for #{withdrawal.pk}",
            lambda: QUOTE_ID.search(self.post(path, {}, **{"HX-Request": "true"}).text),
            timeout=120,
        )
        return found.group(1)

    def approve_form(self, withdrawal: Any) -> dict[str, str]:
        return {"quote": self.quote(withdrawal), "code": current_code(self.user)}

    def approve(self, withdrawal: Any) -> httpx.Response:
        return self.post(f"/withdrawals/{withdrawal.pk}/approve/", self.approve_form(withdrawal))


QUOTE_ID = re.compile(r'name="quote" value="(\d+)"')


@pytest.fixture
def stack(transactional_db, worker, web) -> dict[str, Any]:
    policy_install({"quorum": QUORUM})
    return {"worker": worker, "web": web}


@pytest.fixture
def venue_server(transactional_db) -> Iterator[LoopbackServer]:
    """The Kraken spot sandbox over loopback, on this test's sandbox state file."""
    server = LoopbackServer(sandbox_for(KIND)).start()
    yield server
    server.stop()


@pytest.fixture
def loopback_address(transactional_db) -> Iterator[Callable[[str], Any]]:
    """``loopback_address(kind)``: an active address at a venue of that kind whose sandbox is
    served over loopback HTTP (on this test's sandbox state file)."""
    servers: list[LoopbackServer] = []

    def make(kind: str) -> Any:
        server = LoopbackServer(sandbox_for(kind)).start()
        servers.append(server)
        venue = VenueFactory(kind=kind, name=f"{kind} (loopback)", base_url=server.url)
        if kind == "kraken":
            _counter_on(venue)
        return WhitelistedAddressFactory(venue=venue, destination=0)

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(venue_server):
    return sandbox_for(KIND)


@pytest.fixture
def live_venue(venue_server, sandbox):
    venue = VenueFactory(kind=KIND, name="Kraken spot (loopback)", base_url=venue_server.url)
    _counter_on(venue)
    return venue


def _counter_on(venue: Any) -> None:
    """Kraken's call counter at the starter tier, the slowest (the factory switches it off for
    the in-process tests): the stack's own budget (production settings) must live with it."""
    sandbox_for(venue.kind).account_upsert(seed_of(venue).credentials.api_key, rate_tier="starter")


@pytest.fixture
def live_address(live_venue):
    return WhitelistedAddressFactory(venue=live_venue, destination=0)


def pending_faults(sandbox: Any) -> list[dict[str, Any]]:
    """Faults injected and not yet taken by a request."""
    with sandbox.store.tx() as tx:
        return tx.all(f"{sandbox.kind}:faults")


@pytest.fixture
def carl(transactional_db):
    """A third approver: gives the first of the two approvals, so the last one can be raced."""
    return UserFactory(username="carl", roles=["approver"])


@pytest.fixture
def browser_for(stack) -> Callable[[Any], Browser]:
    return lambda user: Browser(stack["web"], user)


def current_code(user: Any) -> str:
    """The code the user's authenticator shows now (the web process checks real time)."""
    return totp_code(user, at=time.time())


def post_concurrently(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Start every call at the same moment (barrier), each on its own thread."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], httpx.Response]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except Exception as exc:  # reported below as a failed request, never swallowed
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    errors = [r for r in results if not isinstance(r, httpx.Response)]
    assert not errors, f"requests failed without an HTTP answer: {errors[:3]}"
    return results
