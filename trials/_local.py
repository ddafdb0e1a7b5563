"""Local process executor: each trial is a subprocess run from an argv template, without a shell.

Per trial: its own output directory (``AUTOML_TRIAL_DIR``) holding ``trial.log`` (stdout and
stderr) and ``metrics.jsonl`` (what :func:`automl.report` wrote), its own process group (cancel
and timeout kill the whole group), and a per-trial timeout.

A Katib trial's primary container runs here as a process: its image is not pulled. The
template's ``path_map`` rewrites paths that exist only inside the image (argv, env values,
working dir, collector path); the directory of the collector's metrics path is per trial, as it
is in a pod (``<target>/<trial>`` when mapped, ``<trial dir>/<path>`` when not).

Collectors: StdOut (live), Push (``automl.report``, live), File (TEXT or JSON, at exit),
TensorFlowEvent (event files, at exit), PrometheusMetric (scraped on 127.0.0.1 while the trial
runs, and once more at exit) and Custom (the collector container's command, run after the trial
succeeds, its stdout parsed with the TEXT filters or as JSON lines).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import posixpath
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from automl._report import REPORT_FILE_ENV, TRIAL_ENV
from automl.core import CollectorKind, ExperimentSpec, TrialTemplate
from automl.errors import SpecError, SpecIssue
from trials._base import Executor, ExitStatus, TrialEvent, TrialExit, TrialRun, drain
from trials._collectors import (
    KATIB_TFEVENT_DIR,
    PathMap,
    collector_package,
    image_paths,
    parse_prometheus,
    scrape_prometheus,
    tfevent_metrics,
)
from trials._gpu import (
    Allocation,
    FreeMemory,
    GpuDevice,
    Request,
    ResourceAllocator,
    discover_gpus_live,
)
from trials._launch import free_port, nproc, python_command, torchrun_argv, torchrun_env
from trials._metrics import (
    MetricLine,
    TextMetricParser,
    parse_json_line,
    parse_report_line,
)
from trials._template import render_command, render_text

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
_TICK = 0.1
SCRAPE_INTERVAL = 1.0  # seconds between scrapes of a PrometheusMetric endpoint
CUSTOM_COLLECTOR_TIMEOUT = 300.0  # seconds a Custom collector's command may run
_NEEDS = {
    CollectorKind.TENSORFLOW_EVENT: "tensorboard",
    CollectorKind.PROMETHEUS: "prometheus_client",
}


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), to tell a live process from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass
class _Proc:
    run: TrialRun
    proc: subprocess.Popen[bytes]
    workdir: Path
    report_path: Path
    deadline: float | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    offset: int = 0
    partial: str = ""
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    cancelled: bool = False
    timed_out: bool = False
    kill_at: float | None = None
    paths: PathMap = field(default_factory=lambda: PathMap({}))
    collector_path: Path | None = None
    notes: list[str] = field(default_factory=list)  # written to the trial log at its end
    scraper: threading.Thread | None = None
    scraped: dict[str, float] = field(default_factory=dict)
    scrape_error: str | None = None
    scrapes: int = 0
    helper: subprocess.Popen[bytes] | None = None  # a running Custom collector
    groups: set[int] = field(default_factory=set)  # torchrun ranks' own process groups


def _primary_image(template: TrialTemplate) -> str | None:
    """The image of the template's primary container, if its manifest names one."""

    def find(node: Any) -> dict[str, Any] | None:
        if isinstance(node, dict):
            containers = node.get("containers")
            if isinstance(containers, list):
                for c in containers:
                    if isinstance(c, dict) and (
                        template.primary_container_name is None
                        or c.get("name") == template.primary_container_name
                    ):
                        return c
            nodes: list[Any] = list(node.values())
        elif isinstance(node, list):
            nodes = node
        else:
            return None
        for v in nodes:
            found = find(v)
            if found is not None:
                return found
        return None

    container = find(template.manifest)
    image = container.get("image") if container else None
    return str(image) if image else None


def local_notice(spec: ExperimentSpec, created: Sequence[str] = ()) -> str | None:
    """What running this spec's trials locally means, in one line; None for a plain command.

    For a Katib trial (a manifest with an image): the image is not pulled, the primary
    container's command runs here, and which image paths are mapped or still unmapped.
    """
    t = spec.trial_template
    if t.manifest is None and not t.path_map:
        return None
    paths = PathMap(t.path_map)
    parts: list[str] = []
    if t.manifest is not None:
        image = _primary_image(t)
        what = f"image {image} is not pulled" if image else "the trial image is not pulled"
        who = (
            f"container {t.primary_container_name!r}" if t.primary_container_name else "the trial"
        )
        parts.append(f"{what}; the command of {who} runs here as a local process")
    if paths:
        parts.append(f"paths mapped: {paths.describe()}")
    if created:
        parts.append(f"created {', '.join(created)}")
    mc = spec.metrics_collector
    collector_dir = _collector_dir(spec)
    missing = sorted(
        {
            p
            for arg in t.command or ()
            if "${" not in arg and "{{" not in arg
            for p in image_paths([arg])
            if paths.covering(p) is None
            and not (collector_dir and _under(p, collector_dir))
            and not os.path.exists(p)
        }
    )
    if missing:
        parts.append(f"not found here: {', '.join(missing)} (map them with --path-map SRC=DST)")
    if collector_dir and mc.kind in _PER_TRIAL_KINDS:
        cover = paths.covering(collector_dir)
        where = f"{paths(collector_dir)}/<trial>" if cover else f"<trial dir>{collector_dir}"
        parts.append(f"{mc.kind.value} collector path {collector_dir} is per trial: {where}")
    return "; ".join(parts)


_PER_TRIAL_KINDS = (CollectorKind.FILE, CollectorKind.TENSORFLOW_EVENT, CollectorKind.CUSTOM)


def _under(path: str, prefix: str) -> bool:
    path, prefix = posixpath.normpath(path), posixpath.normpath(prefix)
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _collector_dir(spec: ExperimentSpec) -> str | None:
    """The absolute in-image directory the collector reads, made per trial; None if none.

    The File collector's file's directory, the TensorFlowEvent directory (Katib's default
    ``/var/log/katib/tfevent`` for a Katib trial), or a Custom collector's path. Only for
    trials from an image (a manifest) or with a path map: a plain local command's absolute
    path is taken as it is.
    """
    mc = spec.metrics_collector
    t = spec.trial_template
    if mc.kind not in _PER_TRIAL_KINDS:
        return None
    raw = mc.path
    if not raw and mc.kind is CollectorKind.TENSORFLOW_EVENT and t.manifest is not None:
        raw = KATIB_TFEVENT_DIR
    if not raw or not raw.startswith("/"):
        return None
    directory = mc.kind is CollectorKind.TENSORFLOW_EVENT or mc.path_kind == "Directory"
    d = posixpath.normpath(raw) if directory else posixpath.dirname(posixpath.normpath(raw))
    if d == "/":
        return None
    if t.manifest is None and PathMap(t.path_map).covering(d) is None:
        return None
    return d


class LocalProcessExecutor(Executor):
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
        self._collector_dir = _collector_dir(spec)
        self.notice: str | None = local_notice(spec, created)
        self._parser = TextMetricParser(spec.objective.metrics, mc.filters)
        self._request = Request.of(self._template.resources)
        self._allocator = check_local_resources(spec, gpus, cpus, free_memory=free_memory)
        self._waiting: collections.deque[TrialRun] = collections.deque()  # submitted, no room
        self._events: queue.SimpleQueue[TrialEvent] = queue.SimpleQueue()
        self._procs: dict[str, _Proc] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
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
        self, run: TrialRun, workdir: Path, meta: Mapping[str, str]
    ) -> tuple[PathMap, Path | None, str | None]:
        """The trial's path map, its local collector path, and a log line on the mapping.

        The collector's directory gets a per-trial target (``<mapped dir>/<trial>``, or
        ``<trial dir>/<dir>`` when unmapped), created empty, so parallel trials never share a
        metrics file.
        """
        mc = self._collector
        paths = self._paths
        note = None
        if self._collector_dir is not None:
            d = self._collector_dir
            if paths.covering(d) is not None:
                target = Path(paths(d)) / run.trial_id
                if target.exists() and run.attempt > 1:
                    old = target.with_name(f"{run.trial_id}.attempt{run.attempt - 1}")
                    shutil.rmtree(old, ignore_errors=True)
                    target.rename(old)
            else:
                target = workdir / d.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            paths = paths.with_entry(d, target)
            note = f"metrics path {d} -> {target} (per trial)"
        raw = mc.path
        if mc.kind is CollectorKind.TENSORFLOW_EVENT and not raw:
            raw = KATIB_TFEVENT_DIR if self._template.manifest is not None else str(workdir)
        if not raw or mc.kind not in _PER_TRIAL_KINDS:
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

    def _launch(self, run: TrialRun, alloc: Allocation | None) -> None:
        """Start the trial's process; a command that cannot start fails the trial."""
        workdir = self._runs_dir / run.experiment / run.trial_id
        if workdir.exists() and run.attempt > 1:
            # A trial started again after a controller crash: keep the old attempt's files.
            old = workdir.with_name(f"{run.trial_id}.attempt{run.attempt - 1}")
            shutil.rmtree(old, ignore_errors=True)
            workdir.rename(old)
        workdir.mkdir(parents=True, exist_ok=True)
        report_path = workdir / "metrics.jsonl"
        report_path.touch()
        meta = self._metadata(run)
        try:
            paths, collector_path, path_note = self._trial_paths(run, workdir, meta)
        except OSError as exc:
            log = open(workdir / "trial.log", "wb")  # noqa: SIM115 - closed by _fail_at_start
            self._fail_at_start(
                run, log, f"cannot prepare the metrics directory: {exc.strerror or exc}"
            )
            return
        argv, extra_env = render_command(self._template, run.params, meta)
        argv = [paths(a) for a in argv]
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        env = dict(os.environ)
        env.update({k: paths(v) for k, v in extra_env.items()})
        checkpoints = {k: str(run.attrs[k]) for k in CHECKPOINT_ENV if run.attrs.get(k)}
        env.update({CHECKPOINT_ENV[k]: v for k, v in checkpoints.items()})
        env.update(
            {
                REPORT_FILE_ENV: str(report_path),
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
        env = self._resource_env(env, alloc)
        if self._template.resources.distributed:
            program = python_command(argv)
            if program is not None:  # checked on the template; a value cannot change its form
                argv = torchrun_argv(program, nproc(self._template.resources), free_port())
                env = torchrun_env(env)
        log = open(workdir / "trial.log", "wb")  # noqa: SIM115 - closed by the reader thread
        if self.notice:
            log.write(f"[automl] {self.notice}\n".encode())
        if path_note:
            log.write(f"[automl] {path_note}\n".encode())
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        if self._collector.kind is CollectorKind.CUSTOM and not self._custom_argv():
            self._fail_at_start(
                run,
                log,
                "the Custom metrics collector container has no command: its image's entrypoint "
                "cannot run locally; give metricsCollectorSpec.collector.customCollector a "
                "command (and args)",
            )
            return
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self._cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self._fail_at_start(run, log, f"cannot start {argv[0]!r}: {exc.strerror or exc}")
            return
        timeout = self._template.timeout
        p = _Proc(
            run,
            proc,
            workdir,
            report_path,
            time.monotonic() + timeout if timeout is not None else None,
            paths=paths,
            collector_path=collector_path,
        )
        with self._lock:
            self._procs[run.trial_id] = p
        self._events.put(
            TrialEvent(
                run.trial_id,
                started={
                    "pid": proc.pid,
                    "host": socket.gethostname(),
                    "start": process_start_time(proc.pid),
                    "workdir": str(workdir),
                },
            )
        )
        if self._collector.kind is CollectorKind.PROMETHEUS:
            p.scraper = threading.Thread(
                target=self._scrape_loop, args=(p,), name=f"scrape-{run.number}", daemon=True
            )
            p.scraper.start()
        threading.Thread(
            target=self._read, args=(p, log, env), name=f"trial-{run.number}", daemon=True
        ).start()

    # -- watch -------------------------------------------------------------------------------
    def _emit(self, p: _Proc, parsed: MetricLine | None) -> None:
        if parsed is not None and parsed.values:
            self._events.put(TrialEvent(p.run.trial_id, metrics=parsed.values, step=parsed.step))

    def _drain_reports(self, p: _Proc) -> None:
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

    def _read(self, p: _Proc, log: IO[bytes], env: Mapping[str, str]) -> None:
        parse_stdout = self._collector.kind is CollectorKind.STDOUT
        assert p.proc.stdout is not None
        failure: str | None = None
        try:
            for raw in p.proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                p.tail.append(line)
                if parse_stdout:
                    self._emit(p, self._parser.parse(line))
        finally:
            code = p.proc.wait()
            log.write(f"\n[automl] exit code {code}\n".encode())
            try:
                failure = self._collect_at_end(p, code, log, env)
            except Exception as exc:  # the exit event must follow, whatever breaks here
                failure = f"metrics collection failed: {type(exc).__name__}: {exc}"
            finally:
                for note in p.notes:
                    log.write(f"[automl] {note}\n".encode())
                log.close()
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
        else:
            tail = "\n".join(p.tail)
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            result = TrialExit(ExitStatus.FAILED, f"{how}; last output:\n{tail}" if tail else how)
        self._events.put(TrialEvent(p.run.trial_id, exit=result))

    def _collect_at_end(
        self, p: _Proc, code: int, log: IO[bytes], env: Mapping[str, str]
    ) -> str | None:
        """Run the end-of-trial collectors; the reason the trial fails anyway, if any."""
        kind = self._collector.kind
        if kind is CollectorKind.FILE:
            self._read_metrics_file(p)
        elif kind is CollectorKind.TENSORFLOW_EVENT:
            self._read_tfevents(p)
        elif kind is CollectorKind.PROMETHEUS:
            if p.scraper is not None:
                p.scraper.join()
            self._scrape(p)  # a server that outlives the trial's main process
            if not p.scrapes:
                p.notes.append(
                    f"PrometheusMetric collector: no scrape of {self._scrape_url()} succeeded"
                    + (f" (last error: {p.scrape_error})" if p.scrape_error else "")
                )
        elif kind is CollectorKind.CUSTOM and code == 0 and not (p.cancelled or p.timed_out):
            return self._run_custom(p, log, env)
        return None

    def _read_metrics_file(self, p: _Proc) -> None:
        path = p.collector_path
        if path is None:
            return
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            p.notes.append(f"File collector: cannot read {path}: {exc.strerror or exc}")
            return
        self._parse_lines(p, text)

    def _parse_lines(self, p: _Proc, text: str) -> None:
        json_format = self._collector.format == "JSON"
        for line in text.splitlines():
            if json_format:
                self._emit(p, parse_json_line(line, self._spec.objective.metrics))
            else:
                self._emit(p, self._parser.parse(line))

    def _read_tfevents(self, p: _Proc) -> None:
        path = p.collector_path
        if path is None or not path.exists():
            p.notes.append(f"TensorFlowEvent collector: {path} does not exist")
            return
        try:
            lines = tfevent_metrics(path, self._spec.objective.metrics)
        except Exception as exc:  # a corrupt or truncated event file
            p.notes.append(f"TensorFlowEvent collector: cannot read {path}: {exc}")
            return
        if not lines:
            p.notes.append(
                f"TensorFlowEvent collector: no scalar summary of "
                f"{', '.join(self._spec.objective.metrics)} under {path}"
            )
        for line in lines:
            self._emit(p, line)

    # -- PrometheusMetric --------------------------------------------------------------------
    def _scrape_target(self) -> tuple[str, str]:
        hg = self._collector.http_get or {}
        port = str(hg.get("port") or 8080)
        path = str(hg.get("path") or "/metrics")
        return port, path

    def _scrape_url(self) -> str:
        port, path = self._scrape_target()
        return f"http://127.0.0.1:{port}{path if path.startswith('/') else '/' + path}"

    def _scrape(self, p: _Proc) -> None:
        port, path = self._scrape_target()
        try:
            text = scrape_prometheus(int(port), path)
            parsed = parse_prometheus(text, self._spec.objective.metrics)
        except (OSError, ValueError) as exc:
            p.scrape_error = str(exc)
            return
        p.scrapes += 1
        if parsed is None:
            return
        new = {k: v for k, v in parsed.values.items() if p.scraped.get(k) != v}
        if new:  # an unchanged gauge is one observation, not one per scrape
            p.scraped.update(new)
            self._emit(p, MetricLine(new, parsed.step))

    def _scrape_loop(self, p: _Proc) -> None:
        while p.proc.poll() is None:
            self._scrape(p)
            deadline = time.monotonic() + SCRAPE_INTERVAL
            while p.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(min(_TICK, SCRAPE_INTERVAL))

    # -- Custom ------------------------------------------------------------------------------
    def _custom_argv(self) -> list[str]:
        cc = self._collector.custom_collector or {}
        command = cc.get("command") or []
        args = cc.get("args") or []
        if not command:
            return []
        return [str(a) for a in [*command, *args]]

    def _run_custom(self, p: _Proc, log: IO[bytes], env: Mapping[str, str]) -> str | None:
        """Run the Custom collector's command; parse its stdout; a failure message or None."""
        cc = self._collector.custom_collector or {}
        meta = self._metadata(p.run)
        argv = [
            p.paths(render_text(a, self._template, p.run.params, meta))
            for a in self._custom_argv()
        ]
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        cenv = dict(env)
        for e in cc.get("env") or []:
            if isinstance(e, dict) and "name" in e and "value" in e:
                cenv[str(e["name"])] = p.paths(
                    render_text(str(e["value"]), self._template, p.run.params, meta)
                )
        cenv["AUTOML_METRIC_NAMES"] = ",".join(self._spec.objective.metrics)
        cwd = p.paths(str(cc["workingDir"])) if cc.get("workingDir") else str(self._cwd)
        log.write(f"[automl] custom metrics collector: $ {' '.join(argv)}\n".encode())
        log.flush()
        try:
            helper = subprocess.Popen(
                argv,
                cwd=cwd,
                env=cenv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return f"cannot start the custom metrics collector {argv[0]!r}: {exc.strerror or exc}"
        p.helper = helper
        try:
            out, errs = helper.communicate(timeout=CUSTOM_COLLECTOR_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(helper.pid, signal.SIGKILL)
            out, errs = helper.communicate()
            log.write(out + errs)
            return (
                f"the custom metrics collector ran past {CUSTOM_COLLECTOR_TIMEOUT:g} s and was "
                "killed"
            )
        finally:
            p.helper = None
        log.write(out)
        log.write(errs)
        if p.cancelled:
            return None
        if helper.returncode != 0:
            tail = "\n".join(errs.decode("utf-8", "replace").splitlines()[-10:])
            return f"the custom metrics collector failed (exit code {helper.returncode})" + (
                f"; last output:\n{tail}" if tail else ""
            )
        self._parse_lines(p, out.decode("utf-8", errors="replace"))
        return None

    def _watch(self) -> None:
        while not self._closed.wait(_TICK):
            with self._lock:
                procs = list(self._procs.values())
            now = time.monotonic()
            for p in procs:
                self._drain_reports(p)
                if p.deadline is not None and now >= p.deadline and not p.timed_out:
                    p.timed_out = True
                    self._kill(p)
                if p.kill_at is not None and now >= p.kill_at:
                    p.groups.update(_descendant_groups(p.proc.pid))
                    _signal_group(p.proc.pid, signal.SIGKILL)
                    for g in p.groups:
                        _signal_group(g, signal.SIGKILL)
                    p.kill_at = None
            if self._allocator is not None:
                self._start_waiting()

    def _kill(self, p: _Proc) -> None:
        helper = p.helper
        if helper is not None and helper.poll() is None:
            _signal_group(helper.pid, signal.SIGKILL)
        # torchrun starts each rank in a session of its own: find them while the leader lives.
        p.groups.update(_descendant_groups(p.proc.pid))
        if p.proc.poll() is None:
            _signal_group(p.proc.pid, signal.SIGTERM)
            for g in p.groups:
                _signal_group(g, signal.SIGTERM)
            p.kill_at = time.monotonic() + _GRACE
        else:  # the leader is gone; its group may not be
            _signal_group(p.proc.pid, signal.SIGKILL)
            for g in p.groups:
                _signal_group(g, signal.SIGKILL)

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
        if p is not None:
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
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if p.proc.poll() is None:
                _signal_group(p.proc.pid, signal.SIGKILL)
            for g in p.groups:
                _signal_group(g, signal.SIGKILL)
        self._closed.set()

    def reap(self, runner: Mapping[str, Any]) -> None:
        """Kill the process group of a trial left running by a dead controller on this host."""
        reap_runner(runner)


def check_local_resources(
    spec: ExperimentSpec,
    gpus: Sequence[GpuDevice] | None = None,
    cpus: float | None = None,
    *,
    free_memory: FreeMemory | None = None,
) -> ResourceAllocator | None:
    """The allocator a spec's trial resources need here (None without gpu or cpu), checked.

    Call it before storing an experiment to fail fast; :class:`LocalProcessExecutor` calls it.

    Args:
        spec: The experiment.
        gpus: The devices (default: discovered, only when ``resources.gpu`` is set).
        cpus: Cores trials may hold (default: ``executor.settings.cpus``, else all).
        free_memory: Reads the devices' live free memory (default: the discovering backend's
            reader when ``gpus`` is not given).

    Raises:
        SpecError: The resources can never fit this machine (more GPUs or GPU memory than it
            has, more cores than ``cpus``), or a distributed trial's command is not a Python
            program; named by field (``trial.resources.gpu`` in a native spec).
    """
    template = spec.trial_template
    r = template.resources
    field_ = "trial.resources" if spec.source == "native" else "trial_template.resources"
    issues: list[SpecIssue] = []
    if r.distributed and python_command(template.command or ()) is None:
        issues.append(
            SpecIssue(
                f"{field_}.processes_per_worker"
                if r.processes_per_worker > 1
                else f"{field_}.workers",
                "a distributed trial runs under torchrun, which needs a Python program "
                "(python script.py ..., python -m module ..., or script.py ...); got the "
                f"command {' '.join(template.command or ())!r}",
            )
        )
    if r.gpu <= 0 and r.cpu is None:
        if issues:
            raise SpecError(issues)
        return None
    if cpus is None and spec.executor.settings.get("cpus") is not None:
        raw = spec.executor.settings["cpus"]
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
            issues.append(
                SpecIssue("executor.settings.cpus", f"must be a number > 0; got {raw!r}")
            )
        else:
            cpus = float(raw)
    if gpus is None and r.gpu > 0:
        gpus, found = discover_gpus_live()
        free_memory = free_memory or found
    allocator = ResourceAllocator(gpus or (), cpus, free_memory=free_memory)
    issues.extend(allocator.problems(Request.of(r), field_))
    if issues:
        raise SpecError(issues)
    return allocator


def reap_runner(runner: Mapping[str, Any]) -> None:
    """Kill the process group a trial's runner details name, if it still runs on this host.

    The pid's kernel start time must match the stored one, so a reused pid is never hit.
    """
    pid = runner.get("pid")
    if not isinstance(pid, int) or runner.get("host") != socket.gethostname():
        return
    start = process_start_time(pid)
    if start is not None and start == runner.get("start"):
        groups = _descendant_groups(pid)  # torchrun's ranks run in sessions of their own
        _signal_group(pid, signal.SIGKILL)
        for g in groups:
            _signal_group(g, signal.SIGKILL)


def _descendant_groups(pid: int) -> set[int]:
    """Process groups of ``pid``'s descendants other than its own (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    pgid: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for name in entries:
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
        pgid[int(name)] = int(fields[2])
    out: set[int] = set()
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        if pgid.get(child, pid) != pid:
            out.add(pgid[child])
        todo.extend(children.get(child, []))
    return out


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
