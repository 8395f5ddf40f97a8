#!/usr/bin/env bash
# `make bench`: a throwaway PostgreSQL and Redis on ports of their own (never the test suite's),
# seeded at BENCH_SCALE (1 = 1M withdrawals, 5M audit events), measured, then stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
export COUNTERSIGN_PG_PORT=${BENCH_PG_PORT:-54601}
export COUNTERSIGN_REDIS_PORT=${BENCH_REDIS_PORT:-63911}
trap 'scripts/services.sh stop >/dev/null 2>&1 || true' EXIT
# Start from an empty database: a previous run's rows would be counted twice.
scripts/services.sh stop >/dev/null 2>&1 || true
scripts/services.sh start >/dev/null
eval "$(scripts/services.sh env)"
export DJANGO_SETTINGS_MODULE=bench.settings
export COUNTERSIGN_VAR_DIR=${COUNTERSIGN_VAR_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/countersign-bench.XXXXXX")}
.venv/bin/python -m bench "${@:-run}"
