"""python -m bench [run | submission | export DATASET FMT]: run against the database of
DATABASE_URL, which scripts/bench.sh starts empty on ports of its own (see docs/bench.md).
``submission`` measures only the approve and pipeline figures, on a small seed."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

from . import approvals, measure, pipeline, seed  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "bench.md"


def table(results: list[measure.Result]) -> str:
    lines = ["| figure | target | measured | peer | ratio |", "|---|---|---|---|---|"]
    lines += [f"| {r.name} | {r.target} | {r.measured} | {r.peer} | {r.ratio} |" for r in results]
    return "\n".join(lines)


def run() -> None:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "40"))
    samples = int(os.environ.get("BENCH_PAGE_SAMPLES", "3"))
    print("== migrate", file=sys.stderr)
    call_command("migrate", verbosity=0)
    print(f"== seed (scale {scale})", file=sys.stderr)
    started = time.monotonic()
    seeded = seed.seed(scale=scale)
    seed_seconds = time.monotonic() - started
    print(f"== pages ({rounds} interleaved rounds, {samples} samples each)", file=sys.stderr)
    results = measure.measure_pages(seeded, rounds=rounds, samples=samples)
    print("== exports", file=sys.stderr)
    results += measure.measure_exports(seeded)
    print("== approve, 20 approvers at once and within one second", file=sys.stderr)
    results += approvals.measure_approvals(seeded)
    print("== approved to submitted through Redis and Celery", file=sys.stderr)
    results.append(pipeline.measure_pipeline(seeded.requester, seeded.approver))
    body = table(results)
    print(body)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = (
        f"Run {when}: {seeded.withdrawals:,} withdrawals, {seeded.audit_events:,} audit events "
        f"(BENCH_SCALE={scale}, seeded in {seed_seconds:.0f} s), {rounds} rounds of each page "
        f"{samples} times and its peer once.\n\n"
        f"Machine: {measure.machine()}\n"
    )
    write_doc(header, body)


def write_doc(header: str, body: str) -> None:
    """Replace the generated section of docs/bench.md, keeping the hand-written notes."""
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    text = DOC.read_text() if DOC.exists() else f"# Benchmark\n\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    DOC.write_text(f"{before}{start}\n{header}\n{body}\n{end}{after}")
    print(f"written to {DOC}", file=sys.stderr)


def run_submission_figures() -> None:
    """Only the approve and pipeline figures, on a small seed: ``python -m bench submission``."""
    call_command("migrate", verbosity=0)
    seeded = seed.seed(scale=0, quiet=True, withdrawals=200, audit_events=1000)
    results = [
        *approvals.measure_approvals(seeded),
        pipeline.measure_pipeline(seeded.requester, seeded.approver),
    ]
    print(table(results))


def export(dataset: str, fmt: str) -> None:
    auditor = get_user_model().objects.get(username="bench-auditor")
    print(json.dumps(measure.export_once(auditor, dataset, fmt)))


if __name__ == "__main__":
    args = sys.argv[1:] or ["run"]
    if args[0] == "export":
        export(args[1], args[2])
    elif args[0] == "submission":
        run_submission_figures()
    else:
        run()
