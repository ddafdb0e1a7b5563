"""Early stopping: decide from intermediate values whether a running trial should stop.

Katib's ``medianstop`` is implemented as its name says (Katib compares against a mean): a trial
that has reported at least ``start_step`` values stops when its best value so far is worse than
the median of the completed trials' best values up to the same step, once ``min_trials_required``
trials have completed. Optuna's pruners run on an in-memory mirror of the experiment's
intermediate values, rebuilt from the store when a controller starts.
"""

from __future__ import annotations

import math
import statistics
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from automl.core import Direction, ExperimentSpec, TrialRecord, TrialState
from automl.errors import SpecError, SpecIssue
from search._registry import Setting

__all__ = [
    "STOPPERS",
    "EarlyStopper",
    "create_stopper",
    "resolve_stopper_settings",
    "stopper_names",
]

Curve = Sequence[tuple[int, float]]


class EarlyStopper(ABC):
    """Decides whether running trials should stop, from their intermediate objective values.

    Protocol: :meth:`report` is called for every intermediate value of a running trial (steps as
    the trial reported them, or 1, 2, ... when it named none) and returns True when the trial
    should stop now; :meth:`finish` is called once per trial when it ends.
    """

    name: str = ""

    @abstractmethod
    def report(self, trial_id: str, step: int, value: float) -> bool:
        """Record an intermediate value; True if the trial should stop."""

    @abstractmethod
    def finish(self, trial: TrialRecord) -> None:
        """Record a trial's end."""


def _auto_or_int(raw: Any) -> bool:
    return raw == "auto" or (isinstance(raw, int) and raw >= 1)


@dataclass(frozen=True)
class _AutoInt:
    """A setting that is ``auto`` or an integer >= 1 (Optuna's ``min_resource``)."""

    default: Any = "auto"

    def parse(self, raw: Any, path: str) -> Any:
        if str(raw) == "auto":
            return "auto"
        try:
            value = int(str(raw))
        except ValueError:
            value = 0
        if not 1 <= value <= 2**31 - 1:
            bound = "" if value < 1 else " and at most 2147483647"
            raise SpecError(
                [SpecIssue(path, f"must be 'auto' or an integer >= 1{bound}; got {raw!r}")]
            )
        return value


_INT0 = Setting("int", 0, "an integer >= 0", lambda v: v >= 0)
STOPPERS: dict[str, dict[str, Setting | _AutoInt]] = {
    "medianstop": {
        "min_trials_required": Setting("int", 3, "an integer >= 1", lambda v: v >= 1),
        "start_step": Setting("int", 4, "an integer >= 1", lambda v: v >= 1),
    },
    "median": {
        "n_startup_trials": Setting("int", 5, "an integer >= 0", lambda v: v >= 0),
        "n_warmup_steps": _INT0,
        "interval_steps": Setting("int", 1, "an integer >= 1", lambda v: v >= 1),
        "n_min_trials": Setting("int", 1, "an integer >= 1", lambda v: v >= 1),
    },
    "percentile": {
        "percentile": Setting(
            "float", None, "a number in [0, 100]", lambda v: 0 <= v <= 100, required=True
        ),
        "n_startup_trials": Setting("int", 5, "an integer >= 0", lambda v: v >= 0),
        "n_warmup_steps": _INT0,
        "interval_steps": Setting("int", 1, "an integer >= 1", lambda v: v >= 1),
        "n_min_trials": Setting("int", 1, "an integer >= 1", lambda v: v >= 1),
    },
    "successivehalving": {
        "min_resource": _AutoInt(),
        "reduction_factor": Setting("int", 4, "an integer >= 2", lambda v: v >= 2),
        "min_early_stopping_rate": _INT0,
        "bootstrap_count": _INT0,
    },
    "hyperband": {
        "min_resource": Setting("int", 1, "an integer >= 1", lambda v: v >= 1),
        "max_resource": _AutoInt(),
        "reduction_factor": Setting("int", 3, "an integer >= 2", lambda v: v >= 2),
        "bootstrap_count": _INT0,
    },
    "threshold": {
        "lower": Setting("float"),
        "upper": Setting("float"),
        "n_warmup_steps": _INT0,
        "interval_steps": Setting("int", 1, "an integer >= 1", lambda v: v >= 1),
    },
    "patient": {
        "patience": Setting("int", None, "an integer >= 0", lambda v: v >= 0, required=True),
        "min_delta": Setting("float", 0.0, "a number >= 0", lambda v: v >= 0),
    },
    "wilcoxon": {
        "p_threshold": Setting("float", 0.1, "a number in (0, 1)", lambda v: 0 < v < 1),
        "n_startup_steps": _INT0,
    },
}
_ALIASES = {"asha": "successivehalving", "successive_halving": "successivehalving"}


def stopper_names() -> list[str]:
    """Every early-stopping rule name (aliases included)."""
    return sorted([*STOPPERS, *_ALIASES])


def resolve_stopper_settings(spec: ExperimentSpec) -> tuple[str, dict[str, Any]]:
    """Validate the spec's early-stopping rule; return its canonical name and typed settings.

    Raises:
        SpecError: Unknown rule or setting, or a value that breaks a rule.
    """
    es = spec.early_stopping
    if es is None:
        raise ValueError("the spec has no early stopping")
    name = _ALIASES.get(es.name.lower(), es.name.lower())
    schema = STOPPERS.get(name)
    if schema is None:
        raise SpecError(
            [
                SpecIssue(
                    "early_stopping.name", f"must be one of {stopper_names()}; got {es.name!r}"
                )
            ]
        )
    issues: list[SpecIssue] = []
    out: dict[str, Any] = {}
    for key, raw in es.settings.items():
        path = f"early_stopping.settings.{key}"
        setting = schema.get(key)
        if setting is None:
            issues.append(
                SpecIssue(path, f"is not a setting of {name!r}; valid settings: {sorted(schema)}")
            )
            continue
        try:
            out[key] = setting.parse(raw, path)
        except SpecError as exc:
            issues.extend(exc.issues)
    for key, setting in schema.items():
        if isinstance(setting, Setting) and setting.required and key not in es.settings:
            issues.append(SpecIssue(f"early_stopping.settings.{key}", f"is required by {name}"))
        elif key not in out and setting.default is not None:
            out[key] = setting.default
    if name == "threshold" and not issues:
        lower, upper = out.get("lower"), out.get("upper")
        if lower is None and upper is None:
            issues.append(
                SpecIssue("early_stopping.settings.lower", "threshold needs lower or upper")
            )
        elif lower is not None and upper is not None and lower > upper:
            issues.append(
                SpecIssue(
                    "early_stopping.settings.upper",
                    f"must be greater than or equal to lower ({lower:g}); got {upper:g}",
                )
            )
    if name == "hyperband" and not issues:
        top, low = out.get("max_resource"), out["min_resource"]
        if isinstance(top, int) and top < low:
            issues.append(
                SpecIssue(
                    "early_stopping.settings.max_resource",
                    f"must be 'auto' or at least min_resource ({low}); got {top}",
                )
            )
    if issues:
        raise SpecError(issues)
    return name, out


class MedianStopStopper(EarlyStopper):
    """Katib's ``medianstop``, with a true median (Katib uses the mean of per-trial averages)."""

    name = "medianstop"

    def __init__(
        self,
        direction: Direction,
        min_trials_required: int,
        start_step: int,
        history: Sequence[TrialRecord],
        curves: Mapping[str, Curve],
    ) -> None:
        self._better: Callable[[float, float], bool] = (
            (lambda a, b: a < b) if direction is Direction.MINIMIZE else (lambda a, b: a > b)
        )
        self._min_trials = min_trials_required
        self._start_step = start_step
        self._running: dict[str, list[tuple[int, float]]] = {}
        self._completed: list[list[tuple[int, float]]] = []
        for t in history:
            if t.state is TrialState.SUCCEEDED and curves.get(t.id):
                self._completed.append(sorted(curves[t.id]))

    def _best(self, curve: Sequence[tuple[int, float]], upto: int | None = None) -> float | None:
        best: float | None = None
        for step, value in curve:
            if upto is not None and step > upto:
                break
            if math.isnan(value):
                continue
            if best is None or self._better(value, best):
                best = value
        return best

    def report(self, trial_id: str, step: int, value: float) -> bool:
        """Stop when the trial's best so far is worse than the median at this step."""
        curve = self._running.setdefault(trial_id, [])
        curve.append((step, value))
        if math.isnan(value):
            return True  # a diverged trial
        if len(curve) < self._start_step or len(self._completed) < self._min_trials:
            return False
        peers = [b for c in self._completed if (b := self._best(c, upto=step)) is not None]
        if len(peers) < self._min_trials:
            return False
        mine = self._best(curve)
        median = statistics.median(peers)
        return mine is not None and self._better(median, mine)

    def finish(self, trial: TrialRecord) -> None:
        """Succeeded trials join the reference curves."""
        curve = self._running.pop(trial.id, [])
        if trial.state is TrialState.SUCCEEDED and curve:
            self._completed.append(sorted(curve))


class OptunaPrunerStopper(EarlyStopper):
    """One of Optuna's pruners, on an in-memory study of intermediate values."""

    def __init__(
        self,
        name: str,
        settings: Mapping[str, Any],
        direction: Direction,
        history: Sequence[TrialRecord],
        curves: Mapping[str, Curve],
    ) -> None:
        import optuna
        from optuna.trial import TrialState as OState

        self.name = name
        self._ostate = OState
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = _make_pruner(name, settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A fixed name: Optuna's Hyperband assigns brackets by hashing it with trial numbers.
            self._study = optuna.create_study(
                study_name="automl-early-stopping", direction=direction.value, pruner=pruner
            )
        self._pruner = pruner
        self._storage = self._study._storage
        self._ids: dict[str, int] = {}
        for t in history:
            if t.state.is_active:
                continue
            # Replayed through the pruner, so the state it keeps on trials (the rungs of
            # successive halving) is rebuilt too, not only the values.
            for step, value in sorted(curves.get(t.id, ())):
                self.report(t.id, step, value)
            self.finish(t)

    def _internal(self, trial_id: str) -> int:
        tid = self._ids.get(trial_id)
        if tid is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tid = self._study.ask()._trial_id
            self._ids[trial_id] = tid
        return tid

    def report(self, trial_id: str, step: int, value: float) -> bool:
        """Store the value in the mirror study and ask the pruner."""
        tid = self._internal(trial_id)
        self._storage.set_trial_intermediate_value(tid, step, value)
        frozen = self._storage.get_trial(tid)
        return bool(self._pruner.prune(self._study, frozen))

    def finish(self, trial: TrialRecord) -> None:
        """Tell the mirror study how the trial ended."""
        tid = self._internal(trial.id)
        self._ids.pop(trial.id, None)
        state, values = _outcome(trial, self._ostate)
        number = self._storage.get_trial_number_from_id(tid)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._study.tell(number, values, state=state, skip_if_finished=True)


def _outcome(t: TrialRecord, ostate: Any) -> tuple[Any, list[float] | None]:
    if t.state is TrialState.SUCCEEDED and t.value is not None and math.isfinite(t.value):
        return ostate.COMPLETE, [t.value]
    if t.state is TrialState.EARLY_STOPPED:
        return ostate.PRUNED, None
    return ostate.FAIL, None


def _make_pruner(name: str, s: Mapping[str, Any]) -> Any:
    import optuna
    import optuna.pruners as P

    if name == "median":
        return P.MedianPruner(
            s["n_startup_trials"],
            s["n_warmup_steps"],
            s["interval_steps"],
            n_min_trials=s["n_min_trials"],
        )
    if name == "percentile":
        return P.PercentilePruner(
            s["percentile"],
            s["n_startup_trials"],
            s["n_warmup_steps"],
            s["interval_steps"],
            n_min_trials=s["n_min_trials"],
        )
    if name == "successivehalving":
        return P.SuccessiveHalvingPruner(
            s["min_resource"],
            s["reduction_factor"],
            s["min_early_stopping_rate"],
            s["bootstrap_count"],
        )
    if name == "hyperband":
        return P.HyperbandPruner(
            s["min_resource"], s["max_resource"], s["reduction_factor"], s["bootstrap_count"]
        )
    if name == "threshold":
        return P.ThresholdPruner(
            s.get("lower"), s.get("upper"), s["n_warmup_steps"], s["interval_steps"]
        )
    with warnings.catch_warnings():  # "... is experimental": Optuna's note, not the user's
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "patient":
            return P.PatientPruner(None, s["patience"], s["min_delta"])
        if name == "wilcoxon":
            return P.WilcoxonPruner(
                p_threshold=s["p_threshold"], n_startup_steps=s["n_startup_steps"]
            )
    raise AssertionError(name)  # resolve_stopper_settings rejects unknown names first


def create_stopper(
    spec: ExperimentSpec,
    history: Sequence[TrialRecord] = (),
    curves: Mapping[str, Curve] | None = None,
) -> EarlyStopper | None:
    """The early stopper the spec asks for (None without ``early_stopping``).

    It is rebuilt from the stored trials and their intermediate objective values (``curves``:
    trial id -> [(step, value)]).
    """
    if spec.early_stopping is None:
        return None
    name, settings = resolve_stopper_settings(spec)
    direction = spec.objective.type
    if name == "medianstop":
        return MedianStopStopper(
            direction,
            settings["min_trials_required"],
            settings["start_step"],
            history,
            curves or {},
        )
    return OptunaPrunerStopper(name, settings, direction, history, curves or {})
