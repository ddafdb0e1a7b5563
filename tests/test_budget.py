"""Resource budgets: ``budget: {trial_hours, gpu_hours}`` ends an experiment once the summed trial
time (times GPUs held) reaches it, with the reason stored and no trial started after that."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import automl
from automl import Client
from automl._controller import Progress
from automl._progress import _status
from automl._steering import SteerState
from automl.cli import app
from automl.core import ExperimentState, Resources, TrialRecord, TrialState
from automl.errors import SpecError

pytestmark = pytest.mark.integration

BUDGET_H = 0.0005  # 1.8 s of summed trial time
BUDGET_S = BUDGET_H * 3600


def no_start_after_the_budget(trials: list[TrialRecord]) -> None:
    """With one trial at a time: each trial started while the time used so far was in budget."""
    for t in trials:
        assert t.started_at is not None
        used = sum(
            (u.finished_at - u.started_at)
            for u in trials
            if u.started_at is not None
            and u.finished_at is not None
            and u.finished_at <= t.started_at
        )
        assert used < BUDGET_S, f"trial {t.number} started with {used:.2f} s of {BUDGET_S} used"


def test_trial_hours_end_a_command_experiment_with_budget_exhausted(tmp_path: Path) -> None:
    doc = {
        "name": "hours",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "seed": 0,
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 50, "trial_hours": BUDGET_H},
        "trial": {
            "command": [
                "python",
                "-c",
                "import time, sys; time.sleep(0.6); print('loss=' + sys.argv[1])",
                "${x}",
            ]
        },
    }
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "automl",
            "run",
            str(f),
            "--store",
            url,
            "--no-progress",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    client = Client(url)
    exp = client.get("hours")
    trials = client.trials("hours")
    assert exp.state is ExperimentState.SUCCEEDED
    assert exp.reason == "BudgetExhausted"
    assert f"(budget.trial_hours {BUDGET_H:g})" in exp.message
    assert len(trials) < 50  # each trial sleeps 0.6 s: the budget holds a handful
    assert sum(t.duration or 0.0 for t in trials) >= BUDGET_S
    no_start_after_the_budget(trials)
    assert "BudgetExhausted" in r.stdout


def test_tune_budget_for_a_function(sqlite_url: str) -> None:
    def sleepy(x: float) -> float:
        time.sleep(0.4)
        return x

    res = automl.tune(
        sleepy,
        parameters={"x": automl.double(0, 1)},
        algorithm="random",
        seed=0,
        max_trials=100,
        budget={"trial_hours": BUDGET_H},
        name="fn-hours",
        store=sqlite_url,
        progress=False,
    )
    assert res.experiment.reason == "BudgetExhausted"
    trials = Client(sqlite_url).trials("fn-hours")
    assert len(trials) < 100  # each trial sleeps 0.4 s: the budget holds a handful
    no_start_after_the_budget(trials)
    # Raised afterwards (automl budget --trial-hours), it goes on until the new budget is used.
    runner = CliRunner()
    r = runner.invoke(app, ["budget", "fn-hours", "--trial-hours", "-1", "-s", sqlite_url])
    assert r.exit_code == 2
    assert "budget.trial_hours: must be a positive number of hours; got -1" in r.output
    r = runner.invoke(
        app, ["budget", "fn-hours", "--trial-hours", str(3 * BUDGET_H), "-s", sqlite_url]
    )
    assert r.exit_code == 0, r.output
    more = Client(sqlite_url).resume("fn-hours", objective=sleepy, progress=False)
    assert more.experiment.reason == "BudgetExhausted"
    assert len(Client(sqlite_url).trials("fn-hours")) > len(trials)


def test_bad_budgets_are_refused_with_their_paths(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(
        SpecError, match=r"budget\.trial_hours: must be a positive number of hours; got -1"
    ):
        automl.tune(
            lambda x: x,
            parameters={"x": automl.double(0, 1)},
            budget={"trial_hours": -1},
            store=sqlite_url,
            progress=False,
        )
    with pytest.raises(SpecError, match=r"budget\.cpu_hours: is not a budget"):
        automl.tune(
            lambda x: x,
            parameters={"x": automl.double(0, 1)},
            budget={"cpu_hours": 1},
            store=sqlite_url,
            progress=False,
        )
    doc = {
        "name": "bad",
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"gpu_hours": 0},
        "trial": {"command": ["true"]},
    }
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(doc))
    r = subprocess.run(
        [sys.executable, "-m", "automl", "validate", str(f)], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "budget.gpu_hours: must be a positive number of hours; got 0" in r.stdout + r.stderr


def test_gpu_hours_count_run_time_times_gpus_held() -> None:
    from automl.core import ExperimentSpec, Objective
    from automl.core._spec import Direction, Parameter, ParameterType, TrialTemplate

    spec = ExperimentSpec(
        name="g",
        objective=Objective(type=Direction.MINIMIZE, metric="loss"),
        parameters=(Parameter(name="x", type=ParameterType.DOUBLE, min=0, max=1),),
        trial_template=TrialTemplate(command=("true",), resources=Resources(gpu=2)),
        gpu_hours=1.0,
    )
    state = SteerState()
    ended = TrialRecord(
        "g-1", "e", 0, {"x": 0.5}, TrialState.SUCCEEDED, started_at=0.0, finished_at=900.0
    )
    state.account(spec, ended)  # 0.25 h on 2 GPUs: half the budget
    assert state.used_share(spec, []) == pytest.approx(0.5)
    assert state.exhausted(spec, []) is None
    state.account(spec, ended)
    why = state.exhausted(spec, [])
    assert why is not None and "(budget.gpu_hours 1)" in why and "held GPUs for 1 h" in why


def test_the_progress_bar_shows_the_budget_used() -> None:
    from automl.core import ExperimentSpec, Objective
    from automl.core._spec import Direction, Parameter, ParameterType

    spec = ExperimentSpec(
        name="p",
        objective=Objective(type=Direction.MINIMIZE, metric="loss"),
        parameters=(Parameter(name="x", type=ParameterType.DOUBLE, min=0, max=1),),
    )
    snap = Progress(3, 1, 0, 10, 0.5, "p-1", budget_used=0.42)
    assert "budget 42% used" in _status(spec, snap)
    assert "budget" not in _status(spec, Progress(3, 1, 0, 10, 0.5, "p-1"))
