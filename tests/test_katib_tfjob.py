"""Katib's TFJob example with the TensorFlowEvent collector, end to end on the local stand-in.

``examples/katib/tf-mnist-with-summaries/mnist.py`` writes TensorFlow event files (scalar
summaries ``accuracy`` and ``loss`` under ``<log-path>/test``) as Katib's trial image does; the
collector reads them after the trial. Nothing is written at the file's in-image path
``/mnist-with-summaries-logs`` on this machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

STAND_IN = REPO / "examples" / "katib" / "tf-mnist-with-summaries"
FILE = STAND_IN / "tfjob-mnist-with-summaries.yaml"


def test_tfjob_example_reads_tensorflow_event_summaries(tmp_path: Path) -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "automl",
            "run",
            str(FILE),
            "--path-map",
            f"/opt/tf-mnist-with-summaries={STAND_IN}",
            "--max-trials",
            "1",
            "--json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["state"] == "Succeeded" and out["trials"] == {"Succeeded": 1}, out
    best = out["best_trial"]
    accuracy = best["metrics"]["accuracy"]["latest"]
    assert 0.5 < accuracy <= 1.0, best  # digits, one epoch: far above chance (0.1)
    trial_dir = tmp_path / "automl-runs" / out["name"] / best["id"]
    events = sorted((trial_dir / "mnist-with-summaries-logs").rglob("events.out.tfevents.*"))
    assert {e.parent.name for e in events} == {"train", "test"}, events
    assert not Path("/mnist-with-summaries-logs").exists()
