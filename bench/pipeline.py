"""From approved to submitted through Redis and real Celery worker processes, to the Kraken
sandbox served over loopback HTTP (in this process, so its own records can be counted).

The workers run ``config.settings.production`` as the application role, with production's
clocks and call budgets. Rate limiting is kept out of the figure the way an operator would,
with many venue accounts (``BENCH_PIPELINE_ACCOUNTS``), each sending a handful.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote as urlquote
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit.db_roles import app_role_statements
from config.celery import app as celery_app
from venues.interface import WithdrawalSpec
from venues.models import Venue
from venues.registry import client_for
from venues.sandbox.registry import sandbox_for
from venues.sandbox.server import LoopbackServer
from whitelist.models import AddressState, WhitelistedAddress
from withdrawals import tasks
from withdrawals.models import (
    Approval,
    Quote,
    State,
    SubmissionIntent,
    WithdrawalRequest,
)

from .measure import Result
from .stats import percentile

ROOT = Path(__file__).resolve().parent.parent
KIND = "kraken"
WAIT_SECONDS = 900.0


@dataclass
class PipelineRun:
    count: int
    seconds: float
    submitted: int
    states: dict[str, int]
    duplicates: int
    venue_withdrawals: int
    latency_p50: float
    latency_p95: float
    worker_cpu_ms: float  # the workers' CPU per withdrawal, start-up excluded
    sandbox_cpu_ms: float  # this process's (the sandbox server's, mostly) per withdrawal
    # Each send enqueues a status poll a second later, behind the sends still queued: most
    # run after the last send. These figures wait for them too.
    polled: int  # withdrawals polled at least once
    worker_cpu_with_poll_ms: float
    sandbox_cpu_with_poll_ms: float

    @property
    def rate(self) -> float:
        return self.submitted / self.seconds if self.seconds else 0.0


def _accounts(count: int, server: LoopbackServer) -> list[tuple[WhitelistedAddress, dict]]:
    """``count`` Kraken accounts at the loopback sandbox, each with its saved address active
    (and the destination's minimum and precision)."""
    sandbox = sandbox_for(KIND)
    addresses = []
    for index in range(count):
        seed = sandbox.seed(balance=Decimal("1000"))
        # The sandbox's own call counter is the venue's: off, as for an account on a high tier.
        sandbox.account_upsert(seed.credentials.api_key, rate_tier="")
        venue = Venue(
            kind=KIND,
            name=f"Bench pipeline {index}",
            base_url=server.url,
            account=seed.credentials.account,
            options_json={
                k: getattr(seed.options, k)
                for k in ("fee_deduct_type", "path_prefix", "key_version")
            },
        )
        venue.set_credentials(
            api_key=seed.credentials.api_key,
            api_secret=seed.credentials.api_secret,
            passphrase=seed.credentials.passphrase,
        )
        venue.save()
        dest = seed.destinations[0]
        addresses.append(
            (
                WhitelistedAddress.objects.create(
                    venue=venue,
                    asset=dest["asset"],
                    network=dest["network"],
                    address=dest["address"],
                    memo=dest.get("memo", ""),
                    venue_key=dest.get("venue_key", ""),
                    label="bench pipeline",
                    state=AddressState.ACTIVE,
                    active_from=timezone.now(),
                ),
                dest,
            )
        )
    return addresses


def _approved(
    addresses: list[tuple[WhitelistedAddress, dict]], count: int, requester: Any, approver: Any
) -> list[int]:
    """``count`` withdrawals in ``approved`` with their approval, confirmed quote and outbox row,
    as the last approval leaves them. Amounts differ within an account, so each venue
    withdrawal can be told apart in the sandbox's records."""
    now = timezone.now()
    ids = []
    # The policy in force (migration policies.0002's default rule) asks for one approval.
    quorum = 1
    approvers = [approver]
    first, dest = addresses[0]
    # The venue's own fee for this destination, confirmed as an approver would have.
    client = client_for(first.venue)
    try:
        fee = client.quote(
            WithdrawalSpec(
                request_id=uuid.uuid4(),
                asset=first.asset,
                network=first.network,
                address=first.address,
                memo=first.memo,
                amount=dest["minimum"] * 2,
                venue_key=first.venue_key,
            )
        ).fee
    finally:
        client.close()
    for index in range(count):
        address, dest = addresses[index % len(addresses)]
        unit = Decimal(1).scaleb(-dest["precision"])
        withdrawal = WithdrawalRequest(
            venue=address.venue,
            whitelisted_address=address,
            asset=address.asset,
            network=address.network,
            address=address.address,
            memo=address.memo,
            venue_key=address.venue_key,
            amount=dest["minimum"] * 2 + unit * (index // len(addresses) + 1),
            fee_cap=fee,
            state=State.APPROVED,
            requested_by=requester,
        )
        withdrawal.payload_hash = withdrawal.compute_payload_hash()
        withdrawal.save()
        quote = Quote.objects.create(
            withdrawal=withdrawal,
            fee=fee,
            expires_at=now + timedelta(hours=1),
            shown_to=approver,
        )
        for n, who in enumerate(approvers):
            Approval.objects.create(
                withdrawal=withdrawal,
                approver=who,
                requester=requester,
                payload_hash=withdrawal.payload_hash,
                quote=quote,
                totp_step=10_000_000 + index * quorum + n,
            )
        withdrawal.confirmed_quote = quote
        withdrawal.save(update_fields=["confirmed_quote"])
        SubmissionIntent.objects.create(withdrawal=withdrawal, enqueued_at=now)
        ids.append(withdrawal.pk)
    return ids


def production_env(var_dir: Path) -> dict[str, str]:
    """Production settings on this database as the application role, with this process's keys
    (they decrypt the venue credentials written here and extend the same audit chain)."""
    app = urlsplit(os.environ.get("COUNTERSIGN_APP_DATABASE_URL", ""))
    if not app.username:
        raise RuntimeError("set COUNTERSIGN_APP_DATABASE_URL (scripts/services.sh env)")
    with connection.cursor() as cursor:
        for statement in app_role_statements(app.username, quote=connection.ops.quote_name):
            cursor.execute(statement)
    db = connection.settings_dict
    database_url = "postgres://{}:{}@{}:{}/{}".format(
        urlquote(app.username, safe=""),
        urlquote(app.password or "", safe=""),
        db["HOST"],
        db["PORT"],
        db["NAME"],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": database_url,
        "REDIS_URL": os.environ["REDIS_URL"],
        "SECRET_KEY": settings.SECRET_KEY,
        "COUNTERSIGN_CREDENTIALS_KEY": settings.CREDENTIALS_KEY,
        "COUNTERSIGN_AUDIT_KEY": settings.AUDIT_HMAC_KEY,
        "ALLOWED_HOSTS": "countersign.bench",
        "CSRF_TRUSTED_ORIGINS": "https://countersign.bench",
        "COUNTERSIGN_VAR_DIR": str(var_dir),
    }


def _start_workers(env: dict[str, str], var_dir: Path, *, concurrency: int) -> subprocess.Popen:
    log = (var_dir / "bench-worker.log").open("ab")
    return subprocess.Popen(  # noqa: S603 - our own venv binary
        [
            str(ROOT / ".venv/bin/celery"),
            "-A",
            "config",
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--hostname=bench@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_ready(worker: subprocess.Popen, var_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError((var_dir / "bench-worker.log").read_text()[-3000:])
        if celery_app.control.ping(timeout=1.0):
            return
    raise RuntimeError("the bench worker did not answer a ping within 120 s")


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)


def _duplicates(ids: list[int]) -> tuple[int, int]:
    """(duplicate venue withdrawals, venue withdrawals of these accounts), from the sandbox's
    own records: one venue withdrawal per (account, amount) is one per our withdrawal."""
    keys = {
        v.credentials.api_key
        for v in Venue.objects.filter(
            pk__in=WithdrawalRequest.objects.filter(pk__in=ids).values("venue_id")
        )
    }
    docs = [d for d in sandbox_for(KIND).all_withdrawals() if d["account"] in keys]
    per_payment = Counter((d["account"], Decimal(d["amount_sent"])) for d in docs)
    return sum(n - 1 for n in per_payment.values() if n > 1), len(docs)


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) of the live processes of one process group, from /proc: the
    figure that does not depend on how busy the machine's other users keep its cores."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name may hold spaces: the fields after its closing parenthesis.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def run_pipeline(
    *,
    count: int,
    accounts: int,
    concurrency: int,
    requester: Any,
    approver: Any,
    quiet: bool = False,
) -> PipelineRun:
    var_dir = Path(tempfile.mkdtemp(prefix="countersign-bench-pipeline-"))
    server = LoopbackServer(sandbox_for(KIND)).start()
    worker = None
    try:
        addresses = _accounts(min(accounts, count), server)
        ids = _approved(addresses, count, requester, approver)
        worker = _start_workers(production_env(var_dir), var_dir, concurrency=concurrency)
        _wait_ready(worker, var_dir)
        celery_app.conf.task_always_eager = False
        cpu_before = group_cpu_seconds(worker.pid), time.process_time()
        started = timezone.now()
        for pk in ids:
            tasks.submit_withdrawal.delay(pk)
        rows = WithdrawalRequest.objects.filter(pk__in=ids)
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            settled = rows.exclude(state__in=[State.APPROVED, State.SUBMITTING]).count()
            if not quiet:
                print(f"\r  pipeline: {settled:,}/{count:,} settled", end="", file=sys.stderr)
            if settled == count:
                break
            time.sleep(0.2)
        cpu_after = group_cpu_seconds(worker.pid), time.process_time()
        if not quiet:
            print(file=sys.stderr)
        unpolled = rows.filter(state=State.SUBMITTED, last_checked_at=None)
        while time.monotonic() < deadline and unpolled.exists():
            time.sleep(0.2)
        cpu_polled = group_cpu_seconds(worker.pid), time.process_time()
        sent = list(rows.exclude(submitted_at=None).values_list("submitted_at", flat=True))
        last = max(sent, default=started)
        latencies = [(at - started).total_seconds() * 1000 for at in sent]
        states = Counter(rows.values_list("state", flat=True))
        duplicates, venue_withdrawals = _duplicates(ids)
        return PipelineRun(
            count=count,
            seconds=(last - started).total_seconds(),
            submitted=len(sent),
            states=dict(states),
            duplicates=duplicates,
            venue_withdrawals=venue_withdrawals,
            latency_p50=statistics.median(latencies) if latencies else 0.0,
            latency_p95=percentile(latencies, 0.95) if latencies else 0.0,
            worker_cpu_ms=(cpu_after[0] - cpu_before[0]) * 1000 / count,
            sandbox_cpu_ms=(cpu_after[1] - cpu_before[1]) * 1000 / count,
            polled=rows.exclude(last_checked_at=None).count(),
            worker_cpu_with_poll_ms=(cpu_polled[0] - cpu_before[0]) * 1000 / count,
            sandbox_cpu_with_poll_ms=(cpu_polled[1] - cpu_before[1]) * 1000 / count,
        )
    finally:
        celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER
        if worker is not None:
            _stop(worker)
        server.stop()


def measure_pipeline(requester: Any, approver: Any, *, quiet: bool = False) -> Result:
    count = int(os.environ.get("BENCH_PIPELINE_COUNT", "1000"))
    accounts = int(os.environ.get("BENCH_PIPELINE_ACCOUNTS", "250"))
    concurrency = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "8"))
    run = run_pipeline(
        count=count,
        accounts=accounts,
        concurrency=concurrency,
        requester=requester,
        approver=approver,
        quiet=quiet,
    )
    others = ", ".join(
        f"{n} {state}"
        for state, n in sorted(run.states.items())
        if state not in (State.SUBMITTED, State.COMPLETED)
    )
    measured = (
        f"{run.rate:,.1f}/s ({run.submitted:,} of {run.count:,} in {run.seconds:.1f} s; "
        f"each sent p50 {run.latency_p50 / 1000:.1f}, p95 {run.latency_p95 / 1000:.1f} s after "
        f"the first enqueue), {run.duplicates} duplicates in the sandbox's "
        f"{run.venue_withdrawals:,} withdrawals; CPU per withdrawal to send it: workers "
        f"{run.worker_cpu_ms:.0f} ms, sandbox {run.sandbox_cpu_ms:.0f} ms; with its status "
        f"poll ({run.polled:,} polled): workers {run.worker_cpu_with_poll_ms:.0f} ms, sandbox "
        f"{run.sandbox_cpu_with_poll_ms:.0f} ms" + (f"; not submitted: {others}" if others else "")
    )
    peer = f"{accounts} accounts, 1 worker x {concurrency} prefork processes"
    return Result(
        f"{count:,} approved through Redis + Celery to the loopback sandbox",
        "≥ 200/s, 0 duplicates",
        measured,
        peer,
        "-",
    )
