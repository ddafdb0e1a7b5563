"""automl.select_model and ``automl select``: real scikit-learn fits, a real SQLite store, real
Optuna, the real CLI and a real ``automl serve`` subprocess. Small data and few trials keep it
fast; nothing here depends on timings or on which trial ends first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_friedman1
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

import automl
from automl import _select_space
from automl.core import EndReason, TrialState
from automl.errors import SpecError

REPO = Path(__file__).resolve().parent.parent
FAST = ["logistic", "ridge", "knn", "random_forest", "hist_gradient_boosting"]

pytestmark = pytest.mark.integration


def _store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'automl.db'}"


def _fast(task: str) -> list[str]:
    return [m for m in FAST if task in _select_space.MODELS[m].tasks]


def test_classification_returns_a_fitted_pipeline_that_beats_the_baseline(
    tmp_path: Path,
) -> None:
    X, y = make_classification(
        n_samples=400, n_features=12, n_informative=6, n_classes=3, random_state=1
    )
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    result = automl.select_model(
        X_tr,
        y_tr,
        task="classification",
        max_trials=6,
        models=_fast("classification"),
        cv=3,
        parallel_trials=2,
        store=_store(tmp_path),
        name="clf",
        runs_dir=tmp_path / "runs",
        progress=False,
    )
    assert isinstance(result.model, Pipeline)
    dummy = DummyClassifier().fit(X_tr, y_tr).score(X_te, y_te)
    held_out = accuracy_score(y_te, result.model.predict(X_te))
    assert held_out > dummy + 0.3, (held_out, dummy)
    assert result.metric == "accuracy" and 0 < result.best_score <= 1
    assert result.best_params["model"] in _fast("classification")
    # Only the chosen model's own parameters (and shared preprocessing) reach the trial.
    own = {k.split(".")[0] for k in result.best_params if "." in k}
    assert own == {result.best_params["model"]}
    assert result.experiment.reason == EndReason.MAX_TRIALS_REACHED.value
    assert len(result.trials) == 6
    # Saved where automl serve looks: the best trial's artifacts, recorded in the store.
    client = automl.Client(_store(tmp_path), runs_dir=tmp_path / "runs")
    loaded = client.load_model("clf")
    assert (loaded.predict(X_te) == result.model.predict(X_te)).all()


def test_regression_returns_a_fitted_pipeline_that_beats_the_baseline(tmp_path: Path) -> None:
    X, y = make_friedman1(n_samples=300, noise=0.5, random_state=2)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    result = automl.select_model(
        X_tr,
        y_tr,
        task="regression",
        max_trials=6,
        models=_fast("regression"),
        cv=3,
        parallel_trials=2,
        store=_store(tmp_path),
        runs_dir=tmp_path / "runs",
        progress=False,
    )
    dummy = r2_score(y_te, DummyRegressor().fit(X_tr, y_tr).predict(X_te))
    held_out = r2_score(y_te, result.model.predict(X_te))
    assert held_out > dummy + 0.4, (held_out, dummy)
    assert result.metric == "r2" and result.task == "regression"


def test_a_frame_with_strings_and_missing_numbers_is_imputed_and_one_hot_encoded(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    n = 240
    colour = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    frame = pd.DataFrame({"colour": colour, "size": size, "noise": rng.normal(size=n)})
    frame.loc[::7, "size"] = np.nan  # missing numbers: the space gains an imputer choice
    frame["label"] = np.where((colour == "red") | (size > 1), "yes", "no")
    result = automl.select_model(
        frame,
        "label",  # a column of X names the target
        task="classification",
        max_trials=4,
        models=["logistic", "hist_gradient_boosting"],
        cv=3,
        store=_store(tmp_path),
        runs_dir=tmp_path / "runs",
        progress=False,
    )
    exp = automl.Client(_store(tmp_path)).get(result.name)
    assert {p.name for p in exp.spec.parameters} >= {"model", "imputer", "scaler"}
    scaler = next(p for p in exp.spec.parameters if p.name == "scaler")
    assert scaler.when == {"model": ("logistic",)}  # scaling matters to the linear model only
    unseen = pd.DataFrame({"colour": ["purple", "red"], "size": [np.nan, 0.0], "noise": [0, 0]})
    assert list(result.model.predict(unseen))[1] == "yes"  # unknown levels and NaN are handled
    assert result.best_score > 0.7


def test_time_budget_ends_the_search(tmp_path: Path) -> None:
    X, y = make_classification(n_samples=150, n_features=6, random_state=3)
    result = automl.select_model(
        X,
        y,
        task="classification",
        time_budget=3,
        models=["logistic", "knn"],
        cv=3,
        store=_store(tmp_path),
        runs_dir=tmp_path / "runs",
        progress=False,
    )
    assert result.experiment.reason == EndReason.TIMEOUT.value
    timeout = result.experiment.spec.timeout  # the search's share: the refit comes after it
    assert timeout is not None and 0 < timeout < 3
    assert result.experiment.spec.max_trial_count is None
    # Another call with the same name gets a budget of its own, counted from its start.
    again = automl.select_model(
        X,
        y,
        task="classification",
        time_budget=3,
        models=["logistic", "knn"],
        cv=3,
        store=_store(tmp_path),
        name=result.name,
        runs_dir=tmp_path / "runs",
        progress=False,
    )
    assert again.experiment.id == result.experiment.id
    assert again.experiment.reason == EndReason.TIMEOUT.value
    assert max(again.trials["number"]) > max(result.trials["number"])


def test_folds_report_a_running_mean_that_early_stopping_acts_on(tmp_path: Path) -> None:
    X, y = make_classification(n_samples=200, n_features=8, random_state=4)
    result = automl.select_model(
        X,
        y,
        task="classification",
        max_trials=12,
        models=["logistic", "knn"],
        cv=4,
        parallel_trials=1,
        store=_store(tmp_path),
        runs_dir=tmp_path / "runs",
        progress=False,
    )
    client = automl.Client(_store(tmp_path))
    trials = client.trials(result.name)
    finished = [t for t in trials if t.state is TrialState.SUCCEEDED]
    curve = [o for o in client.observations(result.name) if o.trial_id == finished[0].id]
    steps = sorted({o.step for o in curve if o.metric == "accuracy" and o.step is not None})
    assert steps == [1, 2, 3]  # the last fold's mean is the trial's value, not a report
    spec = client.get(result.name).spec
    assert spec.early_stopping is not None and spec.early_stopping.name == "median"
    # One trial at a time and a seed: the same run every time, and the median rule stopped
    # configurations that fell behind before their last folds were fitted.
    stopped = [t for t in trials if t.state is TrialState.EARLY_STOPPED]
    assert stopped, [(t.state, t.value) for t in trials]
    observations = client.observations(result.name)
    for t in stopped:
        assert t.message.startswith("stopped early at step")
        assert max(o.step or 0 for o in observations if o.trial_id == t.id) < 3


def test_a_second_call_with_the_same_name_continues_the_experiment(tmp_path: Path) -> None:
    X, y = make_friedman1(n_samples=150, random_state=5)
    kwargs: dict[str, Any] = {
        "task": "regression",
        "models": ["ridge", "random_forest"],
        "cv": 3,
        "store": _store(tmp_path),
        "name": "resumable",
        "runs_dir": tmp_path / "runs",
        "progress": False,
    }
    first = automl.select_model(X, y, max_trials=3, **kwargs)
    second = automl.select_model(X, y, max_trials=2, **kwargs)  # budgets are per call
    assert second.experiment.id == first.experiment.id
    assert sorted(second.trials["number"]) == [0, 1, 2, 3, 4]
    assert second.best_score >= first.best_score
    assert len(automl.Client(_store(tmp_path)).list()) == 1
    with pytest.raises(SpecError) as err:  # another space under the same name: refused
        automl.select_model(X, y, max_trials=1, **(kwargs | {"models": ["ridge"]}))
    assert err.value.issues[0].path == "name"
    assert "another search space" in str(err.value)


def _rejects(tmp_path: Path, X: Any, y: Any, path: str, words: list[str], **kw: Any) -> None:
    store = _store(tmp_path)
    with pytest.raises(SpecError) as err:
        automl.select_model(X, y, max_trials=1, store=store, progress=False, **kw)
    issue = err.value.issues[0]
    assert issue.path == path, err.value
    for w in words:
        assert w in issue.message, issue.message
    assert automl.Client(store).list() == []  # rejected before anything ran or was stored


def test_a_missing_target_column_names_the_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3, 4], "b": [0, 1, 0, 1]})
    _rejects(tmp_path, frame, "price", "target", ["'price'", "['a', 'b']"], task="regression")


def test_regression_on_strings_is_refused(tmp_path: Path) -> None:
    X = np.arange(20.0).reshape(10, 2)
    y = np.array(["cat", "dog"] * 5)
    _rejects(tmp_path, X, y, "task", ["numeric target", "'cat'"], task="regression")


def test_classification_on_continuous_numbers_is_refused(tmp_path: Path) -> None:
    X = np.arange(20.0).reshape(10, 2)
    y = np.linspace(0, 1, 10)
    _rejects(tmp_path, X, y, "task", ["task='regression'"], task="classification")


def test_nan_in_the_target_is_refused(tmp_path: Path) -> None:
    X = np.arange(20.0).reshape(10, 2)
    y = np.array([1.0, 2, 3, np.nan, 5, 6, 7, 8, 9, 10])
    _rejects(tmp_path, X, y, "y", ["1 missing values", "row 3"], task="regression")


def test_one_class_is_refused(tmp_path: Path) -> None:
    X = np.arange(20.0).reshape(10, 2)
    _rejects(tmp_path, X, ["a"] * 10, "y", ["one class only", "'a'"], task="classification")


def test_empty_data_is_refused(tmp_path: Path) -> None:
    X = np.empty((0, 3))
    _rejects(tmp_path, X, [], "X", ["empty", "0 rows"], task="classification")


@pytest.mark.parametrize(
    ("kw", "path", "word"),
    [
        ({"metric": "auc"}, "metric", "roc_auc"),
        ({"models": ["svm", "gbm"]}, "models[1]", "hist_gradient_boosting"),
        ({"cv": 40}, "cv", "smallest class"),
        ({"time_budget": -1}, "time_budget", "> 0"),
        ({"task": "ranking"}, "task", "'classification' or 'regression'"),
    ],
)
def test_bad_arguments_name_the_field(
    tmp_path: Path, kw: dict[str, Any], path: str, word: str
) -> None:
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    _rejects(tmp_path, X, y, path, [word], **({"task": "classification"} | kw))


def test_a_model_whose_package_is_missing_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _select_space._importable
    monkeypatch.setattr(_select_space, "_importable", lambda m: m != "lightgbm" and real(m))
    assert "lightgbm" not in _select_space.available_models("regression")
    X, y = make_friedman1(n_samples=30, random_state=0)
    _rejects(tmp_path, X, y, "models[0]", ["pip install lightgbm"], task="regression",
             models=["lightgbm"])  # fmt: skip


def _csv(tmp_path: Path) -> Path:
    X, y = make_classification(n_samples=200, n_features=5, random_state=6)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame["y"] = np.where(y == 1, "spam", "ham")
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


def _automl(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "automl", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_cli_select_on_a_csv_then_serve_answers_with_the_model(tmp_path: Path) -> None:
    data = _csv(tmp_path)
    store = _store(tmp_path)
    p = _automl(
        ["select", str(data), "--target", "y", "--task", "classification", "--max-trials", "4",
         "--models", "logistic,random_forest", "--cv", "3", "--store", store, "--name", "spam",
         "--output", str(tmp_path / "out"), "--json"],
        tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["experiment"] == "spam" and summary["trials"] == 4
    assert summary["best_model"] in ("logistic", "random_forest")
    assert (tmp_path / "out" / "model.joblib").is_file()
    assert automl.load_model(tmp_path / "out").predict(pd.read_csv(data).drop(columns="y"))[0] in (
        "spam",
        "ham",
    )
    proc = subprocess.Popen(  # `automl serve`, as a user runs it
        [sys.executable, "-m", "automl", "serve", "spam", "--store", store, "--port", "0"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = _wait_for_url(proc)
        rows = pd.read_csv(data).drop(columns="y").head(3)
        reply = httpx.post(
            f"{url}/v1/models/spam:predict",
            json={"instances": rows.to_dict(orient="records")},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        expected = automl.load_model(tmp_path / "out").predict(rows)
        assert reply.json()["predictions"] == list(expected)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _wait_for_url(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    lines = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("serving model"):
            return line.split(" at ")[1].strip()
    proc.kill()
    raise AssertionError("automl serve did not start:\n" + "".join(lines))


def test_cli_select_reports_bad_input_with_the_option_and_exit_code_2(tmp_path: Path) -> None:
    data = _csv(tmp_path)
    p = _automl(
        ["select", str(data), "--target", "label", "--task", "classification",
         "--store", _store(tmp_path)],
        tmp_path,
    )  # fmt: skip
    assert p.returncode == 2
    assert "--target: no column 'label'" in p.stderr and "'f0'" in p.stderr
    assert "Traceback" not in p.stderr
    p = _automl(
        ["select", str(data), "--target", "y", "--task", "regression", "--store",
         _store(tmp_path)],
        tmp_path,
    )  # fmt: skip
    assert p.returncode == 2 and "--task: regression needs a numeric target" in p.stderr
