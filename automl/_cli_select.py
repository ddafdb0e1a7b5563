"""``automl select``: model selection for a table of data (:func:`automl.select_model`).

:func:`register` adds the command to the ``automl`` app; :mod:`automl.cli` calls it when it is
imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from automl._cli_common import DEFAULT, JsonOpt, StoreOpt, _errors, console, dumps_json, err
from automl.errors import SpecError

__all__ = ["register"]


def select(
    data: Annotated[Path, typer.Argument(help="The table: a CSV file (or .parquet).")],
    target: Annotated[str, typer.Option("--target", "-y", help="The column to predict.")],
    task: Annotated[str, typer.Option(help="classification or regression.")],
    time_budget: Annotated[
        float | None,
        typer.Option(help="Seconds of search (default 60 when --max-trials is unset too)."),
    ] = None,
    max_trials: Annotated[int | None, typer.Option(help="Configurations to try.")] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="accuracy (default), balanced_accuracy, f1_macro, roc_auc, log_loss; "
            "r2 (default), rmse, mae."
        ),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated model names to search (default: all available)."),
    ] = None,
    cv: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    parallel: Annotated[
        int | None, typer.Option(help="Configurations at once (default: CPUs, at most 4).")
    ] = None,
    store: StoreOpt = DEFAULT,
    name: Annotated[
        str | None, typer.Option(help="Experiment name; an existing one is continued.")
    ] = None,
    runs_dir: Annotated[
        str, typer.Option(help="Where trials keep their files (the model among them).")
    ] = "automl-runs",
    output: Annotated[
        Path | None,
        typer.Option(help="Also save the refitted model here (automl.load_model reads it)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the folds, models and search.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Find the best model and settings for a table; save the refitted pipeline to serve."""
    from automl._artifacts import save_model
    from automl._select import read_table, select_model

    with _errors():
        table = read_table(data)
        chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
        try:
            result = select_model(
                table,
                target,
                task=task,
                metric=metric,
                time_budget=time_budget,
                max_trials=max_trials,
                models=chosen,
                cv=cv,
                parallel_trials=parallel,
                store=store,
                name=name,
                seed=seed,
                runs_dir=runs_dir,
                progress=progress and not as_json,
            )
        except SpecError as exc:  # the API's argument names, spelled as this command's options
            raise SpecError([_as_option(i) for i in exc.issues]) from None
        except KeyboardInterrupt:
            err.print("interrupted; continue with the same command and --name")
            raise typer.Exit(130) from None
        saved = save_model(result.model, "model", directory=output) if output else None
    summary: dict[str, Any] = {
        "experiment": result.name,
        "state": result.experiment.state.value,
        "reason": result.experiment.reason,
        "metric": result.metric,
        "best_score": result.best_score,
        "best_model": result.best_model_name,
        "best_params": result.best_params,
        "trials": len(result.trials),
        "model_path": str(result.model_path),
        "output": str(saved) if saved is not None else None,
    }
    if as_json:
        print(dumps_json(summary))
        return
    console.print(
        f"experiment [bold]{escape(result.name)}[/bold]: {summary['trials']} trials, "
        f"{escape(result.experiment.reason)}",
        highlight=False,
    )
    console.print(
        f"best: [bold]{escape(result.best_model_name)}[/bold] "
        f"{result.metric}={result.best_score:.6g} ({cv}-fold cross-validation)",
        highlight=False,
    )
    for key, value in result.best_params.items():
        if key != "model":
            console.print(f"  {escape(key)} = {escape(repr(value))}", highlight=False)
    console.print(f"model: {escape(str(saved or result.model_path))}", highlight=False)
    console.print(
        f"serve it: automl serve {escape(result.name)} --store {escape(store)} "
        f"--runs-dir {escape(runs_dir)}",
        highlight=False,
    )


_OPTIONS = {
    "target": "--target",
    "task": "--task",
    "metric": "--metric",
    "models": "--models",
    "time_budget": "--time-budget",
    "max_trials": "--max-trials",
    "parallel_trials": "--parallel",
    "cv": "--cv",
    "name": "--name",
}


def _as_option(issue: Any) -> Any:
    from automl.errors import SpecIssue

    head, dot, rest = issue.path.partition(".")
    head, bracket, index = head.partition("[")
    if head == "X":  # the table's columns
        return SpecIssue("data" + issue.path[1:], issue.message)
    option = _OPTIONS.get(head, "--target" if head == "y" else None)
    if option is None:
        return issue
    return SpecIssue(option + (bracket + index if bracket else "") + dot + rest, issue.message)


def register(app: typer.Typer) -> None:
    """Add ``automl select`` to ``app`` (the ``automl`` Typer app)."""
    app.command("select")(select)
