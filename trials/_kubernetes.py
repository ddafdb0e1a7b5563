"""Kubernetes executor: each trial is a Job, a Kubeflow PyTorchJob or the Katib trialSpec.

Life of one trial (see docs/kubernetes.md):

1. :func:`trials._manifests.render_manifest` renders it; it is validated offline, then created
   in the namespace with labels linking it to the experiment and trial. ``started`` carries
   where it lives, so a later controller can delete it (:meth:`KubernetesExecutor.reap`).
2. A reader follows the primary container's log (pods selected by ``job-name`` /
   ``training.kubeflow.org/job-name`` plus ``primaryPodLabels``), with timestamps so a dropped
   stream resumes without repeating lines; metrics are parsed as they arrive (StdOut filters,
   and ``automl.report`` lines, which pods print because ``AUTOML_REPORT_STDOUT=1``), so early
   stopping sees them while the trial runs. The log is copied to the trial's ``trial.log``.
3. One list-then-watch loop per resource kind the experiment uses (label selector: the
   experiment's label) feeds every job's changes to its trial, and Katib's GJSON
   ``failureCondition`` then ``successCondition`` are evaluated on each event's object; a second
   loop watches the experiment's pods, whose cache the log readers consult (so pod waiting
   reasons such as ``ImagePullBackOff`` need no per-trial request). Once a condition holds and
   the log has been read to its end, the job is deleted (unless ``retain``) and the trial's exit
   event is sent. The status requests are O(1) per experiment, not per trial.

Cancel (early stopping, experiment stop, close) and the trial timeout delete the job at once.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from automl._report import REPORT_LINE_PREFIX
from automl.core import CollectorKind, ExperimentSpec, ParameterType, ParamValue
from automl.errors import SpecError
from trials._base import Executor, ExitStatus, TrialEvent, TrialExit, TrialRun, drain
from trials._gjson import GJSONError, compile_path, condition_holds
from trials._gjson import Path as GPath
from trials._manifests import (
    LABEL_EXPERIMENT,
    LABEL_TRIAL,
    ManifestError,
    Resource,
    label_value,
    render_manifest,
    resource_of,
    validate_manifest,
)
from trials._metrics import MetricLine, TextMetricParser, parse_report_line

__all__ = ["KubernetesExecutor", "reap_kubernetes"]

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
_BACKOFF = (0.5, 30.0)
_TERMINAL_PHASES = ("Succeeded", "Failed", "Gone")
_PODS_KEY = ("", "v1", "pods")
_log = logging.getLogger(__name__)
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


@dataclass
class _Trial:
    run: TrialRun
    name: str
    manifest: dict[str, Any]
    resource: Resource
    workdir: Path
    log: IO[bytes]
    deadline: float | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    created: bool = False
    created_at: float = 0.0  # monotonic time the create call returned
    deleted: bool = False
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    reader_done: threading.Event = field(default_factory=threading.Event)
    outcome: tuple[ExitStatus, str] | None = None
    outcome_at: float = 0.0
    last_ts: dict[str, str] = field(default_factory=dict)  # pod -> last log timestamp read
    read_pods: set[str] = field(default_factory=set)  # pods whose log was read to the end
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    streams: list[Any] = field(default_factory=list)
    pods_listed_at: float = 0.0  # last fallback pod LIST (pods the watch does not see)
    listed_pods: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Watcher:
    """One list-then-watch loop: a job kind's, or the experiment's pods'."""

    what: str
    thread: threading.Thread | None = None
    watch: Any = None
    resp: Any = None  # the open watch response, shut down by close() to unblock the thread


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


class KubernetesExecutor(Executor):
    """Runs each trial as a Kubernetes job through the official client.

    Args:
        spec: The experiment (``spec.executor`` says where: kube-config, context, namespace,
            image, settings).
        runs_dir: Root of per-trial directories (``<runs_dir>/<experiment>/<trial>``), which
            hold the rendered ``manifest.yaml`` and the primary container's ``trial.log``.

    Raises:
        SpecError: Before any trial starts: no kube-config (``executor.kubeconfig``), an unknown
            context (``executor.context``), an unreachable API server (``executor.kubeconfig``),
            a command trial without ``executor.image``, a fractional GPU
            (``trial.resources.gpu``), a condition outside Katib's GJSON subset, a
            collector other than StdOut/Push, an unknown setting, or a manifest that does not
            validate.
    """

    def __init__(self, spec: ExperimentSpec, runs_dir: Path) -> None:
        self._spec = spec
        self._template = spec.trial_template
        self._runs_dir = Path(runs_dir)
        self._settings = self._check_settings(spec.executor.settings)
        self._check_trial_kind()
        self._manifest = self._template.manifest
        if self._template.config_map is None:
            self._probe()  # offline, before any connection: a bad spec fails fast
            self._setup_conditions()
        kubernetes = _import_kubernetes()
        self._k8s = kubernetes
        self._api, self._namespace_default, self.host = self._connect(kubernetes)
        try:
            self.namespace = spec.executor.namespace or spec.namespace or self._namespace_default
            self._custom = kubernetes.client.CustomObjectsApi(self._api)
            self._core = kubernetes.client.CoreV1Api(self._api)
            if self._manifest is None and self._template.config_map is not None:
                self._manifest = self._config_map_template()
                self._probe()
                self._setup_conditions()
        except BaseException:
            with contextlib.suppress(Exception):
                self._api.close()
            raise
        self._events: queue.SimpleQueue[TrialEvent] = queue.SimpleQueue()
        self._trials: dict[str, _Trial] = {}
        self._by_name: dict[tuple[str, str, str], _Trial] = {}  # (group, plural, name)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        # Every object and pod of a trial carries the experiment's label (trial_labels).
        self._experiment_selector = f"{LABEL_EXPERIMENT}={label_value(spec.name)}"
        self._watchers: dict[tuple[str, str, str], _Watcher] = {}  # started by the first submit
        self._pods: dict[str, dict[str, Any]] = {}  # the pod watch's cache, by pod name
        self._pods_cond = threading.Condition()
        # Trial timeouts and log drains: no API request (status comes from the watches).
        self._monitor = threading.Thread(target=self._tick, name="k8s-monitor", daemon=True)
        self._monitor.start()

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

    # -- submit ------------------------------------------------------------------------------
    def submit(self, run: TrialRun) -> None:
        """Render, validate and create the trial's job (in a thread), then follow its log."""
        workdir = self._runs_dir / run.experiment / run.trial_id
        workdir.mkdir(parents=True, exist_ok=True)
        log = open(workdir / "trial.log", "ab")  # noqa: SIM115 - closed when the trial ends
        try:
            manifest = render_manifest(self._spec, run, self.namespace, self._manifest)
            resource = resource_of(manifest)
            validate_manifest(manifest)
        except (SpecError, ManifestError) as exc:
            log.write(f"[automl] cannot render the trial's manifest: {exc}\n".encode())
            log.close()
            self._events.put(TrialEvent(run.trial_id, exit=TrialExit(ExitStatus.FAILED, str(exc))))
            return
        (workdir / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        timeout = self._template.timeout
        t = _Trial(
            run,
            manifest["metadata"]["name"],
            manifest,
            resource,
            workdir,
            log,
            time.monotonic() + timeout if timeout is not None else None,
        )
        with self._lock:
            self._trials[run.trial_id] = t
            self._by_name[(resource.group, resource.plural, t.name)] = t
        self._ensure_watch(resource)
        # Reported before the create call, so a controller that dies right after it still
        # knows which job to delete.
        self._events.put(
            TrialEvent(
                run.trial_id,
                started={
                    "kubernetes": {
                        "name": t.name,
                        "namespace": self.namespace,
                        "apiVersion": resource.api_version,
                        "kind": resource.kind,
                        "plural": resource.plural,
                        "trial": run.trial_id,
                    },
                    "host": self.host,
                },
            )
        )
        threading.Thread(
            target=self._run_trial, args=(t,), name=f"k8s-trial-{run.number}", daemon=True
        ).start()

    def _run_trial(self, t: _Trial) -> None:
        r = t.resource
        if t.cancelled:
            return
        t.log.write(
            f"[automl] creating {r.kind} {self.namespace}/{t.name} on {self.host}\n".encode()
        )
        t.log.flush()
        try:
            self._custom.create_namespaced_custom_object(
                r.group, r.version, self.namespace, r.plural, t.manifest, _request_timeout=30
            )
        except Exception as exc:
            self._finish(t, ExitStatus.FAILED, f"cannot create {r.kind} {t.name}: {_short(exc)}")
            return
        with t.lock:
            t.created = True
            t.created_at = time.monotonic()
            cancelled = t.cancelled
        if cancelled:  # cancelled while the create call was in flight
            self._delete(t)
            return
        try:
            self._follow_logs(t)
        except Exception as exc:  # the trial's end is decided by its job, not by its log
            self._note(t, f"log reader stopped: {_short(exc)}")
        finally:
            t.reader_done.set()
        self._settle(t)

    # -- logs --------------------------------------------------------------------------------
    def _pod_labels_for(self, t: _Trial) -> dict[str, str]:
        by_group = {  # the label each controller puts on the pods of its object
            "argoproj.io": "workflows.argoproj.io/workflow",
            "tekton.dev": "tekton.dev/pipelineRun",
            "trainer.kubeflow.org": "jobset.sigs.k8s.io/jobset-name",
            "kubeflow.org": "training.kubeflow.org/job-name",
        }
        if t.resource.kind == "Job":
            labels = {"job-name": t.name}
        elif t.resource.group in by_group:
            labels = {by_group[t.resource.group]: t.name}
        else:
            labels = {LABEL_TRIAL: label_value(t.run.trial_id)}
        labels.update(self._pod_labels)
        return labels

    def _selector(self, t: _Trial) -> str:
        return ",".join(f"{k}={v}" for k, v in self._pod_labels_for(t).items())

    def _next_pod(self, t: _Trial) -> dict[str, Any] | None:
        """The trial's next pod to read, from the pod watch's cache.

        A pod the watch cannot see (a controller that does not copy the experiment's label to
        its pods) is found by a LIST with the trial's own selector, made only for a trial with
        no watched pod ``pod_list_after`` seconds after its creation, and at most that often.
        """
        want = self._pod_labels_for(t)
        with self._pods_cond:
            pods = {n: p for n, p in self._pods.items() if _labels_match(p, want)}
        if not pods:  # also when the pod watch cannot run (no "watch" permission on pods)
            now = time.monotonic()
            after = float(self._settings.get("pod_list_after", 10.0))
            if now - t.created_at >= after and now - t.pods_listed_at >= after:
                t.pods_listed_at = now
                listed = self._raw_list(
                    functools.partial(self._core.list_namespaced_pod, self.namespace),
                    self._selector(t),
                )
                t.listed_pods = {str(p["metadata"]["name"]): p for p in listed.get("items") or []}
            pods = dict(t.listed_pods)
        ready = [p for n, p in pods.items() if n not in t.read_pods]
        ready.sort(key=lambda p: (str(_meta(p).get("creationTimestamp") or ""), _name(p)))
        return ready[0] if ready else None

    def _pod_phase(self, t: _Trial, name: str) -> str | None:
        """A pod's phase from the watch's cache; ``Gone`` once it no longer exists."""
        with self._pods_cond:
            pod = self._pods.get(name)
        if pod is not None:
            return str((pod.get("status") or {}).get("phase") or "") or None
        if name not in t.listed_pods:
            return "Gone"  # it was in the cache, so the watch saw it deleted
        try:  # a pod only the fallback LIST sees: read it
            fresh = self._core.read_namespaced_pod(name, self.namespace, _request_timeout=30)
            return str(fresh.status.phase) if fresh.status else None
        except self._k8s.client.ApiException as exc:
            if exc.status != 404:
                raise
            return "Gone"

    def _wait_pods(self, timeout: float) -> None:
        """Until the pod cache changes (or a trial ends), at most ``timeout`` seconds."""
        with self._pods_cond:
            self._pods_cond.wait(timeout)

    def _follow_logs(self, t: _Trial) -> None:
        tick = float(self._settings.get("poll_interval", 1.0))
        while not t.done.is_set():
            pod = self._next_pod(t)
            if pod is None or not _container_started(pod):
                if t.outcome is not None:
                    return  # the job ended and no (further) pod has a log to read
                stuck = _stuck(pod)
                if stuck and pod is not None:
                    # The job would wait for ever (its pods are never created or started).
                    self._set_outcome(t, ExitStatus.FAILED, f"pod {_name(pod)}: {stuck}")
                    return
                self._wait_pods(tick)
                continue
            name = _name(pod)
            self._stream(t, name)
            if t.done.is_set():
                return
            phase = self._pod_phase(t, name)
            if phase not in _TERMINAL_PHASES:
                # The log ends when the container does; the pod's new phase may follow it.
                self._wait_pods(tick)
                phase = self._pod_phase(t, name)
            if phase in _TERMINAL_PHASES:
                t.read_pods.add(name)
            elif t.outcome is not None:
                return
            # else: the stream dropped while the container runs: resume it

    def _stream(self, t: _Trial, pod: str) -> None:
        kwargs: dict[str, Any] = {"follow": True, "timestamps": True, "_preload_content": False}
        if self._container_name:
            kwargs["container"] = self._container_name
        try:
            resp = self._core.read_namespaced_pod_log(pod, self.namespace, **kwargs)
        except self._k8s.client.ApiException as exc:
            if exc.status in (400, 404):  # not started yet, or gone
                return
            raise
        with t.lock:
            if t.done.is_set():
                resp.release_conn()
                return
            t.streams.append(resp)
        last = t.last_ts.get(pod, "")
        partial = b""
        try:
            for chunk in resp.stream(4096, decode_content=True):
                lines = (partial + chunk).split(b"\n")
                partial = lines.pop()
                for raw in lines:
                    last = self._line(t, pod, raw, last)
            if partial:
                last = self._line(t, pod, partial, last)
        except Exception as exc:
            # A broken stream (API server restart, network): the caller reopens it while the
            # container runs, and lines already read are skipped by their timestamps.
            if not t.done.is_set():
                self._note(t, f"log stream of pod {pod} broke ({_short(exc)}); reopening")
        finally:
            with t.lock:
                if resp in t.streams:
                    t.streams.remove(resp)
            with contextlib.suppress(Exception):
                resp.release_conn()

    def _line(self, t: _Trial, pod: str, raw: bytes, last: str) -> str:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        ts, sep, rest = text.partition(" ")
        if not sep or not ts[:1].isdigit():
            ts, rest = "", text
        ts = _ts_key(ts) if ts else ""
        if ts and ts <= last:
            return last  # already read before the stream was resumed
        if ts:
            t.last_ts[pod] = ts
        with t.lock:
            if t.done.is_set():
                return ts or last
            t.log.write((rest + "\n").encode())
            t.log.flush()
        t.tail.append(rest)
        parsed: MetricLine | None = None
        if rest.startswith(REPORT_LINE_PREFIX):
            parsed = parse_report_line(rest[len(REPORT_LINE_PREFIX) :])
        elif self._parse_stdout:
            parsed = self._parser.parse(rest)
        if parsed is not None and parsed.values and not t.done.is_set():
            self._events.put(TrialEvent(t.run.trial_id, metrics=parsed.values, step=parsed.step))
        return ts or last

    # -- watch -------------------------------------------------------------------------------
    def _ensure_watch(self, r: Resource) -> None:
        """Start the watch of ``r``'s kind, and of the pods, unless they already run."""
        ns = self.namespace
        OnList = Callable[[list[dict[str, Any]], float], None]
        OnEvent = Callable[[str, dict[str, Any]], None]
        loops: list[tuple[_Watcher, Callable[..., Any], OnList, OnEvent]] = []
        with self._lock:
            if self._closed.is_set():
                return
            key = (r.group, r.version, r.plural)
            if key not in self._watchers:
                w = self._watchers[key] = _Watcher(f"{r.kind} ({r.plural}.{r.group}/{r.version})")
                call: Callable[..., Any] = functools.partial(
                    self._custom.list_namespaced_custom_object, r.group, r.version, ns, r.plural
                )
                on_list: OnList = functools.partial(self._jobs_listed, r)
                on_event: OnEvent = functools.partial(self._job_changed, r)
                loops.append((w, call, on_list, on_event))
            if _PODS_KEY not in self._watchers:
                w = self._watchers[_PODS_KEY] = _Watcher("pods")
                call = functools.partial(self._core.list_namespaced_pod, ns)
                loops.append((w, call, self._pods_listed, self._pod_changed))
        for w, call, on_list, on_event in loops:
            w.thread = threading.Thread(
                target=self._watch_loop,
                args=(w, call, on_list, on_event),
                name=f"k8s-watch-{w.what}",
                daemon=True,
            )
            w.thread.start()

    def _raw_list(self, call: Callable[..., Any], selector: str) -> dict[str, Any]:
        resp = call(label_selector=selector, _request_timeout=30, _preload_content=False)
        try:
            doc = json.loads(resp.data)
        finally:
            with contextlib.suppress(Exception):
                resp.release_conn()
        return doc if isinstance(doc, dict) else {}

    def _watch_loop(
        self,
        w: _Watcher,
        call: Callable[..., Any],
        on_list: Callable[[list[dict[str, Any]], float], None],
        on_event: Callable[[str, dict[str, Any]], None],
    ) -> None:
        """List, then watch from the list's resourceVersion; again when the watch ends.

        A ``410 Gone`` (the resourceVersion expired) re-lists at once; other errors re-list
        after a back-off that doubles up to 30 s. Every list reconciles: each trial's job is
        evaluated on the listed object, so no change is lost between two watches.
        """
        timeout = max(1, int(float(self._settings.get("watch_timeout", 300))))
        failures = 0

        def opened(*args: Any, **kwargs: Any) -> Any:
            resp = call(*args, **kwargs)
            w.resp = resp  # so close() can end a stream that blocks in a read
            return resp

        while not self._closed.is_set():
            try:
                started = time.monotonic()
                listed = self._raw_list(call, self._experiment_selector)
                items = [i for i in listed.get("items") or [] if isinstance(i, dict)]
                rv = str((listed.get("metadata") or {}).get("resourceVersion") or "")
                on_list(items, started)
                failures = 0
                w.watch = self._k8s.watch.Watch(return_type="object")
                kwargs: dict[str, Any] = {
                    "label_selector": self._experiment_selector,
                    "timeout_seconds": timeout,
                    "_request_timeout": (30, timeout + 30),
                }
                if rv:
                    kwargs["resource_version"] = rv
                for event in w.watch.stream(opened, **kwargs):
                    if self._closed.is_set():
                        w.watch.stop()
                        break
                    kind, obj = event.get("type"), event.get("raw_object")
                    if kind in ("ADDED", "MODIFIED", "DELETED") and isinstance(obj, dict):
                        on_event(str(kind), obj)
            except Exception as exc:
                if self._closed.is_set():
                    return
                if getattr(exc, "status", None) == 410:
                    _log.info("kubernetes: the watch of %s expired; re-listing", w.what)
                    continue
                failures += 1
                delay = min(_BACKOFF[1], _BACKOFF[0] * 2 ** (failures - 1))
                _log.warning(
                    "kubernetes: watching %s failed (%s); again in %.1f s",
                    w.what,
                    _short(exc),
                    delay,
                )
                self._closed.wait(delay)
            finally:
                w.resp = None

    def _jobs_listed(self, r: Resource, items: list[dict[str, Any]], started: float) -> None:
        names = set()
        for obj in items:
            names.add(_name(obj))
            self._job_changed(r, "MODIFIED", obj)
        with self._lock:
            trials = [
                t
                for (group, plural, _), t in self._by_name.items()
                if (group, plural) == (r.group, r.plural)
            ]
        for t in trials:
            # Created before the list began, so the list would hold it: someone deleted it.
            if t.created and t.created_at < started and t.name not in names:
                self._job_gone(t)

    def _job_changed(self, r: Resource, kind: str, obj: dict[str, Any]) -> None:
        with self._lock:
            t = self._by_name.get((r.group, r.plural, _name(obj)))
        if t is None or t.done.is_set():
            return
        if kind == "DELETED":
            self._job_gone(t)
            return
        failed, cond = condition_holds(self._failure, obj)
        if failed:
            reason = str((cond or {}).get("reason") or "")
            status = ExitStatus.TIMED_OUT if reason == "DeadlineExceeded" else ExitStatus.FAILED
            self._set_outcome(t, status, _condition_text("failed", cond))
        elif condition_holds(self._success, obj)[0]:
            self._set_outcome(t, ExitStatus.COMPLETED, "")
        self._settle(t)

    def _job_gone(self, t: _Trial) -> None:
        if t.deleted or t.outcome is not None:
            return  # deleted by cancel(), or after its end (a TTL): the trial ends as it would
        r = t.resource
        self._finish(t, ExitStatus.FAILED, f"{r.kind} {t.name} was deleted outside automl")

    def _pods_listed(self, items: list[dict[str, Any]], started: float) -> None:
        with self._pods_cond:
            self._pods = {_name(p): p for p in items}
            self._pods_cond.notify_all()

    def _pod_changed(self, kind: str, obj: dict[str, Any]) -> None:
        with self._pods_cond:
            if kind == "DELETED":
                self._pods.pop(_name(obj), None)
            else:
                self._pods[_name(obj)] = obj
            self._pods_cond.notify_all()

    def _set_outcome(self, t: _Trial, status: ExitStatus, message: str) -> None:
        with t.lock:
            if t.outcome is None:
                t.outcome = (status, message)
                t.outcome_at = time.monotonic()

    def _tick(self) -> None:
        """Trial timeouts, and trials whose log drain timed out (no API request)."""
        tick = float(self._settings.get("poll_interval", 1.0))
        while not self._closed.wait(tick):
            with self._lock:
                trials = [t for t in self._trials.values() if not t.done.is_set()]
            now = time.monotonic()
            for t in trials:
                try:
                    self._expire(t, now)
                    self._settle(t)
                except Exception as exc:  # one trial's API error must not stop the others
                    self._note(t, f"status check failed: {_short(exc)}")

    def _expire(self, t: _Trial, now: float) -> None:
        if not t.created or t.done.is_set() or t.outcome is not None:
            return
        if t.deadline is not None and now >= t.deadline:
            timeout = self._template.timeout or 0.0
            self._delete(t)
            self._finish(
                t, ExitStatus.TIMED_OUT, f"deleted after the trial timeout ({timeout:g} s)"
            )

    def _settle(self, t: _Trial) -> None:
        """End a trial whose condition holds once its log is read (or the drain timed out)."""
        drain_s = float(self._settings.get("log_drain_timeout", 30.0))
        with t.lock:
            outcome, at = t.outcome, t.outcome_at
        if outcome is None or t.done.is_set():
            return
        if not (t.reader_done.is_set() or time.monotonic() - at >= drain_s):
            return
        status, message = outcome
        if status is not ExitStatus.COMPLETED and t.tail:
            message = f"{message}; last output:\n" + "\n".join(t.tail)
        if not self._template.retain:
            self._delete(t)
        self._finish(t, status, message)

    def _delete(self, t: _Trial) -> None:
        r = t.resource
        with t.lock:
            if t.deleted:
                return
            t.deleted = True
        propagation = str(self._settings.get("propagation", "Background"))
        try:
            self._custom.delete_namespaced_custom_object(
                r.group,
                r.version,
                self.namespace,
                r.plural,
                t.name,
                propagation_policy=propagation,
                _request_timeout=30,
            )
            self._note(t, f"deleted {r.kind} {self.namespace}/{t.name} ({propagation})")
        except self._k8s.client.ApiException as exc:
            if exc.status != 404:
                self._note(t, f"cannot delete {r.kind} {t.name}: {_short(exc)}")
        except Exception as exc:
            self._note(t, f"cannot delete {r.kind} {t.name}: {_short(exc)}")

    def _note(self, t: _Trial, text: str) -> None:
        with t.lock:
            if not t.log.closed:
                t.log.write(f"[automl] {text}\n".encode())
                t.log.flush()

    def _finish(self, t: _Trial, status: ExitStatus, message: str) -> None:
        with t.lock:
            if t.done.is_set():
                return
            t.done.set()
            streams = list(t.streams)
        for resp in streams:  # unblock a reader still following the log
            with contextlib.suppress(Exception):
                resp.close()
        with t.lock:
            tail = f": {message}" if message else ""
            t.log.write(f"[automl] trial ended: {status.value}{tail}\n".encode())
            t.log.close()
        with self._lock:
            self._trials.pop(t.run.trial_id, None)
            self._by_name.pop((t.resource.group, t.resource.plural, t.name), None)
        with self._pods_cond:  # wake its log reader
            self._pods_cond.notify_all()
        self._events.put(TrialEvent(t.run.trial_id, exit=TrialExit(status, message)))

    # -- interface ---------------------------------------------------------------------------
    def poll(self, timeout: float) -> list[TrialEvent]:
        """Events since the last poll."""
        return drain(self._events, timeout)

    def cancel(self, trial_id: str) -> None:
        """Delete the trial's job; its exit (CANCELLED) follows at once."""
        with self._lock:
            t = self._trials.get(trial_id)
        if t is None:
            return
        with t.lock:
            t.cancelled = True
            created = t.created
        if created:
            self._delete(t)
        self._finish(t, ExitStatus.CANCELLED, "cancelled")

    def close(self) -> None:
        """Delete the jobs of trials that still run and stop the monitor and the watches."""
        with self._lock:
            trials = list(self._trials.values())
        for t in trials:
            self.cancel(t.run.trial_id)
        with self._lock:
            self._closed.set()
            watchers = list(self._watchers.values())
        for w in watchers:
            if w.watch is not None:
                w.watch.stop()
            resp = w.resp
            if resp is not None:  # a watch blocks in a read until its timeout: end it now
                with contextlib.suppress(Exception):
                    resp.shutdown()
        end = time.monotonic() + 5
        self._monitor.join(timeout=5)
        for w in watchers:
            if w.thread is not None:
                w.thread.join(timeout=max(0.0, end - time.monotonic()))
        with contextlib.suppress(Exception):
            self._api.close()

    def reap(self, runner: Mapping[str, Any]) -> None:
        """Delete the job a dead controller left, by name and by the trial's label."""
        k = runner.get("kubernetes")
        if not isinstance(k, Mapping) or not k.get("name"):
            return
        api_version = str(k.get("apiVersion") or "batch/v1")
        group, _, version = api_version.rpartition("/")
        plural = str(k.get("plural") or "jobs")
        namespace = str(k.get("namespace") or self.namespace)
        propagation = str(self._settings.get("propagation", "Background"))
        names = {str(k["name"])}
        trial = str(k.get("trial") or k["name"])
        # The label holds the trial id; older attempts of the same trial are deleted too.
        with contextlib.suppress(Exception):
            listed = self._custom.list_namespaced_custom_object(
                group,
                version,
                namespace,
                plural,
                label_selector=f"{LABEL_TRIAL}={label_value(trial)}",
                _request_timeout=30,
            )
            names.update(i["metadata"]["name"] for i in listed.get("items", []))
        for name in sorted(names):
            with contextlib.suppress(Exception):
                self._custom.delete_namespaced_custom_object(
                    group,
                    version,
                    namespace,
                    plural,
                    name,
                    propagation_policy=propagation,
                    _request_timeout=30,
                )


def _ts_key(ts: str) -> str:
    """An RFC 3339 log timestamp in a form that sorts as time does.

    The kubelet writes RFC3339Nano, which drops trailing zeros of the fraction
    (``...07.1234Z`` comes before ``...07.12345Z``), so the fraction is padded to 9 digits.
    """
    base, _, frac = ts.rstrip("Z").partition(".")
    return f"{base}.{frac.ljust(9, '0')}"


def reap_kubernetes(spec: ExperimentSpec, runner: Mapping[str, Any], runs_dir: Path) -> bool:
    """Delete the job a trial's runner details name, for a stop without a live controller.

    Returns:
        False when ``runner`` is not a Kubernetes trial's (nothing to do), else True.

    Raises:
        SpecError: The cluster cannot be reached (named by its field).
    """
    if not isinstance(runner.get("kubernetes"), Mapping):
        return False
    executor = KubernetesExecutor(spec, runs_dir)
    try:
        executor.reap(runner)
    finally:
        executor.close()
    return True


#: Container waiting reasons that do not resolve by waiting: the trial fails.
_FATAL_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


def _stuck(pod: Mapping[str, Any] | None) -> str | None:
    """Why a pod's container can never start (a bad image, a missing secret), or None."""
    if pod is None:
        return None
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason"), waiting.get("message")
        if reason in _FATAL_WAITING:
            return f"{reason}" + (f": {message}" if message else "")
    return None


def _container_started(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") in ("Running", "Succeeded", "Failed"):
        return True
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("running") or state.get("terminated"):
            return True
    return False


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _name(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name") or "")


def _labels_match(obj: Mapping[str, Any], want: Mapping[str, str]) -> bool:
    labels = _meta(obj).get("labels") or {}
    return all(labels.get(k) == v for k, v in want.items())


def _condition_text(what: str, cond: Mapping[str, Any] | None) -> str:
    if not cond:
        return f"the job {what}"
    reason, message = cond.get("reason"), cond.get("message")
    parts = [f"the job {what}"]
    if reason:
        parts.append(f"reason {reason}")
    if message:
        parts.append(str(message))
    return ": ".join(parts[:1]) + (" (" + "; ".join(parts[1:]) + ")" if parts[1:] else "")


def _short(exc: BaseException) -> str:
    """One line about an API or connection error (the client's own text is a page long)."""
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    body = getattr(exc, "body", None)
    if status is not None and status != 0:
        detail = ""
        if body:
            try:
                detail = str(json.loads(body).get("message") or "")
            except (ValueError, AttributeError, TypeError):
                detail = str(body)[:200]
        return f"HTTP {status} {reason or ''}{': ' + detail if detail else ''}".strip()
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
