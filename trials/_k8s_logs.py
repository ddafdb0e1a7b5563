"""Log readers of the Kubernetes executor: following a trial's pods and parsing metrics.

Here lives :class:`_K8sLogs`, the part of :class:`trials._kubernetes.KubernetesExecutor` that
finds a trial's pods (in the pod watch's cache, else by a fallback LIST), streams the primary
container's log with timestamps so a dropped stream resumes without repeating lines, copies it
to ``trial.log`` and parses metrics (StdOut filters and ``automl.report`` lines) as they arrive;
with the helpers on pod status (started, stuck) and log timestamps.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Mapping
from typing import Any

from automl._report import REPORT_LINE_PREFIX
from trials._base import ExitStatus, TrialEvent
from trials._k8s_base import _K8sBase, _labels_match, _meta, _name, _short, _Trial
from trials._manifests import LABEL_TRIAL, label_value
from trials._metrics import MetricLine, parse_report_line

_TERMINAL_PHASES = ("Succeeded", "Failed", "Gone")


class _K8sLogs(_K8sBase):
    """Follows each trial's primary container log and turns its lines into metric events."""

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

    def _next_pod(self, t: _Trial, final: bool = False) -> dict[str, Any] | None:
        """The trial's next pod to read, from the pod watch's cache.

        A pod the watch cannot see (a controller that does not copy the experiment's label to
        its pods) is found by a LIST with the trial's own selector, made only for a trial with
        no watched pod ``pod_list_after`` seconds after its creation, and at most that often.
        ``final``: the job has ended and no pod's log was read: LIST now, once, since the job's
        end (one watch) can arrive before its pod's events (another watch) do.
        """
        want = self._pod_labels_for(t)
        with self._pods_cond:
            pods = {n: p for n, p in self._pods.items() if _labels_match(p, want)}
        if not pods:  # also when the pod watch cannot run (no "watch" permission on pods)
            now = time.monotonic()
            after = float(self._settings.get("pod_list_after", 10.0))
            due = now - t.created_at >= after and now - t.pods_listed_at >= after
            if due or (final and not t.listed_at_end):
                t.pods_listed_at = now
                t.listed_at_end = t.listed_at_end or final
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
            idle = pod is None or not _container_started(pod)
            if idle and t.outcome is not None and not t.read_pods and not t.listed_at_end:
                pod = self._next_pod(t, final=True)
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


def _ts_key(ts: str) -> str:
    """An RFC 3339 log timestamp in a form that sorts as time does.

    The kubelet writes RFC3339Nano, which drops trailing zeros of the fraction
    (``...07.1234Z`` comes before ``...07.12345Z``), so the fraction is padded to 9 digits.
    """
    base, _, frac = ts.rstrip("Z").partition(".")
    return f"{base}.{frac.ljust(9, '0')}"


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
