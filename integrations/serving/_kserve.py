"""KServe ``InferenceService`` manifests for a trial's saved model, validated offline.

``automl export NAME --format kserve`` writes a ``serving.kserve.io/v1beta1`` InferenceService
whose predictor is ``model.modelFormat.name: sklearn`` (KServe's sklearnserver: joblib/pickle
files) or ``pytorch`` (TorchServe), with ``storageUri`` pointing at the trial's artifact
directory. The default URI assumes the runs directory is shared with the cluster as a
PersistentVolumeClaim named ``automl-runs`` (``pvc://automl-runs/<experiment>/<trial>/
artifacts``); pass ``storage_uri`` for anything else (``s3://bucket/path``, ``gs://...``).

The manifest is checked before it is written: against a vendored subset of KServe's CRD schema
(``schemas/inferenceservice-v1beta1.json``, unknown fields refused), against rules KServe's
admission webhook applies (name format, replicas, storage URI schemes, a traffic percent in
0-100), and each container against the Kubernetes schema with ``kubernetes-validate``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automl.errors import AutoMLError, SpecError, SpecIssue

__all__ = [
    "DEFAULT_PVC",
    "KUBERNETES_VERSION",
    "dump_yaml",
    "inference_service",
    "inference_service_for",
    "isvc_name",
    "validate_inference_service",
]

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
DEFAULT_PVC = "automl-runs"
KUBERNETES_VERSION = "1.37.0"
# KServe's defaults for a predictor container (inferenceservice ConfigMap, "predictors").
DEFAULT_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "1", "memory": "2Gi"},
}
# pkg/apis/serving/v1beta1: IsvcNameFmt, SupportedStorageURIPrefixList.
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_STORAGE_PREFIXES = (
    "gs://",
    "s3://",
    "pvc://",
    "file://",
    "https://",
    "http://",
    "hdfs://",
    "webhdfs://",
    "oci://",
    "hf://",
)
_FORMATS = {"sklearn": "sklearn", "pickle": "sklearn", "torch": "pytorch"}
_SKLEARN_FILES = (".joblib", ".pkl", ".pickle")  # what KServe's sklearnserver loads
_SCHEMA = Path(__file__).parent / "schemas" / "inferenceservice-v1beta1.json"


def isvc_name(text: str) -> str:
    """A valid InferenceService name from an experiment name (lowercase, '-', <= 63 chars)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:63].rstrip("-")
    return name or "automl-model"


def inference_service(
    name: str,
    *,
    model_format: str,
    storage_uri: str,
    namespace: str | None = None,
    protocol: str | None = None,
    runtime: str | None = None,
    resources: Mapping[str, Any] | None = None,
    canary_traffic_percent: int | None = None,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    transformer_image: str | None = None,
    transformer_args: list[str] | None = None,
    explainer_image: str | None = None,
    explainer_args: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An InferenceService manifest (not yet validated).

    Args:
        name: metadata.name.
        model_format: ``sklearn`` or ``pytorch`` (``spec.predictor.model.modelFormat.name``).
        storage_uri: Where the model directory is (``pvc://``, ``s3://``, ``gs://``...).
        namespace: metadata.namespace, if any.
        protocol: ``v1`` or ``v2`` (``protocolVersion``; KServe's default is v1).
        runtime: A ServingRuntime name to pin.
        resources: Predictor container resources (KServe's defaults if None).
        canary_traffic_percent: Share of traffic for this (new) revision when it updates an
            existing InferenceService; the rest stays on the last ready revision.
        min_replicas: Predictor minReplicas (0 scales to zero).
        max_replicas: Predictor maxReplicas.
        transformer_image: Image of a transformer container (KServe custom transformer).
        transformer_args: Its arguments.
        explainer_image: Image of an explainer container.
        explainer_args: Its arguments.
        labels: metadata.labels.
        annotations: metadata.annotations.
    """
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    model: dict[str, Any] = {"modelFormat": {"name": model_format}}
    if runtime:
        model["runtime"] = runtime
    if protocol:
        model["protocolVersion"] = protocol
    model["storageUri"] = storage_uri
    model["resources"] = json.loads(json.dumps(resources or DEFAULT_RESOURCES))
    predictor: dict[str, Any] = {}
    if min_replicas is not None:
        predictor["minReplicas"] = min_replicas
    if max_replicas is not None:
        predictor["maxReplicas"] = max_replicas
    if canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = canary_traffic_percent
    predictor["model"] = model
    spec: dict[str, Any] = {"predictor": predictor}
    for role, image, args in (
        ("transformer", transformer_image, transformer_args),
        ("explainer", explainer_image, explainer_args),
    ):
        if image:
            container: dict[str, Any] = {"name": "kserve-container", "image": image}
            if args:
                container["args"] = list(args)
            spec[role] = {"containers": [container]}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def inference_service_for(
    client: Any,
    experiment: str,
    *,
    trial: int | str | None = None,
    model: str = "model",
    storage_uri: str | None = None,
    pvc: str = DEFAULT_PVC,
    name: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The validated InferenceService serving an experiment's best (or ``trial``) model.

    Args:
        client: An :class:`automl.Client`.
        experiment: Experiment name.
        trial: Trial number or id (default: the best trial).
        model: Saved model name.
        storage_uri: Model directory URI (default ``pvc://<pvc>/<experiment>/<trial id>/
            artifacts``: the runs directory shared as that claim).
        pvc: Claim name for the default URI.
        name: InferenceService name (default: from the experiment name).
        **options: More :func:`inference_service` arguments (protocol, namespace, ...).

    Raises:
        NotFoundError: No such experiment/trial/model.
        AutoMLError: A model KServe cannot serve as saved.
        SpecError: The manifest breaks the schema (names the field).
    """
    from integrations.serving._server import resolve_model

    src = resolve_model(client, experiment, trial, model)
    fmt = str(src.meta.get("format"))
    if fmt not in _FORMATS:
        raise AutoMLError(f"model format {fmt!r} has no KServe runtime; formats: {list(_FORMATS)}")
    if _FORMATS[fmt] == "sklearn" and src.artifact_dir.is_dir():
        files = sorted(p.name for p in src.artifact_dir.iterdir() if p.suffix in _SKLEARN_FILES)
        if len(files) > 1:
            raise AutoMLError(
                f"{src.artifact_dir} holds {len(files)} model files ({', '.join(files)}); "
                "KServe's sklearn runtime loads exactly one per storageUri: keep one model "
                "per trial, or copy it to its own directory and pass storage_uri"
            )
    uri = storage_uri or f"pvc://{pvc}/{src.experiment}/{src.trial_id}/artifacts"
    annotations = {
        "automl.dev/experiment": src.experiment,
        "automl.dev/trial": src.trial_id,
        "automl.dev/model-file": str(src.meta.get("file", "")),
        "automl.dev/artifact-dir": str(src.artifact_dir.absolute()),
    }
    annotations.update(options.pop("annotations", None) or {})
    manifest = inference_service(
        name or isvc_name(src.experiment),
        model_format=_FORMATS[fmt],
        storage_uri=uri,
        annotations=annotations,
        **options,
    )
    validate_inference_service(manifest)
    return manifest


# -- validation --------------------------------------------------------------------------------
def _strict(schema: Any) -> Any:
    """Unknown fields refused where the schema lists properties (as ``kubectl --validate``)."""
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


@functools.cache
def _schema() -> dict[str, Any]:
    raw = json.loads(_SCHEMA.read_text(encoding="utf-8"))
    raw.pop("$comment", None)
    return dict(_strict(raw))


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _webhook_rules(m: Mapping[str, Any]) -> list[SpecIssue]:
    issues: list[SpecIssue] = []
    meta = m.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 63:
        issues.append(
            SpecIssue(
                "metadata.name",
                "an InferenceService name must be 1-63 lower case alphanumeric characters or "
                f"'-', starting with a letter and ending with an alphanumeric; got {name!r}",
            )
        )
    spec = m.get("spec") or {}
    for role in ("predictor", "transformer", "explainer"):
        comp = spec.get(role) if isinstance(spec, Mapping) else None
        if not isinstance(comp, Mapping):
            continue
        lo, hi = comp.get("minReplicas"), comp.get("maxReplicas")
        if isinstance(lo, int) and lo < 0:
            issues.append(SpecIssue(f"spec.{role}.minReplicas", f"cannot be < 0; got {lo}"))
        if isinstance(hi, int) and hi < 0:
            issues.append(SpecIssue(f"spec.{role}.maxReplicas", f"cannot be < 0; got {hi}"))
        if isinstance(lo, int) and isinstance(hi, int) and hi != 0 and lo > hi:
            issues.append(
                SpecIssue(
                    f"spec.{role}.minReplicas",
                    f"cannot be greater than maxReplicas ({hi}); got {lo}",
                )
            )
        pct = comp.get("canaryTrafficPercent")
        if isinstance(pct, int) and not 0 <= pct <= 100:
            issues.append(
                SpecIssue(f"spec.{role}.canaryTrafficPercent", f"must be in 0-100; got {pct}")
            )
        model = comp.get("model")
        uri = model.get("storageUri") if isinstance(model, Mapping) else None
        if isinstance(uri, str) and not (uri.startswith(_STORAGE_PREFIXES) or uri.startswith("/")):
            issues.append(
                SpecIssue(
                    f"spec.{role}.model.storageUri",
                    f"must start with one of {list(_STORAGE_PREFIXES)} or be an absolute path; "
                    f"got {uri!r}",
                )
            )
    return issues


def _pod_check(m: Mapping[str, Any]) -> list[SpecIssue]:
    """Each component's containers (and the predictor's model container) as a core/v1 pod."""
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - the kubernetes extra; the CRD check still ran
        return []
    issues = []
    spec = m.get("spec") or {}
    for role in ("predictor", "transformer", "explainer"):
        comp = spec.get(role)
        if not isinstance(comp, Mapping):
            continue
        containers = [dict(c) for c in comp.get("containers") or [] if isinstance(c, Mapping)]
        model = comp.get("model")
        if isinstance(model, Mapping):
            fields = {"args", "command", "env", "image", "imagePullPolicy", "ports", "resources"}
            c = {k: v for k, v in model.items() if k in fields}
            c["name"] = str(model.get("name") or "kserve-container")
            containers.append(c)
        if not containers:
            continue
        pod = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": role},
            "template": {"spec": {"containers": containers}},
        }
        try:
            kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = [str(p) for p in getattr(exc, "absolute_path", ())][3:]
            issues.append(SpecIssue(".".join([f"spec.{role}", *where]), exc.message))
    return issues


def validate_inference_service(manifest: Mapping[str, Any]) -> None:
    """Check an InferenceService manifest offline (see the module docs).

    Raises:
        SpecError: Every problem found, each with its field path.
    """
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - comes with kubernetes-validate
        raise ImportError(
            "validating KServe manifests needs jsonschema: pip install 'automl[kubernetes]'"
        ) from exc

    issues: list[SpecIssue] = []
    if manifest.get("apiVersion") != API_VERSION:
        issues.append(
            SpecIssue("apiVersion", f"must be {API_VERSION}; got {manifest.get('apiVersion')!r}")
        )
    if manifest.get("kind") != KIND:
        issues.append(SpecIssue("kind", f"must be {KIND}; got {manifest.get('kind')!r}"))
    validator = jsonschema.Draft7Validator(_schema())
    for e in sorted(validator.iter_errors(dict(manifest)), key=lambda e: list(map(str, e.path))):
        issues.append(SpecIssue(_path(e.absolute_path), e.message))
    issues += _webhook_rules(manifest)
    if not issues:  # a pod check on a broken manifest would repeat the same problems
        issues += _pod_check(manifest)
    if issues:
        raise SpecError(issues)


def dump_yaml(manifest: Mapping[str, Any]) -> str:
    """The manifest as YAML, fields in the order written."""
    import yaml

    return str(yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False))
