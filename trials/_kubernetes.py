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

import contextlib
import functools
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from automl.core import ExperimentSpec
from automl.errors import SpecError
from trials._base import Executor, ExitStatus, TrialEvent, TrialExit, TrialRun, drain
from trials._k8s_base import _short, _Trial, _Watcher
from trials._k8s_config import DEFAULT_CONDITIONS as DEFAULT_CONDITIONS
from trials._k8s_config import SETTINGS as SETTINGS
from trials._k8s_config import _import_kubernetes, _K8sSetup
from trials._k8s_logs import _K8sLogs
from trials._k8s_logs import _ts_key as _ts_key
from trials._k8s_watch import _K8sWatch
from trials._manifests import (
    LABEL_EXPERIMENT,
    LABEL_TRIAL,
    ManifestError,
    label_value,
    render_manifest,
    resource_of,
    validate_manifest,
)

__all__ = ["KubernetesExecutor", "reap_kubernetes"]


class KubernetesExecutor(_K8sSetup, _K8sLogs, _K8sWatch, Executor):
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
        self._follow(t)

    def _follow(self, t: _Trial) -> None:
        try:
            self._follow_logs(t)
        except Exception as exc:  # the trial's end is decided by its job, not by its log
            self._note(t, f"log reader stopped: {_short(exc)}")
        finally:
            t.reader_done.set()
        self._settle(t)

    # -- adoption ----------------------------------------------------------------------------
    def adopt(self, run: TrialRun, runner: Mapping[str, Any]) -> bool:
        """Follow the job a dead controller created for this trial, found by name or label.

        Its status comes from the experiment's watch like any trial's, and its primary
        container's log is read again from the start (``trial.log`` is rewritten), so its
        metrics arrive again as events. No job (it was never created, or someone deleted it):
        False, and the trial runs again as a new attempt.
        """
        try:
            manifest = render_manifest(self._spec, run, self.namespace, self._manifest)
            resource = resource_of(manifest)
        except (SpecError, ManifestError):
            return False
        k = runner.get("kubernetes")
        r = resource
        try:
            if isinstance(k, Mapping) and k.get("name"):
                obj = self._custom.get_namespaced_custom_object(
                    r.group, r.version, self.namespace, r.plural, str(k["name"]),
                    _request_timeout=30,
                )  # fmt: skip
            else:  # the controller died before it stored the job's name: the trial's label
                listed = self._custom.list_namespaced_custom_object(
                    r.group, r.version, self.namespace, r.plural,
                    label_selector=f"{LABEL_TRIAL}={label_value(run.trial_id)}",
                    _request_timeout=30,
                )  # fmt: skip
                items = listed.get("items") or []
                if not items:
                    return False
                obj = items[-1]
        except Exception:  # 404, or an API error: its fate cannot be known from here
            return False
        name = str(obj["metadata"]["name"])
        workdir = self._runs_dir / run.experiment / run.trial_id
        workdir.mkdir(parents=True, exist_ok=True)
        log = open(workdir / "trial.log", "wb")  # noqa: SIM115 - closed when the trial ends
        log.write(f"[automl] adopted {r.kind} {self.namespace}/{name} on {self.host}\n".encode())
        log.flush()
        timeout = self._template.timeout
        left = None
        if timeout is not None:
            left = timeout - _age(obj)
        t = _Trial(
            run,
            name,
            manifest,
            resource,
            workdir,
            log,
            time.monotonic() + left if left is not None else None,
        )
        t.created = True
        t.created_at = time.monotonic()
        # Its pods may have ended before the pod watch lists them: list them once now.
        with contextlib.suppress(Exception):
            listed = self._raw_list(
                functools.partial(self._core.list_namespaced_pod, self.namespace),
                self._selector(t),
            )
            t.listed_pods = {str(p["metadata"]["name"]): p for p in listed.get("items") or []}
            t.pods_listed_at = time.monotonic()
        with self._lock:
            self._trials[run.trial_id] = t
            self._by_name[(r.group, r.plural, name)] = t
        # A watch already listing this kind may have passed over the job before it was known
        # here, and a finished job changes no more: take its status from the GET or list.
        self._job_changed(resource, "MODIFIED", obj)
        self._ensure_watch(resource)
        if not (isinstance(k, Mapping) and k.get("name")):
            self._events.put(
                TrialEvent(
                    run.trial_id,
                    started={
                        "kubernetes": {
                            "name": name,
                            "namespace": self.namespace,
                            "apiVersion": r.api_version,
                            "kind": r.kind,
                            "plural": r.plural,
                            "trial": run.trial_id,
                        },
                        "host": self.host,
                    },
                )
            )
        threading.Thread(
            target=self._follow, args=(t,), name=f"k8s-trial-{run.number}", daemon=True
        ).start()
        return True

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


def _age(obj: Mapping[str, Any]) -> float:
    """Seconds since the object was created (0 when its timestamp cannot be read)."""
    from datetime import datetime

    raw = (obj.get("metadata") or {}).get("creationTimestamp")
    try:
        created = datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
    return max(0.0, time.time() - created)


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
