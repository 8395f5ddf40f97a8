#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it: system programs first, then every pytest test,
# then the linters. Any failure, a lint finding, or a pytest run that collects no test at all
# (exit 5) makes the run fail. Extra arguments go to pytest, e.g. scripts/run-tests.sh -k browser.
#
# pytest runs twice: on SQLite, then on a throwaway PostgreSQL with Redis (scripts/services.sh),
# where the integration tests also run their Celery worker and gunicorn. The servers are stopped
# afterwards, unless they were already running before this script started them.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-system-deps.sh || exit 1

# Tests never touch the demo's var/ (its databases, broker queue and worker log).
var_dir=$(mktemp -d "${TMPDIR:-/tmp}/countersign-test.XXXXXX")
services_were_up=false
scripts/services.sh status 2>/dev/null && services_were_up=true
cleanup() {
  $services_were_up || scripts/services.sh stop >/dev/null 2>&1 || true
  rm -rf "$var_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export COUNTERSIGN_VAR_DIR="$var_dir"
# Playwright's sync API runs an event loop in the test thread; Django's ORM must still work there.
export DJANGO_ALLOW_ASYNC_UNSAFE=true
export PYTHONDONTWRITEBYTECODE=1

failed=()

# Both passes run on every core (at most PYTEST_WORKERS, default 2), each worker with its own
# test database; the integration tests stay together on one worker (tests/conftest.py).
workers=${PYTEST_WORKERS:-2}
parallel=()
[ "$workers" -gt 1 ] && parallel=(-n "$workers" --dist loadgroup)

pytest_pass() {
  local name=$1 rc
  shift
  "$@"
  rc=$?
  case $rc in
    0) ;;
    5) echo "error: pytest ($name) collected no tests" >&2; failed+=("pytest $name (no tests)") ;;
    *) failed+=("pytest $name (exit $rc)") ;;
  esac
}

echo "== pytest (SQLite)"
pytest_pass sqlite env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL .venv/bin/pytest "${parallel[@]}" "$@"

echo "== pytest (PostgreSQL and Redis, with the integration tests)"
if scripts/services.sh start >/dev/null; then
  mapfile -t services_env < <(scripts/services.sh env | sed 's/^export //')
  # -m "" lifts the default "not integration" selection of pyproject.toml.
  pytest_pass postgresql env "${services_env[@]}" .venv/bin/pytest -m "" "${parallel[@]}" "$@"
else
  failed+=("starting PostgreSQL and Redis")
fi

echo "== ruff check"
.venv/bin/ruff check --no-cache . || failed+=("ruff check")

echo "== ruff format --check"
.venv/bin/ruff format --check --no-cache . || failed+=("ruff format")

if [ ${#failed[@]} -ne 0 ]; then
  echo >&2
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo
echo "All tests and checks passed."
