"""Early-stopping rules on crafted learning curves.

Katib's medianstop (a true median of the completed trials' best values up to the same step) and
Optuna's pruners (median, percentile, successive halving / asha, hyperband, threshold, patient,
wilcoxon): for each rule a curve it must stop (at the right step) and one it must spare, in both
directions; stoppers rebuilt from stored history against stoppers fed live; NaN, out-of-order
steps and trials without intermediate values; and the settings' rules with the user's field paths
(native YAML, Katib YAML and ``automl.tune``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

import automl
from automl.core import ExperimentSpec, TrialRecord, TrialState
from automl.errors import SpecError
from automl.spec import parse_spec
from search import create_stopper
from search._stopping import (
    EarlyStopper,
    MedianStopStopper,
    OptunaPrunerStopper,
    resolve_stopper_settings,
    stopper_names,
)

KATIB_MEDIAN_STOP = (
    Path(__file__).resolve().parent.parent
    / "data"
    / "katib-examples"
    / "early-stopping"
    / "median-stop.yaml"
)
Curve = list[tuple[int, float]]
NAN = math.nan


@pytest.fixture(autouse=True)
def _quiet_optuna() -> Iterator[None]:
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


# -- helpers --------------------------------------------------------------------------------


def native_doc(early_stopping: Any, direction: str = "minimize") -> dict[str, Any]:
    return {
        "name": "es",
        "objective": {"metric": "loss", "direction": direction},
        "algorithm": "random",
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "trial": {"command": ["python", "train.py", "${x}"]},
        "early_stopping": early_stopping,
    }


def make_spec(
    rule: str, settings: Mapping[str, Any] | None = None, direction: str = "minimize"
) -> ExperimentSpec:
    """A spec made the way users make one: native YAML through parse_spec."""
    doc = native_doc({"name": rule, "settings": dict(settings or {})}, direction)
    return parse_spec(yaml.safe_dump(doc))


def katib_doc(early_stopping: Mapping[str, Any]) -> dict[str, Any]:
    doc = yaml.safe_load(KATIB_MEDIAN_STOP.read_text())
    doc["spec"]["earlyStopping"] = dict(early_stopping)
    return doc


def flat(value: float, n: int = 6, start: int = 1) -> Curve:
    return [(s, value) for s in range(start, start + n)]


def record(
    tid: str, state: TrialState = TrialState.SUCCEEDED, value: float | None = None, number: int = 0
) -> TrialRecord:
    return TrialRecord(
        id=tid, experiment_id="exp", number=number, params={}, state=state, value=value
    )


def best_of(curve: Curve, direction: str) -> float | None:
    finite = [v for _, v in curve if not math.isnan(v)]
    if not finite:
        return None
    return min(finite) if direction == "minimize" else max(finite)


class Lab:
    """Drives a stopper the way the controller does: report every value, finish every trial."""

    def __init__(self, stopper: EarlyStopper | None, direction: str = "minimize") -> None:
        assert stopper is not None
        self.stopper = stopper
        self.direction = direction
        self.n = 0

    def _id(self) -> str:
        self.n += 1
        return f"trial-{self.n}"

    def complete(self, curve: Curve, state: TrialState = TrialState.SUCCEEDED) -> str:
        """A reference trial: every value reported (whatever the rule says), then ended."""
        tid = self._id()
        for step, value in curve:
            self.stopper.report(tid, step, value)
        value = best_of(curve, self.direction) if state is TrialState.SUCCEEDED else None
        self.stopper.finish(record(tid, state, value, self.n))
        return tid

    def trial(self, curve: Curve) -> int | None:
        """A candidate: the step it is stopped at, or None when it runs to its end."""
        tid = self._id()
        for step, value in curve:
            decision = self.stopper.report(tid, step, value)
            assert isinstance(decision, bool)
            if decision:
                self.stopper.finish(record(tid, TrialState.EARLY_STOPPED, number=self.n))
                return step
        self.stopper.finish(record(tid, TrialState.SUCCEEDED, best_of(curve, self.direction)))
        return None


def median_lab(
    refs: Sequence[Curve],
    *,
    min_trials_required: int = 1,
    start_step: int = 1,
    direction: str = "minimize",
) -> Lab:
    spec = make_spec(
        "medianstop",
        {"min_trials_required": min_trials_required, "start_step": start_step},
        direction,
    )
    lab = Lab(create_stopper(spec), direction)
    assert isinstance(lab.stopper, MedianStopStopper)
    for c in refs:
        lab.complete(c)
    return lab


# -- medianstop -----------------------------------------------------------------------------


def test_medianstop_defaults_and_katib_string_settings() -> None:
    assert resolve_stopper_settings(make_spec("medianstop")) == (
        "medianstop",
        {"min_trials_required": 3, "start_step": 4},
    )
    spec = parse_spec(KATIB_MEDIAN_STOP.read_text())  # Katib writes values as strings
    assert resolve_stopper_settings(spec) == (
        "medianstop",
        {"min_trials_required": 1, "start_step": 2},
    )


def test_medianstop_waits_for_min_trials_required() -> None:
    lab = median_lab([flat(1.0), flat(1.1)], min_trials_required=3)
    assert lab.trial(flat(5.0)) is None  # two completed trials are not enough
    lab.complete(flat(0.9))
    assert lab.trial(flat(5.0)) == 1  # the third one arms the rule


def test_medianstop_honours_start_step() -> None:
    lab = median_lab([flat(1.0, n=10)], start_step=4)
    assert lab.trial(flat(5.0, n=10)) == 4


def test_medianstop_start_step_counts_reported_values_not_step_numbers() -> None:
    # Katib: start_step is the number of intermediate results reported before a trial may stop.
    lab = median_lab([flat(1.0, n=20)], start_step=4)
    assert lab.trial(flat(5.0, n=6, start=11)) == 14  # the 4th report, though step 11 >= 4


def test_medianstop_stops_a_worse_curve_at_the_right_step_and_spares_a_better_one() -> None:
    # References improve by 1 per step; at step s their bests are 10-s, 10.5-s and 9.5-s
    # (median 10-s). A trial stuck at 7.2 is spared at steps 1 and 2 (median 9, 8), stopped at
    # step 3 (median 7).
    refs = [[(s, off - s) for s in range(1, 7)] for off in (10.0, 10.5, 9.5)]
    assert median_lab(refs, min_trials_required=3).trial(flat(7.2)) == 3
    # One that stays a little ahead of the median at every step runs to the end.
    assert (
        median_lab(refs, min_trials_required=3).trial([(s, 9.9 - s) for s in range(1, 7)]) is None
    )


def test_medianstop_compares_the_best_value_so_far_not_the_latest() -> None:
    refs = [flat(6.0), flat(6.0), flat(6.0)]
    early_best = [(1, 5.0), (2, 20.0), (3, 20.0), (4, 20.0), (5, 20.0)]
    assert median_lab(refs).trial(early_best) is None


def test_medianstop_compares_against_peers_best_up_to_the_same_step() -> None:
    late_bloomers = [[(1, 10.0), (2, 10.0), (3, 1.0)]] * 3
    # At step 2 the peers' best so far is 10 (their final 1 is not known yet at step 2).
    assert median_lab(late_bloomers).trial(flat(5.0, n=3)) == 3


def test_medianstop_ties_with_the_median_are_spared() -> None:
    assert median_lab([flat(1.0), flat(2.0), flat(3.0)]).trial(flat(2.0)) is None


@pytest.mark.parametrize(
    ("direction", "refs", "candidate", "stopped", "why"),
    [
        # minimize: bests 1, 2, 100 -> median 2, mean 34.3: 10 is worse than the median only.
        ("minimize", [1.0, 2.0, 100.0], 10.0, True, "worse than median, better than mean"),
        # minimize: bests 1, 50, 51 -> median 50, mean 34: 40 is better than the median only.
        ("minimize", [1.0, 50.0, 51.0], 40.0, False, "better than median, worse than mean"),
        # an even count: 1, 2, 3, 100 -> median 2.5, mean 26.5
        ("minimize", [1.0, 2.0, 3.0, 100.0], 3.0, True, "worse than median, better than mean"),
        ("minimize", [1.0, 2.0, 3.0, 100.0], 2.4, False, "better than the median of four"),
        # maximize: 100, 99, 1 -> median 99, mean 66.7: 80 is worse than the median only.
        ("maximize", [100.0, 99.0, 1.0], 80.0, True, "worse than median, better than mean"),
        # maximize: 100, 2, 1 -> median 2, mean 34.3: 20 is better than the median only.
        ("maximize", [100.0, 2.0, 1.0], 20.0, False, "better than median, worse than mean"),
    ],
)
def test_medianstop_uses_the_median_not_the_mean(
    direction: str, refs: list[float], candidate: float, stopped: bool, why: str
) -> None:
    lab = median_lab([flat(v) for v in refs], min_trials_required=len(refs), direction=direction)
    assert lab.trial(flat(candidate)) == (1 if stopped else None), why


def test_medianstop_only_succeeded_trials_are_peers() -> None:
    lab = median_lab([])
    for state in (TrialState.EARLY_STOPPED, TrialState.FAILED, TrialState.KILLED):
        lab.complete(flat(0.0), state=state)
    assert lab.trial(flat(5.0)) is None  # nothing to compare with yet
    lab.complete(flat(1.0))
    assert lab.trial(flat(5.0)) == 1


def test_medianstop_peers_count_only_once_they_have_values_up_to_the_step() -> None:
    lab = median_lab([flat(1.0, n=2, start=5)])  # a peer that reported steps 5 and 6 only
    assert lab.trial(flat(5.0, n=6)) == 5


def test_medianstop_sorts_a_completed_trial_reported_out_of_order() -> None:
    # Reported as steps 2, 1, 3: its best up to step 1 is 1.0.
    lab = median_lab([[(2, 10.0), (1, 1.0), (3, 10.0)]])
    assert lab.trial(flat(5.0, n=3)) == 1


def test_medianstop_nan_stops_at_once_before_start_step_and_min_trials() -> None:
    lab = median_lab([], min_trials_required=3, start_step=4)
    assert lab.trial([(1, 1.0), (2, NAN), (3, 1.0)]) == 2


def test_medianstop_ignores_nan_values_of_completed_trials() -> None:
    lab = median_lab([[(1, NAN), (2, 1.0), (3, 1.0)]])
    assert lab.trial(flat(5.0, n=3)) == 2  # no peer value up to step 1, then 1.0 at step 2


# -- Optuna's pruners: one curve stopped, one spared, both directions ------------------------


@dataclass(frozen=True)
class Case:
    """A rule, its settings and curves for ``minimize``; ``maximize`` negates every value."""

    rule: str
    settings: Mapping[str, Any]
    refs: tuple[Curve, ...]
    stop: Curve
    stop_at: int
    spare: Curve

    def settings_for(self, direction: str) -> dict[str, Any]:
        s = dict(self.settings)
        if direction == "maximize" and self.rule == "threshold":
            lower, upper = s.pop("lower", None), s.pop("upper", None)
            if upper is not None:
                s["lower"] = -upper
            if lower is not None:
                s["upper"] = -lower
        return s

    def curves(self, direction: str) -> tuple[list[Curve], Curve, Curve]:
        sign = 1.0 if direction == "minimize" else -1.0

        def m(c: Curve) -> Curve:
            return [(s, sign * v) for s, v in c]

        return [m(c) for c in self.refs], m(self.stop), m(self.spare)


RISING = [(s, 1.0 + 0.5 * (s - 1)) for s in range(1, 7)]  # 1.0, 1.5, 2.0, ...
FALLING = [(s, 3.0 - 0.5 * (s - 1)) for s in range(1, 7)]  # 3.0, 2.5, 2.0, ...
WILCOXON_BEST = [(s, 1.0 + 0.1 * s) for s in range(1, 9)]

CASES = [
    # MedianPruner: the median of completed values at the step is 2; warm-up is 2 steps.
    Case(
        "median",
        {"n_startup_trials": 2, "n_warmup_steps": 2},
        (flat(1.0), flat(2.0), flat(3.0)),
        stop=flat(2.5),
        stop_at=2,
        spare=flat(1.5),
    ),
    # PercentilePruner(25): the 25th percentile of 1, 2, 3, 4 is 1.75: 2.0 is stopped although
    # it ties the median (2.5 would spare it).
    Case(
        "percentile",
        {"percentile": 25, "n_startup_trials": 1},
        (flat(1.0), flat(2.0), flat(3.0), flat(4.0)),
        stop=flat(2.0),
        stop_at=1,
        spare=flat(1.5),
    ),
    # Successive halving, rungs at steps 2, 4, 8: against a 1.0 at rung 0, 2.0 is stopped at
    # step 2 (not before: min_resource is 2).
    Case(
        "successivehalving",
        {"min_resource": 2, "reduction_factor": 2},
        (flat(1.0),),
        stop=flat(2.0),
        stop_at=2,
        spare=flat(0.5),
    ),
    Case(
        "asha",
        {"min_resource": 1, "reduction_factor": 2},
        (flat(1.0),),
        stop=flat(2.0),
        stop_at=1,
        spare=flat(0.5),
    ),
    # Hyperband with max_resource < min_resource * reduction_factor has a single bracket, so
    # the trial's bracket (a hash of the study name) cannot move the decision.
    Case(
        "hyperband",
        {"min_resource": 1, "max_resource": 2, "reduction_factor": 3},
        (flat(1.0),),
        stop=flat(2.0),
        stop_at=1,
        spare=flat(0.5),
    ),
    # ThresholdPruner(upper=2): stops at the first step whose latest value passes the bound.
    Case(
        "threshold",
        {"upper": 2.0},
        (),
        stop=[(1, 1.0), (2, 1.5), (3, 3.0), (4, 1.0)],
        stop_at=3,
        spare=flat(1.9),
    ),
    # ThresholdPruner(lower=0.5) after 2 warm-up steps.
    Case(
        "threshold",
        {"lower": 0.5, "n_warmup_steps": 2},
        (),
        stop=flat(0.3),
        stop_at=2,
        spare=flat(0.8),
    ),
    # PatientPruner(patience=2): at step 4 the best before the last 3 steps (1.0) beats them all.
    Case("patient", {"patience": 2}, (), stop=RISING, stop_at=4, spare=FALLING),
    # With min_delta=1 a slow decline is tolerated, a steep one is not.
    Case(
        "patient",
        {"patience": 2, "min_delta": 1.0},
        (),
        stop=[(1, 1.0), (2, 2.5), (3, 3.0), (4, 3.5), (5, 4.0)],
        stop_at=4,
        spare=RISING[:5],  # 0.5 a step: at step 5 the best before (1.0) + 1 is not below 2.0
    ),
    # WilcoxonPruner(p=0.1): worse than the best trial at every step; the one-sided signed-rank
    # p-value of n positive differences is 2^-n, first below 0.1 at n=4.
    Case(
        "wilcoxon",
        {"p_threshold": 0.1},
        (WILCOXON_BEST,),
        stop=[(s, v + 1.0 + 0.01 * s) for s, v in WILCOXON_BEST],
        stop_at=4,
        spare=[(s, v - 0.5 - 0.01 * s) for s, v in WILCOXON_BEST],
    ),
]
CASE_IDS = [f"{c.rule}-{'-'.join(map(str, c.settings))}" for c in CASES]


def pruner_lab(case: Case, direction: str) -> Lab:
    spec = make_spec(case.rule, case.settings_for(direction), direction)
    lab = Lab(create_stopper(spec), direction)
    assert isinstance(lab.stopper, OptunaPrunerStopper)
    refs, _, _ = case.curves(direction)
    for c in refs:
        lab.complete(c)
    return lab


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_pruner_stops_the_worse_curve_at_its_step(case: Case, direction: str) -> None:
    _, stop, _ = case.curves(direction)
    assert pruner_lab(case, direction).trial(stop) == case.stop_at


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_pruner_spares_the_better_curve(case: Case, direction: str) -> None:
    _, _, spare = case.curves(direction)
    assert pruner_lab(case, direction).trial(spare) is None


def test_median_waits_for_n_startup_trials() -> None:
    lab = Lab(create_stopper(make_spec("median", {"n_startup_trials": 3})))
    lab.complete(flat(1.0))
    lab.complete(flat(1.0))
    assert lab.trial(flat(5.0)) is None
    lab.complete(flat(1.0))
    assert lab.trial(flat(5.0)) == 1


def test_asha_alias_and_successive_halving_name() -> None:
    for name in ("asha", "ASHA", "successive_halving", "successivehalving"):
        stopper = create_stopper(make_spec(name))
        assert stopper is not None and stopper.name == "successivehalving"
    assert "asha" in stopper_names() and "medianstop" in stopper_names()


def test_no_early_stopping_gives_no_stopper() -> None:
    doc = native_doc(None)
    del doc["early_stopping"]
    assert create_stopper(parse_spec(yaml.safe_dump(doc))) is None


# -- rebuilt from history -----------------------------------------------------------------


def rebuild_cases() -> Iterator[Any]:
    yield pytest.param(
        "medianstop", {"min_trials_required": 2, "start_step": 2}, 2, id="medianstop"
    )
    for case, cid in zip(CASES, CASE_IDS, strict=True):
        if not case.refs:
            continue  # rules that look at the trial alone have nothing to rebuild
        marks: list[Any] = []
        yield pytest.param(case.rule, dict(case.settings), case.stop_at, id=cid, marks=marks)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("rule", "settings", "stop_at"), list(rebuild_cases()))
def test_stopper_rebuilt_from_history_decides_like_one_fed_live(
    rule: str, settings: dict[str, Any], stop_at: int
) -> None:
    case = next((c for c in CASES if c.rule == rule and dict(c.settings) == settings), None)
    if case is None:  # medianstop
        refs: list[Curve] = [flat(1.0), flat(2.0), flat(3.0)]
        stop, spare = flat(2.5), flat(1.5)
    else:
        refs, stop, spare = case.curves("minimize")
    spec = make_spec(rule, settings)
    # Live: the completed trials went through report/finish, and so did an early-stopped trial
    # and a failed one that never reported.
    live = Lab(create_stopper(spec))
    ids = [live.complete(c) for c in refs]
    live.complete([(1, 50.0)], state=TrialState.EARLY_STOPPED)
    live.complete([], state=TrialState.FAILED)
    # Rebuilt: the same trials as the store returns them.
    history = [
        record(tid, TrialState.SUCCEEDED, best_of(c, "minimize"), i)
        for i, (tid, c) in enumerate(zip(ids, refs, strict=True))
    ]
    history += [
        record("stopped", TrialState.EARLY_STOPPED, None, len(history)),
        record("failed", TrialState.FAILED, None, len(history) + 1),
    ]
    curves = {tid: list(c) for tid, c in zip(ids, refs, strict=True)}
    curves["stopped"] = [(1, 50.0)]
    rebuilt = Lab(create_stopper(spec, history, curves))
    rebuilt.n = live.n
    assert live.trial(stop) == stop_at
    assert rebuilt.trial(stop) == stop_at
    assert live.trial(spare) is None
    assert rebuilt.trial(spare) is None


# -- NaN, out-of-order steps, trials without values ----------------------------------------

ALL_RULES: list[tuple[str, dict[str, Any]]] = [
    ("medianstop", {"min_trials_required": 1, "start_step": 1}),
    ("median", {"n_startup_trials": 1}),
    ("percentile", {"percentile": 50, "n_startup_trials": 1}),
    ("successivehalving", {"min_resource": 1, "reduction_factor": 2}),
    ("hyperband", {"min_resource": 1, "max_resource": 2, "reduction_factor": 3}),
    ("threshold", {"upper": 100.0}),
    ("patient", {"patience": 1}),
    ("wilcoxon", {}),
]
RULE_IDS = [r for r, _ in ALL_RULES]
# Rules that treat a NaN value as a diverged trial. (Optuna's patient and wilcoxon pruners do
# not prune on NaN today; the trial then fails at its end on a non-finite objective.)
STOPS_ON_NAN = {
    "medianstop",
    "median",
    "percentile",
    "successivehalving",
    "hyperband",
    "threshold",
}


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize(("rule", "settings"), ALL_RULES, ids=RULE_IDS)
def test_nan_values(rule: str, settings: dict[str, Any], direction: str) -> None:
    lab = Lab(create_stopper(make_spec(rule, settings, direction)), direction)
    lab.complete([(1, 1.0), (2, NAN), (3, 1.0)])  # a NaN inside a completed curve is harmless
    stopped = lab.trial([(1, NAN), (2, NAN), (3, NAN)])
    # Optuna's patient and wilcoxon pruners do not prune on NaN (no crash; the trial fails at
    # its end on a non-finite objective): docs/early-stopping.md says so.
    assert stopped == (1 if rule in STOPS_ON_NAN else None)
    # NaN in stored curves is dropped when a stopper is rebuilt: a trial exactly as good as the
    # best stored one (1.0 at steps 1 and 2) is never stopped by any rule.
    history = [record("a", TrialState.SUCCEEDED, 1.0), record("b", TrialState.EARLY_STOPPED)]
    curves = {"a": [(1, NAN), (2, 1.0)], "b": [(1, NAN)]}
    rebuilt = Lab(create_stopper(make_spec(rule, settings, direction), history, curves), direction)
    assert rebuilt.trial([(1, 1.0), (2, 1.0)]) is None


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@pytest.mark.parametrize(("rule", "settings"), ALL_RULES, ids=RULE_IDS)
def test_out_of_order_steps_and_trials_without_values(rule: str, settings: dict[str, Any]) -> None:
    spec = make_spec(rule, settings)
    lab = Lab(create_stopper(spec))
    shuffled = [(3, 1.0), (1, 3.0), (2, 2.0), (2, 1.5), (5, 0.5), (4, 0.8)]  # step 2 twice
    lab.complete(shuffled)
    for state, value in [
        (TrialState.SUCCEEDED, 0.7),  # a value, but no intermediate ones
        (TrialState.FAILED, None),
        (TrialState.METRICS_UNAVAILABLE, None),
        (TrialState.KILLED, None),
        (TrialState.EARLY_STOPPED, None),
    ]:
        lab.n += 1
        lab.stopper.finish(record(f"quiet-{lab.n}", state, value, lab.n))
    # 9.0 at step 4 (its first report) is worse than the completed curve's 0.8 there: the
    # rules that compare with other trials stop at once. threshold (upper 100) has no reason,
    # patient sees no worsening of the trial's own constant curve, and wilcoxon has too few
    # steps for its test.
    expected = None if rule in ("threshold", "patient", "wilcoxon") else 4
    assert lab.trial([(4, 9.0), (2, 9.0), (6, 9.0), (1, 9.0)]) == expected
    assert lab.trial(flat(0.1)) is None
    # The same history from the store: unsorted curves, trials without curves, empty curves.
    history = [
        record("shuffled", TrialState.SUCCEEDED, 0.5, 0),
        record("quiet", TrialState.SUCCEEDED, 0.7, 1),
        record("empty", TrialState.SUCCEEDED, 0.9, 2),
        record("failed", TrialState.FAILED, None, 3),
        record("running", TrialState.RUNNING, None, 4),
    ]
    curves = {"shuffled": shuffled, "empty": [], "running": [(1, 0.1)]}
    rebuilt = Lab(create_stopper(spec, history, curves))
    assert rebuilt.trial([(4, 9.0), (2, 9.0), (6, 9.0), (1, 9.0)]) == expected
    assert rebuilt.trial(flat(0.1)) is None


# -- settings -------------------------------------------------------------------------------

SETTING_ERRORS = [
    # (rule, settings, field path under early_stopping, part of the message)
    ("medianstop", {"bogus": 1}, "settings.bogus", "min_trials_required"),
    ("medianstop", {"min_trials_required": 0}, "settings.min_trials_required", ">= 1"),
    ("medianstop", {"start_step": 0}, "settings.start_step", ">= 1"),
    ("percentile", {"percentile": 150}, "settings.percentile", "[0, 100]"),
    ("asha", {"reduction_factor": 1}, "settings.reduction_factor", ">= 2"),
    ("successivehalving", {"reduction_factor": 1}, "settings.reduction_factor", ">= 2"),
    ("hyperband", {"reduction_factor": 1}, "settings.reduction_factor", ">= 2"),
    ("patient", {}, "settings.patience", "required"),
    ("threshold", {}, "settings.lower", "lower or upper"),
    ("percentile", {}, "settings.percentile", "required"),
    ("asha", {"min_resource": 0}, "settings.min_resource", "'auto' or an integer >= 1"),
    ("wilcoxon", {"p_threshold": 1}, "settings.p_threshold", "(0, 1)"),
]
SETTING_IDS = [f"{r}-{'-'.join(s) or 'none'}" for r, s, _, _ in SETTING_ERRORS]


def issue_at(exc: SpecError, path: str) -> str:
    found = [i.message for i in exc.issues if i.path == path]
    assert found, f"no issue at {path!r}: {exc.issues}"
    return found[0]


def test_unknown_rule_lists_the_valid_names_native_katib_and_tune(sqlite_url: str) -> None:
    with pytest.raises(SpecError) as e1:
        parse_spec(yaml.safe_dump(native_doc({"name": "nosuch"})))
    with pytest.raises(SpecError) as e2:
        parse_spec(yaml.safe_dump(native_doc("nosuch")))
    with pytest.raises(SpecError) as e3:
        parse_spec(yaml.safe_dump(katib_doc({"algorithmName": "nosuch"})))
    with pytest.raises(SpecError) as e4:
        automl.tune(
            lambda x: x, {"x": automl.double(0, 1)}, early_stopping="nosuch", store=sqlite_url
        )
    for exc, path in [
        (e1.value, "early_stopping.name"),
        (e2.value, "early_stopping.name"),
        (e3.value, "spec.earlyStopping.algorithmName"),
        (e4.value, "early_stopping.name"),
    ]:
        msg = issue_at(exc, path)
        assert "nosuch" in msg
        for name in (
            "medianstop",
            "median",
            "percentile",
            "successivehalving",
            "asha",
            "hyperband",
            "threshold",
            "patient",
            "wilcoxon",
        ):
            assert repr(name) in msg


@pytest.mark.parametrize(("rule", "settings", "path", "fragment"), SETTING_ERRORS, ids=SETTING_IDS)
def test_native_setting_errors_name_the_field(
    rule: str, settings: dict[str, Any], path: str, fragment: str
) -> None:
    with pytest.raises(SpecError) as exc:
        parse_spec(yaml.safe_dump(native_doc({"name": rule, "settings": settings})))
    assert fragment in issue_at(exc.value, f"early_stopping.{path}")


@pytest.mark.parametrize(
    ("rule", "settings", "path", "fragment"),
    [
        pytest.param(*case, id=cid, marks=[])
        for case, cid in zip(SETTING_ERRORS, SETTING_IDS, strict=True)
    ],
)
def test_katib_setting_errors_name_the_katib_field(
    rule: str, settings: dict[str, Any], path: str, fragment: str
) -> None:
    es = {
        "algorithmName": rule,
        "algorithmSettings": [{"name": k, "value": str(v)} for k, v in settings.items()],
    }
    with pytest.raises(SpecError) as exc:
        parse_spec(yaml.safe_dump(katib_doc(es)))
    key = path.removeprefix("settings").removeprefix(".")
    want = (
        f"spec.earlyStopping.algorithmSettings[name={key}]"
        if key
        else "spec.earlyStopping.algorithmSettings"
    )
    assert fragment in issue_at(exc.value, want)


@pytest.mark.parametrize(("rule", "settings", "path", "fragment"), SETTING_ERRORS, ids=SETTING_IDS)
def test_tune_setting_errors_name_the_field(
    rule: str, settings: dict[str, Any], path: str, fragment: str, sqlite_url: str
) -> None:
    calls: list[Any] = []
    with pytest.raises(SpecError) as exc:
        automl.tune(
            calls.append,
            {"x": automl.double(0, 1)},
            early_stopping={"name": rule, "settings": settings},
            store=sqlite_url,
            max_trials=1,
        )
    assert fragment in issue_at(exc.value, f"early_stopping.{path}")
    assert calls == []  # nothing ran


def test_tune_rejects_a_malformed_early_stopping_argument(sqlite_url: str) -> None:
    for bad in ({"settings": {}}, {"name": "median", "bogus": 1}, 3):
        with pytest.raises(SpecError) as exc:
            automl.tune(
                lambda x: x,
                {"x": automl.double(0, 1)},
                early_stopping=bad,  # type: ignore[arg-type]
                store=sqlite_url,
            )
        assert exc.value.path == "early_stopping"


def test_every_issue_is_reported_at_once() -> None:
    doc = native_doc(
        {
            "name": "medianstop",
            "settings": {"min_trials_required": 0, "start_step": "x", "bogus": 1},
        }
    )
    with pytest.raises(SpecError) as exc:
        parse_spec(yaml.safe_dump(doc))
    paths = {i.path for i in exc.value.issues}
    assert paths >= {
        "early_stopping.settings.min_trials_required",
        "early_stopping.settings.start_step",
        "early_stopping.settings.bogus",
    }


def test_an_invalid_required_setting_is_not_also_reported_missing() -> None:
    with pytest.raises(SpecError) as exc:
        parse_spec(
            yaml.safe_dump(native_doc({"name": "percentile", "settings": {"percentile": 150}}))
        )
    assert [i.message for i in exc.value.issues] == ["must be a number in [0, 100]; got 150"]


def test_threshold_lower_above_upper_is_a_spec_error() -> None:
    doc = native_doc({"name": "threshold", "settings": {"lower": 5, "upper": 1}})
    with pytest.raises(SpecError) as exc:
        parse_spec(yaml.safe_dump(doc))
    assert exc.value.path.startswith("early_stopping.settings")


def test_hyperband_max_resource_below_min_resource_is_a_spec_error() -> None:
    doc = native_doc({"name": "hyperband", "settings": {"min_resource": 10, "max_resource": 2}})
    with pytest.raises(SpecError):
        parse_spec(yaml.safe_dump(doc))


def test_settings_are_typed_and_defaults_filled() -> None:
    name, s = resolve_stopper_settings(
        make_spec("asha", {"min_resource": "auto", "reduction_factor": "3"})
    )
    assert name == "successivehalving"
    assert s == {
        "min_resource": "auto",
        "reduction_factor": 3,
        "min_early_stopping_rate": 0,
        "bootstrap_count": 0,
    }
    _, s = resolve_stopper_settings(make_spec("threshold", {"lower": "0.5"}))
    assert s["lower"] == 0.5 and s.get("upper") is None
    _, s = resolve_stopper_settings(make_spec("hyperband", {"max_resource": 27}))
    assert s["max_resource"] == 27 and s["min_resource"] == 1 and s["reduction_factor"] == 3


def test_resolve_without_early_stopping_is_a_programming_error() -> None:
    doc = native_doc(None)
    del doc["early_stopping"]
    spec = parse_spec(yaml.safe_dump(doc))
    with pytest.raises(ValueError):
        resolve_stopper_settings(spec)
