"""Watches of the Kubernetes executor: the list-then-watch loops and the pod cache.

Here lives :class:`_K8sWatch`, the part of :class:`trials._kubernetes.KubernetesExecutor` that
runs one list-then-watch loop per job kind the experiment uses (evaluating each trial's Katib
failure and success conditions on every event's object) and one for the experiment's pods,
whose cache (``_pods``) the log readers consult.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from trials._base import ExitStatus
from trials._gjson import condition_holds
from trials._k8s_base import _K8sBase, _name, _short, _Trial, _Watcher
from trials._manifests import Resource

#: Back-off after a failed list or watch: doubling from the first, capped at the second (s).
_BACKOFF = (0.5, 30.0)
_PODS_KEY = ("", "v1", "pods")
_log = logging.getLogger("trials._kubernetes")


class _K8sWatch(_K8sBase):
    """List-then-watch loops feeding job changes to trials and pods to the pod cache."""

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
            if status is ExitStatus.FAILED and evicted(cond):
                status = ExitStatus.PREEMPTED  # not the trial's fault: it runs again
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


def evicted(cond: Mapping[str, Any] | None) -> bool:
    """Whether a failure condition says the pod was evicted or preempted.

    A node drained, a spot node reclaimed, a higher-priority pod: Kubernetes' ``Evicted``
    reason, the ``DisruptionTarget`` pod condition a pod failure policy reports, ``Preempt...``.
    """
    text = f"{(cond or {}).get('reason') or ''} {(cond or {}).get('message') or ''}".lower()
    return any(word in text for word in ("evict", "disruptiontarget", "preempt"))
