"""The controller's in-memory pieces: progress snapshots, live trials, what the store can hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from automl.core import MetricSummary, Observation, TrialRecord
from search import Suggester
from trials import TrialEvent

__all__ = ["Progress"]

_MAX_METRIC_NAME = 128  # the store's metric column
_STEP_RANGE = (-(2**63), 2**63 - 1)  # a 64-bit integer column


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of a running experiment, handed to progress callbacks."""

    done: int
    running: int
    failed: int
    max_trials: int | None
    best_value: float | None
    best_trial: str | None
    last: TrialRecord | None = None
    early_stopped: int = 0
    budget_used: float | None = None  # share of budget.trial_hours / gpu_hours used (0..1+)


@dataclass
class _Live:
    """In-memory view of one active trial."""

    record: TrialRecord
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    pending: list[Observation] = field(default_factory=list)
    reports: int = 0  # intermediate objective values seen (implicit steps)
    nan: bool = False  # the objective metric was reported as NaN (summaries skip NaN)


class _NullSuggester(Suggester):
    def suggest(self, trial_ids: Any) -> list[Any]:
        return []

    def tell(self, trial: TrialRecord) -> None:
        return None


def _unstorable(ev: TrialEvent) -> str | None:
    """Why the store cannot hold this event's metrics (the trial fails with it), or None."""
    if ev.step is not None and not (_STEP_RANGE[0] <= ev.step <= _STEP_RANGE[1]):
        return f"step {ev.step} is out of range (steps are 64-bit integers)"
    for name, value in ev.metrics.items():
        if len(name) > _MAX_METRIC_NAME:
            return (
                f"metric name {name[:40]!r}... is {len(name)} characters long "
                f"(at most {_MAX_METRIC_NAME})"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"metric {name!r} is not a number: {value!r}"[:300]
        try:
            float(value)
        except OverflowError:
            return f"metric {name!r} is out of range: {str(value)[:40]}"
    return None
