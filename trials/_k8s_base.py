"""Shared state of the Kubernetes executor: per-trial records and how a trial ends.

Here live :class:`_Trial` (one trial's job, log and outcome) and :class:`_Watcher` (one
list-then-watch loop), the small helpers on API objects and errors, and :class:`_K8sBase`, the
state every part of :class:`trials._kubernetes.KubernetesExecutor` shares, with the steps that
end a trial (outcome, settle, delete, finish) which the log readers, the watches and the monitor
all call.
"""

from __future__ import annotations

import collections
import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from automl.core import ExperimentSpec, TrialTemplate
from trials._base import ExitStatus, TrialEvent, TrialExit, TrialRun
from trials._gjson import Path as GPath
from trials._manifests import Resource
from trials._metrics import TextMetricParser


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
    listed_at_end: bool = False  # pods LISTed once after the job's end (the watch may lag)


@dataclass
class _Watcher:
    """One list-then-watch loop: a job kind's, or the experiment's pods'."""

    what: str
    thread: threading.Thread | None = None
    watch: Any = None
    resp: Any = None  # the open watch response, shut down by close() to unblock the thread


class _K8sBase:
    """State shared by the executor's parts, and the steps that end a trial."""

    _spec: ExperimentSpec
    _template: TrialTemplate
    _settings: dict[str, Any]
    _manifest: dict[str, Any] | None
    _probe_manifest: dict[str, Any]
    _success: GPath
    _failure: GPath
    _pod_labels: dict[str, str]
    _container_name: str | None
    _parse_stdout: bool
    _parser: TextMetricParser
    _k8s: Any
    _api: Any
    _custom: Any
    _core: Any
    namespace: str
    host: str
    _events: queue.SimpleQueue[TrialEvent]
    _trials: dict[str, _Trial]
    _by_name: dict[tuple[str, str, str], _Trial]
    _lock: threading.Lock
    _closed: threading.Event
    _experiment_selector: str
    _watchers: dict[tuple[str, str, str], _Watcher]
    _pods: dict[str, dict[str, Any]]
    _pods_cond: threading.Condition

    def _raw_list(self, call: Callable[..., Any], selector: str) -> dict[str, Any]:
        resp = call(label_selector=selector, _request_timeout=30, _preload_content=False)
        try:
            doc = json.loads(resp.data)
        finally:
            with contextlib.suppress(Exception):
                resp.release_conn()
        return doc if isinstance(doc, dict) else {}

    def _set_outcome(self, t: _Trial, status: ExitStatus, message: str) -> None:
        with t.lock:
            if t.outcome is None:
                t.outcome = (status, message)
                t.outcome_at = time.monotonic()

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


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _name(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name") or "")


def _labels_match(obj: Mapping[str, Any], want: Mapping[str, str]) -> bool:
    labels = _meta(obj).get("labels") or {}
    return all(labels.get(k) == v for k, v in want.items())


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
