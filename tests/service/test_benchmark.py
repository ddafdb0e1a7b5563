"""benchmarks/service.py in its quick mode: the report's shape and its invariants (not timings)."""

from __future__ import annotations

import json
import os
import subprocess

from tests.service.conftest import PY, REPO


def test_service_benchmark_quick() -> None:
    out = subprocess.run(
        [PY, str(REPO / "benchmarks" / "service.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["experiments"] == 6 and report["workers"] == 3
    assert report["states"] == {"Succeeded": 6}
    assert report["experiments_lost"] == 0
    assert report["trials_run_twice"] == 0
    assert report["trials_started"] == report["trials_stored"] == 18
    # A worker was killed halfway while holding experiments, and every one was taken over.
    assert report["killed_worker_held"] >= 1
    assert report["taken_over"] == report["killed_worker_held"]
    assert report["takeovers_recorded"] == report["killed_worker_held"]
    for key in ("submit_p50_ms", "submit_p99_ms", "total_s", "takeover_delay_max_s"):
        assert report[key] > 0
