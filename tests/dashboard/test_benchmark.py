"""benchmarks/dashboard.py runs (its quick mode), so it cannot rot again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.devtools import find_chromium

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_dashboard_benchmark_quick_mode(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    mode = "server,browser" if find_chromium() else "server"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "dashboard.py"),
            "--quick",
            "--mode",
            mode,
            "--timeout",
            "120",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # Exit 1 only says a timing target was missed on this machine; anything else is a crash.
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-3000:]
    (res,) = json.loads(out.read_text())
    assert res["trials"] == 200 and res["server"]["total_s"] > 0
    if "browser" in mode:
        pages = res["browser"]
        assert set(pages) == {"experiments", "experiment", "trial", "compare", "cold"}
        assert pages["cold"]["nav_ms"] > 0  # the first chart page in a fresh browser drew
        # Every page drew, with the charts it has (the experiment page: six).
        assert pages["experiment"]["charts"] == 6 and pages["experiment"]["nav_ms"] > 0
        assert all(p["nav_ms"] is not None for p in pages.values())
