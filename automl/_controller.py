"""The controller: one reconcile loop per experiment; the store is the source of truth.

Each turn: end the experiment if a budget says so (Katib's order: goal, failures, trial count,
then our time budget and grid exhaustion), fill free parallel slots with new suggestions, wait for
executor events, and store what they say. Every trial and observation is committed as it happens,
so a controller killed at any moment can be replaced by another (``automl resume``), which
restarts interrupted trials with their parameters and rebuilds the search from the stored trials.
What happens to one trial (its events, early stops, its end) is in automl/_trial_handling.py.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from automl import _steering as steer
from automl._lease import STALE_S, _holder_alive, controller_live
from automl._live import Progress, _Live, _NullSuggester
from automl._trial_handling import TrialHandling
from automl._turns import TurnStats
from automl.core import (
    EndReason,
    ExperimentRecord,
    ExperimentSpec,
    ExperimentState,
    TrialRecord,
    TrialState,
)
from automl.core._pareto import (
    goal_member,
    goal_message,
    pareto_front,
)
from automl.errors import AutoMLError, ExperimentBusyError
from automl.store import Store, TrialEnd
from search import EarlyStopper, Suggester, create_stopper, create_suggester
from trials import Executor

__all__ = ["Controller", "Progress", "controller_live"]

HEARTBEAT_S = 5.0
WATCH_S = 0.5
# A trial's end is committed with the next trial's insert only while suggestions take less than
# this: longer, and the end is committed first, so nobody waits on the model to see it.
MERGE_SUGGEST_S = 0.02


class Controller(TrialHandling):
    """Runs one experiment to its end.

    Args:
        store: The store holding the experiment.
        experiment: The experiment to run (new, interrupted, stopped or to be extended).
        executor: Where trials run.
        on_progress: Called after every finished trial.
        suggester: Override the algorithm (tests); built from the spec and history otherwise.
        runs_dir: Where trials keep their files (for algorithms that keep some, like PBT).
    """

    def __init__(
        self,
        store: Store,
        experiment: ExperimentRecord,
        executor: Executor,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        suggester: Suggester | None = None,
        runs_dir: str | Path | None = None,
        keep_stop: bool = False,
    ) -> None:
        self._store = store
        self._keep_stop = keep_stop
        self._exp = experiment
        self._spec: ExperimentSpec = experiment.spec
        self._executor = executor
        self._on_progress = on_progress
        self._suggester_override = suggester
        self._runs_dir = runs_dir
        self.controller_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._live: dict[str, _Live] = {}
        self._ends: list[TrialEnd] = []  # trials that ended, not yet written (see _save)
        self._suggest_s = 0.0  # the last suggestion's time, per trial (see MERGE_SUGGEST_S)
        # Trial ids: 8 random characters from a generator seeded once from the OS.
        self._id_rng = random.Random(secrets.randbits(128))
        self._counts: dict[TrialState, int] = dict.fromkeys(TrialState, 0)
        self._best: tuple[float, str] | None = None  # feasible, first objective
        self._goal: TrialRecord | None = None  # several objectives: a trial at every goal
        self._next_number = 0
        self._sampler_state: Mapping[str, Any] = experiment.sampler_state
        self._stopper: EarlyStopper | None = None
        self._nothing_left = False
        self._early: dict[str, int] = {}  # trials the early stopper stopped -> step
        # In-process trials: the stopper decides inside automl.report, on the trial's thread.
        self._at_report = False
        self._stopper_lock = threading.Lock()
        self._bad: dict[str, str] = {}  # trials failed for data the store cannot hold -> why
        self._stop_requested = threading.Event()
        self._done = threading.Event()
        self._turns = TurnStats()  # turn latency, written with the heartbeat (/metrics)
        # Hand-made changes (automl enqueue/invalidate/budget): the heartbeat thread sees the
        # experiment's steer counter move and the loop applies them at its next turn.
        self._steer = steer.SteerState()
        self._steered = threading.Event()

    # -- set-up -----------------------------------------------------------------------------
    def _claim(self) -> None:
        exp = self._exp
        observed = self._store.experiments.get(exp.name).controller
        stale_before = time.time() + 1
        if observed is not None:
            alive = _holder_alive(observed)
            if alive is True:
                stale_before = 0.0  # a live process on this host keeps its lease
            elif alive is None:
                stale_before = time.time() - STALE_S  # another host: trust the heartbeat
        if not self._store.experiments.claim(
            exp.id, self.controller_id, observed, stale_before, keep_stop=self._keep_stop
        ):
            fresh = self._store.experiments.get(exp.name)
            age = time.time() - (fresh.heartbeat_at or 0)
            raise ExperimentBusyError(
                f"experiment {exp.name!r} is being run by controller {fresh.controller} "
                f"(last heartbeat {age:.0f} s ago); stop it first with: automl stop {exp.name}"
            )
        if self._keep_stop and self._store.experiments.stop_requested(exp.id):
            self._stop_requested.set()  # end at the first turn, before any trial starts

    def _load(self) -> Suggester:
        trials = self._store.trials.list(self._exp.id)
        runners = self._store.trials.runners(self._exp.id)
        history: list[TrialRecord] = []
        adopted: list[str] = []
        self._steer.seq = self._store.experiments.watch(self._exp.id)[1]
        for t in trials:
            self._next_number = max(self._next_number, t.number + 1)
            if steer.waiting(t):
                self._steer.queue.append(t)  # enqueued by hand, not started yet: runs first
                continue
            if t.state is TrialState.RUNNING and self._executor.adopt(
                self._run_of(t), runners.get(t.id) or {}
            ):
                # Left running (or finished unwatched) by a controller that died: follow it to
                # its end from what it writes; its metrics are read again from the start.
                t = replace(t, metrics={}, value=None)
                self._live[t.id] = _Live(t)
                adopted.append(t.id)
            elif t.state.is_active:
                # Its fate cannot be known: stop what may still run, run it again.
                if runners.get(t.id):
                    self._executor.reap(runners[t.id])
                # Stored, then the controller died before starting it: still its first run.
                unstarted = t.state is TrialState.CREATED or (
                    not runners.get(t.id) and self._executor.never_started(self._run_of(t))
                )
                attempt = t.attempt if unstarted else t.attempt + 1
                self._store.trials.restart(t.id, attempt)
                t = replace(t, state=TrialState.CREATED, attempt=attempt, metrics={}, value=None)
                self._live[t.id] = _Live(t)
            else:
                self._count(t)
                self._steer.account(self._spec, t)
                if t.invalidated:
                    continue  # kept in the store, out of the search's history
            history.append(t)
        self._steer.queue.sort(key=lambda t: t.created_at)  # in the order they were enqueued
        self._store.observations.delete(adopted)
        if self._spec.early_stopping is not None:
            self._stopper = create_stopper(self._spec, history, self._curves())
            set_hook = getattr(self._executor, "set_report_hook", None)
            if set_hook is not None:
                set_hook(self._decide_at_report)
                self._at_report = True
        if self._suggester_override is not None:
            return self._suggester_override
        warm = steer.warm_history(self._store, self._spec)
        return create_suggester(
            self._spec, warm + history, self._sampler_state, runs_dir=self._runs_dir
        )

    def _curves(self) -> dict[str, list[tuple[int, float]]]:
        """Stored intermediate objective values per trial (implicit steps count 1, 2, ...)."""
        metric = self._spec.objective.metric
        curves: dict[str, list[tuple[int, float]]] = {}
        for o in self._store.observations.for_experiment(self._exp.id):
            if o.metric == metric:
                curve = curves.setdefault(o.trial_id, [])
                curve.append((o.step if o.step is not None else len(curve) + 1, o.value))
        return curves

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> ExperimentRecord:
        """Run until a budget, the goal, a stop request or the search space ends it.

        Returns:
            The experiment as stored at the end.

        Raises:
            ExperimentBusyError: Another live controller runs this experiment.
        """
        self._claim()
        # A resumed experiment goes on counting: the stored histogram only grows.
        self._turns = TurnStats(self._store.experiments.turn_stats(self._exp.id))
        watcher = threading.Thread(target=self._watch, name="automl-heartbeat", daemon=True)
        watcher.start()
        try:
            suggester = self._load()
            now = time.time()
            started = self._exp.started_at or now
            self._store.experiments.update(
                self._exp.id,
                state=ExperimentState.RUNNING,
                reason="",
                message="",
                started_at=started,
                finished_at=None,
                steer_applied=self._steer.seq,  # the load read every change made so far
            )
            for live in list(self._live.values()):  # trials whose fate was unknown run again
                if live.record.state is TrialState.CREATED:
                    self._start(live.record)
            state, reason, message = self._loop(suggester, started)
        except KeyboardInterrupt:
            self._done.set()
            self._interrupt()
            raise
        except BaseException as exc:
            self._done.set()
            self._interrupt(
                "ControllerError",
                f"the controller failed: {type(exc).__name__}: {str(exc)[:2000]}; "
                f"continue with: automl resume {self._spec.name}",
            )
            raise
        self._done.set()
        return self._finish(state, reason, message)

    def stop_orphaned(self) -> ExperimentRecord:
        """Stop an experiment whose controller is gone, losing nothing its trials finished.

        Takes the lease, adopts what the dead controller's trials left (a trial that ended
        meanwhile is recorded as it ended), kills the ones still running, and ends the
        experiment Stopped.

        Raises:
            ExperimentBusyError: A live controller holds the experiment.
        """
        self._claim()
        try:
            suggester = self._load()
            self._drain_cancelled(suggester)
        except BaseException:
            self._release()
            raise
        self._done.set()
        return self._finish(
            ExperimentState.STOPPED,
            EndReason.STOPPED,
            "stopped on request (no controller was running); its running trials were killed",
        )

    def _watch(self) -> None:
        """Keep the lease alive and notice stop requests.

        A thread of its own, because an in-process trial may hold the loop for a long time.
        """
        next_beat = 0.0
        while not self._done.wait(WATCH_S):
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + HEARTBEAT_S
                    beat: dict[str, Any] = {"heartbeat_at": time.time()}
                    turns = self._turns.dumps_if_changed()
                    if turns is not None:
                        beat["turn_stats"] = turns
                    self._store.experiments.update(self._exp.id, **beat)
                stop, seq = self._store.experiments.watch(self._exp.id)
                if seq != self._steer.seq:
                    self._steer.seq = seq
                    self._steered.set()
                if not self._stop_requested.is_set() and stop:
                    self._stop_requested.set()
                    # Reach trials now: an in-process trial may hold the loop's thread.
                    for trial_id in list(self._live):
                        self._executor.cancel(trial_id)
            except Exception:  # a transient database error must not kill the lease thread
                continue

    def _loop(
        self, suggester: Suggester, started: float
    ) -> tuple[ExperimentState, EndReason, str]:
        spec = self._spec
        while True:
            turn = time.perf_counter()
            numbered = self._next_number
            if self._steered.is_set():
                self._steered.clear()
                suggester = self._apply_steering(suggester)
            spec = self._spec
            deadline = started + spec.timeout if spec.timeout is not None else None
            end = self._should_end(suggester, deadline)
            if end is not None:
                return end
            try:
                self._fill(suggester)
            except AutoMLError:
                raise
            except Exception as exc:  # a crashing algorithm ends the experiment, not the process
                return (
                    ExperimentState.FAILED,
                    EndReason.SUGGESTION_FAILED,
                    f"the {spec.algorithm.name} algorithm failed: {type(exc).__name__}: {exc}",
                )
            wait = WATCH_S
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.time()))
            if not self._live:
                wait = min(wait, 0.05)
            self._save()  # nothing that ended waits in memory while the loop waits
            busy = time.perf_counter() - turn
            events = self._executor.poll(wait)
            turn = time.perf_counter()
            self._handle(events, suggester)
            if events or self._next_number != numbered:  # idle turns would hide the real ones
                self._turns.observe(busy + time.perf_counter() - turn)

    def _should_end(
        self, suggester: Suggester, deadline: float | None
    ) -> tuple[ExperimentState, EndReason, str] | None:
        spec, c = self._spec, self._counts
        obj = spec.objective
        if self._goal is not None:
            self._save()
            member = goal_member(spec, pareto_front(spec, self._store.trials.list(self._exp.id)))
            return (
                ExperimentState.SUCCEEDED,
                EndReason.GOAL_REACHED,
                goal_message(spec, member or self._goal),
            )
        if not spec.multi_objective and self._best is not None and obj.reached(self._best[0]):
            return (
                ExperimentState.SUCCEEDED,
                EndReason.GOAL_REACHED,
                f"trial {self._best[1]} reached the goal {obj.metric}={self._best[0]:g} "
                f"(goal {obj.goal:g})",
            )
        failed = c[TrialState.FAILED] + c[TrialState.METRICS_UNAVAILABLE]
        if (
            spec.max_failed_trial_count is not None
            and failed > 0
            and failed >= spec.max_failed_trial_count
        ):
            return (
                ExperimentState.FAILED,
                EndReason.FAILED,
                f"{failed} trials failed (maxFailedTrialCount {spec.max_failed_trial_count})",
            )
        terminal = steer.terminal(c)
        # Not while trials run: a maxTrialCount lowered by hand lets them finish.
        if (
            spec.max_trial_count is not None
            and terminal >= spec.max_trial_count
            and not self._live
        ):
            return (
                ExperimentState.SUCCEEDED,
                EndReason.MAX_TRIALS_REACHED,
                f"{terminal} trials finished (maxTrialCount {spec.max_trial_count})",
            )
        if deadline is not None and time.time() >= deadline:
            return (
                ExperimentState.SUCCEEDED,
                EndReason.TIMEOUT,
                f"the time budget ({spec.timeout:g} s) ran out",
            )
        spent = self._steer.exhausted(spec, self._live_records())
        if spent is not None:
            return ExperimentState.SUCCEEDED, EndReason.BUDGET_EXHAUSTED, spent
        if self._stop_requested.is_set():
            return (
                ExperimentState.STOPPED,
                EndReason.STOPPED,
                "stopped on request; running trials were killed",
            )
        idle = not self._live and not self._steer.queue
        if (suggester.exhausted or self._nothing_left) and idle:
            return (
                ExperimentState.SUCCEEDED,
                EndReason.SEARCH_SPACE_EXHAUSTED,
                f"the search space is exhausted after {terminal} trials "
                f"({self._spec.algorithm.name} has nothing left to suggest)",
            )
        return None

    def _fill(self, suggester: Suggester) -> None:
        spec = self._spec
        want = spec.parallel_trial_count - len(self._live)
        if spec.max_trial_count is not None:
            terminal = steer.terminal(self._counts)
            want = min(want, spec.max_trial_count - terminal - len(self._live))
        room = self._executor.capacity()  # free devices/cores: a trial that cannot start waits
        if room is not None:
            want = min(want, room)
        while want > 0 and self._steer.queue:  # enqueued configurations run before suggestions
            self._start_enqueued(self._steer.queue.pop(0), suggester)
            want -= 1
        if want <= 0 or suggester.exhausted:
            return
        ids = [self._new_id() for _ in range(want)]
        if self._suggest_s > MERGE_SUGGEST_S:
            self._save()
        began = time.perf_counter()
        suggestions = suggester.suggest(ids)
        self._suggest_s = (time.perf_counter() - began) / len(ids)
        if not suggestions:
            # Nothing running and nothing to suggest: no trial will ever change that.
            self._nothing_left = not self._live
            return
        now = time.time()
        records = []
        for trial_id, s in zip(ids, suggestions, strict=False):
            records.append(
                TrialRecord(
                    id=trial_id,
                    experiment_id=self._exp.id,
                    number=self._next_number,
                    params=s.params,
                    state=TrialState.RUNNING,
                    created_at=now,
                    started_at=now,
                    attrs=s.attrs,
                )
            )
            self._next_number += 1
        state = suggester.state()
        changed = state != self._sampler_state
        # One transaction: the new trials, and the ends of the trials they replace.
        self._store.trials.add(records, sampler_state=state if changed else None, ends=self._ends)
        self._sampler_state = dict(state) if changed else self._sampler_state
        self._saved()
        for r in records:
            self._live[r.id] = _Live(r)
            self._start(r)

    def _start_enqueued(self, t: TrialRecord, suggester: Suggester) -> None:
        """Start a configuration enqueued by hand (or a preempted trial's rerun) as a trial."""
        now = time.time()
        number = t.number
        if number < 0:  # enqueued from outside: a placeholder number until it starts
            number = self._next_number
            self._next_number += 1
        r = replace(t, number=number, state=TrialState.RUNNING, started_at=now)
        self._store.trials.update(r.id, number=r.number, state=TrialState.RUNNING, started_at=now)
        self._live[r.id] = _Live(r)
        suggester.add_pending(r)  # the sampler learns from it like from its own trials
        self._executor.submit(self._run_of(r))

    def _apply_steering(self, suggester: Suggester) -> Suggester:
        """Apply hand-made changes: budgets, newly enqueued trials, (in)validated trials."""
        seq = self._steer.seq  # everything up to it is in what is read below
        self._save()
        stored = self._store.experiments.get(self._exp.name)
        self._spec = steer.with_budgets_of(self._spec, stored.spec)
        trials = self._store.trials.list(self._exp.id)
        self._store.experiments.update(self._exp.id, steer_applied=seq)
        if not self._steer.refresh(trials, self._live):
            return suggester
        # The set of invalidated trials changed: recount the best and rebuild the search from
        # the store without them (running trials are replayed as pending).
        self._best = self._goal = None
        for t in trials:
            if not t.state.is_active:
                self._count_best(t)
        if self._suggester_override is not None:
            return suggester
        history = [t for t in trials if not t.invalidated and not steer.waiting(t)]
        return create_suggester(
            self._spec,
            steer.warm_history(self._store, self._spec) + history,
            self._sampler_state,
            runs_dir=self._runs_dir,
        )

    def _save(self) -> None:
        """Commit the ends of trials not yet written (one transaction for all of them).

        A trial's end waits in memory only while the loop computes a fast next suggestion (see
        MERGE_SUGGEST_S), never while it waits; a controller killed in between loses nothing:
        the trial's files, its Ray hub or its Kubernetes Job still hold its end, and adoption
        records it.
        """
        if self._ends:
            self._store.trials.finish_many(self._ends)
            self._saved()

    def _saved(self) -> None:
        ends, self._ends = self._ends, []
        for e in ends:
            # Only now may the executor drop what an adopter would need (a hub gone: nothing).
            with contextlib.suppress(Exception):
                self._executor.recorded(e.trial_id)

    # -- the end ----------------------------------------------------------------------------
    def _drain_cancelled(self, suggester: Suggester | None, timeout: float = 10.0) -> None:
        for tid in list(self._live):
            self._executor.cancel(tid)
        end = time.monotonic() + timeout
        while self._live and time.monotonic() < end:
            events = self._executor.poll(0.2)
            if suggester is not None:
                self._handle(events, suggester)

    def _finish(self, state: ExperimentState, reason: EndReason, message: str) -> ExperimentRecord:
        try:
            if self._live:
                self._drain_cancelled(_NullSuggester())
            self._save()
            self._executor.close()
        finally:
            self._store.experiments.update(
                self._exp.id,
                state=state,
                reason=reason.value,
                message=message,
                finished_at=time.time(),
                controller=None,
                heartbeat_at=None,
                **self._turns_final(),
            )
        return self._store.experiments.get(self._exp.name)

    def _turns_final(self) -> dict[str, Any]:
        turns = self._turns.dumps_if_changed()
        return {} if turns is None else {"turn_stats": turns}

    def _interrupt(self, reason: str = "Interrupted", message: str = "") -> None:
        """Ctrl-C or a controller error: kill running trials, leave them to run again on resume.

        The experiment is left Stopped with the reason, never Running without a controller.
        """
        try:
            with contextlib.suppress(Exception):  # the ends known so far, if the store answers
                self._save()
            for tid in list(self._live):
                self._executor.cancel(tid)
            self._executor.close()
            for tid, live in self._live.items():
                self._store.trials.restart(tid, live.record.attempt + 1)
        finally:
            self._store.experiments.update(
                self._exp.id,
                state=ExperimentState.STOPPED,
                reason=reason,
                message=message or f"interrupted; continue with: automl resume {self._spec.name}",
                finished_at=time.time(),
                controller=None,
                heartbeat_at=None,
            )

    def _release(self) -> None:
        try:
            self._executor.close()
        finally:
            self._store.experiments.update(self._exp.id, controller=None, heartbeat_at=None)
