"""Katib ``kubeflow.org/v1beta1`` ``Experiment`` documents: every field, defaults and rules.

Every field of Katib's Experiment spec is read into the :class:`~automl.core.ExperimentSpec`:
objective (``metricStrategies`` defaulted per objective type for the objective *and* the additional
metrics, as Katib's defaulting code does), algorithm and settings (the runnable algorithms through
:func:`search.resolve_settings`; ``enas`` and ``darts`` through :mod:`search._nas_settings`),
early stopping, budgets (``parallelTrialCount`` defaults to 3), parameters or ``nasConfig``,
``resumePolicy``, every metrics-collector kind (``None`` is the pre-0.18 name of ``Push``) and the
trial template (``trialSpec`` or ``configMap``, ``primaryPodLabels`` and success/failure
conditions defaulted per kind as Katib does, ``retain``).

Trials that cannot run as a local process are accepted and validated, with
``TrialTemplate.local_blocker`` saying why: Argo Workflows and Tekton PipelineRuns (several pods
passing data), templates kept in a ConfigMap (not readable here), trials that request a device
through a Kubernetes device plugin other than a GPU (an FPGA such as ``xilinx/aws-vu9p-f1``) or
select FPGA nodes, and primary containers without a ``command`` (the image's entrypoint is unknown
here). The primary container's ``command + args`` is still kept in ``TrialTemplate.command`` where
one is found, for display.

``nasConfig`` with an algorithm other than ``enas``/``darts`` (``random``, ``tpe``,
``evolution``...) is accepted as an automl extension, multi-trial NAS (docs/nas.md): the
template may reference ``architecture``, ``nn_config`` and the choices ``layer_{i}_op`` /
``layer_{i}_skip_{j}``, and the graph's sizes are required. Katib cannot run it, so
:func:`automl.spec._export.to_katib` refuses to export it.

Katib's validation rules (the experiment webhook, the suggestion services' setting checks) are
applied on top of the core rules; every problem is reported at once with its Katib field path
(``spec.trialTemplate.trialParameters[1].reference``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from automl.core import (
    AlgorithmSpec,
    CollectorKind,
    Direction,
    EarlyStoppingSpec,
    ExperimentSpec,
    MetricsCollectorSpec,
    MetricStrategy,
    Objective,
    Parameter,
    ParameterType,
    TrialParameter,
    TrialTemplate,
    spec_problems,
)
from automl.errors import SpecError, SpecIssue
from automl.spec._common import pydantic_issues
from automl.spec._limits import grid_problems, nas_size_problems

__all__ = [
    "DEFAULT_CONDITIONS",
    "DEFAULT_POD_LABELS",
    "KATIB_API_VERSION",
    "find_primary_container",
    "katib_parameter",
    "nas_operations",
    "parse_katib",
    "trial_metadata",
]

from automl.spec._katib_model import (
    _DEFAULT_FILE_PATH,
    _DEFAULT_PROMETHEUS,
    _DEFAULT_TFEVENT_DIR,
    _KINDS,
    _META_REF,
    _SHELLS,
    _TRIAL_PARAM_RE,
    _TRIAL_SPEC_RE,
    DEFAULT_CONDITIONS,
    DEFAULT_POD_LABELS,
    KATIB_API_VERSION,
    KATIB_NAME_MAX,
    KATIB_NAME_RE,
    _Algorithm,
    _budget_annotation,
    _device_blocker,
    _Doc,
    _is_argo,
    _is_tekton,
    _MetricsCollectorSpec,
    _nas_operations,
    _Objective,
    _Source,
    _TrialTemplate,
    find_primary_container,
    katib_parameter,
    nas_operations,
    trial_metadata,
)

_PARAM_FIELDS = {
    "min": "feasibleSpace.min",
    "max": "feasibleSpace.max",
    "step": "feasibleSpace.step",
    "values": "feasibleSpace.list",
    "distribution": "feasibleSpace.distribution",
    "type": "parameterType",
    "name": "name",
}


def _translator(
    primary: str | None,
    param_index: Sequence[int] = (),
    nas_index: Mapping[int, Sequence[int]] | None = None,
) -> Callable[[str], str]:
    """Core paths -> Katib paths.

    ``param_index`` / ``nas_index`` map the position of a built parameter back to its position in
    the document (parameters that could not be built are left out of the spec).
    """
    fixed = {
        "name": "metadata.name",
        "objective": "spec.objective",
        "objective.metric": "spec.objective.objectiveMetricName",
        "objective.type": "spec.objective.type",
        "objective.goal": "spec.objective.goal",
        "objective.additional_metrics": "spec.objective.additionalMetricNames",
        "algorithm.name": "spec.algorithm.algorithmName",
        "algorithm.settings": "spec.algorithm.algorithmSettings",
        "early_stopping": "spec.earlyStopping",
        "early_stopping.name": "spec.earlyStopping.algorithmName",
        "early_stopping.settings": "spec.earlyStopping.algorithmSettings",
        "parallel_trial_count": "spec.parallelTrialCount",
        "max_trial_count": "spec.maxTrialCount",
        "max_failed_trial_count": "spec.maxFailedTrialCount",
        "parameters": "spec.parameters",
        "nas_config": "spec.nasConfig",
        "resume_policy": "spec.resumePolicy",
        "trial_template.command": f"spec.trialTemplate.trialSpec (container {primary!r} command)",
        "trial_template.script": f"spec.trialTemplate.trialSpec (container {primary!r} command)",
        "trial_template": "spec.trialTemplate",
        "metrics_collector": "spec.metricsCollectorSpec",
        "metrics_collector.kind": "spec.metricsCollectorSpec.collector.kind",
        "metrics_collector.path": "spec.metricsCollectorSpec.source.fileSystemPath.path",
        "metrics_collector.format": "spec.metricsCollectorSpec.source.fileSystemPath.format",
        "metrics_collector.filters": "spec.metricsCollectorSpec.source.filter.metricsFormat",
    }

    def translate(path: str) -> str:
        if path in fixed:
            return fixed[path]
        if path.startswith(("spec", "metadata")):
            return path  # already a Katib path
        m = re.match(
            r"^(?:nas_config\.operations\[(\d+)\]\.)?parameters\[(\d+)\]\.(\w+)(.*)$", path
        )
        if m:
            k = int(m.group(2))
            if m.group(1) is not None:
                op = int(m.group(1))
                cols = (nas_index or {}).get(op, ())
                head = f"spec.nasConfig.operations[{op}]."
            else:
                cols = param_index
                head = "spec."
            k = cols[k] if k < len(cols) else k
            fld = _PARAM_FIELDS.get(m.group(3), m.group(3))
            return f"{head}parameters[{k}].{fld}{m.group(4)}"
        m = re.match(r"^nas_config\.(.+)$", path)
        if m:
            return f"spec.nasConfig.{m.group(1)}"
        m = re.match(r"^parameters\[(\d+)\]$", path)
        if m:
            k = int(m.group(1))
            return f"spec.parameters[{param_index[k] if k < len(param_index) else k}]"
        m = re.match(r"^algorithm\.settings\.(.+)$", path)
        if m:
            return f"spec.algorithm.algorithmSettings[name={m.group(1)}]"
        m = re.match(r"^early_stopping\.settings\.(.+)$", path)
        if m:
            return f"spec.earlyStopping.algorithmSettings[name={m.group(1)}]"
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


def _superseded(issue: SpecIssue) -> bool:
    """Core issues that the Katib rules below state more precisely (with Katib's wording)."""
    p = issue.path
    return (
        p in ("name", "parameters", "trial_template.command", "metrics_collector.filters")
        or p.startswith("trial_template.trial_parameters")
        or (p == "metrics_collector.path" and "File collector" in issue.message)
    )


# -- the parser -------------------------------------------------------------------------------
class _Checker:
    """Collects Katib-rule problems while the spec is built."""

    def __init__(self) -> None:
        self.issues: list[SpecIssue] = []

    def add(self, path: str, message: str) -> None:
        self.issues.append(SpecIssue(path, message))


def _objective(obj: _Objective, c: _Checker) -> Objective:
    direction = Direction.MINIMIZE
    if obj.type in ("minimize", "maximize"):
        direction = Direction(obj.type)
    elif obj.type is None:
        c.add("spec.objective.type", "is required (minimize or maximize)")
    else:
        c.add("spec.objective.type", f"must be minimize or maximize; got {obj.type!r}")
    metric = obj.objectiveMetricName or ""
    if not metric.strip():
        c.add("spec.objective.objectiveMetricName", f"is required (a metric name); got {metric!r}")
    # Katib's defaulting gives the objective and every additional metric without a strategy the
    # objective type's (min for minimize, max for maximize): Objective.strategy() returns exactly
    # that, so only the strategies as written are stored (and exported back unchanged).
    strategies: dict[str, MetricStrategy] = {}
    for i, ms in enumerate(obj.metricStrategies):
        if str(ms.value) not in ("min", "max", "latest"):
            c.add(
                f"spec.objective.metricStrategies[{i}].value",
                f"must be min, max or latest; got {ms.value!r}",
            )
        else:
            strategies[ms.name] = MetricStrategy(str(ms.value))
    return Objective(
        type=direction,
        metric=metric or "?",
        goal=obj.goal,
        additional_metrics=tuple(obj.additionalMetricNames),
        strategies=strategies,
    )


def _settings(alg: _Algorithm, path: str, c: _Checker) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, s in enumerate(alg.algorithmSettings):
        if not s.name:
            c.add(f"{path}.algorithmSettings[{i}].name", "is required")
            continue
        if s.name in out:
            c.add(
                f"{path}.algorithmSettings[name={s.name}]",
                f"is set twice; got {out[s.name]!r} and {s.value!r}",
            )
        out[s.name] = s.value
    return out


def _metrics_collector(mcs: _MetricsCollectorSpec | None, c: _Checker) -> MetricsCollectorSpec:
    mcs = mcs or _MetricsCollectorSpec()
    base = "spec.metricsCollectorSpec"
    raw_kind = mcs.collector.kind if mcs.collector and mcs.collector.kind is not None else "StdOut"
    kind = _KINDS.get(raw_kind)
    if kind is None:
        c.add(
            f"{base}.collector.kind",
            "must be StdOut, File, TensorFlowEvent, PrometheusMetric, Custom or Push; "
            f"got {raw_kind!r}",
        )
        kind = CollectorKind.STDOUT
    src = mcs.source or _Source()
    fsp = src.fileSystemPath
    filters = tuple(src.filter.metricsFormat) if src.filter else ()
    path: str | None = fsp.path if fsp else None
    path_kind: str | None = fsp.kind if fsp else None
    fmt = fsp.format if fsp and fsp.format else "TEXT"
    http_get: dict[str, Any] | None = None
    fpath = f"{base}.source.fileSystemPath"
    # fileSystemPath.kind is kept as written: File and TensorFlowEvent imply it (File,
    # Directory), and the rules below hold the written value to that.
    if kind is CollectorKind.FILE:
        path = path or _DEFAULT_FILE_PATH
        if (path_kind or "File") != "File":
            c.add(f"{fpath}.kind", f"must be File for the File collector; got {path_kind!r}")
        if not os.path.isabs(path):
            c.add(f"{fpath}.path", f"must be an absolute file path; got {path!r}")
        if fmt not in ("TEXT", "JSON"):
            c.add(f"{fpath}.format", f"must be TEXT or JSON; got {fmt!r}")
        if fmt == "JSON" and src.filter is not None:
            c.add(
                f"{base}.source.filter",
                "must not be set when the file format is JSON (JSON lines name their "
                f"metrics); got {list(filters)}",
            )
    elif kind is CollectorKind.TENSORFLOW_EVENT:
        path = path or _DEFAULT_TFEVENT_DIR
        if (path_kind or "Directory") != "Directory":
            c.add(
                f"{fpath}.kind",
                f"must be Directory for the TensorFlowEvent collector; got {path_kind!r}",
            )
        if not os.path.isabs(path):
            c.add(f"{fpath}.path", f"must be an absolute directory path; got {path!r}")
        if fsp is not None and fsp.format:
            c.add(
                f"{fpath}.format",
                f"must be empty for the TensorFlowEvent collector; got {fsp.format!r}",
            )
        fmt = "TEXT"
    elif kind is CollectorKind.PROMETHEUS:
        hg = src.httpGet.model_dump(exclude_none=True) if src.httpGet else {}
        hg.setdefault("path", _DEFAULT_PROMETHEUS["path"])
        port = hg.get("port", 0)
        if port in (0, "0", None):
            port = _DEFAULT_PROMETHEUS["port"]
        try:
            port_ok = not isinstance(port, bool) and int(str(port)) > 0
        except ValueError:
            port_ok = False
        if not port_ok:
            c.add(f"{base}.source.httpGet.port", f"must be a positive integer; got {port!r}")
        else:
            port = int(str(port))
        hg["port"] = port
        if not str(hg["path"]).startswith("/"):
            c.add(f"{base}.source.httpGet.path", f"must start with '/'; got {hg['path']!r}")
        http_get = hg
    elif kind is CollectorKind.CUSTOM:
        if mcs.collector is None or not mcs.collector.customCollector:
            c.add(
                f"{base}.collector.customCollector",
                "is required for the Custom collector (the collector container spec)",
            )
        if fsp is not None:
            if path_kind not in ("File", "Directory"):
                c.add(f"{fpath}.kind", f"must be File or Directory; got {path_kind!r}")
            if not path or not os.path.isabs(path):
                c.add(f"{fpath}.path", f"must be an absolute path; got {path!r}")
    if fmt not in ("TEXT", "JSON"):
        fmt = "TEXT"  # reported above for the File collector; other kinds ignore it
    custom = mcs.collector.customCollector if mcs.collector else None
    return MetricsCollectorSpec(
        kind=kind,
        path=path,
        format=fmt,
        filters=filters,
        path_kind=path_kind,
        http_get=http_get,
        custom_collector=dict(custom) if custom else None,
    )


def _check_trial_parameters(
    tt: _TrialTemplate,
    template_text: str | None,
    known: Sequence[str],
    known_what: str,
    c: _Checker,
    *,
    require_use: bool = True,
) -> None:
    """Katib's trialParameters rules; ``template_text`` is None when the template is unknown."""
    base = "spec.trialTemplate.trialParameters"
    tps = tt.trialParameters
    if not tps:
        c.add(
            base,
            "is required: one {name, reference} entry per ${trialParameters.<name>} in the "
            f"template; got {tps!r}",
        )
        return
    names: set[str] = set()
    refs: set[str] = set()
    for i, tp in enumerate(tps):
        path = f"{base}[{i}]"
        if not tp.name:
            c.add(f"{path}.name", "is required")
        elif "{" in tp.name or "}" in tp.name:
            c.add(f"{path}.name", f"must not contain '{{' or '}}'; got {tp.name!r}")
        elif tp.name in names:
            c.add(f"{path}.name", f"must be unique; {tp.name!r} appears twice")
        if not tp.reference:
            c.add(f"{path}.reference", "is required (a parameter name or trial metadata)")
        elif tp.reference in refs:
            c.add(f"{path}.reference", f"must be unique; {tp.reference!r} appears twice")
        elif known and tp.reference not in known and not _META_REF.match(tp.reference):
            c.add(
                f"{path}.reference",
                f"must name {known_what} ({sorted(known)}) or trial metadata "
                "(${trialSpec.Name}, ${trialSpec.Namespace}, ${trialSpec.Kind}, "
                "${trialSpec.APIVersion}, ${trialSpec.Labels[k]}, ${trialSpec.Annotations[k]}); "
                f"got {tp.reference!r}",
            )
        placeholder = "${trialParameters." + tp.name + "}"
        if (
            require_use
            and template_text is not None
            and tp.name
            and "{" not in tp.name
            and "}" not in tp.name
            and placeholder not in template_text
        ):
            c.add(
                f"{path}.name",
                f"{tp.name!r} is never used in the template: no {placeholder} in "
                "spec.trialTemplate.trialSpec",
            )
        names.add(tp.name)
        refs.add(tp.reference)
    if template_text is None:
        return
    unknown = sorted({m for m in _TRIAL_PARAM_RE.findall(template_text) if m not in names})
    for key in unknown:
        c.add(
            "spec.trialTemplate.trialSpec",
            f"uses ${{trialParameters.{key}}}, which is not in trialParameters "
            f"(known: {sorted(names)})",
        )
    for key in sorted(set(_TRIAL_SPEC_RE.findall(template_text))):
        if not _META_REF.match("${trialSpec." + key + "}"):
            c.add(
                "spec.trialTemplate.trialSpec",
                f"uses ${{trialSpec.{key}}}, which is not trial metadata (Name, Namespace, Kind, "
                "APIVersion, Labels[k], Annotations[k])",
            )


def _trial_template(
    tt: _TrialTemplate,
    known: Sequence[str],
    known_what: str,
    base_dir: Path,
    c: _Checker,
) -> TrialTemplate:
    base = "spec.trialTemplate"
    m = tt.trialSpec
    if (m is None) == (tt.configMap is None):
        c.add(
            base,
            "must set exactly one of trialSpec or configMap; got "
            + ("both" if m is not None else "neither"),
        )
    if not tt.primaryContainerName:
        c.add(f"{base}.primaryContainerName", "is required (the container that reports metrics)")
    config_map: dict[str, str] | None = None
    blocker: str | None = None
    if tt.configMap is not None:
        cm = tt.configMap.model_dump()
        config_map = {k: v for k, v in cm.items() if v}
        for k in ("configMapName", "configMapNamespace", "templatePath"):
            if not cm.get(k):
                c.add(f"{base}.configMap.{k}", f"is required; got {cm.get(k)!r}")
        if m is None:
            blocker = (
                "trial templates kept in a ConfigMap "
                f"({cm.get('configMapNamespace')}/{cm.get('configMapName')}, key "
                f"{cm.get('templatePath')}) need executor: kubernetes"
            )
    kind = str(m.get("kind") or "") if m is not None else ""
    if m is not None:
        if not m.get("apiVersion"):
            c.add(f"{base}.trialSpec.apiVersion", "is required")
        if not kind:
            c.add(f"{base}.trialSpec.kind", "is required")
        meta = m.get("metadata")
        if isinstance(meta, dict):
            for k in ("name", "namespace"):
                if meta.get(k):
                    c.add(
                        f"{base}.trialSpec.metadata.{k}",
                        f"must not be set (Katib sets it to the trial's {k}); got {meta[k]!r}",
                    )
    # Katib's defaults per kind (only for an inline trialSpec).
    success, failure = tt.successCondition, tt.failureCondition
    labels = dict(tt.primaryPodLabels) if tt.primaryPodLabels else None
    if kind in DEFAULT_CONDITIONS:
        success = success or DEFAULT_CONDITIONS[kind][0]
        failure = failure or DEFAULT_CONDITIONS[kind][1]
    if kind in DEFAULT_POD_LABELS and not labels:
        labels = dict(DEFAULT_POD_LABELS[kind])
    what = f"kind {kind!r}" if kind else "a configMap template"
    for fld, val in (("successCondition", success), ("failureCondition", failure)):
        if not val:
            c.add(
                f"{base}.{fld}",
                f"is required for {what} (Katib has defaults only for Job, TFJob, PyTorchJob, "
                "XGBoostJob, MPIJob and TrainJob)",
            )
    template_text = json.dumps(m) if m is not None else None
    # Katib's upstream Tekton example binds its parameter through the PipelineRun's own params
    # and never writes ${trialParameters.x}; Katib's webhook would refuse it. Such trials cannot
    # run here anyway, so the "every trialParameter is used" rule is only enforced for trials
    # that run as local processes (docs/katib-compatibility.md).
    lenient = m is not None and (_is_argo(m) or _is_tekton(m))
    _check_trial_parameters(tt, template_text, known, known_what, c, require_use=not lenient)

    command: tuple[str, ...] | None = None
    shell_index: int | None = None
    workdir: str | None = None
    env: dict[str, str] = {}
    if m is not None:
        if _is_argo(m):
            blocker = f"Argo {kind or 'Workflow'} trials need executor: kubernetes"
        elif _is_tekton(m):
            blocker = f"Tekton {kind or 'PipelineRun'} trials need executor: kubernetes"
        container = find_primary_container(m, tt.primaryContainerName, tt.primaryPodLabels)
        if container is None:
            if blocker is None and tt.primaryContainerName:
                c.add(
                    f"{base}.trialSpec",
                    f"has no container named {tt.primaryContainerName!r} (primaryContainerName)",
                )
        else:
            cmd = [str(a) for a in container.get("command") or []]
            argv = cmd + [str(a) for a in container.get("args") or []]
            if argv:
                command = tuple(argv)
                if os.path.basename(argv[0]) in _SHELLS and "-c" in argv[1:]:
                    shell_index = argv.index("-c", 1) + 1
                    if shell_index >= len(argv):
                        shell_index = None
            blocker = blocker or _device_blocker(m)
            if blocker is None and not cmd:
                blocker = (
                    f"container {tt.primaryContainerName!r} sets "
                    + ("args but no command" if argv else "neither command nor args")
                    + ", so it runs the image's entrypoint, which is unknown here; it needs "
                    "executor: kubernetes"
                )
            workdir = container.get("workingDir")
            for e in container.get("env") or []:
                if isinstance(e, dict) and "name" in e and "value" in e:
                    env[str(e["name"])] = str(e["value"])
    return TrialTemplate(
        command=command,
        workdir=str((base_dir / workdir).resolve())
        if workdir and Path(base_dir / workdir).is_dir()
        else str(base_dir.resolve()),
        env=env,
        trial_parameters=tuple(
            TrialParameter(name=t.name, reference=t.reference, description=t.description)
            for t in tt.trialParameters or []
        ),
        shell_script_index=shell_index,
        manifest=m,
        primary_container_name=tt.primaryContainerName,
        config_map=config_map,
        primary_pod_labels=labels,
        success_condition=success,
        failure_condition=failure,
        retain=tt.retain,
        local_blocker=blocker,
        timeout=_deadline(m),
        resources=trial_resources(m, tt.primaryContainerName, tt.primaryPodLabels),
    )


def _cpu_cores(raw: Any) -> float | None:
    """Kubernetes CPU quantity (``2``, ``0.5``, ``500m``) in cores; None if unreadable."""
    text = str(raw).strip()
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return None
    return cores if cores > 0 else None


def trial_resources(
    manifest: dict[str, Any] | None,
    container_name: str | None,
    pod_labels: Mapping[str, str] | None = None,
) -> Any:
    """``TrialTemplate.resources`` read from a Katib trialSpec.

    The primary container's ``resources.limits`` (``requests`` where no limit is set): ``cpu``,
    ``memory`` and ``nvidia.com/gpu``. A PyTorchJob's ``Worker.replicas`` (+1 for its Master)
    gives ``workers``, and a whole ``nprocPerNode`` (or the older
    ``elasticPolicy.nProcPerNode``) gives ``processes_per_worker``. Values Kubernetes would
    take but these fields cannot hold (``nprocPerNode: auto``, an ``1e9`` memory) are left at
    their defaults.
    """
    from automl.core import Resources, parse_quantity

    if not manifest:
        return Resources()
    out: dict[str, Any] = {}
    container = find_primary_container(manifest, container_name, pod_labels)
    res = container.get("resources") if container else None
    if isinstance(res, dict):
        merged: dict[str, Any] = {}
        for key in ("requests", "limits"):  # a limit wins over a request
            if isinstance(res.get(key), dict):
                merged.update(res[key])
        if "cpu" in merged and (cores := _cpu_cores(merged["cpu"])) is not None:
            out["cpu"] = cores
        if "memory" in merged:
            try:
                parse_quantity(str(merged["memory"]), "memory")
                out["memory"] = str(merged["memory"])
            except SpecError:
                pass
        gpu = _cpu_cores(merged.get("nvidia.com/gpu", 0))
        if gpu is not None and gpu.is_integer():
            out["gpu"] = gpu
    spec = manifest.get("spec")
    if manifest.get("kind") == "PyTorchJob" and isinstance(spec, dict):
        replicas = spec.get("pytorchReplicaSpecs")
        if isinstance(replicas, dict):
            worker = replicas.get("Worker")
            count = worker.get("replicas", 1) if isinstance(worker, dict) else 0
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                out["workers"] = max(1, count + (1 if "Master" in replicas else 0))
        elastic = spec.get("elasticPolicy")
        nproc = spec.get("nprocPerNode")
        if nproc is None and isinstance(elastic, dict):
            nproc = elastic.get("nProcPerNode")
        if nproc is not None and str(nproc).isdigit() and int(str(nproc)) >= 1:
            out["processes_per_worker"] = int(str(nproc))
    return Resources(**out)


def _deadline(manifest: dict[str, Any] | None) -> float | None:
    """A Job's ``activeDeadlineSeconds`` (job or pod spec): the per-trial timeout."""
    spec = (manifest or {}).get("spec")
    if not isinstance(spec, dict):
        return None
    pod = (
        ((spec.get("template") or {}).get("spec") or {})
        if isinstance(spec.get("template"), dict)
        else {}
    )
    for source in (spec, pod):
        value = source.get("activeDeadlineSeconds") if isinstance(source, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def _grid_size(params: Sequence[Parameter]) -> int | None:
    n = 1
    for p in params:
        if p.type is ParameterType.DOUBLE and p.step is None:
            return None
        if p.is_numeric_range and (p.min is None or p.max is None):
            return None
        try:
            n *= p.grid_size()
        except (SpecError, ValueError, ZeroDivisionError, OverflowError):
            return None
    return n


def _multi_trial_nas_names(nas_config: Mapping[str, Any] | None) -> list[str]:
    """What a multi-trial NAS trial is assigned: ``architecture``, ``nn_config`` and the choices.

    The choices (``layer_{i}_op``, ``layer_{i}_skip_{j}``) are only known for a space that
    parses; a broken ``nasConfig`` is reported on its own fields.
    """
    from search._nas_space import NasSpace

    names = ["architecture", "nn_config"]
    try:
        space = NasSpace.from_katib(nas_config or {}, "nas_config")
    except SpecError:
        return names
    return [*names, *(p.name for p in space.parameters())]


def _multi_trial_size_problems(nas_config: Mapping[str, Any], alg_name: str) -> list[SpecIssue]:
    """Multi-trial NAS trials get ENAS's ``nn_config``, which carries the network's sizes."""
    graph = nas_config.get("graphConfig")
    if not isinstance(graph, Mapping):
        return []  # reported by nas_config_problems
    return [
        SpecIssue(
            f"nas_config.graphConfig.{key}",
            f"is required by multi-trial NAS with {alg_name} (each trial's nn_config carries "
            "the network's sizes, as ENAS's does)",
        )
        for key in ("inputSizes", "outputSizes")
        if graph.get(key) is None
    ]


def _search_parameters(spec: ExperimentSpec) -> Sequence[Parameter]:
    """The parameters the algorithm searches: the architecture's choices for multi-trial NAS."""
    if spec.nas_config is None or spec.parameters:
        return spec.parameters
    from search._nas_space import NasSpace

    try:
        return NasSpace.from_spec(spec).parameters()
    except SpecError:
        return ()


def _algorithm_rules(spec: ExperimentSpec, c: _Checker) -> None:
    """Rules of Katib's suggestion services that the registry does not state."""
    name = spec.algorithm.name
    if name == "grid":
        for issue in grid_problems(spec.parameters, "spec.parameters"):
            c.add(issue.path, issue.message)
    if name == "grid" and spec.max_trial_count is not None:
        params = _search_parameters(spec)
        size = _grid_size(params) if params else None
        if size is not None and spec.max_trial_count > size:
            c.add(
                "spec.maxTrialCount",
                f"must not exceed the number of grid combinations ({size}) for algorithm grid; "
                f"got {spec.max_trial_count}",
            )
    if name == "pbt":
        for key in ("suggestion_trial_dir", "n_population", "truncation_threshold"):
            if key not in spec.algorithm.settings:
                c.add(
                    f"spec.algorithm.algorithmSettings[name={key}]",
                    "is required by pbt (Katib's PBT service rejects an experiment without it)",
                )


def parse_katib(data: dict[str, Any], base_dir: Path) -> ExperimentSpec:
    """Build an :class:`ExperimentSpec` from a parsed Katib Experiment document.

    Raises:
        SpecError: Every problem found, with Katib field paths
            (``spec.parameters[2].feasibleSpace.max``).
    """
    from search import resolve_settings, resolve_stopper_settings
    from search._nas_settings import NAS_ALGORITHMS, nas_config_problems, resolve_nas_settings

    try:
        doc = _Doc.model_validate(data)
    except ValidationError as exc:
        raise SpecError(pydantic_issues(exc)) from None
    c = _Checker()
    if doc.apiVersion != KATIB_API_VERSION:
        c.add("apiVersion", f"must be {KATIB_API_VERSION}; got {doc.apiVersion!r}")
    if doc.kind != "Experiment":
        c.add("kind", f"must be Experiment; got {doc.kind!r}")
    s = doc.spec
    name = doc.metadata.name
    if not KATIB_NAME_RE.match(name) or len(name) > KATIB_NAME_MAX:
        c.add(
            "metadata.name",
            "must match ^[a-z]([-a-z0-9]*[a-z0-9])?$ and be at most "
            f"{KATIB_NAME_MAX} characters (Katib's rule); got {name!r} ({len(name)} characters)",
        )
    objective = _objective(s.objective, c)

    alg_name = s.algorithm.algorithmName or ""
    if not alg_name:
        c.add("spec.algorithm.algorithmName", "is required")
    alg_settings = _settings(s.algorithm, "spec.algorithm", c)
    is_nas = alg_name in NAS_ALGORITHMS

    if s.parameters and s.nasConfig is not None:
        c.add("spec", "must set exactly one of parameters or nasConfig; got both")
    elif not s.parameters and s.nasConfig is None:
        c.add("spec", "must set exactly one of parameters or nasConfig; got neither")
    if is_nas and s.nasConfig is None:
        c.add(
            "spec.nasConfig",
            f"is required by the neural architecture search algorithm {alg_name!r}",
        )
    # nasConfig with a non-NAS algorithm (random, tpe, evolution...) is multi-trial NAS, an
    # automl extension: Katib pairs nasConfig only with enas/darts (docs/katib-compatibility.md).
    # hyperband and pbt cannot search the choices; resolve_settings names them below.
    multi_nas = s.nasConfig is not None and bool(alg_name) and not is_nas

    params: list[Parameter] = []
    param_names: list[str] = []
    param_index: list[int] = []
    for i, raw in enumerate(s.parameters or []):
        param_names.append(raw.name)
        p, found = katib_parameter(raw, f"spec.parameters[{i}]")
        c.issues.extend(found)
        if p is not None:
            params.append(p)
            param_index.append(i)

    nas_config: dict[str, Any] | None = None
    nas_ops: list[tuple[str, list[Parameter]]] = []
    nas_index: dict[int, list[int]] = {}
    if s.nasConfig is not None:
        nas_config = s.nasConfig.model_dump(
            exclude_none=True, exclude_defaults=True, by_alias=True
        )
        too_big = nas_size_problems(nas_config, katib=True, path="spec.nasConfig")
        if too_big:  # everything below grows with these sizes
            raise SpecError([*c.issues, *too_big])
        nas_ops, found, nas_index = _nas_operations(nas_config, "spec.nasConfig")
        c.issues.extend(found)

    if is_nas:
        known: Sequence[str] = NAS_ALGORITHMS[alg_name].assignments
        known_what = f"a value {alg_name} assigns"
    elif multi_nas:
        known = _multi_trial_nas_names(nas_config)
        known_what = f"a value multi-trial NAS with {alg_name} assigns"
    else:
        known, known_what = param_names, "a parameter"
    template = _trial_template(s.trialTemplate, known, known_what, base_dir, c)
    collector = _metrics_collector(s.metricsCollectorSpec, c)

    resume = s.resumePolicy or "Never"
    if resume not in ("Never", "LongRunning", "FromVolume"):
        c.add("spec.resumePolicy", f"must be Never, LongRunning or FromVolume; got {resume!r}")
        resume = "Never"

    early: EarlyStoppingSpec | None = None
    if s.earlyStopping is not None:
        if not s.earlyStopping.algorithmName:
            c.add("spec.earlyStopping.algorithmName", "is required")
        early = EarlyStoppingSpec(
            name=s.earlyStopping.algorithmName or "",
            settings=_settings(s.earlyStopping, "spec.earlyStopping", c),
        )

    spec = ExperimentSpec(
        name=name,
        objective=objective,
        algorithm=AlgorithmSpec(name=alg_name, settings=alg_settings),
        parameters=tuple(params),
        parallel_trial_count=s.parallelTrialCount if s.parallelTrialCount is not None else 3,
        max_trial_count=s.maxTrialCount,
        max_failed_trial_count=s.maxFailedTrialCount,
        trial_template=template,
        metrics_collector=collector,
        early_stopping=early,
        resume_policy=resume,
        nas_config=nas_config,
        namespace=doc.metadata.namespace,
        timeout=_budget_annotation(doc.metadata),
        source="katib",
    )

    # Core rules and algorithm settings, in the spec's own paths (translated below).
    core = [i for i in spec_problems(spec) if not _superseded(i)]
    space_issues: list[SpecIssue] = []
    if alg_name:
        try:
            if is_nas:
                resolve_nas_settings(spec)
            else:
                resolve_settings(spec)
        except SpecError as exc:
            core.extend(i for i in exc.issues if not i.path.startswith("nas_config"))
            space_issues = [i for i in exc.issues if i.path.startswith("nas_config")]
    if nas_config is not None:
        found_nas = nas_config_problems(alg_name, nas_config, nas_ops)
        if multi_nas:
            found_nas.extend(_multi_trial_size_problems(nas_config, alg_name))
        # The space's own parse (resolve_settings) adds what Katib's rules do not cover for a
        # non-NAS algorithm (an unknown operationType), once per field.
        reported = {i.path for i in found_nas}
        core.extend([*found_nas, *(i for i in space_issues if i.path not in reported)])
    if early is not None and early.name:
        try:
            resolve_stopper_settings(spec)
        except SpecError as exc:
            core.extend(exc.issues)
    if not is_nas:
        _algorithm_rules(spec, c)

    translate = _translator(template.primary_container_name, param_index, nas_index)
    seen: set[tuple[str, str]] = set()
    unique: list[SpecIssue] = []
    for issue in [*c.issues, *(SpecIssue(translate(i.path), i.message) for i in core)]:
        if (issue.path, issue.message) not in seen:
            seen.add((issue.path, issue.message))
            unique.append(issue)
    if unique:
        raise SpecError(unique)
    return spec
