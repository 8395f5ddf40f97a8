#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into an empty database, and check its audit chain.
#
#   scripts/restore.sh /backups/countersign-20260101T000000Z postgres://owner@host/new_db
#
# The target database must exist and be empty (createdb, as the owner role). The roles the dump
# grants to (the app role, COUNTERSIGN_DB_APP_ROLE) must exist on the target server. Afterwards
# the chain is verified against the backup's checkpoints (manage.py verify_audit --checkpoint),
# with the settings of this environment (the same COUNTERSIGN_AUDIT_KEY as the backed-up one).
# What comes next (start beat/worker: unknown outcomes are reconciled from the venues, never
# re-sent) is in docs/operations.md, "Restoring".
set -euo pipefail
cd "$(dirname "$0")/.."

backup=${1:?usage: scripts/restore.sh BACKUP_DIR TARGET_DATABASE_URL}
target=${2:?usage: scripts/restore.sh BACKUP_DIR TARGET_DATABASE_URL}
python=${PYTHON:-.venv/bin/python}

pg_tool() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }
  done
  command -v "$1" || { echo "error: $1 not found (install postgresql-client)" >&2; exit 1; }
}

(cd "$backup" && sha256sum --check --quiet SHA256SUMS) || {
  echo "error: $backup does not match its SHA256SUMS; not restoring" >&2
  exit 1
}
"$(pg_tool pg_restore)" --exit-on-error --single-transaction --dbname="$target" \
  "$backup/database.dump"

log="$backup/audit-checkpoints/checkpoints.jsonl"
if [ -f "$log" ]; then
  DATABASE_URL="$target" "$python" manage.py verify_audit --no-record --checkpoint "$log"
else
  echo "warning: the backup holds no checkpoint log; verifying the chain on its own" >&2
  DATABASE_URL="$target" "$python" manage.py verify_audit --no-record
fi
echo "restored $backup into the target database; its audit chain verifies"
