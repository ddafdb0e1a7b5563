"""The shape of a Katib ``Experiment`` document and of the manifests inside it.

Pydantic models of the document (unknown fields are errors, with their path), Katib's defaults and
constants, and the helpers that look into a trial's manifest: its metadata, its primary container
(in ``containers``, an Argo template's ``container``, a Tekton step or a TrainJob's trainer) and
whether it needs hardware that only a cluster has.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from automl.core import CollectorKind, Distribution, Parameter, ParameterType
from automl.errors import SpecIssue

KATIB_API_VERSION = "kubeflow.org/v1beta1"
KATIB_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
KATIB_NAME_MAX = 40

_JOB_CONDITIONS = (
    'status.conditions.#(type=="Complete")#|#(status=="True")#',
    'status.conditions.#(type=="Failed")#|#(status=="True")#',
)
_KUBEFLOW_CONDITIONS = (
    'status.conditions.#(type=="Succeeded")#|#(status=="True")#',
    'status.conditions.#(type=="Failed")#|#(status=="True")#',
)
_KUBEFLOW_JOB_KINDS = ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob")
#: Katib's default (successCondition, failureCondition) per trial kind; other kinds need both.
DEFAULT_CONDITIONS: dict[str, tuple[str, str]] = {
    "Job": _JOB_CONDITIONS,
    **{k: _KUBEFLOW_CONDITIONS for k in _KUBEFLOW_JOB_KINDS},
    "TrainJob": _JOB_CONDITIONS,
}
#: Katib's default primaryPodLabels per trial kind (Job: none, every pod of the trial).
DEFAULT_POD_LABELS: dict[str, dict[str, str]] = {
    **{k: {"training.kubeflow.org/job-role": "master"} for k in _KUBEFLOW_JOB_KINDS},
    "TrainJob": {
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "batch.kubernetes.io/job-completion-index": "0",
    },
}

_DEFAULT_FILE_PATH = "/var/log/katib/metrics.log"
_DEFAULT_TFEVENT_DIR = "/var/log/katib/tfevent/"
_DEFAULT_PROMETHEUS = {"path": "/metrics", "port": 8080}
_KINDS = {
    "StdOut": CollectorKind.STDOUT,
    "File": CollectorKind.FILE,
    "TensorFlowEvent": CollectorKind.TENSORFLOW_EVENT,
    "PrometheusMetric": CollectorKind.PROMETHEUS,
    "Custom": CollectorKind.CUSTOM,
    "Push": CollectorKind.PUSH,
    "None": CollectorKind.PUSH,  # the name of Push before Katib v0.18
}
_META_REF = re.compile(
    r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|(?:Labels|Annotations)\[[^\]]+\])\}$"
)
_TRIAL_PARAM_RE = re.compile(r"\$\{trialParameters\.(.+?)\}")  # Katib's own regex
_TRIAL_SPEC_RE = re.compile(r"\$\{trialSpec\.([^{}]*)\}")
_SHELLS = ("sh", "bash", "ash", "dash", "zsh")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _NameValue(_M):
    name: str = ""
    value: Any = None


class _Objective(_M):
    type: str | None = None
    goal: float | None = None
    objectiveMetricName: str | None = None
    additionalMetricNames: list[str] = Field(default_factory=list)
    metricStrategies: list[_NameValue] = Field(default_factory=list)


class _Algorithm(_M):
    algorithmName: str | None = None
    algorithmSettings: list[_NameValue] = Field(default_factory=list)


class _FeasibleSpace(_M):
    min: str | float | None = None
    max: str | float | None = None
    step: str | float | None = None
    values: list[str | float | int | bool] | None = Field(None, alias="list")
    distribution: str | None = None


class _ParameterSpec(_M):
    name: str = ""
    parameterType: str = ""
    feasibleSpace: _FeasibleSpace | None = None


class _GraphConfig(_M):
    numLayers: int | None = None
    inputSizes: list[int] | None = None
    outputSizes: list[int] | None = None


class _Operation(_M):
    operationType: str | None = None
    parameters: list[_ParameterSpec] = Field(default_factory=list)


class _NasConfig(_M):
    graphConfig: _GraphConfig | None = None
    operations: list[_Operation] = Field(default_factory=list)


class _TrialParameter(_M):
    name: str = ""
    description: str = ""
    reference: str = ""


class _ConfigMap(_M):
    configMapName: str | None = None
    configMapNamespace: str | None = None
    templatePath: str | None = None


class _TrialTemplate(_M):
    retain: bool = False
    trialSpec: dict[str, Any] | None = None
    configMap: _ConfigMap | None = None
    trialParameters: list[_TrialParameter] | None = None
    primaryContainerName: str | None = None
    primaryPodLabels: dict[str, str] | None = None
    successCondition: str | None = None
    failureCondition: str | None = None


class _FileSystemPath(_M):
    path: str | None = None
    kind: str | None = None
    format: str | None = None


class _HttpGet(BaseModel):  # a Kubernetes HTTPGetAction: host, scheme, httpHeaders pass through
    model_config = ConfigDict(extra="allow")
    path: str | None = None
    port: int | str | None = None


class _Filter(_M):
    metricsFormat: list[str] = Field(default_factory=list)


class _Source(_M):
    filter: _Filter | None = None
    fileSystemPath: _FileSystemPath | None = None
    httpGet: _HttpGet | None = None


class _Collector(_M):
    kind: str | None = None
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
    parameters: list[_ParameterSpec] | None = None
    nasConfig: _NasConfig | None = None
    trialTemplate: _TrialTemplate
    metricsCollectorSpec: _MetricsCollectorSpec | None = None
    resumePolicy: str | None = None


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    namespace: str | None = None


def _budget_annotation(meta: _Metadata) -> float | None:
    """The time budget, carried through Katib as an annotation (Katib has no such field)."""
    annotations = (meta.model_extra or {}).get("annotations") or {}
    raw = annotations.get("automl.io/timeout-seconds") if isinstance(annotations, dict) else None
    try:
        value = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and value > 0 else None


class _Doc(_M):
    apiVersion: str
    kind: str
    metadata: _Metadata
    spec: _Spec
    status: dict[str, Any] | None = None


def trial_metadata(
    manifest: Mapping[str, Any] | None, name: str, namespace: str | None
) -> dict[str, str]:
    """The values of ``${trialSpec.*}`` for one trial, as Katib's manifest generator takes them.

    ``Name`` and ``Namespace`` are the trial's; ``Kind``, ``APIVersion``, ``Labels[k]`` and
    ``Annotations[k]`` come from the template (``metadata.labels`` / ``metadata.annotations``).
    """
    m = manifest or {}
    meta = m.get("metadata") if isinstance(m.get("metadata"), dict) else {}
    out = {
        "Name": name,
        "Namespace": namespace or "default",
        "Kind": str(m.get("kind", "Job")),
        "APIVersion": str(m.get("apiVersion", "batch/v1")),
    }
    for field, key in (("labels", "Labels"), ("annotations", "Annotations")):
        items = meta.get(field) if isinstance(meta, dict) else None
        if isinstance(items, dict):
            for k, v in items.items():
                out[f"{key}[{k}]"] = str(v)
    return out


def _walk(node: Any) -> Any:
    """Every dict inside ``node``, depth first, in document order."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _is_argo(manifest: Mapping[str, Any]) -> bool:
    return str(manifest.get("apiVersion", "")).startswith("argoproj.io/")


def _is_tekton(manifest: Mapping[str, Any]) -> bool:
    return str(manifest.get("apiVersion", "")).startswith("tekton.dev/")


def find_primary_container(
    manifest: Mapping[str, Any], name: str | None, pod_labels: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """The primary container of a trial manifest, searched the way each kind names it.

    * Pods, Jobs, training-operator jobs: a ``containers`` entry called ``name`` (depth first).
    * Argo Workflows: a template's singular ``container`` (or ``script``), preferring the template
      whose ``metadata.labels`` hold ``pod_labels``; Argo names it ``main`` in the pod.
    * Tekton: a ``steps`` entry ``x`` (its container is ``step-x``).
    * TrainJob: ``spec.trainer`` (the runtime's ``node`` container).
    """
    if _is_tekton(manifest):
        for node in _walk(manifest):
            steps = node.get("steps")
            if isinstance(steps, list):
                for s in steps:
                    if isinstance(s, dict) and name in (s.get("name"), f"step-{s.get('name')}"):
                        return s
        return None
    if _is_argo(manifest):
        candidates: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for node in _walk(manifest):
            for key in ("container", "script"):
                c = node.get(key)
                if isinstance(c, dict) and ("image" in c or "command" in c):
                    candidates.append((node, c))
        if pod_labels:
            labelled = [
                (t, c)
                for t, c in candidates
                if isinstance(t.get("metadata"), dict)
                and all(
                    str((t["metadata"].get("labels") or {}).get(k)) == str(v)
                    for k, v in pod_labels.items()
                )
            ]
            candidates = labelled or candidates
        for _, c in candidates:
            if c.get("name") == name:
                return c
        if candidates and name == "main":
            return candidates[0][1]
        return None
    for node in _walk(manifest):
        containers = node.get("containers")
        if isinstance(containers, list):
            for c in containers:
                if isinstance(c, dict) and (name is None or c.get("name") == name):
                    return c
    if manifest.get("kind") == "TrainJob":
        spec = manifest.get("spec")
        trainer = spec.get("trainer") if isinstance(spec, dict) else None
        if isinstance(trainer, dict):
            return {"name": name or "node", **trainer}
    return None


def _device_blocker(manifest: Mapping[str, Any]) -> str | None:
    """Why a device the trial asks for cannot reach a local process, or None."""
    for node in _walk(manifest):
        res = node.get("resources")
        if isinstance(res, dict):
            for part in ("limits", "requests"):
                for key in res.get(part) or {}:
                    k = str(key)
                    if "/" in k and not _gpu(k) and not k.startswith("hugepages-"):
                        what = " (an FPGA)" if _fpga(k) else ""
                        return (
                            f"the trial requests the device {k!r}{what} through a Kubernetes "
                            "device plugin, which a local process cannot get; it needs "
                            "executor: kubernetes"
                        )
        sel = node.get("nodeSelector")
        if isinstance(sel, dict):
            for k, v in sel.items():
                if _fpga(str(k)) or _fpga(str(v)):
                    return (
                        f"the trial selects FPGA nodes (nodeSelector {k}: {v}), which a local "
                        "process cannot use; it needs executor: kubernetes"
                    )
    return None


def _gpu(resource: str) -> bool:
    """GPUs (MIG slices included) reach a local process through the driver, not Kubernetes."""
    r = resource.lower()
    return "gpu" in r or r.startswith("nvidia.com/")


def _fpga(text: str) -> bool:
    t = text.lower()
    return "fpga" in t or "xilinx" in t


def _number(raw: Any, path: str, issues: list[SpecIssue]) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        issues.append(SpecIssue(path, f"must be a number; got {raw!r}"))
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


_PARAM_TYPES = ("int", "double", "categorical", "discrete")


def katib_parameter(raw: Any, path: str) -> tuple[Parameter | None, list[SpecIssue]]:
    """A Katib ``ParameterSpec`` (numbers as strings) as a :class:`Parameter`.

    Applies the rules of Katib's webhook that the core does not state (type, feasible space per
    type).

    Args:
        raw: The parsed ``ParameterSpec`` (a model of this module, or its dict form).
        path: Katib path of the parameter (``spec.parameters[0]``).

    Returns:
        The parameter (None when it cannot be built) and the problems found; the core rules
        (:meth:`Parameter.problems`) are not applied here.
    """
    p = raw if isinstance(raw, _ParameterSpec) else _ParameterSpec.model_validate(raw)
    issues: list[SpecIssue] = []
    if p.parameterType not in _PARAM_TYPES:
        issues.append(
            SpecIssue(
                f"{path}.parameterType",
                f"must be int, double, categorical or discrete; got {p.parameterType!r}",
            )
        )
    fs = p.feasibleSpace
    fpath = f"{path}.feasibleSpace"
    if fs is None or all(
        v in (None, "") for v in (fs.min, fs.max, fs.step, fs.values, fs.distribution)
    ):
        issues.append(SpecIssue(fpath, "is required (min and max, or list)"))
        return None, issues
    dist = fs.distribution or "uniform"
    if dist == "unknown":  # Katib tolerates it; its services treat it as uniform
        dist = "uniform"
    if dist not in {d.value for d in Distribution}:
        issues.append(
            SpecIssue(
                f"{fpath}.distribution",
                f"must be uniform, logUniform, normal or logNormal; got {fs.distribution!r}",
            )
        )
        dist = "uniform"
    if issues:
        return None, issues
    ptype = ParameterType(p.parameterType)
    values: tuple[Any, ...] = ()
    lo = hi = step = None
    if ptype in (ParameterType.INT, ParameterType.DOUBLE):
        if fs.values:
            issues.append(
                SpecIssue(
                    f"{fpath}.list",
                    f"is not allowed for {ptype.value} parameters (use min and max); "
                    f"got {fs.values!r}",
                )
            )
        lo = _number(fs.min, f"{fpath}.min", issues)
        hi = _number(fs.max, f"{fpath}.max", issues)
        step = _number(fs.step, f"{fpath}.step", issues)
    else:
        for fld in ("min", "max", "step"):
            v = getattr(fs, fld)
            if v not in (None, ""):
                issues.append(
                    SpecIssue(
                        f"{fpath}.{fld}",
                        f"is not allowed for {ptype.value} parameters (use list); got {v!r}",
                    )
                )
        values = tuple(
            _discrete(v) if ptype is ParameterType.DISCRETE else v for v in (fs.values or [])
        )
        dist = "uniform"  # Katib defaults it for every type and ignores it here
    param = Parameter(
        name=p.name,
        type=ptype,
        min=lo,
        max=hi,
        step=step,
        values=values,
        distribution=Distribution(dist),
    )
    return param, issues


def nas_operations(
    nas_config: Mapping[str, Any] | None, path: str = "spec.nasConfig"
) -> tuple[list[tuple[str, list[Parameter]]], list[SpecIssue]]:
    """The ``operations`` of a Katib ``nasConfig`` with their parameters parsed.

    Returns:
        ``(operationType, parameters)`` per operation (parameters that cannot be built are left
        out), and the problems found in the parameters' types and feasible spaces (Katib paths
        under ``path``).
    """
    ops, issues, _ = _nas_operations(nas_config, path)
    return ops, issues


def _nas_operations(
    nas_config: Mapping[str, Any] | None, path: str
) -> tuple[list[tuple[str, list[Parameter]]], list[SpecIssue], dict[int, list[int]]]:
    ops: list[tuple[str, list[Parameter]]] = []
    issues: list[SpecIssue] = []
    index: dict[int, list[int]] = {}
    for i, op in enumerate((nas_config or {}).get("operations") or []):
        params: list[Parameter] = []
        index[i] = []
        for j, raw in enumerate(op.get("parameters") or []):
            p, found = katib_parameter(raw, f"{path}.operations[{i}].parameters[{j}]")
            issues.extend(found)
            if p is not None:
                params.append(p)
                index[i].append(j)
        ops.append((str(op.get("operationType") or ""), params))
    return ops, issues, index
