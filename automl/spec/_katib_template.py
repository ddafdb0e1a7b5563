"""Katib's trial template and metrics collector: read, defaulted per kind, checked.

Split from :mod:`automl.spec._katib` (the Experiment document as a whole). The trial
template's ``trialSpec`` or ``configMap``, ``trialParameters`` (Katib's webhook rules), the
primary container's command (and whether it runs a shell script), ``primaryPodLabels`` and
success/failure conditions defaulted per kind, the resources a trial asks for, and every
metrics-collector kind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from automl.core import (
    CollectorKind,
    MetricsCollectorSpec,
    TrialParameter,
    TrialTemplate,
    shell_script_index,
)
from automl.errors import SpecError, SpecIssue
from automl.spec._common import existing
from automl.spec._katib_model import (
    _DEFAULT_FILE_PATH,
    _DEFAULT_PROMETHEUS,
    _DEFAULT_TFEVENT_DIR,
    _KINDS,
    _META_REF,
    _TRIAL_PARAM_RE,
    _TRIAL_SPEC_RE,
    DEFAULT_CONDITIONS,
    DEFAULT_POD_LABELS,
    _device_blocker,
    _is_argo,
    _is_tekton,
    _MetricsCollectorSpec,
    _Source,
    _TrialTemplate,
    find_primary_container,
)

__all__ = ["trial_resources"]


class _Checker:
    """Collects Katib-rule problems while the spec is built."""

    def __init__(self) -> None:
        self.issues: list[SpecIssue] = []

    def add(self, path: str, message: str) -> None:
        self.issues.append(SpecIssue(path, message))


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
            where = f"{base}.trialSpec (container {tt.primaryContainerName!r})"
            cmd = _strings(container.get("command"), f"{where}.command", c)
            argv = cmd + _strings(container.get("args"), f"{where}.args", c)
            if argv:
                command = tuple(argv)
                shell_index = shell_script_index(argv)
            blocker = blocker or _device_blocker(m)
            if blocker is None and kind == "MPIJob":
                blocker = (
                    "MPIJob trials run mpirun in a launcher pod that starts the training on the "
                    "worker pods (over the pods' own network); they need executor: kubernetes"
                )
            if blocker is None and not cmd:
                blocker = (
                    f"container {tt.primaryContainerName!r} sets "
                    + ("args but no command" if argv else "neither command nor args")
                    + ", so it runs the image's entrypoint, which is unknown here; it needs "
                    "executor: kubernetes"
                )
            raw_dir = container.get("workingDir")
            if raw_dir is not None and not isinstance(raw_dir, str):
                c.add(f"{where}.workingDir", f"must be a path; got {raw_dir!r}")
            workdir = raw_dir if isinstance(raw_dir, str) and "\x00" not in raw_dir else None
            raw_env = container.get("env") or []
            if not isinstance(raw_env, list):
                c.add(f"{where}.env", f"must be a list of {{name, value}}; got {raw_env!r}")
                raw_env = []
            for e in raw_env:
                if isinstance(e, dict) and "name" in e and "value" in e:
                    env[str(e["name"])] = str(e["value"])
    return TrialTemplate(
        command=command,
        workdir=str(
            (existing(base_dir, workdir, "dir") if workdir else None) or base_dir.resolve()
        ),
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


def _strings(value: Any, path: str, c: _Checker) -> list[str]:
    """A container's ``command`` or ``args``: a list of strings (numbers are taken as text)."""
    if value is None:
        return []
    if not isinstance(value, list) or any(isinstance(a, (dict, list)) for a in value):
        c.add(path, f"must be a list of strings; got {value!r}")
        return []
    return [str(a) for a in value]


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
    ``elasticPolicy.nProcPerNode``) gives ``processes_per_worker``; a TrainJob's
    ``trainer.numNodes`` and ``trainer.numProcPerNode`` give the same. Values Kubernetes would
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
    trainer = spec.get("trainer") if isinstance(spec, dict) else None
    if manifest.get("kind") == "TrainJob" and isinstance(trainer, dict):
        # Kubeflow Trainer: numNodes nodes of numProcPerNode processes each (torch-distributed).
        for key, field in (("numNodes", "workers"), ("numProcPerNode", "processes_per_worker")):
            value = trainer.get(key)
            if value is not None and str(value).isdigit() and int(str(value)) >= 1:
                out[field] = int(str(value))
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
