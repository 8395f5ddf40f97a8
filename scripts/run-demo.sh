#!/usr/bin/env bash
# The demo: SQLite, in-process sandbox venues, a Celery worker (with beat) on kombu's filesystem
# broker - no Redis, no PostgreSQL - and Django's web server.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT="${PORT:-8000}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.base}"

$PY manage.py migrate --noinput -v 0
seed_output=$($PY manage.py seed_demo)

.venv/bin/celery -A config worker -B --pool=solo --concurrency=1 --loglevel=WARNING \
  --schedule=var/celerybeat-schedule >var/worker.log 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null || true' EXIT INT TERM

cat <<EOT

Countersign demo
================
Open http://127.0.0.1:${PORT}/ and sign in with one of these users. Each needs a TOTP code:
add its otpauth:// URI to an authenticator app (or: .venv/bin/python manage.py demo_totp NAME).

${seed_output}

Background worker log: var/worker.log. Stop with Ctrl-C.
EOT
$PY manage.py runserver "127.0.0.1:${PORT}" --noreload
