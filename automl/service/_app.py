"""The REST API of ``automl server`` (FastAPI): experiments, trials, ask/tell, the queue.

Every route lives under ``/api/v1`` except ``/healthz``, ``/metrics`` and the OpenAPI pages
(``/docs``, ``/openapi.json``). The handlers call the same code as the CLI and
``automl.Client(store=...)``, so every way in says the same things with the same errors: an
automl error travels as ``{"error": kind, "message": ..., "issues": [...]}`` with 404 (unknown
experiment or trial), 409 (a name that exists, a running experiment, an ended trial), 422 (a bad
spec or argument, every issue with its field path) or 503 (the store is unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from automl.core import ExperimentSpec
from automl.errors import AutoMLError, SpecError
from automl.service._asktell import AskTell
from automl.service._auth import Guard, Tokens
from automl.service._remote import API, SPEC_JSON
from automl.service._wire import (
    error_body,
    experiment_json,
    observation_json,
    status_of,
    trial_json,
)
from automl.store import Store
from automl.store._queue import QueueInfo, QueueRepository

__all__ = ["MAX_BODY", "create_app"]

MAX_BODY = 1 << 20  # 1 MiB: a spec is a few kB


class _Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_trials: int | None = Field(default=None, ge=1)
    parallel_trials: int | None = Field(default=None, ge=1)
    max_failed_trials: int | None = Field(default=None, ge=0)
    priority: int | None = None


class _Steer(BaseModel):
    """The body of a steering call (docs/steering.md); each action reads its own fields."""

    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict)
    trial: str = ""
    reason: str = ""
    undo: bool = False
    new_name: str = ""
    spec: str | None = None
    max_trials: int | None = None
    parallel_trials: int | None = None
    max_failed_trials: int | None = None
    timeout: float | None = None
    trial_hours: float | None = None
    gpu_hours: float | None = None


class _Tell(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: dict[str, float] = Field(default_factory=dict)
    step: int | None = None
    final: bool = False


class _Fail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="failed", max_length=20000)


def create_app(
    store: str | Store,
    *,
    tokens: Tokens | None = None,
    max_body: int = MAX_BODY,
    runs_dir: str | Path = "automl-runs",
    sweep_s: float = 5.0,
) -> Any:
    """The ASGI app of the server (the FastAPI app wrapped in the auth and body guard).

    Args:
        store: Store URL or an open Store.
        tokens: Accepted bearer tokens; None accepts every request (loopback only).
        max_body: Largest request body in bytes (413 above it).
        runs_dir: Where trials keep their files (for stop's clean-up of a dead controller).
        sweep_s: How often asked trials past their timeout are failed.
    """
    from automl._client import Client

    # As many pooled connections as concurrent requests, so none opens a connection per call.
    st = store if isinstance(store, Store) else Store(store, pool_size=20)
    client = Client(st, runs_dir=runs_dir)
    queue = QueueRepository(st)
    asktell = AskTell(st)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def sweep() -> None:
            while True:
                await asyncio.sleep(sweep_s)
                with contextlib.suppress(Exception):  # a database blip must not end the loop
                    await run_in_threadpool(asktell.sweep)

        task = asyncio.create_task(sweep())
        try:
            yield
        finally:
            task.cancel()

    app = FastAPI(
        title="automl",
        version="1",
        summary="Hyperparameter tuning as a service: submit experiments, workers run them.",
        lifespan=lifespan,
    )
    metrics = _Metrics(st, queue)

    @app.exception_handler(AutoMLError)
    async def automl_error(request: Request, exc: AutoMLError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [
            {
                "path": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        body = {"error": "invalid", "message": "\n".join(_line(i) for i in issues)}
        return JSONResponse({**body, "issues": issues}, status_code=422)

    # -- health and metrics -----------------------------------------------------------------
    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: answers without touching the store (no token needed)."""
        return {"status": "ok"}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    def prometheus() -> Response:
        """Prometheus text format: queue depth, states, trial counts, takeovers, latencies."""
        data, ctype = metrics.render()
        return Response(data, media_type=ctype)

    # -- experiments ------------------------------------------------------------------------
    def exp_json(name: str) -> dict[str, Any]:
        e = client.get(name)
        return experiment_json(e, queue.info(e.id))

    @app.get(f"{API}/experiments", tags=["experiments"])
    def list_experiments() -> list[dict[str, Any]]:
        """Every experiment, oldest first."""
        return [experiment_json(e, queue.info(e.id)) for e in client.list()]

    @app.post(f"{API}/experiments", tags=["experiments"], status_code=201)
    async def submit(
        request: Request,
        queue_it: bool = Query(True, alias="queue", description="Queue it for the workers."),
        priority: int = Query(0, description="Higher runs first."),
    ) -> Response:
        """Submit an experiment: native or Katib YAML/JSON text as the body.

        Returns at once with the experiment in state Created (queued). With ``queue=false`` it is
        only stored (for ask/tell, or to run it elsewhere).
        """
        body = await request.body()
        ctype = request.headers.get("content-type", "")

        def work() -> dict[str, Any]:
            spec = _parse_body(body, ctype)
            e = client.submit(spec, priority=priority) if queue_it else client.create(spec)
            info = QueueInfo(queue_it, priority if queue_it else 0, None, None, 0)
            return experiment_json(e, info)

        # The hot path of a busy queue: no response-model pass over the spec, one encoding.
        return JSONResponse(await run_in_threadpool(work), status_code=201)

    @app.get(f"{API}/experiments/{{name}}", tags=["experiments"])
    def get_experiment(name: str) -> dict[str, Any]:
        """One experiment, with its spec and queue state."""
        return exp_json(name)

    @app.delete(f"{API}/experiments/{{name}}", tags=["experiments"], status_code=204)
    def delete_experiment(name: str) -> Response:
        """Delete an experiment with its trials (409 while a controller runs it)."""
        client.delete(name)
        return Response(status_code=204)

    @app.post(f"{API}/experiments/{{name}}:stop", tags=["experiments"])
    def stop_experiment(name: str) -> dict[str, Any]:
        """Stop it: its controller kills running trials (a queued one just stops)."""
        client.stop(name)
        return exp_json(name)

    @app.post(f"{API}/experiments/{{name}}:resume", tags=["experiments"])
    def resume_experiment(name: str, budgets: _Budgets | None = None) -> dict[str, Any]:
        """Queue it again, optionally raising its budgets (Katib's resumePolicy applies)."""
        b = budgets or _Budgets()
        e = client.requeue(
            name,
            max_trials=b.max_trials,
            parallel_trials=b.parallel_trials,
            max_failed_trials=b.max_failed_trials,
            priority=b.priority,
        )
        return experiment_json(e, queue.info(e.id))

    # -- steering (automl._client_steer: the same calls on the store) -------------------------
    @app.post(f"{API}/experiments/{{name}}:enqueue", tags=["steering"])
    def enqueue(name: str, body: _Steer) -> dict[str, Any]:
        """Run a configuration next (checked against the space)."""
        return trial_json(client.enqueue(name, body.params))

    @app.post(f"{API}/experiments/{{name}}:invalidate", tags=["steering"])
    def invalidate(name: str, body: _Steer) -> dict[str, Any]:
        """Exclude a finished trial from best and the search (``undo``: take it back)."""
        if body.undo:
            return trial_json(client.revalidate(name, body.trial))
        return trial_json(client.invalidate(name, body.trial, body.reason))

    @app.post(f"{API}/experiments/{{name}}:rerun", tags=["steering"])
    def rerun(name: str, body: _Steer) -> dict[str, Any]:
        """Run a trial's parameters again as a new trial."""
        return trial_json(client.rerun(name, body.trial))

    @app.post(f"{API}/experiments/{{name}}:budget", tags=["steering"])
    def budget(name: str, body: _Steer) -> dict[str, Any]:
        """Raise or lower budgets, also while it runs (applied at the controller's next turn)."""
        client.set_budget(
            name,
            max_trials=body.max_trials,
            parallel_trials=body.parallel_trials,
            max_failed_trials=body.max_failed_trials,
            timeout=body.timeout,
            trial_hours=body.trial_hours,
            gpu_hours=body.gpu_hours,
        )
        return exp_json(name)

    @app.post(f"{API}/experiments/{{name}}:fork", tags=["steering"])
    def fork(name: str, body: _Steer) -> dict[str, Any]:
        """A new experiment with the same spec (or ``spec``), its search warm-started."""
        spec = ExperimentSpec.from_json(body.spec) if body.spec else None
        f = client.fork(name, body.new_name, max_trials=body.max_trials, spec=spec)
        return {"experiment": exp_json(f.experiment.name), "kept": f.kept, "total": f.total}

    # -- trials -----------------------------------------------------------------------------
    @app.get(f"{API}/experiments/{{name}}/trials", tags=["trials"])
    def list_trials(name: str) -> list[dict[str, Any]]:
        """An experiment's trials in creation order."""
        return [trial_json(t) for t in client.trials(name)]

    @app.get(f"{API}/experiments/{{name}}/trials/{{trial_id}}", tags=["trials"])
    def get_trial(name: str, trial_id: str) -> dict[str, Any]:
        """One trial."""
        return trial_json(client.trial(name, trial_id))

    @app.get(f"{API}/experiments/{{name}}/observations", tags=["trials"])
    def list_observations(name: str) -> list[dict[str, Any]]:
        """Every metric observation of the experiment's trials."""
        return [observation_json(o) for o in client.observations(name)]

    @app.get(f"{API}/experiments/{{name}}/best", tags=["trials"])
    def best_trial(name: str) -> dict[str, Any] | None:
        """The best succeeded trial, or null."""
        t = client.best_trial(name)
        return None if t is None else trial_json(t)

    @app.post(f"{API}/experiments/{{name}}/trials:ask", tags=["ask and tell"], status_code=201)
    def ask(name: str) -> dict[str, Any]:
        """A new trial with suggested parameters, to run outside automl."""
        return trial_json(asktell.ask(name))

    @app.post(f"{API}/experiments/{{name}}/trials/{{trial_id}}:tell", tags=["ask and tell"])
    def tell(name: str, trial_id: str, body: _Tell) -> dict[str, Any]:
        """Report metrics of an asked trial (``final`` ends it); says if it should stop."""
        stop = asktell.tell(name, trial_id, body.metrics, step=body.step, final=body.final)
        return {"should_stop": stop, "trial": trial_json(asktell.trial(name, trial_id))}

    @app.post(f"{API}/experiments/{{name}}/trials/{{trial_id}}:fail", tags=["ask and tell"])
    def fail(name: str, trial_id: str, body: _Fail) -> dict[str, Any]:
        """End an asked trial as Failed."""
        asktell.fail(name, trial_id, body.reason)
        return trial_json(asktell.trial(name, trial_id))

    # -- the dashboard's read-only queries (automl dashboard --server) ----------------------
    @app.get(f"{API}/dashboard/{{method}}", tags=["dashboard"])
    def dashboard_query(method: str, args: str = "") -> Response:
        """One read-only query of the dashboard (``dashboard.remote``): ``args`` is JSON."""
        from dashboard.queries import Queries
        from dashboard.remote import METHODS, call

        if method not in METHODS:
            raise SpecError(f"no dashboard query {method!r}", path="method")
        try:
            body = call(Queries(st), method, args)
        except (ValueError, TypeError) as exc:
            raise SpecError(f"bad arguments: {exc}", path="args") from None
        return Response(content=body, media_type="application/json")

    # -- workers ----------------------------------------------------------------------------
    @app.get(f"{API}/workers", tags=["service"])
    def list_workers() -> list[dict[str, Any]]:
        """Controller workers whose lease is fresh, with the experiments each holds."""
        return [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "max_experiments": w.max_experiments,
                "started_at": w.started_at,
                "heartbeat_at": w.heartbeat_at,
                "experiments": w.experiments,
            }
            for w in queue.workers()
        ]

    app.state.store = st
    return Guard(app, tokens, max_body, observe=metrics.observe)


def _line(issue: dict[str, Any]) -> str:
    return f"{issue['path']}: {issue['message']}" if issue["path"] else str(issue["message"])


def _parse_body(body: bytes, ctype: str) -> ExperimentSpec:
    """A submitted document as a spec: native or Katib YAML/JSON, or automl's own spec JSON."""
    from automl.core import validate_spec
    from automl.spec import parse_spec
    from automl.spec._common import pydantic_issues

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("the body must be UTF-8 text (YAML or JSON)") from None
    if not text.strip():
        raise SpecError("the body is empty: send the experiment's YAML or JSON")
    if ctype.split(";")[0].strip() == SPEC_JSON:
        try:
            spec = ExperimentSpec.from_json(text)
        except ValidationError as exc:
            raise SpecError(pydantic_issues(exc)) from None
        return validate_spec(spec)
    return parse_spec(text, base_dir=os.getcwd(), filename="<request>")


class _Metrics:
    """Prometheus metrics: read from the store at scrape time, plus request latencies."""

    def __init__(self, store: Store, queue: QueueRepository) -> None:
        from prometheus_client import CollectorRegistry, Histogram

        self.registry = CollectorRegistry()
        self._queue = queue
        self._latency = Histogram(
            "automl_http_request_seconds",
            "REST request latency by method and route.",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(self)

    def observe(self, method: str, route: str, seconds: float) -> None:
        self._latency.labels(method, route).observe(seconds)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        from automl._turns import BUCKETS

        q = self._queue
        yield GaugeMetricFamily(
            "automl_queue_depth", "Queued experiments no worker holds yet.", value=q.depth()
        )
        by_state = GaugeMetricFamily(
            "automl_experiments", "Experiments by state.", labels=["state"]
        )
        for state, n in sorted(q.experiment_states().items()):
            by_state.add_metric([state], n)
        yield by_state
        trials = q.trial_states()
        total = sum(trials.values())
        active = trials.get("Created", 0) + trials.get("Running", 0)
        failed = trials.get("Failed", 0) + trials.get("MetricsUnavailable", 0)
        yield CounterMetricFamily("automl_trials_started", "Trials started (stored).", value=total)
        yield CounterMetricFamily(
            "automl_trials_finished", "Trials that ended, in any state.", value=total - active
        )
        yield CounterMetricFamily(
            "automl_trials_failed",
            "Trials that failed (Failed, MetricsUnavailable).",
            value=failed,
        )
        by_trial = GaugeMetricFamily("automl_trials", "Trials by state.", labels=["state"])
        for state, n in sorted(trials.items()):
            by_trial.add_metric([state], n)
        yield by_trial
        yield CounterMetricFamily(
            "automl_lease_takeovers",
            "Experiments a worker took over from a worker whose lease lapsed.",
            value=q.takeovers(),
        )
        yield GaugeMetricFamily(
            "automl_workers", "Controller workers with a fresh lease.", value=len(q.workers())
        )
        turns = q.turn_stats()
        buckets, running = [], 0
        for le, n in zip((*BUCKETS, float("inf")), turns["counts"], strict=True):
            running += n
            buckets.append(("+Inf" if le == float("inf") else repr(le), running))
        yield HistogramMetricFamily(
            "automl_controller_turn_seconds",
            "Controller turn latency: one pass of the loop that started trials or handled their "
            "events, without the wait for them (summed over every experiment's controllers).",
            buckets=buckets,
            sum_value=turns["sum"],
        )

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
