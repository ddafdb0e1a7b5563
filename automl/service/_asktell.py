"""Ask and tell: trials that run where automl does not reach (another cluster, a lab instrument).

``ask`` builds the experiment's suggester from the stored history (the same algorithm, settings,
seed and pending-trial rules as a controller) and stores one new Running trial; ``tell`` stores
intermediate values (and asks the early stopper about them) or ends the trial. An experiment is
driven either by a controller or by ask/tell, never both at once. An asked trial that is not
ended within the trial timeout (``trial_template.timeout``) fails the next time anyone looks.
"""

from __future__ import annotations

import json
import math
import secrets
import string
import threading
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError

from automl.core import (
    EndReason,
    ExperimentRecord,
    ExperimentState,
    Observation,
    TrialRecord,
    TrialState,
)
from automl.core._pareto import goal_member, goal_message, judge, pareto_front
from automl.errors import AutoMLError, ExperimentBusyError, NotFoundError, SpecError
from automl.store import Store

__all__ = ["AskTell"]

_ALPHABET = string.ascii_lowercase + string.digits
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock(name: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(name, threading.Lock())


class AskTell:
    """Ask/tell over one store (the server keeps one; ``Client`` makes one per call)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- reading -----------------------------------------------------------------------------
    def trial(self, name: str, trial_id: str) -> TrialRecord:
        """One trial of an experiment (an overdue asked trial is failed first).

        Raises:
            NotFoundError: No such experiment, or no such trial in it.
        """
        exp = self._store.experiments.get(name)
        trials = self._expire(exp, self._store.trials.list(exp.id))
        for t in trials:
            if t.id == trial_id:
                return t
        raise NotFoundError(f"experiment {name!r} has no trial {trial_id!r}")

    # -- ask ---------------------------------------------------------------------------------
    def ask(self, name: str) -> TrialRecord:
        """A new Running trial with suggested parameters.

        Raises:
            ExperimentBusyError: A controller runs the experiment.
            AutoMLError: It has ended, or ``parallelTrialCount`` trials are already out.
        """
        with _lock(name):
            for attempt in range(3):
                try:
                    return self._ask(name)
                except IntegrityError:  # another process took the same trial number
                    if attempt == 2:
                        raise AutoMLError(
                            f"experiment {name!r}: concurrent asks collided; ask again"
                        ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _ask(self, name: str) -> TrialRecord:
        from automl._controller import controller_live
        from search import create_suggester

        exp = self._store.experiments.get(name)
        if controller_live(exp):
            raise ExperimentBusyError(
                f"experiment {name!r} is run by controller {exp.controller}; ask and tell drive "
                "only an experiment that no controller runs (create it without queueing it)"
            )
        trials = self._expire(exp, self._store.trials.list(exp.id))
        exp = self._end_if_due(exp, trials)
        if exp.state.is_terminal:
            raise AutoMLError(
                f"experiment {name!r} has ended ({exp.state.value}: {exp.reason}); raise its "
                f"budget and resume it to ask for more trials"
            )
        spec = exp.spec
        active = [t for t in trials if t.state.is_active]
        if len(active) >= spec.parallel_trial_count:
            raise AutoMLError(
                f"experiment {name!r} already has {len(active)} trial(s) out "
                f"(parallelTrialCount {spec.parallel_trial_count}); tell or fail one first"
            )
        suggester = create_suggester(spec, trials, exp.sampler_state)
        trial_id = f"{name}-{''.join(secrets.choice(_ALPHABET) for _ in range(8))}"
        suggestions = suggester.suggest([trial_id])
        if not suggestions:
            if not active:
                self._end(
                    exp,
                    ExperimentState.SUCCEEDED,
                    EndReason.SEARCH_SPACE_EXHAUSTED,
                    f"the search space is exhausted after {len(trials)} trials",
                )
            raise AutoMLError(
                f"experiment {name!r}: {spec.algorithm.name} has nothing to suggest now"
                + ("; tell the trials that are out first" if active else "")
            )
        now = time.time()
        timeout = spec.trial_template.timeout
        s = suggestions[0]
        record = TrialRecord(
            id=trial_id,
            experiment_id=exp.id,
            number=max((t.number for t in trials), default=-1) + 1,
            params=s.params,
            state=TrialState.RUNNING,
            created_at=now,
            started_at=now,
            attrs={**s.attrs, "asked": {"deadline": now + timeout if timeout else None}},
        )
        state = suggester.state()
        self._store.trials.add(
            [record], sampler_state=state if state != exp.sampler_state else None
        )
        if exp.state is ExperimentState.CREATED:
            self._store.experiments.update(
                exp.id, state=ExperimentState.RUNNING, started_at=exp.started_at or now
            )
        return record

    # -- tell --------------------------------------------------------------------------------
    def tell(
        self,
        name: str,
        trial_id: str,
        metrics: Mapping[str, Any],
        *,
        step: int | None = None,
        final: bool = False,
    ) -> bool:
        """Store metric values of an asked trial; with ``final`` end it.

        Returns:
            True if early stopping stopped the trial (it is now EarlyStopped).

        Raises:
            SpecError: A metric value that is not a number.
            AutoMLError: The trial has already ended.
        """
        from trials import objective_value, summarize

        values: dict[str, float] = {}
        for k, v in metrics.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise SpecError(f"must be a number; got {v!r}", path=f"metrics.{k}")
            values[k] = float(v)
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise SpecError(f"must be an integer; got {step!r}", path="step")
        with _lock(name):
            exp = self._store.experiments.get(name)
            trial = self._active(exp, trial_id)
            now = time.time()
            obs = [Observation(trial_id, k, v, step, now) for k, v in values.items()]
            summary = summarize(trial.metrics, values)
            spec = exp.spec
            if final:  # the same judgement as the controller's (objectives, constraints)
                state, value, message, extra = judge(spec, summary, False, "ask/tell")
                attrs = {**trial.attrs, **extra} if extra else None
                self._store.trials.finish(
                    trial_id, state, value, summary, message, obs, attrs=attrs
                )
                self._end_if_due(exp, self._store.trials.list(exp.id))
                return False
            stop = self._should_stop(exp, trial, values, step)
            if stop:
                value = objective_value(spec.objective, summary)
                self._store.trials.finish(
                    trial_id,
                    TrialState.EARLY_STOPPED,
                    value if value is not None and math.isfinite(value) else None,
                    summary,
                    f"stopped early at step {step} by {spec.early_stopping.name}"
                    if spec.early_stopping
                    else "stopped early",
                    obs,
                )
                self._end_if_due(exp, self._store.trials.list(exp.id))
                return True
            self._store.observations.append(obs)
            self._store.trials.update(
                trial_id,
                metrics=json.dumps({k: [m.min, m.max, m.latest] for k, m in summary.items()}),
            )
            return False

    def fail(self, name: str, trial_id: str, reason: str) -> None:
        """End an asked trial as Failed."""
        with _lock(name):
            exp = self._store.experiments.get(name)
            trial = self._active(exp, trial_id)
            self._store.trials.finish(
                trial_id, TrialState.FAILED, None, trial.metrics, reason or "failed"
            )
            self._end_if_due(exp, self._store.trials.list(exp.id))

    def _active(self, exp: ExperimentRecord, trial_id: str) -> TrialRecord:
        trials = self._expire(exp, self._store.trials.list(exp.id))
        trial = next((t for t in trials if t.id == trial_id), None)
        if trial is None:
            raise NotFoundError(f"experiment {exp.name!r} has no trial {trial_id!r}")
        if not trial.state.is_active:
            raise AutoMLError(
                f"trial {trial_id} has already ended ({trial.state.value}"
                + (f": {trial.message}" if trial.message else "")
                + ")"
            )
        return trial

    def _should_stop(
        self,
        exp: ExperimentRecord,
        trial: TrialRecord,
        values: Mapping[str, float],
        step: int | None,
    ) -> bool:
        spec = exp.spec
        metric = spec.objective.metric
        if spec.early_stopping is None or metric not in values:
            return False
        from search import create_stopper

        curves: dict[str, list[tuple[int, float]]] = {}
        for o in self._store.observations.for_experiment(exp.id):
            if o.metric == metric:
                curve = curves.setdefault(o.trial_id, [])
                curve.append((o.step if o.step is not None else len(curve) + 1, o.value))
        history = self._store.trials.list(exp.id)
        stopper = create_stopper(spec, history, curves)
        if stopper is None:
            return False
        own = curves.get(trial.id, [])
        for earlier_step, earlier in own:  # rebuilt: replay what this trial told before
            stopper.report(trial.id, earlier_step, earlier)
        return bool(
            stopper.report(trial.id, step if step is not None else len(own) + 1, values[metric])
        )

    # -- time-outs and the end ---------------------------------------------------------------
    def _expire(self, exp: ExperimentRecord, trials: list[TrialRecord]) -> list[TrialRecord]:
        """Fail asked trials past their deadline; the trials as they are now."""
        now = time.time()
        out = []
        for t in trials:
            asked = t.attrs.get("asked")
            deadline = asked.get("deadline") if isinstance(asked, dict) else None
            if t.state.is_active and deadline is not None and now > deadline:
                message = (
                    "the asked trial was not told within its trial timeout "
                    f"({exp.spec.trial_template.timeout:g} s)"
                )
                self._store.trials.finish(t.id, TrialState.FAILED, None, t.metrics, message)
                t = TrialRecord(**{**_fields(t), "state": TrialState.FAILED, "message": message})
            out.append(t)
        return out

    def sweep(self) -> int:
        """Fail every overdue asked trial of the experiments no controller runs; how many."""
        n = 0
        for exp in self._store.experiments.list():
            if exp.state is not ExperimentState.RUNNING or exp.controller is not None:
                continue
            before = self._store.trials.list(exp.id)
            after = self._expire(exp, before)
            failed = sum(1 for a, b in zip(before, after, strict=True) if a.state is not b.state)
            if failed:
                n += failed
                self._end_if_due(exp, after)
        return n

    def _end_if_due(self, exp: ExperimentRecord, trials: list[TrialRecord]) -> ExperimentRecord:
        if exp.state.is_terminal:
            return exp
        spec = exp.spec
        obj = spec.objective
        done = [t for t in trials if not t.state.is_active]
        front = pareto_front(spec, done)  # feasible, not invalidated
        member = goal_member(spec, front) if spec.multi_objective else None
        if member is not None:
            return self._end(
                exp, ExperimentState.SUCCEEDED, EndReason.GOAL_REACHED, goal_message(spec, member)
            )
        best = [t.value for t in front if t.value is not None and not spec.multi_objective]
        if best and obj.goal is not None:
            top = max(best) if obj.type.value == "maximize" else min(best)
            if obj.reached(top):
                return self._end(
                    exp,
                    ExperimentState.SUCCEEDED,
                    EndReason.GOAL_REACHED,
                    f"a trial reached the goal {obj.metric}={top:g} (goal {obj.goal:g})",
                )
        failed = sum(1 for t in done if t.state.is_failure)
        if spec.max_failed_trial_count is not None and 0 < spec.max_failed_trial_count <= failed:
            return self._end(
                exp,
                ExperimentState.FAILED,
                EndReason.FAILED,
                f"{failed} trials failed (maxFailedTrialCount {spec.max_failed_trial_count})",
            )
        if spec.max_trial_count is not None and len(done) >= spec.max_trial_count:
            return self._end(
                exp,
                ExperimentState.SUCCEEDED,
                EndReason.MAX_TRIALS_REACHED,
                f"{len(done)} trials finished (maxTrialCount {spec.max_trial_count})",
            )
        return exp

    def _end(
        self, exp: ExperimentRecord, state: ExperimentState, reason: EndReason, message: str
    ) -> ExperimentRecord:
        self._store.experiments.update(
            exp.id, state=state, reason=reason.value, message=message, finished_at=time.time()
        )
        return self._store.experiments.get(exp.name)


def _fields(t: TrialRecord) -> dict[str, Any]:
    return {f: getattr(t, f) for f in TrialRecord.__dataclass_fields__}
