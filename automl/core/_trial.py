"""Run-time value objects: experiments, trials, observations and suggestions as stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from automl.core._spec import ExperimentSpec, ParamValue

__all__ = [
    "EndReason",
    "ExperimentRecord",
    "ExperimentState",
    "MetricSummary",
    "Observation",
    "Suggestion",
    "TrialRecord",
    "TrialState",
]


class TrialState(str, Enum):
    """Katib's trial states."""

    CREATED = "Created"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    KILLED = "Killed"
    EARLY_STOPPED = "EarlyStopped"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    # Killed from outside (SIGTERM, an evicted pod, a lost node): run again, not a failure.
    PREEMPTED = "Preempted"

    @property
    def is_active(self) -> bool:
        """Created or Running."""
        return self in (TrialState.CREATED, TrialState.RUNNING)

    @property
    def is_failure(self) -> bool:
        """Counts toward ``maxFailedTrialCount`` (Failed and MetricsUnavailable, as in Katib)."""
        return self in (TrialState.FAILED, TrialState.METRICS_UNAVAILABLE)


class ExperimentState(str, Enum):
    """Experiment states: Katib's, plus Stopped for a user stop."""

    CREATED = "Created"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def is_terminal(self) -> bool:
        """Succeeded, Failed or Stopped."""
        return self in (ExperimentState.SUCCEEDED, ExperimentState.FAILED, ExperimentState.STOPPED)


class EndReason(str, Enum):
    """Why an experiment ended: Katib's reasons, then ours."""

    GOAL_REACHED = "ExperimentGoalReached"
    FAILED = "ExperimentFailed"
    MAX_TRIALS_REACHED = "ExperimentMaxTrialsReached"
    SEARCH_SPACE_EXHAUSTED = "SearchSpaceExhausted"
    TIMEOUT = "ExperimentTimeoutReached"
    STOPPED = "ExperimentStopped"
    SUGGESTION_FAILED = "SuggestionFailed"
    BUDGET_EXHAUSTED = "BudgetExhausted"  # budget.trial_hours / gpu_hours used up


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """Katib's per-metric ``{min, max, latest}`` of a trial."""

    min: float
    max: float
    latest: float

    def pick(self, strategy: str) -> float:
        """The value for a metric strategy (``min``, ``max`` or ``latest``)."""
        return float(getattr(self, strategy))

    def add(self, value: float) -> MetricSummary:
        """The summary after one more observation."""
        return MetricSummary(min(self.min, value), max(self.max, value), value)


@dataclass(frozen=True, slots=True)
class Observation:
    """One reported metric value of a trial."""

    trial_id: str
    metric: str
    value: float
    step: int | None = None
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class Suggestion:
    """Parameters proposed by a search algorithm; it has no id until it becomes a trial.

    Attributes:
        params: Typed parameter values, keyed by parameter name.
        attrs: Opaque, JSON-serializable algorithm state to keep with the trial (e.g. a grid
            index); handed back to the algorithm when it is rebuilt from the store.
    """

    params: Mapping[str, ParamValue]
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """A trial as stored.

    Attributes:
        id: Primary key, ``<experiment>-<8 chars>`` as Katib names trials.
        experiment_id: Owning experiment.
        number: 0-based creation order within the experiment (for display).
        params: Typed parameter values.
        state: Current state.
        value: Objective value after the metric strategy, if known.
        metrics: Per-metric ``{min, max, latest}``.
        created_at / started_at / finished_at: Epoch seconds.
        message: Why it failed or stopped.
        attempt: How many times it was started (a trial interrupted by a controller crash is
            started again with the same parameters).
        attrs: Algorithm state kept with the trial.
        workdir: Where its files and log live (process trials).
        outputs: What its artifact directory held when it ended: ``{"artifact_dir": path,
            "models": {name: metadata}, "files": [...], "data": {...}}``; empty if nothing.
    """

    id: str
    experiment_id: str
    number: int
    params: Mapping[str, ParamValue]
    state: TrialState
    value: float | None = None
    metrics: Mapping[str, MetricSummary] = field(default_factory=dict)
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    message: str = ""
    attempt: int = 1
    attrs: Mapping[str, Any] = field(default_factory=dict)
    workdir: str | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def invalidated(self) -> bool:
        """Excluded by hand (``automl invalidate``) from the best trial and the search history."""
        return bool(self.attrs.get("invalidated"))

    @property
    def enqueued(self) -> bool:
        """Created by hand (``automl enqueue``, a rerun, a preemption) rather than suggested."""
        return bool(self.attrs.get("enqueued"))

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (or None while unknown)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """An experiment as stored."""

    id: str
    name: str
    spec: ExperimentSpec
    state: ExperimentState
    reason: str = ""
    message: str = ""
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    stop_requested: bool = False
    controller: str | None = None
    heartbeat_at: float | None = None
    sampler_state: Mapping[str, Any] = field(default_factory=dict)
