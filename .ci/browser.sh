#!/usr/bin/env bash
# Usage: .ci/browser.sh VENV — Debian's Chromium and the Playwright client for the UI tests.
# Playwright drives /usr/bin/chromium; it never downloads a browser of its own.
set -euo pipefail
venv=$1
if ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]]; then
    echo "browser.sh: installing Debian's chromium with apt (first time: 1-3 min, ~300 MB)" >&2
    start=$SECONDS
    log=$(mktemp)
    if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >"$log" 2>&1; then
      cat "$log" >&2
      echo "browser.sh: could not install chromium with apt; the browser tests will say so" >&2
    else
      echo "browser.sh: chromium installed in $((SECONDS - start)) s" >&2
    fi
    rm -f "$log"
  else
    echo "browser tests need Debian's chromium (apt-get install chromium)" >&2
  fi
fi
"$venv/bin/python" -c "import playwright" 2>/dev/null || {
  echo "browser.sh: installing the playwright client" >&2
  "$venv/bin/pip" install -q playwright >&2
}
