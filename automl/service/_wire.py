"""Records as JSON for the REST API, and back: one encoding shared by the server and the client.

Numbers that JSON cannot carry (NaN, infinities) travel as the strings ``"nan"``, ``"inf"`` and
``"-inf"``. Error bodies are ``{"error": kind, "message": text, "issues": [{path, message}]}``;
the kind names the automl exception the client raises again.
"""

from __future__ import annotations

import json
import math
from typing import Any

from automl.core import (
    ExperimentRecord,
    ExperimentSpec,
    ExperimentState,
    MetricSummary,
    Observation,
    TrialRecord,
    TrialState,
)
from automl.errors import (
    AlreadyExistsError,
    AutoMLError,
    ExperimentBusyError,
    NotFoundError,
    SpecError,
    SpecIssue,
    StorageError,
)
from automl.store._queue import QueueInfo

__all__ = [
    "error_body",
    "error_from_body",
    "experiment_from_json",
    "experiment_json",
    "observation_from_json",
    "observation_json",
    "status_of",
    "trial_from_json",
    "trial_json",
]


def _num(v: float | None) -> float | str | None:
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _unnum(v: Any) -> float | None:
    if v is None:
        return None
    return float(v)


def experiment_json(e: ExperimentRecord, queue: QueueInfo | None = None) -> dict[str, Any]:
    """An experiment (with its spec and queue columns) as JSON."""
    data: dict[str, Any] = {
        "id": e.id,
        "name": e.name,
        "state": e.state.value,
        "reason": e.reason,
        "message": e.message,
        "created_at": e.created_at,
        "started_at": e.started_at,
        "finished_at": e.finished_at,
        "stop_requested": e.stop_requested,
        "controller": e.controller,
        "heartbeat_at": e.heartbeat_at,
        "spec": json.loads(e.spec.to_json()),
        "sampler_state": dict(e.sampler_state),
    }
    if queue is not None:
        data.update(
            queued=queue.queued,
            priority=queue.priority,
            worker=queue.worker,
            takeovers=queue.takeovers,
        )
    return data


def experiment_from_json(d: dict[str, Any]) -> ExperimentRecord:
    """The record :func:`experiment_json` encoded."""
    return ExperimentRecord(
        id=d["id"],
        name=d["name"],
        spec=ExperimentSpec.from_json(json.dumps(d["spec"])),
        state=ExperimentState(d["state"]),
        reason=d.get("reason") or "",
        message=d.get("message") or "",
        created_at=d.get("created_at") or 0.0,
        started_at=d.get("started_at"),
        finished_at=d.get("finished_at"),
        stop_requested=bool(d.get("stop_requested")),
        controller=d.get("controller"),
        heartbeat_at=d.get("heartbeat_at"),
        sampler_state=d.get("sampler_state") or {},
    )


def trial_json(t: TrialRecord) -> dict[str, Any]:
    """A trial as JSON."""
    return {
        "id": t.id,
        "experiment_id": t.experiment_id,
        "number": t.number,
        "params": dict(t.params),
        "state": t.state.value,
        "value": _num(t.value),
        "metrics": {
            k: {"min": _num(s.min), "max": _num(s.max), "latest": _num(s.latest)}
            for k, s in t.metrics.items()
        },
        "created_at": t.created_at,
        "started_at": t.started_at,
        "finished_at": t.finished_at,
        "message": t.message,
        "attempt": t.attempt,
        "attrs": dict(t.attrs),
        "workdir": t.workdir,
        "outputs": dict(t.outputs),
    }


def trial_from_json(d: dict[str, Any]) -> TrialRecord:
    """The record :func:`trial_json` encoded."""
    metrics = {
        k: MetricSummary(
            _unnum(s["min"]) or 0.0, _unnum(s["max"]) or 0.0, _unnum(s["latest"]) or 0.0
        )
        for k, s in (d.get("metrics") or {}).items()
    }
    return TrialRecord(
        id=d["id"],
        experiment_id=d["experiment_id"],
        number=d["number"],
        params=d["params"],
        state=TrialState(d["state"]),
        value=_unnum(d.get("value")),
        metrics=metrics,
        created_at=d.get("created_at") or 0.0,
        started_at=d.get("started_at"),
        finished_at=d.get("finished_at"),
        message=d.get("message") or "",
        attempt=d.get("attempt") or 1,
        attrs=d.get("attrs") or {},
        workdir=d.get("workdir"),
        outputs=d.get("outputs") or {},
    )


def observation_json(o: Observation) -> dict[str, Any]:
    """An observation as JSON."""
    return {
        "trial_id": o.trial_id,
        "metric": o.metric,
        "value": _num(o.value),
        "step": o.step,
        "time": o.time,
    }


def observation_from_json(d: dict[str, Any]) -> Observation:
    """The observation :func:`observation_json` encoded."""
    value = _unnum(d.get("value"))
    return Observation(
        d["trial_id"], d["metric"], math.nan if value is None else value, d.get("step"), d["time"]
    )


_KINDS: list[tuple[str, type[AutoMLError], int]] = [
    ("invalid", SpecError, 422),
    ("not_found", NotFoundError, 404),
    ("already_exists", AlreadyExistsError, 409),
    ("busy", ExperimentBusyError, 409),
    ("storage", StorageError, 503),
    ("conflict", AutoMLError, 409),
]


def status_of(exc: AutoMLError) -> int:
    """The HTTP status of an automl error."""
    for _, cls, status in _KINDS:
        if isinstance(exc, cls):
            return status
    return 409


def error_body(exc: AutoMLError) -> dict[str, Any]:
    """The JSON body that carries an automl error to the client."""
    kind = next(k for k, cls, _ in _KINDS if isinstance(exc, cls))
    body: dict[str, Any] = {"error": kind, "message": str(exc)}
    if isinstance(exc, SpecError):
        body["issues"] = [{"path": i.path, "message": i.message} for i in exc.issues]
    return body


def error_from_body(status: int, body: Any) -> AutoMLError:
    """The automl error a server's error reply stands for."""
    if not isinstance(body, dict):
        return AutoMLError(f"server answered {status}: {str(body)[:200]}")
    kind = body.get("error")
    message = str(body.get("message") or body.get("detail") or f"server answered {status}")
    if kind == "invalid":
        issues = [SpecIssue(i.get("path", ""), i.get("message", "")) for i in body["issues"]]
        return SpecError(issues)
    for k, cls, _ in _KINDS:
        if k == kind:
            return cls(message)
    return AutoMLError(message)
