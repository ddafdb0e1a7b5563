"""Katib ``kubeflow.org/v1beta1`` ``Experiment`` documents.

This front door covers what runs on the tuning loop today: objective, algorithm, budgets,
parameters, a trial template whose primary container gives the command, and the StdOut, File and
Push collectors. Fields that need later parts (early stopping, NAS) are rejected by name rather
than
silently ignored. Katib's defaults are filled here (parallelTrialCount 3, distribution uniform,
metricStrategies from the objective type, resumePolicy Never).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from automl.core import (
    AlgorithmSpec,
    CollectorKind,
    Direction,
    Distribution,
    EarlyStoppingSpec,
    ExperimentSpec,
    MetricsCollectorSpec,
    MetricStrategy,
    Objective,
    Parameter,
    ParameterType,
    TrialParameter,
    TrialTemplate,
)
from automl.errors import SpecError, SpecIssue
from automl.spec._common import check, pydantic_issues

__all__ = ["KATIB_API_VERSION", "parse_katib"]

KATIB_API_VERSION = "kubeflow.org/v1beta1"
KATIB_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _NameValue(_M):
    name: str
    value: Any = None


class _Objective(_M):
    type: Literal["minimize", "maximize"]
    goal: float | None = None
    objectiveMetricName: str
    additionalMetricNames: list[str] = Field(default_factory=list)
    metricStrategies: list[_NameValue] = Field(default_factory=list)


class _Algorithm(_M):
    algorithmName: str
    algorithmSettings: list[_NameValue] = Field(default_factory=list)


class _FeasibleSpace(_M):
    min: str | float | None = None
    max: str | float | None = None
    step: str | float | None = None
    values: list[str | float | int | bool] | None = Field(None, alias="list")
    distribution: str | None = None


class _Parameter(_M):
    name: str
    parameterType: Literal["int", "double", "categorical", "discrete"]
    feasibleSpace: _FeasibleSpace


class _TrialParameter(_M):
    name: str
    description: str = ""
    reference: str


class _ConfigMap(_M):
    configMapName: str | None = None
    configMapNamespace: str | None = None
    templatePath: str | None = None


class _TrialTemplate(_M):
    retain: bool = False
    trialSpec: dict[str, Any] | None = None
    configMap: _ConfigMap | None = None
    trialParameters: list[_TrialParameter] = Field(default_factory=list)
    primaryContainerName: str | None = None
    primaryPodLabels: dict[str, str] | None = None
    successCondition: str | None = None
    failureCondition: str | None = None


class _FileSystemPath(_M):
    path: str | None = None
    kind: Literal["File", "Directory"] | None = None
    format: Literal["TEXT", "JSON"] | None = None


class _Source(_M):
    filter: dict[str, list[str]] | None = None
    fileSystemPath: _FileSystemPath | None = None
    httpGet: dict[str, Any] | None = None


class _Collector(_M):
    kind: str = "StdOut"
    customCollector: dict[str, Any] | None = None


class _MetricsCollectorSpec(_M):
    source: _Source | None = None
    collector: _Collector | None = None


class _Spec(_M):
    objective: _Objective
    algorithm: _Algorithm
    earlyStopping: _Algorithm | None = None
    parallelTrialCount: int | None = None
    maxTrialCount: int | None = None
    maxFailedTrialCount: int | None = None
    parameters: list[_Parameter] | None = None
    nasConfig: dict[str, Any] | None = None
    trialTemplate: _TrialTemplate
    metricsCollectorSpec: _MetricsCollectorSpec | None = None
    resumePolicy: Literal["Never", "LongRunning", "FromVolume"] = "Never"


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    namespace: str | None = None


class _Doc(_M):
    apiVersion: Literal["kubeflow.org/v1beta1"]
    kind: Literal["Experiment"]
    metadata: _Metadata
    spec: _Spec
    status: dict[str, Any] | None = None


def _number(raw: Any, path: str, issues: list[SpecIssue]) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        issues.append(SpecIssue(path, f"must be a number; got {raw!r}"))
        return None


def _discrete(v: Any) -> Any:
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return v
        return int(f) if re.fullmatch(r"[+-]?\d+", v.strip()) else f
    return v


def _find_container(node: Any, name: str | None) -> dict[str, Any] | None:
    """Depth-first search of a manifest for the container called ``name``."""
    if isinstance(node, dict):
        containers = node.get("containers")
        if isinstance(containers, list):
            for c in containers:
                if isinstance(c, dict) and (name is None or c.get("name") == name):
                    return c
        for v in node.values():
            found = _find_container(v, name)
            if found is not None:
                return found
    elif isinstance(node, list):
        for v in node:
            found = _find_container(v, name)
            if found is not None:
                return found
    return None


def _translator(primary: str | None) -> Any:
    fields = {
        "min": "feasibleSpace.min",
        "max": "feasibleSpace.max",
        "step": "feasibleSpace.step",
        "values": "feasibleSpace.list",
        "distribution": "feasibleSpace.distribution",
        "type": "parameterType",
        "name": "name",
    }
    fixed = {
        "name": "metadata.name",
        "objective.metric": "spec.objective.objectiveMetricName",
        "objective.type": "spec.objective.type",
        "objective.goal": "spec.objective.goal",
        "objective.additional_metrics": "spec.objective.additionalMetricNames",
        "algorithm.name": "spec.algorithm.algorithmName",
        "parallel_trial_count": "spec.parallelTrialCount",
        "max_trial_count": "spec.maxTrialCount",
        "max_failed_trial_count": "spec.maxFailedTrialCount",
        "parameters": "spec.parameters",
        "trial_template.command": f"spec.trialTemplate.trialSpec (container {primary!r} command)",
        "trial_template": "spec.trialTemplate",
        "metrics_collector.path": "spec.metricsCollectorSpec.source.fileSystemPath.path",
        "metrics_collector.format": "spec.metricsCollectorSpec.source.fileSystemPath.format",
        "metrics_collector.filters": "spec.metricsCollectorSpec.source.filter.metricsFormat",
    }

    def translate(path: str) -> str:
        if path in fixed:
            return fixed[path]
        m = re.match(r"^parameters\[(\d+)\]\.(\w+)(.*)$", path)
        if m:
            return (
                f"spec.parameters[{m.group(1)}].{fields.get(m.group(2), m.group(2))}{m.group(3)}"
            )
        m = re.match(r"^algorithm\.settings\.(.+)$", path)
        if m:
            return f"spec.algorithm.algorithmSettings[name={m.group(1)}]"
        m = re.match(r"^early_stopping\.settings\.(.+)$", path)
        if m:
            return f"spec.earlyStopping.algorithmSettings[name={m.group(1)}]"
        if path == "early_stopping.name":
            return "spec.earlyStopping.algorithmName"
        m = re.match(r"^objective\.strategies\.(.+)$", path)
        if m:
            return f"spec.objective.metricStrategies[name={m.group(1)}]"
        m = re.match(r"^trial_template\.trial_parameters(.*)$", path)
        if m:
            return f"spec.trialTemplate.trialParameters{m.group(1)}"
        m = re.match(r"^metrics_collector\.filters(.*)$", path)
        if m:
            return f"spec.metricsCollectorSpec.source.filter.metricsFormat{m.group(1)}"
        return path

    return translate


def parse_katib(data: dict[str, Any], base_dir: Path) -> ExperimentSpec:
    """Build an :class:`ExperimentSpec` from a parsed Katib Experiment document.

    Raises:
        SpecError: Every problem found, with Katib field paths
            (``spec.parameters[2].feasibleSpace.max``).
    """
    try:
        doc = _Doc.model_validate(data)
    except ValidationError as exc:
        raise SpecError(pydantic_issues(exc)) from None
    s = doc.spec
    issues: list[SpecIssue] = []
    name = doc.metadata.name
    if not KATIB_NAME_RE.match(name) or len(name) > 40:
        issues.append(
            SpecIssue(
                "metadata.name",
                "must match ^[a-z]([-a-z0-9]*[a-z0-9])?$ and be at "
                f"most 40 characters (Katib's rule); got {name!r}",
            )
        )
    if s.nasConfig is not None and s.parameters is not None:
        issues.append(SpecIssue("spec", "must set exactly one of parameters or nasConfig"))
    elif s.nasConfig is not None:
        issues.append(
            SpecIssue(
                "spec.nasConfig",
                "is not supported yet (neural architecture search is its own feature)",
            )
        )
    elif not s.parameters:
        issues.append(SpecIssue("spec.parameters", "must define at least one parameter"))

    obj = s.objective
    if obj.objectiveMetricName in obj.additionalMetricNames:
        issues.append(
            SpecIssue(
                "spec.objective.additionalMetricNames",
                f"must not contain the objective metric {obj.objectiveMetricName!r}",
            )
        )
    strategies: dict[str, MetricStrategy] = {}
    for i, ms in enumerate(obj.metricStrategies):
        if str(ms.value) not in ("min", "max", "latest"):
            issues.append(
                SpecIssue(
                    f"spec.objective.metricStrategies[{i}].value",
                    f"must be min, max or latest; got {ms.value!r}",
                )
            )
        else:
            strategies[ms.name] = MetricStrategy(str(ms.value))

    params: list[Parameter] = []
    for i, p in enumerate(s.parameters or []):
        path = f"spec.parameters[{i}].feasibleSpace"
        fs = p.feasibleSpace
        dist = fs.distribution or "uniform"
        if dist not in {d.value for d in Distribution}:
            issues.append(
                SpecIssue(
                    f"{path}.distribution",
                    f"must be uniform, logUniform, normal or logNormal; got {fs.distribution!r}",
                )
            )
            dist = "uniform"
        ptype = ParameterType(p.parameterType)
        values: tuple[Any, ...] = ()
        if fs.values is not None:
            values = tuple(
                _discrete(v) if ptype is ParameterType.DISCRETE else v for v in fs.values
            )
        params.append(
            Parameter(
                name=p.name,
                type=ptype,
                min=_number(fs.min, f"{path}.min", issues),
                max=_number(fs.max, f"{path}.max", issues),
                step=_number(fs.step, f"{path}.step", issues),
                values=values,
                distribution=Distribution(dist)
                if ptype in (ParameterType.INT, ParameterType.DOUBLE)
                else Distribution.UNIFORM,
            )
        )

    tt = s.trialTemplate
    tpath = "spec.trialTemplate"
    if (tt.trialSpec is None) == (tt.configMap is None):
        issues.append(SpecIssue(tpath, "must set exactly one of trialSpec or configMap"))
    elif tt.configMap is not None:
        issues.append(
            SpecIssue(
                f"{tpath}.configMap",
                "templates from a ConfigMap need a Kubernetes "
                "cluster; inline the template as trialSpec to run locally",
            )
        )
    command: tuple[str, ...] | None = None
    shell_index: int | None = None
    workdir: str | None = None
    env: dict[str, str] = {}
    if tt.trialSpec is not None:
        m = tt.trialSpec
        if not m.get("apiVersion") or not m.get("kind"):
            issues.append(SpecIssue(f"{tpath}.trialSpec", "must set apiVersion and kind"))
        meta = m.get("metadata") or {}
        if isinstance(meta, dict) and ("name" in meta or "namespace" in meta):
            issues.append(
                SpecIssue(
                    f"{tpath}.trialSpec.metadata",
                    "must not set name or namespace (the trial's name is used)",
                )
            )
        if not tt.primaryContainerName:
            issues.append(SpecIssue(f"{tpath}.primaryContainerName", "is required"))
        container = _find_container(m, tt.primaryContainerName)
        if container is None:
            issues.append(
                SpecIssue(
                    f"{tpath}.trialSpec",
                    f"has no container named {tt.primaryContainerName!r} (primaryContainerName)",
                )
            )
        else:
            argv = [
                str(a) for a in (container.get("command") or []) + (container.get("args") or [])
            ]
            if not argv:
                issues.append(
                    SpecIssue(
                        f"{tpath}.trialSpec",
                        f"container {tt.primaryContainerName!r} "
                        "has no command or args to run locally",
                    )
                )
            else:
                command = tuple(argv)
                if (
                    os.path.basename(argv[0]) in ("sh", "bash", "ash", "dash", "zsh")
                    and "-c" in argv[1:]
                ):
                    shell_index = argv.index("-c", 1) + 1
                    if shell_index >= len(argv):
                        shell_index = None
            workdir = container.get("workingDir")
            for e in container.get("env") or []:
                if isinstance(e, dict) and "name" in e and "value" in e:
                    env[str(e["name"])] = str(e["value"])

    mcs = s.metricsCollectorSpec or _MetricsCollectorSpec()
    kind = (mcs.collector.kind if mcs.collector else "StdOut") or "StdOut"
    kinds = {
        "StdOut": CollectorKind.STDOUT,
        "File": CollectorKind.FILE,
        "Push": CollectorKind.PUSH,
        "None": CollectorKind.PUSH,
    }
    if kind not in kinds:
        issues.append(
            SpecIssue(
                "spec.metricsCollectorSpec.collector.kind",
                f"must be StdOut, File or Push to run locally; got {kind!r}",
            )
        )
    src = mcs.source or _Source()
    filters: list[str] = []
    if src.filter is not None:
        filters = list(src.filter.get("metricsFormat") or [])
    fsp = src.fileSystemPath or _FileSystemPath()
    if issues:
        raise SpecError(issues)
    spec = ExperimentSpec(
        name=name,
        objective=Objective(
            type=Direction(obj.type),
            metric=obj.objectiveMetricName,
            goal=obj.goal,
            additional_metrics=tuple(obj.additionalMetricNames),
            strategies=strategies,
        ),
        algorithm=AlgorithmSpec(
            name=s.algorithm.algorithmName,
            settings={x.name: x.value for x in s.algorithm.algorithmSettings},
        ),
        parameters=tuple(params),
        parallel_trial_count=s.parallelTrialCount if s.parallelTrialCount is not None else 3,
        max_trial_count=s.maxTrialCount,
        max_failed_trial_count=s.maxFailedTrialCount,
        trial_template=TrialTemplate(
            command=command,
            workdir=str((base_dir / workdir).resolve())
            if workdir and Path(base_dir / workdir).is_dir()
            else str(base_dir.resolve()),
            env=env,
            trial_parameters=tuple(
                TrialParameter(name=t.name, reference=t.reference, description=t.description)
                for t in tt.trialParameters
            ),
            shell_script_index=shell_index,
            manifest=tt.trialSpec,
            primary_container_name=tt.primaryContainerName,
        ),
        metrics_collector=MetricsCollectorSpec(
            kind=kinds[kind],
            path=fsp.path,
            format=fsp.format or "TEXT",
            filters=tuple(filters),
        ),
        early_stopping=(
            EarlyStoppingSpec(
                name=s.earlyStopping.algorithmName,
                settings={x.name: x.value for x in s.earlyStopping.algorithmSettings},
            )
            if s.earlyStopping is not None
            else None
        ),
        resume_policy=s.resumePolicy,
        namespace=doc.metadata.namespace,
        source="katib",
    )
    return check(spec, _translator(tt.primaryContainerName))
