#!/usr/bin/env bash
# Usage: .ci/venv.sh NAME  — make (or reuse) the virtual environment for .ci/requirements-NAME.txt
# and print its path. Reused only while the requirement files are unchanged, so a fresh machine
# and a warm one run the same packages.
set -euo pipefail
name=$1
here=$(cd "$(dirname "$0")" && pwd)
root=${PIXTENTION_VENV_ROOT:-$HOME/.cache/pixtention/venvs}
venv=$root/$name
stamp=$(cat "$here/requirements-$name.txt" "$here/requirements-nodeps.txt" | sha256sum | cut -c1-16)
pip_shown() { # pip install, streaming one line per package to stderr; the whole log on failure
  local log
  log=$(mktemp)
  if ! PYTHONUNBUFFERED=1 "$venv/bin/pip" install --progress-bar off "$@" 2>&1 | tee "$log" |
    { grep --line-buffered -E '^(Collecting|Successfully installed)' || true; } |
    cut -c1-100 | sed -u 's/^/venv.sh:   /' >&2; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

if [[ ! -f $venv/.stamp || $(cat "$venv/.stamp") != "$stamp" ]]; then
  echo "venv.sh: building $venv from .ci/requirements-$name.txt (first time: 1-16 min, ~1.7 GB)" >&2
  start=$SECONDS
  rm -rf "$venv"
  python3 -m venv "$venv"
  pip_shown --upgrade pip
  pip_shown -r "$here/requirements-$name.txt"
  pip_shown --no-deps -r "$here/requirements-nodeps.txt"
  echo "$stamp" >"$venv/.stamp"
  echo "venv.sh: $venv ready in $((SECONDS - start)) s, $(du -sh "$venv" | cut -f1)" >&2
fi
log=$(mktemp)
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$here/.." >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
rm -f "$log"
echo "$venv"
