"""A progress display for a running experiment: trials done, running, failed, best so far.

In a terminal it is a rich progress bar. In a Jupyter kernel it is one display output updated in
place (``display(..., display_id=True)`` then ``update``): an HTML bar with a plain-text
fallback. That needs no widget library, works in JupyterLab, VS Code and classic Notebook, and
the final state stays in the saved (or papermill-executed) notebook.
"""

from __future__ import annotations

import html
import sys
import time
from types import TracebackType
from typing import Any

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

__all__ = [
    "NotebookProgress",
    "ProgressBar",
    "in_jupyter",
    "progress_display",
    "progress_wanted",
]


def in_jupyter() -> bool:
    """Whether this code runs in a Jupyter kernel (IPython over ZMQ), not a terminal."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_wanted(progress: bool | None, stream: Any = None) -> bool:
    """Whether to show progress.

    ``None`` means on in a notebook or a terminal and off when the output is piped or
    redirected; ``True`` and ``False`` decide.
    """
    if progress is not None:
        return progress
    if in_jupyter():
        return True
    out = sys.stdout if stream is None else stream
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def _status(spec: ExperimentSpec, snap: Snapshot | None) -> str:
    if snap is None:
        return "starting"
    metric = spec.objective.metric
    best = (
        f"best {metric}={snap.best_value:.6g}" if snap.best_value is not None else "no result yet"
    )
    status = f"{best} · running {snap.running}"
    if snap.early_stopped:
        status += f" · stopped early {snap.early_stopped}"
    if snap.failed:
        status += f" · failed {snap.failed}"
    if snap.budget_used is not None:  # budget.trial_hours / gpu_hours
        status += f" · budget {min(snap.budget_used, 1.0):.0%} used"
    return status


class NotebookProgress:
    """Progress of an experiment as one Jupyter output, updated in place.

    Updates are sent at most every ``interval`` seconds (a thousand quick trials do not flood
    the notebook); the last state is always shown when the run ends.
    """

    def __init__(self, spec: ExperimentSpec, interval: float = 0.25) -> None:
        self._spec = spec
        self._interval = interval
        self._snap: Snapshot | None = None
        self._handle: Any = None
        self._sent = 0.0
        self._started = time.monotonic()
        self._ended = ""

    def _bundle(self) -> dict[str, str]:
        spec, snap = self._spec, self._snap
        done = snap.done if snap is not None else 0
        total = spec.max_trial_count
        elapsed = time.monotonic() - self._started
        count = f"{done}/{total}" if total else f"{done}"
        text = (
            f"{spec.name}: {count} trials · {_status(spec, snap)} · {elapsed:.1f} s{self._ended}"
        )
        bar = (
            f"<progress value='{done}' max='{total}' style='width:16em'></progress> "
            if total
            else ""
        )
        status = html.escape(_status(spec, snap) + self._ended)
        markup = (
            f"<div class='automl-progress'><b>{html.escape(spec.name)}</b> {bar}"
            f"<code>{count}</code> trials · {status} · {elapsed:.1f} s</div>"
        )
        return {"text/plain": text, "text/html": markup}

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._sent < self._interval:
            return
        self._sent = now
        from IPython.display import display

        bundle = self._bundle()
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)  # type: ignore[no-untyped-call]
        else:
            self._handle.update(bundle, raw=True)

    def __enter__(self) -> NotebookProgress:
        self._started = time.monotonic()
        self._show(force=True)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._ended = " · done" if et is None else f" · ended by {et.__name__}"
        self._show(force=True)

    def update(self, snap: Snapshot) -> None:
        """Show a new snapshot."""
        self._snap = snap
        self._show()


class ProgressBar:
    """Context manager that renders controller snapshots as a rich progress bar.

    Args:
        spec: The experiment.
        console: A rich console to draw on (a terminal bar even inside Jupyter).
    """

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
        status = _status(self._spec, snap)
        if snap.failed:
            status = status.replace(f"failed {snap.failed}", f"[red]failed {snap.failed}[/red]")
        self._progress.update(self._task, completed=snap.done, status=status)


def progress_display(spec: ExperimentSpec) -> ProgressBar | NotebookProgress:
    """The display for this environment: in-place notebook output in Jupyter, else a rich bar."""
    return NotebookProgress(spec) if in_jupyter() else ProgressBar(spec)
