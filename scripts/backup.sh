#!/usr/bin/env bash
# Back up Countersign: the database (pg_dump, custom format) and the audit checkpoint log.
#
#   DATABASE_URL=postgres://owner@host/db COUNTERSIGN_AUDIT_CHECKPOINT_DIR=/srv/checkpoints \
#     scripts/backup.sh /backups
#
# Writes /backups/countersign-<UTC time>/ with database.dump, audit-checkpoints/ and SHA256SUMS.
# The checkpoints are copied before the dump starts, so every head they record is in the dump
# and `verify_audit --checkpoint` holds on a restore of it (docs/operations.md, "Restoring").
# pg_dump takes one consistent snapshot, so the app keeps running (and writing) meanwhile.
set -euo pipefail

out=${1:?usage: scripts/backup.sh OUTPUT_DIR}
: "${DATABASE_URL:?set DATABASE_URL to the database to back up (the owner role reads every table)}"
checkpoints=${COUNTERSIGN_AUDIT_CHECKPOINT_DIR:-}

# pg_dump must be at least as new as the server: prefer the newest installed server's tools.
pg_tool() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }
  done
  command -v "$1" || { echo "error: $1 not found (install postgresql-client)" >&2; exit 1; }
}

dest="$out/countersign-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$dest"
if [ -n "$checkpoints" ] && [ -d "$checkpoints" ]; then
  cp -a "$checkpoints" "$dest/audit-checkpoints"
else
  echo "warning: no audit checkpoint directory (COUNTERSIGN_AUDIT_CHECKPOINT_DIR); dump only" >&2
  mkdir "$dest/audit-checkpoints"
fi
"$(pg_tool pg_dump)" --format=custom --file="$dest/database.dump" --dbname="$DATABASE_URL"
(cd "$dest" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
echo "$dest"
