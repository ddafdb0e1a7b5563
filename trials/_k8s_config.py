"""Set-up of the Kubernetes executor: settings, the trial kind, the kube-config, the probe.

Here live the known ``executor.settings`` (:data:`SETTINGS`), Katib's default conditions per
kind (:data:`DEFAULT_CONDITIONS`), the import of the optional ``kubernetes`` client, and
:class:`_K8sSetup`, the part of :class:`trials._kubernetes.KubernetesExecutor` that checks the
spec, connects to the API server, reads a ConfigMap trial template and renders a probe trial,
so that a bad spec fails before any trial runs.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from automl.core import CollectorKind, ExperimentSpec, ParameterType, ParamValue
from automl.errors import SpecError
from trials._base import TrialRun
from trials._gjson import GJSONError, compile_path
from trials._gjson import Path as GPath
from trials._k8s_base import _K8sBase, _short
from trials._manifests import ManifestError, render_manifest, resource_of, validate_manifest
from trials._metrics import TextMetricParser

_JOB_CONDITIONS = (
    'status.conditions.#(type=="Complete")#|#(status=="True")#',
    'status.conditions.#(type=="Failed")#|#(status=="True")#',
)
_KUBEFLOW_CONDITIONS = (
    'status.conditions.#(type=="Succeeded")#|#(status=="True")#',
    'status.conditions.#(type=="Failed")#|#(status=="True")#',
)
_KUBEFLOW_KINDS = ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "JAXJob", "PaddleJob")
#: Katib's defaults per kind (the Katib front door fills them in; native trials need them here).
DEFAULT_CONDITIONS: dict[str, tuple[str, str]] = {
    "Job": _JOB_CONDITIONS,
    "TrainJob": _JOB_CONDITIONS,
    **{k: _KUBEFLOW_CONDITIONS for k in _KUBEFLOW_KINDS},
}
_DEFAULT_POD_LABELS = {k: {"training.kubeflow.org/job-role": "master"} for k in _KUBEFLOW_KINDS}
#: executor.settings keys and what they must be.
SETTINGS = {
    "gpu_resource": "a resource name such as nvidia.com/gpu.shared or nvidia.com/mig-1g.10gb",
    "service_account": "a service account name",
    "image_pull_policy": "Always, IfNotPresent or Never",
    "node_selector": "a mapping of node labels",
    "working_dir": "the container's working directory",
    "propagation": "Background or Foreground",
    "poll_interval": "seconds between checks of trial timeouts and waiting log readers (> 0)",
    "watch_timeout": "seconds a watch request stays open before it is renewed by a re-list (> 0)",
    "pod_list_after": "seconds before a trial with no watched pod lists its pods itself (> 0)",
    "connect_timeout": "seconds to wait for the API server at start (> 0)",
    "log_drain_timeout": "seconds to wait for the end of a finished trial's log (>= 0)",
}
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
#: Back-off after a failed list or watch: doubling from the first, capped at the second (s).
_IN_CLUSTER_NS = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _import_kubernetes() -> Any:
    try:
        import kubernetes  # type: ignore[import-untyped]
    except ImportError as exc:
        raise SpecError(
            "executor: kubernetes needs the kubernetes client: pip install 'automl[kubernetes]'",
            path="executor.kind",
        ) from exc
    return kubernetes


def _sample_params(spec: ExperimentSpec) -> dict[str, ParamValue]:
    """One value per parameter, to render and validate a trial before any runs."""
    out: dict[str, ParamValue] = {}
    for p in spec.parameters:
        if p.values:
            out[p.name] = p.values[0]
        elif p.type is ParameterType.INT:
            out[p.name] = int(p.min or 0)
        else:
            out[p.name] = float(p.min or 0.0)
    return out


class _K8sSetup(_K8sBase):
    """Checks the spec, connects, and prepares conditions, labels and the metric parser."""

    def _setup_conditions(self) -> None:
        """Conditions, primary pod labels, container and metric parser for the trial kind."""
        spec = self._spec
        kind = str((self._probe_manifest or {}).get("kind", "Job"))
        success, failure = DEFAULT_CONDITIONS.get(kind, (None, None))
        self._success = self._condition(self._template.success_condition or success, "success")
        self._failure = self._condition(self._template.failure_condition or failure, "failure")
        self._pod_labels = dict(
            self._template.primary_pod_labels or _DEFAULT_POD_LABELS.get(kind, {})
        )
        self._container_name = self._primary_container_name(kind)
        mc = spec.metrics_collector
        self._parse_stdout = mc.kind is CollectorKind.STDOUT
        self._parser = TextMetricParser(spec.objective.metrics, mc.filters)

    # -- set-up ------------------------------------------------------------------------------
    def _check_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(settings)
        for key, value in out.items():
            path = f"executor.settings.{key}"
            if key not in SETTINGS:
                raise SpecError(
                    f"is not a Kubernetes executor setting; known: {', '.join(sorted(SETTINGS))}",
                    path=path,
                )
            bad = False
            if key in ("poll_interval", "connect_timeout", "watch_timeout", "pod_list_after"):
                bad = isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
            elif key == "log_drain_timeout":
                bad = isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            elif key == "propagation":
                bad = value not in ("Background", "Foreground")
            elif key == "image_pull_policy":
                bad = value not in _PULL_POLICIES
            elif key == "node_selector":
                bad = not isinstance(value, Mapping)
            else:
                bad = not isinstance(value, str) or not value
            if bad:
                raise SpecError(f"must be {SETTINGS[key]}; got {value!r}", path=path)
        return out

    def _check_trial_kind(self) -> None:
        t = self._template
        if t.notebook is not None:
            raise SpecError(
                "notebook trials run locally (papermill); on Kubernetes give the trial a "
                "command that runs the notebook inside executor.image",
                path="trial_template.notebook",
            )
        if t.command is None and t.manifest is None and t.config_map is None:
            raise SpecError(
                "a Python function cannot run on Kubernetes (it lives in this process); give "
                "the trial a command that runs inside executor.image",
                path="trial_template.function",
            )
        mc = self._spec.metrics_collector
        if mc.kind not in (CollectorKind.STDOUT, CollectorKind.PUSH):
            raise SpecError(
                f"the {mc.kind.value} collector is not supported by executor: kubernetes "
                "(it reads metrics from the primary container's log: use StdOut, or Push with "
                "automl.report)",
                path="metrics_collector.kind",
            )

    def _kubeconfig_path(self) -> str | None:
        ex = self._spec.executor
        if ex.kubeconfig:
            path = os.path.expanduser(ex.kubeconfig)
            if not os.path.isfile(path):
                raise SpecError(
                    f"no such kube-config file: {ex.kubeconfig}", path="executor.kubeconfig"
                )
            return path
        env = os.environ.get("KUBECONFIG")
        if env:
            for p in env.split(os.pathsep):
                if p and os.path.isfile(os.path.expanduser(p)):
                    return os.path.expanduser(p)
        home = os.path.expanduser("~/.kube/config")
        return home if os.path.isfile(home) else None

    def _connect(self, kubernetes: Any) -> tuple[Any, str, str]:
        """An API client, the kube-config's namespace, and the server's address.

        The server must answer ``/version`` within ``connect_timeout`` seconds (default 5).
        """
        ex = self._spec.executor
        client, config = kubernetes.client, kubernetes.config
        cfg = client.Configuration()
        namespace = "default"
        path = self._kubeconfig_path()
        if path is not None:
            try:
                contexts, active = config.list_kube_config_contexts(config_file=path)
            except Exception as exc:
                raise SpecError(
                    f"cannot read the kube-config {path}: {exc}", path="executor.kubeconfig"
                ) from exc
            names = [c.get("name") for c in contexts or []]
            if ex.context and ex.context not in names:
                raise SpecError(
                    f"context {ex.context!r} is not in the kube-config {path} "
                    f"(contexts: {', '.join(map(str, names)) or 'none'})",
                    path="executor.context",
                )
            chosen = next((c for c in contexts if c.get("name") == ex.context), None) or active
            namespace = str(((chosen or {}).get("context") or {}).get("namespace") or "default")
            try:
                config.load_kube_config(
                    config_file=path, context=ex.context, client_configuration=cfg
                )
            except Exception as exc:
                raise SpecError(
                    f"cannot load the kube-config {path}: {exc}", path="executor.kubeconfig"
                ) from exc
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            try:
                config.load_incluster_config(client_configuration=cfg)
            except Exception as exc:
                raise SpecError(
                    f"no kube-config found and the in-cluster configuration failed: {exc}",
                    path="executor.kubeconfig",
                ) from exc
            with contextlib.suppress(OSError):
                namespace = _IN_CLUSTER_NS.read_text().strip() or namespace
        else:
            raise SpecError(
                "no kube-config found: set executor.kubeconfig, $KUBECONFIG, or create "
                "~/.kube/config (or run the controller inside the cluster)",
                path="executor.kubeconfig",
            )
        host = str(cfg.host)
        probe_cfg = copy.copy(cfg)
        probe_cfg.retries = False  # a bounded start: one try, not urllib3's three
        timeout = float(self._settings.get("connect_timeout", 5.0))
        probe = client.ApiClient(probe_cfg)
        try:
            # Raw content: the reply's fields are not our business, only that it comes.
            client.VersionApi(probe).get_code(_request_timeout=timeout, _preload_content=False)
        except Exception as exc:
            where = path or "the in-cluster configuration"
            raise SpecError(
                f"cannot reach the Kubernetes API server {host} (from {where}) within "
                f"{timeout:g} s: {_short(exc)}",
                path="executor.kubeconfig",
            ) from exc
        finally:
            with contextlib.suppress(Exception):
                probe.close()
        return client.ApiClient(cfg), namespace, host

    def _config_map_template(self) -> dict[str, Any] | None:
        cm = self._template.config_map
        if not cm:
            return None
        name, ns, key = (
            cm.get("configMapName"),
            cm.get("configMapNamespace"),
            cm.get("templatePath"),
        )
        core = self._k8s.client.CoreV1Api(self._api)
        try:
            obj = core.read_namespaced_config_map(name, ns, _request_timeout=10)
            text = (obj.data or {})[key]
            doc = yaml.safe_load(text)
        except KeyError:
            raise SpecError(
                f"ConfigMap {ns}/{name} has no key {key!r}", path="trial_template.config_map"
            ) from None
        except Exception as exc:
            raise SpecError(
                f"cannot read the trial template from ConfigMap {ns}/{name} key {key}: "
                f"{_short(exc)}",
                path="trial_template.config_map",
            ) from exc
        if not isinstance(doc, dict):
            raise SpecError(
                f"ConfigMap {ns}/{name} key {key} is not a YAML mapping",
                path="trial_template.config_map",
            )
        return doc

    def _probe(self) -> None:
        """Render and validate one trial with sample values, so bad specs fail before any run."""
        run = TrialRun(f"{self._spec.name}-probe", self._spec.name, 0, _sample_params(self._spec))
        where = "trial_template.manifest" if self._manifest is not None else "executor"
        ex = self._spec.executor
        namespace = ex.namespace or self._spec.namespace or "default"
        manifest = render_manifest(self._spec, run, namespace, self._manifest)
        try:
            resource_of(manifest)
            validate_manifest(manifest)
        except ManifestError as exc:
            raise SpecError(
                f"the rendered {manifest.get('kind', 'manifest')} is invalid: {exc}", path=where
            ) from exc
        self._probe_manifest = manifest

    def _condition(self, expression: str | None, which: str) -> GPath:
        path = f"trial_template.{which}_condition"
        if not expression:
            kind = (self._probe_manifest or {}).get("kind")
            raise SpecError(
                f"is required for kind {kind!r} (Katib has defaults only for Job, TFJob, "
                "PyTorchJob, XGBoostJob, MPIJob and TrainJob)",
                path=path,
            )
        try:
            return compile_path(expression)
        except GJSONError as exc:
            raise SpecError(
                f"{exc}; got {expression!r} (supported: the GJSON subset of Katib's defaults "
                "and examples, see docs/kubernetes.md)",
                path=path,
            ) from exc

    def _primary_container_name(self, kind: str) -> str | None:
        if self._template.primary_container_name:
            return self._template.primary_container_name
        if self._manifest is None:
            return "pytorch" if kind == "PyTorchJob" else "trial"
        return None
