"""``automl.Client``: every stored experiment, through a store URL or an automl server.

``Client(store=...)`` works on the database directly; ``Client(server=...)`` says the same
things through the REST API of ``automl server`` (:mod:`automl.service`), with the same return
types and the same errors (the server sends each error's kind and message, and the client raises
it again).
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl._api import TuneResult, _artifacts_of, _best, _dataframe
from automl._client_steer import SteerMethods
from automl._runner import preflight, reap_any, run_experiment
from automl.core import (
    EndReason,
    ExecutorKind,
    ExperimentRecord,
    ExperimentSpec,
    ExperimentState,
    Observation,
    TrialRecord,
    TrialState,
)
from automl.errors import AutoMLError, ExperimentBusyError, NotFoundError, SpecError
from automl.spec import load_spec
from automl.store import DEFAULT_STORE, Store
from trials import InProcessExecutor

if TYPE_CHECKING:
    import pandas as pd

    from automl.service._remote import RemoteClient

__all__ = ["Client"]

_int = builtins.int


class Client(SteerMethods):
    """Lists, reads, waits for, stops, resumes and deletes experiments; submits to the queue.

    Steering methods (:meth:`enqueue`, :meth:`invalidate`, :meth:`rerun`, :meth:`fork`,
    :meth:`set_budget`) change a search by hand, also while it runs (docs/steering.md).

    Args:
        store: Store URL (``sqlite:///automl.db`` by default) or an open Store.
        runs_dir: Where process trials write their files.
        server: URL of an ``automl server`` (``http://127.0.0.1:8080``) to use instead of a
            store; every method then goes through its REST API.
        token: Bearer token for the server (default: ``$AUTOML_TOKEN``).

    Raises:
        SpecError: Both ``store`` and ``server`` given.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        runs_dir: str | Path = "automl-runs",
        *,
        server: str | None = None,
        token: str | None = None,
        create: bool = True,
    ):
        self.runs_dir = Path(runs_dir)
        self._remote: RemoteClient | None = None
        self._store: Store | None = None
        self._owns_store = False
        if server is not None:
            if store is not None:
                raise SpecError("give a store or a server, not both", path="server")
            from automl.service._remote import RemoteClient

            self._remote = RemoteClient(server, token or os.environ.get("AUTOML_TOKEN"))
            return
        store = DEFAULT_STORE if store is None else store
        self._owns_store = not isinstance(store, Store)
        self._store = store if isinstance(store, Store) else Store(store, create=create)

    def close(self) -> None:
        """Release the store's connections (when this client opened it) or the HTTP client."""
        if self._remote is not None:
            self._remote.close()
        elif self._owns_store and self._store is not None:
            self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        """The open store.

        Raises:
            AutoMLError: This client talks to a server, which keeps the store to itself.
        """
        if self._store is None:
            raise AutoMLError(
                "this client talks to an automl server and has no store of its own; "
                "use its methods, or Client(store=...) on the server's machine"
            )
        return self._store

    @property
    def server(self) -> str | None:
        """The server's URL, or None for a store client."""
        return self._remote.url if self._remote is not None else None

    # -- reading ----------------------------------------------------------------------------
    def list(self) -> builtins.list[ExperimentRecord]:
        """Every experiment, oldest first."""
        if self._remote is not None:
            return self._remote.list()
        return self.store.experiments.list()

    def get(self, name: str) -> ExperimentRecord:
        """One experiment. Raises NotFoundError."""
        if self._remote is not None:
            return self._remote.get(name)
        return self.store.experiments.get(name)

    def trials(self, name: str) -> builtins.list[TrialRecord]:
        """An experiment's trials in creation order."""
        if self._remote is not None:
            return self._remote.trials(name)
        return self.store.trials.list(self.get(name).id)

    def trial(self, name: str, trial_id: str) -> TrialRecord:
        """One trial of an experiment, by id.

        Raises:
            NotFoundError: No such experiment or trial.
        """
        if self._remote is not None:
            return self._remote.trial(name, trial_id)
        from automl.service._asktell import AskTell

        return AskTell(self.store).trial(name, trial_id)

    def observations(self, name: str) -> builtins.list[Observation]:
        """Every metric observation of an experiment's trials."""
        if self._remote is not None:
            return self._remote.observations(name)
        return self.store.observations.for_experiment(self.get(name).id)

    def best_trial(self, name: str) -> TrialRecord | None:
        """The best succeeded trial, or None."""
        if self._remote is not None:
            return self._remote.best(name)
        exp = self.get(name)
        return _best(exp.spec, self.store.trials.list(exp.id))

    def pareto_front(self, name: str) -> pd.DataFrame:
        """The best trials as rows of the trials table: the Pareto front of feasible trials.

        With one objective, the best trial's row. See :attr:`TuneResult.best_trials`.
        """
        return self.result(name).best_trials

    def trials_dataframe(self, name: str) -> pd.DataFrame:
        """One row per trial: number, id, state, value, ``params_<name>``, metrics, timings."""
        exp = self.get(name)
        return _dataframe(exp.spec, self.trials(name))

    def result(self, name: str) -> TuneResult:
        """The experiment, its best trial and its trials table."""
        exp = self.get(name)
        trials = self.trials(name)
        return TuneResult(
            exp,
            _best(exp.spec, trials),
            _dataframe(exp.spec, trials),
            store_url=(
                self._store.url.render_as_string(hide_password=False) if self._store else None
            ),
            runs_dir=self.runs_dir,
        )

    def artifacts(self, name: str, trial: _int | None = None) -> Path:
        """The artifact directory of a trial (by number), the best trial by default.

        Raises:
            NotFoundError: No such trial, no succeeded trial, or the trial saved nothing.
        """
        exp = self.get(name)
        trials = self.trials(name)
        if trial is None:
            chosen = _best(exp.spec, trials)
            if chosen is None:
                raise NotFoundError(
                    f"experiment {name!r} has no succeeded trial, so no best trial's artifacts; "
                    "pass trial=<number>"
                )
        else:
            chosen = next((t for t in trials if t.number == trial), None)
            if chosen is None:
                raise NotFoundError(f"experiment {name!r} has no trial number {trial}")
        return _artifacts_of(name, chosen, self.runs_dir)

    def load_model(self, name: str, trial: _int | None = None, model: str = "model") -> Any:
        """Load a model a trial saved (the best trial by default).

        Raises:
            NotFoundError: The trial saved nothing, or no model called ``model``.
        """
        from automl._artifacts import load_model

        return load_model(self.artifacts(name, trial), model)

    # -- acting -----------------------------------------------------------------------------
    def create(self, spec: ExperimentSpec | str | Path) -> ExperimentRecord:
        """Store a new experiment from a spec or a YAML file, without running it.

        Nobody runs it: run it here (:meth:`resume`), queue it (:meth:`submit`), or drive its
        trials from outside with :meth:`ask` and :meth:`tell`.
        """
        if self._remote is not None:
            return self._remote.submit(spec, queue=False)
        if not isinstance(spec, ExperimentSpec):
            spec = load_spec(spec)
        return self.store.experiments.create(spec)

    def submit(self, spec: ExperimentSpec | str | Path, *, priority: _int = 0) -> ExperimentRecord:
        """Queue a new experiment for the controller workers and return at once (state Created).

        Args:
            spec: A spec, or a YAML/JSON file (native or Katib).
            priority: Higher runs first; equal priorities run oldest first.

        Raises:
            SpecError: An invalid spec (every issue with its field path).
            AlreadyExistsError: The name is taken.
        """
        if self._remote is not None:
            return self._remote.submit(spec, queue=True, priority=priority)
        from automl._runner import local_problem
        from automl.store._queue import QueueRepository

        if not isinstance(spec, ExperimentSpec):
            spec = load_spec(spec)
        problem = local_problem(spec)
        if problem:
            raise SpecError(problem, path="executor")
        return QueueRepository(self.store).submit(spec, priority)

    def run(
        self, spec: ExperimentSpec | str | Path, *, progress: bool | None = None
    ) -> TuneResult:
        """Create an experiment from a spec or YAML file and run it to its end.

        With a server, the experiment is queued and this waits until a worker has finished it.
        """
        if self._remote is not None:
            exp = self.submit(spec)
            self.wait(exp.name)
            return self.result(exp.name)
        if not isinstance(spec, ExperimentSpec):
            spec = load_spec(spec)
        preflight(spec)
        return self._run(self.create(spec), progress=progress)

    def wait(self, name: str, timeout: float | None = None, poll: float = 1.0) -> ExperimentRecord:
        """Block until the experiment ends.

        Raises:
            TimeoutError: It is still running after ``timeout`` seconds.
        """
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            exp = self.get(name)
            if exp.state.is_terminal:
                return exp
            if end is not None and time.monotonic() >= end:
                raise TimeoutError(
                    f"experiment {name!r} is still {exp.state.value} after {timeout:g} s"
                )
            time.sleep(poll)

    def stop(self, name: str) -> ExperimentRecord:
        """Ask the experiment's controller to stop; with no live controller, stop it here."""
        if self._remote is not None:
            return self._remote.stop(name)
        from automl._controller import controller_live

        store = self.store
        exp = self.get(name)
        if exp.state.is_terminal and not controller_live(exp):
            return exp
        store.experiments.update(exp.id, stop_requested=True)
        if not controller_live(exp) and exp.spec.executor.kind is not ExecutorKind.RAY:
            # Adopt what the dead controller's trials left: a finished trial is recorded as
            # it finished, the running ones are killed (a function in threads cannot be).
            from automl._controller import Controller
            from automl._runner import make_executor

            try:
                executor = make_executor(exp.spec, None, self.runs_dir)
            except SpecError:
                executor = None
            if executor is not None and not isinstance(executor, InProcessExecutor):
                try:
                    return Controller(
                        store, self.get(name), executor, runs_dir=self.runs_dir
                    ).stop_orphaned()
                except ExperimentBusyError:
                    # A controller took the lease meanwhile (a worker starting it): it keeps
                    # the stop request stored above and stops at its first turn.
                    return self.get(name)
        if not controller_live(exp):
            # Nobody will act on the request: end the trials the dead controller left behind.
            runners = store.trials.runners(exp.id)
            for trial_id, runner in runners.items():
                reap_any(exp.spec, runner, Path(self.runs_dir))
                store.trials.finish(
                    trial_id,
                    TrialState.KILLED,
                    None,
                    {},
                    "killed by stop: its controller was no longer running",
                )
            store.experiments.update(
                exp.id,
                state=ExperimentState.STOPPED,
                reason="ExperimentStopped",
                message="stopped on request (no controller was running)",
                finished_at=time.time(),
                controller=None,
            )
        return self.get(name)

    def resume(
        self,
        name: str,
        *,
        objective: Callable[..., Any] | None = None,
        max_trials: _int | None = None,
        parallel_trials: _int | None = None,
        max_failed_trials: _int | None = None,
        progress: bool | None = None,
    ) -> TuneResult:
        """Continue an experiment here, from where it was.

        Interrupted trials run again, finished ones are kept, and the search continues from the
        stored history. Budgets may be raised. With a server, the experiment goes back to the
        queue and this waits until a worker has finished it.

        Raises:
            ExperimentBusyError: Another live controller runs it.
            SpecError: A bad budget, or a Python experiment whose objective is needed.
        """
        if self._remote is not None:
            self.requeue(
                name,
                max_trials=max_trials,
                parallel_trials=parallel_trials,
                max_failed_trials=max_failed_trials,
            )
            self.wait(name)
            return self.result(name)
        exp = self.prepare_resume(
            name,
            max_trials=max_trials,
            parallel_trials=parallel_trials,
            max_failed_trials=max_failed_trials,
        )
        return self._run(exp, objective=objective, progress=progress)

    def requeue(
        self,
        name: str,
        *,
        max_trials: _int | None = None,
        parallel_trials: _int | None = None,
        max_failed_trials: _int | None = None,
        priority: _int | None = None,
    ) -> ExperimentRecord:
        """Resume through the queue: check and store new budgets, then let a worker continue it.

        Raises:
            ExperimentBusyError: A live controller runs it.
            SpecError: A bad budget, or a finished experiment its resume policy keeps finished.
        """
        if self._remote is not None:
            return self._remote.resume(
                name,
                max_trials=max_trials,
                parallel_trials=parallel_trials,
                max_failed_trials=max_failed_trials,
                priority=priority,
            )
        from automl._controller import controller_live
        from automl.errors import ExperimentBusyError
        from automl.store._queue import QueueRepository

        exp = self.get(name)
        if controller_live(exp):
            raise ExperimentBusyError(
                f"experiment {name!r} is being run by controller {exp.controller}; "
                f"stop it first with: automl stop {name}"
            )
        exp = self.prepare_resume(
            name,
            max_trials=max_trials,
            parallel_trials=parallel_trials,
            max_failed_trials=max_failed_trials,
        )
        QueueRepository(self.store).enqueue(exp.id, priority)
        return self.get(name)

    def prepare_resume(
        self,
        name: str,
        *,
        max_trials: _int | None = None,
        parallel_trials: _int | None = None,
        max_failed_trials: _int | None = None,
    ) -> ExperimentRecord:
        """Check that an experiment may be resumed and store its new budgets.

        An interrupted or stopped experiment can always be continued. A finished one follows
        Katib's ``resumePolicy``: ``Never`` (Katib's default) refuses, ``LongRunning`` and
        ``FromVolume`` restart an experiment that reached ``maxTrialCount`` once it is raised.
        Native and Python experiments are ``LongRunning``.

        Raises:
            SpecError: A bad budget, or a finished experiment its resume policy does not let go on.
        """
        exp = self.get(name)
        spec = exp.spec
        finished = exp.state in (ExperimentState.SUCCEEDED, ExperimentState.FAILED)
        if finished and spec.source == "katib" and spec.resume_policy == "Never":
            raise SpecError(
                f"experiment {name!r} has resumePolicy Never (Katib's default): a finished "
                "experiment cannot be restarted; set resumePolicy: LongRunning to allow it",
                path="resumePolicy",
            )
        if (
            finished
            and spec.source == "katib"
            and exp.reason != EndReason.MAX_TRIALS_REACHED.value
        ):
            raise SpecError(
                f"experiment {name!r} ended with {exp.reason}; Katib restarts only an experiment "
                "that reached maxTrialCount",
                path="resumePolicy",
            )
        if any(v is not None for v in (max_trials, parallel_trials, max_failed_trials)):
            from automl._steering import budgeted

            spec = budgeted(
                spec,
                max_trials=max_trials,
                parallel_trials=parallel_trials,
                max_failed_trials=max_failed_trials,
            )
            self.store.experiments.update(exp.id, spec=spec)
            exp = self.get(name)
        return exp

    def delete(self, name: str) -> None:
        """Delete an experiment, its trials and observations.

        Raises:
            AutoMLError: A live controller still runs it (stop it first).
        """
        if self._remote is not None:
            self._remote.delete(name)
            return
        from automl._controller import controller_live

        exp = self.get(name)
        if controller_live(exp):
            raise AutoMLError(f"experiment {name!r} is running; stop it first: automl stop {name}")
        self.store.experiments.delete(name)

    # -- ask and tell -----------------------------------------------------------------------
    def ask(self, name: str) -> TrialRecord:
        """A new trial to run outside automl, with its parameters (state Running).

        The same suggester, budgets and pending-trial rules as any trial: it is refused when
        ``parallelTrialCount`` trials are already out, or when the experiment has ended. A trial
        that is never told fails after the trial timeout.

        Raises:
            AutoMLError: The experiment has ended, has no room for another trial, or a
                controller runs it.
        """
        if self._remote is not None:
            return self._remote.ask(name)
        from automl.service._asktell import AskTell

        return AskTell(self.store).ask(name)

    def tell(
        self,
        trial: TrialRecord | str,
        *,
        step: _int | None = None,
        final: bool = False,
        experiment: str | None = None,
        **metrics: float,
    ) -> bool:
        """Report metrics of an asked trial; ``final=True`` ends it.

        Returns:
            True if the experiment's early stopping wants the trial stopped (it is then
            ended EarlyStopped), else False.
        """
        name, trial_id = self._trial_ref(trial, experiment)
        if self._remote is not None:
            return self._remote.tell(name, trial_id, step=step, final=final, metrics=metrics)
        from automl.service._asktell import AskTell

        return AskTell(self.store).tell(name, trial_id, metrics, step=step, final=final)

    def fail(
        self, trial: TrialRecord | str, reason: str, *, experiment: str | None = None
    ) -> None:
        """End an asked trial as Failed with ``reason``."""
        name, trial_id = self._trial_ref(trial, experiment)
        if self._remote is not None:
            self._remote.fail(name, trial_id, reason)
            return
        from automl.service._asktell import AskTell

        AskTell(self.store).fail(name, trial_id, reason)

    def _trial_ref(self, trial: TrialRecord | str, experiment: str | None) -> tuple[str, str]:
        trial_id = trial if isinstance(trial, str) else trial.id
        if experiment is not None:
            return experiment, trial_id
        name, sep, _ = trial_id.rpartition("-")
        if not sep:
            raise SpecError(f"is not a trial id; got {trial_id!r}", path="trial")
        return name, trial_id

    def _run(
        self,
        exp: ExperimentRecord,
        *,
        objective: Callable[..., Any] | None = None,
        progress: bool | None = None,
    ) -> TuneResult:
        from automl._progress import progress_display, progress_wanted

        on_progress = None
        bar = None
        if progress_wanted(progress):
            bar = progress_display(exp.spec)
            on_progress = bar.update
        if bar is not None:
            with bar:
                run_experiment(
                    self.store,
                    exp,
                    objective=objective,
                    runs_dir=self.runs_dir,
                    on_progress=on_progress,
                )
        else:
            run_experiment(self.store, exp, objective=objective, runs_dir=self.runs_dir)
        return self.result(exp.name)
