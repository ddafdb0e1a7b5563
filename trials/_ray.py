"""Ray executor: each trial runs as Ray tasks on a cluster; the controller and store stay here.

A trial is one Ray task (a distributed trial: one task per worker, in a placement group with a
bundle per worker) that runs either the command (``subprocess``, no shell, in its own process
group) or the Python objective (cloudpickled) on a worker node. The tasks are started by the
cluster's hub (a detached actor, one per cluster), so they outlive a controller that dies; the
task streams what the trial prints and reports to the hub, and the controller polls it every
tick, writes the trial's log here (``<runs_dir>/<experiment>/<trial>/trial.log``) and parses
metrics with the same collectors as local trials (StdOut regexes/filters, ``automl.report``
JSON lines), so intermediate values arrive while the trial runs.

Resources: ``cpu`` -> ``num_cpus``, ``gpu`` -> ``num_gpus`` (fractions share a device),
``memory`` -> ``memory``; ``executor.settings.resources`` adds custom Ray resources.

Stop: ``ray.cancel`` raises KeyboardInterrupt in the task, which kills the trial's process
group; after a grace period the task is force-cancelled (its worker killed; the trial's
processes die with it: a reaper process per worker kills the groups of its trials when the
worker is gone). A trial whose node or worker died fails, and is started again as a new
attempt while ``executor.max_retries`` allows; a trial that failed by itself is not retried.

A controller that died: ``automl resume`` adopts its trials (:meth:`RayExecutor.adopt`: the hub
hands over a trial's lines so far, then the rest and its end), so a trial that finished or still
runs is never run again. A trial the hub does not know (a local cluster that died with its
controller) runs again; every process of its attempt carries ``AUTOML_RAY_TRIAL=<mark>`` in its
environment and the ``started`` event stores the mark with the cluster's address, so
:meth:`RayExecutor.reap` and :func:`reap_ray` (``automl stop``) kill them on every node.

The code that runs on the workers lives in :mod:`trials._ray_worker` and goes to them by value:
a worker needs Ray, not this package, to run a command trial, and does not spend its first trial
importing automl.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import json
import logging
import os
import queue
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from automl.core import CollectorKind, ExperimentSpec
from automl.errors import SpecError
from trials._base import Executor, ExitStatus, TrialEvent, TrialExit, TrialRun, drain
from trials._collectors import PathMap
from trials._metrics import MetricLine, TextMetricParser, parse_report_line
from trials._ray_connect import (
    CONNECT_TIMEOUT as CONNECT_TIMEOUT,
)
from trials._ray_connect import (
    _by_value,
    _import_ray,
    _loopback,
    _reap_here,
    _reap_on_cluster,
    _same_address,
    probe,
)
from trials._ray_connect import reap_ray as reap_ray
from trials._ray_worker import (
    _TICK,
    HUB_NAME,
    HUB_NAMESPACE,
    _Hub,
    _rendezvous,
)
from trials._ray_worker import (
    MARK_ENV as MARK_ENV,  # re-exported: the mark every process of a trial attempt carries
)
from trials._template import render_command

__all__ = ["RayExecutor", "reap_ray"]

_GRACE = 2.0  # seconds between a cancel and a forced cancel (worker killed)
_SETTINGS = {
    "num_cpus": "CPUs of a local cluster started here (default: all)",
    "num_gpus": "GPUs of a local cluster started here (default: detected)",
    "resources": "custom Ray resources each trial (each worker) needs, {name: amount}",
    "placement_strategy": "PACK (default) or STRICT_PACK, for a distributed trial's workers",
    "runtime_env": "Ray runtime_env of the job (env_vars, working_dir, pip...)",
}
_STRATEGIES = ("PACK", "STRICT_PACK", "SPREAD", "STRICT_SPREAD")
_SUPPORTED_COLLECTORS = (CollectorKind.STDOUT, CollectorKind.PUSH)
# Errors after which a trial did not fail by itself: its node, raylet or worker died.
_INFRA_ERRORS = ("NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "OwnerDiedError")


_hub_lock = threading.Lock()
_hubs: dict[str, Any] = {}  # Ray job id -> the cluster's hub, as this connection reaches it


def _shared_hub(ray: Any) -> Any:
    """The cluster's trial hub (a detached actor, :class:`trials._ray_worker._Hub`).

    It owns the trials' tasks, so they outlive this driver, and keeps their lines and results
    until the controller that records them forgets them: a controller that dies loses nothing a
    new one cannot adopt. One per cluster, found by name by every controller.
    """
    _by_value(ray)  # a worker deserializing the handle would import its class's module
    job = ray.get_runtime_context().get_job_id()
    with _hub_lock:
        hub = _hubs.get(job)
        if hub is None:
            # restarted if its node dies (the trials it followed are then lost: run again)
            hub = (
                ray.remote(_Hub)
                .options(
                    name=HUB_NAME,
                    namespace=HUB_NAMESPACE,
                    lifetime="detached",
                    get_if_exists=True,
                    num_cpus=0,
                    max_concurrency=16,
                    max_restarts=-1,
                )
                .remote()
            )
            _hubs.clear()  # handles of an earlier connection
            _hubs[job] = hub
        return hub


# -- controller side --------------------------------------------------------------------------


@dataclass
class _Trial:
    run: TrialRun
    attempt: int
    key: str
    workdir: Path
    log: IO[bytes]
    tasks: int
    pg: Any = None
    deadline: float | None = None
    cancelled: bool = False
    timed_out: bool = False
    force_at: float | None = None
    retries: int = 0
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))


class RayExecutor(Executor):
    """Runs trials as tasks on a Ray cluster.

    Args:
        spec: The experiment spec: ``executor.address`` (an existing cluster's address,
            ``auto``, or None to start a local one), ``executor.max_retries`` and
            ``executor.settings`` (``num_cpus``, ``num_gpus`` of a local cluster;
            ``resources``: custom Ray resources per trial; ``placement_strategy``;
            ``runtime_env``), the trial template and its resources.
        runs_dir: Root of per-trial directories (``<runs_dir>/<experiment>/<trial>``): the
            trial's log is written here; the trial itself gets the same path on its node (a
            shared filesystem), or a temporary directory where that path cannot be made.
        objective: The Python objective of a function trial (cloudpickled to the workers);
            None: the template's command, or its importable ``function``.

    Raises:
        SpecError: Ray is not installed, the address cannot be reached (``executor.address``),
            an unknown or bad setting (``executor.settings.<name>``), a metrics collector the
            cluster cannot serve, or an objective that cannot be imported.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        runs_dir: Path,
        objective: Callable[..., Any] | None = None,
    ) -> None:
        self._spec = spec
        self._template = spec.trial_template
        self._runs_dir = Path(runs_dir).absolute()
        self._settings = dict(spec.executor.settings)
        self._check_settings()
        mc = spec.metrics_collector
        if mc.kind not in _SUPPORTED_COLLECTORS:
            raise SpecError(
                f"executor ray collects StdOut and Push (automl.report) metrics; got "
                f"{mc.kind.value!r}",
                path="metrics_collector.kind",
            )
        self._parse_stdout = mc.kind is CollectorKind.STDOUT
        self._parser = TextMetricParser(spec.objective.metrics, mc.filters)
        self._function: bytes | None = None
        res = self._template.resources
        if self._template.command is None or objective is not None:
            if res.processes_per_worker > 1:
                raise SpecError(
                    "a Python function trial runs one process per worker; got "
                    f"{res.processes_per_worker} (use a command trial with torchrun-style "
                    "processes)",
                    path="trial_template.resources.processes_per_worker",
                )
            objective = objective or self._import_objective()
        try:
            self._paths = PathMap(self._template.path_map)
        except ValueError as exc:
            raise SpecError(str(exc), path="trial_template.path_map") from exc
        address = spec.executor.address
        if address is None or _loopback(address):
            # Ray binds 127.0.0.1 only with this, read when ray is first imported (else it
            # listens on every interface and advertises the machine's routable address).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        self._ray = ray = _import_ray()
        _by_value(ray)
        self._owns = self._connect(address)
        gcs = str(ray.get_runtime_context().gcs_address)
        # what a later process connects to, to reap this executor's trials (see reap_ray)
        self._reach: dict[str, Any] = {
            "address": gcs if address in (None, "auto") else address,
            "gcs": gcs,
            "local": self._owns and address is None,  # dies with this process
        }
        if objective is not None:
            import ray.cloudpickle as cloudpickle

            self._function = cloudpickle.dumps(objective)  # type: ignore[no-untyped-call]
        self._hub = _shared_hub(ray)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}:{time.time()}"
        self._rdv = ray.remote(_rendezvous)
        self._events: queue.SimpleQueue[TrialEvent] = queue.SimpleQueue()
        self._trials: dict[str, _Trial] = {}
        self._by_key: dict[str, _Trial] = {}
        self._ended: dict[str, str] = {}  # trial id -> the hub key of its ended attempt
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="ray-monitor", daemon=True)
        self._monitor.start()

    # -- setup -------------------------------------------------------------------------------
    def _check_settings(self) -> None:
        s = self._settings
        for name in s:
            if name not in _SETTINGS:
                known = ", ".join(sorted(_SETTINGS))
                raise SpecError(
                    f"unknown Ray setting {name!r}; known: {known}",
                    path=f"executor.settings.{name}",
                )
        for name in ("num_cpus", "num_gpus"):
            v = s.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise SpecError(
                    f"must be a whole number >= 0; got {v!r}", path=f"executor.settings.{name}"
                )
        r = s.get("resources")
        if r is not None and (
            not isinstance(r, Mapping)
            or not all(
                isinstance(k, str)
                and isinstance(v, (int, float))
                and not isinstance(v, bool)
                and v > 0
                for k, v in r.items()
            )
        ):
            raise SpecError(
                f"must map resource names to positive amounts; got {r!r}",
                path="executor.settings.resources",
            )
        st = s.get("placement_strategy")
        if st is not None and st not in _STRATEGIES:
            raise SpecError(
                f"must be one of {', '.join(_STRATEGIES)}; got {st!r}",
                path="executor.settings.placement_strategy",
            )
        env = s.get("runtime_env")
        if env is not None and not isinstance(env, Mapping):
            raise SpecError(
                f"must be a mapping; got {env!r}", path="executor.settings.runtime_env"
            )

    def _import_objective(self) -> Callable[..., Any]:
        path = self._template.function
        if path is None:
            raise SpecError(
                "a Python function trial on Ray needs the objective passed in, or an importable "
                "trial_template.function",
                path="trial_template.function",
            )
        module, _, qualname = path.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise SpecError(
                f"cannot import the objective {path!r}: {exc}", path="trial_template.function"
            ) from exc
        if not callable(obj):
            raise SpecError(f"{path!r} is not callable", path="trial_template.function")
        return obj  # type: ignore[no-any-return]

    def _connect(self, address: str | None) -> bool:
        """Connect to (or start) the cluster; whether this executor made the connection.

        With no address in the spec, ``RAY_ADDRESS`` (as ``ray.init`` reads it; an automl
        worker sets it to its shared local cluster) names the cluster; without it, a local
        cluster starts in this process.
        """
        ray = self._ray
        if address is None and os.environ.get("RAY_ADDRESS"):
            address = os.environ["RAY_ADDRESS"]
        if ray.is_initialized():
            current = ray.get_runtime_context().gcs_address
            if address in (None, "auto") or _same_address(address, current):
                return False
            raise SpecError(
                f"this process is already connected to the Ray cluster at {current}; it cannot "
                f"also use {address!r}",
                path="executor.address",
            )
        kwargs: dict[str, Any] = {
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        if self._settings.get("runtime_env"):
            kwargs["runtime_env"] = dict(self._settings["runtime_env"])
        if address is None:
            kwargs.update(
                include_dashboard=False,
                num_cpus=self._settings.get("num_cpus"),
                num_gpus=self._settings.get("num_gpus"),
            )
        else:
            probe(address)
            kwargs["address"] = address
        # "Token authentication is enabled" is printed on every init: news to nobody here
        token_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
        level = token_log.level
        token_log.setLevel(logging.ERROR)
        try:
            ray.init(**kwargs)
        except Exception as exc:
            with contextlib.suppress(Exception):
                ray.shutdown()
            where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
            raise SpecError(
                f"cannot connect to {where}: {type(exc).__name__}: {exc}".strip(),
                path="executor.address",
            ) from exc
        finally:
            token_log.setLevel(level)
        return True

    # -- submit ------------------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        res = self._template.resources
        opts: dict[str, Any] = {
            "num_cpus": res.cpu if res.cpu is not None else res.processes_per_worker,
            "max_retries": 0,  # retries are ours: a new attempt, counted against max_retries
            "retry_exceptions": False,
        }
        if res.gpu:
            opts["num_gpus"] = res.gpu
            if self._template.warm is not None:
                # Ray retires a GPU task's worker after one call by default (to free what the
                # task allocated); a warm trial allocates in its own forked process, so keep
                # the worker and its fork server for the next trial.
                opts["max_calls"] = 0
        if res.memory_bytes:
            opts["memory"] = res.memory_bytes
        if self._settings.get("resources"):
            opts["resources"] = dict(self._settings["resources"])
        return opts

    def _bundle(self) -> dict[str, float]:
        opts = self._options()
        b: dict[str, float] = {"CPU": float(opts["num_cpus"])}
        if "num_gpus" in opts:
            b["GPU"] = float(opts["num_gpus"])
        if "memory" in opts:
            b["memory"] = float(opts["memory"])
        b.update({k: float(v) for k, v in opts.get("resources", {}).items()})
        return {k: v for k, v in b.items() if v > 0}

    def _job(self, run: TrialRun, attempt: int, workdir: Path) -> dict[str, Any]:
        t = self._template
        res = t.resources
        checkpoints = {
            k: str(run.attrs[k])
            for k in ("checkpoint_dir", "parent_checkpoint_dir")
            if run.attrs.get(k)
        }
        job: dict[str, Any] = {
            "attempt": attempt,
            "mark": self._mark(f"{run.trial_id}#{attempt}"),
            "trial_dir": str(workdir),
            "workers": res.workers,
            "processes_per_worker": res.processes_per_worker,
            "worker": 0,
            "info": {
                "id": run.trial_id,
                "experiment": run.experiment,
                "number": run.number,
                "params": dict(run.params),
                **checkpoints,
            },
        }
        if self._function is not None:
            job.update(
                kind="function",
                function=self._function,
                metric=self._spec.objective.metric,
                sys_path=[p for p in sys.path if p],
                preload=list(t.warm or ()),
            )
            return job
        argv, extra_env = render_command(t, run.params, {"Name": run.trial_id})
        env = {k: self._paths(v) for k, v in extra_env.items()}
        env.update({"AUTOML_TRIAL_NAME": run.trial_id, "KATIB_TRIAL_NAME": run.trial_id})
        env.update(
            {
                {"checkpoint_dir": "AUTOML_CHECKPOINT_DIR"}.get(
                    k, "AUTOML_PARENT_CHECKPOINT_DIR"
                ): v
                for k, v in checkpoints.items()
            }
        )
        workdir_tpl = self._paths(t.workdir) if t.workdir else None
        job.update(
            kind="command",
            argv=[self._paths(a) for a in argv],
            env=env,
            cwd=str(Path(workdir_tpl).absolute()) if workdir_tpl else str(Path.cwd()),
        )
        if t.warm is not None:
            from trials._warm import SERVER_SCRIPT

            job["warm"] = {"preload": list(t.warm), "server": SERVER_SCRIPT}
        return job

    def _mark(self, key: str) -> str:
        return f"{self._owner}/{key}"

    def submit(self, run: TrialRun) -> None:
        """Start the trial's task(s) on the cluster; returns at once."""
        self._start(run, run.attempt, retries=0)

    def _start(self, run: TrialRun, attempt: int, retries: int) -> None:
        workdir = self._runs_dir / run.experiment / run.trial_id
        if workdir.exists() and attempt > 1:
            old = workdir.with_name(f"{run.trial_id}.attempt{attempt - 1}")
            shutil.rmtree(old, ignore_errors=True)
            workdir.rename(old)
        workdir.mkdir(parents=True, exist_ok=True)
        log = open(workdir / "trial.log", "ab")  # noqa: SIM115 - closed when the trial ends
        key = f"{run.trial_id}#{attempt}"
        job = self._job(run, attempt, workdir)
        res = self._template.resources
        opts = self._options()
        if job["kind"] == "command":
            log.write(f"$ {' '.join(job['argv'])}\n".encode())
        log.write(f"[automl] ray attempt {attempt}: {json.dumps(opts, sort_keys=True)}\n".encode())
        log.flush()
        pg = None
        tasks: list[tuple[dict[str, Any], dict[str, Any]]] = []
        master = None
        if res.distributed:
            from ray.util.placement_group import placement_group
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            strategy = self._settings.get("placement_strategy", "PACK")
            bundles = [self._bundle() for _ in range(res.workers)]
            pg = placement_group(bundles, strategy=strategy, name=f"automl-{key}")
            log.write(f"[automl] placement group {strategy}: {bundles}\n".encode())
            log.flush()

            def at(i: int) -> Any:
                return PlacementGroupSchedulingStrategy(
                    placement_group=pg, placement_group_bundle_index=i
                )

            master = self._rdv.options(num_cpus=0, scheduling_strategy=at(0)).remote()
            task_opts = {k: v for k, v in opts.items() if k != "resources"}
            task_opts["resources"] = dict(opts.get("resources", {}))
            for i in range(res.workers):
                tasks.append(({**job, "worker": i}, {**task_opts, "scheduling_strategy": at(i)}))
        else:
            tasks.append((job, opts))
        # The hub starts the tasks: owned by it, they outlive this controller.
        self._hub.start.remote(self._owner, key, tasks, self._hub, master)
        timeout = self._template.timeout
        tr = _Trial(
            run,
            attempt,
            key,
            workdir,
            log,
            len(tasks),
            pg=pg,
            deadline=time.monotonic() + timeout if timeout is not None else None,
            retries=retries,
        )
        with self._lock:
            self._trials[run.trial_id] = tr
            self._by_key[key] = tr

    # -- watch -------------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._closed.is_set():
            try:
                self._tick()
            except Exception as exc:  # a lost connection must not kill the monitor silently
                logging.getLogger(__name__).warning("ray executor: %s", exc)
                self._closed.wait(_TICK)

    def _tick(self) -> None:
        with self._lock:
            trials = list(self._trials.values())
        if not trials:
            self._closed.wait(_TICK)
            return
        # The hub waits up to a tick for a task to end; lines come after the end check, so a
        # finished trial's lines are all here before its end.
        items, ended, failing = self._ray.get(self._hub.poll.remote(self._owner, _TICK))
        for key, rank, kind, payload in items:
            tr = self._by_key.get(key)
            if tr is not None:
                self._take(tr, rank, kind, payload)
        now = time.monotonic()
        for tr in trials:
            if tr.key in ended:
                self._finish(tr, ended[tr.key])
                continue
            if tr.key in failing and not tr.cancelled:
                tr.cancelled = True  # one worker of a distributed trial failed: stop the rest
                self._cancel_refs(tr, now)
            if tr.deadline is not None and now >= tr.deadline and not tr.timed_out:
                tr.timed_out = True
                self._cancel_refs(tr, now)
            if tr.force_at is not None and now >= tr.force_at:
                tr.force_at = None
                self._hub.cancel.remote(tr.key, True)

    def _take(self, tr: _Trial, rank: int, kind: str, payload: Any) -> None:
        tid = tr.run.trial_id
        many = self._template.resources.distributed
        if kind == "out":
            line = str(payload)
            tr.log.write(f"{f'[rank {rank}] ' if many else ''}{line}\n".encode())
            tr.tail.append(line)
            if self._parse_stdout and rank == 0:
                self._emit(tid, self._parser.parse(line))
        elif kind == "report" and rank == 0:
            self._emit(tid, parse_report_line(str(payload)))
        elif kind == "metrics":
            step, values = payload
            self._emit(tid, MetricLine(dict(values), step))
        elif kind == "started" and rank == 0:
            details = dict(payload)
            details["workdir"] = str(tr.workdir)
            details["ray_address"] = self._reach["gcs"]
            worker = details.pop("worker", None)
            details["ray"] = {
                **self._reach,
                "mark": self._mark(tr.key),
                "node_id": details["node_id"],
                "pids": [worker] if worker else [],
            }
            tr.log.write(
                f"[automl] running on node {details['node_ip']} ({details['node_id'][:12]}), "
                f"pid {details['pid']}, GPUs {details['gpu_ids']}\n".encode()
            )
            self._events.put(TrialEvent(tid, started=details))
        tr.log.flush()

    def _emit(self, trial_id: str, parsed: MetricLine | None) -> None:
        if parsed is not None and parsed.values:
            self._events.put(TrialEvent(trial_id, metrics=parsed.values, step=parsed.step))

    def _finish(self, tr: _Trial, outcomes: list[dict[str, Any]]) -> None:
        ray = self._ray
        infra: str | None = None
        failure: str | None = None
        stopped = False
        self._ended[tr.run.trial_id] = tr.key  # forgotten in the hub once the store has it
        for o in outcomes:
            if "exc" in o:
                name, msg = str(o["exc"]), str(o["message"])
                causes = set(o["mro"])
                if "TaskCancelledError" in causes:
                    continue
                if causes & set(_INFRA_ERRORS):
                    infra = infra or f"{name}: {msg}"
                else:
                    failure = failure or f"{name}: {msg}"
                continue
            res = o["ok"]
            if res.get("stopped"):
                stopped = True
            elif res.get("error"):
                failure = failure or str(res["error"])
            elif res.get("code"):
                code = int(res["code"])
                how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                tail = "\n".join(tr.tail)
                failure = failure or (f"{how}; last output:\n{tail}" if tail else how)
        if tr.pg is not None:
            with contextlib.suppress(Exception):
                ray.util.remove_placement_group(tr.pg)
        with self._lock:
            self._by_key.pop(tr.key, None)
            if self._trials.get(tr.run.trial_id) is tr:
                del self._trials[tr.run.trial_id]
        if tr.cancelled and not (infra or failure):
            result = TrialExit(ExitStatus.CANCELLED, "cancelled")
        elif tr.timed_out:
            result = TrialExit(
                ExitStatus.TIMED_OUT,
                f"killed after the trial timeout ({self._template.timeout:g} s)",
            )
        elif stopped or (tr.cancelled and not infra):
            result = TrialExit(ExitStatus.CANCELLED, "stopped")
        elif infra is not None:
            if tr.retries < self._spec.executor.max_retries and not self._closed.is_set():
                tr.log.write(
                    f"[automl] attempt {tr.attempt} lost its node or worker ({infra}); starting "
                    f"attempt {tr.attempt + 1}\n".encode()
                )
                tr.log.close()
                self._start(tr.run, tr.attempt + 1, tr.retries + 1)
                return
            retried = f" (after {tr.retries} retries)" if tr.retries else ""
            # Not the trial's fault: the controller runs it again as a new trial, up to
            # executor.max_preemptions times.
            result = TrialExit(
                ExitStatus.PREEMPTED, f"the trial's node or worker died{retried}: {infra}"
            )
        elif failure is not None:
            result = TrialExit(ExitStatus.FAILED, failure)
        else:
            result = TrialExit(ExitStatus.COMPLETED)
        tr.log.write(f"[automl] {result.status.value}{': ' if result.message else ''}".encode())
        tr.log.write(f"{result.message.splitlines()[0] if result.message else ''}\n".encode())
        tr.log.close()
        self._events.put(TrialEvent(tr.run.trial_id, exit=result))

    def _cancel_refs(self, tr: _Trial, now: float) -> None:
        self._hub.cancel.remote(tr.key, False)
        tr.force_at = now + _GRACE

    # -- interface ---------------------------------------------------------------------------
    def poll(self, timeout: float) -> list[TrialEvent]:
        """Events since the last poll."""
        return drain(self._events, timeout)

    def cancel(self, trial_id: str) -> None:
        """Cancel the trial's tasks.

        Its processes get SIGTERM, then SIGKILL; the worker is force-killed if the task has
        not ended after a grace period.
        """
        with self._lock:
            tr = self._trials.get(trial_id)
        if tr is not None and not tr.cancelled:
            tr.cancelled = True
            self._cancel_refs(tr, time.monotonic())

    def recorded(self, trial_id: str) -> None:
        """The store has the trial's end: the hub may drop its lines and results."""
        key = self._ended.pop(trial_id, None)
        if key is not None:
            with contextlib.suppress(Exception):
                self._hub.forget.remote(key)

    def adopt(self, run: TrialRun, runner: Mapping[str, Any]) -> bool:
        """Follow a trial a dead controller left on this cluster, found in the hub by its id.

        Its lines so far are read again (``trial.log`` is rewritten, its metrics arrive as
        events again), then the rest as the trial goes on, and its end. False when the hub does
        not know it: the trial ran on a local cluster that died with its controller, on
        another cluster, or the hub was restarted; the caller runs it again.
        """
        info = runner.get("ray")
        if isinstance(info, Mapping) and (
            info.get("local") or not _same_address(str(info.get("gcs", "")), self._reach["gcs"])
        ):
            return False
        try:
            found = self._ray.get(self._hub.adopt.remote(run.trial_id, self._owner), timeout=60)
        except Exception:
            return False
        if found is None:
            return False
        key, history = found
        attempt = int(str(key).rsplit("#", 1)[1])
        workdir = self._runs_dir / run.experiment / run.trial_id
        workdir.mkdir(parents=True, exist_ok=True)
        log = open(workdir / "trial.log", "wb")  # noqa: SIM115 - closed when the trial ends
        log.write(f"[automl] adopted ray attempt {attempt} from a controller that died\n".encode())
        timeout = self._template.timeout
        tr = _Trial(
            run,
            attempt,
            key,
            workdir,
            log,
            max(1, self._template.resources.workers),
            deadline=time.monotonic() + timeout if timeout is not None else None,
        )
        with self._lock:
            self._trials[run.trial_id] = tr
            self._by_key[key] = tr
            for _, rank, kind, payload in history:
                self._take(tr, rank, kind, payload)
        return True

    def reap(self, runner: Mapping[str, Any]) -> None:
        """Kill a trial a dead controller left on the cluster, from what ``started`` reported.

        Every process of the trial attempt (found by its mark, on every live node) is killed;
        see :func:`reap_ray`. A runner from another cluster than this executor's is reaped
        only on this machine.
        """
        info = runner.get("ray")
        if not isinstance(info, Mapping) or not info.get("mark"):
            return
        if info.get("local") or not _same_address(str(info.get("gcs", "")), self._reach["gcs"]):
            _reap_here(runner, info)
            return
        _reap_on_cluster(self._ray, info)

    def close(self) -> None:
        """Cancel what still runs, wait for it to end, and disconnect.

        A local cluster started here is shut down.
        """
        with self._lock:
            trials = list(self._trials.values())
        for tr in trials:
            self.cancel(tr.run.trial_id)
        end = time.monotonic() + _GRACE + 3
        while time.monotonic() < end:
            with self._lock:
                if not self._trials:
                    break
            time.sleep(_TICK)
        self._closed.set()
        self._monitor.join(timeout=5)
        with self._lock:
            left = list(self._trials.values())
        for tr in left:
            with contextlib.suppress(Exception):
                self._hub.cancel.remote(tr.key, True)
                self._hub.forget.remote(tr.key)
            with contextlib.suppress(Exception):
                tr.log.close()
        if self._owns:
            self._ray.shutdown()
