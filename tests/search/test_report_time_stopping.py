"""Early stopping decided inside ``automl.report`` for in-process trials (Optuna's should_prune).

A training loop with no sleep at all must be stopped at the step whose report made the decision:
``automl.should_stop()`` is already true right after that ``automl.report`` returns.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

import automl
from automl.core import TrialState
from automl.store import Store


def _fast_objective(seen: dict[str, int], lock: threading.Lock) -> Any:
    def objective(x: float) -> float:
        trial = automl.current_trial()
        assert trial is not None
        ran = 0
        for epoch in range(1, 11):  # no sleep: each epoch takes microseconds
            automl.report(step=epoch, loss=x + 1.0 / epoch)
            ran = epoch
            if automl.should_stop():
                break
        with lock:
            seen[trial.id] = ran
        if ran < 10:
            raise automl.TrialStopped
        return x + 0.1

    return objective


@pytest.mark.parametrize("parallel", [1, 2])
def test_fast_loop_is_stopped_at_the_reporting_step(tmp_path: Any, parallel: int) -> None:
    url = f"sqlite:///{tmp_path / 'es.db'}"
    seen: dict[str, int] = {}
    automl.tune(
        _fast_objective(seen, threading.Lock()),
        parameters={"x": automl.double(0, 1)},
        objective_metric="loss",
        algorithm="random",
        max_trials=20,
        parallel_trials=parallel,
        seed=0,
        early_stopping="medianstop",
        store=url,
        name="fast",
    )
    store = Store(url)
    try:
        exp = store.experiments.get("fast")
        trials = store.trials.list(exp.id)
        stopped = [t for t in trials if t.state is TrialState.EARLY_STOPPED]
        if parallel == 1:  # one trial at a time: the same trials stop in every run
            assert len(stopped) >= 5
        for t in stopped:
            match = re.search(r"stopped early at step (\d+)", t.message)
            assert match, t.message
            step = int(match.group(1))
            # The loop saw the decision right after the report that made it: no epoch more.
            assert seen[t.id] == step
            steps = sorted({o.step for o in store.observations.list(t.id) if o.metric == "loss"})
            assert steps == list(range(1, step + 1))
        for t in trials:
            if t.state is TrialState.SUCCEEDED:
                assert seen[t.id] == 10
    finally:
        store.close()


def test_subprocess_should_stop_reads_the_stop_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automl import _report

    stop = tmp_path / "stop"
    monkeypatch.delenv(_report.STOP_FILE_ENV, raising=False)
    assert automl.should_stop() is False  # outside any trial
    monkeypatch.setenv(_report.STOP_FILE_ENV, str(stop))
    assert automl.should_stop() is False
    stop.write_text("early stopped")
    assert automl.should_stop() is True
