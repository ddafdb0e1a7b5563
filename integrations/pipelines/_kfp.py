"""Compile a pipeline to a Kubeflow Pipelines v2 pipeline (IR YAML) with the ``kfp`` SDK.

Every stage becomes a container component that runs the stage's own entry point in an image
holding automl and the pipeline's directory::

    automl pipeline stage <workdir>/<pipeline file> --stage NAME
        --input K {{inputs}} --output K {{outputs}} --param P {{pipeline parameter}}

Artifacts travel as KFP artifacts (``Dataset``, ``Model``, ``Metrics``, ``Artifact``: the stage
reads and writes the local paths KFP mounts), values as KFP parameters (``Float``, ``String``,
``JsonObject``...), and the pipeline's parameters are the KFP pipeline's parameters (plus
``automl_store``, the store URL of the tune stages, which ``compile`` requires when there is a
tune stage: a SQLite file inside the pod vanishes with it, so a SQLite URL is warned about). The
tune stage is one component that runs
the experiment inside its pod with automl's local executor (trials as processes or threads in
that pod); a Katib ``Experiment`` per tune stage would be the cluster-native alternative (see
docs/pipelines.md).

Components are built as KFP component specs and loaded with
``kfp.components.load_component_from_text``; the pipeline function is generated with the
pipeline's parameters as its signature and compiled by ``kfp.compiler.Compiler``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automl.errors import AutoMLError, SpecError
from integrations.pipelines._model import Pipeline, Stage, StageKind

__all__ = ["DEFAULT_IMAGE", "EphemeralStoreWarning", "compile_pipeline", "load_compiled"]

DEFAULT_IMAGE = "automl:latest"
STORE_PARAM = "automl_store"
_PARAM_TYPES: dict[type, str] = {bool: "Boolean", int: "Integer", float: "Float", str: "String"}


class EphemeralStoreWarning(UserWarning):
    """The compiled pipeline's tune stages default to a SQLite file inside their pod."""


def _check_store(pipeline: Pipeline, store: str | None) -> None:
    tune = [s.name for s in pipeline.stages if s.kind is StageKind.TUNE]
    if not tune:
        return
    if not store:
        raise SpecError(
            f"pipeline {pipeline.name!r} has a tune stage ({', '.join(tune)}) that records its "
            "experiment in a store; give the default of the automl_store pipeline parameter: "
            "a database the cluster reaches (postgresql://user@db:5432/automl) so the results "
            "outlive the pod, or sqlite:////mnt/<volume>/automl.db on a volume mounted into it",
            path="--default-store",
        )
    if store.startswith("sqlite"):
        warnings.warn(
            f"automl_store defaults to {store}: a SQLite file inside the tune stage's pod. "
            "Unless that path is on a mounted volume, the experiment's trials and results "
            "vanish with the pod (the pipeline's own outputs keep best_params and the model); "
            "the dashboard and `automl show` will never see them. Use a PostgreSQL/MySQL URL "
            "the cluster reaches, or pass automl_store when you submit the run.",
            EphemeralStoreWarning,
            stacklevel=3,
        )


def _kfp() -> Any:
    try:
        import kfp  # type: ignore[import-untyped]
        from kfp import compiler, components, dsl  # noqa: F401
    except ImportError as exc:
        raise AutoMLError(
            "compiling to Kubeflow Pipelines needs the kfp SDK: pip install 'automl[pipelines]'"
        ) from exc
    return kfp


def _component_text(
    pipeline: Pipeline,
    stage: Stage,
    *,
    image: str,
    pipeline_path: str,
    runs_dir: str,
    param_names: Mapping[str, str],
) -> dict[str, Any]:
    """A KFP component spec (the YAML form ``load_component_from_text`` reads) for a stage."""
    inputs: list[dict[str, Any]] = []
    args: list[Any] = []
    for x in pipeline.inputs_of(stage.name):
        out = pipeline.stage(x.stage).output(x.output)
        assert out is not None
        inputs.append({"name": x.keyword, "type": out.kfp_type})
        args += [
            "--input",
            x.keyword,
            {"inputPath" if out.is_artifact else "inputValue": x.keyword},
        ]
    if stage.kind is StageKind.SERVE:  # KServe reads the model from the artifact store
        args += ["--input-uri", "model", {"inputUri": "model"}]
    for o in stage.all_outputs:
        args += ["--output", o.name, {"outputPath": o.name}]
    for p in sorted(stage.param_refs()):
        local = param_names[p]
        inputs.append({"name": local, "type": _PARAM_TYPES[type(pipeline.parameters[p])]})
        args += ["--param", p, {"inputValue": local}]
    if stage.kind is StageKind.TUNE:
        inputs.append({"name": STORE_PARAM, "type": "String"})
        args += ["--store", {"inputValue": STORE_PARAM}, "--runs-dir", runs_dir]
        args += ["--run-id", "{{$.pipeline_job_name}}"]
    return {
        "name": stage.name,
        "description": stage.description or f"{stage.kind} stage of pipeline {pipeline.name}",
        "inputs": inputs,
        "outputs": [{"name": o.name, "type": o.kfp_type} for o in stage.all_outputs],
        "implementation": {
            "container": {
                "image": image,
                "command": ["automl", "pipeline", "stage", pipeline_path, "--stage", stage.name],
                "args": args,
            }
        },
    }


def compile_pipeline(
    pipeline: Pipeline,
    output: str | Path,
    *,
    image: str = DEFAULT_IMAGE,
    workdir: str = "/workspace",
    store: str | None = None,
    runs_dir: str = "/tmp/automl-runs",
) -> Path:
    """Compile ``pipeline`` to a KFP v2 pipeline YAML at ``output``.

    Args:
        pipeline: A pipeline loaded from a file (its ``source`` is what the image runs).
        output: Where to write the YAML.
        image: Container image with automl and the pipeline's directory at ``workdir``.
        workdir: Directory of the pipeline file inside the image.
        store: Default of the ``automl_store`` pipeline parameter (tune stages' store URL);
            required when the pipeline has a tune stage. A ``sqlite:`` URL warns
            (:class:`EphemeralStoreWarning`): the file lives in the pod.
        runs_dir: Trials' directory inside the tune stage's pod.

    Returns:
        The path written.

    Raises:
        SpecError: The pipeline has no source file, or a tune stage and no ``store``.
        AutoMLError: kfp is not installed.
    """
    _check_store(pipeline, store)
    _kfp()
    import yaml
    from kfp import compiler, components, dsl

    if pipeline.source is None:
        raise SpecError("compile a pipeline loaded from a file (load_pipeline)", path="FILE")
    pipeline_path = f"{workdir.rstrip('/')}/{pipeline.source.name}"
    keywords = {x.keyword for s in pipeline.stages for x in pipeline.inputs_of(s.name)}
    # A component input named like a stage input would clash; such a parameter is renamed.
    param_names = {p: (f"param_{p}" if p in keywords else p) for p in pipeline.parameters}
    factories = {
        s.name: components.load_component_from_text(
            yaml.safe_dump(
                _component_text(
                    pipeline,
                    s,
                    image=image,
                    pipeline_path=pipeline_path,
                    runs_dir=runs_dir,
                    param_names=param_names,
                ),
                sort_keys=False,
            )
        )
        for s in pipeline.stages
    }
    has_tune = any(s.kind is StageKind.TUNE for s in pipeline.stages)
    names = list(pipeline.parameters) + ([STORE_PARAM] if has_tune else [])
    signature = inspect.Signature(
        [
            inspect.Parameter(
                p,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=pipeline.parameters[p],
                annotation=type(pipeline.parameters[p]),
            )
            for p in pipeline.parameters
        ]
        + (
            [
                inspect.Parameter(
                    STORE_PARAM,
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    default=store,
                    annotation=str,
                )
            ]
            if has_tune
            else []
        )
    )

    def body(*channels: Any) -> None:
        given = dict(zip(names, channels, strict=True))  # kfp passes parameters positionally
        tasks: dict[str, Any] = {}
        for name in pipeline.order:
            stage = pipeline.stage(name)
            kwargs: dict[str, Any] = {
                x.keyword: tasks[x.stage].outputs[x.output] for x in pipeline.inputs_of(name)
            }
            for p in stage.param_refs():
                kwargs[param_names[p]] = given[p]
            if stage.kind is StageKind.TUNE:
                kwargs[STORE_PARAM] = given[STORE_PARAM]
            task = factories[name](**kwargs)
            task.set_display_name(name)
            tasks[name] = task

    body.__signature__ = signature  # type: ignore[attr-defined]
    body.__name__ = pipeline.name.replace("-", "_")
    graph = dsl.pipeline(name=pipeline.name, description=pipeline.description or None)(body)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(graph, str(out))
    return out


def load_compiled(path: str | Path) -> dict[str, Any]:
    """Load a compiled pipeline back and summarize it (what ``compile`` prints and tests check).

    The YAML is read with ``yaml.safe_load`` and with kfp's own loader
    (``kfp.components.load_component_from_file`` reads a pipeline IR as a component).

    Returns:
        ``{"name", "tasks": {task: component}, "executors": [...], "parameters": {...},
        "images": [...]}``.
    """
    _kfp()
    import yaml
    from kfp import components

    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    loaded = components.load_component_from_file(str(path))
    tasks = doc["root"]["dag"]["tasks"]
    executors = doc["deploymentSpec"]["executors"]
    return {
        "name": loaded.name,
        "pipeline_info": doc["pipelineInfo"]["name"],
        "tasks": {t: v["componentRef"]["name"] for t, v in tasks.items()},
        "display_names": {t: v.get("taskInfo", {}).get("name", t) for t, v in tasks.items()},
        "executors": sorted(executors),
        "parameters": {k: v.default for k, v in (loaded.component_spec.inputs or {}).items()},
        "images": sorted({e["container"]["image"] for e in executors.values()}),
    }
