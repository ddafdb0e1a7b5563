#!/usr/bin/env bash
# Install Debian's chromium for the dashboard's browser test (tests/test_dashboard_browser.py)
# when no chromium is on PATH. About 30 s and 480 MB; needs root (or sudo) and apt.
set -euo pipefail
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then
        echo "browser: $(command -v "$b")"
        exit 0
    fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "browser.sh: chromium is missing and this is not root (no sudo)" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "browser: $(command -v chromium)"
