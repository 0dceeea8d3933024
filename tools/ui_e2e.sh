#!/usr/bin/env bash
# Browser tests of `ditflow ui` (tests/ui/e2e_test.ts): installs Debian's chromium when it is missing
# (apt-get; never `playwright install`), then drives it headless with npm playwright-core over a small real
# cache built by the engine from cheap test kinds. Screenshots land in $UI_E2E_OUT (default tests/ui/out/).
# Fails when chromium cannot be installed, so the browser tests are never skipped silently here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
[ -x "$chromium" ] || { echo "ui_e2e: no chromium at $chromium" >&2; exit 1; }
"$chromium" --version 2>/dev/null || true
deno install
CHROMIUM="$chromium" deno test -A --no-check=remote tests/ui/e2e_test.ts
