"""Read-only, fast queries for the dashboard, on SQLAlchemy Core over an automl Store.

Every query selects only the columns it needs and filters on indexed columns
(``automl_trials.experiment_id`` through the ``(experiment_id, number)`` unique constraint,
``automl_observations(trial_id, metric)``); JSON columns are decoded only where shown.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from automl.core import Direction, ExperimentSpec, TrialRecord
from automl.store import Store
from automl.store import _schema as S
from automl.store._trials import _trial as _record  # a stored row -> TrialRecord

__all__ = [
    "SORT_KEYS",
    "Curves",
    "ExperimentSummary",
    "Queries",
    "TrialsPage",
]

E = S.experiments.c
# The experiment columns every summary reads (never the trials' JSON).
_SUMMARY_COLUMNS = (
    E.id,
    E.name,
    E.spec,
    E.state,
    E.reason,
    E.message,
    E.created_at,
    E.started_at,
    E.finished_at,
)
T = S.trials.c
O = S.observations.c  # noqa: E741

_DURATION = T.finished_at - T.started_at
SORT_KEYS: dict[str, Any] = {
    "number": T.number,
    "value": T.value,
    "state": T.state,
    "started_at": T.started_at,
    "finished_at": T.finished_at,
    "duration": _DURATION,
}


@dataclass(frozen=True)
class ExperimentSummary:
    """One row of the experiments page."""

    id: str
    name: str
    state: str
    reason: str
    message: str
    algorithm: str
    direction: str
    metric: str
    max_trials: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    counts: dict[str, int]
    best_value: float | None
    spec: ExperimentSpec

    @property
    def total(self) -> int:
        """Trials created so far."""
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        """Trials in a terminal state."""
        return self.total - self.counts.get("Created", 0) - self.counts.get("Running", 0)

    @property
    def elapsed(self) -> float | None:
        """Seconds from start to finish (or to now while running)."""
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at

    def row(self) -> dict[str, Any]:
        """The flat row shown in the experiments table."""
        progress = f"{self.done}/{self.max_trials}" if self.max_trials else f"{self.done}/-"
        return {
            "name": self.name,
            "status": self.state,
            "reason": self.reason,
            "algorithm": self.algorithm,
            "progress": progress,
            "running": self.counts.get("Running", 0),
            "failed": self.counts.get("Failed", 0) + self.counts.get("MetricsUnavailable", 0),
            "early_stopped": self.counts.get("EarlyStopped", 0),
            "best": self.best_value,
            "direction": self.direction,
            "started": _ts(self.started_at or self.created_at),
            "elapsed_s": None if self.elapsed is None else round(self.elapsed, 1),
        }


@dataclass(frozen=True)
class TrialsPage:
    """A page of trials and the total matching the filter."""

    rows: list[dict[str, Any]]
    total: int


@dataclass
class Curves:
    """Intermediate values of one metric: per trial number, ``(steps, values)``."""

    points: dict[int, tuple[list[float], list[float]]] = field(default_factory=dict)
    last_id: int = 0
    numbers: set[int] | None = None  # the trials loaded, when not all of them


def add_point(cur: Curves, number: int, step: float | None, value: float) -> None:
    """Append one observation of trial ``number`` to ``cur``.

    A missing step counts on from the trial's points held so far (1, 2, ...), as the controller
    and the early stopper count them.
    """
    steps, values = cur.points.setdefault(number, ([], []))
    steps.append(float(step) if step is not None else float(len(steps) + 1))
    values.append(value)


# An infeasible trial (it broke a constraint) is never best: its value counts as missing.
_INFEASIBLE = '"feasible":false'
_FEASIBLE_VALUE = sa.case((T.attrs.contains(_INFEASIBLE), sa.null()), else_=T.value)


def _ts(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


class Queries:
    """Read-only queries over a Store.

    Args:
        store: An open Store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # -- experiments ---------------------------------------------------------------------------
    def experiments_summary(self) -> list[ExperimentSummary]:
        """Every experiment with its trial counts per state and best value (two queries)."""
        with self.engine.connect() as c:
            exps = c.execute(sa.select(*_SUMMARY_COLUMNS).order_by(E.created_at)).all()
            agg = c.execute(
                sa.select(
                    T.experiment_id,
                    T.state,
                    sa.func.count(),
                    sa.func.min(_FEASIBLE_VALUE),
                    sa.func.max(_FEASIBLE_VALUE),
                ).group_by(T.experiment_id, T.state)
            ).all()
        counts: dict[str, dict[str, int]] = {}
        best: dict[str, tuple[float | None, float | None]] = {}
        for exp_id, state, n, lo, hi in agg:
            counts.setdefault(exp_id, {})[state] = int(n)
            if state == "Succeeded":
                best[exp_id] = (_finite(lo), _finite(hi))
        out = []
        for r in exps:
            spec = ExperimentSpec.from_json(r.spec)
            lo, hi = best.get(r.id, (None, None))
            maximize = spec.objective.type is Direction.MAXIMIZE
            out.append(
                ExperimentSummary(
                    id=r.id,
                    name=r.name,
                    state=r.state,
                    reason=r.reason or "",
                    message=r.message or "",
                    algorithm=spec.algorithm.name,
                    direction=spec.objective.type.value,
                    metric=spec.objective.metric,
                    max_trials=spec.max_trial_count,
                    created_at=r.created_at,
                    started_at=r.started_at,
                    finished_at=r.finished_at,
                    counts=counts.get(r.id, {}),
                    best_value=hi if maximize else lo,
                    spec=spec,
                )
            )
        return out

    def experiment(self, name: str) -> ExperimentSummary | None:
        """One experiment's summary by name (None when it does not exist)."""
        with self.engine.connect() as c:
            r = c.execute(sa.select(*_SUMMARY_COLUMNS).where(E.name == name)).first()
            if r is None:
                return None
            agg = c.execute(
                sa.select(T.state, sa.func.count(), sa.func.min(T.value), sa.func.max(T.value))
                .where(T.experiment_id == r.id)
                .group_by(T.state)
            ).all()
        spec = ExperimentSpec.from_json(r.spec)
        counts = {s: int(n) for s, n, _, _ in agg}
        lo = hi = None
        for s, _, a, b in agg:
            if s == "Succeeded":
                lo, hi = _finite(a), _finite(b)
        maximize = spec.objective.type is Direction.MAXIMIZE
        return ExperimentSummary(
            id=r.id,
            name=r.name,
            state=r.state,
            reason=r.reason or "",
            message=r.message or "",
            algorithm=spec.algorithm.name,
            direction=spec.objective.type.value,
            metric=spec.objective.metric,
            max_trials=spec.max_trial_count,
            created_at=r.created_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
            counts=counts,
            best_value=hi if maximize else lo,
            spec=spec,
        )

    def best_trial(self, exp_id: str, direction: str) -> dict[str, Any] | None:
        """The best succeeded trial (one indexed query, LIMIT 1).

        Besides ``id``, ``number``, ``value``, ``params`` and ``metrics`` (latest), ``outputs``
        is what its artifact directory held and ``record`` the stored :class:`TrialRecord`.
        """
        order = T.value.desc() if direction == Direction.MAXIMIZE.value else T.value.asc()
        with self.engine.connect() as c:
            r = c.execute(
                sa.select(S.trials)
                .where(T.experiment_id == exp_id, T.state == "Succeeded", T.value.is_not(None))
                .where(sa.not_(T.attrs.contains('"invalidated"')))  # automl invalidate
                .where(sa.not_(T.attrs.contains(_INFEASIBLE)))  # broke a constraint
                .order_by(order, T.number)
                .limit(1)
            ).first()
        if r is None:
            return None
        record = _record(r._mapping)
        return {
            "id": r.id,
            "number": r.number,
            "value": r.value,
            "params": json.loads(r.params),
            "metrics": _metrics(r.metrics),
            "outputs": dict(record.outputs),
            "record": record,
        }

    # -- trials --------------------------------------------------------------------------------
    def trials_page(
        self,
        exp_id: str,
        states: Sequence[str] | None = None,
        sort: str = "number",
        desc: bool = False,
        offset: int = 0,
        limit: int = 100,
        search: str | None = None,
    ) -> TrialsPage:
        """A page of trials, with params and metrics decoded.

        Args:
            exp_id: Experiment id.
            states: Keep only these states (None or empty: all).
            sort: One of :data:`SORT_KEYS`.
            desc: Descending order.
            offset: Rows to skip.
            limit: Rows to return.
            search: Substring to find in the trial id or the params JSON.
        """
        conds: list[Any] = [T.experiment_id == exp_id]
        if states:
            conds.append(T.state.in_(list(states)))
        if search:
            pat = f"%{search}%"
            conds.append(sa.or_(T.params.like(pat), T.id.like(pat)))
        key = SORT_KEYS.get(sort, T.number)
        order = key.desc() if desc else key.asc()
        # NULLs last in both directions, portable across dialects
        nulls = sa.case((key.is_(None), 1), else_=0)
        with self.engine.connect() as c:
            total = c.execute(sa.select(sa.func.count()).select_from(S.trials).where(*conds))
            n = int(total.scalar() or 0)
            rows = c.execute(
                sa.select(
                    T.id,
                    T.number,
                    T.state,
                    T.value,
                    T.params,
                    T.metrics,
                    T.started_at,
                    T.finished_at,
                    T.message,
                    T.attrs,
                )
                .where(*conds)
                .order_by(nulls, order, T.number)
                .offset(max(0, offset))
                .limit(max(1, limit))
            ).all()
        out = []
        for r in rows:
            attrs = json.loads(r.attrs or "{}")
            row: dict[str, Any] = {
                "number": r.number,
                "id": r.id,
                "state": r.state,
                "value": r.value,
                "duration_s": (
                    None
                    if r.started_at is None or r.finished_at is None
                    else round(r.finished_at - r.started_at, 3)
                ),
                "started": _ts(r.started_at),
                "message": r.message or "",
                # which strategy of `auto` proposed it (None for other algorithms)
                "strategy": attrs.get("strategy"),
                # why it was invalidated by hand (automl invalidate), "" when it counts
                "invalidated": (attrs.get("invalidated") or {}).get("reason", "")
                or ("yes" if attrs.get("invalidated") else ""),
            }
            row["params"] = json.loads(r.params)
            row["metrics"] = _metrics(r.metrics)
            out.append(row)
        return TrialsPage(out, n)

    def history(self, exp_id: str) -> list[tuple[int, float | None, str, float | None]]:
        """``(number, value, state, finished_at)`` of every trial, by number.

        A trial invalidated by hand (``automl invalidate``) has state ``Invalidated`` here, so the
        charts leave it out of the best-so-far line.
        """
        invalid = T.attrs.contains('"invalidated"')
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(T.number, T.value, T.state, T.finished_at, invalid)
                .where(T.experiment_id == exp_id)
                .order_by(T.number)
            ).all()
        return [(r[0], r[1], "Invalidated" if r[4] else r[2], r[3]) for r in rows]

    def params_values(
        self, exp_id: str, states: Iterable[str] = ("Succeeded",), limit: int | None = None
    ) -> list[tuple[int, dict[str, Any], float | None, str]]:
        """``(number, params, value, state)`` of the trials in ``states`` (for plots)."""
        with self.engine.connect() as c:
            q = (
                sa.select(T.number, T.params, T.value, T.state)
                .where(T.experiment_id == exp_id, T.state.in_(list(states)))
                .order_by(T.number)
            )
            if limit is not None:
                q = q.limit(limit)
            rows = c.execute(q).all()
        return [(r.number, json.loads(r.params), r.value, r.state) for r in rows]

    def changed_since(self, exp_id: str, since: float) -> list[dict[str, Any]]:
        """Trials created, started or finished after ``since`` (epoch seconds)."""
        touched = sa.func.coalesce(T.finished_at, T.started_at, T.created_at)
        cond = sa.or_(T.finished_at > since, T.started_at > since, T.created_at > since)
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(T.id, T.number, T.state, T.value, touched.label("touched"))
                .where(T.experiment_id == exp_id, cond)
                .order_by(T.number)
            ).all()
        return [dict(r._mapping) for r in rows]

    def metric_names(self, exp_id: str) -> list[str]:
        """Metrics observed for the experiment's trials (from the spec is cheaper; see app)."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(O.metric)
                .join(S.trials, S.trials.c.id == O.trial_id)
                .where(T.experiment_id == exp_id)
                .distinct()
            ).all()
        return sorted(r[0] for r in rows)

    def curves(
        self,
        exp_id: str,
        metric: str,
        since_id: int = 0,
        previous: Curves | None = None,
        numbers: Iterable[int] | None = None,
        until_id: int | None = None,
        number_implicit: bool = True,
    ) -> Curves:
        """Observations of ``metric`` for the experiment's trials with id > ``since_id``.

        Args:
            exp_id: Experiment id.
            metric: Metric name.
            since_id: Only observations with a larger id (the incremental cursor).
            previous: A previous result to extend in place (incremental refresh).
            numbers: Only these trial numbers (e.g. the best trials and the stopped ones).
            until_id: Only observations with an id up to this one.
            number_implicit: Number an observation without a step after the trial's points
                held so far; False leaves its step NaN for a caller that holds the earlier
                points (``dashboard.remote``, whose server never sees them).
        """
        cur = previous if previous is not None else Curves()
        conds = [T.experiment_id == exp_id, O.metric == metric, O.id > since_id]
        if numbers is not None:
            conds.append(T.number.in_(sorted(set(numbers))))
        if until_id is not None:
            conds.append(O.id <= until_id)
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(O.id, T.number, O.step, O.value)
                .join(S.trials, S.trials.c.id == O.trial_id)
                .where(*conds)
                .order_by(O.id)
            ).all()
        for oid, number, step, value in rows:
            if step is None and not number_implicit:
                step = math.nan
            add_point(cur, number, step, value)
            if oid > cur.last_id:
                cur.last_id = oid
        return cur

    def step_band(self, exp_id: str, metric: str) -> list[tuple[float, float, float, float, int]]:
        """``(step, mean, min, max, trials)`` of ``metric`` per explicit step, over every trial.

        One aggregate query: what the intermediate-values chart draws behind the sampled
        curves, however many trials there are. Observations without a step are left out.
        """
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(
                    O.step,
                    sa.func.avg(O.value),
                    sa.func.min(O.value),
                    sa.func.max(O.value),
                    sa.func.count(),
                )
                .join(S.trials, S.trials.c.id == O.trial_id)
                .where(T.experiment_id == exp_id, O.metric == metric, O.step.is_not(None))
                .group_by(O.step)
                .order_by(O.step)
            ).all()
        return [(float(r[0]), float(r[1]), float(r[2]), float(r[3]), int(r[4])) for r in rows]

    def last_points(
        self, exp_id: str, metric: str, states: Sequence[str] = ("EarlyStopped",)
    ) -> dict[int, tuple[float, float]]:
        """``{number: (step, value)}``: the last observation of ``metric`` of trials in ``states``.

        Where an early-stopped trial stopped, as it counted its steps (implicit steps count
        1, 2, ...).
        """
        inner = (
            sa.select(
                O.trial_id.label("tid"),
                sa.func.max(O.id).label("last"),
                sa.func.count().label("n"),
            )
            .join(S.trials, S.trials.c.id == O.trial_id)
            .where(T.experiment_id == exp_id, O.metric == metric, T.state.in_(list(states)))
            .group_by(O.trial_id)
            .subquery()
        )
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(T.number, O.step, O.value, inner.c.n)
                .select_from(inner)
                .join(S.observations, O.id == inner.c.last)
                .join(S.trials, S.trials.c.id == inner.c.tid)
            ).all()
        return {
            r[0]: (float(r[1] if r[1] is not None else r[3]), r[2])
            for r in rows
            if r[2] is not None
        }

    def trials(self, exp_id: str) -> list[TrialRecord]:
        """Every trial of the experiment as stored records (the Pareto section reads them)."""
        return self.store.trials.list(exp_id)

    # -- one trial -----------------------------------------------------------------------------
    def curves_for(
        self, exp_id: str, metric: str, numbers: set[int] | None, previous: Curves | None
    ) -> Curves:
        """Incremental curves of the trials ``numbers`` (None: all trials).

        Trials new to the set are loaded up to the cursor, then every loaded trial gets the
        observations after it, so a refresh reads only what changed.
        """
        if previous is None or (previous.numbers is None) != (numbers is None):
            previous = Curves(numbers=None if numbers is None else set())
        if numbers is None:
            return self.curves(exp_id, metric, previous.last_id, previous)
        loaded = previous.numbers if previous.numbers is not None else set()
        missing = numbers - loaded
        if missing and previous.last_id:
            self.curves(exp_id, metric, 0, previous, missing, until_id=previous.last_id)
        loaded |= missing
        previous.numbers = loaded
        return self.curves(exp_id, metric, previous.last_id, previous, loaded)

    def trial(self, trial_id: str) -> dict[str, Any] | None:
        """Every field of one trial, decoded, plus its experiment's name.

        ``outputs`` is what its artifact directory held (``artifact_dir``, ``models``,
        ``files``, ``data``; ``{}`` when nothing), ``record`` the stored :class:`TrialRecord`
        and ``spec`` its experiment's :class:`ExperimentSpec`.
        """
        with self.engine.connect() as c:
            r = c.execute(
                sa.select(S.trials, E.name.label("experiment"), E.spec.label("experiment_spec"))
                .join(S.experiments, E.id == T.experiment_id)
                .where(T.id == trial_id)
            ).first()
        if r is None:
            return None
        m = dict(r._mapping)
        m["params"] = json.loads(m["params"])
        m["metrics"] = _metrics(m["metrics"])
        m["attrs"] = json.loads(m["attrs"] or "{}")
        m["runner"] = json.loads(m["runner"] or "{}")
        m["outputs"] = json.loads(m["outputs"] or "{}")
        m["record"] = _record(r._mapping)
        m["spec"] = ExperimentSpec.from_json(m.pop("experiment_spec"))
        return m

    def trial_observations(self, trial_id: str, since_id: int = 0) -> list[dict[str, Any]]:
        """``{id, metric, step, value, time}`` of one trial's observations (id > since_id)."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(O.id, O.metric, O.step, O.value, O.time)
                .where(O.trial_id == trial_id, O.id > since_id)
                .order_by(O.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def lineage(self, exp_id: str) -> list[dict[str, Any]]:
        """PBT lineage: ``{number, id, value, state, generation, parent}`` per trial."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(T.id, T.number, T.value, T.state, T.attrs)
                .where(T.experiment_id == exp_id)
                .order_by(T.number)
            ).all()
        out = []
        for r in rows:
            attrs = json.loads(r.attrs or "{}")
            pbt = attrs.get("pbt")
            if not isinstance(pbt, dict):
                continue
            out.append(
                {
                    "number": r.number,
                    "id": r.id,
                    "value": r.value,
                    "state": r.state,
                    "generation": pbt.get("generation"),
                    "parent": pbt.get("parent"),
                }
            )
        return out


def _metrics(text: str | None) -> dict[str, float]:
    """``{metric: latest}`` from the stored ``{metric: [min, max, latest]}``."""
    raw = json.loads(text or "{}")
    return {k: v[2] if isinstance(v, list) and len(v) == 3 else v for k, v in raw.items()}


def downsample(curves: Curves, max_points: int = 50, top: set[int] | None = None) -> Curves:
    """Thin curves for plotting.

    Keeps at most ``max_points`` per trial (evenly strided, the last point kept), and only the
    trials in ``top`` when it is given.
    """
    out = Curves(last_id=curves.last_id)
    for number, (steps, values) in curves.points.items():
        if top is not None and number not in top:
            continue
        n = len(steps)
        if n <= max_points:
            out.points[number] = (steps, values)
            continue
        stride = math.ceil(n / max_points)
        idx = list(range(0, n, stride))
        if idx[-1] != n - 1:
            idx.append(n - 1)
        out.points[number] = ([steps[i] for i in idx], [values[i] for i in idx])
    return out
