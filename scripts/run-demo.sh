#!/usr/bin/env bash
# The demo: SQLite, in-process sandbox venues, a Celery worker (with beat) on kombu's filesystem
# broker - no Redis, no PostgreSQL - and Django's web server.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT="${PORT:-8000}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.base}"
# No cooling-off in the demo, so an approved address is usable at once.
export WHITELIST_COOLING_OFF_SECONDS="${WHITELIST_COOLING_OFF_SECONDS:-0}"

VAR="${COUNTERSIGN_VAR_DIR:-var}"
# The demo's databases hold password hashes, TOTP secrets and venue credentials: only the person
# running the demo may read them, files created from now on and those left by earlier runs.
umask 077
mkdir -p "$VAR"
chmod 700 "$VAR"
find "$VAR" -maxdepth 1 -name '*.sqlite3*' -exec chmod 600 {} +

$PY manage.py migrate --noinput -v 0
seed_output=$($PY manage.py seed_demo)

# Worker and beat in one process; the filesystem broker lives under $VAR/broker.
.venv/bin/celery -A config worker -B --pool=solo --concurrency=1 --loglevel=WARNING \
  --schedule="$VAR/celerybeat-schedule" >"$VAR/worker.log" 2>&1 &
worker=$!
server=""
stop() {
  # The worker gets a warm shutdown: a task in flight finishes, no submission is cut in half.
  for pid in $server $worker; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $server $worker; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
sleep 1
if ! kill -0 "$worker" 2>/dev/null; then
  echo "error: the background worker did not start; see $VAR/worker.log:" >&2
  tail -n 20 "$VAR/worker.log" >&2
  exit 1
fi

cat <<EOT

Countersign demo
================
Open http://127.0.0.1:${PORT}/ and sign in with one of these users. Each needs a TOTP code:
add its otpauth:// URI to an authenticator app (or: .venv/bin/python manage.py demo_totp NAME).

${seed_output}

Background worker (Celery, with beat) log: $VAR/worker.log. Stop with Ctrl-C.
EOT
# In the background, so that Ctrl-C or a TERM reaches this script's traps at once.
$PY manage.py runserver "127.0.0.1:${PORT}" --noreload &
server=$!
wait "$server"
