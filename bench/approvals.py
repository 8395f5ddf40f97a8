"""The approve action with 20 approvers at once, through gunicorn on production settings.

Each round has 20 approvers of its own (a TOTP step backs one approval only), each with a
TOTP-verified session and a fresh valid code, each approving a different withdrawal with the
quote they were shown. They are released together by a barrier, then each sends its POST at
once (the harshest reading of "within the same second") or after its own random delay within
one second (the literal one); the time is the client's, from sending the POST to its answer
(gunicorn's queueing included).
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.celery import app as celery_app
from whitelist.models import WhitelistedAddress
from withdrawals.models import Quote, State, WithdrawalRequest

from .measure import Result
from .pipeline import ROOT, group_cpu_seconds, production_env
from .stats import percentile

HOST = "countersign.bench"
APPROVERS = 20


def _approver(name: str) -> Any:
    user = get_user_model().objects.create_user(username=name, password=None)
    user.groups.add(Group.objects.get(name="approver"))
    TOTPDevice.objects.create(user=user, name="bench", key=secrets.token_hex(20), confirmed=True)
    return user


def _session(user: Any) -> str:
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.get(user=user).persistent_id
    session.save()
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _code(user: Any) -> str:
    device = TOTPDevice.objects.get(user=user)
    totp = TOTP(bytes.fromhex(device.key), step=device.step, t0=device.t0, digits=device.digits)
    totp.time = time.time()
    return f"{totp.token():0{device.digits}d}"


def _pending(address: WhitelistedAddress, requester: Any, approver: Any) -> tuple[int, int]:
    """A withdrawal pending approval and the quote ``approver`` was shown for it."""
    withdrawal = WithdrawalRequest(
        venue=address.venue,
        whitelisted_address=address,
        asset=address.asset,
        network=address.network,
        address=address.address,
        memo=address.memo,
        venue_key=address.venue_key,
        amount=Decimal("0.01"),
        fee_cap=Decimal("0.001"),
        state=State.PENDING_APPROVAL,
        requested_by=requester,
    )
    withdrawal.payload_hash = withdrawal.compute_payload_hash()
    withdrawal.save()
    quote = Quote.objects.create(
        withdrawal=withdrawal,
        fee=Decimal("0.0005"),
        expires_at=timezone.now() + timedelta(minutes=30),
        shown_to=approver,
    )
    return withdrawal.pk, quote.pk


def _start_web(env: dict[str, str], var_dir: Path) -> tuple[subprocess.Popen, str]:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    port = _free_port()
    log = (var_dir / "bench-web.log").open("ab")
    # As the README runs it: 2 processes x 25 threads.
    web = subprocess.Popen(  # noqa: S603 - our own venv binary
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
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if web.poll() is not None:
            raise RuntimeError((var_dir / "bench-web.log").read_text()[-3000:])
        try:
            httpx.get(f"{url}/healthz", headers=_headers(), timeout=2)
            return web, url
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError("gunicorn did not answer within 60 s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _headers() -> dict[str, str]:
    # Behind the TLS proxy production runs behind.
    return {"Host": HOST, "X-Forwarded-Proto": "https", "Origin": f"https://{HOST}"}


def _round(
    url: str,
    approvers: list[Any],
    address: WhitelistedAddress,
    requester: Any,
    *,
    delays: list[float],
) -> list:
    """Every approver approves their own withdrawal, each ``delays[i]`` seconds after a common
    start."""
    work = []
    for approver in approvers:
        pk, quote = _pending(address, requester, approver)
        work.append((pk, quote, approver, _session(approver)))
    barrier = threading.Barrier(len(work))
    timings: list[Any] = [None] * len(work)
    csrf = secrets.token_hex(16)

    def approve(index: int) -> None:
        pk, quote, approver, session = work[index]
        code = _code(approver)
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            time.sleep(delays[index])
            started = time.perf_counter()
            response = client.post(
                f"{url}/withdrawals/{pk}/approve/",
                data={"quote": quote, "code": code, "csrfmiddlewaretoken": csrf},
                headers={
                    **_headers(),
                    "Cookie": f"{settings.SESSION_COOKIE_NAME}={session}; csrftoken={csrf}",
                },
            )
            timings[index] = ((time.perf_counter() - started) * 1000, response.status_code)

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    approved = WithdrawalRequest.objects.filter(
        pk__in=[w[0] for w in work], state=State.APPROVED
    ).count()
    if approved != len(work) or any(t is None or t[1] != 302 for t in timings):
        raise RuntimeError(f"not every approval went through: {approved}/{len(work)}, {timings}")
    return [t[0] for t in timings]


# How each round's approvers spread their POSTs: (label, seconds over which they arrive).
MODES = (("at once", 0.0), ("within one second", 1.0))


def measure_approvals(seeded: Any, *, quiet: bool = False) -> list[Result]:
    rounds = int(os.environ.get("BENCH_APPROVE_ROUNDS", "5"))
    var_dir = Path(tempfile.mkdtemp(prefix="countersign-bench-web-"))
    env = production_env(var_dir)
    # One approval is the whole quorum here (the default rule of the policy in force), so every
    # approval is the one that moves the withdrawal to approved and enqueues its submission:
    # the heavier path.
    address = WhitelistedAddress.objects.filter(venue_id__in=seeded.venue_ids).first()
    web, url = _start_web(env, var_dir)
    samples: dict[str, list[float]] = {label: [] for label, _ in MODES}
    try:
        # Round 0 is not counted: it warms each gunicorn process (imports, templates, the
        # database and broker connections), which a running service has done long before.
        approvers = [_approver(f"bench-approver-warm-{i:02d}") for i in range(APPROVERS)]
        _round(url, approvers, address, seeded.requester, delays=[0.0] * APPROVERS)
        warm_cpu = group_cpu_seconds(web.pid)
        for label, within in MODES:
            spread = random.Random(label)
            for n in range(1, rounds + 1):
                approvers = [
                    _approver(f"bench-approver-{within:g}-r{n}-{i:02d}") for i in range(APPROVERS)
                ]
                delays = [spread.uniform(0, within) for _ in approvers]
                samples[label] += _round(url, approvers, address, seeded.requester, delays=delays)
                if not quiet:
                    print(f"\r  approve {label}: round {n}/{rounds}", end="", file=sys.stderr)
            if not quiet:
                print(file=sys.stderr)
        measured = sum(len(s) for s in samples.values())
        cpu_ms = (group_cpu_seconds(web.pid) - warm_cpu) * 1000 / measured
    finally:
        if web.poll() is None:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(30)
        # The submissions these approvals enqueued go to a sandbox:// venue no worker serves.
        celery_app.control.purge()
    results = []
    for label, timings in samples.items():
        p50, p95 = statistics.median(timings), percentile(timings, 0.95)
        results.append(
            Result(
                f"approve action, {APPROVERS} approvers {label}",
                "p95 ≤ 25 ms",
                f"p50 {p50:.1f}, p95 {p95:.1f} ms ({rounds} rounds, gunicorn 2x25 threads; "
                f"gunicorn CPU {cpu_ms:.1f} ms per approval over both rows)",
                "-",
                "-",
            )
        )
    return results
