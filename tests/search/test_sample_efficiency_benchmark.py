"""benchmarks/sample_efficiency.py: its quick mode runs, and its score means what the docs say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import sample_efficiency as bench
from benchmarks._problems import problems


def test_quick_mode_runs_and_writes_traces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "se.json"
    summary = bench.main(["--quick", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "| auto |" in printed and "| random |" in printed and "| optuna-tpe |" in printed
    assert set(summary["scores"]) == {"auto", "random", "optuna-tpe"}
    data = json.loads(out.read_text())
    traces = data["traces"]
    assert set(traces["auto"]) == set(bench.QUICK)
    for per_seed in traces["auto"].values():
        assert len(per_seed) == 2
        for trace in per_seed.values():
            assert len(trace["values"]) == len(trace["suggest_s"]) == 10
            assert trace["strategies"][0] == "sobol" and "gp" in trace["strategies"]
    # The report mode reads the traces back into the same table.
    again = bench.main(["--report", str(out), "--seeds", "2"])
    assert again["scores"]["auto"] == summary["scores"]["auto"]


def test_normalized_score_is_zero_at_the_random_median_and_100_at_the_best() -> None:
    def trace(values: list[float]) -> dict[str, list[float]]:
        return {"values": values, "suggest_s": [0.0] * len(values)}

    traces = {
        "random": {"p": {0: trace([5.0, 4.0]), 1: trace([3.0, 3.0]), 2: trace([9.0, 1.0])}},
        "median-like": {"p": {0: trace([9.0, 3.0])}},
        "best": {"p": {0: trace([9.0, 0.0])}},
    }
    # random's best after 2 trials: 4, 3, 1 -> median 3; best ever 0.
    table = bench.normalized_scores(traces, [2])
    assert table["median-like"][2] == [0.0]
    assert table["best"][2] == [100.0]
    assert table["random"][2] == pytest.approx([(3 - 4) / 3 * 100, 0.0, (3 - 1) / 3 * 100])


def test_the_suite_has_twenty_problems_of_every_kind() -> None:
    suite = problems()
    assert len(suite) >= 20 and len({p.name for p in suite}) == len(suite)
    kinds = {p.kind for p in suite}
    assert kinds == {"synthetic", "real"}
    types = {param.type.value for p in suite for param in p.space.values()}
    assert {"int", "double", "categorical"} <= types
