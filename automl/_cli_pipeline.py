"""``automl pipeline run|compile|stage`` (integrations.pipelines).

The ``pipeline`` sub-app lives here; :func:`register` mounts it on the ``automl`` app, which
:mod:`automl.cli` does when it is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from automl._cli_common import DEFAULT, JsonOpt, StoreOpt, _errors, console, err
from automl.errors import AutoMLError, SpecError

pipeline_app = typer.Typer(
    help="Pipelines around the tuning loop: run them here, compile them for Kubeflow Pipelines.",
    no_args_is_help=True,
)
PipelineFile = Annotated[Path, typer.Argument(help="Pipeline file: YAML (kind: Pipeline) or .py.")]


@pipeline_app.command("run")
def pipeline_run(
    file: PipelineFile,
    store: StoreOpt = DEFAULT,
    runs_dir: Annotated[
        str, typer.Option(help="Root of trial and pipeline run directories.")
    ] = "automl-runs",
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(help="Continue the latest run (or --run-id), skipping unchanged stages."),
    ] = False,
    run_id: Annotated[str | None, typer.Option(help="Run id to create or resume.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a pipeline's stages here in dependency order (each stage a subprocess)."""
    from integrations.pipelines._cli import failure_lines, parse_pairs, run_with_progress

    with _errors():
        run = run_with_progress(
            console,
            file,
            store=store,
            runs_dir=runs_dir,
            params=parse_pairs(param, "--param"),
            resume=resume,
            run_id=run_id,
            as_json=as_json,
        )
    for line in failure_lines(run):
        err.print(f"[red]error:[/red] {escape(line)}", highlight=False)
    if not run.ok:
        raise typer.Exit(1)


@pipeline_app.command("compile")
def pipeline_compile(
    file: PipelineFile,
    output: Annotated[Path, typer.Option("--output", "-o", help="Pipeline YAML to write.")] = Path(
        "pipeline.yaml"
    ),
    image: Annotated[
        str, typer.Option(help="Image with automl and the pipeline's directory.")
    ] = "automl:latest",
    workdir: Annotated[
        str, typer.Option(help="Directory of the pipeline file inside the image.")
    ] = "/workspace",
    default_store: Annotated[
        str | None,
        typer.Option(
            help="Default of the automl_store pipeline parameter: the store URL of tune stages "
            "(required with a tune stage; a database the cluster reaches, since a SQLite file "
            "in the pod vanishes with it)."
        ),
    ] = None,
) -> None:
    """Compile a pipeline to a Kubeflow Pipelines v2 pipeline YAML (kfp SDK)."""
    import warnings

    from integrations.pipelines import compile_pipeline, load_compiled, load_pipeline
    from integrations.pipelines._cli import print_compiled

    with _errors(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = compile_pipeline(
            load_pipeline(file), output, image=image, workdir=workdir, store=default_store
        )
        print_compiled(console, load_compiled(out), out)
    for w in caught:  # the ephemeral-store warning, said loudly
        if w.category.__name__ == "EphemeralStoreWarning":
            err.print(f"[bold yellow]warning:[/bold yellow] {escape(str(w.message))}")


@pipeline_app.command(
    "stage",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def pipeline_stage(
    ctx: typer.Context,
    file: PipelineFile,
    stage: Annotated[str, typer.Option("--stage", help="The stage to run.")],
    store: StoreOpt = DEFAULT,
    runs_dir: Annotated[str, typer.Option(help="Where a tune stage's trials write.")] = (
        "automl-runs"
    ),
    run_id: Annotated[str, typer.Option(help="The pipeline run.")] = "",
) -> None:
    """Run one stage (what `pipeline run` and compiled components call).

    Takes --input K V, --output K PATH and --param K V (repeatable).
    """
    from integrations.pipelines._cli import stage_command

    with _errors():
        try:
            stage_command(
                file,
                stage,
                list(ctx.args),
                {"store": store, "runs_dir": runs_dir, "run_id": run_id},
            )
        except SpecError:
            raise
        except AutoMLError as exc:  # the stage failed: exit 1, not 2 (bad input)
            err.print(f"error: {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    """Mount the ``pipeline`` sub-app on ``app``.

    Args:
        app: The ``automl`` Typer app.
    """
    app.add_typer(pipeline_app, name="pipeline")
