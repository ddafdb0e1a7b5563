"""Define-by-run objectives (``def objective(trial)``): Optuna's API on a durable experiment."""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import automl
from automl.core import TrialState, searched_space
from automl.errors import SpecError
from search import create_suggester


def branching(trial: Any) -> float:
    """Two branches with their own parameters; branch ``a`` near x=0.5 is best."""
    model = trial.suggest_categorical("model", ["a", "b"])
    x = trial.suggest_float("x", -1.0, 1.0)
    if model == "a":
        depth = trial.suggest_int("depth", 1, 8, log=True)
        loss = (x - 0.5) ** 2 + 0.01 * depth
    else:
        loss = 1.0 + x**2 + trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    trial.set_user_attr("branch", model)
    assert set(trial.params) == ({"model", "x", "depth"} if model == "a" else {"model", "x", "lr"})
    return loss


def _store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def test_tune_runs_a_define_by_run_objective_without_parameters(tmp_path: Path) -> None:
    result = automl.tune(
        branching,
        max_trials=24,
        seed=7,
        store=_store(tmp_path),
        runs_dir=tmp_path / "runs",
        name="dbr",
        progress=False,
    )
    df = result.trials
    assert len(df) == 24 and set(df["state"]) == {"Succeeded"}
    with automl.Client(_store(tmp_path)) as client:
        exp = client.get("dbr")
        trials = client.store.trials.list(exp.id)
    assert exp.spec.define_by_run and exp.spec.parameters == ()
    # Each trial stores exactly what it asked for: the other branch's parameter is absent.
    for t in trials:
        branch = {"model", "x", "depth"} if t.params["model"] == "a" else {"model", "x", "lr"}
        assert set(t.params) == branch, t.params
        assert t.outputs["data"]["user_attrs"] == {"branch": t.params["model"]}
    assert {p.name: p.type.value for p in searched_space(exp.spec, trials)} == {
        "model": "categorical",
        "x": "double",
        "depth": "int",
        "lr": "double",
    }
    # The DataFrame has every discovered parameter, NaN where a trial did not use it.
    a = df[df["params_model"] == "a"]
    assert a["params_lr"].isna().all() and a["params_depth"].notna().all()
    assert result.best_params["model"] in ("a", "b") and result.best_value is not None
    # After the random start, the search proposes the branch and values it learned are good.
    assert (df["params_model"].iloc[12:] == "a").sum() >= 7
    # automl show lists the discovered parameters, "-" where a trial did not ask.
    from typer.testing import CliRunner

    from automl.cli import app

    shown = CliRunner().invoke(
        app, ["show", "dbr", "--store", _store(tmp_path)], env={"COLUMNS": "200"}
    )
    assert shown.exit_code == 0, shown.stdout
    header = next(line for line in shown.stdout.splitlines() if "model" in line and "lr" in line)
    assert "depth" in header and "x" in header


def test_an_annotated_trial_parameter_of_any_name_is_define_by_run(tmp_path: Path) -> None:
    def objective(t: automl.Trial) -> float:
        return t.suggest_float("u", 0.0, 1.0)

    result = automl.tune(
        objective, max_trials=3, store=_store(tmp_path), runs_dir=tmp_path / "runs", progress=False
    )
    assert list(result.trials.columns[result.trials.columns.str.startswith("params_")]) == [
        "params_u"
    ]


def test_proposals_come_from_the_learned_space_after_a_restart(tmp_path: Path) -> None:
    automl.tune(
        branching,
        max_trials=6,
        seed=1,
        store=_store(tmp_path),
        runs_dir=tmp_path / "runs",
        name="grow",
        progress=False,
    )
    with automl.Client(_store(tmp_path)) as client:
        exp = client.get("grow")
        history = client.store.trials.list(exp.id)
    # A new controller rebuilds the space from the stored trials alone.
    suggester = create_suggester(exp.spec, history)
    proposals = [s.params for s in suggester.suggest(["n1", "n2", "n3"])]
    known = {n for t in history for n in t.params}
    assert all(set(p) == known for p in proposals), proposals
    # And resume runs more trials on it.
    result = automl.tune(
        branching,
        max_trials=10,
        seed=1,
        store=_store(tmp_path),
        runs_dir=tmp_path / "runs",
        name="grow",
        resume=True,
        progress=False,
    )
    assert len(result.trials) == 10


def pruned(trial: Any) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(5):
        trial.report(x + 1.0 / (step + 1), step)
        if trial.should_prune():
            import optuna

            raise optuna.TrialPruned()  # an Optuna script's own idiom
    return x


def test_report_and_should_prune_drive_early_stopping(tmp_path: Path) -> None:
    result = automl.tune(
        pruned,
        max_trials=20,
        seed=2,
        algorithm="random",
        early_stopping={"name": "medianstop", "settings": {"min_trials_required": 3}},
        store=_store(tmp_path),
        runs_dir=tmp_path / "runs",
        progress=False,
    )
    states = collections.Counter(result.trials["state"])
    assert states["EarlyStopped"] >= 1 and states["Succeeded"] >= 3, states
    assert states["Failed"] == 0


@pytest.mark.parametrize("algorithm", ["grid", "cmaes", "hyperband", "pbt", "evolution", "sobol"])
def test_algorithms_that_need_the_space_first_refuse(tmp_path: Path, algorithm: str) -> None:
    with pytest.raises(SpecError) as info:
        automl.tune(branching, algorithm=algorithm, max_trials=2, store=_store(tmp_path))
    assert any(
        i.path == "algorithm"
        and i.message.startswith(f"{algorithm} needs the search space before the first trial")
        for i in info.value.issues
    ), info.value.issues


def test_a_plain_objective_without_parameters_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        automl.tune(lambda x: x, max_trials=2, store=_store(tmp_path))
    assert str(info.value) == "parameters: must define at least one parameter"


def test_katib_export_refuses_define_by_run(tmp_path: Path) -> None:
    automl.tune(
        branching,
        max_trials=2,
        store=_store(tmp_path),
        runs_dir=tmp_path / "runs",
        name="k",
        progress=False,
    )
    from automl.spec import to_katib

    with automl.Client(_store(tmp_path)) as client:
        spec = client.get("k").spec
    with pytest.raises(SpecError) as info:
        to_katib(spec, command=["python", "t.py"])
    assert info.value.path == "parameters" and "defines its parameters as it runs" in str(
        info.value
    )


def test_trial_api_checks_like_optuna() -> None:
    from automl._define_by_run import Trial

    trial = Trial({"x": 5.0, "n": 3}, "loss", number=4, seed=1, record=False)
    assert trial.suggest_float("x", 0.0, 1.0) != 5.0  # a proposal outside the range is redrawn
    assert trial.suggest_int("n", 1, 4) == 3  # a proposal inside it is taken
    assert trial.suggest_int("n", 1, 4) == 3  # asking again returns the same value
    with pytest.raises(ValueError, match="another range"):
        trial.suggest_int("n", 1, 9)
    with pytest.raises(ValueError, match="step and log"):
        trial.suggest_float("y", 1.0, 2.0, step=0.5, log=True)
    with pytest.raises(ValueError):
        trial.suggest_float("z", 2.0, 1.0)
    assert trial.number == 4 and set(trial.params) == {"x", "n"}
    assert trial.distributions["n"].max == 4 and trial.distributions["x"].type.value == "double"
    # New parameters are drawn reproducibly from the seed and the trial number.
    again = Trial({}, "loss", number=4, seed=1, record=False)
    other = Trial({}, "loss", number=5, seed=1, record=False)
    v = Trial({}, "loss", number=4, seed=1, record=False).suggest_float("w", 0, 1)
    assert again.suggest_float("w", 0, 1) == v != other.suggest_float("w", 0, 1)
    assert 1 <= again.suggest_int("k", 1, 1000, log=True) <= 1000
    assert again.suggest_categorical("c", [True, False, "x", 2]) in (True, False, "x", 2)
    assert math.isfinite(again.suggest_float("s", 0.0, 1.0, step=0.25))
    # As in Optuna: a high off the step grid is lowered onto it; a one-point range is allowed.
    assert again.suggest_float("g", 0.0, 1.0, step=0.3) in (0.0, 0.3, 0.6, 0.9)
    assert again.suggest_int("h", 1, 10, step=4) in (1, 5, 9)
    assert again.suggest_float("one", 2.0, 2.0) == 2.0 and again.suggest_int("i", 5, 5) == 5


# -- durability: SIGKILL the controller of process trials, resume, count from a ledger ------------

OBJECTIVE = """
import json, os, time
import automl


def objective(trial):
    info = automl.current_trial()
    model = trial.suggest_categorical("model", ["a", "b"])
    x = trial.suggest_float("x", -1.0, 1.0)
    if model == "a":
        trial.suggest_int("depth", 1, 4)
    ledger = os.environ["LEDGER"]
    with open(ledger, "a") as fh:
        fh.write(json.dumps({"event": "start", "trial": info.id}) + "\\n")
    while info.number >= 2 and not os.path.exists(os.environ["GO"]):
        time.sleep(0.02)  # held until the test has killed the first controller
    time.sleep(0.1)
    with open(ledger, "a") as fh:
        fh.write(json.dumps({"event": "done", "trial": info.id, "params": trial.params}) + "\\n")
    return x * x
"""

DRIVER = """
import sys
import automl
from dbr_objective import objective

automl.tune(objective, objective_metric="loss", max_trials=6, parallel_trials=2, seed=5,
            name="dbr-kill", store=sys.argv[1], resume=True, runs_dir="runs",
            trial_processes=True, progress=False)
"""


def _events(ledger: Path) -> list[dict[str, Any]]:
    if not ledger.exists():
        return []
    return [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(300)
def test_sigkill_and_resume_runs_every_trial_once(tmp_path: Path) -> None:
    (tmp_path / "dbr_objective.py").write_text(OBJECTIVE)
    (tmp_path / "driver.py").write_text(DRIVER)
    ledger = tmp_path / "ledger"
    url = _store(tmp_path)
    env = {
        **os.environ,
        "LEDGER": str(ledger),
        "GO": str(tmp_path / "go"),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parents[1])]),
    }

    def controller() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(tmp_path / "driver.py"), url],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    first = controller()
    deadline = time.monotonic() + 120
    # Kill once a trial has completed and others are running (trials from the third on wait for
    # the go file, so the experiment cannot end first; their processes live on).
    while time.monotonic() < deadline and first.poll() is None:
        events = _events(ledger)
        done = {e["trial"] for e in events if e["event"] == "done"}
        started = {e["trial"] for e in events if e["event"] == "start"}
        if done and started - done:
            break
        time.sleep(0.02)
    assert first.poll() is None, first.communicate()[0].decode()[-3000:]
    os.kill(first.pid, signal.SIGKILL)  # the controller alone
    first.wait(30)
    (tmp_path / "go").touch()
    second = controller()
    out = second.communicate(timeout=240)[0].decode()
    assert second.returncode == 0, out[-3000:]
    assert "Traceback" not in out

    with automl.Client(url) as client:
        exp = client.get("dbr-kill")
        trials = client.store.trials.list(exp.id)
    assert exp.state.value == "Succeeded"
    assert len(trials) == 6
    assert {t.state for t in trials} == {TrialState.SUCCEEDED}
    dones = collections.Counter(e["trial"] for e in _events(ledger) if e["event"] == "done")
    assert max(dones.values()) == 1  # no completed trial ran twice
    assert set(dones) == {t.id for t in trials}  # and every stored trial completed
    used = {e["trial"]: e["params"] for e in _events(ledger) if e["event"] == "done"}
    for t in trials:  # the store holds what each trial asked for, nothing more
        assert dict(t.params) == used[t.id]
