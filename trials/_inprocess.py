"""In-process executor: trials are calls of a Python function in worker threads."""

from __future__ import annotations

import collections
import inspect
import math
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from automl import _report
from automl._artifacts import artifact_path
from automl.core import ParamValue
from trials._base import Executor, ExitStatus, TrialEvent, TrialExit, TrialRun, drain

__all__ = ["InProcessExecutor", "ReportHook", "call_objective"]

#: ``hook(trial_id, step, metrics) -> stop now?``, called inside ``automl.report``.
ReportHook = Callable[[str, int | None, Mapping[str, float]], bool]


def takes_dict(fn: Callable[..., Any], names: Iterable[str]) -> bool:
    """Whether ``fn`` wants all parameters as one dict rather than as keyword arguments.

    A function of one positional argument that is not itself a parameter name gets the whole
    ``dict`` (``def objective(params)``); any other function gets keyword arguments
    (``def objective(C, kernel)``).
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    ps = [p for p in sig.parameters.values() if p.kind is not p.VAR_POSITIONAL]
    return (
        len(ps) == 1
        and ps[0].kind in (ps[0].POSITIONAL_ONLY, ps[0].POSITIONAL_OR_KEYWORD)
        and ps[0].name not in set(names)
    )


def call_objective(fn: Callable[..., Any], params: Mapping[str, ParamValue]) -> Any:
    """Call ``fn`` with typed parameters, as a dict or as keyword arguments (see takes_dict)."""
    return fn(dict(params)) if takes_dict(fn, params) else fn(**params)


#: Seconds close() waits, in all, for stopped calls to return.
CLOSE_GRACE = 5.0


class InProcessExecutor(Executor):
    """Runs an objective function per trial in a thread pool.

    The function's return value becomes metrics: a number is the objective metric, a mapping
    gives several metrics, None means everything was reported with :func:`automl.report`. An
    exception fails the trial (with its traceback as the message); it never reaches the
    controller. A timed-out or cancelled call cannot be killed in a thread: its later reports
    are dropped and :func:`automl.should_stop` turns true so cooperative code can return.

    Args:
        fn: The objective.
        objective_metric: Metric name a plain number is stored under.
        parallel: Worker threads.
        timeout: Per-trial limit in seconds.
        inline: Run calls on the controller's thread (default: when parallel is 1 and there is
            no timeout). Early stopping works inline too: it is decided inside ``automl.report``
            (see :meth:`set_report_hook`).
        runs_dir: Root of per-trial directories; a trial's artifact directory
            (``automl.current_trial().artifact_dir``) is ``<runs_dir>/<experiment>/<trial>/
            artifacts``, created only when the trial saves something. None: trials have none.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        objective_metric: str,
        parallel: int = 1,
        timeout: float | None = None,
        inline: bool | None = None,
        runs_dir: str | Path | None = None,
    ) -> None:
        self._fn = fn
        self._runs_dir = Path(runs_dir).absolute() if runs_dir is not None else None
        self._takes_dict: bool | None = None
        self._metric = objective_metric
        self._timeout = timeout
        # One trial at a time with no timeout runs on the controller's thread: no hand-off,
        # and Ctrl-C reaches the controller directly.
        self._inline = parallel <= 1 and timeout is None if inline is None else inline
        self._queued: collections.deque[TrialRun] = collections.deque()
        self._events: queue.SimpleQueue[TrialEvent] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._deadline: dict[str, float] = {}
        self._ended: set[str] = set()  # trials whose exit event was already sent
        self._stop: set[str] = set()
        self._threads: dict[str, threading.Thread] = {}
        self._report_hook: ReportHook | None = None

    def set_report_hook(self, hook: ReportHook | None) -> None:
        """Decide early stopping at report time, as Optuna's ``should_prune`` does.

        ``hook(trial_id, step, metrics)`` runs inside :func:`automl.report`, on the trial's own
        thread, before the report returns; when it returns True the trial is stopped there and
        then, so :func:`automl.should_stop` is already true after that ``report`` call, however
        fast the training loop is. The controller installs it when the experiment has an early
        stopper; it must be thread-safe.
        """
        self._report_hook = hook

    def submit(self, run: TrialRun) -> None:
        """Queue the call on the thread pool."""
        if self._inline:
            self._queued.append(run)
            return
        if self._timeout is not None:
            self._deadline[run.trial_id] = time.monotonic() + self._timeout
        # A thread per trial, not a pool: a call that was stopped but ignores it must not hold a
        # slot the controller already gave to the next trial (the controller bounds parallelism).
        th = threading.Thread(
            target=self._run, args=(run,), name=f"trial-{run.number}", daemon=True
        )
        with self._lock:
            self._threads = {t: h for t, h in self._threads.items() if h.is_alive()}
            self._threads[run.trial_id] = th
        th.start()

    def _emit_exit(self, trial_id: str, status: ExitStatus, message: str = "") -> None:
        with self._lock:
            if trial_id in self._ended:
                return
            self._ended.add(trial_id)
            self._deadline.pop(trial_id, None)
        self._events.put(TrialEvent(trial_id, exit=TrialExit(status, message)))

    def _run(self, run: TrialRun) -> None:
        tid = run.trial_id

        def reporter(step: int | None, metrics: Mapping[str, float]) -> None:
            if tid in self._ended:
                return
            hook = self._report_hook
            stop = hook is not None and tid not in self._stop and hook(tid, step, metrics)
            self._events.put(TrialEvent(tid, metrics=metrics, step=step))
            if stop:
                self.cancel(tid)  # should_stop() is true from here on; the slot is free

        info = _report.TrialInfo(
            tid,
            run.experiment,
            run.number,
            dict(run.params),
            checkpoint_dir=run.attrs.get("checkpoint_dir"),
            parent_checkpoint_dir=run.attrs.get("parent_checkpoint_dir"),
            artifact_dir=(
                artifact_path(self._runs_dir, run.experiment, tid)
                if self._runs_dir is not None
                else None
            ),
        )
        token = _report.bind(info, reporter, lambda: tid in self._stop or tid in self._ended)
        try:
            if tid in self._stop:
                raise _report.TrialStopped
            if self._takes_dict is None:  # decided once: inspect.signature is slow per trial
                self._takes_dict = takes_dict(self._fn, run.params)
            result = self._fn(dict(run.params)) if self._takes_dict else self._fn(**run.params)
            metrics = self._metrics_of(result)
        except _report.TrialStopped:
            self._emit_exit(tid, ExitStatus.CANCELLED, "stopped")
            return
        except Exception as exc:
            tb = traceback.format_exc(limit=8)
            self._emit_exit(tid, ExitStatus.FAILED, f"{type(exc).__name__}: {exc}\n{tb}")
            return
        finally:
            _report.unbind(token)
        if metrics:
            reporter(None, metrics)
        status = ExitStatus.CANCELLED if tid in self._stop else ExitStatus.COMPLETED
        self._emit_exit(tid, status)

    def _metrics_of(self, result: Any) -> dict[str, float]:
        if result is None:
            return {}
        if isinstance(result, Mapping):
            out = {}
            for k, v in result.items():
                try:
                    out[str(k)] = float(v)
                except (TypeError, ValueError):
                    raise TypeError(
                        f"objective returned a non-numeric value for metric {k!r}: {v!r}"
                    ) from None
            return out
        try:
            value = float(result)
        except (TypeError, ValueError):
            raise TypeError(
                "objective must return a number, a dict of metrics or None; got "
                f"{type(result).__name__}"
            ) from None
        if math.isnan(value):
            raise ValueError(f"objective returned NaN for {self._metric!r}")
        return {self._metric: value}

    def poll(self, timeout: float) -> list[TrialEvent]:
        """Wait for the next events (running the next queued call first in inline mode)."""
        if self._queued:
            self._run(self._queued.popleft())
            timeout = 0.0
        if self._deadline:
            now = time.monotonic()
            for tid, deadline in list(self._deadline.items()):
                if now >= deadline:
                    self._emit_exit(
                        tid,
                        ExitStatus.TIMED_OUT,
                        f"trial ran longer than its timeout ({self._timeout:g} s)",
                    )
            if self._deadline:
                timeout = min(timeout, max(0.0, min(self._deadline.values()) - now))
        return drain(self._events, timeout)

    def cancel(self, trial_id: str) -> None:
        """Ask the call to stop; it is reported CANCELLED at once and its late reports dropped."""
        self._stop.add(trial_id)
        for run in list(self._queued):
            if run.trial_id == trial_id:
                self._queued.remove(run)
        self._emit_exit(trial_id, ExitStatus.CANCELLED, "cancelled")

    def close(self) -> None:
        """Stop accepting work and give stopped calls a moment to return.

        Cooperative code (checking :func:`automl.should_stop` or calling ``automl.report``)
        has left its function when ``tune`` returns; a call that ignores the stop is left to
        finish on its daemon thread after :data:`CLOSE_GRACE` seconds.
        """
        self._queued.clear()
        deadline = time.monotonic() + CLOSE_GRACE
        with self._lock:
            threads = list(self._threads.values())
            self._threads.clear()
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))
