"""Code that runs on the Ray cluster's workers, for the Ray executor in :mod:`trials._ray`.

What lives here: the task body of a trial (:func:`_run_task`: :func:`_run_command` runs the
command in process groups of its own, :func:`_run_function` the cloudpickled objective), the
streaming of what a trial prints and reports (:class:`_Outbox` on the worker, :class:`_Hub`
the cluster's detached actor that owns the trials' tasks and that executors poll), the
per-worker reaper that kills a dead worker's trials, the torch.distributed environment
(:func:`_rendezvous`, :func:`_dist_env`), and :func:`_kill_marked`, run on each node to kill a
trial attempt's processes by their mark.

This module is shipped to the workers by value (``cloudpickle.register_pickle_by_value``, see
``trials._ray._by_value``): a worker needs Ray and the standard library, not this package. So it
imports nothing at module level that a worker would have to import: the only names it takes
from automl are string constants, pickled with the functions that use them; a function trial
imports ``automl._report`` (and ``trials._inprocess``) when it starts.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from typing import IO, Any

from automl._report import REPORT_FILE_ENV, TRIAL_ENV
from trials._ray_warm import NotSent, spawn_direct, warm_actor

_TICK = 0.1  # seconds between drains of the inbox (metrics latency)
_KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL of a trial's process group (on the worker)
# In the environment of every process of a trial attempt: how a later process finds them.
MARK_ENV = "AUTOML_RAY_TRIAL"


HUB_NAME = "automl-hub-v1"  # one detached hub per cluster; the version keeps its methods stable
HUB_NAMESPACE = "automl"


def _outcome(ref: Any) -> dict[str, Any]:
    """A finished task's result, or its error as names and text (picklable, no exception)."""
    import ray

    try:
        return {"ok": ray.get(ref)}
    except Exception as exc:
        text = str(exc).strip()
        return {
            "exc": type(exc).__name__,
            "mro": [c.__name__ for c in type(exc).__mro__],
            "message": text.splitlines()[0] if text else type(exc).__name__,
        }


class _Hub:
    """A detached actor that owns the trials' tasks, so they outlive the controller that asked.

    Ray ends the tasks of a driver that dies; tasks started by this actor (detached: it lives
    until the cluster does) run on. It keeps each running trial's lines (what it printed and
    reported) and, when its tasks end, their results, until the controller that records the
    trial says :meth:`forget`. A new controller adopts a trial by its id (:meth:`adopt`): it
    gets the lines so far, then the rest as they come, and the end.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner_of: dict[str, str] = {}  # trial key -> the executor that follows it
        self._queue: dict[str, list[tuple[str, int, str, Any]]] = {}  # owner -> undrained
        self._history: dict[str, list[tuple[str, int, str, Any]]] = {}  # key -> every line
        self._refs: dict[str, list[Any]] = {}  # key -> its tasks

    def start(
        self, owner: str, key: str, tasks: list[tuple[dict[str, Any], dict[str, Any]]], me: Any,
        master: Any = None,
    ) -> None:  # fmt: skip
        import ray

        task = ray.remote(_run_task)
        refs = [task.options(**opts).remote(me, owner, key, job, master) for job, opts in tasks]
        with self._lock:
            self._owner_of[key] = owner
            self._refs[key] = refs

    def put(self, owner: str, items: list[tuple[str, int, str, Any]]) -> None:
        with self._lock:
            for item in items:
                self._history.setdefault(item[0], []).append(item)
                self._queue.setdefault(self._owner_of.get(item[0], owner), []).append(item)

    def poll(
        self, owner: str, wait: float
    ) -> tuple[list[tuple[str, int, str, Any]], dict[str, list[dict[str, Any]]], list[str]]:
        """The owner's new lines, its trials whose tasks all ended, and failing ones.

        Ended trials come with their tasks' outcomes; a failing trial has one task that failed
        (a distributed trial whose other workers must stop).
        """
        import ray

        with self._lock:
            mine = {k: list(r) for k, r in self._refs.items() if self._owner_of.get(k) == owner}
        pending = [r for refs in mine.values() for r in refs]
        if pending and wait > 0:  # without the lock: tasks put their lines meanwhile
            ray.wait(pending, num_returns=1, timeout=wait, fetch_local=False)
        ended: dict[str, list[dict[str, Any]]] = {}
        failing: list[str] = []
        for key, refs in mine.items():
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
            if len(ready) == len(refs):
                ended[key] = [_outcome(r) for r in refs]
            elif ready and any(
                "exc" in o or o["ok"].get("error") or o["ok"].get("code")
                for o in (_outcome(r) for r in ready)
            ):
                failing.append(key)
        with self._lock:  # after the check: an ended task's lines are all queued
            items = self._queue.pop(owner, [])
        return items, ended, failing

    def cancel(self, key: str, force: bool) -> None:
        import ray

        with self._lock:
            refs = list(self._refs.get(key, []))
        for r in refs:
            with contextlib.suppress(Exception):
                ray.cancel(r, force=force)

    def adopt(
        self, trial_id: str, owner: str
    ) -> tuple[str, list[tuple[str, int, str, Any]]] | None:
        """Hand a trial's newest attempt to ``owner``: its key and every line so far."""
        with self._lock:
            keys = [k for k in self._refs if k.rsplit("#", 1)[0] == trial_id]
            if not keys:
                return None
            key = max(keys, key=lambda k: int(k.rsplit("#", 1)[1]))
            self._owner_of[key] = owner
            for o, q in self._queue.items():
                self._queue[o] = [i for i in q if i[0] != key]
            return key, list(self._history.get(key, []))

    def forget(self, key: str) -> None:
        with self._lock:
            self._owner_of.pop(key, None)
            self._history.pop(key, None)
            self._refs.pop(key, None)


# One reaper per Ray worker process, started on its first command trial and reused: ray kills
# a dying worker's direct children, not their process groups, so the reaper (double-forked, so
# it is no child of the worker) holds the process groups of the worker's running trials and
# SIGKILLs them when its stdin, the worker's end of a pipe, reaches EOF (the worker died or
# was force-cancelled). Cheaper than a guard process per trial: no interpreter start per trial.
_REAPER = r"""
import os, signal, sys
if os.fork():
    os._exit(0)
os.setsid()
groups = set()
for line in sys.stdin:
    pgid = int(line)
    if pgid > 0:
        groups.add(pgid)
    else:
        groups.discard(-pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""
# This module comes by value with each task, so its globals are fresh per task: what must
# live as long as the worker process (its reaper) is kept in a module of its own in
# ``sys.modules``. No lock: a Ray worker runs one task at a time.
_STATE = "_automl_ray_worker_state"


def _state() -> Any:
    """This worker process's trial reaper: ``reaper`` (its stdin) and ``starter``."""
    state: Any = sys.modules.get(_STATE)
    if state is None:
        import types

        state = types.ModuleType(_STATE)
        state.reaper = None  # the reaper's stdin (IO[str])
        state.starter = None  # the process that forks the reaper, until it is collected
        state.warm_actors = {}  # name -> handle of a node's warm actor (trials._ray_warm)
        state.warm_sockets = {}  # name -> its server's socket: later trials go there directly
        sys.modules[_STATE] = state
    return state


def _reap(pgid: int, add: bool) -> None:
    """Register (or forget) a trial's process group with this worker's reaper."""
    st = _state()
    if st.reaper is None:
        # -I -S: no site import, it needs os, signal and sys only. Not waited for here: what
        # is written before its fork waits in the pipe, which the forked reaper inherits.
        st.starter = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _REAPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
        )
        st.reaper = st.starter.stdin
    elif st.starter is not None and st.starter.poll() is not None:
        st.starter = None  # it forked the reaper and left: collected, no zombie
    reaper: IO[str] = st.reaper
    with contextlib.suppress(OSError):
        reaper.write(f"{pgid if add else -pgid}\n")
        reaper.flush()


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), to tell a live process from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _kill_marked(mark: str, pids: list[list[Any]]) -> list[int]:
    """SIGKILL this machine's processes of one trial attempt; the pids it killed.

    They carry ``AUTOML_RAY_TRIAL=<mark>`` in their environment, and so does whatever they
    started, even in a session of its own (which the worker's reaper does not know). ``pids``
    adds ``[pid, start time]`` pairs (the Ray worker running a function trial), killed only
    while the start time still matches.
    """
    entry = f"{MARK_ENV}={mark}".encode()
    me = os.getpid()
    hit: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if entry in fh.read().split(b"\0"):
                    hit.append(int(name))
        except OSError:  # gone, or another user's
            continue
    hit.extend(int(pid) for pid, start in pids if _start_time(int(pid)) == start)
    for pid in hit:
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:  # a group leader: the trial itself, or one that escaped
                os.killpg(pid, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
    return hit


class _Outbox:
    """Buffers a task's lines and pushes them to the inbox every tick (and at the end)."""

    def __init__(self, inbox: Any, owner: str, key: str, rank: int) -> None:
        self._inbox = inbox
        self._owner = owner
        self._key = key
        self._rank = rank
        self._items: list[tuple[str, int, str, Any]] = []
        self._lock = threading.Lock()

    def add(self, kind: str, payload: Any, rank: int | None = None) -> None:
        with self._lock:
            self._items.append((self._key, self._rank if rank is None else rank, kind, payload))

    def flush(self, wait: bool = False) -> None:
        import ray

        with self._lock:
            items, self._items = self._items, []
        if items or wait:
            ref = self._inbox.put.remote(self._owner, items)
            if wait:  # every item is in the inbox before the task's result is ready
                ray.get(ref)


class _LineWriter(io.TextIOBase):
    """A text stream that sends each complete line to the outbox (a function trial's print)."""

    def __init__(self, out: _Outbox) -> None:
        self._out = out
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        lines = (self._partial + s).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._out.add("out", line)
        return len(s)

    def flush(self) -> None:
        pass

    def close_partial(self) -> None:
        if self._partial:
            self._out.add("out", self._partial)
            self._partial = ""


def _trial_dir(path: str) -> str:
    """The trial's directory on this node.

    The controller's path when it can be made (a shared filesystem, or the same machine), else
    a fresh temporary one.
    """
    try:
        os.makedirs(path, exist_ok=True)
        return path
    except OSError:
        import tempfile

        return tempfile.mkdtemp(prefix="automl-trial-")


def _started(out: _Outbox, job: Mapping[str, Any], pid: int | None) -> None:
    import ray

    ctx = ray.get_runtime_context()
    me = os.getpid()
    out.add(
        "started",
        {
            "host": socket.gethostname(),
            "node_ip": _node_ip(),
            "node_id": ctx.get_node_id(),
            "pid": pid,
            "attempt": job["attempt"],
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            # a function trial runs in the worker itself: reaping it kills the worker
            "worker": [me, _start_time(me)] if pid == me else None,
        },
    )


def _node_ip() -> str:
    import ray

    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


def _rendezvous() -> tuple[str, int]:
    """The address and a free port for torch.distributed, on the node of worker 0."""
    with socket.socket() as s:
        s.bind(("", 0))
        port = int(s.getsockname()[1])
    return _node_ip(), port


def _dist_env(
    job: Mapping[str, Any], master: tuple[str, int] | None, local: int
) -> dict[str, str]:
    if master is None:
        return {}
    ppw = int(job["processes_per_worker"])
    worker = int(job["worker"])
    return {
        "MASTER_ADDR": master[0],
        "MASTER_PORT": str(master[1]),
        "WORLD_SIZE": str(int(job["workers"]) * ppw),
        "RANK": str(worker * ppw + local),
        "LOCAL_RANK": str(local),
        "LOCAL_WORLD_SIZE": str(ppw),
        "GROUP_RANK": str(worker),
        "NODE_RANK": str(worker),
    }


def _run_task(
    inbox: Any, owner: str, key: str, job: dict[str, Any], master: tuple[str, int] | None = None
) -> dict[str, Any]:
    """Run one worker of a trial (a Ray task); stream its output; its result for the controller."""
    rank = int(job["worker"]) * int(job["processes_per_worker"])
    out = _Outbox(inbox, owner, key, rank)
    try:
        if job["kind"] == "command":
            return _run_command(out, job, master)
        return _run_function(out, job, master)
    finally:
        out.flush(wait=True)


def _warm_spawn(
    job: Mapping[str, Any], argv: list[str], env: Mapping[str, str], cwd: str, home: str
) -> tuple[int | None, str]:
    """Fork ``argv`` from this node's fork server; the trial's supervisor pid, or why not."""
    import hashlib

    import ray

    if len(argv) < 2 or argv[0] != sys.executable:
        return None, "only `python script.py ...` and `python -m module ...` start warm"
    module = argv[1] == "-m"
    if (argv[1].startswith("-") and not module) or (module and len(argv) < 3):
        return None, "only `python script.py ...` and `python -m module ...` start warm"
    target, args = (argv[2], argv[3:]) if module else (argv[1], argv[2:])
    req = {
        "target": target,
        "module": module,
        "args": args,
        "env": dict(env),
        "cwd": cwd,
        "workdir": home,
        "log": os.path.join(home, "output.log"),
    }
    preload = sorted(job["warm"]["preload"])
    node = ray.get_runtime_context().get_node_id()
    key = hashlib.sha256(json.dumps([preload, sys.executable]).encode()).hexdigest()[:16]
    name = f"automl-warm-{node[:16]}-{key}"
    state = _state()
    reply: dict[str, Any] | None = None
    path = state.warm_sockets.get(name)
    if path is not None:
        try:
            reply = spawn_direct(path, req)
        except NotSent:
            state.warm_sockets.pop(name, None)  # ask the actor, which starts the server again
        except (OSError, ValueError) as exc:  # sent, unanswered: it may have started
            state.warm_sockets.pop(name, None)
            return None, f"the node's warm trial server stopped answering: {exc}"
    if reply is None:
        try:
            actor = warm_actor(
                ray, state.warm_actors, name, node, HUB_NAMESPACE, preload, job["warm"]["server"]
            )
            reply = ray.get(actor.spawn.remote(req))
        except Exception as exc:  # a warm start problem never fails the trial
            state.warm_actors.pop(name, None)  # the next trial looks the actor up again
            why = f"{type(exc).__name__}: {exc}"
            return None, f"the node's warm trial server is unreachable: {why}"
        if isinstance(reply.get("socket"), str):
            state.warm_sockets[name] = reply["socket"]
    pid = reply.get("pid")
    return (pid, "") if isinstance(pid, int) else (None, str(reply.get("problem")))


def _run_warm(
    out: _Outbox, job: dict[str, Any], pid: int, home: str, report: str
) -> dict[str, Any]:
    """Follow a forked trial to its end: its output file, its reports, its exit status."""
    _reap(pid, add=True)
    _started(out, job, pid)
    out.flush()
    status = os.path.join(home, "exit_status")
    files = {"out": os.path.join(home, "output.log"), "report": report}
    offsets = dict.fromkeys(files, 0)

    def tail() -> None:
        for kind, path in files.items():
            with (
                contextlib.suppress(OSError),
                open(path, encoding="utf-8", errors="replace") as fh,
            ):
                fh.seek(offsets[kind])
                chunk = fh.read()
                end = chunk.rfind("\n") + 1  # whole lines: the rest is read on the next tick
                offsets[kind] += len(chunk[:end].encode("utf-8"))
                for line in chunk[:end].splitlines():
                    if kind == "out" or line.strip():
                        out.add(kind, line)

    def gone() -> bool:  # the supervisor writes exit_status before it exits
        return os.path.exists(status) or _start_time(pid) is None

    # The supervisor's exit wakes the loop at once (a pidfd: it is not our child); output is
    # still read every tick.
    try:
        exited: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        exited = None
    try:
        while not gone():
            if exited is None:
                time.sleep(_TICK)
            else:
                select.select([exited], [], [], _TICK)
            tail()
            out.flush()
    except KeyboardInterrupt:  # ray.cancel: stop the trial's process group
        _killpg(pid, signal.SIGTERM)
        end = time.monotonic() + _KILL_GRACE
        while time.monotonic() < end and not gone():
            time.sleep(0.05)
        _killpg(pid, signal.SIGKILL)
        _reap(pid, add=False)
        raise
    finally:
        if exited is not None:
            os.close(exited)
    tail()
    _killpg(pid, signal.SIGKILL)  # children the trial left behind
    _reap(pid, add=False)
    try:
        with open(status) as fh:
            code = int(fh.read().strip() or "1")
    except (OSError, ValueError):
        return {"error": "the warm trial's supervisor vanished without an exit status"}
    return {"code": code}


def _run_command(
    out: _Outbox, job: dict[str, Any], master: tuple[str, int] | None
) -> dict[str, Any]:
    import ray

    trial_dir = _trial_dir(job["trial_dir"])
    argv = list(job["argv"])
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the worker's interpreter: the cluster's environment
    cwd = job["cwd"] if job["cwd"] and os.path.isdir(job["cwd"]) else trial_dir
    cold_why = ""
    if job.get("warm") and int(job["processes_per_worker"]) == 1 and int(job["workers"]) == 1:
        # One process per trial: a distributed trial's ranks start cold (torch.distributed
        # launches its own processes anyway).
        home = os.path.join(trial_dir, f"warm.{job['attempt']}")
        os.makedirs(home, exist_ok=True)
        report = os.path.join(trial_dir, "metrics.jsonl")
        open(report, "a").close()
        env = dict(os.environ)
        env.update(job["env"])
        env.update(
            {
                REPORT_FILE_ENV: report,
                TRIAL_ENV: json.dumps({**job["info"], "workdir": trial_dir}),
                "AUTOML_TRIAL_DIR": trial_dir,
                "AUTOML_ARTIFACT_DIR": os.path.join(trial_dir, "artifacts"),
                "AUTOML_RAY_GPU_IDS": ",".join(str(g) for g in ray.get_gpu_ids()),
                MARK_ENV: job["mark"],
                "PYTHONUNBUFFERED": "1",
            }
        )
        pid, cold_why = _warm_spawn(job, argv, env, cwd, home)
        if pid is not None:
            return _run_warm(out, job, pid, home, report)
    if cold_why:
        out.add("out", f"[automl] warm start unavailable ({cold_why}); starting cold")
    procs: list[tuple[int, subprocess.Popen[bytes], str]] = []
    gpu_ids = ",".join(str(g) for g in ray.get_gpu_ids())
    for local in range(int(job["processes_per_worker"])):
        rank = int(job["worker"]) * int(job["processes_per_worker"]) + local
        report = os.path.join(trial_dir, "metrics.jsonl" if rank == 0 else f"metrics.{rank}.jsonl")
        open(report, "a").close()
        env = dict(os.environ)
        env.update(job["env"])
        env.update(_dist_env(job, master, local))
        env.update(
            {
                REPORT_FILE_ENV: report,
                TRIAL_ENV: json.dumps({**job["info"], "workdir": trial_dir}),
                "AUTOML_TRIAL_DIR": trial_dir,
                "AUTOML_ARTIFACT_DIR": os.path.join(trial_dir, "artifacts"),  # save_model
                "AUTOML_RAY_GPU_IDS": gpu_ids,
                MARK_ENV: job["mark"],
                "PYTHONUNBUFFERED": "1",
            }
        )
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            for _, p, _ in procs:
                _killpg(p.pid, signal.SIGKILL)
                _reap(p.pid, add=False)
            return {"error": f"cannot start {argv[0]!r}: {exc.strerror or exc}"}
        _reap(proc.pid, add=True)
        procs.append((rank, proc, report))
        if rank == int(job["worker"]) * int(job["processes_per_worker"]):
            _started(out, job, proc.pid)
            out.flush()  # at once, not a tick later: the runner is stored before anything else

    def read(rank: int, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            out.add("out", raw.decode("utf-8", errors="replace").rstrip("\r\n"), rank)

    readers = [threading.Thread(target=read, args=(r, p), daemon=True) for r, p, _ in procs]
    for t in readers:
        t.start()
    offsets = {r: 0 for r, _, _ in procs}

    def tail_reports() -> None:
        for r, _, path in procs:
            with (
                contextlib.suppress(OSError),
                open(path, encoding="utf-8", errors="replace") as fh,
            ):
                fh.seek(offsets[r])
                chunk = fh.read()
                # only whole lines: a report being written is read on the next tick
                end = chunk.rfind("\n") + 1
                offsets[r] += len(chunk[:end].encode("utf-8"))
                for line in chunk[:end].splitlines():
                    if line.strip():
                        out.add("report", line, r)

    # A thread per process blocks in wait(): the loop wakes the moment one exits, where
    # Popen.wait(timeout) polls (every 50 ms at most, 25 ms late on average).
    ended = threading.Event()

    def wait(proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        ended.set()

    for _, p, _ in procs:
        threading.Thread(target=wait, args=(p,), daemon=True).start()
    try:
        while any(p.returncode is None for _, p, _ in procs):
            ended.wait(_TICK)  # returncode is set before ended: no exit is missed
            ended.clear()
            tail_reports()
            out.flush()
    except KeyboardInterrupt:  # ray.cancel: stop the whole process group of each process
        for _, p, _ in procs:
            _killpg(p.pid, signal.SIGTERM)
        end = time.monotonic() + _KILL_GRACE
        while time.monotonic() < end and any(p.poll() is None for _, p, _ in procs):
            time.sleep(0.05)
        for _, p, _ in procs:
            _killpg(p.pid, signal.SIGKILL)
            _reap(p.pid, add=False)
        raise
    for t in readers:
        t.join(timeout=5)
    tail_reports()
    codes = [p.wait() for _, p, _ in procs]
    for _, p, _ in procs:  # children left behind by a process that exited
        _killpg(p.pid, signal.SIGKILL)
        _reap(p.pid, add=False)
    bad = [c for c in codes if c != 0]
    return {"code": bad[0] if bad else 0}


def _as_metrics(result: Any, metric: str) -> dict[str, float]:
    if result is None:
        return {}
    if isinstance(result, Mapping):
        return {str(k): float(v) for k, v in result.items()}
    return {metric: float(result)}


def _run_function(
    out: _Outbox, job: dict[str, Any], master: tuple[str, int] | None
) -> dict[str, Any]:
    import ray.cloudpickle as cloudpickle

    from automl import _report  # a function trial needs automl on the worker (automl.report)
    from trials._inprocess import takes_dict

    for p in reversed(job["sys_path"]):  # the controller's import paths, for a local cluster
        if p not in sys.path and os.path.isdir(p):
            sys.path.insert(0, p)
    # trial.warm: a function runs in the Ray worker itself, which Ray reuses between tasks, so
    # importing the preload list here makes every later trial on this worker start warm.
    for name in job.get("preload", ()):
        try:
            importlib.import_module(name)
        except Exception as exc:  # never a failed trial: it imports what it needs itself
            out.add("out", f"[automl] preload of {name!r} failed ({type(exc).__name__}: {exc})")
    trial_dir = _trial_dir(job["trial_dir"])
    os.environ.update(_dist_env(job, master, 0))
    os.environ[MARK_ENV] = job["mark"]  # inherited by what the objective starts
    info = job["info"]
    _started(out, job, os.getpid())
    out.flush()
    main = int(job["worker"]) == 0

    def reporter(step: int | None, metrics: Mapping[str, float]) -> None:
        if main:
            out.add("metrics", (step, dict(metrics)))

    stop = threading.Event()

    def pump() -> None:
        while not stop.wait(_TICK):
            out.flush()

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    writer = _LineWriter(out)
    token = _report.bind(
        _report.TrialInfo(
            info["id"],
            info["experiment"],
            int(info["number"]),
            info["params"],
            trial_dir,
            info.get("checkpoint_dir"),
            info.get("parent_checkpoint_dir"),
            os.path.join(trial_dir, "artifacts"),
        ),
        reporter,
        lambda: False,
    )
    try:
        fn = cloudpickle.loads(job["function"])
        params = dict(info["params"])
        with contextlib.redirect_stdout(writer):
            result = fn(params) if takes_dict(fn, params) else fn(**params)
        metrics = _as_metrics(result, job["metric"]) if main else {}
    except _report.TrialStopped:
        return {"stopped": True}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"}
    finally:
        os.environ.pop(MARK_ENV, None)
        _report.unbind(token)
        writer.close_partial()
        stop.set()
        pumper.join()
    if metrics:
        out.add("metrics", (None, metrics))
    return {"code": 0}
