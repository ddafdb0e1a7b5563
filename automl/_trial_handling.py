"""What the controller does with a trial: start it, follow its events, end it.

A mixin of :class:`automl._controller.Controller` (the state it works on is declared here and
set there): metrics are summarised and queued for the store, the early stopper decides on each
intermediate value (inside ``automl.report`` for in-process trials), and a trial's end is judged,
counted, told to the search and queued to be committed with the next trial's start.
"""

from __future__ import annotations

import math
import random
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from automl import _steering as steer
from automl._live import Progress, _Live, _unstorable
from automl.core import (
    ExperimentRecord,
    ExperimentSpec,
    Observation,
    TrialRecord,
    TrialState,
    suggested,
    with_defaults,
)
from automl.core._pareto import feasible, judge, reaches_goals
from automl.errors import StorageError
from automl.store import Store, TrialEnd
from search import EarlyStopper, Suggester
from trials import Executor, ExitStatus, TrialEvent, TrialRun, summarize

__all__ = ["MAX_ATTEMPTS", "TrialHandling"]

MAX_ATTEMPTS = 3  # a trial whose run is lost (supervisor or node gone) this often fails
_ALPHABET = string.ascii_lowercase + string.digits  # of trial ids


class TrialHandling:
    """The controller's trial-level work (a mixin; see the module docstring)."""

    # Set by Controller.__init__ (and its loop).
    _store: Store
    _exp: ExperimentRecord
    _spec: ExperimentSpec
    _executor: Executor
    _on_progress: Callable[[Progress], None] | None
    _runs_dir: str | Path | None
    _live: dict[str, _Live]
    _ends: list[TrialEnd]
    _id_rng: random.Random
    _counts: dict[TrialState, int]
    _best: tuple[float, str] | None
    _goal: TrialRecord | None
    _next_number: int
    _stopper: EarlyStopper | None
    _early: dict[str, int]
    _at_report: bool
    _stopper_lock: threading.Lock
    _bad: dict[str, str]
    _steer: steer.SteerState

    def _count(self, t: TrialRecord) -> None:
        self._counts[t.state] += 1
        self._count_best(t)

    def _count_best(self, t: TrialRecord) -> None:
        if (
            not t.invalidated
            and t.state is TrialState.SUCCEEDED
            and t.value is not None
            and feasible(t)
            and (self._best is None or self._spec.objective.better(t.value, self._best[0]))
        ):
            self._best = (t.value, t.id)
        if self._spec.multi_objective and self._goal is None and not t.invalidated:
            self._goal = t if reaches_goals(self._spec, t) else None

    def _live_records(self) -> list[TrialRecord]:
        return [live.record for live in self._live.values()]

    def _new_id(self) -> str:
        return f"{self._spec.name}-{''.join(self._id_rng.choices(_ALPHABET, k=8))}"

    def _run_of(self, r: TrialRecord) -> TrialRun:
        params = r.params
        t = self._spec.trial_template
        if t.command is not None and tuple(t.command[1:3]) != ("-m", "automl._fnrun"):
            # A command's placeholder for an inactive parameter renders its default; a
            # function (in a thread or through automl._fnrun) gets the active ones only.
            params = with_defaults(self._spec.parameters, params)
        return TrialRun(
            r.id, self._spec.name, r.number, params, r.attempt, self._spec.namespace, r.attrs
        )

    def _start(self, r: TrialRecord) -> None:
        if r.state is TrialState.CREATED:
            self._store.trials.update(r.id, state=TrialState.RUNNING, started_at=time.time())
            self._live[r.id].record = r = replace(r, state=TrialState.RUNNING)
        self._executor.submit(self._run_of(r))

    def _handle(self, events: list[TrialEvent], suggester: Suggester) -> None:
        if not events:
            return
        finished: list[tuple[_Live, TrialEvent]] = []
        for ev in events:
            live = self._live.get(ev.trial_id)
            if live is None:
                continue
            if ev.metrics and ev.trial_id in self._bad:
                pass  # being stopped for data the store cannot hold: drop what follows
            elif ev.metrics and (why := _unstorable(ev)) is not None:
                self._bad[ev.trial_id] = why
                self._executor.cancel(ev.trial_id)
            elif ev.metrics:
                t = time.time()
                live.metrics = summarize(live.metrics, ev.metrics)
                objective = ev.metrics.get(self._spec.objective.metric)
                live.nan = live.nan or (objective is not None and math.isnan(objective))
                live.pending.extend(
                    Observation(ev.trial_id, k, v, ev.step, t) for k, v in ev.metrics.items()
                )
                if self._stopper is not None and ev.exit is None and not self._at_report:
                    self._consider_stopping(live, ev)
            if ev.started is not None:
                self._store.trials.update(ev.trial_id, runner=ev.started)
            if ev.exit is not None and all(f is not live for f, _ in finished):
                finished.append((live, ev))
        done = {live.record.id for live, _ in finished}
        flush: list[Observation] = []
        for live in self._live.values():
            if live.pending and live.record.id not in done:
                flush.extend(live.pending)
                live.pending.clear()
        if flush:
            self._append(flush)
        for live, ev in finished:
            self._end_trial(live, ev, suggester)

    def _append(self, flush: list[Observation]) -> None:
        """Store observations; a trial whose data the store refuses fails, the rest go on."""
        try:
            self._store.observations.append(flush)
        except Exception:
            self._append_each(flush)

    def _append_each(self, flush: list[Observation]) -> None:
        """Store each trial's observations alone, to tell one trial's data from a store down."""
        by_trial: dict[str, list[Observation]] = {}
        for o in flush:
            by_trial.setdefault(o.trial_id, []).append(o)
        failed: dict[str, str] = {}
        for tid, obs in by_trial.items():
            try:
                self._store.observations.append(obs)
            except Exception as exc:
                failed[tid] = f"the store refused its metrics: {type(exc).__name__}: {exc}"[:2000]
        if failed and len(failed) == len(by_trial) and not self._store_answers():
            raise StorageError(next(iter(failed.values())))  # the store, not the data
        for tid, why in failed.items():
            self._bad.setdefault(tid, why)
            self._executor.cancel(tid)

    def _store_answers(self) -> bool:
        try:
            self._store.experiments.stop_requested(self._exp.id)
        except Exception:
            return False
        return True

    def _consider_stopping(self, live: _Live, ev: TrialEvent) -> None:
        """Ask the early stopper about a new intermediate objective value."""
        assert self._stopper is not None
        value = ev.metrics.get(self._spec.objective.metric)
        tid = live.record.id
        if value is None or tid in self._early:
            return
        live.reports += 1
        step = ev.step if ev.step is not None else live.reports
        if self._stopper.report(tid, step, value):
            self._early[tid] = step
            self._executor.cancel(tid)

    def _decide_at_report(self, tid: str, step: int | None, metrics: Mapping[str, float]) -> bool:
        """In-process trials: the early stopper decides inside automl.report, before it returns."""
        live = self._live.get(tid)
        value = metrics.get(self._spec.objective.metric)
        if live is None or value is None or self._stopper is None:
            return False
        with self._stopper_lock:
            if tid in self._early:
                return False
            live.reports += 1
            at = step if step is not None else live.reports
            if not self._stopper.report(tid, at, value):
                return False
            self._early[tid] = at
            return True

    def _end_trial(self, live: _Live, ev: TrialEvent, suggester: Suggester) -> None:
        assert ev.exit is not None
        record_id = live.record.id
        value = None
        attrs: dict[str, Any] | None = None  # objective vector and feasibility, when kept
        status, message = ev.exit.status, ev.exit.message
        if status is ExitStatus.LOST and live.record.attempt < MAX_ATTEMPTS:
            self._rerun(live, message)
            return
        if record_id in self._bad:
            state, message = TrialState.FAILED, self._bad.pop(record_id)
            live.pending.clear()
        elif status is ExitStatus.COMPLETED:
            collector = self._spec.metrics_collector.kind.value
            state, value, message, extra = judge(self._spec, live.metrics, live.nan, collector)
            attrs = {**live.record.attrs, **extra} if extra else None
        elif record_id in self._early and status is not ExitStatus.TIMED_OUT:
            # Cancelled, or (adopted) killed by a signal its dead controller's decision sent.
            state = TrialState.EARLY_STOPPED
            message = (
                f"stopped early at step {self._early.pop(record_id)} by "
                f"{self._stopper.name if self._stopper else 'the early stopper'}"
            )
        elif status is ExitStatus.CANCELLED:
            state = TrialState.KILLED
        elif status is ExitStatus.PREEMPTED:
            state, message = steer.preempted(self._spec, live.record, message)
        else:
            state = TrialState.FAILED
        now = time.time()
        outputs = self._outputs(record_id)
        if self._spec.define_by_run:
            self._define_by_run_params(live, outputs)
        # Written with the next trial's start, or before the loop waits (see _save).
        self._ends.append(
            TrialEnd(
                record_id,
                state,
                value,
                dict(live.metrics),
                message,
                tuple(live.pending),
                now,
                outputs,
                attrs,
            )
        )
        record = replace(
            live.record,
            state=state,
            value=value,
            metrics=dict(live.metrics),
            message=message,
            finished_at=now,
            outputs=outputs or {},
            attrs=live.record.attrs if attrs is None else attrs,
        )
        self._live.pop(record.id, None)
        self._early.pop(record_id, None)  # a trial may end on its own right after the decision
        self._count(record)
        self._steer.account(self._spec, record)
        if state is TrialState.PREEMPTED:  # the same parameters again, next, as a new trial
            rerun = steer.rerun_record(record, self._new_id(), self._next_number, now)
            self._next_number += 1
            self._store.trials.add([rerun])
            self._steer.queue.insert(0, rerun)
        suggester.tell(record)
        if self._stopper is not None:
            with self._stopper_lock:
                self._stopper.finish(record)
        if self._on_progress is not None:
            self._on_progress(self.progress(record))

    def _define_by_run_params(self, live: _Live, outputs: dict[str, Any] | None) -> None:
        """A define-by-run trial's params become what it asked for (not the whole proposal)."""
        found = suggested(outputs)
        if found is not None:
            live.record = replace(live.record, params=found[0])
            self._store.trials.update(live.record.id, params=found[0])

    def _rerun(self, live: _Live, why: str) -> None:
        """Run a trial whose run was lost again, as a new attempt (its files are kept)."""
        r = live.record
        attempt = r.attempt + 1
        self._store.trials.restart(r.id, attempt)
        self._early.pop(r.id, None)
        if self._stopper is not None:
            self._stopper.finish(replace(r, state=TrialState.KILLED))
        record = replace(r, state=TrialState.CREATED, attempt=attempt, metrics={}, value=None)
        self._live[r.id] = _Live(record)
        self._start(record)

    def _outputs(self, trial_id: str) -> dict[str, Any] | None:
        """What the trial's artifact directory holds (one scandir), or None without one."""
        if self._runs_dir is None:
            return None
        from automl._artifacts import artifact_path, collect_outputs

        return collect_outputs(artifact_path(self._runs_dir, self._spec.name, trial_id))

    def progress(self, last: TrialRecord | None = None) -> Progress:
        """The current snapshot."""
        c = self._counts
        done = steer.terminal(c)
        failed = c[TrialState.FAILED] + c[TrialState.METRICS_UNAVAILABLE]
        best = self._best
        return Progress(
            done,
            len(self._live),
            failed,
            self._spec.max_trial_count,
            best[0] if best else None,
            best[1] if best else None,
            last,
            c[TrialState.EARLY_STOPPED],
            self._steer.used_share(self._spec, self._live_records()),
        )
