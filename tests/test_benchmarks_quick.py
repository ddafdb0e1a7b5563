"""Every benchmark keeps a quick mode that the suite runs, so none can rot. (The figures are
printed, never asserted: benchmarks measure speed, tests check that they still run.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_parallel_benchmark_quick_mode_runs_every_local_row(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "parallel.py"), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stdout.splitlines() if "python" in line]
    rows = {line.split("  ")[0]: line.split() for line in lines}
    for row in ("local, cold python", "local, warm python"):
        assert row in rows, p.stdout
        assert rows[row][-1] == "8", p.stdout  # every trial succeeded
    assert "warm trial, one at a time (median ms)" in p.stdout  # the start/end breakdown ran


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("script", "needle"),
    [
        ("overhead.py", "ratio c/a"),
        ("early_stopping.py", "medianstop"),
        ("multi_objective.py", "hypervolume after 12 trials"),
        ("model_selection.py", "mean rank at 3 s"),
        ("steering.py", "steering latency over 3 running experiments"),
        ("conditional.py", "tpe, conditional"),
    ],
)
def test_benchmark_quick_modes_run(tmp_path: Path, script: str, needle: str) -> None:
    p = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert p.returncode == 0, p.stderr
    assert needle in p.stdout, p.stdout
