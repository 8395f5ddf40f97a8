"""Timing of pages through Django's test client (server time, in process), interleaved with the
admin peer, and of the exports against PostgreSQL's COPY."""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from withdrawals import selectors as withdrawal_selectors

from .seed import RARE_ASSET, Seeded
from .stats import percentile


@dataclass
class Figure:
    name: str
    target: str
    url: str
    who: str  # which persona's client asks: auditor, approver
    peer_url: str | None = None


@dataclass
class Result:
    name: str
    target: str
    measured: str
    peer: str
    ratio: str


def verified_client(user: Any) -> Client:
    """A signed-in session verified by the user's TOTP device, as after the verify step."""
    client = Client()
    client.force_login(user)
    session = client.session
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def _get_ms(client: Client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    if response.streaming:
        for _ in response.streaming_content:
            pass
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return elapsed


def _statements(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        _get_ms(client, url)
    return len(ctx.captured_queries)


def _timings(samples: list[float], statements: int) -> str:
    p50, p95 = percentile(samples, 0.5), percentile(samples, 0.95)
    return f"p50 {p50:.1f}, p95 {p95:.1f} ms, {statements} SQL"


def figures(seeded: Seeded) -> list[Figure]:
    today = timezone.localdate()
    since = (today - timedelta(days=400)).isoformat()
    until = (today - timedelta(days=371)).isoformat()
    venue = seeded.venue_ids[0]
    page = withdrawal_selectors.PAGE_SIZE
    deep = min(1000, max(seeded.withdrawals // page // 2, 2))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM withdrawals_withdrawalrequest ORDER BY id DESC OFFSET %s LIMIT 1",
            [(deep - 1) * page],
        )
        before = cursor.fetchone()[0] + 1
        cursor.execute("SELECT MAX(seq) FROM audit_auditevent")
        deep_seq = cursor.fetchone()[0] - (deep - 1) * page + 1
        cursor.execute("SELECT id, venue_reference FROM withdrawals_withdrawalrequest LIMIT 1")
        some_id, reference = cursor.fetchone()
    w, a, adm = "/withdrawals/", "/audit/events/", "/bench-admin/"
    wa, aa = f"{adm}withdrawals/withdrawalrequest/", f"{adm}audit/auditevent/"
    hist = "p95 ≤ 30 ms, ≥ 10x admin"
    fast = "p95 ≤ 30 ms"
    return [
        Figure("withdrawals history, first page", hist, w, "auditor", wa),
        Figure(
            "withdrawals, venue filter",
            hist,
            f"{w}?venue={venue}",
            "auditor",
            f"{wa}?venue__id__exact={venue}",
        ),
        Figure(
            "withdrawals, state filter",
            hist,
            f"{w}?state=failed",
            "auditor",
            f"{wa}?state__exact=failed",
        ),
        Figure(
            f"withdrawals, page {deep} (keyset vs OFFSET)",
            hist,
            f"{w}?before={before}",
            "auditor",
            f"{wa}?p={deep * page // 100}",
        ),
        Figure(
            "withdrawals, 30-day date range",
            fast,
            f"{w}?since={since}&until={until}",
            "auditor",
            f"{wa}?{
                urlencode(
                    {
                        'created_at__gte': f'{since}T00:00:00+00:00',
                        'created_at__lt': f'{until}T00:00:00+00:00',
                    }
                )
            }",
        ),
        Figure(
            "withdrawals, search by reference",
            fast,
            f"{w}?q={reference[3:15]}",
            "auditor",
            f"{wa}?q={reference[3:15]}",
        ),
        Figure(
            "withdrawals, search with no match",
            fast,
            f"{w}?q=nomatchanywhere",
            "auditor",
            f"{wa}?q=nomatchanywhere",
        ),
        Figure("withdrawals, rare asset", fast, f"{w}?asset={RARE_ASSET.lower()}", "auditor"),
        Figure("withdrawals, amount ≥ 1M", fast, f"{w}?amount_min=1000000", "auditor"),
        Figure("withdrawals, unknown requester", fast, f"{w}?user=nobody", "auditor"),
        Figure("audit events, first page", fast, a, "auditor", aa),
        Figure(
            "audit events, deep page",
            fast,
            f"{a}?before={deep_seq}",
            "auditor",
            f"{aa}?p={deep * page // 100}",
        ),
        Figure(
            "audit events, action prefix",
            fast,
            f"{a}?action=auth.",
            "auditor",
            f"{aa}?action__startswith=auth.",
        ),
        Figure(
            "audit events, 30-day date range", fast, f"{a}?since={since}&until={until}", "auditor"
        ),
        Figure("auditors' dashboard (charts)", fast, "/audit/", "auditor"),
        Figure("withdrawal detail page", fast, f"{w}{some_id}/", "auditor"),
        Figure("approval queue", fast, "/", "approver"),
    ]


def measure_pages(
    seeded: Seeded, *, rounds: int, samples: int = 3, quiet: bool = False
) -> list[Result]:
    """Every figure ``samples`` times a round and its peer once, ``rounds`` rounds, each round's
    requests in a shuffled order: a p95 of 40 samples is the second slowest of them, and more
    of the admin's slow pages would only lengthen the run."""
    clients = {
        "auditor": verified_client(seeded.auditor),
        "approver": verified_client(seeded.approver),
        "admin": verified_client(seeded.admin),
    }
    todo = figures(seeded)
    ours: dict[str, list[float]] = {f.name: [] for f in todo}
    peers: dict[str, list[float]] = {f.name: [] for f in todo}
    for figure in todo:  # warm caches and plans once, untimed
        _get_ms(clients[figure.who], figure.url)
        if figure.peer_url:
            _get_ms(clients["admin"], figure.peer_url)
    requests = [(ours, f.name, clients[f.who], f.url) for f in todo for _ in range(samples)]
    requests += [(peers, f.name, clients["admin"], f.peer_url) for f in todo if f.peer_url]
    for n in range(rounds):
        random.shuffle(requests)
        for store, name, client, url in requests:
            store[name].append(_get_ms(client, url))
        if not quiet:
            print(f"\r  pages: round {n + 1}/{rounds}", end="", file=sys.stderr)
    if not quiet:
        print(file=sys.stderr)
    results = []
    for figure in figures(seeded):
        mine = ours[figure.name]
        stmts = _statements(clients[figure.who], figure.url)
        measured = _timings(mine, stmts)
        peer = ratio = "-"
        if figure.peer_url:
            theirs = peers[figure.name]
            peer_stmts = _statements(clients["admin"], figure.peer_url)
            peer = _timings(theirs, peer_stmts)
            ratio = f"{statistics.median(theirs) / statistics.median(mine):.1f}x"
        results.append(Result(figure.name, figure.target, measured, peer, ratio))
    return results


def export_once(user: Any, dataset: str, fmt: str) -> dict[str, float]:
    """One export through the view, consumed to the end: seconds and this process's peak RSS."""
    client = verified_client(user)
    started = time.perf_counter()
    response = client.get(f"/audit/export/{dataset}.{fmt}")
    size = 0
    for chunk in response.streaming_content:
        size += len(chunk)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "bytes": size, "peak_mb": peak_mb}


def copy_once() -> dict[str, float]:
    """The peer: PostgreSQL's own COPY of the withdrawals table to CSV, read by psycopg."""
    started = time.perf_counter()
    size = 0
    sql = "COPY (SELECT * FROM withdrawals_withdrawalrequest) TO STDOUT WITH CSV HEADER"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for chunk in copy:
            size += len(chunk)
    return {"seconds": time.perf_counter() - started, "bytes": size}


def measure_exports(seeded: Seeded, *, in_process: bool = False) -> list[Result]:
    """Each export in a fresh process (``python -m bench export``), so its peak memory is its
    own; ``in_process`` is for the test, whose rows live in an uncommitted transaction."""
    peer = copy_once()
    peer_rate = seeded.withdrawals / peer["seconds"]
    results = []
    for fmt in ("csv", "json"):
        if in_process:
            got = export_once(seeded.auditor, "withdrawals", fmt)
        else:
            # Our own interpreter and module, fixed arguments.
            out = subprocess.run(  # noqa: S603
                [sys.executable, "-m", "bench", "export", "withdrawals", fmt],
                check=True,
                capture_output=True,
                text=True,
                env=os.environ,
            ).stdout
            got = json.loads(out.strip().splitlines()[-1])
        rate = seeded.withdrawals / got["seconds"]
        results.append(
            Result(
                f"export of {seeded.withdrawals:,} withdrawals, {fmt.upper()}",
                "≥ 100,000 rows/s, ≤ 150 MB",
                f"{rate:,.0f} rows/s, peak {got['peak_mb']:.0f} MB",
                f"COPY {peer_rate:,.0f} rows/s",
                f"{rate / peer_rate:.2f}x",
            )
        )
    return results


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
        memory = f", {kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, StopIteration):
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    # Other work on the machine moves every figure: the load at the end of the run says how much.
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}, load average {load}; "
        f"{platform.system()} {platform.release()}; "
        f"PostgreSQL {pg} (fsync off, throwaway); Python {platform.python_version()}"
    )
