"""Several objectives and constraints over a trial's metrics: vectors, feasibility, the front.

No migration is needed: a trial's ``metrics`` already hold every metric, so its objective vector
and its constraint values are derived from them and the spec. What the controller decides at a
trial's end is also written into the trial's ``attrs``: ``values`` (the objective vector),
``feasible``, ``constraints`` (Optuna's constraint values) and, for an infeasible trial,
``violations`` (constraint text -> the value that broke it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from automl.core._spec import Direction, ExperimentSpec, MetricStrategy, Objective
from automl.core._trial import MetricSummary, TrialRecord, TrialState
from automl.errors import SpecIssue

__all__ = [
    "Outcome",
    "constraint_values",
    "dominates",
    "feasible",
    "goal_member",
    "goal_message",
    "judge",
    "objective_problems",
    "outcome",
    "pareto_front",
    "reaches_goals",
    "trial_vector",
]


def _strategy(spec: ExperimentSpec, obj: Objective, metric: str) -> MetricStrategy:
    """A metric's strategy: as set on the spec's objective, else by ``obj``'s direction."""
    set_ = spec.objective.strategies.get(metric)
    if set_ is not None:
        return set_
    return MetricStrategy.MIN if obj.type is Direction.MINIMIZE else MetricStrategy.MAX


def _constraint_strategy(spec: ExperimentSpec, metric: str, upper: bool) -> MetricStrategy:
    # A bound from above is judged on the worst (largest) value unless a strategy says otherwise.
    set_ = spec.objective.strategies.get(metric)
    if set_ is not None:
        return set_
    for obj in spec.all_objectives:
        if obj.metric == metric:
            return _strategy(spec, obj, metric)
    return MetricStrategy.MAX if upper else MetricStrategy.MIN


@dataclass(frozen=True)
class Outcome:
    """What a completed trial's metrics say under the spec's objectives and constraints.

    Attributes:
        values: The objective vector (None where a metric is missing).
        missing: Objective and constraint metrics never reported, in spec order.
        nonfinite: Objective metrics whose value is not a finite number.
        violations: Constraint text -> the value that broke it.
        constraints: Optuna's constraint values (``<= 0`` holds), one per constraint.
    """

    values: tuple[float | None, ...]
    missing: tuple[str, ...] = ()
    nonfinite: tuple[str, ...] = ()
    violations: Mapping[str, float] = field(default_factory=dict)
    constraints: tuple[float, ...] = ()

    @property
    def feasible(self) -> bool:
        """Every constraint holds."""
        return not self.violations

    def attrs(self, spec: ExperimentSpec) -> dict[str, object]:
        """What the trial's ``attrs`` keep (nothing for one objective without constraints)."""
        out: dict[str, object] = {}
        if spec.multi_objective:
            out["values"] = list(self.values)
        if spec.constraints:
            out["feasible"] = self.feasible
            out["constraints"] = list(self.constraints)
            if self.violations:
                out["violations"] = dict(self.violations)
        return out


def outcome(spec: ExperimentSpec, metrics: Mapping[str, MetricSummary]) -> Outcome:
    """Evaluate a trial's metric summaries against the spec's objectives and constraints."""
    values: list[float | None] = []
    missing: list[str] = []
    nonfinite: list[str] = []
    for obj in spec.all_objectives:
        s = metrics.get(obj.metric)
        if s is None:
            missing.append(obj.metric)
            values.append(None)
            continue
        v = s.pick(_strategy(spec, obj, obj.metric).value)
        if not math.isfinite(v):
            nonfinite.append(obj.metric)
        values.append(v)
    violations: dict[str, float] = {}
    cons: list[float] = []
    for c in spec.constraints:
        s = metrics.get(c.metric)
        if s is None:
            if c.metric not in missing:
                missing.append(c.metric)
            continue
        v = s.pick(_constraint_strategy(spec, c.metric, c.op in ("<", "<=")).value)
        if not math.isfinite(v):
            nonfinite.append(c.metric)
            continue
        cons.append(c.violation(v))
        if not c.holds(v):
            violations[c.text] = v
    return Outcome(tuple(values), tuple(missing), tuple(nonfinite), violations, tuple(cons))


def constraint_values(spec: ExperimentSpec, trial: TrialRecord) -> tuple[float, ...] | None:
    """Optuna's constraint values of a finished trial, or None when they cannot be computed."""
    if not spec.constraints:
        return ()
    stored = trial.attrs.get("constraints") if trial.attrs else None
    if isinstance(stored, list) and len(stored) == len(spec.constraints):
        return tuple(float(x) for x in stored)
    out = outcome(spec, trial.metrics)
    return out.constraints if len(out.constraints) == len(spec.constraints) else None


def feasible(trial: TrialRecord) -> bool:
    """Whether a trial met every constraint (trials of unconstrained experiments always do)."""
    return bool(trial.attrs.get("feasible", True)) if trial.attrs else True


def trial_vector(spec: ExperimentSpec, trial: TrialRecord) -> tuple[float, ...] | None:
    """A succeeded trial's objective vector (finite), or None."""
    if trial.state is not TrialState.SUCCEEDED:
        return None
    if not spec.multi_objective:
        v = trial.value
        return (float(v),) if v is not None and math.isfinite(v) else None
    stored = trial.attrs.get("values") if trial.attrs else None
    if isinstance(stored, list) and len(stored) == len(spec.all_objectives):
        vals = [float(x) if x is not None else math.nan for x in stored]
    else:
        vals = [x if x is not None else math.nan for x in outcome(spec, trial.metrics).values]
    return tuple(vals) if all(math.isfinite(x) for x in vals) else None


def _signed(spec: ExperimentSpec, vec: Sequence[float]) -> tuple[float, ...]:
    """The vector as losses (every objective minimized)."""
    return tuple(
        v if o.type is Direction.MINIMIZE else -v
        for v, o in zip(vec, spec.all_objectives, strict=True)
    )


def dominates(spec: ExperimentSpec, a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether vector ``a`` Pareto-dominates ``b`` (no worse anywhere, better somewhere)."""
    la, lb = _signed(spec, a), _signed(spec, b)
    return all(x <= y for x, y in zip(la, lb, strict=True)) and la != lb


def pareto_front(spec: ExperimentSpec, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The best trials: the non-dominated feasible succeeded ones, in creation order.

    Invalidated trials (``automl invalidate``) are left out.

    With one objective, the front is the single best feasible trial (the first of equals), as
    the best trial always was.
    """
    cands = [
        (t, vec)
        for t in trials
        if not t.invalidated and feasible(t) and (vec := trial_vector(spec, t)) is not None
    ]
    if not spec.multi_objective:
        best: tuple[TrialRecord, tuple[float, ...]] | None = None
        for t, vec in cands:
            if best is None or spec.objective.better(vec[0], best[1][0]):
                best = (t, vec)
        return [best[0]] if best is not None else []
    losses = [_signed(spec, v) for _, v in cands]
    front: list[TrialRecord] = []
    for i, (t, _) in enumerate(cands):
        li = losses[i]
        if not any(all(x <= y for x, y in zip(lj, li, strict=True)) and lj != li for lj in losses):
            front.append(t)
    return front


def goal_member(spec: ExperimentSpec, front: Sequence[TrialRecord]) -> TrialRecord | None:
    """The first front member that reaches every objective's goal (None without goals)."""
    objs = spec.all_objectives
    if all(o.goal is None for o in objs):
        return None
    for t in front:
        vec = trial_vector(spec, t)
        if vec is not None and all(
            o.goal is None or o.reached(v) for o, v in zip(objs, vec, strict=True)
        ):
            return t
    return None


def objective_problems(spec: ExperimentSpec) -> list[SpecIssue]:
    """Rules on ``objectives`` and ``constraints`` (paths as in the core spec)."""
    out: list[SpecIssue] = []
    if spec.objectives:
        if spec.objectives[0].metric != spec.objective.metric:
            out.append(
                SpecIssue(
                    "objectives[0].metric",
                    f"must be the objective's metric ({spec.objective.metric!r}); "
                    f"got {spec.objectives[0].metric!r}",
                )
            )
        seen: set[str] = set()
        for i, o in enumerate(spec.objectives):
            if not o.metric.strip():
                out.append(SpecIssue(f"objectives[{i}].metric", "must be a non-empty metric name"))
            elif o.metric in seen:
                out.append(
                    SpecIssue(
                        f"objectives[{i}].metric",
                        f"must be unique among the objectives; {o.metric!r} appears twice",
                    )
                )
            seen.add(o.metric)
            if o.goal is not None and not math.isfinite(o.goal):
                out.append(SpecIssue(f"objectives[{i}].goal", f"must be finite; got {o.goal}"))
    texts: set[str] = set()
    for i, c in enumerate(spec.constraints):
        if c.text in texts:
            out.append(SpecIssue(f"constraints[{i}]", f"repeats {c.text!r}"))
        texts.add(c.text)
    return out


def judge(
    spec: ExperimentSpec, metrics: Mapping[str, MetricSummary], nan: bool, collector: str
) -> tuple[TrialState, float | None, str, dict[str, object]]:
    """The end of a trial that completed: its state, value, message and attrs to keep.

    Args:
        spec: The experiment spec.
        metrics: The trial's metric summaries.
        nan: The (first) objective metric was reported as NaN (summaries skip NaN).
        collector: The metrics collector's kind, named when a metric never arrived.

    Returns:
        ``(state, value, message, attrs)``: Succeeded with the first objective's value (an
        infeasible trial succeeds too, with ``attrs["feasible"]`` false), Failed for a value
        that is not a finite number, MetricsUnavailable naming every objective or constraint
        metric never reported.
    """
    out = outcome(spec, metrics)
    first = spec.objective.metric
    value = out.values[0]
    if value is not None and not math.isfinite(value):
        return (
            TrialState.FAILED,
            None,
            f"the objective metric {first!r} is not a finite number ({value})",
            {},
        )
    if value is None and nan:
        return (
            TrialState.FAILED,
            None,
            f"the objective metric {first!r} is not a finite number (nan)",
            {},
        )
    if out.nonfinite:
        name = out.nonfinite[0]
        kind = "objective" if any(o.metric == name for o in spec.all_objectives) else "constraint"
        return (
            TrialState.FAILED,
            None,
            f"the {kind} metric {name!r} is not a finite number",
            {},
        )
    if out.missing:
        objs = {o.metric for o in spec.all_objectives}
        parts = []
        for kind, names in (
            ("objective", [m for m in out.missing if m in objs]),
            ("constraint", [m for m in out.missing if m not in objs]),
        ):
            if names:
                plural = "s" if len(names) > 1 else ""
                parts.append(f"the {kind} metric{plural} {', '.join(map(repr, names))}")
        verb = "were" if len(out.missing) > 1 else "was"
        return (
            TrialState.METRICS_UNAVAILABLE,
            None,
            f"{' and '.join(parts)} {verb} never reported ({collector} collector)",
            {},
        )
    message = ""
    if out.violations:
        message = "infeasible: " + ", ".join(f"{c} (got {v:g})" for c, v in out.violations.items())
    return TrialState.SUCCEEDED, value, message, out.attrs(spec)


def reaches_goals(spec: ExperimentSpec, trial: TrialRecord) -> bool:
    """Whether a feasible succeeded trial of a multi-objective experiment reaches every goal.

    A trial that reaches every goal is either on the front or dominated by front members that
    reach them too, so this holds for some trial exactly when it holds for a front member.
    """
    objs = spec.all_objectives
    if all(o.goal is None for o in objs) or not feasible(trial):
        return False
    vec = trial_vector(spec, trial)
    return vec is not None and all(
        o.goal is None or o.reached(v) for o, v in zip(objs, vec, strict=True)
    )


def goal_message(spec: ExperimentSpec, trial: TrialRecord) -> str:
    """Why the experiment ended: the front member and its values against the goals."""
    vec = trial_vector(spec, trial) or ()
    parts = [
        f"{o.metric}={v:g} (goal {o.goal:g})"
        for o, v in zip(spec.all_objectives, vec, strict=False)
        if o.goal is not None
    ]
    return f"trial {trial.id} on the Pareto front reached every goal: {', '.join(parts)}"
