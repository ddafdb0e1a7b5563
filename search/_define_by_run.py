"""The suggester of a define-by-run experiment: a space that grows as the objective runs.

The objective (``def objective(trial)``) asks for parameters as it runs; each finished trial's
stored outputs say which it asked for and from which ranges (:func:`automl.core.suggested`). This
suggester keeps the union of those ranges, the latest range of a name winning, and proposes a value
for every known parameter through an Optuna study over that space (TPE for ``auto``). A trial uses
the proposals it asks for and records only those, so each parameter is modelled on the trials
that had it, as Optuna's own define-by-run studies do. When a trial brings a new name or range
the study is rebuilt from the history; a resumed controller rebuilds it the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from automl.core import (
    AlgorithmSpec,
    ExperimentSpec,
    Parameter,
    Suggestion,
    TrialRecord,
    TrialState,
    suggested,
)
from search._base import Suggester

__all__ = ["DBR_ALGORITHMS", "DefineByRunSuggester"]

#: Algorithms that search a define-by-run space (the others need the space before the first
#: trial: a grid, brackets, a population, a fixed dimension).
DBR_ALGORITHMS = ("auto", "tpe", "multivariate-tpe", "random")


class DefineByRunSuggester(Suggester):
    """Proposals for a define-by-run objective.

    Args:
        spec: The validated experiment spec (``define_by_run`` set, no parameters).
        history: Stored trials of the experiment, in creation order.
        state: Unused: the space and the study are rebuilt from the history.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        history: Sequence[TrialRecord] = (),
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self._spec = spec
        self._space: dict[str, Parameter] = {}
        self._history: dict[str, TrialRecord] = {}
        for t in history:
            self._learn(t)
            self._history[t.id] = t
        self._inner = self._build()

    def _learn(self, trial: TrialRecord) -> bool:
        """Add the ranges ``trial`` asked for to the space; whether the space changed."""
        found = suggested(trial.outputs)
        if found is None:
            return False
        changed = False
        for p in found[1]:
            if self._space.get(p.name) != p:
                self._space[p.name] = p
                changed = True
        return changed

    def _fits(self, trial: TrialRecord) -> TrialRecord:
        """``trial`` with only the params the current space holds (a range may have changed)."""
        keep = {
            k: v
            for k, v in trial.params.items()
            if k in self._space and self._space[k].feasible(v)
        }
        return trial if keep == dict(trial.params) else dataclasses.replace(trial, params=keep)

    def _build(self) -> Suggester:
        from search._optuna import OptunaSuggester

        name = self._spec.algorithm.name
        settings = dict(self._spec.algorithm.settings)
        if name == "auto":  # TPE models each parameter on the trials that have it
            name = "tpe"
            settings = {k: v for k, v in settings.items() if k in ("seed", "random_state")}
        inner = self._spec.model_copy(
            update={
                "parameters": tuple(self._space.values()),
                "algorithm": AlgorithmSpec(name=name, settings=settings),
                "define_by_run": False,
            }
        )
        return OptunaSuggester(inner, [self._fits(t) for t in self._history.values()])

    def suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        """A value for every known parameter; the objective uses those it asks for."""
        out = self._inner.suggest(trial_ids)
        for trial_id, s in zip(trial_ids, out, strict=False):
            self._history[trial_id] = TrialRecord(
                id=trial_id,
                experiment_id="",
                number=len(self._history),
                params=dict(s.params),
                state=TrialState.RUNNING,
            )
        return [
            dataclasses.replace(s, attrs={**s.attrs, "strategy": "define-by-run"}) for s in out
        ]

    def add_pending(self, trial: TrialRecord) -> None:
        """An enqueued configuration: pending in the study (its known parameters)."""
        self._history[trial.id] = trial
        self._inner.add_pending(self._fits(trial))

    def tell(self, trial: TrialRecord) -> None:
        """Learn the trial's ranges and outcome; rebuild the study when the space grew."""
        self._history[trial.id] = trial
        if self._learn(trial):
            self._inner = self._build()
            return
        # The study's trial holds the whole proposal: end it, and add what was really used.
        from search._optuna import OptunaSuggester

        inner = self._inner
        assert isinstance(inner, OptunaSuggester)
        inner.tell(dataclasses.replace(trial, state=TrialState.FAILED, value=None, metrics={}))
        inner._replay(self._fits(trial), None)
