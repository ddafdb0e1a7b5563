"""benchmarks/nas.py in a tiny configuration: it runs, and the same seeds give the same numbers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from benchmarks import nas as bench

TINY = [
    "--trials", "2", "--epochs", "1", "--retrain-epochs", "1", "--seeds", "0,1",
    "--darts-epochs", "1", "--limit", "160",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _threads() -> Iterator[None]:
    n = torch.get_num_threads()  # the benchmark sets one thread for the process
    yield
    torch.set_num_threads(n)


def test_benchmark_is_deterministic_under_its_seeds_and_reports_the_spread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = bench.main([*TINY, "--json", str(tmp_path / "a.json")])
    out = capsys.readouterr().out
    assert "| DARTS derived |" in out and "| random cell, same size |" in out
    assert "DARTS derived - random cell = " in out
    assert first["darts"]["derived_minus_random"]["verdict"] in (
        "within noise",
        "larger than the seeds' spread",
    )
    assert first["multi_trial_gap"]["best"] in bench.ALGORITHMS
    assert (tmp_path / "a.json").is_file()
    # DARTS against a random cell is the comparison whose order the docs once got reversed:
    # run it again (alone, to stay quick) and get the very same numbers.
    again = bench.main([*TINY, "--parts", "darts"])
    assert again["multi_trial"] == []
    for key in ("derived", "random", "genotype", "random_genotype", "derived_minus_random"):
        assert again["darts"][key] == first["darts"][key], key
