"""Kubernetes manifests of trials: render a Job, a Kubeflow PyTorchJob or a Katib trialSpec.

* A native command trial becomes a ``batch/v1`` Job (one pod, ``restartPolicy: Never``,
  ``backoffLimit: 0``) running ``executor.image`` with the rendered argv as the container's
  ``command`` (no shell), or, when ``trial.resources`` asks for ``workers > 1`` or
  ``processes_per_worker > 1``, a ``kubeflow.org/v1`` PyTorchJob (Master with 1 replica, Worker
  with ``workers - 1``, ``nprocPerNode``, container ``pytorch``, ``restartPolicy: OnFailure``).
* A Katib trial is its ``trialSpec`` as written, with ``${trialParameters.x}`` and
  ``${trialSpec.*}`` substituted in every string, ``metadata.name``/``namespace`` set, and the
  trial's labels added to the object and to every pod template in it, and the trial's
  environment added to the primary container (as Katib's pod webhook adds ``KATIB_TRIAL_NAME``).

:func:`validate_manifest` checks a rendered manifest offline: core kinds against the Kubernetes
OpenAPI schema (``kubernetes-validate``, strict: unknown fields are errors), a PyTorchJob against
the training-operator CRD's schema (``trials/schemas/pytorchjob-v1.json``, made strict the same
way) and each of its pod templates against the Kubernetes schema.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl._report import REPORT_STDOUT_ENV, TRIAL_ENV
from automl.core import ExperimentSpec, ParamValue, TrialTemplate, shell_script_index
from automl.errors import SpecError
from trials._base import TrialRun
from trials._template import render_command, render_script, render_text

__all__ = [
    "KUBERNETES_VERSION",
    "LABEL_ATTEMPT",
    "LABEL_EXPERIMENT",
    "LABEL_KATIB_EXPERIMENT",
    "LABEL_KATIB_TRIAL",
    "LABEL_MANAGED_BY",
    "LABEL_TRIAL",
    "ManifestError",
    "Resource",
    "cpu_quantity",
    "job_name",
    "label_value",
    "pod_templates",
    "render_manifest",
    "resource_of",
    "trial_labels",
    "validate_manifest",
]

#: The Kubernetes version whose OpenAPI schema rendered manifests are validated against.
KUBERNETES_VERSION = "1.37.0"
LABEL_KATIB_EXPERIMENT = "katib.kubeflow.org/experiment"
LABEL_KATIB_TRIAL = "katib.kubeflow.org/trial"
LABEL_EXPERIMENT = "automl.dev/experiment"
LABEL_TRIAL = "automl.dev/trial"
LABEL_ATTEMPT = "automl.dev/attempt"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "automl"
#: Container name of a native single-pod trial (PyTorchJob containers must be ``pytorch``).
NATIVE_CONTAINER = "trial"
PYTORCH_CONTAINER = "pytorch"
GPU_RESOURCE = "nvidia.com/gpu"
_SCHEMAS = Path(__file__).parent / "schemas"
_K8S_QUANTITY = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class ManifestError(ValueError):
    """A rendered manifest does not validate against its schema.

    Attributes:
        path: Dotted path of the offending field inside the manifest.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


@dataclass(frozen=True, slots=True)
class Resource:
    """Where a kind lives in the API: ``/apis/{group}/{version}/namespaces/{ns}/{plural}``."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        """``group/version`` (just ``version`` for the core group)."""
        return f"{self.group}/{self.version}" if self.group else self.version


_PLURALS = {
    "Job": "jobs",
    "PyTorchJob": "pytorchjobs",
    "TFJob": "tfjobs",
    "XGBoostJob": "xgboostjobs",
    "MPIJob": "mpijobs",
    "JAXJob": "jaxjobs",
    "PaddleJob": "paddlejobs",
    "TrainJob": "trainjobs",
    "Workflow": "workflows",
    "PipelineRun": "pipelineruns",
}


def resource_of(manifest: Mapping[str, Any]) -> Resource:
    """The API resource of a manifest (from ``apiVersion`` and ``kind``).

    Raises:
        ManifestError: No ``apiVersion``/``kind``, or a core-group (``v1``) kind, which no trial
            uses.
    """
    api_version = str(manifest.get("apiVersion") or "")
    kind = str(manifest.get("kind") or "")
    if not api_version or not kind:
        raise ManifestError("a trial manifest needs apiVersion and kind")
    group, _, version = api_version.rpartition("/")
    if not group:
        raise ManifestError(
            f"kind {kind} ({api_version}) is a core-group object; a trial must be a job "
            "(batch/v1 Job, a Kubeflow training job, an Argo Workflow...)"
        )
    plural = _PLURALS.get(kind, kind.lower() + "s")
    return Resource(group, version, plural, kind)


def label_value(text: str) -> str:
    """``text`` as a valid label value (63 characters at most, alphanumeric at both ends).

    Values that need changing keep a short hash of the original, so two different trials never
    share a value.
    """
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    clean = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[: 63 - 9].strip("-_.")
    return f"{clean}-{digest}" if clean else digest


def job_name(run: TrialRun) -> str:
    """The job's name: the trial id (``-a<attempt>`` after a restart), as a DNS-1123 label.

    Jobs label their pods with their name, so it must also be a valid label value (63).
    """
    base = run.trial_id.lower()
    if run.attempt > 1:
        base = f"{base}-a{run.attempt}"
    name = re.sub(r"[^a-z0-9-]", "-", base).strip("-")
    if name != base or len(name) > 63:
        digest = hashlib.sha1(base.encode()).hexdigest()[:8]
        name = f"{name[: 63 - 9].strip('-')}-{digest}"
    return name


def trial_labels(run: TrialRun) -> dict[str, str]:
    """Labels linking a job and its pods to the experiment and the trial (Katib's and ours)."""
    return {
        LABEL_KATIB_EXPERIMENT: label_value(run.experiment),
        LABEL_KATIB_TRIAL: label_value(run.trial_id),
        LABEL_EXPERIMENT: label_value(run.experiment),
        LABEL_TRIAL: label_value(run.trial_id),
        LABEL_ATTEMPT: str(run.attempt),
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def cpu_quantity(cpu: float) -> str:
    """CPU cores as a Kubernetes quantity: ``2``, ``500m``."""
    if float(cpu).is_integer():
        return str(int(cpu))
    return f"{math.ceil(cpu * 1000)}m"


def _memory_quantity(memory: str, memory_bytes: int | None) -> str:
    # parse_quantity also takes "4GB"; Kubernetes does not, so such values go as bytes.
    text = str(memory).strip()
    return text if _K8S_QUANTITY.match(text) else str(memory_bytes)


def _resources(spec: ExperimentSpec) -> dict[str, Any]:
    """requests/limits for one worker's container (validated; fractional GPUs refused)."""
    r = spec.trial_template.resources
    gpu_resource = spec.executor.settings.get("gpu_resource")
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if r.cpu is not None:
        requests["cpu"] = limits["cpu"] = cpu_quantity(r.cpu)
    if r.memory is not None:
        requests["memory"] = limits["memory"] = _memory_quantity(r.memory, r.memory_bytes)
    if r.gpu > 0:
        if gpu_resource:
            # A shared-GPU resource (time-slicing replica, MIG profile): one unit per fraction.
            limits[str(gpu_resource)] = str(max(1, int(r.gpu)))
        elif not float(r.gpu).is_integer():
            raise SpecError(
                f"a fraction of a GPU ({r.gpu:g}) cannot be requested on Kubernetes, whose "
                f"{GPU_RESOURCE} resource counts whole devices; ask for a whole number, or name "
                "a shared-GPU resource (time-slicing or MIG) in executor.settings.gpu_resource",
                path="trial.resources.gpu"
                if spec.source == "native"
                else "trial_template.resources.gpu",
            )
        else:
            limits[GPU_RESOURCE] = str(int(r.gpu))
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _metadata(
    template: TrialTemplate, name: str, namespace: str
) -> dict[str, str]:  # ${trialSpec.*}
    m = template.manifest or {}
    out = {
        "Name": name,
        "Namespace": namespace,
        "Kind": str(m.get("kind", "Job")),
        "APIVersion": str(m.get("apiVersion", "batch/v1")),
    }
    md = m.get("metadata")
    if isinstance(md, dict):
        for fld, key in (("labels", "Labels"), ("annotations", "Annotations")):
            items = md.get(fld)
            if isinstance(items, dict):
                out.update({f"{key}[{k}]": str(v) for k, v in items.items()})
    return out


def _trial_env(run: TrialRun, extra: Mapping[str, str]) -> list[dict[str, str]]:
    env = dict(extra)
    env.update(
        {
            REPORT_STDOUT_ENV: "1",
            TRIAL_ENV: json.dumps(
                {
                    "id": run.trial_id,
                    "experiment": run.experiment,
                    "number": run.number,
                    "params": dict(run.params),
                }
            ),
            "AUTOML_TRIAL_NAME": run.trial_id,
            "KATIB_TRIAL_NAME": run.trial_id,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return [{"name": k, "value": v} for k, v in env.items()]


def pod_templates(manifest: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every pod template (a mapping whose ``spec`` holds ``containers``) in a manifest."""
    stack: list[Any] = [manifest]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            spec = node.get("spec")
            if isinstance(spec, dict) and isinstance(spec.get("containers"), list):
                yield node
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def _container(
    spec: ExperimentSpec, run: TrialRun, name: str, meta: Mapping[str, str]
) -> dict[str, Any]:
    t = spec.trial_template
    argv, extra_env = render_command(t, run.params, meta)
    container: dict[str, Any] = {
        "name": name,
        "image": str(spec.executor.image),
        "command": argv,
        "env": _trial_env(run, extra_env),
    }
    settings = spec.executor.settings
    if settings.get("image_pull_policy"):
        container["imagePullPolicy"] = str(settings["image_pull_policy"])
    if settings.get("working_dir"):
        container["workingDir"] = str(settings["working_dir"])
    resources = _resources(spec)
    if resources:
        container["resources"] = resources
    return container


def _pod_spec(spec: ExperimentSpec, container: dict[str, Any], restart: str) -> dict[str, Any]:
    settings = spec.executor.settings
    pod: dict[str, Any] = {"restartPolicy": restart, "containers": [container]}
    if settings.get("service_account"):
        pod["serviceAccountName"] = str(settings["service_account"])
    if settings.get("node_selector"):
        pod["nodeSelector"] = {str(k): str(v) for k, v in dict(settings["node_selector"]).items()}
    return pod


def _torchrun(argv: list[str]) -> list[str]:
    """``python script.py ...`` / ``python -m mod ...`` as ``torchrun ...``.

    The training operator passes ``nprocPerNode``, the node count and rank and the master's
    address to torchrun through ``PET_*`` variables, so a plain ``python`` command only needs
    its interpreter swapped for torchrun to start one process per ``processes_per_worker``.
    """
    python = bool(argv) and argv[0].rsplit("/", 1)[-1] in ("python", "python3")
    if python and len(argv) > 1 and (argv[1] == "-m" or not argv[1].startswith("-")):
        return ["torchrun", *argv[1:]]
    return argv


def _native(spec: ExperimentSpec, run: TrialRun, name: str, namespace: str) -> dict[str, Any]:
    t = spec.trial_template
    r = t.resources
    labels = trial_labels(run)
    meta = _metadata(t, name, namespace)
    if not r.distributed:
        container = _container(spec, run, NATIVE_CONTAINER, meta)
        job_spec: dict[str, Any] = {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": _pod_spec(spec, container, "Never"),
            },
        }
        if t.timeout is not None:
            job_spec["activeDeadlineSeconds"] = max(1, math.ceil(t.timeout))
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": job_spec,
        }
    container = _container(spec, run, PYTORCH_CONTAINER, meta)
    if r.processes_per_worker > 1:
        container["command"] = _torchrun(container["command"])
    replicas: dict[str, Any] = {}
    for role, count in (("Master", 1), ("Worker", r.workers - 1)):
        if count < 1:
            continue
        replicas[role] = {
            "replicas": count,
            "restartPolicy": "OnFailure",
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": _pod_spec(spec, copy.deepcopy(container), "OnFailure"),
            },
        }
    run_policy: dict[str, Any] = {"cleanPodPolicy": "None"}
    if t.timeout is not None:
        run_policy["activeDeadlineSeconds"] = max(1, math.ceil(t.timeout))
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "nprocPerNode": str(r.processes_per_worker),
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": replicas,
        },
    }


def _substitute(
    node: Any, template: TrialTemplate, params: Mapping[str, ParamValue], meta: Mapping[str, str]
) -> Any:
    if isinstance(node, str):
        return render_text(node, template, params, meta)
    if isinstance(node, dict):
        return {
            _substitute(k, template, params, meta): _substitute(v, template, params, meta)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_substitute(v, template, params, meta) for v in node]
    return node


def _katib(
    spec: ExperimentSpec,
    run: TrialRun,
    manifest: Mapping[str, Any],
    name: str,
    namespace: str,
) -> dict[str, Any]:
    t = spec.trial_template
    meta = _metadata(t, name, namespace)
    raw = copy.deepcopy(dict(manifest))
    # A container that runs a shell script gets its values as environment variables that the
    # script references (trials._template.render_script): substituted into the script's text,
    # a value would be shell code. The script is rewritten before the manifest's other
    # placeholders are substituted, and the variables are added after, so no value is
    # substituted twice.
    shell_env: list[dict[str, str]] = []
    for pod in pod_templates(raw):
        for c in pod["spec"]["containers"]:
            values: dict[str, str] = {}
            if isinstance(c, dict):
                argv = [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
                at = shell_script_index(argv)
                if at is not None:
                    script, values = render_script(argv[at], t, run.params, meta)
                    n_cmd = len(c.get("command") or [])
                    key, index = ("command", at) if at < n_cmd else ("args", at - n_cmd)
                    c[key][index] = script
            shell_env.append(values)
    out: dict[str, Any] = _substitute(raw, t, run.params, meta)
    k = 0
    for pod in pod_templates(out):
        for c in pod["spec"]["containers"]:
            values = shell_env[k] if k < len(shell_env) else {}
            k += 1
            if values and isinstance(c, dict):
                c["env"] = [
                    *(c.get("env") or []),
                    *({"name": n, "value": v} for n, v in values.items()),
                ]
    labels = trial_labels(run)
    md = dict(out.get("metadata") or {})
    md["name"] = name
    md["namespace"] = namespace
    md["labels"] = {**(md.get("labels") or {}), **labels}
    out["metadata"] = md
    for pod in pod_templates(out):
        pmd = pod.setdefault("metadata", {})
        pmd["labels"] = {**(pmd.get("labels") or {}), **labels}
        for c in pod["spec"]["containers"]:
            if isinstance(c, dict) and c.get("name") == t.primary_container_name:
                given = {e.get("name") for e in c.get("env") or [] if isinstance(e, dict)}
                add = [e for e in _trial_env(run, {}) if e["name"] not in given]
                c["env"] = [*(c.get("env") or []), *add]
    return out


def render_manifest(
    spec: ExperimentSpec,
    run: TrialRun,
    namespace: str,
    manifest: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest that runs one trial.

    Args:
        spec: The experiment.
        run: The trial.
        namespace: Namespace the job goes to.
        manifest: The Katib trialSpec (default: ``spec.trial_template.manifest``; a template
            read from a ConfigMap is passed here).

    Raises:
        SpecError: A native trial without ``executor.image``, or a fractional GPU.
    """
    name = job_name(run)
    manifest = manifest if manifest is not None else spec.trial_template.manifest
    if manifest is not None:
        return _katib(spec, run, manifest, name, namespace)
    if not spec.executor.image:
        raise SpecError(
            "is required for a command trial on Kubernetes: the command runs inside this "
            "container image; got none",
            path="executor.image",
        )
    return _native(spec, run, name, namespace)


# -- validation -----------------------------------------------------------------------------
@functools.cache
def _pytorchjob_schema() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((_SCHEMAS / "pytorchjob-v1.json").read_text())
    strict: dict[str, Any] = _strict(raw)
    return strict


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused, as ``kubernetes-validate --strict`` does.

    An API server prunes unknown fields of a CRD silently; a typo in a rendered manifest
    should fail here instead. Open objects (no ``properties``, or preserving unknown fields)
    stay open.
    """
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _where(error: Any, prefix: str = "") -> str:
    parts = [str(p) for p in getattr(error, "absolute_path", ())]
    return ".".join([prefix, *parts] if prefix else parts)


def _kubernetes_validate(doc: Mapping[str, Any], prefix: str = "") -> None:
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - an extra of automl[kubernetes]
        raise ImportError(
            "validating manifests needs kubernetes-validate: pip install 'automl[kubernetes]'"
        ) from exc
    try:
        kubernetes_validate.validate(dict(doc), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise ManifestError(exc.message, _where(exc, prefix)) from None


def validate_manifest(manifest: Mapping[str, Any]) -> bool:
    """Validate a rendered trial manifest offline.

    Core kinds (``batch/v1`` Job and the rest of the Kubernetes API) are checked against the
    Kubernetes OpenAPI schema of :data:`KUBERNETES_VERSION`; a PyTorchJob against the
    training-operator CRD schema, and each of its pod templates against the Kubernetes schema.

    Returns:
        True when a schema checked the manifest; False for kinds without a schema here
        (other custom resources), which are sent as they are.

    Raises:
        ManifestError: The manifest breaks its schema; names the field.
    """
    api_version = str(manifest.get("apiVersion") or "")
    kind = manifest.get("kind")
    if kind == "PyTorchJob" and api_version == "kubeflow.org/v1":
        import jsonschema  # type: ignore[import-untyped]

        validator = jsonschema.Draft7Validator(_pytorchjob_schema())
        errors = sorted(validator.iter_errors(dict(manifest)), key=lambda e: list(e.path))
        if errors:
            raise ManifestError(errors[0].message, _where(errors[0]))
        specs = manifest["spec"]["pytorchReplicaSpecs"]
        for role, replica in specs.items():
            _kubernetes_validate(
                {
                    "apiVersion": "v1",
                    "kind": "PodTemplate",
                    "metadata": {"name": "trial"},
                    "template": replica.get("template") or {},
                },
                prefix=f"spec.pytorchReplicaSpecs.{role}",
            )
        return True
    group = api_version.rpartition("/")[0]
    if not group or group.endswith(".k8s.io") or "." not in group:
        _kubernetes_validate(manifest)
        return True
    return False
