"""TEST DOUBLE of a Kubernetes API server: :class:`FakeKubernetesApiServer`.

No API server can run in these tests, so this small HTTP server on 127.0.0.1 speaks the subset
of the Kubernetes REST API that ``trials._kubernetes.KubernetesExecutor`` uses, and the real
``kubernetes`` client library talks to it over HTTP:

* ``GET /version``;
* ``POST``/``GET``/``DELETE`` ``/apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}]`` and
  ``GET`` of the collection with ``labelSelector`` (batch/v1 jobs, kubeflow.org/v1 pytorchjobs);
* ``GET /api/v1/namespaces/{ns}/pods?labelSelector=...``, ``GET .../pods/{name}`` and
  ``GET .../pods/{name}/log`` with ``container``, ``follow`` and ``timestamps``;
* ``GET /api/v1/namespaces/{ns}/configmaps/{name}``;
* ``?watch=true`` on the job and pod collections: a chunked stream of JSON lines
  ``{"type": "ADDED|MODIFIED|DELETED", "object": {...}}`` after ``resourceVersion`` (every
  object, and each list, carries one from a single counter), filtered by ``labelSelector``,
  ended after ``timeoutSeconds``. A watch from a resourceVersion older than
  :meth:`FakeKubernetesApiServer.expire_watches` allows gets the ``ERROR`` event with a
  ``410 Expired`` Status, as a real server's compacted history does.

It "runs" a job the way a kubelet would, minus the image: each pod's first container's
``command + args`` runs as a local subprocess (``python``/``python3`` resolve to this
interpreter, so the trial can import automl) with the container's ``env``; its stdout is the
pod's log. On exit the pod becomes Succeeded/Failed and the job gets Katib-visible conditions:
a Job ``Complete``/``Failed``, a PyTorchJob ``Succeeded``/``Failed`` (decided by its Master).
Deleting a job kills its processes. Every request is recorded for assertions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

_OBJ = re.compile(r"^/apis/([^/]+)/([^/]+)/namespaces/([^/]+)/([^/]+)(?:/([^/]+))?$")
_PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log)?$")
_CM = re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps/([^/]+)$")


_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-test-double",
    "gitCommit": "0" * 40,
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts() -> str:
    t = time.time()
    base = dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    # RFC3339Nano as the kubelet writes it: trailing zeros of the fraction dropped.
    frac = f"{int((t % 1) * 1e9):09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


@dataclass
class FakePod:
    """One pod: its object and its log lines (timestamp, text)."""

    namespace: str
    name: str
    obj: dict[str, Any]
    container: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    cond: threading.Condition = field(default_factory=threading.Condition)


class FakeKubernetesApiServer:
    """A TEST DOUBLE of the Kubernetes API server on 127.0.0.1 (see the module docstring).

    Attributes:
        created: Every object POSTed, as received.
        deleted: ``(plural, name, propagationPolicy)`` of every DELETE.
        requests: ``(method, path)`` of every request.
        calls: ``(method, path, query)`` of every request (``query`` with its last values).
        gone_served: Watches answered ``410 Expired``.
        config_maps: ``{(namespace, name): {key: text}}`` served to GET configmaps.
    """

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], FakePod] = {}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str, str | None]] = []
        self.requests: list[tuple[str, str]] = []
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.rv = 100  # the resourceVersion counter (a list never says "0": "any version")
        #: (resourceVersion, collection, namespace, type, object) of every change.
        self.history: list[tuple[int, str, str, str, dict[str, Any]]] = []
        self.gone_served = 0
        self._expired_before = 0  # watches from an older resourceVersion get 410
        self._watch_epoch = 0  # bumped to end every open watch stream
        self._watch_gate = threading.Event()  # cleared: new watches wait (see hold_watches)
        self._watch_gate.set()
        self._stopping = False
        self.changed = threading.Condition()
        self.config_maps: dict[tuple[str, str], dict[str, str]] = {}
        #: End each pod's first follow stream after this many lines, as an API server restart
        #: would, while the container keeps running (None: streams run to the end).
        self.drop_log_after: int | None = None
        # A pod watch that sees nothing (its events late beyond the job's end, or pods without
        # the experiment's label): the log reader must still find the pod.
        self.pod_watch_blind = False
        self.log_connections = 0
        #: Pods get only their controller's labels (job-name...), not the template's, as with a
        #: controller that does not copy them: no watch by the experiment's label sees them.
        self.unlabelled_pods = False
        self._streamed: set[tuple[str, str]] = set()
        self.lock = threading.RLock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked log streams, as a real API server sends

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                double._handle(self, "GET")

            def do_POST(self) -> None:
                double._handle(self, "POST")

            def do_DELETE(self) -> None:
                double._handle(self, "DELETE")

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- life --------------------------------------------------------------------------------
    def __enter__(self) -> FakeKubernetesApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Kill every pod's process and stop serving."""
        with self.lock:
            pods = list(self.pods.values())
        for p in pods:
            self._kill(p)
        with self.changed:  # end the watch streams
            self._stopping = True
            self._watch_gate.set()
            self.changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        """The server's address."""
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kube-config whose current context points at this double."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "test-double-token"}}],
            "contexts": [
                {
                    "name": "double",
                    "context": {"cluster": "double", "user": "tester", "namespace": namespace},
                }
            ],
            "current-context": "double",
        }
        path.write_text(yaml.safe_dump(doc))
        return path

    # -- queries for tests -------------------------------------------------------------------
    def live(self, plural: str) -> list[dict[str, Any]]:
        """Objects of ``plural`` that exist now."""
        with self.lock:
            return [o for (pl, _, _), o in self.objects.items() if pl == plural]

    def hold_watches(self) -> None:
        """End every open watch stream; new watch requests wait until :meth:`expire_watches`.

        Changes made meanwhile are in the history, but no client sees them.
        """
        with self.changed:
            self._watch_gate.clear()
            self._watch_epoch += 1
            self.changed.notify_all()

    def expire_watches(self) -> None:
        """Compact the history: a watch from any resourceVersion issued so far gets ``410``.

        Also ends open watch streams and lets held watch requests proceed (to their 410).
        """
        with self.lock, self.changed:
            self.rv += 1  # what a list returns from now on stays valid
            self._expired_before = self.rv
            self._watch_epoch += 1
            self._watch_gate.set()
            self.changed.notify_all()

    def running_processes(self) -> int:
        """Pods whose process still runs."""
        with self.lock:
            return sum(1 for p in self.pods.values() if p.proc and p.proc.poll() is None)

    # -- HTTP --------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.requests.append((method, url.path))
            self.calls.append((method, url.path, dict(query)))
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"null") if length else None
        try:
            if url.path.rstrip("/") == "/version" and method == "GET":
                return self._send(h, 200, _VERSION)
            m = _OBJ.match(url.path)
            if m:
                return self._objects(h, method, m.groups(), query, body)
            m = _PODS.match(url.path)
            if m and method == "GET":
                ns, name, log = m.groups()
                if log:
                    return self._log(h, ns, str(name), query)
                if name:
                    return self._pod(h, ns, name)
                if _is_watch(query):
                    return self._watch(h, "pods", ns, query)
                return self._pod_list(h, ns, query.get("labelSelector", ""))
            m = _CM.match(url.path)
            if m and method == "GET":
                data = self.config_maps.get((m.group(1), m.group(2)))
                if data is None:
                    return self._not_found(h, "configmaps", m.group(2))
                return self._send(
                    h,
                    200,
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": m.group(2), "namespace": m.group(1)},
                        "data": data,
                    },
                )
            return self._not_found(h, "path", url.path)
        except (OSError, ValueError):  # the client went away (a closed log stream)
            return None

    def _send(self, h: BaseHTTPRequestHandler, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _not_found(self, h: BaseHTTPRequestHandler, what: str, name: str) -> None:
        self._send(
            h,
            404,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": f'{what} "{name}" not found',
                "reason": "NotFound",
                "code": 404,
            },
        )

    def _objects(
        self,
        h: BaseHTTPRequestHandler,
        method: str,
        groups: tuple[str, ...],
        query: dict[str, str],
        body: Any,
    ) -> None:
        group, version, ns, plural, name = groups
        if method == "POST" and name is None:
            obj = json.loads(json.dumps(body))
            key = (plural, ns, obj["metadata"]["name"])
            with self.lock:
                if key in self.objects:
                    return self._send(
                        h, 409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"}
                    )
                obj["metadata"]["uid"] = str(uuid.uuid4())
                obj["metadata"]["creationTimestamp"] = _now()
                obj["status"] = {"startTime": _now()}
                self.objects[key] = obj
                self._changed(plural, ns, "ADDED", obj)
                self.created.append(json.loads(json.dumps(body)))
            self._start(plural, ns, obj)
            return self._send(h, 201, obj)
        if method == "GET" and name is None:
            if _is_watch(query):
                return self._watch(h, plural, ns, query)
            selector = _selector(query.get("labelSelector", ""))
            with self.lock:
                items = [
                    o
                    for (pl, n, _), o in self.objects.items()
                    if pl == plural and n == ns and _matches(o, selector)
                ]
                data = json.loads(json.dumps(items))
                rv = str(self.rv)
            doc = {"apiVersion": f"{group}/{version}", "metadata": {"resourceVersion": rv}}
            return self._send(h, 200, {**doc, "items": data})
        key = (plural, ns, str(name))
        if method == "GET":
            with self.lock:
                obj = self.objects.get(key)
                data = json.loads(json.dumps(obj)) if obj is not None else None
            if data is None:
                return self._not_found(h, plural, str(name))
            return self._send(h, 200, data)
        if method == "DELETE":
            propagation = query.get("propagationPolicy") or (body or {}).get("propagationPolicy")
            with self.lock:
                obj = self.objects.pop(key, None)
                self.deleted.append((plural, str(name), propagation))
                pods = [p for p in self.pods.values() if _owned(p, str(name))]
                for p in pods:
                    self.pods.pop((p.namespace, p.name), None)
                    self._changed("pods", p.namespace, "DELETED", p.obj)
                if obj is not None:
                    self._changed(plural, ns, "DELETED", obj)
            if obj is None:
                return self._not_found(h, plural, str(name))
            for p in pods:
                self._kill(p)
            return self._send(h, 200, {"kind": "Status", "status": "Success"})
        return self._not_found(h, plural, str(name))

    # -- "kubelet" ---------------------------------------------------------------------------
    def _start(self, plural: str, ns: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if plural == "jobs":
            labels = {"job-name": name, "batch.kubernetes.io/job-name": name}
            self._pod_for(plural, ns, name, obj["spec"]["template"], labels, f"{name}-x1")
        elif plural == "pytorchjobs":
            for role, replica in obj["spec"]["pytorchReplicaSpecs"].items():
                for i in range(int(replica.get("replicas", 1))):
                    labels = {
                        "training.kubeflow.org/job-name": name,
                        "training.kubeflow.org/replica-type": role.lower(),
                        "training.kubeflow.org/replica-index": str(i),
                    }
                    if role == "Master":
                        labels["training.kubeflow.org/job-role"] = "master"
                    self._pod_for(
                        plural, ns, name, replica["template"], labels, f"{name}-{role.lower()}-{i}"
                    )

    def _pod_for(
        self,
        plural: str,
        ns: str,
        job: str,
        template: dict[str, Any],
        labels: dict[str, str],
        pod_name: str,
    ) -> None:
        meta = template.get("metadata") or {}
        container = template["spec"]["containers"][0]
        pod_obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": ns,
                "labels": {**({} if self.unlabelled_pods else meta.get("labels") or {}), **labels},
                "creationTimestamp": _now(),
                "ownerReferences": [
                    {"apiVersion": "automl.test/v1", "kind": plural, "name": job, "uid": "0"}
                ],
            },
            "spec": template["spec"],
            "status": {"phase": "Running", "startTime": _now()},
        }
        pod = FakePod(ns, pod_name, pod_obj, container["name"])
        if str(container.get("image", "")).endswith(":missing"):
            # An image that cannot be pulled: the pod waits for ever, as a kubelet's would.
            pod_obj["status"] = {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "ready": False,
                        "restartCount": 0,
                        "image": container["image"],
                        "imageID": "",
                        "state": {
                            "waiting": {
                                "reason": "ImagePullBackOff",
                                "message": f'Back-off pulling image "{container["image"]}"',
                            }
                        },
                    }
                ],
            }
            with self.lock:
                self.pods[(ns, pod_name)] = pod
                self._changed("pods", ns, "ADDED", pod_obj)
            return
        argv = [
            str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]
        ]
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        env = dict(os.environ)
        env.update({str(e["name"]): str(e.get("value", "")) for e in container.get("env") or []})
        for k in ("AUTOML_REPORT_FILE", "AUTOML_TRIAL_DIR"):
            env.pop(k, None)  # a pod shares no files with the controller
        with self.lock:
            self.pods[(ns, pod_name)] = pod
            self._changed("pods", ns, "ADDED", pod_obj)
        try:
            pod.proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self._append(pod, f"exec failed: {exc}")
            self._ended(plural, ns, job, pod, 128)
            return
        threading.Thread(target=self._pump, args=(plural, ns, job, pod), daemon=True).start()

    def _append(self, pod: FakePod, text: str) -> None:
        with pod.cond:
            pod.lines.append((_ts(), text))
            pod.cond.notify_all()

    def _pump(self, plural: str, ns: str, job: str, pod: FakePod) -> None:
        assert pod.proc is not None and pod.proc.stdout is not None
        for raw in pod.proc.stdout:
            self._append(pod, raw.decode("utf-8", "replace").rstrip("\n"))
        code = pod.proc.wait()
        self._ended(plural, ns, job, pod, code)

    def _ended(self, plural: str, ns: str, job: str, pod: FakePod, code: int) -> None:
        phase = "Succeeded" if code == 0 else "Failed"
        with self.lock:
            pod.obj["status"] = {
                "phase": phase,
                "containerStatuses": [
                    {
                        "name": pod.container,
                        "ready": False,
                        "restartCount": 0,
                        "image": "double",
                        "imageID": "double",
                        "state": {"terminated": {"exitCode": code, "reason": phase}},
                    }
                ],
            }
            if self.pods.get((ns, pod.name)) is pod:
                self._changed("pods", ns, "MODIFIED", pod.obj)
            obj = self.objects.get((plural, ns, job))
            if obj is not None:
                self._job_status(plural, obj, pod, code)
                self._changed(plural, ns, "MODIFIED", obj)
        with pod.cond:
            pod.finished.set()
            pod.cond.notify_all()

    def _job_status(self, plural: str, obj: dict[str, Any], pod: FakePod, code: int) -> None:
        role = pod.obj["metadata"]["labels"].get("training.kubeflow.org/replica-type")
        if plural == "pytorchjobs" and role != "master":
            return  # the Master's exit decides a PyTorchJob
        now = _now()
        if code == 0:
            kind = "Complete" if plural == "jobs" else "Succeeded"
            reason, message = "Completed", "finished"
        else:
            kind, reason = "Failed", "BackoffLimitExceeded"
            message = f"container exited with code {code}"
        obj["status"]["conditions"] = [
            {
                "type": kind,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            }
        ]
        obj["status"]["completionTime" if code == 0 else "failedTime"] = now

    def _kill(self, pod: FakePod) -> None:
        if pod.proc is not None and pod.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pod.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                pod.proc.wait(timeout=5)
        with pod.cond:
            pod.finished.set()
            pod.cond.notify_all()

    # -- watch -------------------------------------------------------------------------------
    def _changed(self, collection: str, ns: str, kind: str, obj: dict[str, Any]) -> None:
        """Record a change (the caller holds ``self.lock``): a new resourceVersion, an event."""
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, collection, ns, kind, json.loads(json.dumps(obj))))
        with self.changed:
            self.changed.notify_all()

    def _watch(
        self, h: BaseHTTPRequestHandler, collection: str, ns: str, query: dict[str, str]
    ) -> None:
        wanted = _selector(query.get("labelSelector", ""))
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        while not self._watch_gate.wait(0.2):  # held by hold_watches()
            if time.monotonic() >= deadline:
                break
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Connection", "close")
        h.end_headers()

        def send(event: dict[str, Any]) -> None:
            data = (json.dumps(event) + "\n").encode()
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

        with self.lock, self.changed:
            epoch = self._watch_epoch
            since = query.get("resourceVersion") or ""
            expired = bool(since) and since != "0" and int(since) < self._expired_before
            if expired:
                self.gone_served += 1
            if not since or since == "0":  # no version: the current objects, as ADDED
                start = self.rv
                if collection == "pods":
                    now = [p.obj for (n, _), p in self.pods.items() if n == ns]
                else:
                    now = [
                        o for (pl, n, _), o in self.objects.items() if (pl, n) == (collection, ns)
                    ]
                first = [json.loads(json.dumps(o)) for o in now if _matches(o, wanted)]
            else:
                start, first = int(since), []
        if expired:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": f"too old resource version: {since} ({self._expired_before})",
                "reason": "Expired",
                "code": 410,
            }
            send({"type": "ERROR", "object": status})
        else:
            blind = collection == "pods" and self.pod_watch_blind
            for o in [] if blind else first:
                send({"type": "ADDED", "object": o})
            while True:
                with self.lock:
                    batch = [
                        e
                        for e in self.history
                        if e[0] > start and e[1:3] == (collection, ns) and _matches(e[4], wanted)
                    ]
                    start = self.rv
                if blind:
                    batch = []
                for _, _, _, kind, obj in batch:
                    send({"type": kind, "object": obj})
                with self.changed:
                    if self._stopping or self._watch_epoch != epoch:
                        break
                    if time.monotonic() >= deadline:
                        break
                    if self.rv == start:
                        self.changed.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()
        h.close_connection = True

    # -- pods --------------------------------------------------------------------------------
    def _pod(self, h: BaseHTTPRequestHandler, ns: str, name: str) -> None:
        with self.lock:
            pod = self.pods.get((ns, name))
            data = json.loads(json.dumps(pod.obj)) if pod else None
        if data is None:
            return self._not_found(h, "pods", name)
        self._send(h, 200, data)

    def _pod_list(self, h: BaseHTTPRequestHandler, ns: str, selector: str) -> None:
        wanted = _selector(selector)
        with self.lock:
            items = [
                json.loads(json.dumps(p.obj))
                for (n, _), p in self.pods.items()
                if n == ns and _matches(p.obj, wanted)
            ]
            meta = {"resourceVersion": str(self.rv)}
        self._send(
            h, 200, {"apiVersion": "v1", "kind": "PodList", "metadata": meta, "items": items}
        )

    def _log(self, h: BaseHTTPRequestHandler, ns: str, name: str, query: dict[str, str]) -> None:
        with self.lock:
            pod = self.pods.get((ns, name))
        if pod is None:
            return self._not_found(h, "pods", name)
        container = query.get("container")
        if container and container != pod.container:
            return self._send(
                h, 400, {"kind": "Status", "code": 400, "message": f"no container {container}"}
            )
        follow = query.get("follow", "").lower() == "true"  # the client sends "True"
        with self.lock:
            self.log_connections += 1
            first = (ns, name) not in self._streamed
            self._streamed.add((ns, name))
        limit = self.drop_log_after if first and follow else None
        stamps = query.get("timestamps", "").lower() == "true"
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Connection", "close")
        h.end_headers()
        sent = 0
        while True:
            with pod.cond:
                while follow and sent == len(pod.lines) and not pod.finished.is_set():
                    pod.cond.wait(0.5)
                batch = pod.lines[sent:]
                done = pod.finished.is_set()
            if limit is not None:
                batch = batch[: max(0, limit - sent)]
            for ts, text in batch:
                data = ((f"{ts} " if stamps else "") + text + "\n").encode()
                h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()
            sent += len(batch)
            if limit is not None and sent >= limit:
                break
            if not follow or (done and sent == len(pod.lines)):
                break
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()
        h.close_connection = True


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that closes a kept-alive connection (ApiClient.close, a shut-down watch)
        # is no error of the double's; anything else is printed as usual.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def _is_watch(query: dict[str, str]) -> bool:
    return query.get("watch", "").lower() in ("true", "1")  # the client sends "True"


def _selector(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        k, _, v = part.partition("=")
        out[k.strip()] = v.strip()
    return out


def _matches(obj: dict[str, Any], selector: dict[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _owned(pod: FakePod, job: str) -> bool:
    return any(r.get("name") == job for r in pod.obj["metadata"].get("ownerReferences", []))
