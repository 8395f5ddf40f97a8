#!/usr/bin/env bash
# Prints the path of a Python >= 3.12, or nothing. Tries PATH first, then pyenv's versions.
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
for name in python3.13 python3.12 python3 python; do
  p=$(command -v "$name" 2>/dev/null) || continue
  if ok "$p"; then
    # pyenv shims resolve lazily; ask the interpreter for its real path.
    "$p" -c 'import sys; print(sys.executable)'
    exit 0
  fi
done
for root in "${PYENV_ROOT:-$HOME/.pyenv}" /root/.pyenv /opt/pyenv; do
  for p in "$root"/versions/3.1[2-9]*/bin/python3 "$root"/versions/3.[2-9][0-9]*/bin/python3; do
    if [ -x "$p" ] && ok "$p"; then echo "$p"; exit 0; fi
  done
done
exit 0
