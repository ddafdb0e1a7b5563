"""The suggester interface: how a search algorithm talks to the controller."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from automl.core import Suggestion, TrialRecord

__all__ = ["Suggester"]


class Suggester(ABC):
    """A search algorithm, driven by the controller through two calls.

    Protocol:
        1. The suggester is built once from the experiment's spec and its stored history
           (finished trials, and active ones that will run again), so it resumes where it was.
        2. :meth:`suggest` is called with fresh trial ids whenever slots free up; it returns one
           :class:`Suggestion` per id it can fill, in order. Trials it suggested and not yet told
           are pending: it must not propose them again (Optuna's constant liar, grid bookkeeping).
        3. :meth:`tell` is called once per trial when it reaches a terminal state.

    It never sees the controller, the store or the executor.
    """

    @abstractmethod
    def suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        """Propose parameters for up to ``len(trial_ids)`` new trials.

        Returns fewer suggestions (possibly none) when the search space is exhausted.
        """

    @abstractmethod
    def tell(self, trial: TrialRecord) -> None:
        """Record the outcome of a finished trial."""

    def add_pending(self, trial: TrialRecord) -> None:  # noqa: B027 - optional hook
        """A trial this suggester did not propose starts (an enqueued configuration).

        It is pending from now on, and :meth:`tell` will be called with its outcome, from which
        the suggester learns as from its own trials. The default ignores it (the trial still
        reaches the suggester when it is rebuilt from the store).
        """

    @property
    def exhausted(self) -> bool:
        """Whether the algorithm has nothing left to suggest (grid search)."""
        return False

    def state(self) -> Mapping[str, Any]:
        """Experiment-level algorithm state to persist (JSON-serializable)."""
        return {}
