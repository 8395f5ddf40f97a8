#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis on loopback for the production-profile tests.
#
#   scripts/services.sh start    install if missing, start both, print the environment to use
#   scripts/services.sh stop     stop both and delete their data
#   scripts/services.sh env      print DATABASE_URL (the owner: the test process creates and
#                                migrates databases, as a deploy's migrate does),
#                                COUNTERSIGN_APP_DATABASE_URL (the application role the web and
#                                worker processes of the integration tests use) and REDIS_URL
#   scripts/services.sh status   exit 0 when both are running
#   scripts/services.sh redis-stop | redis-start   (the broker-outage tests use these)
#
# Idempotent: starting what runs, or stopping what does not, is not an error. PostgreSQL runs as
# the `postgres` user when this script runs as root (never as root itself); otherwise as the
# caller. Ports and the state directory come from the environment so two checkouts can coexist.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT=${COUNTERSIGN_PG_PORT:-54329}
REDIS_PORT=${COUNTERSIGN_REDIS_PORT:-63799}
STATE_DIR=${COUNTERSIGN_SERVICES_DIR:-/tmp/countersign-services-$PG_PORT}
# Everything PostgreSQL writes lives under PG_DIR, owned by the user it runs as.
PG_DIR=$STATE_DIR/pg
PG_DATA=$PG_DIR/data
PG_SOCK=$PG_DIR/sock
PG_LOG=$PG_DIR/postgres.log
REDIS_DIR=$STATE_DIR/redis
# Two roles, as in production: the owner runs migrations and owns every table; the application
# role owns nothing, so on the audit tables it gets no UPDATE, DELETE, TRUNCATE or trigger rights
# (audit.db_roles). The test process connects as the owner (pytest-django creates and migrates
# its throwaway database); the integration tests' gunicorn and Celery worker connect as the
# application role, and tests/audit/test_db_roles.py checks what that role is refused.
PG_OWNER=countersign_owner
PG_OWNER_PASSWORD=countersign-owner-test-only
PG_USER=countersign
PG_PASSWORD=countersign-test-only
PG_DB=countersign

DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
OWNER_DATABASE_URL="postgres://$PG_OWNER:$PG_OWNER_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

die() {
  echo "error: $*" >&2
  exit 1
}

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

# Run a command as the database owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_running() {
  local bin
  bin=$(pg_bin) || return 1
  [ -f "$PG_DATA/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

redis_running() {
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

wait_for() {
  local what=$1 check=$2 i
  for i in $(seq 1 100); do
    "$check" && return 0
    sleep 0.1
  done
  die "$what did not come up (see $STATE_DIR)"
}

pg_start() {
  local bin
  bin=$(pg_bin) || die "PostgreSQL server binaries not found; run scripts/ensure-system-deps.sh"
  if [ "$(id -u)" -eq 0 ]; then
    getent passwd postgres >/dev/null || die "user postgres is missing (the postgresql package creates it)"
  fi
  mkdir -p "$STATE_DIR"
  chmod 755 "$STATE_DIR"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    rm -rf "$PG_DIR"
    mkdir -p "$PG_DATA" "$PG_SOCK"
    chmod 700 "$PG_DATA"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$PG_DIR"; fi
    # Peer auth on the socket (for setup below), passwords on loopback TCP.
    as_owner "$bin/initdb" -D "$PG_DATA" -U postgres --auth-local=peer \
      --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$STATE_DIR/initdb.log" 2>&1 ||
      { cat "$STATE_DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  if ! pg_running; then
    # Throwaway data: durability settings off, and room for the 50-request concurrency test.
    as_owner "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 30 start -o \
      "-p $PG_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1 -c max_connections=300 \
       -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null ||
      { tail -n 20 "$PG_LOG" >&2; die "PostgreSQL did not start"; }
  fi
  as_owner "$bin/psql" -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT 'CREATE ROLE $PG_OWNER LOGIN CREATEDB PASSWORD ''$PG_OWNER_PASSWORD'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_OWNER') \gexec
SELECT 'CREATE ROLE $PG_USER LOGIN PASSWORD ''$PG_PASSWORD'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER') \gexec
ALTER ROLE $PG_USER NOCREATEDB;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_OWNER'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_DB') \gexec
ALTER DATABASE $PG_DB OWNER TO $PG_OWNER;
GRANT CONNECT, TEMPORARY ON DATABASE $PG_DB TO $PG_USER;
SQL
}

pg_stop() {
  local bin
  if bin=$(pg_bin) && [ -f "$PG_DATA/PG_VERSION" ]; then
    as_owner "$bin/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

redis_start() {
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found; run scripts/ensure-system-deps.sh"
  redis_running && return 0
  mkdir -p "$REDIS_DIR"
  # Append-only file, as a production broker would have: a restart keeps what was queued.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" --daemonize yes \
    --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
    --save "" --appendonly yes --protected-mode yes >/dev/null
  wait_for Redis redis_running
}

redis_stop() {
  if redis_running; then
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  fi
  local i
  for i in $(seq 1 50); do
    redis_running || return 0
    sleep 0.1
  done
  die "Redis on port $REDIS_PORT would not stop"
}

print_env() {
  echo "export DATABASE_URL=$OWNER_DATABASE_URL"
  echo "export COUNTERSIGN_APP_DATABASE_URL=$DATABASE_URL"
  echo "export REDIS_URL=$REDIS_URL"
}

case "${1:-}" in
  start)
    scripts/ensure-system-deps.sh
    pg_start
    redis_start
    print_env
    ;;
  stop)
    redis_stop
    pg_stop
    rm -rf "$STATE_DIR"
    ;;
  env) print_env ;;
  status) pg_running && redis_running ;;
  redis-start) redis_start ;;
  redis-stop) redis_stop ;;
  *) die "usage: $0 start|stop|status|env|redis-start|redis-stop" ;;
esac
