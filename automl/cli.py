"""The ``automl`` command line: run, validate, list, show, best, stop, resume, delete, dashboard.

Bad input (a spec, a name, a store URL) prints one message per problem and exits with code 2;
nothing already stored is touched.

The core commands live here; the sections register themselves from their own modules:
``automl serve`` and the kserve export (:mod:`automl._cli_serve`), ``automl pipeline``
(:mod:`automl._cli_pipeline`), the torch export and NAS display (:mod:`automl._cli_nas`).
Shared helpers are in :mod:`automl._cli_common`.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from automl import _cli_nas, _cli_pipeline, _cli_select, _cli_serve, _cli_service, _cli_steer
from automl._cli_common import (
    DEFAULT,
    Exporter,
    JsonOpt,
    ServerOpt,
    StoreOpt,
    _client,
    _errors,
    console,
    dumps_json,
    err,
)
from automl._cli_front import front_ids, infeasible_note, print_front
from automl._cli_nas import _architecture_cell, _found_architecture, _print_architecture
from automl.core import (
    ExperimentRecord,
    ExperimentState,
    TrialRecord,
    TrialState,
    searched_space,
)
from automl.errors import SpecError

__all__ = ["DEFAULT", "Exporter", "JsonOpt", "StoreOpt", "app", "console", "err", "main"]

app = typer.Typer(
    name="automl",
    help="Hyperparameter tuning: Katib experiments, Optuna search, on your machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
T = TypeVar("T")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return escape(str(v))


def _trial_json(t: TrialRecord) -> dict[str, Any]:
    return {
        "id": t.id,
        "number": t.number,
        "state": t.state.value,
        "params": dict(t.params),
        "value": t.value if t.value is None or math.isfinite(t.value) else str(t.value),
        "metrics": {
            k: {"min": s.min, "max": s.max, "latest": s.latest} for k, s in t.metrics.items()
        },
        "started_at": t.started_at,
        "finished_at": t.finished_at,
        "attempt": t.attempt,
        "message": t.message,
        "lineage": _lineage(t),
        "strategy": t.attrs.get("strategy"),  # which part of `auto` proposed it
        "outputs": dict(t.outputs),
    }


def _lineage(t: TrialRecord) -> dict[str, Any] | None:
    """Where a trial comes from: PBT generation and parent, or Hyperband bracket and rung."""
    for key in ("pbt", "hyperband"):
        info = t.attrs.get(key)
        if isinstance(info, dict):
            return {"algorithm": key, **info}
    return None


def _note(t: TrialRecord) -> str:
    """A short note for the trial table: lineage, or why it ended."""
    lin = _lineage(t)
    if lin is not None and lin["algorithm"] == "pbt":
        parent = lin.get("parent")
        return f"gen {lin.get('generation')}" + (f" <- {parent}" if parent else "")
    if lin is not None:
        return f"bracket {lin.get('bracket')} rung {lin.get('rung')}"
    if t.invalidated:
        return "invalidated: " + str(t.attrs["invalidated"].get("reason") or "no reason given")
    if infeasible_note(t):
        return infeasible_note(t)
    if t.state in (TrialState.SUCCEEDED, TrialState.RUNNING, TrialState.CREATED) or not t.message:
        return "enqueued" if t.enqueued and t.state is TrialState.CREATED else ""
    if t.state is TrialState.EARLY_STOPPED:
        return t.message.replace("stopped early at ", "")
    first = t.message.splitlines()[0]
    return first if len(first) <= 48 else first[:47] + "…"


def _exp_json(
    e: ExperimentRecord, trials: Sequence[TrialRecord], best: TrialRecord | None
) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.value] = counts.get(t.state.value, 0) + 1
    return {
        "name": e.name,
        "state": e.state.value,
        "reason": e.reason,
        "message": e.message,
        "algorithm": e.spec.algorithm.name,
        "objective": {
            "metric": e.spec.objective.metric,
            "type": e.spec.objective.type.value,
            "goal": e.spec.objective.goal,
        },
        "created_at": e.created_at,
        "started_at": e.started_at,
        "finished_at": e.finished_at,
        "trials": counts,
        "best_trial": _trial_json(best) if best else None,
    }


def _best_table(e: ExperimentRecord, best: TrialRecord) -> Table:
    table = Table(title=f"best trial {best.id}", show_header=True, header_style="bold")
    table.add_column("name")
    table.add_column("value", justify="right")
    for k, v in best.params.items():
        table.add_row(k, _fmt(v))
    obj = e.spec.objective
    for m in obj.metrics:
        s = best.metrics.get(m)
        if s is not None:
            table.add_row(
                f"[bold]{m}[/bold] ({obj.strategy(m).value})", _fmt(s.pick(obj.strategy(m).value))
            )
    return table


_STATE_STYLE = {
    TrialState.SUCCEEDED: "green",
    TrialState.FAILED: "red",
    TrialState.METRICS_UNAVAILABLE: "red",
    TrialState.KILLED: "yellow",
    TrialState.EARLY_STOPPED: "yellow",
    TrialState.PREEMPTED: "magenta",
    TrialState.RUNNING: "cyan",
    TrialState.CREATED: "dim",
}


def _words(camel: str) -> str:
    """``EarlyStopped`` -> ``early stopped``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", camel).lower()


def _summary(
    e: ExperimentRecord,
    trials: Sequence[TrialRecord],
    best: TrialRecord | None,
    table: bool = True,
) -> None:
    style = {"Succeeded": "green", "Failed": "red"}.get(e.state.value, "yellow")
    n = {s: sum(1 for t in trials if t.state is s) for s in TrialState}
    parts = ", ".join(f"{v} {_words(s.value)}" for s, v in n.items() if v)
    console.print(
        f"[bold]{e.name}[/bold]: [{style}]{e.state.value}[/{style}] ({e.reason}) — "
        f"{len(trials)} trials: {parts}",
        highlight=False,
    )
    if e.message:
        console.print(f"  {escape(e.message)}", highlight=False)
    if best is None:
        console.print("no trial succeeded")
    elif table and e.spec.multi_objective:
        print_front(e, trials, as_json=False)
    elif table:
        console.print(_best_table(e, best))


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Experiment YAML (native or Katib v1beta1).")],
    store: StoreOpt = DEFAULT,
    server: ServerOpt = None,
    runs_dir: Annotated[
        str, typer.Option(help="Where trials write logs and outputs.")
    ] = "automl-runs",
    name: Annotated[str | None, typer.Option(help="Override the experiment's name.")] = None,
    path_map: Annotated[
        list[str] | None,
        typer.Option(
            "--path-map",
            help="SRC=DST: run paths that exist only inside the image from a local directory "
            "(repeatable), e.g. /opt/pytorch-mnist=examples/katib/pytorch-mnist.",
        ),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="Run trial commands in this directory (e.g. where a Katib image's scripts live "
            "locally: examples/katib/nas/enas-cnn for RunTrial.py).",
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="Where trials run: local, ray or kubernetes (overrides the spec's executor; "
            "Katib documents have none).",
        ),
    ] = None,
    executor_opt: Annotated[
        list[str] | None,
        typer.Option(
            "--executor-opt",
            help="KEY=VALUE executor setting (repeatable): address, namespace, kubeconfig, "
            "context, image, max_retries; other keys go to executor.settings.",
        ),
    ] = None,
    resources: Annotated[
        list[str] | None,
        typer.Option(
            "--resources",
            help="KEY=VALUE override of each trial's resources (repeatable): cpu, memory, gpu, "
            "gpu_memory, workers, processes_per_worker; e.g. --resources gpu=0 runs a GPU "
            "example on the CPU.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the resolved spec and the first trials.")
    ] = False,
    trials: Annotated[int, typer.Option(help="Trials rendered by --dry-run.")] = 3,
    max_trials: Annotated[
        int | None, typer.Option(help="Override maxTrialCount (e.g. a quick try).")
    ] = None,
    parallel: Annotated[int | None, typer.Option(help="Override parallelTrialCount.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Run an experiment to its end; Ctrl-C stops it (resume it later)."""
    from automl._runner import preflight
    from automl.core import validate_spec
    from automl.spec import BudgetOverride, load_spec
    from trials import local_notice

    with _errors():
        budget = BudgetOverride(max_trials, parallel)  # applied before the file's rules
        overridden = max_trials is not None or parallel is not None
        spec = load_spec(file, adjust=budget if overridden else None)
        for note in budget.notes:
            err.print(f"note: {escape(note)}", highlight=False)
        if name:
            spec = validate_spec(spec.model_copy(update={"name": name}))
        if path_map:
            spec = _with_path_map(spec, path_map)
        if executor is not None or executor_opt:
            spec = _with_executor(spec, executor, executor_opt or [])
        if resources:
            spec = _with_resources(spec, resources)
        if workdir is not None:
            if not workdir.expanduser().is_dir():
                raise SpecError(
                    f"must be an existing directory; got {str(workdir)!r}", path="--workdir"
                )
            template = spec.trial_template.model_copy(
                update={"workdir": str(workdir.expanduser().resolve())}
            )
            spec = spec.model_copy(update={"trial_template": template})
        if dry_run:
            _dry_run(spec, trials, as_json)
            return
        if server:  # a worker runs it; follow it here
            return _cli_service.run_remote(server, spec, progress, as_json)
        try:
            preflight(spec)  # before anything is stored: a spec that cannot run leaves nothing
        except SpecError as exc:
            if any(i.path.endswith("resources.gpu") for i in exc.issues):
                err.print("hint: --resources gpu=0 runs the trials on the CPU", highlight=False)
            raise
        notice = local_notice(spec)
        if notice and not as_json:
            err.print(f"note: {escape(notice)}", highlight=False)
        client = _client(store, runs_dir)
        exp = client.store.experiments.create(spec)
        if not as_json:
            console.print(
                f"experiment [bold]{spec.name}[/bold]: {spec.algorithm.name}, "
                f"{spec.parallel_trial_count} in parallel, store {client.store.display_url}",
                highlight=False,
            )
        _run_and_report(client, exp, runs_dir, progress, as_json)


_EXECUTOR_FIELDS = ("address", "namespace", "kubeconfig", "context", "image", "max_retries")


def _with_executor(spec: Any, kind: str | None, pairs: list[str]) -> Any:
    from automl.core import ExecutorKind, validate_spec

    update: dict[str, Any] = {}
    if kind is not None:
        kinds = [k.value for k in ExecutorKind]
        if kind not in kinds:
            raise SpecError(f"must be one of {kinds}; got {kind!r}", path="--executor")
        update["kind"] = ExecutorKind(kind)
    settings = dict(spec.executor.settings)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError(f"must be KEY=VALUE; got {pair!r}", path="--executor-opt")
        if key == "max_retries":
            if not value.isdigit():
                raise SpecError(
                    f"max_retries must be a whole number; got {value!r}", path="--executor-opt"
                )
            update[key] = int(value)
        elif key in _EXECUTOR_FIELDS:
            update[key] = value
        else:
            settings[key] = value
    update["settings"] = settings
    return validate_spec(
        spec.model_copy(update={"executor": spec.executor.model_copy(update=update)})
    )


_RESOURCE_NUMBERS = {"cpu": float, "gpu": float, "workers": int, "processes_per_worker": int}


def _with_resources(spec: Any, pairs: list[str]) -> Any:
    from automl.core import validate_spec

    update: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in (*_RESOURCE_NUMBERS, "memory", "gpu_memory"):
            raise SpecError(
                "must be KEY=VALUE with KEY one of cpu, memory, gpu, gpu_memory, workers, "
                f"processes_per_worker; got {pair!r}",
                path="--resources",
            )
        if key in _RESOURCE_NUMBERS:
            try:
                update[key] = _RESOURCE_NUMBERS[key](value)
            except ValueError:
                raise SpecError(
                    f"{key} must be a number; got {value!r}", path="--resources"
                ) from None
        else:
            update[key] = value or None
    t = spec.trial_template
    template = t.model_copy(update={"resources": t.resources.model_copy(update=update)})
    return validate_spec(spec.model_copy(update={"trial_template": template}))


def _with_path_map(spec: Any, pairs: list[str]) -> Any:
    """The spec with ``SRC=DST`` path rewrites added (DST resolved against the working dir)."""
    mapping = dict(spec.trial_template.path_map)
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src.startswith("/") or not dst:
            raise SpecError(
                f"must be SRC=DST with an absolute SRC; got {pair!r}", path="--path-map"
            )
        mapping[src.rstrip("/") or "/"] = str(Path(dst).expanduser().resolve())
    template = spec.trial_template.model_copy(update={"path_map": mapping})
    return spec.model_copy(update={"trial_template": template})


def _dry_run(spec: Any, count: int, as_json: bool) -> None:
    """Print the resolved spec and the first trials' commands or manifests; run nothing."""
    import yaml

    from automl.spec._render import render_trials, resolved_spec_dict

    resolved = resolved_spec_dict(spec)
    rendered = render_trials(spec, count)
    if as_json:
        print(
            json.dumps(
                {
                    "spec": resolved,
                    "trials": [
                        {
                            "name": r.name,
                            "params": dict(r.params),
                            "argv": r.argv,
                            "env": dict(r.env),
                            "manifest": r.manifest,
                        }
                        for r in rendered
                    ],
                },
                indent=2,
                default=str,
            )
        )
        return
    console.print("[bold]resolved spec[/bold] (defaults filled)")
    console.print(escape(yaml.safe_dump(resolved, sort_keys=False)), highlight=False)
    blocker = spec.trial_template.local_blocker
    if blocker:
        console.print(f"[yellow]{escape(blocker)}[/yellow]: shown as manifests only")
    for r in rendered:
        console.print(f"[bold]trial {escape(r.name)}[/bold] {escape(json.dumps(dict(r.params)))}")
        if r.argv is not None and not blocker:
            console.print("  argv: " + escape(json.dumps(r.argv)), highlight=False)
        if r.manifest is not None:
            text = yaml.safe_dump(r.manifest, sort_keys=False)
            console.print(escape("  " + text.replace("\n", "\n  ")), highlight=False)


def _run_and_report(
    client: Any, exp: ExperimentRecord, runs_dir: str, progress: bool, as_json: bool
) -> None:
    """Run an experiment here (with a progress bar), then print how it ended."""
    from automl._api import _best
    from automl._progress import ProgressBar
    from automl._runner import run_experiment

    try:
        if progress and not as_json:
            with ProgressBar(exp.spec, console) as bar:
                run_experiment(client.store, exp, runs_dir=runs_dir, on_progress=bar.update)
        else:
            run_experiment(client.store, exp, runs_dir=runs_dir)
    except KeyboardInterrupt:
        err.print(f"interrupted; continue with: automl resume {exp.name}")
        raise typer.Exit(130) from None
    e = client.get(exp.name)
    trials = client.trials(exp.name)
    best = _best(e.spec, trials)
    if as_json:
        print(dumps_json(_exp_json(e, trials, best)))
    else:
        _summary(e, trials, best)
    if e.state is ExperimentState.FAILED:
        raise typer.Exit(1)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Experiment files to check.")],
    as_json: JsonOpt = False,
) -> None:
    """Check experiment files and report every problem with its field path."""
    from automl.spec import load_spec

    failed = False
    report: list[dict[str, Any]] = []
    for f in files:
        try:
            spec = load_spec(f)
        except SpecError as exc:
            failed = True
            report.append(
                {
                    "file": str(f),
                    "valid": False,
                    "issues": [{"path": i.path, "message": i.message} for i in exc.issues],
                }
            )
            if not as_json:
                for issue in exc.issues:
                    err.print(
                        f"[red]{escape(str(f))}[/red]: {escape(str(issue))}", highlight=False
                    )
            continue
        report.append({"file": str(f), "valid": True, "name": spec.name, "source": spec.source})
        if not as_json:
            console.print(
                f"[green]ok[/green] {f}: {spec.source} experiment {spec.name!r}, "
                f"{len(spec.parameters)} parameters, {spec.algorithm.name}",
                highlight=False,
            )
    if as_json:
        print(dumps_json(report))
    if failed:
        raise typer.Exit(2)


@app.command("list")
def list_(store: StoreOpt = DEFAULT, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """List experiments."""
    from automl._api import _best

    with _errors():
        client = _client(store, server=server, read=True)
        rows = []
        for e in client.list():
            trials = client.trials(e.name)
            rows.append(_exp_json(e, trials, _best(e.spec, trials)))
    if as_json:
        print(dumps_json(rows))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("name", "state", "reason", "algorithm", "trials", "best"):
        table.add_column(col)
    for r in rows:
        best = r["best_trial"]
        table.add_row(
            r["name"],
            r["state"],
            r["reason"],
            r["algorithm"],
            str(sum(r["trials"].values())),
            f"{r['objective']['metric']}={_fmt(best['value'])}" if best else "-",
        )
    console.print(table)


@app.command()
def show(
    name: str, store: StoreOpt = DEFAULT, server: ServerOpt = None, as_json: JsonOpt = False
) -> None:
    """Show an experiment and its trial table."""
    from automl._api import _best

    with _errors():
        client = _client(store, server=server, read=True)
        e = client.get(name)
        trials = client.trials(name)
    best = _best(e.spec, trials)
    if as_json:
        data = _exp_json(e, trials, best)
        data["spec"] = json.loads(e.spec.to_json())
        data["trial_list"] = [_trial_json(t) for t in trials]
        data["architecture"] = _found_architecture(e, best) if best is not None else None
        print(dumps_json(data))
        return
    _summary(e, trials, best, table=False)
    obj = e.spec.objective
    table = Table(show_header=True, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("trial")
    table.add_column("state")
    space = searched_space(e.spec, trials)  # define-by-run: what the trials asked for
    for p in space:
        table.add_column(p.name, justify="right")  # "-" where inactive
    for m in obj.metrics:
        table.add_column(m, justify="right")
    table.add_column("seconds", justify="right")
    strategies = any("strategy" in t.attrs for t in trials)  # `auto`: who proposed each trial
    if strategies:
        table.add_column("strategy")
    layered = e.spec.nas_config is not None and e.spec.algorithm.name != "darts"
    if layered:  # NAS: the architecture each trial trained, operations by layer
        table.add_column("architecture", overflow="fold", max_width=60)
    table.add_column("note", no_wrap=True, overflow="ellipsis", max_width=48)
    front = front_ids(e, trials)  # the best trial, or the Pareto front's members
    for t in trials:
        mark = " *" if t.id in front else ""
        style = _STATE_STYLE.get(t.state, "")
        cells = [str(t.number), t.id + mark, f"[{style}]{t.state.value}[/{style}]"]
        cells += [_fmt(t.params.get(p.name)) for p in space]
        for m in obj.metrics:
            s = t.metrics.get(m)
            cells.append(_fmt(s.pick(obj.strategy(m).value)) if s else "-")
        cells.append(f"{t.duration:.2f}" if t.duration is not None else "-")
        if strategies:
            cells.append(_fmt(t.attrs.get("strategy", "")))
        if layered:
            cells.append(_architecture_cell(e, t))
        cells.append(_fmt(_note(t)))
        table.add_row(*cells, style="strike dim" if t.invalidated else None)
    console.print(table)
    if best is not None:
        _print_architecture(e, best)
        _print_artifacts(best)


def _print_artifacts(best: TrialRecord) -> None:
    """Where the best trial's saved models and files are (``automl.save_model``)."""
    where = best.outputs.get("artifact_dir")
    if not where:
        return
    models = best.outputs.get("models") or {}
    files = best.outputs.get("files") or []
    what = (
        ", ".join(f"{n} ({m.get('format', '?')})" for n, m in models.items())
        or f"{len(files)} file(s)"
    )
    console.print(f"best trial's artifacts: {what} in {where}", highlight=False, markup=False)


@app.command()
def best(
    name: str, store: StoreOpt = DEFAULT, server: ServerOpt = None, as_json: JsonOpt = False
) -> None:
    """Print the best trial of an experiment (with several objectives, the Pareto front)."""
    with _errors():
        client = _client(store, server=server, read=True)
        e = client.get(name)
        if e.spec.multi_objective:
            return print_front(e, client.trials(name), as_json)
        t = client.best_trial(name)
    if as_json:
        print(dumps_json(_trial_json(t) if t else None))
    elif t is None:
        console.print(f"{name}: no trial succeeded yet")
    else:
        console.print(_best_table(e, t))
    if t is None:
        raise typer.Exit(1)


@app.command()
def stop(name: str, store: StoreOpt = DEFAULT, server: ServerOpt = None) -> None:
    """Stop a running experiment (its controller kills running trials)."""
    with _errors():
        e = _client(store, server=server).stop(name)
    console.print(
        f"{name}: stop requested" if not e.state.is_terminal else f"{name}: {e.state.value}"
    )


@app.command()
def resume(
    name: str,
    store: StoreOpt = DEFAULT,
    server: ServerOpt = None,
    runs_dir: Annotated[
        str, typer.Option(help="Where trials write logs and outputs.")
    ] = "automl-runs",
    max_trials: Annotated[int | None, typer.Option(help="Raise maxTrialCount.")] = None,
    parallel: Annotated[int | None, typer.Option(help="Change parallelTrialCount.")] = None,
    max_failed: Annotated[int | None, typer.Option(help="Change maxFailedTrialCount.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Continue an interrupted, stopped or finished experiment (budgets may be raised)."""
    if server:  # back to the server's queue; follow it here
        budgets = {"max_trials": max_trials, "parallel_trials": parallel}
        budgets["max_failed_trials"] = max_failed
        return _cli_service.resume_remote(server, name, budgets, as_json)
    with _errors():
        client = _client(store, runs_dir)
        e = client.prepare_resume(
            name, max_trials=max_trials, parallel_trials=parallel, max_failed_trials=max_failed
        )
        _run_and_report(client, e, runs_dir, progress, as_json)


def _export_katib(
    client: Any, e: ExperimentRecord, output: Path | None, options: dict[str, Any]
) -> str | None:
    from automl.spec._export import dump_katib

    return dump_katib(e.spec, image=options["image"])


# Formats of `automl export`: each takes (client, experiment, --output, options) and returns the
# text to print or write, or None when it wrote --output itself. Section modules add theirs.
_EXPORTERS: dict[str, Exporter] = {"katib": _export_katib}


@app.command()
def export(
    name: str,
    store: StoreOpt = DEFAULT,
    server: ServerOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", help="Output format: katib, kserve or torch.")
    ] = "katib",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file instead of stdout.")
    ] = None,
    image: Annotated[
        str, typer.Option(help="Container image for trials of native experiments.")
    ] = "python:3.11-slim",
    trial: Annotated[
        int | None, typer.Option(help="Trial number to export (default: the best trial).")
    ] = None,
    storage_uri: Annotated[
        str | None,
        typer.Option(
            "--storage-uri",
            help="kserve: the model's storageUri (default pvc://automl-runs/<exp>/<trial>/artifacts).",
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="kserve: metadata.namespace of the exported resource.")
    ] = None,
) -> None:
    """Export an experiment: a Katib Experiment, a KServe InferenceService, or a torch module."""
    with _errors():
        if fmt not in _EXPORTERS:
            raise SpecError(f"must be one of {sorted(_EXPORTERS)}; got {fmt!r}", path="--format")
        client = _client(store, server=server)
        e = client.get(name)
        options = {
            "image": image,
            "trial": trial,
            "storage_uri": storage_uri,
            "namespace": namespace,
        }
        text = _EXPORTERS[fmt](client, e, output, options)
    if text is None:
        return
    if output is None:
        print(text, end="")
    else:
        output.write_text(text)
        err.print(f"wrote {output}", highlight=False)


@app.command()
def delete(
    name: str,
    store: StoreOpt = DEFAULT,
    server: ServerOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete an experiment with its trials and observations."""
    with _errors():
        client = _client(store, server=server)
        client.get(name)
        if not yes and not typer.confirm(f"delete experiment {name!r} and all its trials?"):
            raise typer.Exit(1)
        client.delete(name)
    console.print(f"deleted {name}")


@app.command()
def dashboard(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            "-s",
            help="Store URL (any SQLAlchemy URL) or SQLite file path [env: AUTOML_STORE; "
            "default: sqlite:///automl.db].",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="AUTOML_SERVER",
            help="Read and act through this automl server instead of a store.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="AUTOML_TOKEN",
            help="Bearer token for --server (read-only suffices to browse; rw to act).",
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Port to serve on (0 picks a free one).")] = 8501,
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind. Anything but loopback makes the app read-only "
            "unless --allow-remote-actions."
        ),
    ] = "127.0.0.1",
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Hide stop/resume/delete actions.")
    ] = False,
    allow_remote_actions: Annotated[
        bool,
        typer.Option(
            "--allow-remote-actions",
            help="Keep actions enabled when --host is not a loopback address.",
        ),
    ] = False,
) -> None:
    """Open the web dashboard (Streamlit) on a store or a server; Ctrl-C stops it."""
    from automl import _dashboard

    with _errors():
        if server and store:
            raise SpecError("give --store or --server, not both", path="--server")
        code = _dashboard.serve(
            store or os.environ.get("AUTOML_STORE") or DEFAULT,
            server=server,
            token=token,
            host=host,
            port=port,
            read_only=read_only,
            allow_remote_actions=allow_remote_actions,
            echo=lambda line: console.print(line, highlight=False, markup=False),
        )
    if code != 0:
        raise typer.Exit(code)


_cli_serve.register(app, _EXPORTERS)
_cli_pipeline.register(app)
_cli_nas.register(_EXPORTERS)
_cli_service.register(app)
_cli_select.register(app)
_cli_steer.register(app)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: trials killed, experiment resumable


def main() -> None:
    """Entry point of the ``automl`` command."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
