#!/usr/bin/env bash
# Create .venv (once) and install automl into it; re-installs only when pyproject.toml changes.
# Usage: scripts/setup.sh [extra]   e.g. scripts/setup.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=".venv/.automl-installed${extra:+-$extra}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing automl${extra:+[$extra]} into .venv ..." >&2
  # torch is pinned in the same pip call so that the CPU build is taken, not a multi-GB CUDA one.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}" \
    -e ".${extra:+[$extra]}"
  echo "$want" > "$stamp"
fi
# The project's own modules as bytecode, as an installed wheel has them: an editable install
# has none, and with PYTHONDONTWRITEBYTECODE set every `automl` process (each CLI call, each
# trial, each test's subprocess) would compile them from source again (~0.1 s each).
.venv/bin/python -m compileall -q -j 0 automl search trials nas dashboard integrations >/dev/null
