"""One local trial's bookkeeping, and the collectors that read its metrics when it ends.

File (TEXT or JSON), TensorFlowEvent (event files), PrometheusMetric (scraped on 127.0.0.1 while
the trial runs, and once more at exit) and Custom (the collector container's command, run after
the trial succeeds, its stdout parsed with the TEXT filters or as JSON lines).
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from automl.core import CollectorKind, ExperimentSpec, MetricsCollectorSpec, TrialTemplate
from automl.core._shell import shell_script_index
from trials._base import TrialRun
from trials._collectors import PathMap, parse_prometheus, scrape_prometheus, tfevent_metrics
from trials._metrics import MetricLine, TextMetricParser, parse_json_line
from trials._supervise import signal_group
from trials._template import render_script, render_text

__all__ = ["CUSTOM_COLLECTOR_TIMEOUT", "SCRAPE_INTERVAL", "EndCollectors", "Proc"]

SCRAPE_INTERVAL = 1.0  # seconds between scrapes of a PrometheusMetric endpoint
CUSTOM_COLLECTOR_TIMEOUT = 300.0  # seconds a Custom collector's command may run
_TICK = 0.1


@dataclass
class Proc:
    """One running trial, as the local executor follows it."""

    run: TrialRun
    proc: subprocess.Popen[bytes] | None  # None: adopted from a dead controller
    pid: int
    workdir: Path
    report_path: Path
    deadline: float | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    offset: int = 0  # metrics.jsonl read so far
    partial: str = ""
    log_offset: int = 0  # trial.log read so far
    log_partial: bytes = b""
    ended: bool = False
    start: str | None = None  # the supervisor's kernel start time (warm and adopted trials)
    env: Mapping[str, str] = field(default_factory=dict)  # for end collectors (adopted)
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

    def running(self) -> bool:
        """Whether the trial's supervisor still runs (as far as this controller knows)."""
        return not self.ended and (self.proc is None or self.proc.poll() is None)


class EndCollectors(ABC):
    """The collectors that read a trial's metrics at its end (a mixin of the local executor)."""

    _spec: ExperimentSpec
    _template: TrialTemplate
    _collector: MetricsCollectorSpec
    _parser: TextMetricParser
    _cwd: Path

    @abstractmethod
    def _emit(self, p: Proc, parsed: MetricLine | None) -> None:
        """Send the metrics of one parsed line as an event."""

    @abstractmethod
    def _metadata(self, run: TrialRun) -> dict[str, str]:
        """The trial's ``${trialSpec.*}`` values."""

    def _collect_at_end(
        self, p: Proc, code: int, log: IO[bytes], env: Mapping[str, str]
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

    def _read_metrics_file(self, p: Proc) -> None:
        path = p.collector_path
        if path is None:
            return
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            p.notes.append(f"File collector: cannot read {path}: {exc.strerror or exc}")
            return
        self._parse_lines(p, text)

    def _parse_lines(self, p: Proc, text: str) -> None:
        json_format = self._collector.format == "JSON"
        for line in text.splitlines():
            if json_format:
                self._emit(p, parse_json_line(line, self._spec.objective.metrics))
            else:
                self._emit(p, self._parser.parse(line))

    def _read_tfevents(self, p: Proc) -> None:
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

    def _scrape(self, p: Proc) -> None:
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

    def _scrape_loop(self, p: Proc) -> None:
        while p.running():
            self._scrape(p)
            deadline = time.monotonic() + SCRAPE_INTERVAL
            while p.running() and time.monotonic() < deadline:
                time.sleep(min(_TICK, SCRAPE_INTERVAL))

    # -- Custom ------------------------------------------------------------------------------
    def _custom_argv(self) -> list[str]:
        cc = self._collector.custom_collector or {}
        command = cc.get("command") or []
        args = cc.get("args") or []
        if not command:
            return []
        return [str(a) for a in [*command, *args]]

    def _run_custom(self, p: Proc, log: IO[bytes], env: Mapping[str, str]) -> str | None:
        """Run the Custom collector's command; parse its stdout; a failure message or None."""
        cc = self._collector.custom_collector or {}
        meta = self._metadata(p.run)
        raw = self._custom_argv()
        script_at = shell_script_index(raw)  # a shell script gets its values as variables
        argv: list[str] = []
        values: dict[str, str] = {}
        for i, a in enumerate(raw):
            if i == script_at:
                try:
                    text, values = render_script(a, self._template, p.run.params, meta)
                except ValueError as exc:
                    return f"the custom metrics collector's script cannot take a value: {exc}"
                argv.append(text)
            else:
                argv.append(p.paths(render_text(a, self._template, p.run.params, meta)))
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        cenv = dict(env)
        cenv.update(values)
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
            signal_group(helper.pid, signal.SIGKILL)
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
