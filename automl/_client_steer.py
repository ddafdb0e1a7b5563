"""``automl.Client``'s steering methods: enqueue, invalidate, rerun, fork and live budgets.

A mixin of :class:`automl.Client`, so that the client module stays readable. On a store each call
is one transaction (see :mod:`automl._steering`); on a server it is one REST call to the same code.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from automl import _steering as steer
from automl.core import ExperimentRecord, ExperimentSpec, TrialRecord

if TYPE_CHECKING:
    from automl.service._remote import RemoteClient
    from automl.store import Store

__all__ = ["SteerMethods"]

_int = builtins.int


class SteerMethods:
    """Steering a search by hand (docs/steering.md); mixed into :class:`automl.Client`."""

    _remote: RemoteClient | None

    def _steer_store(self) -> Store:
        return cast("Store", cast(Any, self).store)  # Client's property

    def _steer_call(self, name: str, action: str, body: Mapping[str, Any]) -> Any:
        from automl.service._remote import API

        assert self._remote is not None
        return self._remote.call(
            "POST", f"{API}/experiments/{quote(name, safe='')}:{action}", json=dict(body)
        )

    def enqueue(self, name: str, params: Mapping[str, Any]) -> TrialRecord:
        """Run this configuration next in experiment ``name``, before new suggestions.

        Values are checked against the space (strings are parsed, as from the command line).
        A running controller starts it at its next turn; a waiting or finished experiment when it
        runs again. The search learns from its result like from its own trials.

        Returns:
            The new trial (Created; its number is negative until it starts).

        Raises:
            NotFoundError: No such experiment.
            SpecError: A value outside the space, naming the parameter and its range.
        """
        if self._remote is not None:
            from automl.service._wire import trial_from_json

            return trial_from_json(self._steer_call(name, "enqueue", {"params": dict(params)}))
        return steer.enqueue(self._steer_store(), name, params)

    def invalidate(self, name: str, trial: str, reason: str = "") -> TrialRecord:
        """Exclude a finished trial (id or number) from the best trial and the search's history.

        It stays in the store, marked; :meth:`revalidate` takes it back.

        Raises:
            NotFoundError: No such experiment or trial.
            AutoMLError: The trial has not ended.
        """
        if self._remote is not None:
            from automl.service._wire import trial_from_json

            body = {"trial": trial, "reason": reason}
            return trial_from_json(self._steer_call(name, "invalidate", body))
        return steer.invalidate(self._steer_store(), name, trial, reason)

    def revalidate(self, name: str, trial: str) -> TrialRecord:
        """Undo :meth:`invalidate`.

        Raises:
            NotFoundError: No such experiment or trial.
        """
        if self._remote is not None:
            from automl.service._wire import trial_from_json

            body = {"trial": trial, "undo": True}
            return trial_from_json(self._steer_call(name, "invalidate", body))
        return steer.invalidate(self._steer_store(), name, trial, undo=True)

    def rerun(self, name: str, trial: str) -> TrialRecord:
        """Run a trial's parameters again, as a new enqueued trial.

        Raises:
            NotFoundError: No such experiment or trial.
        """
        if self._remote is not None:
            from automl.service._wire import trial_from_json

            return trial_from_json(self._steer_call(name, "rerun", {"trial": trial}))
        return steer.rerun(self._steer_store(), name, trial)

    def set_budget(
        self,
        name: str,
        *,
        max_trials: _int | None = None,
        parallel_trials: _int | None = None,
        max_failed_trials: _int | None = None,
        timeout: float | None = None,
        trial_hours: float | None = None,
        gpu_hours: float | None = None,
    ) -> ExperimentRecord:
        """Raise or lower budgets, also of a running experiment (applied at its next turn).

        ``timeout`` is the experiment's time budget in seconds; ``trial_hours`` and ``gpu_hours``
        its resource budgets (``budget.trial_hours`` / ``gpu_hours``).

        Lowering ``parallel_trials`` lets running trials finish; lowering ``max_trials`` below
        the trials already finished ends the experiment at its next turn.

        Raises:
            NotFoundError: No such experiment.
            SpecError: A bad budget, named.
        """
        budgets: dict[str, Any] = {
            "max_trials": max_trials,
            "parallel_trials": parallel_trials,
            "max_failed_trials": max_failed_trials,
            "timeout": timeout,
            "trial_hours": trial_hours,
            "gpu_hours": gpu_hours,
        }
        if self._remote is not None:
            from automl.service._wire import experiment_from_json

            body = {k: v for k, v in budgets.items() if v is not None}
            return experiment_from_json(self._steer_call(name, "budget", body))
        return steer.set_budget(self._steer_store(), name, **budgets)

    def fork(
        self,
        name: str,
        new_name: str,
        *,
        max_trials: _int | None = None,
        spec: ExperimentSpec | None = None,
    ) -> steer.ForkResult:
        """Create ``new_name`` from ``name`` (same spec, or ``spec``), its search warm-started.

        The new experiment is Created; run it with :meth:`resume` (or ``automl resume``). Its
        search starts from ``name``'s finished trials whose values fit its space
        (``ForkResult.kept`` of ``ForkResult.total``).

        Raises:
            NotFoundError: No such experiment.
            AlreadyExistsError: ``new_name`` exists.
            SpecError: A bad name or budget.
        """
        if self._remote is not None:
            from automl.service._wire import experiment_from_json

            body: dict[str, Any] = {"new_name": new_name, "max_trials": max_trials}
            if spec is not None:
                body["spec"] = spec.to_json()
            data = self._steer_call(name, "fork", body)
            return steer.ForkResult(
                experiment_from_json(data["experiment"]), data["kept"], data["total"]
            )
        return steer.fork(self._steer_store(), name, new_name, max_trials=max_trials, spec=spec)
