"""The ``auto`` algorithm: the default, its strategies, parallel runs and resume."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

import automl
import search
from automl.core import (
    AlgorithmSpec,
    Direction,
    ExperimentSpec,
    Objective,
    Parameter,
    ParameterType,
    TrialRecord,
    TrialState,
)
from automl.store import Store
from search._auto import AutoSuggester, initial_points, power_transform


def _stored(url: str, name: str) -> list[TrialRecord]:
    store = Store(url)
    try:
        exp = store.experiments.get(name)
        return sorted(store.trials.list(exp.id), key=lambda t: t.number)
    finally:
        store.close()


def _spec(
    params: Mapping[str, Parameter], seed: int | None = 3, **settings: Any
) -> ExperimentSpec:
    return ExperimentSpec(
        name="auto-test",
        objective=Objective(type=Direction.MINIMIZE, metric="loss"),
        algorithm=AlgorithmSpec(name="auto", settings=settings),
        parameters=tuple(p.model_copy(update={"name": n}) for n, p in params.items()),
        seed=seed,
    )


def _drive(
    suggester: search.Suggester, fn: Callable[..., float], n: int, start: int = 0
) -> list[TrialRecord]:
    out = []
    for i in range(start, start + n):
        (s,) = suggester.suggest([f"t{i}"])
        rec = TrialRecord(
            id=f"t{i}",
            experiment_id="e",
            number=i,
            params=s.params,
            state=TrialState.SUCCEEDED,
            value=fn(**s.params),
            attrs=s.attrs,
        )
        suggester.tell(rec)
        out.append(rec)
    return out


def quadratic(x: float, y: float) -> float:
    return (x - 1.0) ** 2 + (y + 2.0) ** 2


def test_auto_is_the_default_for_tune_and_native_yaml(tmp_path: Any) -> None:
    from automl.spec import parse_spec

    spec = parse_spec(
        "name: d\n"
        "objective: {metric: loss, direction: minimize}\n"
        "parameters: {x: {type: double, min: 0, max: 1}}\n"
        "trial: {command: [echo, 'loss=${x}']}\n"
    )
    assert spec.algorithm.name == "auto"
    assert AlgorithmSpec().name == "auto"
    import inspect

    assert inspect.signature(automl.tune).parameters["algorithm"].default == "auto"


def test_katib_file_keeps_its_algorithm() -> None:
    from automl.spec import parse_spec
    from tests.conftest import KATIB_EXAMPLES

    path = KATIB_EXAMPLES / "hp-tuning" / "random.yaml"
    spec = parse_spec(path.read_text(), base_dir=path.parent, filename=str(path))
    assert spec.algorithm.name == "random"


def test_auto_on_a_quadratic_records_its_strategies(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    result = automl.tune(
        quadratic,
        parameters={"x": automl.double(-5, 5), "y": automl.double(-5, 5)},
        max_trials=12,
        seed=0,
        store=url,
        name="quad",
    )
    assert result.best_value is not None and result.best_value < 0.5
    trials = _stored(url, "quad")
    strategies = [t.attrs.get("strategy") for t in trials]
    n_init = initial_points(2)
    assert strategies[:n_init] == ["sobol"] * n_init
    assert set(strategies[n_init:]) <= {"gp", "random"} and "gp" in strategies[n_init:]
    # `automl show` says which strategy proposed each trial, in the table and in --json.
    import json

    from typer.testing import CliRunner

    from automl.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["show", "quad", "--store", url], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "strategy" in shown.stdout
    assert "sobol" in shown.stdout and "gp" in shown.stdout
    shown = runner.invoke(app, ["show", "quad", "--store", url, "--json"])
    listed = json.loads(shown.stdout)["trial_list"]
    assert [t["strategy"] for t in listed] == strategies
    # The model does much better than the space-filling start.
    assert min(t.value for t in trials[n_init:] if t.value is not None) < min(
        t.value for t in trials[:n_init] if t.value is not None
    )


def test_auto_on_a_mixed_space() -> None:
    def fn(x: float, n: int, kind: str) -> float:
        return (x - 0.3) ** 2 + 0.05 * (n - 7) ** 2 + (0.0 if kind == "b" else 1.0)

    params = {
        "x": automl.double(-2, 2),
        "n": automl.int(0, 20),
        "kind": automl.categorical(["a", "b", "c"]),
    }
    trials = _drive(AutoSuggester(_spec(params)), fn, 15)
    best = min(trials, key=lambda t: t.value if t.value is not None else math.inf)
    assert best.params["kind"] == "b" and best.value is not None and best.value < 0.5
    assert {t.attrs["strategy"] for t in trials} >= {"sobol", "gp"}
    assert all(isinstance(t.params["n"], int) for t in trials)


def test_auto_on_a_categorical_only_space_uses_tpe() -> None:
    params = {
        "a": automl.categorical(["p", "q", "r", "s", "t", "u"]),
        "b": automl.categorical([1, 2, 3, 4, 5]),
        "c": automl.categorical([True, False]),
    }

    def fn(a: str, b: int, c: bool) -> float:
        return {"p": 3.0, "q": 0.0, "r": 2.0, "s": 1.0, "t": 4.0, "u": 5.0}[a] + b + c

    trials = _drive(AutoSuggester(_spec(params)), fn, 20)
    assert "tpe" in {t.attrs["strategy"] for t in trials}
    assert "gp" not in {t.attrs["strategy"] for t in trials}
    assert min(t.value for t in trials if t.value is not None) <= 2.0
    assert all(isinstance(t.params["c"], bool) for t in trials)


def test_small_categorical_space_runs_out_without_repeats() -> None:
    params = {
        "a": automl.categorical(["p", "q", "r", "s"]),
        "b": automl.categorical([1, 2, 3]),
    }
    suggester = AutoSuggester(_spec(params))
    trials = _drive(suggester, lambda a, b: b + (a == "q"), 12)
    assert len({(t.params["a"], t.params["b"]) for t in trials}) == 12  # never a repeat
    assert suggester.exhausted
    assert suggester.suggest(["more"]) == []


@pytest.mark.parametrize("parallel", [3])
def test_parallel_auto_proposes_no_duplicates(tmp_path: Any, parallel: int) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    result = automl.tune(
        lambda n, kind: (n - 2) ** 2 + (0 if kind == "x" else 1),
        parameters={"n": automl.int(0, 5), "kind": automl.categorical(["x", "y", "z"])},
        parallel_trials=parallel,
        max_trials=30,
        seed=1,
        store=url,
        name="par",
    )
    trials = _stored(url, "par")
    combos = [(t.params["n"], t.params["kind"]) for t in trials]
    assert len(combos) == len(set(combos)) == 18  # the whole space, each point once
    assert result.experiment.reason == "SearchSpaceExhausted"


def test_pending_trials_are_not_proposed_again() -> None:
    params = {"x": automl.double(0, 1), "y": automl.double(0, 1)}
    suggester = AutoSuggester(_spec(params))
    done = _drive(suggester, lambda x, y: x + y, 6)
    batch = suggester.suggest(["p1", "p2", "p3", "p4"])
    keys = {(s.params["x"], s.params["y"]) for s in batch}
    assert len(keys) == 4
    assert not keys & {(t.params["x"], t.params["y"]) for t in done}


def test_resume_proposes_what_an_uninterrupted_run_would() -> None:
    params = {
        "x": automl.double(-5, 5),
        "y": automl.double(1e-3, 10, log=True),
        "k": automl.categorical(["a", "b"]),
    }

    def fn(x: float, y: float, k: str) -> float:
        return (x - 1) ** 2 + math.log(y) ** 2 + (k == "a")

    full = _drive(AutoSuggester(_spec(params)), fn, 8)
    # A controller died after 6 trials: a new suggester rebuilt from the stored 6 goes on.
    resumed = AutoSuggester(_spec(params), history=full[:6])
    rest = _drive(resumed, fn, 2, start=6)
    assert [t.attrs["strategy"] for t in rest] == ["gp", "gp"]
    assert [t.params for t in rest] == [t.params for t in full[6:]]
    assert [t.attrs for t in rest] == [t.attrs for t in full[6:]]
    # A different seed proposes something else.
    other = _drive(AutoSuggester(_spec(params, seed=4)), fn, 4)
    assert [t.params for t in other] != [t.params for t in full[:4]]


def test_running_trial_of_a_dead_controller_counts_as_pending() -> None:
    params = {"x": automl.double(0, 1), "y": automl.double(0, 1)}
    full = _drive(AutoSuggester(_spec(params)), lambda x, y: x * y, 7)
    interrupted = [*full[:6], dataclasses.replace(full[6], state=TrialState.CREATED)]
    suggester = AutoSuggester(_spec(params), history=interrupted)
    (s,) = suggester.suggest(["next"])
    assert s.params != full[6].params


def test_power_transform_keeps_order_and_tames_tails() -> None:
    values = [0.1, 0.12, 0.2, 0.3, 5.0, 1e4]
    out = power_transform(values)
    assert list(np.argsort(out)) == list(np.argsort(values))
    assert abs(float(out.mean())) < 1e-9 and abs(float(out.std()) - 1) < 1e-9
    # The outlier no longer dwarfs the spread of the good values, as it does after z-scoring.
    z = (np.array(values) - np.mean(values)) / np.std(values)
    assert (out[3] - out[0]) / (out[-1] - out[0]) > 100 * (z[3] - z[0]) / (z[-1] - z[0])
    assert power_transform([1.0, 1.0, 1.0]).tolist() == [0.0, 0.0, 0.0]
    # Equal values whose std is a rounding error (1e-16), not 0: NaN before (the GP refused them).
    assert power_transform([0.8987200890372844] * 6).tolist() == [0.0] * 6


def test_auto_goes_on_when_every_result_so_far_is_equal() -> None:
    """A classifier's accuracy can be the same on every early configuration: the GP phase must
    still propose (it crashed the suggester with "values should not contain NaN")."""
    params = {f"x{i}": automl.double(0, 1) for i in range(3)}
    suggester = search.create_suggester(_spec(params, n_initial_points=4))
    done = _drive(suggester, lambda **_: 0.8987200890372844, 7)
    assert [r.attrs["strategy"] for r in done] == ["sobol"] * 4 + ["gp"] * 3
    assert len({tuple(sorted(r.params.items())) for r in done}) == 7  # and no repeats


def test_auto_settings_are_validated() -> None:
    from automl.errors import SpecError

    params = {"x": automl.double(0, 1)}
    rule = r"algorithm.settings.n_initial_points: must be an integer >= 1; got 0"
    with pytest.raises(SpecError, match=rule):
        AutoSuggester(_spec(params, n_initial_points=0))
    spec = _spec(params, n_initial_points=2, gp_max_trials=3)
    trials = _drive(search.create_suggester(spec), lambda x: (x - 0.5) ** 2, 8)
    strategies = [t.attrs["strategy"] for t in trials]
    assert strategies[:2] == ["sobol", "sobol"]
    assert strategies[-1] == "tpe"  # past gp_max_trials the cheaper model takes over


def test_integer_space_values_are_typed() -> None:
    p = Parameter(name="n", type=ParameterType.INT, min=1, max=1000, distribution="logUniform")
    trials = _drive(AutoSuggester(_spec({"n": p})), lambda n: abs(math.log(n) - 3), 10)
    assert all(isinstance(t.params["n"], int) and 1 <= t.params["n"] <= 1000 for t in trials)
