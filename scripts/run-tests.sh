#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it: system programs first, then every pytest test,
# then the linters. Any failure, a lint finding, or a pytest run that collects no test at all
# (exit 5) makes the run fail. Extra arguments go to pytest, e.g. scripts/run-tests.sh -k browser.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-system-deps.sh || exit 1

# Tests never touch the demo's var/ (its databases, broker queue and worker log).
var_dir=$(mktemp -d "${TMPDIR:-/tmp}/countersign-test.XXXXXX")
trap 'rm -rf "$var_dir"' EXIT
export COUNTERSIGN_VAR_DIR="$var_dir"
# Playwright's sync API runs an event loop in the test thread; Django's ORM must still work there.
export DJANGO_ALLOW_ASYNC_UNSAFE=true
export PYTHONDONTWRITEBYTECODE=1

failed=()

echo "== pytest"
.venv/bin/pytest "$@"
rc=$?
case $rc in
  0) ;;
  5) echo "error: pytest collected no tests" >&2; failed+=("pytest (no tests)") ;;
  *) failed+=("pytest (exit $rc)") ;;
esac

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
