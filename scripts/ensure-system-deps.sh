#!/usr/bin/env bash
# Installs, only when missing, the system programs the test suite needs beyond Python packages:
#   chromium      - the browser tests drive it through Playwright (never Playwright's own download)
#   redis-server  - the production-profile tests start a throwaway Redis
#   postgresql    - ... and a throwaway PostgreSQL (server binaries; scripts/services.sh)
# Quiet when everything is present. Fails with a clear message when it cannot install.
set -euo pipefail

# binary -> Debian package
declare -A PACKAGE_FOR=(
  [chromium]=chromium
  [redis-server]=redis-server
  [initdb]=postgresql
)

have() {
  case "$1" in
    chromium) [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 ;;
    # Debian keeps the server binaries off PATH, under a versioned directory.
    initdb) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=()
for binary in "${!PACKAGE_FOR[@]}"; do
  have "$binary" || missing+=("${PACKAGE_FOR[$binary]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

fail() {
  echo "error: cannot install ${missing[*]}: $1" >&2
  echo "       install them yourself (Debian/Ubuntu: apt-get install -y ${missing[*]}) and run again." >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get is not available on this machine"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  fail "installing needs root (or password-less sudo)"
fi

echo "Installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "${SUDO[@]}" apt-get update -q >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  fail "apt-get update failed"
fi
if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  fail "apt-get install failed"
fi

for binary in "${!PACKAGE_FOR[@]}"; do
  have "$binary" || fail "$binary is still missing after apt-get install"
done
echo "Installed: ${missing[*]}" >&2
