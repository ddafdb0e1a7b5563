"""A rich progress bar for a running experiment: trials done, running, failed, best so far."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from automl._controller import Progress as Snapshot
from automl.core import ExperimentSpec

__all__ = ["ProgressBar"]


class ProgressBar:
    """Context manager that renders controller snapshots."""

    def __init__(self, spec: ExperimentSpec, console: Console | None = None) -> None:
        self._spec = spec
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task(
            spec.name, total=spec.max_trial_count, status="starting"
        )

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def update(self, snap: Snapshot) -> None:
        """Show a new snapshot."""
        metric = self._spec.objective.metric
        best = (
            f"best {metric}={snap.best_value:.6g}"
            if snap.best_value is not None
            else "no result yet"
        )
        status = f"{best} · running {snap.running}"
        if snap.early_stopped:
            status += f" · stopped early {snap.early_stopped}"
        if snap.failed:
            status += f" · [red]failed {snap.failed}[/red]"
        self._progress.update(self._task, completed=snap.done, status=status)
