"""TEST DOUBLE of a Kubernetes API server: :class:`FakeKubernetesApiServer`.

No API server can run in these tests, so this small HTTP server on 127.0.0.1 speaks the subset
of the Kubernetes REST API that ``trials._kubernetes.KubernetesExecutor`` uses, and the real
``kubernetes`` client library talks to it over HTTP:

* ``GET /version``;
* ``POST``/``GET``/``DELETE`` ``/apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}]`` and
  ``GET`` of the collection with ``labelSelector`` (batch/v1 jobs, kubeflow.org/v1 pytorchjobs);
* ``GET /api/v1/namespaces/{ns}/pods?labelSelector=...``, ``GET .../pods/{name}`` and
  ``GET .../pods/{name}/log`` with ``container``, ``follow`` and ``timestamps``;
* ``GET /api/v1/namespaces/{ns}/configmaps/{name}``.

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
        config_maps: ``{(namespace, name): {key: text}}`` served to GET configmaps.
    """

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], FakePod] = {}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str, str | None]] = []
        self.requests: list[tuple[str, str]] = []
        self.config_maps: dict[tuple[str, str], dict[str, str]] = {}
        #: End each pod's first follow stream after this many lines, as an API server restart
        #: would, while the container keeps running (None: streams run to the end).
        self.drop_log_after: int | None = None
        self.log_connections = 0
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

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
                self.created.append(json.loads(json.dumps(body)))
            self._start(plural, ns, obj)
            return self._send(h, 201, obj)
        if method == "GET" and name is None:
            selector = _selector(query.get("labelSelector", ""))
            with self.lock:
                items = [
                    o
                    for (pl, n, _), o in self.objects.items()
                    if pl == plural and n == ns and _matches(o, selector)
                ]
            return self._send(h, 200, {"apiVersion": f"{group}/{version}", "items": items})
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
                "labels": {**(meta.get("labels") or {}), **labels},
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
            obj = self.objects.get((plural, ns, job))
            if obj is not None:
                self._job_status(plural, obj, pod, code)
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
        self._send(h, 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})

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
