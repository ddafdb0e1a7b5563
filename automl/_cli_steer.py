"""``automl enqueue|invalidate|rerun|fork|budget``: steering a search by hand (docs/steering.md).

Each command is one call of :class:`automl.Client` (on ``--store`` or ``--server``); a running
experiment's controller applies the change at its next turn. Bad input exits with code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from automl._cli_common import (
    DEFAULT,
    JsonOpt,
    ServerOpt,
    StoreOpt,
    _client,
    _errors,
    console,
    dumps_json,
)
from automl.core import TrialRecord

__all__ = ["register"]

Name = Annotated[str, typer.Argument(help="The experiment.")]
Trial = Annotated[str, typer.Argument(help="A trial id (as `automl show` lists it) or number.")]


def register(app: typer.Typer) -> None:
    """Add the steering commands to the ``automl`` command."""
    app.command()(enqueue)
    app.command()(invalidate)
    app.command()(rerun)
    app.command()(fork)
    app.command()(budget)


def _print_trial(t: TrialRecord, what: str, as_json: bool) -> None:
    if as_json:
        print(dumps_json({"id": t.id, "params": dict(t.params), "attrs": dict(t.attrs)}))
        return
    params = ", ".join(f"{k}={v!r}" for k, v in t.params.items())
    console.print(f"{escape(t.id)}: {what} ({escape(params)})", highlight=False)


def enqueue(
    name: Name,
    param: Annotated[
        list[str], typer.Option("--param", "-p", help="NAME=VALUE, one per parameter.")
    ],
    store: StoreOpt = DEFAULT,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a configuration next, before new suggestions (values checked against the space)."""
    from automl._steering import parse_pairs

    with _errors():
        t = _client(store, server=server).enqueue(name, parse_pairs(param))
    _print_trial(t, "enqueued; it runs at the controller's next turn", as_json)


def invalidate(
    name: Name,
    trial: Trial,
    reason: Annotated[str, typer.Option(help="Why (kept with the trial).")] = "",
    undo: Annotated[bool, typer.Option("--undo", help="Take the trial back.")] = False,
    store: StoreOpt = DEFAULT,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Exclude a finished trial from best and from the search's history (kept, reversible)."""
    with _errors():
        client = _client(store, server=server)
        t = client.revalidate(name, trial) if undo else client.invalidate(name, trial, reason)
    _print_trial(t, "valid again" if undo else "invalidated", as_json)


def rerun(
    name: Name,
    trial: Trial,
    store: StoreOpt = DEFAULT,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a trial's parameters again, as a new trial (enqueued)."""
    with _errors():
        t = _client(store, server=server).rerun(name, trial)
    _print_trial(t, f"enqueued to rerun {trial}", as_json)


def fork(
    name: Name,
    new_name: Annotated[str, typer.Argument(help="The new experiment's name.")],
    max_trials: Annotated[int | None, typer.Option(help="The new maxTrialCount.")] = None,
    spec: Annotated[
        Path | None, typer.Option(help="A changed experiment file (its name is replaced).")
    ] = None,
    run: Annotated[bool, typer.Option(help="Run the new experiment here.")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    runs_dir: Annotated[
        str, typer.Option(help="Where trials write logs and outputs.")
    ] = "automl-runs",
    store: StoreOpt = DEFAULT,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A new experiment with NAME's spec whose search starts from NAME's finished trials."""
    with _errors():
        new_spec = None
        if spec is not None:
            from automl.spec import load_spec

            new_spec = load_spec(spec)
        client = _client(store, runs_dir, server=server)
        f = client.fork(name, new_name, max_trials=max_trials, spec=new_spec)
        note = f"{new_name}: forked from {name}; its search starts from {f.kept} of {f.total} "
        note += "finished trials" + (" (those whose values fit the new space)" if spec else "")
        if not as_json or not run:
            console.print(escape(note), highlight=False)
        if not run:
            return
        if server:
            client.requeue(new_name)
            console.print(f"{new_name}: queued on {server}")
            return
        from automl.cli import _run_and_report

        _run_and_report(client, client.prepare_resume(new_name), runs_dir, progress, as_json)


def _seconds(text: str | None) -> float | None:
    from automl.spec._common import parse_duration

    return parse_duration(text, "--timeout") if text is not None else None


def budget(
    name: Name,
    max_trials: Annotated[int | None, typer.Option(help="maxTrialCount.")] = None,
    parallel: Annotated[int | None, typer.Option(help="parallelTrialCount.")] = None,
    max_failed: Annotated[int | None, typer.Option(help="maxFailedTrialCount.")] = None,
    timeout: Annotated[
        str | None, typer.Option(help="The experiment's time budget (600, 90s, 1h).")
    ] = None,
    trial_hours: Annotated[
        float | None, typer.Option(help="budget.trial_hours: summed trial run time, hours.")
    ] = None,
    gpu_hours: Annotated[
        float | None, typer.Option(help="budget.gpu_hours: summed run time x GPUs, hours.")
    ] = None,
    store: StoreOpt = DEFAULT,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Raise or lower budgets, also of a running experiment (applied at its next turn)."""
    with _errors():
        e = _client(store, server=server).set_budget(
            name,
            max_trials=max_trials,
            parallel_trials=parallel,
            max_failed_trials=max_failed,
            timeout=_seconds(timeout),
            trial_hours=trial_hours,
            gpu_hours=gpu_hours,
        )
    s = e.spec
    data: dict[str, Any] = {
        "max_trials": s.max_trial_count,
        "parallel_trials": s.parallel_trial_count,
        "max_failed_trials": s.max_failed_trial_count,
        "timeout": s.timeout,
        "trial_hours": s.trial_hours,
        "gpu_hours": s.gpu_hours,
    }
    if as_json:
        print(dumps_json({"name": e.name, **data}))
        return
    shown = ", ".join(f"{k} {v if v is not None else '-'}" for k, v in data.items())
    console.print(f"{e.name}: {shown}", highlight=False)
