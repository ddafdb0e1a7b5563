"""Run one stage: ``automl pipeline stage FILE --stage NAME --input K V --output K PATH ...``.

The same entry point runs a stage locally (``automl pipeline run`` starts it as a subprocess)
and in a Kubeflow Pipelines container (the compiled component's command), so a local run tests
exactly the command line the cluster will run. Inputs arrive as text (a path for an artifact,
the value's text for a value); outputs go to the paths given (a value output as its text: a
string raw, anything else as JSON, which is what KFP reads back from an output parameter file).
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from automl.errors import AutoMLError, SpecError, SpecIssue
from integrations.pipelines._model import (
    PLACEHOLDER_RE,
    Output,
    Pipeline,
    Stage,
    StageKind,
    coerce,
)

__all__ = ["StageError", "execute_stage", "read_value", "write_value"]


class StageError(AutoMLError):
    """A stage ran and failed (its function raised, its command failed, an output is missing)."""


def write_value(path: Path, value: Any, kind: str) -> None:
    """Write a value output: a string as is, anything else as JSON (what KFP expects)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if kind == "str" else json.dumps(value), encoding="utf-8")


def read_value(path: Path, kind: str) -> Any:
    """Read a value output written by :func:`write_value` (or by a command stage).

    Raises:
        ValueError: The text is not a value of ``kind``.
    """
    return coerce(path.read_text(encoding="utf-8").strip(), kind)


def _as_kind(value: Any, kind: str, what: str) -> Any:
    """A returned value converted to its declared kind (numpy scalars included)."""
    try:
        if kind == "float" and not isinstance(value, bool):
            return float(value)
        if kind == "int" and not isinstance(value, bool) and float(value).is_integer():
            return int(value)
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "str" and isinstance(value, str):
            return value
        if kind in ("dict", "list"):
            out = json.loads(json.dumps(value, default=_json_default))
            if isinstance(out, dict if kind == "dict" else list):
                return out
    except (TypeError, ValueError):
        pass
    raise StageError(f"{what} must be a {kind}; got {value!r}")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")


def import_function(path: str, field: str = "function") -> Callable[..., Any]:
    """The callable at ``module:qualname``.

    Raises:
        SpecError: It cannot be imported or is not callable.
    """
    module, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"cannot import {path!r}: {exc}", path=field) from None
    if not callable(obj):
        raise SpecError(f"{path!r} is not callable", path=field)
    return obj  # type: ignore[no-any-return]


def substitute(obj: Any, values: Mapping[str, Mapping[str, Any]]) -> Any:
    """Replace ``${params.x}`` / ``${inputs.x}`` / ``${outputs.x}`` in strings, recursively.

    A string that is exactly one placeholder becomes the typed value; otherwise the value's
    text is spliced in.
    """
    if isinstance(obj, str):
        whole = PLACEHOLDER_RE.fullmatch(obj)
        if whole and whole.group(2) in values.get(whole.group(1), {}):
            found = values[whole.group(1)][whole.group(2)]
            return str(found) if isinstance(found, Path) else found

        def text(m: re.Match[str]) -> str:
            group = values.get(m.group(1), {})
            if m.group(2) not in group:
                return m.group(0)
            v = group[m.group(2)]
            return (
                v if isinstance(v, str) else json.dumps(v) if not isinstance(v, Path) else str(v)
            )

        return PLACEHOLDER_RE.sub(text, obj)
    if isinstance(obj, Mapping):
        return {k: substitute(v, values) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [substitute(v, values) for v in obj]
    return obj


def execute_stage(
    pipeline: Pipeline,
    name: str,
    *,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    params: Mapping[str, str],
    store: str = "sqlite:///automl.db",
    runs_dir: str = "automl-runs",
    run_id: str = "",
    input_uris: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run one stage of ``pipeline`` in this process; return the values it output.

    Args:
        pipeline: The pipeline (its file's directory is on ``sys.path``).
        name: The stage.
        inputs: ``keyword -> text``: an artifact's path or a value's text.
        outputs: ``output -> path`` to write each output at.
        params: ``parameter -> text`` overrides of the pipeline's defaults.
        store: Store URL a tune stage records its experiment in.
        runs_dir: Where a tune stage's trials write.
        run_id: The pipeline run (names the tune stage's experiment).
        input_uris: ``keyword -> URI`` of artifact inputs where the orchestrator stores them
            (Kubeflow Pipelines' ``s3://...``); the serve stage points KServe there.

    Raises:
        SpecError: Missing or malformed inputs/outputs, an unimportable function.
        StageError: The stage itself failed.
    """
    stage = pipeline.stage(name)
    values = pipeline.with_params(params)
    issues: list[SpecIssue] = []
    typed_inputs: dict[str, Any] = {}
    for x in pipeline.inputs_of(name):
        out = pipeline.stage(x.stage).output(x.output)
        assert out is not None  # the pipeline resolved it
        if x.keyword not in inputs:
            issues.append(SpecIssue("--input", f"missing input {x.keyword!r}"))
            continue
        text = inputs[x.keyword]
        if out.is_artifact:
            typed_inputs[x.keyword] = Path(text)
            if not Path(text).exists():
                issues.append(SpecIssue("--input", f"{x.keyword}: no file or directory at {text}"))
        else:
            try:
                typed_inputs[x.keyword] = coerce(text, out.kind)
            except ValueError:
                issues.append(
                    SpecIssue("--input", f"{x.keyword} must be a {out.kind}; got {text!r}")
                )
    paths: dict[str, Path] = {}
    for o in stage.all_outputs:
        if o.name not in outputs:
            issues.append(SpecIssue("--output", f"missing the path of output {o.name!r}"))
            continue
        paths[o.name] = Path(outputs[o.name]).absolute()
        paths[o.name].parent.mkdir(parents=True, exist_ok=True)
    if issues:
        raise SpecError(issues)
    ctx = {
        "params": values,
        "inputs": typed_inputs,
        "outputs": {k: str(v) for k, v in paths.items()},
    }
    args = substitute(dict(stage.args), ctx)
    workdir = pipeline.source.parent if pipeline.source else Path.cwd()
    kind = stage.kind
    if kind is StageKind.PYTHON:
        produced = _run_python(stage, typed_inputs, paths, args)
    elif kind is StageKind.COMMAND:
        produced = _run_command(stage, ctx, paths, workdir)
    elif kind is StageKind.TUNE:
        produced = _run_tune(pipeline, stage, ctx, paths, args, store, runs_dir, run_id, workdir)
    elif kind is StageKind.TRAIN_BEST:
        produced = _run_train_best(stage, typed_inputs, paths, args)
    elif kind is StageKind.EVALUATE:
        produced = _run_evaluate(stage, typed_inputs, paths, args)
    else:
        produced = _run_serve(pipeline, stage, typed_inputs, paths, args, input_uris or {})
    written: dict[str, Any] = {}
    for o in stage.all_outputs:
        if o.is_artifact:
            if not paths[o.name].exists():
                raise StageError(
                    f"stage {name!r} did not write its output {o.name!r} "
                    f"(a file or directory at {paths[o.name]})"
                )
            continue
        if o.name not in produced:
            raise StageError(f"stage {name!r} did not produce its value output {o.name!r}")
        value = _as_kind(produced[o.name], o.kind, f"output {o.name!r} of stage {name!r}")
        write_value(paths[o.name], value, o.kind)
        written[o.name] = value
    return written


def _value_outputs(stage: Stage) -> list[Output]:
    return [o for o in stage.all_outputs if not o.is_artifact]


def _call(fn: Callable[..., Any], kwargs: Mapping[str, Any], stage: Stage) -> Any:
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if sig is not None and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        unknown = set(kwargs) - set(sig.parameters)
        if unknown:
            raise StageError(
                f"stage {stage.name!r}: {stage.function} does not take "
                f"{', '.join(sorted(unknown))} (it is given the stage's inputs, outputs and args "
                "as keyword arguments)"
            )
    return fn(**kwargs)


def _run_python(
    stage: Stage, inputs: Mapping[str, Any], paths: Mapping[str, Path], args: Mapping[str, Any]
) -> dict[str, Any]:
    assert stage.function is not None
    fn = import_function(stage.function)
    artifact_paths = {o.name: paths[o.name] for o in stage.all_outputs if o.is_artifact}
    result = _call(fn, {**inputs, **artifact_paths, **args}, stage)
    wanted = _value_outputs(stage)
    if not wanted:
        return {}
    if isinstance(result, Mapping) and all(o.name in result for o in wanted):
        return dict(result)
    if len(wanted) == 1:
        return {wanted[0].name: result}
    raise StageError(
        f"stage {stage.name!r} must return a dict with {', '.join(o.name for o in wanted)}; "
        f"got {result!r}"
    )


def _run_command(
    stage: Stage, ctx: Mapping[str, Mapping[str, Any]], paths: Mapping[str, Path], workdir: Path
) -> dict[str, Any]:
    assert stage.command is not None
    argv = [str(a) for a in substitute(list(stage.command), ctx)]
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the interpreter automl runs on, as trials do
    sys.stdout.flush()
    try:
        code = subprocess.call(argv, cwd=workdir)  # no shell: arguments stay arguments
    except OSError as exc:
        raise StageError(f"stage {stage.name!r}: cannot start {argv[0]!r}: {exc}") from None
    if code != 0:
        raise StageError(f"stage {stage.name!r}: command exited with code {code}")
    produced: dict[str, Any] = {}
    for o in _value_outputs(stage):
        p = paths[o.name]
        if not p.is_file():
            raise StageError(f"stage {stage.name!r}: the command did not write {o.name} at {p}")
        try:
            produced[o.name] = read_value(p, o.kind)
        except ValueError:
            raise StageError(
                f"stage {stage.name!r}: {o.name} at {p} is not a {o.kind}: "
                f"{p.read_text(encoding='utf-8')[:80]!r}"
            ) from None
    return produced


def _experiment_name(pipeline: Pipeline, stage: Stage, run_id: str, base: Any) -> str:
    raw = str(base) if base else f"{pipeline.name}-{stage.name}-{run_id}".rstrip("-")
    name = re.sub(r"[^a-z0-9_.-]+", "-", raw.lower()).strip("-_.")[:63].rstrip("-_.")
    return name or "pipeline-tune"


def _run_tune(
    pipeline: Pipeline,
    stage: Stage,
    ctx: Mapping[str, Mapping[str, Any]],
    paths: Mapping[str, Path],
    args: Mapping[str, Any],
    store: str,
    runs_dir: str,
    run_id: str,
    workdir: Path,
) -> dict[str, Any]:
    from automl._api import Client
    from automl.core import TrialTemplate
    from automl.spec import parse_spec
    from automl.spec._native import parse_native

    field = f"stages.{stage.name}.tune"
    if stage.experiment is not None:
        file = Path(stage.experiment)
        file = file if file.is_absolute() else workdir / file
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(
                f"cannot read {str(file)!r}: {exc}", path=f"{field}.experiment"
            ) from None
        spec = parse_spec(substitute(text, ctx), base_dir=file.parent, filename=str(file))
    else:
        doc = substitute(dict(stage.spec or {}), ctx)
        doc.setdefault("name", "pipeline-tune")  # replaced by the run's experiment name below
        if stage.function is not None and "trial" not in doc:
            # The objective replaces the trial command below; the native form requires one.
            doc["trial"] = {"command": ["python"]}
        spec = parse_native(doc, workdir)
    objective: Callable[..., Any] | None = None
    if stage.function is not None:
        fn = import_function(stage.function, f"{field}.objective")
        objective = _objective(fn, dict(ctx["inputs"]))
        template = TrialTemplate(
            function=stage.function,
            workdir=spec.trial_template.workdir,
            timeout=spec.trial_template.timeout,
        )
        spec = spec.model_copy(update={"trial_template": template})
    with Client(store, runs_dir=runs_dir) as client:
        return _tune_in(client, pipeline, stage, spec, objective, paths, args, run_id, runs_dir)


def _tune_in(
    client: Any,
    pipeline: Pipeline,
    stage: Stage,
    spec: Any,
    objective: Callable[..., Any] | None,
    paths: Mapping[str, Path],
    args: Mapping[str, Any],
    run_id: str,
    runs_dir: str,
) -> dict[str, Any]:
    from automl._runner import run_experiment
    from automl.core import validate_spec
    from automl.errors import NotFoundError

    name = _experiment_name(pipeline, stage, run_id, args.get("name"))
    base, n = name, 1
    while True:  # a re-run of the stage (resume) gets a fresh experiment
        try:
            client.get(name)
        except NotFoundError:
            break
        n += 1
        name = f"{base[: 63 - len(str(n)) - 1]}-{n}"
    spec = validate_spec(spec.model_copy(update={"name": name}))
    max_trials, parallel = args.get("max_trials"), args.get("parallel")
    if max_trials is not None or parallel is not None:
        try:
            mt = None if max_trials is None else int(max_trials)
            par = int(parallel) if parallel is not None else None
        except (TypeError, ValueError):
            raise SpecError(
                f"max_trials and parallel must be integers; got {max_trials!r}, {parallel!r}",
                path=f"stages.{stage.name}.args",
            ) from None
        if mt is not None and par is None:  # a small budget stays valid, as `automl run` does
            par = min(spec.parallel_trial_count, mt)
        failed = spec.max_failed_trial_count
        spec = spec.with_budget(
            max_trial_count=mt,
            parallel_trial_count=par,
            max_failed_trial_count=None if mt is None or failed is None else min(failed, mt),
        )
    exp = client.store.experiments.create(spec)
    print(
        f"experiment {name}: {spec.algorithm.name}, store {client.store.display_url}", flush=True
    )
    run_experiment(client.store, exp, objective=objective, runs_dir=runs_dir)
    result = client.result(name)
    print(f"experiment {name}: {result.experiment.state.value} ({result.reason})", flush=True)
    if result.best_trial is None:
        raise StageError(
            f"stage {stage.name!r}: no trial of experiment {name!r} succeeded ({result.reason}); "
            f"see: automl show {name}"
        )
    model = paths["model"]
    model.mkdir(parents=True, exist_ok=True)
    try:
        saved = client.artifacts(name)
    except (NotFoundError, AttributeError):
        saved = None
    if saved is not None and Path(saved).is_dir():
        shutil.copytree(saved, model, dirs_exist_ok=True)
    best = {
        "experiment": name,
        "trial": result.best_trial.id,
        "params": result.best_params,
        "value": result.best_value,
        "metric": spec.objective.metric,
    }
    (model / "best.json").write_text(json.dumps(best, indent=2, default=str), encoding="utf-8")
    print(f"best {spec.objective.metric}={result.best_value} {json.dumps(best['params'])}")
    return {
        "best_params": result.best_params,
        "best_value": result.best_value,
        "experiment": name,
    }


def _objective(fn: Callable[..., Any], extra: Mapping[str, Any]) -> Callable[..., Any]:
    """The tune objective with the stage's inputs bound as keyword arguments."""
    from trials._inprocess import takes_dict

    def objective(_automl_trial_params: dict[str, Any]) -> Any:
        if takes_dict(fn, _automl_trial_params):
            return fn(_automl_trial_params, **extra)
        return fn(**_automl_trial_params, **extra)

    return objective


def _run_train_best(
    stage: Stage, inputs: Mapping[str, Any], paths: Mapping[str, Path], args: Mapping[str, Any]
) -> dict[str, Any]:
    from automl._artifacts import save_model

    assert stage.function is not None
    fn = import_function(stage.function)
    rest = {k: v for k, v in inputs.items() if k != "best_params"}
    model = _call(fn, {**inputs["best_params"], **rest, **args}, stage)
    if model is None:
        raise StageError(f"stage {stage.name!r}: {stage.function} returned None; return the model")
    paths["model"].mkdir(parents=True, exist_ok=True)
    saved = save_model(model, "model", directory=paths["model"])
    print(f"saved {type(model).__name__} to {saved}", flush=True)
    return {}


def _run_evaluate(
    stage: Stage, inputs: Mapping[str, Any], paths: Mapping[str, Path], args: Mapping[str, Any]
) -> dict[str, Any]:
    from automl._artifacts import load_model

    assert stage.function is not None
    fn = import_function(stage.function)
    model = load_model(inputs["model"])
    metrics = _call(fn, {**inputs, "model": model, **args}, stage)
    metrics = _as_kind(metrics, "dict", f"the metrics {stage.function} returned")
    paths["metrics"].write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    print(" ".join(f"{k}={v}" for k, v in metrics.items()), flush=True)
    return {}


_KSERVE_FORMATS = {"sklearn": "sklearn", "torch": "pytorch", "pickle": "sklearn"}


def _run_serve(
    pipeline: Pipeline,
    stage: Stage,
    inputs: Mapping[str, Any],
    paths: Mapping[str, Path],
    args: Mapping[str, Any],
    input_uris: Mapping[str, str],
) -> dict[str, Any]:
    # The serving integration builds and validates KServe manifests (schema, webhook rules).
    from integrations.serving._kserve import (
        dump_yaml,
        inference_service,
        isvc_name,
        validate_inference_service,
    )

    model_dir = Path(inputs["model"])
    meta_file = model_dir / "model.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    fmt = str(args.get("format") or _KSERVE_FORMATS.get(str(meta.get("format")), "sklearn"))
    # Where the cluster reads the model: given, else the artifact's URI in Kubeflow Pipelines
    # (s3://, gs://...), else this machine's path (a local run).
    uri = str(args.get("storage_uri") or input_uris.get("model") or model_dir.resolve().as_uri())
    manifest = inference_service(
        isvc_name(str(args.get("name") or pipeline.name)),
        model_format=fmt,
        storage_uri=uri,
        namespace=str(args["namespace"]) if args.get("namespace") else None,
    )
    validate_inference_service(manifest)
    paths["manifest"].write_text(dump_yaml(manifest), encoding="utf-8")
    print(f"wrote {paths['manifest']}; apply it with: kubectl apply -f {paths['manifest']}")
    return {}
