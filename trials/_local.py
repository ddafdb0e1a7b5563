"""Local process executor: each trial is a subprocess run from an argv template, without a shell.

Per trial: its own output directory (``AUTOML_TRIAL_DIR``) holding ``trial.log`` (stdout and
stderr), ``metrics.jsonl`` (what :func:`automl.report` wrote) and the supervisor's
``supervisor.pid`` and ``exit_status`` (:mod:`trials._supervise`), its own process group (cancel
and timeout kill the whole group), and a per-trial timeout.

Trials outlive their controller: output goes to files, not pipes, and the executor follows the
files. A new controller adopts (:meth:`LocalProcessExecutor.adopt`) a trial that a dead one left
running (or that finished meanwhile) and reads it to its end, instead of running it again.

Collectors: StdOut (followed in ``trial.log``), Push (``automl.report``, followed), and the ones
read at the end (:mod:`trials._local_collect`). Katib paths: :mod:`trials._local_paths`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from automl._report import REPORT_FILE_ENV, STOP_FILE_ENV, TRIAL_ENV
from automl.core import CollectorKind, ExperimentSpec
from automl.errors import SpecError
from trials._base import Executor, ExitStatus, TrialEvent, TrialExit, TrialRun, drain
from trials._collectors import KATIB_TFEVENT_DIR, PathMap, collector_package
from trials._gpu import (
    Allocation,
    FreeMemory,
    GpuDevice,
    Request,
)
from trials._launch import free_port, nproc, python_command, torchrun_argv, torchrun_env
from trials._local_checks import check_local_resources, not_runnable
from trials._local_collect import EndCollectors, Proc
from trials._local_paths import PER_TRIAL_KINDS, collector_dir, local_notice
from trials._metrics import MetricLine, TextMetricParser, parse_report_line
from trials._supervise import (
    EXIT_FILE,
    PID_FILE,
    decode_status,
    descendant_groups,
    group_alive,
    on_exit,
    process_start_time,
    read_pid,
    reap_runner,
    signal_group,
    supervised_argv,
    supervisor_state,
)
from trials._template import render_command, render_text
from trials._warm import WarmPool, warm_program

__all__ = [
    "LocalProcessExecutor",
    "check_local_resources",
    "local_notice",
    "process_start_time",
    "reap_runner",
]

#: Trial attributes (set by population-based training) exported to the trial's environment.
CHECKPOINT_ENV = {
    "checkpoint_dir": "AUTOML_CHECKPOINT_DIR",
    "parent_checkpoint_dir": "AUTOML_PARENT_CHECKPOINT_DIR",
}
_NOT_STARTED = TrialExit(ExitStatus.CANCELLED, "cancelled before it started (it waited for room)")
_GRACE = 1.0  # seconds between SIGTERM and SIGKILL: a stopped trial is gone within a second
_TICK = 0.05  # how often logs and metrics files are read: an early stop lands within ~0.1 s
_START_WAIT = 2.0  # seconds an adopter waits for a just-started supervisor to write its pid
_NEEDS = {
    CollectorKind.TENSORFLOW_EVENT: "tensorboard",
    CollectorKind.PROMETHEUS: "prometheus_client",
}
_STOP_FILE = "stop"  # created before a stopped trial is signalled: automl.should_stop() sees it
_OURS = b"[automl] "  # lines the executor writes into trial.log; never parsed as metrics


class LocalProcessExecutor(EndCollectors, Executor):
    """Runs each trial's command as a local process.

    ``python`` and ``python3`` at the head of a command resolve to the interpreter running the
    controller, so trials see the same environment.

    Args:
        spec: The experiment spec (template, collector, objective metrics).
        runs_dir: Root of per-trial output directories (``<runs_dir>/<experiment>/<trial>``).
        cwd: Working directory of trial commands (the template's ``workdir`` wins).
        gpus: The GPUs trials may use (default: discovered, see :func:`trials.discover_gpus`);
            read only when the template asks for ``resources.gpu``.
        cpus: Cores trials may hold together when ``resources.cpu`` is set (default:
            ``executor.settings.cpus``, else ``os.cpu_count()``).
        free_memory: Reads the devices' free memory now, for ``resources.gpu_memory`` (default:
            the discovering backend's reader when ``gpus`` is not given, else none: the
            ``memory_free`` of ``gpus`` is used as it is).

    Resources: with ``resources.gpu`` each trial gets its devices in ``CUDA_VISIBLE_DEVICES``
    (fractions packed best-fit onto shared devices, never over a device's share or its live free
    memory, see :class:`trials.ResourceAllocator`);
    with ``resources.cpu`` the running trials' cores never exceed ``cpus``. A trial that does not
    fit waits: :meth:`capacity` tells the controller, and one submitted anyway starts when
    another ends. ``processes_per_worker`` > 1 runs the trial's Python program under torchrun.

    Attributes:
        notice: One line on what running the trials locally means (image not pulled, paths
            mapped), or None for a plain local command. It is also the first line of every
            trial's log.

    Raises:
        SpecError: The collector needs a package that is not installed (tensorboard for
            TensorFlowEvent, prometheus-client for PrometheusMetric), a path map source is
            not absolute, the resources can never fit this machine (more GPUs or GPU memory
            than it has, more cores than ``cpus``), or a distributed trial's command is not a
            Python program.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        runs_dir: Path,
        cwd: Path | None = None,
        *,
        gpus: Sequence[GpuDevice] | None = None,
        cpus: float | None = None,
        free_memory: FreeMemory | None = None,
    ) -> None:
        self._spec = spec
        self._template = spec.trial_template
        self._runs_dir = Path(runs_dir).absolute()  # trials run in their workdir
        mc = spec.metrics_collector
        self._collector = mc
        missing = collector_package(_NEEDS[mc.kind]) if mc.kind in _NEEDS else None
        if missing:
            raise SpecError(
                f"the {mc.kind.value} collector needs the {missing!r} package: "
                f"pip install {missing}",
                path="metrics_collector.kind",
            )
        try:
            self._paths = PathMap(self._template.path_map)
        except ValueError as exc:
            raise SpecError(str(exc), path="trial_template.path_map") from exc
        created: list[str] = []
        for target in self._paths.entries.values():
            if not os.path.exists(target):
                try:
                    Path(target).mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise SpecError(
                        f"cannot create the mapped directory {target}: {exc.strerror or exc}",
                        path="trial_template.path_map",
                    ) from exc
                created.append(target)
        workdir = self._paths(self._template.workdir) if self._template.workdir else None
        self._cwd = Path(workdir) if workdir else (cwd or Path.cwd())
        self._collector_dir = collector_dir(spec)
        self.notice: str | None = local_notice(spec, created)
        self._parser = TextMetricParser(spec.objective.metrics, mc.filters)
        self._request = Request.of(self._template.resources)
        self._allocator = check_local_resources(spec, gpus, cpus, free_memory=free_memory)
        warm = self._template.warm
        # One spare forked trial process per trial that may run at once: a wave starts at once.
        spares = max(1, min(spec.parallel_trial_count, 32))
        self._warm = WarmPool(warm, spares) if warm is not None else None
        if self._warm is not None:
            self._warm.start_soon()
        self._waiting: collections.deque[TrialRun] = collections.deque()  # submitted, no room
        self._events: queue.SimpleQueue[TrialEvent] = queue.SimpleQueue()
        self._procs: dict[str, Proc] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._wake = threading.Event()  # a look now, not at the next tick (see _follow)
        self._monitor = threading.Thread(target=self._watch, name="trial-monitor", daemon=True)
        self._monitor.start()

    # -- resources ---------------------------------------------------------------------------
    def capacity(self) -> int | None:
        """Trials that could start now (free devices and cores); None without a limit."""
        if self._allocator is None:
            return None
        with self._lock:
            waiting = len(self._waiting)
        return max(0, self._allocator.capacity(self._request) - waiting)

    def submit(self, run: TrialRun) -> None:
        """Start the trial's process, or queue it until its devices and cores are free."""
        if self._allocator is None:
            self._launch(run, None)
            return
        with self._lock:
            alloc = (
                None if self._waiting else self._allocator.allocate(run.trial_id, self._request)
            )
            if alloc is None:  # first come, first served: none overtakes a waiting trial
                self._waiting.append(run)
                return
        self._launch(run, alloc)

    def _start_waiting(self) -> None:
        """Start queued trials, in order, while they fit."""
        assert self._allocator is not None
        while True:
            with self._lock:
                if not self._waiting:
                    return
                run = self._waiting[0]
                alloc = self._allocator.allocate(run.trial_id, self._request)
                if alloc is None:
                    return
                self._waiting.popleft()
            self._launch(run, alloc)

    def _release(self, trial_id: str) -> None:
        if self._allocator is not None:
            self._allocator.release(trial_id)

    def _resource_env(self, env: dict[str, str], alloc: Allocation | None) -> dict[str, str]:
        if alloc is not None and self._request.gpu > 0:
            env["CUDA_VISIBLE_DEVICES"] = alloc.cuda_visible_devices
            env["AUTOML_GPU_UUIDS"] = ",".join(alloc.uuids)
            # NVML and nvidia-smi number devices in PCI order; CUDA's default order may differ.
            env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        if alloc is not None and alloc.cpu is not None:
            env["AUTOML_CPUS"] = f"{alloc.cpu:g}"
        return env

    # -- submit ------------------------------------------------------------------------------
    def _metadata(self, run: TrialRun) -> dict[str, str]:
        manifest = self._template.manifest or {}
        out = {
            "Name": run.trial_id,
            "Namespace": run.namespace or "default",
            "Kind": str(manifest.get("kind", "Job")),
            "APIVersion": str(manifest.get("apiVersion", "batch/v1")),
        }
        md = manifest.get("metadata")
        if isinstance(md, dict):  # ${trialSpec.Labels[k]} and ${trialSpec.Annotations[k]}
            for fld, key in (("labels", "Labels"), ("annotations", "Annotations")):
                items = md.get(fld)
                if isinstance(items, dict):
                    out.update({f"{key}[{k}]": str(v) for k, v in items.items()})
        return out

    def _trial_paths(
        self, run: TrialRun, workdir: Path, meta: Mapping[str, str], *, prepare: bool = True
    ) -> tuple[PathMap, Path | None, str | None]:
        """The trial's path map, its local collector path, and a log line on the mapping.

        The collector's directory gets a per-trial target (``<mapped dir>/<trial>``, or
        ``<trial dir>/<dir>`` when unmapped), created empty, so parallel trials never share a
        metrics file. ``prepare=False`` (an adopted trial) only computes the paths.
        """
        mc = self._collector
        paths = self._paths
        note = None
        if self._collector_dir is not None:
            d = self._collector_dir
            if paths.covering(d) is not None:
                target = Path(paths(d)) / run.trial_id
                if prepare and target.exists() and run.attempt > 1:
                    old = target.with_name(f"{run.trial_id}.attempt{run.attempt - 1}")
                    shutil.rmtree(old, ignore_errors=True)
                    target.rename(old)
            else:
                target = workdir / d.lstrip("/")
            if prepare:
                target.mkdir(parents=True, exist_ok=True)
            paths = paths.with_entry(d, target)
            note = f"metrics path {d} -> {target} (per trial)"
        raw = mc.path
        if mc.kind is CollectorKind.TENSORFLOW_EVENT and not raw:
            raw = KATIB_TFEVENT_DIR if self._template.manifest is not None else str(workdir)
        if not raw or mc.kind not in PER_TRIAL_KINDS:
            return paths, None, note
        rendered = paths(render_text(raw, self._template, run.params, meta))
        path = Path(rendered)
        if not path.is_absolute():
            path = self._cwd / path
        return paths, path, note

    def _fail_at_start(self, run: TrialRun, log: IO[bytes], message: str) -> None:
        log.write(f"[automl] {message}\n".encode())
        log.close()
        self._release(run.trial_id)
        self._events.put(TrialEvent(run.trial_id, exit=TrialExit(ExitStatus.FAILED, message)))

    def _trial_env(
        self,
        run: TrialRun,
        workdir: Path,
        paths: PathMap,
        extra_env: Mapping[str, str],
        collector_path: Path | None,
    ) -> dict[str, str]:
        env = dict(os.environ)
        env.update({k: paths(v) for k, v in extra_env.items()})
        checkpoints = {k: str(run.attrs[k]) for k in CHECKPOINT_ENV if run.attrs.get(k)}
        if "checkpoint_dir" not in checkpoints:
            # Every trial gets one; a preempted trial's rerun gets its chain's, to resume from.
            root = str(run.attrs.get("resumes") or run.trial_id)
            checkpoints["checkpoint_dir"] = str(
                self._runs_dir / run.experiment / root / "checkpoint"
            )
        env.update({CHECKPOINT_ENV[k]: v for k, v in checkpoints.items()})
        env.update(
            {
                REPORT_FILE_ENV: str(workdir / "metrics.jsonl"),
                STOP_FILE_ENV: str(workdir / _STOP_FILE),
                TRIAL_ENV: json.dumps(
                    {
                        "id": run.trial_id,
                        "experiment": run.experiment,
                        "number": run.number,
                        "params": dict(run.params),
                        "workdir": str(workdir),
                        **checkpoints,
                    }
                ),
                "AUTOML_TRIAL_DIR": str(workdir),
                "AUTOML_ARTIFACT_DIR": str(workdir / "artifacts"),  # automl.save_model
                "AUTOML_TRIAL_NAME": run.trial_id,
                "KATIB_TRIAL_NAME": run.trial_id,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if collector_path is not None:
            env["AUTOML_METRICS_PATH"] = str(collector_path)
        return env

    def _workdir(self, run: TrialRun) -> Path:
        return self._runs_dir / run.experiment / run.trial_id

    def _launch(self, run: TrialRun, alloc: Allocation | None) -> None:
        """Start the trial under its supervisor; a command that cannot start fails the trial."""
        workdir = self._workdir(run)
        if workdir.exists() and run.attempt > 1:
            # A trial whose fate could not be known runs again: keep the old attempt's files.
            old = workdir.with_name(f"{run.trial_id}.attempt{run.attempt - 1}")
            shutil.rmtree(old, ignore_errors=True)
            workdir.rename(old)
        workdir.mkdir(parents=True, exist_ok=True)
        for stale in (_STOP_FILE, EXIT_FILE, PID_FILE):  # a run's fate is its own
            with contextlib.suppress(FileNotFoundError):
                (workdir / stale).unlink()
        report_path = workdir / "metrics.jsonl"
        report_path.touch()
        meta = self._metadata(run)
        log = open(workdir / "trial.log", "ab")  # noqa: SIM115 - closed below
        try:
            try:
                paths, collector_path, path_note = self._trial_paths(run, workdir, meta)
            except OSError as exc:
                self._fail_at_start(
                    run, log, f"cannot prepare the metrics directory: {exc.strerror or exc}"
                )
                return
            argv, extra_env = render_command(self._template, run.params, meta)
            argv = [paths(a) for a in argv]
            if argv and argv[0] in ("python", "python3"):
                argv[0] = sys.executable
            env = self._trial_env(run, workdir, paths, extra_env, collector_path)
            env = self._resource_env(env, alloc)
            if self._template.resources.distributed:
                program = python_command(argv)
                if program is not None:  # checked on the template; a value cannot change it
                    argv = torchrun_argv(program, nproc(self._template.resources), free_port())
                    env = torchrun_env(env)
            if self.notice:
                log.write(f"[automl] {self.notice}\n".encode())
            if path_note:
                log.write(f"[automl] {path_note}\n".encode())
            log.write(f"[automl] $ {' '.join(argv)}\n".encode())
            log.flush()
            if self._collector.kind is CollectorKind.CUSTOM and not self._custom_argv():
                self._fail_at_start(
                    run,
                    log,
                    "the Custom metrics collector container has no command: its image's "
                    "entrypoint cannot run locally; give "
                    "metricsCollectorSpec.collector.customCollector a command (and args)",
                )
                return
            problem = not_runnable(argv[0] if argv else "", self._cwd, env)
            if problem:
                self._fail_at_start(run, log, problem)
                return
            program = warm_program(argv) if self._warm is not None else None
            if program is not None and not self._template.resources.distributed:
                assert self._warm is not None
                log.flush()
                pid = self._warm.spawn(program, env, self._cwd, workdir)
                if pid is not None:
                    self._follow_warm(run, pid, workdir, report_path, paths, collector_path, env)
                    return
                log.write(
                    f"[automl] warm start unavailable: {self._warm.problem}; cold start\n".encode()
                )
                log.flush()
            try:
                proc = subprocess.Popen(
                    supervised_argv(argv, workdir),
                    cwd=self._cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                self._fail_at_start(run, log, f"cannot start {argv[0]!r}: {exc.strerror or exc}")
                return
            offset = log.tell()
        finally:
            log.close()
        timeout = self._template.timeout
        p = Proc(
            run,
            proc,
            proc.pid,
            workdir,
            report_path,
            time.monotonic() + timeout if timeout is not None else None,
            paths=paths,
            collector_path=collector_path,
        )
        p.log_offset = offset
        with self._lock:
            self._procs[run.trial_id] = p
        self._started(run, proc.pid, workdir)
        self._follow(p, env)

    def _follow_warm(
        self,
        run: TrialRun,
        pid: int,
        workdir: Path,
        report_path: Path,
        paths: PathMap,
        collector_path: Path | None,
        env: Mapping[str, str],
    ) -> None:
        """Follow a trial forked from the warm server: not our child, so by its files."""
        timeout = self._template.timeout
        p = Proc(
            run,
            None,
            pid,
            workdir,
            report_path,
            time.monotonic() + timeout if timeout is not None else None,
            paths=paths,
            collector_path=collector_path,
        )
        p.log_offset = (workdir / "trial.log").stat().st_size
        p.env = env
        p.start = process_start_time(pid)
        with self._lock:
            self._procs[run.trial_id] = p
        self._started(run, pid, workdir, warm=True)
        self._follow(p, env)

    def _started(
        self,
        run: TrialRun,
        pid: int,
        workdir: Path,
        started_at: float | None = None,
        *,
        warm: bool = False,
    ) -> None:
        """Tell the controller where the trial runs (stored as its runner, read by adopters)."""
        runner: dict[str, Any] = {
            "pid": pid,
            "host": socket.gethostname(),
            "start": process_start_time(pid),
            "workdir": str(workdir),
            "started_at": started_at or time.time(),
        }
        if warm:
            runner["warm"] = True
        self._events.put(TrialEvent(run.trial_id, started=runner))

    def _follow(self, p: Proc, env: Mapping[str, str]) -> None:
        if self._collector.kind is CollectorKind.PROMETHEUS:
            p.scraper = threading.Thread(
                target=self._scrape_loop, args=(p,), name=f"scrape-{p.run.number}", daemon=True
            )
            p.scraper.start()
        if p.proc is not None:
            threading.Thread(
                target=self._wait, args=(p, env), name=f"trial-{p.run.number}", daemon=True
            ).start()
        else:  # not our child: its end is seen when its supervisor exits (or at a tick)
            if not on_exit(p.pid, self._wake.set):
                self._wake.set()  # already gone (a trial of a few ms): look now

    # -- adoption ----------------------------------------------------------------------------
    def never_started(self, run: TrialRun) -> bool:
        """No trial directory: its supervisor, which runs inside it, was never started."""
        return not self._workdir(run).exists()

    def adopt(self, run: TrialRun, runner: Mapping[str, Any]) -> bool:
        """Follow a trial that a dead controller started, from what it left on this host.

        A trial still running is followed from the start of its log and metrics files (their
        metrics arrive as events again: the caller drops what it had stored) until it exits; a
        trial that ended meanwhile is read and reported at once. Its timeout counts from its
        real start.

        Returns:
            False when its fate cannot be known here (another host, no supervisor and no exit
            status): the caller runs it again as a new attempt.
        """
        host = runner.get("host")
        if host is not None and host != socket.gethostname():
            return False
        workdir = Path(str(runner.get("workdir") or self._workdir(run)))
        pid = runner.get("pid") if isinstance(runner.get("pid"), int) else None
        start = runner.get("start") if isinstance(runner.get("start"), str) else None
        state, found = supervisor_state(workdir, pid, start)
        deadline = time.monotonic() + _START_WAIT
        while state == "starting" and time.monotonic() < deadline:
            time.sleep(0.05)  # a supervisor started the moment its controller died
            state, found = supervisor_state(workdir, pid, start)
        if state not in ("running", "exited"):
            return False
        meta = self._metadata(run)
        paths, collector_path, _ = self._trial_paths(run, workdir, meta, prepare=False)
        _, extra_env = render_command(self._template, run.params, meta)
        env = self._trial_env(run, workdir, paths, extra_env, collector_path)
        timeout = self._template.timeout
        started_at = runner.get("started_at")
        left = None
        if timeout is not None:
            began = float(started_at) if isinstance(started_at, int | float) else time.time()
            left = began + timeout - time.time()
        p = Proc(
            run,
            None,
            found if state == "running" and found is not None else (pid or 0),
            workdir,
            workdir / "metrics.jsonl",
            time.monotonic() + left if left is not None else None,
            paths=paths,
            collector_path=collector_path,
        )
        if self._allocator is not None:  # its cores and devices stay taken until it ends
            self._allocator.allocate(run.trial_id, self._request)
        p.ended = state == "exited"  # before the monitor can see it: one exit event only
        p.env = env
        p.start = start
        with self._lock:
            self._procs[run.trial_id] = p
        sup = found if state == "running" else read_pid(workdir)
        if sup is not None and (sup != pid or not runner.get("workdir")):
            # The dead controller never stored where the trial runs: store it now.
            started = started_at if isinstance(started_at, int | float) else None
            self._started(run, sup, workdir, started)
        if state == "exited":
            assert found is not None
            self._end_async(p, decode_status(found), env)
        else:
            self._follow(p, env)
        return True

    # -- watch -------------------------------------------------------------------------------
    def _emit(self, p: Proc, parsed: MetricLine | None) -> None:
        if parsed is not None and parsed.values:
            self._events.put(TrialEvent(p.run.trial_id, metrics=parsed.values, step=parsed.step))

    def _drain_reports(self, p: Proc) -> None:
        with p.lock:
            try:
                with open(p.report_path, encoding="utf-8", errors="replace") as fh:
                    fh.seek(p.offset)
                    chunk = fh.read()
                    p.offset = fh.tell()
            except OSError:
                return
            if not chunk:
                return
            lines = (p.partial + chunk).split("\n")
            p.partial = lines.pop()
            for line in lines:
                if line.strip():
                    self._emit(p, parse_report_line(line))

    def _drain_log(self, p: Proc, final: bool = False) -> None:
        """Read what the trial printed since the last call; parse it for the StdOut collector."""
        parse_stdout = self._collector.kind is CollectorKind.STDOUT
        with p.lock:
            try:
                with open(p.workdir / "trial.log", "rb") as fh:
                    fh.seek(p.log_offset)
                    chunk = fh.read()
                    p.log_offset = fh.tell()
            except OSError:
                return
            lines = (p.log_partial + chunk).split(b"\n")
            p.log_partial = b"" if final else lines.pop()
            for raw in lines:
                if raw.startswith(_OURS) or (final and not raw):
                    continue
                line = raw.decode("utf-8", errors="replace").rstrip("\r")
                p.tail.append(line)
                if parse_stdout:
                    self._emit(p, self._parser.parse(line))

    def _wait(self, p: Proc, env: Mapping[str, str]) -> None:
        assert p.proc is not None
        code = p.proc.wait()
        # A stopped trial may outlive its supervisor's SIGTERM: it has ended once its group has.
        while (p.cancelled or p.timed_out) and self._group_alive(p):
            time.sleep(_TICK)
        p.ended = True
        self._end(p, decode_status(code) if code > 0 else code, env)

    def _end_async(self, p: Proc, code: int, env: Mapping[str, str]) -> None:
        threading.Thread(
            target=self._end, args=(p, code, env), name=f"trial-{p.run.number}", daemon=True
        ).start()

    def _end(self, p: Proc, code: int, env: Mapping[str, str]) -> None:
        """Read the trial's last output and collectors, then send its exit event."""
        failure: str | None = None
        self._drain_log(p, final=True)
        with open(p.workdir / "trial.log", "ab") as log:
            log.write(f"\n[automl] exit code {code}\n".encode())
            try:
                failure = self._collect_at_end(p, code, log, env)
            except Exception as exc:  # the exit event must follow, whatever breaks here
                failure = f"metrics collection failed: {type(exc).__name__}: {exc}"
            finally:
                for note in p.notes:
                    log.write(f"[automl] {note}\n".encode())
        self._drain_reports(p)
        with self._lock:
            self._procs.pop(p.run.trial_id, None)
        self._release(p.run.trial_id)  # before the exit event: the controller may refill at once
        if p.cancelled:
            result = TrialExit(ExitStatus.CANCELLED, "cancelled")
        elif p.timed_out:
            result = TrialExit(
                ExitStatus.TIMED_OUT,
                f"killed after the trial timeout ({self._template.timeout:g} s)",
            )
        elif code == 0 and failure is None:
            result = TrialExit(ExitStatus.COMPLETED)
        elif code == 0:
            assert failure is not None
            result = TrialExit(ExitStatus.FAILED, failure)
        elif code == -signal.SIGTERM:  # not ours (cancel and timeout are above): preempted
            result = TrialExit(ExitStatus.PREEMPTED, "killed by SIGTERM from outside automl")
        else:
            tail = "\n".join(p.tail)
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            result = TrialExit(ExitStatus.FAILED, f"{how}; last output:\n{tail}" if tail else how)
        self._events.put(TrialEvent(p.run.trial_id, exit=result))

    def _watch(self) -> None:
        while True:
            self._wake.wait(_TICK)
            self._wake.clear()
            if self._closed.is_set():
                break
            with self._lock:
                procs = list(self._procs.values())
            now = time.monotonic()
            for p in procs:
                if p.ended:
                    continue
                self._drain_log(p)
                self._drain_reports(p)
                if p.proc is None:
                    self._check_adopted(p)
                if p.deadline is not None and now >= p.deadline and not p.timed_out:
                    p.timed_out = True
                    self._kill(p)
                if p.kill_at is not None and now >= p.kill_at:
                    p.groups.update(descendant_groups(p.pid))
                    signal_group(p.pid, signal.SIGKILL)
                    for g in p.groups:
                        signal_group(g, signal.SIGKILL)
                    p.kill_at = None
            if self._allocator is not None:
                self._start_waiting()

    def _group_alive(self, p: Proc) -> bool:
        return any(group_alive(g) for g in (p.pid, *p.groups))

    def _check_adopted(self, p: Proc) -> None:
        """An adopted trial's supervisor is not our child: look for its exit status."""
        state, status = supervisor_state(p.workdir, p.pid, p.start)
        if state == "running" or ((p.cancelled or p.timed_out) and self._group_alive(p)):
            return
        p.ended = True
        if state == "exited":
            assert status is not None
            code = decode_status(status)
        elif p.cancelled or p.timed_out:
            code = -signal.SIGTERM  # killed with its supervisor, which wrote nothing
        else:
            with self._lock:
                self._procs.pop(p.run.trial_id, None)
            self._release(p.run.trial_id)
            self._events.put(
                TrialEvent(
                    p.run.trial_id,
                    exit=TrialExit(
                        ExitStatus.LOST,
                        "its supervisor vanished without an exit status (killed from outside?)",
                    ),
                )
            )
            return
        self._end_async(p, code, p.env)

    def _kill(self, p: Proc) -> None:
        with contextlib.suppress(OSError):  # the decision first, then the signal
            (p.workdir / _STOP_FILE).touch()
        helper = p.helper
        if helper is not None and helper.poll() is None:
            signal_group(helper.pid, signal.SIGKILL)
        # torchrun starts each rank in a session of its own: find them while the leader lives.
        p.groups.update(descendant_groups(p.pid))
        if p.running():
            signal_group(p.pid, signal.SIGTERM)
            for g in p.groups:
                signal_group(g, signal.SIGTERM)
            p.kill_at = time.monotonic() + _GRACE
        else:  # the leader is gone; its group may not be
            signal_group(p.pid, signal.SIGKILL)
            for g in p.groups:
                signal_group(g, signal.SIGKILL)

    # -- interface ---------------------------------------------------------------------------
    def poll(self, timeout: float) -> list[TrialEvent]:
        """Events since the last poll."""
        return drain(self._events, timeout)

    def cancel(self, trial_id: str) -> None:
        """SIGTERM the trial's process group, then SIGKILL after a grace period."""
        with self._lock:
            p = self._procs.get(trial_id)
            queued = [r for r in self._waiting if r.trial_id == trial_id]
            for r in queued:
                self._waiting.remove(r)
        if queued:
            self._events.put(TrialEvent(trial_id, exit=_NOT_STARTED))
        if p is not None and not p.ended:  # one that ended by itself is recorded as it ended
            p.cancelled = True
            self._kill(p)

    def close(self) -> None:
        """Cancel what still runs and wait for it to end."""
        with self._lock:
            procs = list(self._procs.values())
            waiting = list(self._waiting)
            self._waiting.clear()
        for r in waiting:
            self._events.put(TrialEvent(r.trial_id, exit=_NOT_STARTED))
        for p in procs:
            p.cancelled = True
            self._kill(p)
        deadline = time.monotonic() + _GRACE + 2
        for p in procs:
            if p.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                if p.proc.poll() is None:
                    signal_group(p.pid, signal.SIGKILL)
            else:
                while time.monotonic() < deadline and supervisor_state(p.workdir, p.pid, p.start)[
                    0
                ] == ("running"):
                    time.sleep(_TICK)
                signal_group(p.pid, signal.SIGKILL)
            for g in p.groups:
                signal_group(g, signal.SIGKILL)
        self._closed.set()
        self._wake.set()
        if self._warm is not None:
            self._warm.close()

    def reap(self, runner: Mapping[str, Any]) -> None:
        """Kill the process group of a trial left running by a dead controller on this host."""
        reap_runner(runner)
