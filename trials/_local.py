"""Local process executor: each trial is a subprocess run from an argv template, without a shell.

Per trial: its own output directory (``AUTOML_TRIAL_DIR``) holding ``trial.log`` (stdout and
stderr) and ``metrics.jsonl`` (what :func:`automl.report` wrote), its own process group (cancel
and timeout kill the whole group), and a per-trial timeout.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from automl._report import REPORT_FILE_ENV, TRIAL_ENV
from automl.core import CollectorKind, ExperimentSpec
from trials._base import Executor, ExitStatus, TrialEvent, TrialExit, TrialRun, drain
from trials._metrics import (
    MetricLine,
    TextMetricParser,
    parse_json_line,
    parse_report_line,
)
from trials._template import render_command, render_text

__all__ = ["LocalProcessExecutor", "process_start_time", "reap_runner"]

#: Trial attributes (set by population-based training) exported to the trial's environment.
CHECKPOINT_ENV = {
    "checkpoint_dir": "AUTOML_CHECKPOINT_DIR",
    "parent_checkpoint_dir": "AUTOML_PARENT_CHECKPOINT_DIR",
}
_GRACE = 1.0  # seconds between SIGTERM and SIGKILL: a stopped trial is gone within a second
_TICK = 0.1


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


class LocalProcessExecutor(Executor):
    """Runs each trial's command as a local process.

    ``python`` and ``python3`` at the head of a command resolve to the interpreter running the
    controller, so trials see the same environment.

    Args:
        spec: The experiment spec (template, collector, objective metrics).
        runs_dir: Root of per-trial output directories (``<runs_dir>/<experiment>/<trial>``).
        cwd: Working directory of trial commands (the template's ``workdir`` wins).
    """

    def __init__(self, spec: ExperimentSpec, runs_dir: Path, cwd: Path | None = None) -> None:
        self._spec = spec
        self._template = spec.trial_template
        self._runs_dir = Path(runs_dir)
        self._cwd = Path(self._template.workdir) if self._template.workdir else (cwd or Path.cwd())
        mc = spec.metrics_collector
        self._collector = mc
        self._parser = TextMetricParser(spec.objective.metrics, mc.filters)
        self._events: queue.SimpleQueue[TrialEvent] = queue.SimpleQueue()
        self._procs: dict[str, _Proc] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="trial-monitor", daemon=True)
        self._monitor.start()

    # -- submit ------------------------------------------------------------------------------
    def _metadata(self, run: TrialRun) -> dict[str, str]:
        manifest = self._template.manifest or {}
        return {
            "Name": run.trial_id,
            "Namespace": run.namespace or "default",
            "Kind": str(manifest.get("kind", "Job")),
            "APIVersion": str(manifest.get("apiVersion", "batch/v1")),
        }

    def submit(self, run: TrialRun) -> None:
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
        argv, extra_env = render_command(self._template, run.params, meta)
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        env = dict(os.environ)
        env.update(extra_env)
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
                "AUTOML_TRIAL_NAME": run.trial_id,
                "KATIB_TRIAL_NAME": run.trial_id,
                "PYTHONUNBUFFERED": "1",
            }
        )
        log = open(workdir / "trial.log", "wb")  # noqa: SIM115 - closed by the reader thread
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
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
            log.write(f"cannot start: {exc}\n".encode())
            log.close()
            self._events.put(
                TrialEvent(
                    run.trial_id,
                    exit=TrialExit(
                        ExitStatus.FAILED, f"cannot start {argv[0]!r}: {exc.strerror or exc}"
                    ),
                )
            )
            return
        timeout = self._template.timeout
        p = _Proc(
            run,
            proc,
            workdir,
            report_path,
            time.monotonic() + timeout if timeout is not None else None,
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
        threading.Thread(
            target=self._read, args=(p, log), name=f"trial-{run.number}", daemon=True
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

    def _read(self, p: _Proc, log: IO[bytes]) -> None:
        parse_stdout = self._collector.kind is CollectorKind.STDOUT
        assert p.proc.stdout is not None
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
            log.close()
        self._drain_reports(p)
        if self._collector.kind is CollectorKind.FILE:
            self._read_metrics_file(p)
        with self._lock:
            self._procs.pop(p.run.trial_id, None)
        if p.cancelled:
            result = TrialExit(ExitStatus.CANCELLED, "cancelled")
        elif p.timed_out:
            result = TrialExit(
                ExitStatus.TIMED_OUT,
                f"killed after the trial timeout ({self._template.timeout:g} s)",
            )
        elif code == 0:
            result = TrialExit(ExitStatus.COMPLETED)
        else:
            tail = "\n".join(p.tail)
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            result = TrialExit(ExitStatus.FAILED, f"{how}; last output:\n{tail}" if tail else how)
        self._events.put(TrialEvent(p.run.trial_id, exit=result))

    def _read_metrics_file(self, p: _Proc) -> None:
        raw = render_text(
            self._collector.path or "", self._template, p.run.params, self._metadata(p.run)
        )
        path = Path(raw)
        if not path.is_absolute():
            path = self._cwd / path
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            if self._collector.format == "JSON":
                self._emit(p, parse_json_line(line, self._spec.objective.metrics))
            else:
                self._emit(p, self._parser.parse(line))

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
                    _signal_group(p.proc.pid, signal.SIGKILL)
                    p.kill_at = None

    def _kill(self, p: _Proc) -> None:
        if p.proc.poll() is None:
            _signal_group(p.proc.pid, signal.SIGTERM)
            p.kill_at = time.monotonic() + _GRACE
        else:  # the leader is gone; its group may not be
            _signal_group(p.proc.pid, signal.SIGKILL)

    # -- interface ---------------------------------------------------------------------------
    def poll(self, timeout: float) -> list[TrialEvent]:
        """Events since the last poll."""
        return drain(self._events, timeout)

    def cancel(self, trial_id: str) -> None:
        """SIGTERM the trial's process group, then SIGKILL after a grace period."""
        with self._lock:
            p = self._procs.get(trial_id)
        if p is not None:
            p.cancelled = True
            self._kill(p)

    def close(self) -> None:
        """Cancel what still runs and wait for it to end."""
        with self._lock:
            procs = list(self._procs.values())
        for p in procs:
            p.cancelled = True
            self._kill(p)
        deadline = time.monotonic() + _GRACE + 2
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if p.proc.poll() is None:
                _signal_group(p.proc.pid, signal.SIGKILL)
        self._closed.set()

    def reap(self, runner: Mapping[str, Any]) -> None:
        """Kill the process group of a trial left running by a dead controller on this host."""
        reap_runner(runner)


def reap_runner(runner: Mapping[str, Any]) -> None:
    """Kill the process group a trial's runner details name, if it still runs on this host.

    The pid's kernel start time must match the stored one, so a reused pid is never hit.
    """
    pid = runner.get("pid")
    if not isinstance(pid, int) or runner.get("host") != socket.gethostname():
        return
    start = process_start_time(pid)
    if start is not None and start == runner.get("start"):
        _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
