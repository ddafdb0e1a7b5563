"""Load a pipeline from a YAML file (``kind: Pipeline``) or a Python file that builds one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from automl.errors import SpecError, SpecIssue
from integrations.pipelines._model import Output, Pipeline, Stage, StageKind

__all__ = ["load_pipeline", "parse_pipeline"]

_KINDS = ("python", "command", "tune", "train_best", "evaluate", "serve")
_STAGE_KEYS = {"name", "inputs", "outputs", "args", "description", *_KINDS}


def load_pipeline(path: str | Path) -> Pipeline:
    """Read a pipeline file: YAML (``.yaml``/``.yml``) or Python (``.py``).

    A Python file is imported as a module named after its stem, with its directory on
    ``sys.path`` (so ``stages:fn`` and the file's own functions import the same way in a stage
    subprocess); the pipeline is its ``pipeline`` attribute, or its only :class:`Pipeline`.

    Raises:
        SpecError: A missing file, malformed YAML or an invalid pipeline (field paths named).
    """
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise SpecError(f"no such file: {str(path)!r}", path="FILE")
    _on_path(p.parent)
    if p.suffix == ".py":
        return _load_python(p)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {str(path)!r}: {exc}", path="FILE") from None
    return parse_pipeline(text, source=p)


def _on_path(directory: Path) -> None:
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))


def _load_python(p: Path) -> Pipeline:
    name = p.stem
    module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) != str(p):
        spec = importlib.util.spec_from_file_location(name, p)
        if spec is None or spec.loader is None:
            raise SpecError(f"cannot import {str(p)!r}", path="FILE")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except SpecError:
            sys.modules.pop(name, None)
            raise
        except Exception as exc:
            sys.modules.pop(name, None)
            raise SpecError(
                f"importing {p.name} failed: {type(exc).__name__}: {exc}", path="FILE"
            ) from None
    found = getattr(module, "pipeline", None)
    if not isinstance(found, Pipeline):
        cands = [v for v in vars(module).values() if isinstance(v, Pipeline)]
        if len(cands) != 1:
            raise SpecError(
                f"{p.name} must define one Pipeline (as `pipeline`); found {len(cands)}",
                path="FILE",
            )
        found = cands[0]
    return Pipeline(
        found.name,
        found.stages,
        found.parameters,
        description=found.description,
        source=p,
    )


def parse_pipeline(text: str, *, source: Path | None = None) -> Pipeline:
    """Build a :class:`Pipeline` from YAML text (``apiVersion: automl/v1``, ``kind: Pipeline``).

    Raises:
        SpecError: Every problem found, with its field path (``stages[2].inputs[0]``).
    """
    from automl.spec._common import load_yaml

    data = load_yaml(text, str(source or "<pipeline>"))
    issues: list[SpecIssue] = []
    if data.get("kind") != "Pipeline":
        issues.append(SpecIssue("kind", f"must be Pipeline; got {data.get('kind')!r}"))
    if data.get("apiVersion", "automl/v1") != "automl/v1":
        issues.append(
            SpecIssue("apiVersion", f"must be automl/v1; got {data.get('apiVersion')!r}")
        )
    extra = set(data) - {"apiVersion", "kind", "name", "description", "parameters", "stages"}
    issues += [SpecIssue(k, "is not a known field") for k in sorted(extra)]
    name = data.get("name")
    if not isinstance(name, str):
        issues.append(SpecIssue("name", f"is required: a string; got {name!r}"))
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        issues.append(SpecIssue("parameters", f"must be a mapping of defaults; got {params!r}"))
        params = {}
    raw_stages = data.get("stages")
    stages: list[Stage] = []
    if not isinstance(raw_stages, list):
        issues.append(SpecIssue("stages", f"must be a list of stages; got {raw_stages!r}"))
    else:
        for i, raw in enumerate(raw_stages):
            try:
                stages.append(_stage(raw, f"stages[{i}]"))
            except SpecError as exc:
                issues += exc.issues
    if issues:
        raise SpecError(issues)
    return Pipeline(
        str(name),
        stages,
        params,
        description=str(data.get("description") or ""),
        source=source,
    )


def _stage(raw: Any, p: str) -> Stage:
    if not isinstance(raw, dict):
        raise SpecError(f"must be a mapping; got {raw!r}", path=p)
    issues = [SpecIssue(f"{p}.{k}", "is not a known field") for k in raw if k not in _STAGE_KEYS]
    kinds = [k for k in _KINDS if k in raw]
    if len(kinds) != 1:
        issues.append(
            SpecIssue(p, f"needs exactly one of {', '.join(_KINDS)}; got {kinds or 'none'}")
        )
    name = raw.get("name")
    if not isinstance(name, str):
        issues.append(SpecIssue(f"{p}.name", f"is required: a string; got {name!r}"))
    inputs = raw.get("inputs") or []
    if not (isinstance(inputs, list) and all(isinstance(x, str) for x in inputs)) and not (
        isinstance(inputs, dict) and all(isinstance(v, str) for v in inputs.values())
    ):
        issues.append(
            SpecIssue(
                f"{p}.inputs",
                f"must be a list of 'stage.output' or a mapping keyword: 'stage.output'; "
                f"got {inputs!r}",
            )
        )
        inputs = []
    outputs = raw.get("outputs") or {}
    if isinstance(outputs, list):
        outputs = {str(o): "artifact" for o in outputs}
    if not isinstance(outputs, dict):
        issues.append(SpecIssue(f"{p}.outputs", f"must be a mapping name: kind; got {outputs!r}"))
        outputs = {}
    args = raw.get("args") or {}
    if not isinstance(args, dict):
        issues.append(SpecIssue(f"{p}.args", f"must be a mapping; got {args!r}"))
        args = {}
    if issues:
        raise SpecError(issues)
    kind = StageKind(kinds[0])
    body = raw[kinds[0]]
    pairs = (
        tuple((str(k), str(v)) for k, v in inputs.items())
        if isinstance(inputs, dict)
        else tuple((r.rpartition(".")[2], r) for r in inputs)
    )
    common: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "inputs": pairs,
        "outputs": tuple(Output(str(k), str(v)) for k, v in outputs.items()),
        "args": args,
        "description": str(raw.get("description") or ""),
    }
    if kind in (StageKind.PYTHON, StageKind.TRAIN_BEST, StageKind.EVALUATE):
        if not isinstance(body, str):
            raise SpecError(f"must be 'module:function'; got {body!r}", path=f"{p}.{kind}")
        from integrations.pipelines._model import function_path

        return Stage(function=function_path(body, f"{p}.{kind}"), **common)
    if kind is StageKind.COMMAND:
        if not isinstance(body, list) or not body:
            raise SpecError(
                f"must be a non-empty list of arguments (it runs without a shell); got {body!r}",
                path=f"{p}.command",
            )
        return Stage(command=tuple(str(a) for a in body), **common)
    if kind is StageKind.SERVE:
        if body not in (None, {}) and not isinstance(body, dict):
            raise SpecError(f"must be a mapping of settings; got {body!r}", path=f"{p}.serve")
        return Stage(**{**common, "args": {**(body or {}), **args}})
    if not isinstance(body, dict):
        raise SpecError(
            "must be a mapping with experiment (a file) or spec, and optionally objective",
            path=f"{p}.tune",
        )
    unknown = set(body) - {"experiment", "spec", "objective", "max_trials", "parallel"}
    if unknown:
        raise SpecError(
            [SpecIssue(f"{p}.tune.{k}", "is not a known field") for k in sorted(unknown)]
        )
    if "spec" in body and not isinstance(body["spec"], dict):
        raise SpecError(
            f"must be a native experiment mapping; got {body['spec']!r}", path=f"{p}.tune.spec"
        )
    objective = body.get("objective")
    if objective is not None:
        from integrations.pipelines._model import function_path

        objective = function_path(str(objective), f"{p}.tune.objective")
    tune_args = {k: body[k] for k in ("max_trials", "parallel") if k in body}
    return Stage(
        function=objective,
        experiment=None if body.get("experiment") is None else str(body["experiment"]),
        spec=body.get("spec"),
        **{**common, "args": {**tune_args, **args}},
    )
