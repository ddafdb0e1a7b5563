"""Regularized evolution: random initial population, tournament, one-choice mutation, ageing,
resume from the stored history, and plain hyperparameter spaces."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest

import automl
from automl.core import (
    AlgorithmSpec,
    Direction,
    ExperimentSpec,
    Objective,
    Parameter,
    ParameterType,
    ParamValue,
    TrialRecord,
    TrialState,
)
from automl.errors import SpecError
from search import create_suggester
from search._evolution import EvolutionSuggester, Member

PARAMS = (
    Parameter(name="a", type=ParameterType.CATEGORICAL, values=("x", "y", "z")),
    Parameter(name="b", type=ParameterType.INT, min=0, max=9),
    Parameter(name="c", type=ParameterType.DISCRETE, values=(1, 2, 4, 8)),
    Parameter(name="d", type=ParameterType.DOUBLE, min=0.0, max=1.0),
)


def make_spec(
    population: int = 4, sample: int = 2, direction: Direction = Direction.MAXIMIZE, **extra: Any
) -> ExperimentSpec:
    settings = {"population_size": population, "sample_size": sample, "random_state": 7, **extra}
    return ExperimentSpec(
        name="evo",
        objective=Objective(type=direction, metric="score"),
        algorithm=AlgorithmSpec(name="evolution", settings=settings),
        parameters=PARAMS,
        source="python",
    )


def finished(
    i: int, params: Mapping[str, ParamValue], value: float | None, state: TrialState | None = None
) -> TrialRecord:
    return TrialRecord(
        id=f"t{i}",
        experiment_id="evo",
        number=i,
        params=params,
        state=state or (TrialState.SUCCEEDED if value is not None else TrialState.FAILED),
        value=value,
        finished_at=float(i),
    )


def run(s: EvolutionSuggester, n: int, start: int, score: Any) -> list[TrialRecord]:
    out = []
    for i in range(start, start + n):
        (sug,) = s.suggest([f"t{i}"])
        rec = finished(i, sug.params, score(sug.params))
        s.tell(rec)
        out.append(rec)
    return out


def test_initial_population_is_random_then_children_have_parents() -> None:
    s = EvolutionSuggester(make_spec(population=4))
    first = s.suggest([f"t{i}" for i in range(6)])
    # Four random members; nothing has finished, so no parent exists yet: it waits.
    assert len(first) == 4
    assert all(x.attrs["evolution"]["parent"] is None for x in first)
    for i, sug in enumerate(first):
        for p in PARAMS:
            p.coerce(sug.params[p.name])  # every value lies in the space
        s.tell(finished(i, sug.params, float(i)))
    assert [m.trial_id for m in s.population] == ["t0", "t1", "t2", "t3"]
    (child,) = s.suggest(["t4"])
    assert child.attrs["evolution"]["parent"] in {"t0", "t1", "t2", "t3"}


def test_population_never_exceeds_its_size_and_ageing_removes_the_oldest() -> None:
    s = EvolutionSuggester(make_spec(population=4))
    # The first member is the best of all: ageing must still remove it first.
    run(s, 4, 0, lambda p: 1.0)
    s.population[0] = Member("t0", s.population[0].params, 1000.0)
    assert len(s.population) == 4
    (sug,) = s.suggest(["t4"])
    s.tell(finished(4, sug.params, -5.0))  # the worst so far joins ...
    assert len(s.population) == 4
    ids = [m.trial_id for m in s.population]
    assert ids == ["t1", "t2", "t3", "t4"]  # ... and the oldest (the best) leaves, not the worst
    run(s, 10, 5, lambda p: 1.0)
    assert [m.trial_id for m in s.population] == ["t11", "t12", "t13", "t14"]


def test_tournament_picks_the_best_of_the_sample() -> None:
    s = EvolutionSuggester(make_spec(population=6, sample=6))
    run(s, 6, 0, lambda p: 0.0)
    values = [3.0, 9.0, 1.0, 4.0, 7.0, 2.0]
    s.population.clear()
    for i, v in enumerate(values):
        s.population.append(Member(f"m{i}", {"a": "x", "b": i, "c": 1, "d": 0.5}, v))
    # Sample size = population: the tournament is the whole population.
    assert s.tournament().trial_id == "m1"
    s.sample_size = 2
    winners = set()
    for _ in range(60):
        twin = random.Random()
        twin.setstate(s._rng.getstate())  # draw the same sample the tournament will draw
        expected = max(twin.sample(list(s.population), 2), key=lambda m: m.value)
        winner = s.tournament()
        assert winner == expected  # the best of the drawn sample, whatever the sample is
        winners.add(winner.trial_id)
    assert "m2" not in winners and len(winners) > 2  # the worst never wins a pair
    # Minimizing: the smallest value wins.
    m = EvolutionSuggester(make_spec(population=6, sample=6, direction=Direction.MINIMIZE))
    m.population.extend(s.population)
    assert m.tournament().trial_id == "m2"


def test_mutation_changes_exactly_one_choice() -> None:
    s = EvolutionSuggester(make_spec())
    parent: dict[str, ParamValue] = {"a": "y", "b": 5, "c": 4, "d": 0.25}
    seen = set()
    for _ in range(200):
        child, changed = s.mutate(parent)
        diff = [k for k in parent if child[k] != parent[k]]
        assert diff == changed and len(diff) == 1
        seen.add(diff[0])
        for p in PARAMS:
            assert p.coerce(child[p.name]) == child[p.name]
        assert 0 <= int(child["b"]) <= 9 and child["c"] in (1, 2, 4, 8)
    assert seen == {"a", "b", "c", "d"}  # every parameter can mutate


def test_mutation_rate_changes_at_least_one() -> None:
    s = EvolutionSuggester(make_spec(mutation_rate=0.5))
    parent: dict[str, ParamValue] = {"a": "y", "b": 5, "c": 4, "d": 0.25}
    counts = set()
    for _ in range(200):
        child, changed = s.mutate(parent)
        assert changed and all(child[k] != parent[k] for k in changed)
        counts.add(len(changed))
    assert max(counts) > 1


def test_failed_trials_do_not_join_and_minimize_is_respected() -> None:
    s = EvolutionSuggester(make_spec(population=3, direction=Direction.MINIMIZE))
    sugs = s.suggest(["t0", "t1", "t2"])
    s.tell(finished(0, sugs[0].params, None))
    s.tell(finished(1, sugs[1].params, 5.0))
    s.tell(finished(2, sugs[2].params, 1.0))
    assert [m.trial_id for m in s.population] == ["t1", "t2"]
    s.sample_size = 2
    assert s.tournament().trial_id == "t2"


def test_resume_rebuilds_the_population_from_history() -> None:
    spec = make_spec(population=4)
    a = EvolutionSuggester(spec)
    history = run(a, 9, 0, lambda p: float(p["b"]))
    # Finished out of creation order: ageing follows completion order.
    history[7], history[8] = (
        finished(7, history[7].params, history[7].value),
        finished(8, history[8].params, history[8].value),
    )
    b = create_suggester(spec, history)
    assert isinstance(b, EvolutionSuggester)
    assert [m.trial_id for m in b.population] == [m.trial_id for m in a.population]
    assert [m.params for m in b.population] == [m.params for m in a.population]
    # Seeded by the seed and history length: a rebuilt suggester continues identically.
    c = create_suggester(spec, history)
    assert b.suggest(["n"])[0].params == c.suggest(["n"])[0].params  # type: ignore[union-attr]


def test_alias_and_setting_errors() -> None:
    spec = make_spec().model_copy(
        update={"algorithm": AlgorithmSpec(name="regularized-evolution")}
    )
    assert isinstance(create_suggester(spec), EvolutionSuggester)
    for key, value, words in (
        ("population_size", 1, "an integer in [2, 100000]"),
        ("sample_size", 0, "an integer in [1, 100000]"),
        ("mutation_rate", 1.5, "a number in (0, 1]"),
        ("tournament", 3, "not a setting of 'evolution'"),
    ):
        bad = make_spec().model_copy(
            update={"algorithm": AlgorithmSpec(name="evolution", settings={key: value})}
        )
        with pytest.raises(SpecError) as err:
            create_suggester(bad)
        (issue,) = err.value.issues
        assert issue.path == f"algorithm.settings.{key}" and words in issue.message


def _score(a: str, b: int, c: int, d: float) -> float:
    return {"x": 0.0, "y": 1.0, "z": 3.0}[a] + b + c - abs(d - 0.5)


def test_evolution_tunes_a_plain_hyperparameter_space(sqlite_url: str) -> None:
    params = {
        "a": automl.categorical(["x", "y", "z"]),
        "b": automl.int(0, 9),
        "c": automl.discrete([1, 2, 4, 8]),
        "d": automl.double(0.0, 1.0),
    }
    r = automl.tune(
        _score,
        params,
        direction="maximize",
        algorithm="evolution",
        algorithm_settings={"population_size": 8, "sample_size": 3},
        max_trials=60,
        seed=1,
        store=sqlite_url,
        name="evo-hp",
    )
    df = r.trials
    assert len(df) == 60
    first = df.sort_values("number")["value"].iloc[:8].mean()
    last = df.sort_values("number")["value"].iloc[-8:].mean()
    assert last > first  # children of tournament winners beat the random population
    assert r.best_value is not None and r.best_value >= 18.0  # optimum 20.5 (z, 9, 8, 0.5)
