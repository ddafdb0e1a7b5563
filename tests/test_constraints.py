"""Constraints on reported metrics: grammar, infeasible trials, the samplers told, bad input."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

import automl
import search
from automl.core import (
    AlgorithmSpec,
    Direction,
    ExperimentSpec,
    MetricSummary,
    Objective,
    TrialRecord,
    TrialState,
    parse_constraint,
)
from automl.core._pareto import outcome
from automl.errors import SpecError
from automl.spec import parse_spec

pytestmark = pytest.mark.integration

SPACE = {"x": automl.double(0, 1)}


def loss_and_size(x: float) -> dict[str, float]:
    # The lower x, the better the loss, but small x breaks "size >= 50".
    return {"loss": x, "size": 100 * x}


@pytest.mark.parametrize(
    ("text", "metric", "op", "bound"),
    [
        ("memory_mb <= 2000", "memory_mb", "<=", 2000.0),
        ("latency_ms<50", "latency_ms", "<", 50.0),
        ("  acc >= 0.9 ", "acc", ">=", 0.9),
        ("val/loss > -1e-3", "val/loss", ">", -1e-3),
    ],
)
def test_grammar_accepts_metric_op_number(text: str, metric: str, op: str, bound: float) -> None:
    c = parse_constraint(text, "constraints[0]")
    assert (c.metric, c.op, c.bound) == (metric, op, bound)


@pytest.mark.parametrize(
    "text",
    [
        "memory_mb =< 2000",
        "memory_mb == 5",
        "2000 >= memory_mb",
        "memory_mb <= lots",
        "x <= nan",
        "x <= inf",
        "<= 3",
        "x <= 1 and y <= 2",
        "",
    ],
)
def test_grammar_rejects_anything_else_with_the_accepted_form(text: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_constraint(text, "constraints[1]")
    assert exc.value.path == "constraints[1]"
    assert "'METRIC OP NUMBER' with OP one of <, <=, >, >=" in str(exc.value)
    assert repr(text) in str(exc.value)


def test_strict_bound_met_with_equality_is_infeasible_for_optuna_too() -> None:
    c = parse_constraint("latency_ms < 50", "c")
    assert not c.holds(50.0) and c.violation(50.0) > 0
    assert c.holds(49.0) and c.violation(49.0) <= 0
    le = parse_constraint("m <= 50", "c")
    assert le.holds(50.0) and le.violation(50.0) == 0
    ge = parse_constraint("acc >= 0.9", "c")
    assert ge.violation(0.8) == pytest.approx(0.1) and ge.violation(0.95) < 0


def test_malformed_constraints_in_yaml_and_tune_name_the_field(sqlite_url: str) -> None:
    doc = {
        "name": "c",
        "objective": {"metric": "loss", "direction": "minimize"},
        "constraints": ["size >= 50", "memory <= two thousand"],
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "trial": {"command": ["python", "t.py", "${x}"]},
    }
    with pytest.raises(SpecError) as exc:
        parse_spec(yaml.safe_dump(doc))
    (issue,) = exc.value.issues
    assert issue.path == "constraints[1]" and "METRIC OP NUMBER" in issue.message
    with pytest.raises(SpecError) as exc:
        automl.tune(loss_and_size, SPACE, constraints=["size >= 50", 7], store=sqlite_url)  # type: ignore[list-item]
    assert exc.value.path == "constraints[1]"
    with pytest.raises(SpecError) as exc:
        automl.tune(loss_and_size, SPACE, constraints="size >= 50", store=sqlite_url)
    assert exc.value.path == "constraints"


def test_infeasible_trials_are_stored_as_such_and_never_best(store_url: str) -> None:
    r = automl.tune(
        loss_and_size,
        SPACE,
        objective_metric="loss",
        constraints=["size >= 50"],
        algorithm="tpe",
        algorithm_settings={"n_startup_trials": 4},
        max_trials=14,
        seed=0,
        store=store_url,
        name="cons",
        progress=False,
    )
    df = r.trials
    assert (df["state"] == "Succeeded").all()
    infeasible = df[~df["feasible"]]
    assert len(infeasible) >= 1, "the seed must give at least one infeasible trial"
    assert (infeasible["size"] < 50).all() and (df[df["feasible"]]["size"] >= 50).all()
    # The best is the best feasible loss, though infeasible trials had lower ones.
    assert r.best_value == pytest.approx(df[df["feasible"]]["loss"].min())
    assert r.best_value > df["loss"].min()
    assert list(r.best_trials["trial"]) == [r.best_trial.id]  # type: ignore[union-attr]
    with automl.Client(store_url) as client:
        stored = {t.id: t for t in client.trials("cons")}
    for tid in infeasible["trial"]:
        attrs = stored[tid].attrs
        assert attrs["feasible"] is False
        assert set(attrs["violations"]) == {"size >= 50"}
        assert attrs["constraints"][0] > 0
        assert stored[tid].message.startswith("infeasible: size >= 50 (got ")


def test_infeasible_trials_are_never_on_the_front(sqlite_url: str) -> None:
    r = automl.tune(
        lambda x: {"f1": x, "f2": 1 - x, "size": 100 * x},
        SPACE,
        objectives=[
            {"metric": "f1", "direction": "minimize"},
            {"metric": "f2", "direction": "minimize"},
        ],
        constraints=["size <= 60"],
        algorithm="nsga2",
        algorithm_settings={"population_size": 4},
        max_trials=12,
        seed=3,
        store=sqlite_url,
        name="cons-mo",
        progress=False,
    )
    df = r.trials
    assert (~df["feasible"]).any() and df["feasible"].any()
    # Every feasible trial is on this front (f1 + f2 == 1), no infeasible one.
    assert set(r.best_trials["trial"]) == set(df[df["feasible"]]["trial"])


def _spec(algorithm: str) -> ExperimentSpec:
    return ExperimentSpec(
        name="c",
        objective=Objective(type=Direction.MINIMIZE, metric="loss", additional_metrics=("size",)),
        constraints=(parse_constraint("size >= 50", "constraints[0]"),),
        algorithm=AlgorithmSpec(name=algorithm),
        parameters=(automl.double(0, 1).model_copy(update={"name": "x"}),),
        seed=0,
    )


def _finished(spec: ExperimentSpec, i: int, x: float) -> TrialRecord:
    metrics = {"loss": MetricSummary(x, x, x), "size": MetricSummary(100 * x, 100 * x, 100 * x)}
    out = outcome(spec, metrics)
    return TrialRecord(
        id=f"t{i}",
        experiment_id="e",
        number=i,
        params={"x": x},
        state=TrialState.SUCCEEDED,
        value=x,
        metrics=metrics,
        attrs=out.attrs(spec),
    )


@pytest.mark.parametrize("algorithm", ["tpe", "nsga2", "bayesianoptimization"])
def test_samplers_are_told_the_constraint_values(algorithm: str) -> None:
    from search._optuna import OptunaSuggester, frozen_trials

    spec = _spec(algorithm)
    history = [_finished(spec, 0, 0.2), _finished(spec, 1, 0.7)]
    s = search.create_suggester(spec, history)  # replayed
    assert isinstance(s, OptunaSuggester)
    (sug,) = s.suggest(["t2"])
    s.tell(_finished(spec, 2, float(sug.params["x"])))  # told live
    trials = frozen_trials(s)
    # Optuna's samplers read trial.constraints (system attr "constraints"), <= 0 is feasible.
    assert trials[0].constraints == {"0": pytest.approx(30.0)}
    assert trials[1].constraints == {"0": pytest.approx(-20.0)}
    assert trials[2].constraints["0"] == pytest.approx(50 - 100 * float(sug.params["x"]))


def test_auto_models_feasibility() -> None:
    spec = _spec("auto")
    history = [_finished(spec, i, x) for i, x in enumerate([0.05, 0.1, 0.15, 0.6, 0.8, 0.9])]
    s = search.create_suggester(spec, history)
    entries = s._entries  # type: ignore[attr-defined]
    assert entries["t0"].constraints == (pytest.approx(45.0),)
    assert entries["t3"].constraints == (pytest.approx(-10.0),)
    (sug,) = s.suggest(["t6"])
    assert sug.attrs["strategy"] == "gp"


def test_constraint_metric_never_reported_is_metrics_unavailable(sqlite_url: str) -> None:
    r = automl.tune(
        lambda x: {"loss": x},
        SPACE,
        objective_metric="loss",
        constraints=["memory_mb <= 2000"],
        algorithm="random",
        max_trials=2,
        seed=0,
        store=sqlite_url,
        name="nomem",
        progress=False,
    )
    assert set(r.trials["state"]) == {"MetricsUnavailable"}
    assert "the constraint metric 'memory_mb' was never reported" in r.trials["message"][0]


def test_constraint_metrics_are_collected_from_stdout(tmp_path: Any) -> None:
    (tmp_path / "t.py").write_text(
        "import sys\nx = float(sys.argv[1])\nprint(f'loss={x} memory_mb={3000 * x}')\n"
    )
    doc = {
        "name": "c-cmd",
        "objective": {"metric": "loss", "direction": "minimize"},
        "constraints": ["memory_mb <= 2000"],
        "algorithm": "random",
        "seed": 0,
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 4},
        "trial": {"command": ["python", "t.py", "${x}"]},
    }
    spec = parse_spec(yaml.safe_dump(doc), base_dir=tmp_path)
    assert spec.objective.additional_metrics == ("memory_mb",)
    from automl._runner import run_experiment
    from automl.store import Store

    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    exp = store.experiments.create(spec)
    run_experiment(store, exp, runs_dir=tmp_path / "runs")
    trials = store.trials.list(exp.id)
    assert all(t.state is TrialState.SUCCEEDED for t in trials)
    for t in trials:
        assert t.attrs["feasible"] is (t.metrics["memory_mb"].latest <= 2000)


def test_dashboard_queries_never_call_an_infeasible_trial_best(store_url: str) -> None:
    from automl.store import Store
    from dashboard.queries import Queries

    r = automl.tune(
        loss_and_size,
        SPACE,
        objective_metric="loss",
        constraints=["size >= 50"],
        algorithm="random",
        max_trials=10,
        seed=0,
        store=store_url,
        name="cons-dash",
        progress=False,
    )
    assert r.best_trial is not None and r.best_value is not None
    assert (~r.trials["feasible"]).any() and r.trials["loss"].min() < r.best_value
    store = Store(store_url)
    try:
        q = Queries(store)
        (summary,) = q.experiments_summary()
        assert summary.best_value == pytest.approx(r.best_value)
        best = q.best_trial(summary.id, "minimize")
        assert best is not None and best["id"] == r.best_trial.id
    finally:
        store.close()
