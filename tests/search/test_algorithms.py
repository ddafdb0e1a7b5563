"""Every registered algorithm, end to end through automl.tune, and the suggester's bookkeeping."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

import automl
import search
from automl.core import (
    AlgorithmSpec,
    Direction,
    EarlyStoppingSpec,
    ExperimentSpec,
    Objective,
    Parameter,
    ParameterType,
    TrialRecord,
    TrialState,
)
from search._optuna import OptunaSuggester, frozen_trials


def quadratic(x: float, y: float) -> float:
    return (x - 1.0) ** 2 + (y + 2.0) ** 2


def slow_quadratic(x: float, y: float) -> float:
    time.sleep(0.01)
    return (x - 1.0) ** 2 + (y + 2.0) ** 2


def _space(step: float | None = None) -> dict[str, Parameter]:
    return {"x": automl.double(-5, 5, step=step), "y": automl.double(-5, 5, step=step)}


def _ordered(result: Any) -> pd.DataFrame:
    return result.trials.sort_values("number").reset_index(drop=True)


def _param_rows(df: pd.DataFrame, names: Sequence[str] = ("x", "y")) -> list[tuple[Any, ...]]:
    return list(zip(*(df[f"params_{n}"].tolist() for n in names), strict=True))


# algorithm -> (settings, trials, how many leading trials are random/startup, adaptive)
CONFIG: dict[str, tuple[dict[str, Any], int, int, bool]] = {
    "random": ({}, 25, 5, False),
    # Sobol's first trial is an independent random draw; the sequence starts after it.
    "sobol": ({}, 25, 1, False),
    "tpe": ({"n_startup_trials": 5}, 25, 5, True),
    "multivariate-tpe": ({"n_startup_trials": 5}, 25, 5, True),
    "cmaes": ({}, 25, 5, True),
    "bayesianoptimization": ({"n_initial_points": 5}, 15, 5, True),
    "auto": ({"n_initial_points": 5}, 15, 5, True),
    "evolution": ({"population_size": 5, "sample_size": 3}, 25, 5, True),
    "nsga2": ({"population_size": 5}, 25, 5, True),
    "nsga3": ({"population_size": 5}, 25, 5, True),
    "motpe": ({"n_startup_trials": 5}, 25, 5, True),
}


def test_registry_lists_every_algorithm() -> None:
    assert set(search.algorithm_names()) == {
        "auto",
        "random",
        "grid",
        "tpe",
        "multivariate-tpe",
        "cmaes",
        "sobol",
        "bayesianoptimization",
        "hyperband",
        "pbt",
        "evolution",
        "enas",
        "darts",
        "nsga2",
        "nsga3",
        "motpe",
    }
    # Hyperband and PBT schedule trials over a resource / checkpoints, ENAS and DARTS search
    # architectures: their own test files.
    assert set(search.algorithm_names()) == set(CONFIG) | {
        "grid",
        "hyperband",
        "pbt",
        "enas",
        "darts",
    }


def _algorithm_params() -> list[Any]:
    out = []
    for name in search.algorithm_names():
        if name not in ("hyperband", "pbt", "enas", "darts"):
            out.append(pytest.param(name, id=name))
    return out


@pytest.mark.parametrize("algorithm", _algorithm_params())
def test_algorithm_optimizes_quadratic(algorithm: str, sqlite_url: str) -> None:
    if algorithm == "grid":
        # 5 x 5 grid of {-5, -2.5, 0, 2.5, 5}: the grid optimum is (0, -2.5), value 1.25.
        r = automl.tune(
            quadratic,
            _space(step=2.5),
            algorithm="grid",
            max_trials=None,
            seed=0,
            store=sqlite_url,
            name=f"q-{algorithm}",
        )
        df = _ordered(r)
        assert r.reason == "SearchSpaceExhausted"
        assert len(df) == 25
        assert len(set(_param_rows(df))) == 25
        assert r.best_params == {"x": 0.0, "y": -2.5}
        assert r.best_value == pytest.approx(1.25)
        return

    settings, n, n_early, adaptive = CONFIG[algorithm]
    r = automl.tune(
        quadratic,
        _space(),
        algorithm=algorithm,
        algorithm_settings=settings,
        max_trials=n,
        seed=0,
        store=sqlite_url,
        name=f"q-{algorithm}",
    )
    df = _ordered(r)
    assert r.reason == "ExperimentMaxTrialsReached"
    assert len(df) == n
    assert (df["state"] == "Succeeded").all()
    for col in ("params_x", "params_y"):
        vals = df[col].tolist()
        assert all(isinstance(v, float) and -5 <= v <= 5 for v in vals), vals
    values = df["value"].tolist()
    early, late = min(values[:n_early]), min(values[n_early:])
    assert late < early, (algorithm, values)
    assert r.best_value == pytest.approx(min(values))
    if adaptive:
        # Random search reaches about 1.9 here; a model that learns does much better.
        assert r.best_value < 1.0, (algorithm, values)


def _grid_space() -> dict[str, Parameter]:
    return {"a": automl.int(0, 1), "b": automl.categorical(["p", "q", "r"])}


def _grid_objective(a: int, b: str) -> float:
    return a + {"p": 0.0, "q": 1.0, "r": 2.0}[b]


@pytest.mark.parametrize("parallel", [1, 3])
@pytest.mark.parametrize("max_trials", [None, 20])
def test_grid_exhaustion(max_trials: int | None, parallel: int, sqlite_url: str) -> None:
    r = automl.tune(
        _grid_objective,
        _grid_space(),
        algorithm="grid",
        max_trials=max_trials,
        parallel_trials=parallel,
        store=sqlite_url,
        name="grid-2x3",
    )
    assert r.reason == "SearchSpaceExhausted"
    df = _ordered(r)
    assert len(df) == 6
    rows = _param_rows(df, ("a", "b"))
    assert sorted(rows) == [(a, b) for a in (0, 1) for b in ("p", "q", "r")]
    assert (df["state"] == "Succeeded").all()
    assert r.best_params == {"a": 0, "b": "p"}


@pytest.mark.parametrize(
    ("algorithm", "settings"),
    [("random", {}), ("tpe", {"n_startup_trials": 4}), ("sobol", {})],
)
def test_seeded_runs_are_reproducible(
    algorithm: str, settings: dict[str, Any], tmp_path: Any
) -> None:
    def run(seed: int, tag: str) -> list[tuple[Any, ...]]:
        r = automl.tune(
            quadratic,
            _space(),
            algorithm=algorithm,
            algorithm_settings=settings,
            max_trials=12,
            seed=seed,
            store=f"sqlite:///{tmp_path / (tag + '.db')}",
            name="repro",
        )
        return _param_rows(_ordered(r))

    first, second, other = run(11, "a"), run(11, "b"), run(12, "c")
    assert len(first) == 12
    assert first == second
    assert first != other  # the seed matters


@pytest.mark.parametrize(
    ("algorithm", "space", "n"),
    [
        ("random", _space(), 16),
        ("tpe", _space(), 16),
        ("grid", _space(step=2.5), 25),
    ],
)
def test_parallel_trials_do_not_repeat(
    algorithm: str, space: dict[str, Parameter], n: int, sqlite_url: str
) -> None:
    settings = {"n_startup_trials": 4} if algorithm == "tpe" else {}
    r = automl.tune(
        slow_quadratic,
        space,
        algorithm=algorithm,
        algorithm_settings=settings,
        max_trials=n,
        parallel_trials=4,
        seed=3,
        store=sqlite_url,
        name=f"par-{algorithm}",
    )
    df = _ordered(r)
    assert len(df) == n
    assert (df["state"] == "Succeeded").all()
    rows = _param_rows(df)
    assert len(set(rows)) == n, "a parameter set was suggested twice"
    # The trials really overlapped: some trial started before an earlier one finished.
    starts, ends = df["started"].tolist(), df["finished"].tolist()
    overlaps = sum(
        1 for i in range(n) for j in range(n) if i != j and starts[i] <= starts[j] < ends[i]
    )
    assert overlaps > 0


# ---------------------------------------------------------------------------------------------
# Suggesters rebuilt from the stored history
# ---------------------------------------------------------------------------------------------


def _spec(
    algorithm: str,
    params: Sequence[Parameter] | None = None,
    seed: int | None = 0,
    settings: dict[str, Any] | None = None,
) -> ExperimentSpec:
    if params is None:
        params = (
            Parameter(name="x", type=ParameterType.DOUBLE, min=-5, max=5),
            Parameter(name="y", type=ParameterType.DOUBLE, min=-5, max=5),
        )
    return ExperimentSpec(
        name="rebuild",
        objective=Objective(type=Direction.MINIMIZE, metric="loss"),
        algorithm=AlgorithmSpec(name=algorithm, settings=settings or {}),
        parameters=tuple(params),
        seed=seed,
        source="python",
    )


def _drive(
    suggester: search.Suggester,
    n: int,
    history: list[TrialRecord] | None = None,
    value: Any = None,
) -> list[TrialRecord]:
    """Suggest and finish ``n`` trials one at a time, appending them to ``history``."""
    history = [] if history is None else history
    for _ in range(n):
        i = len(history)
        tid = f"t{i}"
        [s] = suggester.suggest([tid])
        params = dict(s.params)
        v = value(params) if value else quadratic(params["x"], params["y"])
        rec = TrialRecord(
            id=tid,
            experiment_id="e",
            number=i,
            params=params,
            state=TrialState.SUCCEEDED,
            value=v,
            attrs=dict(s.attrs),
        )
        suggester.tell(rec)
        history.append(rec)
    return history


def _key(params: Any) -> tuple[Any, ...]:
    return tuple(sorted(params.items()))


def test_random_resumed_does_not_replay_history() -> None:
    spec = _spec("random", seed=5)
    history = _drive(search.create_suggester(spec), 8)
    first = {_key(t.params) for t in history}
    assert len(first) == 8

    resumed = search.create_suggester(spec, history)
    more = _drive(resumed, 8, list(history))[8:]
    assert not first & {_key(t.params) for t in more}, "resumed search repeated a trial"
    assert len({_key(t.params) for t in more}) == 8

    # Resuming is itself deterministic for a seeded experiment.
    again = search.create_suggester(spec, history).suggest(["z"])[0]
    assert dict(again.params) == dict(more[0].params)


def test_tpe_rebuilt_mirror_has_completed_trials() -> None:
    spec = _spec("tpe", settings={"n_startup_trials": 5})
    history = _drive(search.create_suggester(spec), 7)
    running = TrialRecord(
        id="run",
        experiment_id="e",
        number=7,
        params={"x": 0.5, "y": 0.5},
        state=TrialState.RUNNING,
    )
    failed = TrialRecord(
        id="bad",
        experiment_id="e",
        number=8,
        params={"x": -1.0, "y": 1.0},
        state=TrialState.FAILED,
    )
    s = search.create_suggester(spec, [*history, running, failed])
    assert isinstance(s, OptunaSuggester)
    mirror = frozen_trials(s)
    assert len(mirror) == 9
    done = mirror[:7]
    assert all(t.state.name == "COMPLETE" for t in done)
    assert [t.value for t in done] == pytest.approx([t.value for t in history])
    for ft, rec in zip(done, history, strict=True):
        assert ft.params == pytest.approx(dict(rec.params))
    assert mirror[7].state.name == "RUNNING"  # still running: not proposed again
    assert mirror[8].state.name == "FAIL"

    # The next suggestion is a new trial in the mirror, inside the space.
    [nxt] = s.suggest(["next"])
    assert -5 <= nxt.params["x"] <= 5 and -5 <= nxt.params["y"] <= 5
    assert len(frozen_trials(s)) == 10
    # Finished trials passed to tell are recorded.
    s.tell(
        TrialRecord(
            id="next",
            experiment_id="e",
            number=9,
            params=nxt.params,
            state=TrialState.SUCCEEDED,
            value=1.0,
        )
    )
    assert frozen_trials(s)[-1].state.name == "COMPLETE"
    assert frozen_trials(s)[-1].value == 1.0


def test_sobol_resumed_with_state_continues_sequence() -> None:
    spec = _spec("sobol", seed=3)
    uninterrupted = _drive(search.create_suggester(spec), 10)

    first = search.create_suggester(spec)
    history = _drive(first, 5)
    resumed = search.create_suggester(spec, history, first.state())
    continued = _drive(resumed, 5, list(history))
    assert [dict(t.params) for t in continued] == [dict(t.params) for t in uninterrupted]


def test_sobol_warns_nothing_to_the_user() -> None:
    # Optuna marks QMCSampler (and the patient and wilcoxon pruners) experimental; that warning
    # is ours to silence, not the user's.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _drive(search.create_suggester(_spec("sobol", seed=0)), 3)
        for rule, settings in (("patient", {"patience": 1}), ("wilcoxon", {})):
            spec = _spec("random").model_copy(
                update={"early_stopping": EarlyStoppingSpec(name=rule, settings=settings)}
            )
            assert search.create_stopper(spec) is not None
    assert [str(w.message) for w in caught] == []


def test_sobol_points_are_stratified() -> None:
    # 16 consecutive Sobol points fill each cell of a 4 x 4 grid exactly once; random does not.
    spec = _spec("sobol", seed=0)
    trials = _drive(search.create_suggester(spec), 17)[1:]  # trial 0 is the random draw
    cells = {(int((t.params["x"] + 5) // 2.5), int((t.params["y"] + 5) // 2.5)) for t in trials}
    assert len(cells) == 16


def test_grid_resumed_suggests_only_the_rest() -> None:
    params = (
        Parameter(name="a", type=ParameterType.INT, min=0, max=1),
        Parameter(name="b", type=ParameterType.CATEGORICAL, values=("p", "q", "r")),
    )
    spec = _spec("grid", params=params)
    all_points = {(a, b) for a in (0, 1) for b in ("p", "q", "r")}
    history = _drive(search.create_suggester(spec), 3, value=lambda p: 1.0)
    tried = {(t.params["a"], t.params["b"]) for t in history}
    assert len(tried) == 3

    resumed = search.create_suggester(spec, history)
    assert not resumed.exhausted
    rest = resumed.suggest(["x1", "x2", "x3", "x4"])
    got = [(s.params["a"], s.params["b"]) for s in rest]
    assert len(got) == 3
    assert set(got) == all_points - tried
    assert resumed.exhausted


def test_random_search_keeps_no_history_in_memory() -> None:
    """Random search reads no history, so its suggester holds none: its memory stays flat
    however many trials an experiment runs (benchmarks/overhead.py --rss measures it)."""
    s = search.create_suggester(_spec("random"))
    history = _drive(s, 2500)
    assert len(frozen_trials(s)) < 1000  # recycled, not 2,500 FrozenTrials
    assert len({_key(t.params) for t in history}) == 2500  # still fresh random draws
    # Rebuilt from a long stored history, it does not load it either, and goes on drawing.
    again = search.create_suggester(_spec("random"), history)
    assert frozen_trials(again) == []
    [nxt] = again.suggest(["next"])
    assert _key(nxt.params) not in {_key(t.params) for t in history}
