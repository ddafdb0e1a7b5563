#!/usr/bin/env bash
# The main job: tune an SVM on scikit-learn's digits, 24 trials, 2 at a time, in the embedded
# SQLite store (./automl.db). Installs what it needs on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
name="sklearn-digits-$(date +%Y%m%d-%H%M%S)"
exec .venv/bin/automl run examples/sklearn-digits/experiment.yaml --name "$name" "$@"
