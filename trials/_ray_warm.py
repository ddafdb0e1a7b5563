"""Warm trial starts on a Ray cluster: each node's fork server, and how a worker reaches it.

Shipped to the workers by value with :mod:`trials._ray_worker` (``trials._ray._by_value``): it
imports nothing a worker would not have.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

__all__ = ["WARM_IDLE_S", "NotSent", "WarmNode", "spawn_direct", "warm_actor"]

# Warm starts on the cluster (``trial.warm.preload``): one fork server per node and preload list
# (trials._warm's, whose program comes with the job: the cluster needs no automl), kept by a
# detached actor pinned to the node (:class:`WarmNode`), so the modules are imported once per
# node, not once per worker, and the server outlives the experiments that use it. The trials on
# that node are forked from it. The server leaves by itself after WARM_IDLE_S without a trial
# (the memory of the imports is given back); the actor starts it again on the next one.
WARM_IDLE_S = 600.0
WARM_RETRY_S = 60.0  # a failed preload is tried again after this long


class WarmNode:
    """A node's fork server for one preload list (a detached actor; one call at a time).

    The server also listens on a Unix socket in a directory only this user can enter: a worker
    that has the socket's path sends its trials there directly, without a call to this actor
    (which takes one call at a time, ~17 ms each on a busy node). The server leaves by itself
    after ``idle_s`` without a trial; the next call starts it again.
    """

    def __init__(self, preload: list[str], program: str, idle_s: float = WARM_IDLE_S) -> None:
        self._preload = list(preload)
        self._program = program
        self._idle_s = idle_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._problem = ""
        self._problem_at = 0.0
        self._lock = threading.Lock()
        self._dir = tempfile.mkdtemp(prefix="automl-warm-")  # 0700: only this user connects
        self._socket = os.path.join(self._dir, "server.sock")

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()

    def _server(self) -> subprocess.Popen[bytes] | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        if self._problem and time.monotonic() - self._problem_at < WARM_RETRY_S:
            return None  # not retried per trial; retried a while later (a module installed)
        self._problem_at = time.monotonic()
        spares = str(min(8, os.cpu_count() or 2))
        argv = [sys.executable, "-c", self._program, json.dumps(self._preload), spares]
        try:
            proc = subprocess.Popen(
                [*argv, self._socket, str(self._idle_s)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
                start_new_session=True,
            )
            assert proc.stdout is not None
            line = proc.stdout.readline()
            reply = json.loads(line) if line else {}
        except (OSError, ValueError) as exc:
            self._problem = f"the warm trial server did not start: {exc}"
            return None
        if not reply.get("ready"):
            failed = reply.get("failed") or {}
            why = "; ".join(f"{k}: {v}" for k, v in failed.items()) or "it exited while importing"
            self._problem = f"preload failed ({why})"
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
            return None
        self._proc = proc
        return proc

    def spawn(self, req: dict[str, Any]) -> dict[str, Any]:
        """Fork one trial: ``{"pid": supervisor pid, "socket": path}``, or ``{"problem": why}``."""
        with self._lock:
            proc = self._server()
            if proc is None:
                return {"problem": self._problem}
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write((json.dumps(req) + "\n").encode())
                proc.stdin.flush()
                reply = json.loads(proc.stdout.readline() or b"{}")
            except (OSError, ValueError):
                reply = {}
            if not isinstance(reply.get("pid"), int):
                self._stop()  # the next trial starts a fresh server
                return {"problem": "the warm trial server stopped answering"}
            return {"pid": reply["pid"], "socket": self._socket}


class NotSent(Exception):
    """Nothing reached the server (it is not listening): asking the actor is safe."""


def spawn_direct(path: str, req: dict[str, Any]) -> dict[str, Any]:
    """Send a trial to the node's server through its socket: its reply.

    Raises:
        NotSent: The server does not listen there (left when idle, or restarted).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        try:
            conn.connect(path)
        except OSError as exc:
            raise NotSent from exc
        conn.sendall((json.dumps(req) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = json.loads(data or b"{}")
    return reply if isinstance(reply, dict) else {}


def warm_actor(
    ray: Any,
    cache: dict[str, Any],
    name: str,
    node: str,
    namespace: str,
    preload: list[str],
    program: str,
) -> Any:
    """The node's warm actor (:class:`WarmNode`), created if it does not exist yet.

    The handle is kept in ``cache`` (the worker process's) for its later trials: looking the actor
    up again costs a round trip to the cluster's control store per trial.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor = cache.get(name)
    if actor is None:
        actor = (
            ray.remote(WarmNode)
            .options(
                name=name,
                namespace=namespace,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            )
            .remote(preload, program)
        )
        cache[name] = actor
    return actor
