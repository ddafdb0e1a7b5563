"""Trials and observations in the store, and the per-trial writes of the controller's loop.

A trial's start, its observations and its end are written through the driver's own SQL
(automl.store._driver): one transaction per trial, which commits the previous trial's end
with the next one's start.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from automl.core import MetricSummary, Observation, TrialRecord, TrialState
from automl.store import _schema as S
from automl.store._driver import Batch, DriverSQL

if TYPE_CHECKING:
    from automl.store._sql import Store

__all__ = ["ObservationRepository", "TrialEnd", "TrialRepository", "driver_for", "dumps"]

# The per-trial statements, built once; the driver compiles each once per dialect (driver_for).
_FINISH = (
    S.trials.update()
    .where(S.trials.c.id == sa.bindparam("tid"))
    .values(
        state=sa.bindparam("state"),
        value=sa.bindparam("value"),
        metrics=sa.bindparam("metrics"),
        message=sa.bindparam("message"),
        finished_at=sa.bindparam("finished_at"),
    )
)
_FINISH_OUTPUTS = _FINISH.values(outputs=sa.bindparam("outputs"))
# By (outputs given, attrs given): one statement per trial's end, built once.
_FINISHES = {
    (False, False): _FINISH,
    (True, False): _FINISH_OUTPUTS,
    (False, True): _FINISH.values(attrs=sa.bindparam("attrs")),
    (True, True): _FINISH_OUTPUTS.values(attrs=sa.bindparam("attrs")),
}
_INSERT_TRIALS = S.trials.insert()
_INSERT_OBS = S.observations.insert()
_TRIAL_KEYS = (
    "id", "experiment_id", "number", "params", "state", "value", "metrics", "created_at",
    "started_at", "message", "attempt", "attrs", "runner", "outputs",
)  # fmt: skip
_OBS_KEYS = ("trial_id", "metric", "step", "value", "time")
_SAMPLER_STATE = (
    S.experiments.update()
    .where(S.experiments.c.id == sa.bindparam("eid"))
    .values(sampler_state=sa.bindparam("sampler_state"))
)


def driver_for(engine: Engine) -> DriverSQL:
    """The per-trial statements (a trial's start, its observations, its end) for the driver."""
    d = DriverSQL(engine)
    d.compile("trial", _INSERT_TRIALS, _TRIAL_KEYS)
    d.compile("obs", _INSERT_OBS, _OBS_KEYS)
    d.compile("sampler_state", _SAMPLER_STATE, ())
    for key, stmt in _FINISHES.items():
        d.compile(key, stmt, ())
    return d


@dataclasses.dataclass(frozen=True)
class TrialEnd:
    """How a trial ended, as :meth:`TrialRepository.finish` writes it."""

    trial_id: str
    state: TrialState
    value: float | None
    metrics: Mapping[str, MetricSummary]
    message: str
    observations: Sequence[Observation]
    finished_at: float
    outputs: Mapping[str, Any] | None = None
    attrs: Mapping[str, Any] | None = None


def dumps(obj: Any) -> str:
    """Compact JSON for a Text column (NaN kept: the values are the user's)."""
    if not obj and type(obj) is dict:
        return "{}"  # most trials' attrs and outputs: no encoder call
    return json.dumps(obj, separators=(",", ":"), allow_nan=True)


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


class TrialRepository:
    """Trials: add, start, finish, read."""

    def __init__(self, store: Store) -> None:
        self._s = store

    def add(
        self,
        trials: Sequence[TrialRecord],
        sampler_state: Mapping[str, Any] | None = None,
        ends: Sequence[TrialEnd] = (),
    ) -> None:
        """Insert new trials (and the algorithm state that produced them) in one transaction.

        ``ends``: trials that finished just before, written in the same transaction (the
        controller's loop commits a trial's end with the start of the next one).
        """
        rows = [
            {
                "id": t.id,
                "experiment_id": t.experiment_id,
                "number": t.number,
                "params": dumps(dict(t.params)),
                "state": t.state.value,
                "value": None,
                "metrics": "{}",
                "created_at": t.created_at,
                "started_at": t.started_at,
                "message": "",
                "attempt": t.attempt,
                "attrs": dumps(dict(t.attrs)),
                "runner": "{}",
                "outputs": dumps(dict(t.outputs)),
            }
            for t in trials
        ]
        if not rows and not ends:
            return
        batches = _ends(ends)
        batches.append(("trial", rows))
        if rows and sampler_state is not None:
            state = dumps(dict(sampler_state))
            batches.append(
                ("sampler_state", [{"eid": trials[0].experiment_id, "sampler_state": state}])
            )
        self._s.write(batches)

    def update(self, trial_id: str, **fields: Any) -> None:
        """Set columns of a trial (``state`` as TrialState, ``runner``/``attrs`` as mappings)."""
        values: dict[str, Any] = {}
        for k, v in fields.items():
            if k == "state":
                v = TrialState(v).value
            elif k in ("runner", "attrs", "outputs", "params"):
                v = dumps(dict(v))
            values[k] = v
        with self._s.begin() as c:
            c.execute(S.trials.update().where(S.trials.c.id == trial_id).values(**values))

    def finish(
        self,
        trial_id: str,
        state: TrialState,
        value: float | None,
        metrics: Mapping[str, MetricSummary],
        message: str,
        observations: Sequence[Observation] = (),
        finished_at: float | None = None,
        outputs: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Write a trial's end and its last observations in one transaction.

        ``outputs`` (what the trial's artifact directory holds) is stored when given, and so
        are ``attrs`` (replacing the trial's: its objective vector and feasibility).
        """
        end = TrialEnd(
            trial_id,
            state,
            value,
            metrics,
            message,
            tuple(observations),
            finished_at or time.time(),
            outputs,
            attrs,
        )
        self.finish_many([end])

    def finish_many(self, ends: Sequence[TrialEnd]) -> None:
        """Write several trials' ends (see :meth:`finish`) in one transaction."""
        if ends:
            self._s.write(_ends(ends))

    def restart(self, trial_id: str, attempt: int) -> None:
        """Put an interrupted trial back to Created for another attempt.

        The partial observations of the lost attempt are dropped.
        """
        with self._s.begin() as c:
            c.execute(S.observations.delete().where(S.observations.c.trial_id == trial_id))
            c.execute(
                S.trials.update()
                .where(S.trials.c.id == trial_id)
                .values(
                    state=TrialState.CREATED.value,
                    attempt=attempt,
                    started_at=None,
                    metrics="{}",
                    value=None,
                    runner="{}",
                    outputs="{}",
                )
            )

    def list(self, experiment_id: str) -> list[TrialRecord]:
        """The experiment's trials in creation order."""
        with self._s.begin() as c:
            rows = c.execute(
                sa.select(S.trials)
                .where(S.trials.c.experiment_id == experiment_id)
                .order_by(S.trials.c.number)
            ).all()
        return [_trial(r._mapping) for r in rows]

    def runners(self, experiment_id: str) -> dict[str, dict[str, Any]]:
        """Runner details (pid, host...) of the experiment's active trials."""
        t = S.trials.c
        with self._s.begin() as c:
            rows = c.execute(
                sa.select(t.id, t.runner)
                .where(t.experiment_id == experiment_id)
                .where(t.state.in_([TrialState.CREATED.value, TrialState.RUNNING.value]))
            ).all()
        return {r.id: json.loads(r.runner or "{}") for r in rows}


def _obj(text: str | None) -> Any:
    """A stored JSON object; the empty ones (most attrs, runners and outputs) are not parsed."""
    return {} if not text or text == "{}" else json.loads(text)


def _trial(m: Any) -> TrialRecord:
    metrics = {k: MetricSummary(*v) for k, v in _obj(m["metrics"]).items()}
    return TrialRecord(
        id=m["id"],
        experiment_id=m["experiment_id"],
        number=m["number"],
        params=json.loads(m["params"]),
        state=TrialState(m["state"]),
        value=m["value"],
        metrics=metrics,
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        message=m["message"] or "",
        attempt=m["attempt"],
        attrs=_obj(m["attrs"]),
        workdir=_obj(m["runner"]).get("workdir"),
        outputs=_obj(m["outputs"]),
    )


def _ends(ends: Sequence[TrialEnd]) -> list[Batch]:
    """Each end: its last observations, then one UPDATE of the trial's row."""
    obs = [o for e in ends for o in e.observations]
    out: list[Batch] = [("obs", _obs_rows(obs))] if obs else []
    for e in ends:
        row: dict[str, Any] = {
            "tid": e.trial_id,
            "state": e.state.value,
            "value": _finite(e.value),
            "metrics": dumps({k: [m.min, m.max, m.latest] for k, m in e.metrics.items()}),
            "message": e.message[:20000],
            "finished_at": e.finished_at,
        }
        if e.outputs is not None:
            row["outputs"] = dumps(dict(e.outputs))
        if e.attrs is not None:
            row["attrs"] = dumps(dict(e.attrs))
        out.append(((e.outputs is not None, e.attrs is not None), [row]))
    return out


def _obs_rows(observations: Sequence[Observation]) -> list[dict[str, Any]]:
    return [
        {
            "trial_id": o.trial_id,
            "metric": o.metric,
            "step": o.step,
            "value": _finite(o.value),
            "time": o.time,
        }
        for o in observations
    ]


class ObservationRepository:
    """Observations: append and read."""

    def __init__(self, store: Store) -> None:
        self._s = store

    def append(self, observations: Sequence[Observation]) -> None:
        """Insert observations in one transaction."""
        if observations:
            self._s.write([("obs", _obs_rows(observations))])

    def delete(self, trial_ids: Sequence[str]) -> None:
        """Drop the observations of these trials (an adopter reads them again from the trial)."""
        if trial_ids:
            o = S.observations
            with self._s.begin() as c:
                c.execute(o.delete().where(o.c.trial_id.in_(list(trial_ids))))

    def list(self, trial_id: str) -> list[Observation]:
        """A trial's observations in the order they were stored."""
        o = S.observations
        with self._s.begin() as c:
            rows = c.execute(sa.select(o).where(o.c.trial_id == trial_id).order_by(o.c.id)).all()
        return [
            Observation(
                r.trial_id, r.metric, r.value if r.value is not None else math.nan, r.step, r.time
            )
            for r in rows
        ]

    def for_experiment(self, experiment_id: str) -> builtins.list[Observation]:
        """Every observation of an experiment's trials."""
        o, t = S.observations, S.trials
        with self._s.begin() as c:
            rows = c.execute(
                sa.select(o)
                .join(t, t.c.id == o.c.trial_id)
                .where(t.c.experiment_id == experiment_id)
                .order_by(o.c.id)
            ).all()
        return [
            Observation(
                r.trial_id, r.metric, r.value if r.value is not None else math.nan, r.step, r.time
            )
            for r in rows
        ]
