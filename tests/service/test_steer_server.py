"""Steering over the REST service: Client(server=...) and the commands' --server reach the same
code as on a store (docs/steering.md), with the same errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import automl
from automl.core import TrialState
from automl.errors import NotFoundError, SpecError
from tests.service.conftest import PY, REPO, Procs


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "automl", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )


def test_steering_through_the_server(procs: Procs, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'service.db'}"
    automl.tune(
        lambda x, k: x + (0.0 if k == "a" else 1.0),
        parameters={"x": automl.double(0, 1), "k": automl.categorical(["a", "b"])},
        algorithm="random",
        seed=0,
        max_trials=3,
        name="steered",
        store=store,
        progress=False,
    )
    url = procs.server(store)
    client = automl.Client(server=url)
    t = client.enqueue("steered", {"x": "0.25", "k": "b"})
    assert t.state is TrialState.CREATED and t.params == {"x": 0.25, "k": "b"} and t.enqueued
    with pytest.raises(SpecError, match=r"params\.x: must be a number in \[0, 1\]; got 3"):
        client.enqueue("steered", {"x": 3, "k": "a"})
    first = next(t for t in client.trials("steered") if t.number == 0)
    assert client.invalidate("steered", first.id, "bad node").invalidated
    best = client.best_trial("steered")
    assert best is not None and best.id != first.id
    assert not client.revalidate("steered", first.id).invalidated
    again = client.rerun("steered", first.id)
    assert again.params == first.params and again.attrs["rerun_of"] == first.id
    e = client.set_budget("steered", max_trials=9, parallel_trials=2, timeout=60)
    assert (e.spec.max_trial_count, e.spec.parallel_trial_count, e.spec.timeout) == (9, 2, 60)
    with pytest.raises(SpecError, match="parallel_trials"):
        client.set_budget("steered", parallel_trials=0)
    fork = client.fork("steered", "steered-2", max_trials=4)
    assert (fork.kept, fork.total) == (3, 3) and fork.experiment.spec.warm_start == "steered"
    with pytest.raises(NotFoundError, match="has no trial 'nope'"):
        client.invalidate("steered", "nope")
    # The commands' --server: the same output and exit codes as on a store.
    r = cli(tmp_path, "budget", "steered", "--max-failed", "2", "--server", url)
    assert r.returncode == 0 and "max_failed_trials 2" in r.stdout, r.stdout + r.stderr
    r = cli(tmp_path, "invalidate", "steered", "nope", "--server", url)
    assert r.returncode == 2 and "has no trial 'nope'" in r.stderr
    r = cli(tmp_path, "enqueue", "steered", "-p", "x=2", "-p", "k=a", "--server", url)
    assert r.returncode == 2 and "params.x: must be a number in [0, 1]" in r.stderr
