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
if [[ ! -f $venv/.stamp || $(cat "$venv/.stamp") != "$stamp" ]]; then
  echo "venv.sh: building $venv from .ci/requirements-$name.txt (first time: 2-16 min, ~1.7 GB)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -r "$here/requirements-$name.txt" >&2
  "$venv/bin/pip" install -q --no-deps -r "$here/requirements-nodeps.txt" >&2
  echo "$stamp" >"$venv/.stamp"
  echo "venv.sh: $venv ready" >&2
fi
log=$(mktemp)
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$here/.." >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
rm -f "$log"
echo "$venv"
