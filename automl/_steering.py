"""Steering a search by hand: enqueue, invalidate, rerun, fork, live budgets, preemption.

Every change is a store write made in one transaction with a bump of the experiment's steer
counter (migration 0005). A running controller reads the counter with its stop flag twice a
second and applies the change at its next turn; a waiting or finished experiment picks it up when
it runs. Nothing lives only in a controller's memory, so a controller killed at any moment loses
nothing:

* an enqueued configuration is a Created trial with ``attrs["enqueued"]`` (and a negative number
  until it starts, so it never takes a number the controller is about to give): it starts before
  any new suggestion, once (a started trial is Running and follows the usual resume rules);
* an invalidated trial keeps its row, with ``attrs["invalidated"] = {"reason", "at"}``; best
  queries and the suggester's history leave it out;
* a fork is a new experiment whose spec names the old one in ``warm_start``; its suggester is
  built from the old experiment's finished trials that fit its space, then its own;
* a preempted trial ends ``Preempted`` and a new trial with the same parameters is enqueued, with
  ``attrs["resumes"]`` naming the first of the chain (its checkpoint directory is the chain's).
"""

from __future__ import annotations

import json
import math
import secrets
import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from automl.core import ExperimentSpec, Parameter, ParameterType, TrialRecord, TrialState
from automl.errors import AutoMLError, NotFoundError, SpecError, SpecIssue

if TYPE_CHECKING:
    from automl.core import ExperimentRecord, ParamValue
    from automl.store import Store

__all__ = [
    "ForkResult",
    "SteerState",
    "budgeted",
    "check_params",
    "enqueue",
    "fork",
    "invalidate",
    "rerun",
    "set_budget",
    "warm_history",
]

_ALPHABET = string.ascii_lowercase + string.digits
_HOUR = 3600.0
#: Attribute keys of an enqueued trial that describe how it came to be, not algorithm state.
_STEER_KEYS = ("enqueued", "rerun_of", "preempted", "preemptions", "resumes", "invalidated")


# -- checking values against the space ------------------------------------------------------------
def describe(p: Parameter) -> str:
    """A parameter's space in words: ``an int in [2, 5]``, ``one of ['rbf', 'linear']``."""
    if p.is_numeric_range:
        kind = "an int" if p.type is ParameterType.INT else "a number"
        return f"{kind} in [{p.min:g}, {p.max:g}]"
    return f"one of {list(p.values)}"


def _check_value(p: Parameter, raw: Any) -> ParamValue:
    """The typed value, or ValueError saying the parameter's space."""
    bad = ValueError(f"must be {describe(p)}; got {raw!r}")
    if not p.is_numeric_range:
        try:
            return p.coerce(raw)
        except SpecError:
            raise bad from None
    if isinstance(raw, bool):
        raise bad
    try:
        x = float(raw)
    except (TypeError, ValueError):
        raise bad from None
    if not math.isfinite(x):
        raise bad
    assert p.min is not None and p.max is not None
    if p.type is ParameterType.INT and x != int(x):
        raise bad
    if not p.min <= x <= p.max:
        raise bad
    return int(x) if p.type is ParameterType.INT else x


def check_params(spec: ExperimentSpec, raw: Mapping[str, Any]) -> dict[str, ParamValue]:
    """Typed values for a configuration given by hand, checked against the search space.

    Strings (from the command line) are parsed; ints must be whole, numbers in range, categorical
    and discrete values among the parameter's values. A conditional parameter may be left out.

    Raises:
        SpecError: One issue per bad, unknown or missing parameter, naming it and its space.
    """
    issues: list[SpecIssue] = []
    known = {p.name for p in spec.parameters}
    for name in raw:
        if name not in known:
            issues.append(
                SpecIssue(
                    f"params.{name}",
                    f"is not a parameter of {spec.name!r}; its parameters are {sorted(known)}",
                )
            )
    out: dict[str, ParamValue] = {}
    for p in spec.parameters:
        if p.name not in raw:
            if not getattr(p, "when", None):  # a conditional parameter may be inactive
                issues.append(SpecIssue(f"params.{p.name}", f"is missing: give {describe(p)}"))
            continue
        try:
            out[p.name] = _check_value(p, raw[p.name])
        except ValueError as exc:
            issues.append(SpecIssue(f"params.{p.name}", str(exc)))
    if issues:
        raise SpecError(issues)
    return out


def parse_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``["C=10", "kernel=rbf"]`` -> ``{"C": "10", "kernel": "rbf"}``.

    Raises:
        SpecError: A pair without ``=``.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SpecError(f"must be NAME=VALUE; got {pair!r}", path="--param")
        out[name.strip()] = value.strip()
    return out


#: Algorithms that schedule every trial themselves (brackets, generations, one search trial, a
#: controller network): a configuration from outside has no place in their schedule.
_SCHEDULED = frozenset({"hyperband", "pbt", "darts", "enas"})


def _steerable(spec: ExperimentSpec, action: str) -> None:
    from search._registry import canonical_name

    name = canonical_name(spec.algorithm.name)
    if name in _SCHEDULED:
        raise SpecError(
            f"{action} is not possible with algorithm {name}, which schedules every trial itself; "
            "use another algorithm (random, tpe, auto...)",
            path="algorithm",
        )


# -- changes a user makes -----------------------------------------------------------------------
def _trial(store: Store, exp: ExperimentRecord, ref: str) -> TrialRecord:
    """A trial by id, or by number (not a waiting enqueued trial's placeholder number)."""
    for t in store.trials.list(exp.id):
        if t.id == ref or (t.number >= 0 and str(t.number) == ref):
            return t
    raise NotFoundError(
        f"experiment {exp.name!r} has no trial {ref!r} (give a trial id as `automl show "
        f"{exp.name}` lists it, or its number)"
    )


def enqueue(
    store: Store, name: str, params: Mapping[str, Any], attrs: Mapping[str, Any] | None = None
) -> TrialRecord:
    """Store a configuration to run next in experiment ``name`` (before new suggestions).

    Raises:
        NotFoundError: No such experiment.
        SpecError: A value outside the space (naming the parameter and its range).
    """
    from automl.store import _schema as S

    exp = store.experiments.get(name)
    _steerable(exp.spec, "enqueue")
    typed = check_params(exp.spec, params)
    t = S.trials.c
    for _ in range(20):  # two writers may pick the same placeholder number: try the next one
        trial_id = f"{name}-{''.join(secrets.choice(_ALPHABET) for _ in range(8))}"
        record = TrialRecord(
            id=trial_id,
            experiment_id=exp.id,
            number=0,
            params=typed,
            state=TrialState.CREATED,
            created_at=time.time(),
            attrs={**(attrs or {}), "enqueued": True},
        )
        try:
            with store.begin() as c:
                low = c.execute(
                    sa.select(sa.func.min(t.number)).where(t.experiment_id == exp.id)
                ).scalar()
                record = replace(record, number=min(int(low or 0), 0) - 1)
                c.execute(S.trials.insert().values(**_row(record)))
                store.experiments.steered(exp.id, c)
        except sa.exc.IntegrityError:
            continue
        return record
    raise AutoMLError(f"could not enqueue into {name!r}: too many concurrent writers")


def _row(r: TrialRecord) -> dict[str, Any]:

    return {
        "id": r.id,
        "experiment_id": r.experiment_id,
        "number": r.number,
        "params": json.dumps(dict(r.params)),
        "state": r.state.value,
        "metrics": "{}",
        "created_at": r.created_at,
        "message": "",
        "attempt": 1,
        "attrs": json.dumps(dict(r.attrs)),
        "runner": "{}",
        "outputs": "{}",
    }


def invalidate(
    store: Store, name: str, trial: str, reason: str = "", undo: bool = False
) -> TrialRecord:
    """Exclude a finished trial from the best trial and the search's history (or take it back).

    Raises:
        NotFoundError: No such experiment or trial.
        AutoMLError: The trial has not ended yet.
    """
    exp = store.experiments.get(name)
    t = _trial(store, exp, trial)
    if t.state.is_active:
        raise AutoMLError(
            f"trial {t.id} is {t.state.value}; only a trial that has ended can be invalidated"
        )
    attrs = {k: v for k, v in t.attrs.items() if k != "invalidated"}
    if not undo:
        attrs["invalidated"] = {"reason": reason, "at": time.time()}

    from automl.store import _schema as S

    with store.begin() as c:
        c.execute(S.trials.update().where(S.trials.c.id == t.id).values(attrs=json.dumps(attrs)))
        store.experiments.steered(exp.id, c)
    return replace(t, attrs=attrs)


def rerun(store: Store, name: str, trial: str) -> TrialRecord:
    """Enqueue a trial's parameters again, as a new trial.

    Raises:
        NotFoundError: No such experiment or trial.
        SpecError: Its values no longer fit the space.
    """
    t = _trial(store, store.experiments.get(name), trial)
    return enqueue(store, name, t.params, {"rerun_of": t.id})


def budgeted(
    spec: ExperimentSpec,
    *,
    max_trials: int | None = None,
    parallel_trials: int | None = None,
    max_failed_trials: int | None = None,
    timeout: float | None = None,
    trial_hours: float | None = None,
    gpu_hours: float | None = None,
) -> ExperimentSpec:
    """The spec with new budgets, checked (shared by resume, the server and ``automl budget``).

    Raises:
        SpecError: A bad budget, named by its option (``max_trials``...).
    """
    hours = {"trial_hours": trial_hours, "gpu_hours": gpu_hours}
    try:
        if any(v is not None for v in hours.values()):  # checked with the rest below
            spec = spec.model_copy(update={k: v for k, v in hours.items() if v is not None})
        return spec.with_budget(
            max_trial_count=max_trials,
            parallel_trial_count=parallel_trials,
            max_failed_trial_count=max_failed_trials,
            timeout=timeout,
        )
    except SpecError as exc:
        names = {
            "max_trial_count": "max_trials",
            "parallel_trial_count": "parallel_trials",
            "max_failed_trial_count": "max_failed_trials",
            "trial_hours": "budget.trial_hours",
            "gpu_hours": "budget.gpu_hours",
        }
        raise SpecError(
            [SpecIssue(names.get(i.path, i.path), i.message) for i in exc.issues]
        ) from None


def set_budget(
    store: Store,
    name: str,
    *,
    max_trials: int | None = None,
    parallel_trials: int | None = None,
    max_failed_trials: int | None = None,
    timeout: float | None = None,
    trial_hours: float | None = None,
    gpu_hours: float | None = None,
) -> ExperimentRecord:
    """Raise or lower an experiment's budgets; a running controller applies them at its next turn.

    Raises:
        NotFoundError: No such experiment.
        SpecError: A bad budget.
    """
    exp = store.experiments.get(name)
    spec = budgeted(
        exp.spec,
        max_trials=max_trials,
        parallel_trials=parallel_trials,
        max_failed_trials=max_failed_trials,
        timeout=timeout,
        trial_hours=trial_hours,
        gpu_hours=gpu_hours,
    )
    from automl.store import _schema as S

    with store.begin() as c:
        c.execute(
            S.experiments.update().where(S.experiments.c.id == exp.id).values(spec=spec.to_json())
        )
        store.experiments.steered(exp.id, c)
    return store.experiments.get(name)


@dataclass(frozen=True, slots=True)
class ForkResult:
    """A fork: the new experiment, and how many of the old one's finished trials it starts from.

    Attributes:
        experiment: The new experiment (Created).
        kept: Finished trials of the old experiment whose values fit the new space.
        total: Finished trials of the old experiment (not invalidated).
    """

    experiment: ExperimentRecord
    kept: int
    total: int


def fork(
    store: Store,
    name: str,
    new_name: str,
    *,
    max_trials: int | None = None,
    spec: ExperimentSpec | None = None,
) -> ForkResult:
    """Create ``new_name`` with ``name``'s spec (or ``spec``), its search started from ``name``'s.

    Raises:
        NotFoundError: No such experiment.
        AlreadyExistsError: ``new_name`` is taken.
        SpecError: A bad name or budget.
    """
    old = store.experiments.get(name)
    base = spec if spec is not None else old.spec
    _steerable(base, "a warm start (fork)")
    new_spec = base.model_copy(update={"name": new_name, "warm_start": old.name})
    new_spec = budgeted(new_spec, max_trials=max_trials)  # validates the name as well
    finished = _finished(store, old)
    kept = len(_fitting(new_spec, finished))
    return ForkResult(store.experiments.create(new_spec), kept, len(finished))


def _finished(store: Store, exp: ExperimentRecord) -> list[TrialRecord]:
    return [
        t
        for t in store.trials.list(exp.id)
        if not t.state.is_active and t.state is not TrialState.PREEMPTED and not t.invalidated
    ]


def _fitting(spec: ExperimentSpec, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    out = []
    for t in trials:
        try:
            out.append(replace(t, params=check_params(spec, t.params)))
        except SpecError:
            continue
    return out


def warm_history(store: Store, spec: ExperimentSpec) -> list[TrialRecord]:
    """The trials a fork's search starts from: its source's finished ones that fit its space."""
    if not spec.warm_start or spec.warm_start == spec.name:
        return []
    try:
        old = store.experiments.get(spec.warm_start)
    except NotFoundError:  # the source was deleted: the fork goes on from its own trials
        return []
    return _fitting(spec, _finished(store, old))


# -- the controller's side ----------------------------------------------------------------------
def waiting(t: TrialRecord) -> bool:
    """An enqueued trial that has not started yet."""
    return t.state is TrialState.CREATED and t.enqueued and t.started_at is None


_COUNTED = tuple(s for s in TrialState if not s.is_active and s is not TrialState.PREEMPTED)


def terminal(counts: Mapping[TrialState, int]) -> int:
    """Trials that count toward maxTrialCount: ended, except preempted ones (they run again)."""
    return sum([counts.get(s, 0) for s in _COUNTED])


def preempted(spec: ExperimentSpec, r: TrialRecord, message: str) -> tuple[TrialState, str]:
    """A trial killed from outside: Preempted (to run again), or Failed past max_preemptions."""
    n = int(r.attrs.get("preemptions", 0)) + 1
    limit = spec.executor.max_preemptions
    if n > limit:
        return (
            TrialState.FAILED,
            f"preempted {n} times (executor.max_preemptions is {limit}); last: {message}",
        )
    return TrialState.PREEMPTED, f"{message}; runs again as a new trial (preemption {n})"


def rerun_record(r: TrialRecord, new_id: str, number: int, now: float) -> TrialRecord:
    """The new trial that runs a preempted one's parameters, from the chain's checkpoint."""
    kept = {k: v for k, v in r.attrs.items() if k not in _STEER_KEYS}
    return TrialRecord(
        id=new_id,
        experiment_id=r.experiment_id,
        number=number,
        params=r.params,
        state=TrialState.CREATED,
        created_at=now,
        attrs={
            **kept,
            "enqueued": True,
            "preempted": r.id,
            "preemptions": int(r.attrs.get("preemptions", 0)) + 1,
            "resumes": str(r.attrs.get("resumes") or r.id),
        },
    )


def _gpus(spec: ExperimentSpec) -> float:
    r = spec.trial_template.resources
    return r.gpu * r.processes_per_worker * r.workers


@dataclass
class SteerState:
    """What a controller keeps about steering: the enqueued queue, invalidations, budget used."""

    seq: int = 0
    queue: list[TrialRecord] = field(default_factory=list)
    invalid: set[str] = field(default_factory=set)
    seconds: float = 0.0  # summed run time of ended trials

    def account(self, spec: ExperimentSpec, t: TrialRecord) -> None:
        """Count an ended trial's run time and whether it is invalidated."""
        if t.invalidated:
            self.invalid.add(t.id)
        if t.started_at is not None and t.finished_at is not None:
            self.seconds += max(0.0, t.finished_at - t.started_at)

    def refresh(self, trials: Sequence[TrialRecord], live: Mapping[str, Any]) -> bool:
        """Take newly enqueued trials; True when the set of invalidated trials changed."""
        queued = {t.id for t in self.queue}
        new = [t for t in trials if waiting(t) and t.id not in queued and t.id not in live]
        self.queue.extend(sorted(new, key=lambda t: t.created_at))
        invalid = {t.id for t in trials if t.invalidated}
        changed = invalid != self.invalid
        self.invalid = invalid
        return changed

    def _used(self, live: Sequence[TrialRecord]) -> float:
        now = time.time()
        running = sum(now - r.started_at for r in live if r.started_at is not None)
        return self.seconds + max(0.0, running)

    def used_share(self, spec: ExperimentSpec, live: Sequence[TrialRecord]) -> float | None:
        """The largest share of a resource budget used so far (None without one)."""
        shares = []
        used = self._used(live)
        if spec.trial_hours is not None:
            shares.append(used / (spec.trial_hours * _HOUR))
        if spec.gpu_hours is not None:
            shares.append(used * _gpus(spec) / (spec.gpu_hours * _HOUR))
        return max(shares) if shares else None

    def exhausted(self, spec: ExperimentSpec, live: Sequence[TrialRecord]) -> str | None:
        """Why the resource budget is used up, or None."""
        share = self.used_share(spec, live)
        if share is None or share < 1.0:
            return None
        used = self._used(live) / _HOUR
        if spec.trial_hours is not None and used >= spec.trial_hours:
            return f"trials ran {used:.4g} h in all (budget.trial_hours {spec.trial_hours:g})"
        return (
            f"trials held GPUs for {used * _gpus(spec):.4g} h in all "
            f"(budget.gpu_hours {spec.gpu_hours:g})"
        )


def with_budgets_of(spec: ExperimentSpec, stored: ExperimentSpec) -> ExperimentSpec:
    """The running spec with the budgets as stored now (the only fields changed while it runs)."""
    return spec.model_copy(
        update={
            "max_trial_count": stored.max_trial_count,
            "parallel_trial_count": stored.parallel_trial_count,
            "max_failed_trial_count": stored.max_failed_trial_count,
            "timeout": stored.timeout,
            "trial_hours": stored.trial_hours,
            "gpu_hours": stored.gpu_hours,
        }
    )
