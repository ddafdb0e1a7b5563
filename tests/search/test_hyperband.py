"""Hyperband: the bracket schedule worked by hand, synchronous rungs, promotions, resuming from
the store's history, an end-to-end run and the settings' rules."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

import automl
from automl.core import (
    AlgorithmSpec,
    Direction,
    Distribution,
    ExperimentSpec,
    Objective,
    Parameter,
    ParameterType,
    Suggestion,
    TrialRecord,
    TrialState,
)
from automl.errors import SpecError
from automl.spec import parse_spec
from search import create_suggester
from search._hyperband import ATTR_KEY, STATE_SEED_KEY, HyperbandSuggester, bracket_plan

# r_l=9, eta=3: s_max = floor(log_3 9) = 2, B = (2 + 1) * 9 = 27.
#   bracket 2: n = ceil(27/9 * 3^2 / 3) = 9 at r = 9 * 3^-2 = 1; then floor(9/3) = 3 at 3;
#              then floor(3/3) = 1 at 9.
#   bracket 1: n = ceil(27/9 * 3^1 / 2) = ceil(4.5) = 5 at r = 3; then floor(5/3) = 1 at 9.
#   bracket 0: n = ceil(27/9 * 3^0 / 1) = 3 at r = 9.
# (bracket, rung, resource, trials), in the order the rungs run: 22 trials in all.
HAND_WORKED = [
    (2, 0, 1, 9),
    (2, 1, 3, 3),
    (2, 2, 9, 1),
    (1, 0, 3, 5),
    (1, 1, 9, 1),
    (0, 0, 9, 3),
]
TOTAL = sum(n for *_, n in HAND_WORKED)


def _param(name: str, kind: ParameterType, **kw: Any) -> Parameter:
    return Parameter(name=name, type=kind, **kw)


def _spec(
    *,
    direction: str = "minimize",
    settings: Mapping[str, Any] | None = None,
    seed: int | None = 7,
    resource: ParameterType = ParameterType.INT,
    parallel: int = 9,
) -> ExperimentSpec:
    return ExperimentSpec(
        name="hb",
        objective=Objective(type=Direction(direction), metric="loss"),
        algorithm=AlgorithmSpec(
            name="hyperband",
            settings=dict(settings or {"resource_name": "epochs", "r_l": 9, "eta": 3}),
        ),
        parameters=(
            _param("x", ParameterType.DOUBLE, min=-5.0, max=5.0),
            _param(
                "lr",
                ParameterType.DOUBLE,
                min=1e-4,
                max=1e-1,
                distribution=Distribution.LOG_UNIFORM,
            ),
            _param("width", ParameterType.INT, min=8, max=64, step=8),
            _param("opt", ParameterType.CATEGORICAL, values=("adam", "sgd", "rmsprop")),
            _param(
                "mom", ParameterType.DOUBLE, min=0.1, max=0.9, distribution=Distribution.NORMAL
            ),
            _param("epochs", resource, min=1, max=9),
        ),
        parallel_trial_count=parallel,
        seed=seed,
    )


def _loss(params: Mapping[str, Any]) -> float:
    """A deterministic objective: better near x = 1, and with more epochs."""
    return (float(params["x"]) - 1.0) ** 2 + 1.0 / float(params["epochs"])


def _pos(s: Suggestion | TrialRecord) -> tuple[int, int, int, float]:
    hb = s.attrs[ATTR_KEY]
    return hb["bracket"], hb["rung"], hb["config"], hb["resource"]


@dataclass
class Driver:
    """Plays the controller: fresh ids, records as stored, tells in order."""

    sug: HyperbandSuggester
    records: list[TrialRecord] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    made: int = 0

    def suggest(self, k: int) -> list[TrialRecord]:
        ids = [f"t{self.made + j}" for j in range(k)]
        got = self.sug.suggest(ids)
        assert len(got) <= k
        out = []
        for trial_id, s in zip(ids, got, strict=False):
            r = TrialRecord(trial_id, "hb", self.made, s.params, TrialState.RUNNING, attrs=s.attrs)
            self.made += 1
            self.records.append(r)
            self.running.append(trial_id)
            out.append(r)
        return out

    def finish(
        self, trial_id: str, value: float | None, state: TrialState = TrialState.SUCCEEDED
    ) -> None:
        i = next(j for j, r in enumerate(self.records) if r.id == trial_id)
        done = replace(self.records[i], state=state, value=value)
        self.records[i] = done
        self.running.remove(trial_id)
        self.sug.tell(done)

    def history(self) -> list[TrialRecord]:
        """What the controller hands a rebuilt suggester: active trials as Created."""
        return [
            replace(r, state=TrialState.CREATED) if r.state.is_active else r for r in self.records
        ]


def _run_all(driver: Driver, loss: Any = _loss) -> list[list[TrialRecord]]:
    """Suggest everything available, tell every trial, repeat; returns the batches."""
    batches = []
    while True:
        batch = driver.suggest(100)
        if not batch:
            break
        batches.append(batch)
        for r in batch:
            driver.finish(r.id, loss(r.params))
    return batches


# ---------------------------------------------------------------------------------------------
# The schedule
# ---------------------------------------------------------------------------------------------


def test_bracket_plan_worked_by_hand() -> None:
    plan = bracket_plan(9, 3)
    assert [(len(p) - 1, i, r, n) for p in plan for i, (n, r) in enumerate(p)] == HAND_WORKED
    # Li et al. 2018, table 1 (R = 81, eta = 3).
    assert [[n for n, _ in b] for b in bracket_plan(81, 3)] == [
        [81, 27, 9, 3, 1],
        [34, 11, 3, 1],
        [15, 5, 1],
        [8, 2],
        [5],
    ]
    assert [r for _, r in bracket_plan(81, 3)[0]] == [1, 3, 9, 27, 81]
    assert bracket_plan(0.5, 3) == [[(1, 0.5)]]  # r_l < 1: one bracket


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_hand_worked_schedule_and_promotions(direction: str) -> None:
    driver = Driver(HyperbandSuggester(_spec(direction=direction), ()))
    sign = 1.0 if direction == "minimize" else -1.0

    def loss(params: Mapping[str, Any]) -> float:
        return sign * _loss(params)

    batches = _run_all(driver, loss)
    got = []
    for batch in batches:
        (b, i, _, r), *_ = (_pos(t) for t in batch)
        assert all(_pos(t)[:2] == (b, i) and _pos(t)[3] == r for t in batch)
        assert all(t.params["epochs"] == r and isinstance(t.params["epochs"], int) for t in batch)
        got.append((b, i, r, len(batch)))
    assert got == HAND_WORKED
    assert driver.made == TOTAL == 22
    assert driver.sug.exhausted
    assert driver.sug.suggest(["late"]) == []

    by_key = {(_pos(t)[0], _pos(t)[1], _pos(t)[2]): t for t in driver.records}
    for prev, batch in itertools.pairwise(batches):
        b, i, *_ = _pos(batch[0])
        if i == 0:
            assert len({_pos(t)[2] for t in batch}) == len(batch)  # fresh configurations
            continue
        best = sorted(prev, key=lambda t: sign * loss(t.params))
        assert [_pos(t)[2] for t in batch] == [_pos(t)[2] for t in best[: len(batch)]]
        for t in batch:
            parent = by_key[(b, i - 1, _pos(t)[2])]
            assert {k: v for k, v in t.params.items() if k != "epochs"} == {
                k: v for k, v in parent.params.items() if k != "epochs"
            }
            assert t.params["epochs"] == 3 * parent.params["epochs"]


def test_sampled_values_stay_in_the_space() -> None:
    driver = Driver(HyperbandSuggester(_spec(), ()))
    _run_all(driver)
    for r in driver.records:
        p: Mapping[str, Any] = r.params
        assert -5 <= p["x"] <= 5 and isinstance(p["x"], float)
        assert 1e-4 <= p["lr"] <= 1e-1
        assert p["width"] in range(8, 65, 8) and isinstance(p["width"], int)
        assert p["opt"] in ("adam", "sgd", "rmsprop")
        assert 0.1 <= p["mom"] <= 0.9
    fresh = [r for r in driver.records if _pos(r)[1] == 0]
    assert len({r.params["x"] for r in fresh}) == len(fresh) == 9 + 5 + 3


def test_resource_values() -> None:
    # Double resource: the float itself. r_l=10, eta=3 -> 10/9, 10/3, 10.
    spec = _spec(
        resource=ParameterType.DOUBLE,
        settings={"resource_name": "epochs", "r_l": "10", "eta": "3"},  # strings, as Katib
    )
    driver = Driver(HyperbandSuggester(spec, ()))
    first = driver.suggest(1)[0]
    assert first.params["epochs"] == pytest.approx(10 / 9)
    # Int resource: rounded half up, never below the parameter's min.
    sug = HyperbandSuggester(_spec(settings={"resource_name": "epochs", "r_l": 10, "eta": 3}), ())
    assert [sug._resource_value(r) for r in (10 / 9, 10 / 3, 2.5, 0.2, 10.0)] == [1, 3, 3, 1, 10]


def test_suggest_respects_the_count() -> None:
    driver = Driver(HyperbandSuggester(_spec(), ()))
    assert driver.suggest(0) == []
    assert len(driver.suggest(2)) == 2
    assert len(driver.suggest(4)) == 4
    assert len(driver.suggest(10)) == 3  # the rest of the 9 in the first rung


# ---------------------------------------------------------------------------------------------
# Synchronous rungs, failures
# ---------------------------------------------------------------------------------------------


def test_rungs_are_synchronous() -> None:
    driver = Driver(HyperbandSuggester(_spec(), ()))
    rung0 = driver.suggest(4) + driver.suggest(4) + driver.suggest(4)
    assert len(rung0) == 9
    for r in rung0[:-1]:
        driver.finish(r.id, _loss(r.params))
        assert driver.suggest(9) == []  # the rung's last trial still runs
        assert not driver.sug.exhausted
    driver.finish(rung0[-1].id, _loss(rung0[-1].params))
    rung1 = driver.suggest(2)
    assert [_pos(r)[:2] for r in rung1] == [(2, 1), (2, 1)]
    assert len(driver.suggest(9)) == 1
    driver.finish(rung1[0].id, 1.0)
    assert driver.suggest(9) == []


def test_failed_trials_rank_last() -> None:
    driver = Driver(HyperbandSuggester(_spec(), ()))
    rung0 = driver.suggest(9)
    ranked = sorted(rung0, key=lambda r: _loss(r.params))
    # The three best fail in three ways; only two others succeed.
    driver.finish(ranked[0].id, None, TrialState.FAILED)
    driver.finish(ranked[1].id, None, TrialState.METRICS_UNAVAILABLE)
    driver.finish(ranked[2].id, None, TrialState.KILLED)
    driver.finish(ranked[7].id, 5.0)
    driver.finish(ranked[8].id, 3.0)
    for r in ranked[3:7]:
        driver.finish(r.id, None, TrialState.FAILED)
    promoted = driver.suggest(9)
    # Succeeded ones first (best first), then the lowest config id among the rest.
    rest = min(_pos(r)[2] for r in ranked[:7])
    assert [_pos(r)[2] for r in promoted] == [_pos(ranked[8])[2], _pos(ranked[7])[2], rest]


# ---------------------------------------------------------------------------------------------
# Resuming from the stored history
# ---------------------------------------------------------------------------------------------


def _step(driver: Driver, parallel: int) -> bool:
    """One controller turn: fill free slots, then finish the oldest running trial."""
    driver.suggest(parallel - len(driver.running))
    if not driver.running:
        return False
    r = next(t for t in driver.records if t.id == driver.running[0])
    # Every fourth trial fails, so failures take part in the ranking.
    value = None if int(r.id[1:]) % 4 == 3 else _loss(r.params)
    driver.finish(r.id, value, TrialState.SUCCEEDED if value is not None else TrialState.FAILED)
    return True


def _drive(driver: Driver, parallel: int, steps: int | None = None) -> None:
    n = 0
    while (steps is None or n < steps) and _step(driver, parallel):
        n += 1


def _trace(records: list[TrialRecord]) -> list[tuple[Any, ...]]:
    return [(r.id, dict(r.params), _pos(r), r.state, r.value) for r in records]


@pytest.mark.parametrize("seed", [7, None], ids=["seeded", "unseeded"])
@pytest.mark.parametrize("parallel", [9, 4])
def test_rebuilt_from_history_continues_identically(seed: int | None, parallel: int) -> None:
    spec = _spec(seed=seed)
    reference = Driver(HyperbandSuggester(spec, ()))
    _drive(reference, parallel)
    assert reference.sug.exhausted and reference.made == TOTAL
    assert Counter(_pos(r)[:2] for r in reference.records) == {
        (b, i): n for b, i, _, n in HAND_WORKED
    }
    state = reference.sug.state()
    for cut in range(TOTAL + 1):
        first = Driver(HyperbandSuggester(spec, (), state))
        _drive(first, parallel, cut)
        rebuilt = HyperbandSuggester(spec, first.history(), first.sug.state())
        second = Driver(rebuilt, list(first.records), list(first.running), first.made)
        _drive(second, parallel)
        assert _trace(second.records) == _trace(reference.records), f"cut after {cut} tells"
        assert rebuilt.exhausted


def test_unseeded_runs_differ_but_keep_their_seed() -> None:
    a = HyperbandSuggester(_spec(seed=None), ())
    b = HyperbandSuggester(_spec(seed=None), ())
    assert a.state()[STATE_SEED_KEY] != b.state()[STATE_SEED_KEY]
    assert a.suggest(["t"])[0].params != b.suggest(["t"])[0].params
    # The spec's seed wins and is what the state reports.
    assert HyperbandSuggester(_spec(seed=3), ()).state() == {STATE_SEED_KEY: 3}


def test_rebuild_ignores_foreign_trials_and_unknown_tells() -> None:
    spec = _spec()
    stray = TrialRecord("old", "hb", 0, {"x": 0.0, "epochs": 1}, TrialState.SUCCEEDED, value=1.0)
    a = Driver(HyperbandSuggester(spec, ()))
    b = Driver(HyperbandSuggester(spec, [stray]))
    b.sug.tell(stray)
    assert _trace(a.suggest(9)) == _trace(b.suggest(9))


def test_create_suggester_dispatches_hyperband() -> None:
    assert isinstance(create_suggester(_spec()), HyperbandSuggester)


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------


def train(x: float, lr: float, epochs: int) -> float:
    assert isinstance(epochs, int)
    return (x - 1.0) ** 2 + lr + 1.0 / epochs


def test_tune_runs_every_bracket(tmp_path: Path) -> None:
    result = automl.tune(
        train,
        {
            "x": automl.double(-5, 5),
            "lr": automl.double(1e-4, 1e-1, log=True),
            "epochs": automl.int(1, 9),
        },
        algorithm="hyperband",
        algorithm_settings={"resource_name": "epochs", "r_l": 9, "eta": 3},
        parallel_trials=9,
        seed=1,
        name="hb-e2e",
        store=f"sqlite:///{tmp_path}/s.db",
    )
    assert result.reason == "SearchSpaceExhausted"
    assert result.experiment.state.value == "Succeeded"
    df = result.trials
    assert len(df) == TOTAL == 22
    assert (df["state"] == "Succeeded").all()
    assert Counter(df["params_epochs"].tolist()) == {1: 9, 3: 3 + 5, 9: 1 + 1 + 3}
    assert result.best_params["epochs"] == 9


def _rows(result: Any) -> list[tuple[Any, ...]]:
    df = result.trials.sort_values("number")
    return list(zip(df["params_x"], df["params_lr"], df["params_epochs"], strict=True))


@pytest.mark.parametrize("seed", [1, None], ids=["seeded", "unseeded"])
def test_tune_resumes_where_it_stopped(tmp_path: Path, seed: int | None) -> None:
    space = {
        "x": automl.double(-5, 5),
        "lr": automl.double(1e-4, 1e-1, log=True),
        "epochs": automl.int(1, 9),
    }
    kw: dict[str, Any] = {
        "algorithm": "hyperband",
        "algorithm_settings": {"resource_name": "epochs", "r_l": 9, "eta": 3},
        "parallel_trials": 9,
        "seed": seed,
        "store": f"sqlite:///{tmp_path}/s.db",
    }
    # Ends after the first rung (9) and two of its three promoted trials, then resumes.
    part = automl.tune(train, space, name="hb-cut", max_trials=11, **kw)
    assert part.reason == "ExperimentMaxTrialsReached" and len(part.trials) == 11
    rest = automl.tune(train, space, name="hb-cut", max_trials=100, resume=True, **kw)
    assert rest.reason == "SearchSpaceExhausted"
    assert _rows(rest)[:11] == _rows(part)
    assert Counter(e for *_, e in _rows(rest)) == {1: 9, 3: 8, 9: 5}
    if seed is not None:  # the same trials as a run that was never cut
        whole = automl.tune(train, space, name="hb-whole", **kw)
        assert _rows(rest) == _rows(whole)


# ---------------------------------------------------------------------------------------------
# Settings' rules
# ---------------------------------------------------------------------------------------------

NATIVE = """\
name: hb
objective: {{metric: loss, direction: minimize}}
algorithm:
  name: hyperband
  settings: {settings}
parameters:
  lr: {{type: double, min: 0.001, max: 0.1}}
  epochs: {{type: int, min: 1, max: 9}}
  opt: [adam, sgd]
budget: {{parallel: {parallel}}}
trial:
  command: [python, train.py, "${{lr}}", "${{epochs}}", "${{opt}}"]
"""


def _native(settings: str, parallel: int = 9) -> str:
    return NATIVE.format(settings=settings, parallel=parallel)


def test_native_spec_is_accepted(tmp_path: Path) -> None:
    spec = parse_spec(_native("{resource_name: epochs, r_l: 9, eta: 3}"), base_dir=tmp_path)
    sug = create_suggester(spec)
    assert isinstance(sug, HyperbandSuggester)
    assert len(sug.suggest([str(i) for i in range(20)])) == 9


@pytest.mark.parametrize(
    ("settings", "parallel", "path", "words"),
    [
        ("{resource_name: epochs, r_l: 9, eta: 1}", 9, "algorithm.settings.eta", "> 1"),
        ("{resource_name: epochs, r_l: 9, eta: 0.5}", 9, "algorithm.settings.eta", "> 1"),
        ("{resource_name: epochs, r_l: 0}", 9, "algorithm.settings.r_l", "> 0"),
        ("{resource_name: epochs, r_l: -3}", 9, "algorithm.settings.r_l", "> 0"),
        ("{resource_name: epochs}", 9, "algorithm.settings.r_l", "required"),
        ("{r_l: 9}", 9, "algorithm.settings.resource_name", "required"),
        (
            "{resource_name: steps, r_l: 9, eta: 3}",
            9,
            "algorithm.settings.resource_name",
            "'steps'",
        ),
        (
            "{resource_name: opt, r_l: 9, eta: 3}",
            9,
            "algorithm.settings.resource_name",
            "categorical",
        ),
        ("{resource_name: epochs, r_l: 9, eta: 3}", 8, "budget.parallel", "9"),
        ("{resource_name: epochs, r_l: 27, eta: 3}", 26, "budget.parallel", "27"),
    ],
    ids=[
        "eta-1",
        "eta-below-1",
        "r_l-0",
        "r_l-negative",
        "r_l-missing",
        "resource-missing",
        "resource-unknown",
        "resource-categorical",
        "parallel-below-rule",
        "parallel-below-rule-27",
    ],
)
def test_bad_settings_name_the_field(
    tmp_path: Path, settings: str, parallel: int, path: str, words: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_native(settings, parallel), base_dir=tmp_path)
    issues = {i.path: i.message for i in info.value.issues}
    assert path in issues, issues
    assert words in issues[path]


def test_tune_rejects_bad_settings_with_its_own_names(tmp_path: Path) -> None:
    space = {"x": automl.double(-5, 5), "epochs": automl.int(1, 9), "o": automl.categorical("ab")}
    store = f"sqlite:///{tmp_path}/s.db"
    cases = [
        ({"resource_name": "epochs", "r_l": 9, "eta": 3}, 8, "parallel_trials"),
        ({"resource_name": "epochs", "r_l": 9, "eta": 1}, 9, "algorithm_settings.eta"),
        ({"resource_name": "epochs", "r_l": 0}, 9, "algorithm_settings.r_l"),
        ({"resource_name": "o", "r_l": 9, "eta": 3}, 9, "algorithm_settings.resource_name"),
        ({"resource_name": "nope", "r_l": 9, "eta": 3}, 9, "algorithm_settings.resource_name"),
    ]
    for settings, parallel, path in cases:
        with pytest.raises(SpecError) as info:
            automl.tune(
                train,
                space,
                algorithm="hyperband",
                algorithm_settings=settings,
                parallel_trials=parallel,
                store=store,
            )
        assert path in [i.path for i in info.value.issues], (settings, info.value.issues)


def test_eta_defaults_to_3(tmp_path: Path) -> None:
    spec = parse_spec(_native("{resource_name: epochs, r_l: 9}"), base_dir=tmp_path)
    assert len(create_suggester(spec).suggest([str(i) for i in range(20)])) == 9
