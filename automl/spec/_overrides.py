"""Command-line budget overrides, applied to the spec before its rules are checked.

``automl run FILE --max-trials 2`` must be able to fix a file that is invalid only because of its
budget (a Katib grid whose ``maxTrialCount`` exceeds the grid), and a quick try must stay valid: a
``parallelTrialCount`` or ``maxFailedTrialCount`` larger than the new maximum is lowered to it.
Every value changed is said (:attr:`BudgetOverride.notes`), never silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from automl.core import ExperimentSpec

__all__ = ["BudgetOverride"]


@dataclass
class BudgetOverride:
    """``--max-trials`` / ``--parallel`` for the front doors; call it on the built spec.

    Attributes:
        max_trials: The new ``maxTrialCount``, or None to keep the file's.
        parallel: The new ``parallelTrialCount``, or None to keep (or lower) the file's.
        notes: What was changed, one line per value, filled by the call.
    """

    max_trials: int | None = None
    parallel: int | None = None
    notes: list[str] = field(default_factory=list)

    def __call__(self, spec: ExperimentSpec) -> ExperimentSpec:
        """``spec`` with the overrides applied (not validated: the front door does that)."""
        update: dict[str, int] = {}
        self.notes.clear()
        if self.max_trials is not None:
            update["max_trial_count"] = self.max_trials
            self._note("--max-trials", "max trials", spec.max_trial_count, self.max_trials)
        parallel = self.parallel
        if parallel is None and self.max_trials is not None:
            parallel = min(spec.parallel_trial_count, self.max_trials)
        if parallel is not None:
            update["parallel_trial_count"] = parallel
            why = "--parallel" if self.parallel is not None else "to fit --max-trials"
            self._note(why, "parallel trials", spec.parallel_trial_count, parallel)
        failed = spec.max_failed_trial_count
        if self.max_trials is not None and failed is not None and failed > self.max_trials:
            update["max_failed_trial_count"] = self.max_trials
            self._note("to fit --max-trials", "max failed trials", failed, self.max_trials)
        return spec.model_copy(update=update) if update else spec

    def _note(self, why: str, what: str, old: int | None, new: int) -> None:
        if old != new:
            self.notes.append(f"{what}: {'unset' if old is None else old} -> {new} ({why})")
