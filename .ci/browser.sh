#!/usr/bin/env bash
# Usage: .ci/browser.sh VENV — Debian's Chromium and the Playwright client for the UI tests.
# Playwright drives /usr/bin/chromium; it never downloads a browser of its own.
set -euo pipefail
venv=$1
if ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "browser tests need Debian's chromium (apt-get install chromium)" >&2
  fi
fi
"$venv/bin/python" -c "import playwright" 2>/dev/null || "$venv/bin/pip" install -q playwright >&2
