#!/usr/bin/env bash
# The test command: install dev dependencies, start the databases, lint, type-check, test.
# Extra arguments go to pytest (e.g. scripts/test.sh -m slow, or -k resume).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
scripts/services.sh
scripts/browser.sh   # Debian's chromium for the dashboard's real-browser test
.venv/bin/ruff check automl search trials nas dashboard integrations tests benchmarks examples
.venv/bin/ruff format --check automl search trials nas dashboard integrations tests
.venv/bin/mypy
if [ "$#" -eq 0 ]; then set -- -m "not slow and not k8s"; fi
exec .venv/bin/python -m pytest "$@"
