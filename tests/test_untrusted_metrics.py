"""Nothing a trial says can stop the controller: values the store cannot hold fail that trial,
with a message naming the value, and the experiment goes on to its end (on every backend)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import automl
from automl.core import ExperimentState, TrialState
from automl.store import Store

pytestmark = pytest.mark.integration

AUTOML = [sys.executable, "-m", "automl"]

TRIAL = """
import sys
import automl
kind = sys.argv[1]
if kind == "ok":
    print("step=1 loss=0.25", flush=True)
elif kind == "bigstep":      # past 2**31: PostgreSQL's and MariaDB's INTEGER refused it
    print("step=3000000000 loss=0.5", flush=True)
elif kind == "hugestep":     # past 2**63: no integer column holds it
    print("step=99999999999999999999 loss=0.5", flush=True)
elif kind == "longname":     # a 1 MB metric name, through automl.report
    automl.report(step=1, loss=0.5, **{"m" * 1_000_000: 1.0})
elif kind == "nan":
    automl.report(loss=float("nan"))
elif kind == "nanstep":      # a step that is not a whole number is no step
    print("step=nan loss=0.75", flush=True)
"""
KINDS = ["ok", "bigstep", "hugestep", "longname", "nan", "nanstep"]


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUTOML, *args], cwd=tmp_path, capture_output=True, text=True, timeout=180
    )


@pytest.mark.timeout(240)
def test_unstorable_metrics_fail_their_trial_not_the_experiment(
    tmp_path: Path, store_url: str
) -> None:
    (tmp_path / "trial.py").write_text(TRIAL)
    doc = {
        "name": "hostile",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "grid",
        "parameters": {"kind": {"type": "categorical", "values": KINDS}},
        "budget": {"max_trials": len(KINDS), "parallel": 2, "max_failed": len(KINDS)},
        "trial": {"command": ["python", "trial.py", "${kind}"]},
    }
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc))
    res = run_cli(tmp_path, "run", str(f), "--store", store_url, "--no-progress")
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    store = Store(store_url)
    try:
        exp = store.experiments.get("hostile")
        assert exp.state is ExperimentState.SUCCEEDED, (exp.reason, exp.message)
        trials = {t.params["kind"]: t for t in store.trials.list(exp.id)}
        assert sorted(trials) == sorted(KINDS)
        assert trials["ok"].state is TrialState.SUCCEEDED
        big = trials["bigstep"]
        assert big.state is TrialState.SUCCEEDED, big.message
        assert [o.step for o in store.observations.list(big.id)] == [3000000000]
        huge = trials["hugestep"]
        assert huge.state is TrialState.FAILED
        assert "99999999999999999999" in huge.message and "out of range" in huge.message
        long_ = trials["longname"]
        assert long_.state is TrialState.FAILED
        assert "1000000 characters" in long_.message
        nan = trials["nan"]
        assert nan.state is TrialState.FAILED and "not a finite number" in nan.message
        assert trials["nanstep"].state is TrialState.SUCCEEDED
        assert [o.step for o in store.observations.list(trials["nanstep"].id)] == [None]
    finally:
        store.close()
    # The store holds nothing that breaks a reader, and --json output is standard JSON.
    show = run_cli(tmp_path, "show", "hostile", "--store", store_url, "--json")
    assert show.returncode == 0, show.stderr
    json.loads(show.stdout, parse_constant=_no_constants)


def _no_constants(name: str) -> float:
    raise AssertionError(f"--json printed a bare {name}")


def test_report_nan_in_process_says_not_a_finite_number(sqlite_url: str) -> None:
    def objective(x: float) -> None:
        automl.report(loss=float("nan"))

    res = automl.tune(
        objective,
        {"x": automl.double(0, 1)},
        objective_metric="loss",
        algorithm="random",
        max_trials=2,
        store=sqlite_url,
    )
    msgs = list(res.trials["message"])
    assert all("not a finite number" in m for m in msgs), msgs


def test_show_json_with_infinite_values_is_valid_json(tmp_path: Path, sqlite_url: str) -> None:
    automl.tune(
        lambda x: {"loss": x, "worst": math.inf},
        {"x": automl.double(0, 1)},
        objective_metric="loss",
        additional_metrics=["worst"],
        algorithm="random",
        max_trials=2,
        name="infs",
        store=sqlite_url,
    )
    for args in (["show", "infs", "--json"], ["best", "infs", "--json"], ["list", "--json"]):
        res = run_cli(tmp_path, *args, "--store", sqlite_url)
        assert res.returncode == 0, res.stderr
        json.loads(res.stdout, parse_constant=_no_constants)
