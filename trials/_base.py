"""The executor interface: where trials run, separate from how they are chosen."""

from __future__ import annotations

import queue
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from automl.core import ParamValue

__all__ = ["Executor", "ExitStatus", "TrialEvent", "TrialExit", "TrialRun", "drain"]


@dataclass(frozen=True, slots=True)
class TrialRun:
    """What an executor needs to start one trial."""

    trial_id: str
    experiment: str
    number: int
    params: Mapping[str, ParamValue]
    attempt: int = 1
    namespace: str | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)  # algorithm state kept with the trial


class ExitStatus(str, Enum):
    """How a trial's run ended, as the executor saw it."""

    COMPLETED = "completed"  # exit code 0 / returned normally
    FAILED = "failed"  # non-zero exit / raised
    TIMED_OUT = "timed_out"  # ran past the per-trial timeout and was killed
    CANCELLED = "cancelled"  # cancelled by the controller
    LOST = "lost"  # its fate cannot be known (supervisor or node gone): run it again
    PREEMPTED = "preempted"  # killed from outside (SIGTERM, an evicted pod): run it again


@dataclass(frozen=True, slots=True)
class TrialExit:
    """The end of a trial's run."""

    status: ExitStatus
    message: str = ""


@dataclass(frozen=True, slots=True)
class TrialEvent:
    """Something that happened to a running trial.

    Attributes:
        trial_id: The trial.
        metrics: Metric values observed, all at ``step``.
        step: Training step of ``metrics`` (None when the trial named none).
        started: Runner details to store (pid, host...) once the trial has started.
        exit: Set once, when the run has ended; it comes after every metric of the trial.
    """

    trial_id: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    step: int | None = None
    started: Mapping[str, Any] | None = None
    exit: TrialExit | None = None


class Executor(ABC):
    """Runs trials. The controller drives it through three calls.

    Protocol:
        * :meth:`submit` starts a trial and returns at once.
        * :meth:`poll` waits up to ``timeout`` seconds for events and returns every event ready;
          each submitted trial ends with exactly one event carrying ``exit``.
        * :meth:`cancel` asks a trial to stop; its ``exit`` event follows (CANCELLED).
    """

    @abstractmethod
    def submit(self, run: TrialRun) -> None:
        """Start a trial."""

    @abstractmethod
    def poll(self, timeout: float) -> list[TrialEvent]:
        """Events since the last poll, waiting at most ``timeout`` seconds for the first."""

    @abstractmethod
    def cancel(self, trial_id: str) -> None:
        """Stop a running trial."""

    def capacity(self) -> int | None:
        """How many more trials could start now; None when only ``parallel`` bounds it.

        The controller starts no more than this many new trials in a turn, so a trial that
        does not fit (no free GPU share, no free cores) waits unstarted, not failed.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; running trials are cancelled."""

    def reap(self, runner: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Stop a run left behind by a dead controller, given what ``started`` reported."""

    def recorded(self, trial_id: str) -> None:  # noqa: B027 - optional hook
        """The controller has stored the trial's end: what was kept for an adopter may go.

        An executor that keeps a finished trial's results outside the controller (the Ray hub)
        drops them here, not when it reports the end: a controller that dies in between would
        leave a new one nothing to adopt, and the trial would run twice.
        """

    def never_started(self, run: TrialRun) -> bool:
        """Whether nothing of the trial ever ran (its controller died before starting it).

        Such a trial runs as the same attempt, not as another one. False when unsure.
        """
        return False

    def adopt(self, run: TrialRun, runner: Mapping[str, Any]) -> bool:
        """Follow a trial that a dead controller started, instead of running it again.

        On True the executor owns the trial as if it had submitted it: its metrics arrive as
        events again from the start (the caller drops what it had stored), then its exit. An
        executor whose trials cannot outlive their controller (threads) returns False, and so
        does one that cannot know the trial's fate: the caller runs it again as a new attempt.

        Args:
            run: The trial, as it would be submitted.
            runner: What the executor's ``started`` event reported (may be empty when the
                controller died before storing it).
        """
        return False


def drain(events: queue.SimpleQueue[TrialEvent], timeout: float) -> list[TrialEvent]:
    """Every event in ``events``, waiting up to ``timeout`` seconds for the first."""
    out: list[TrialEvent] = []
    try:
        out.append(events.get(timeout=timeout) if timeout > 0 else events.get_nowait())
    except queue.Empty:
        return out
    while True:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            return out
