"""Warm trial starts: a fork server with the trial's heavy imports done once.

``trial.warm: {preload: [torch, sklearn, mypackage.train]}`` starts one Python process per local
executor that imports those modules, then forks each ``python script.py ...`` or
``python -m module ...`` trial from it instead of starting a cold interpreter. The forked trial is
set up as a cold one would be: a session (process group) of its own, its working directory, its
environment (exactly the trial's), ``sys.argv``, ``sys.path[0]``, stdin from ``/dev/null``,
stdout and stderr appended to ``trial.log`` (unbuffered, as ``PYTHONUNBUFFERED=1`` makes a cold
trial), default signal handlers, and the script run as ``__main__`` (``runpy``). Its exit code is
the script's (``sys.exit``, an uncaught exception's 1, a signal's).

Each trial has a supervisor (it writes ``supervisor.pid`` and, when the trial ends,
``exit_status``, as the shell supervisor of a cold trial does: :mod:`trials._supervise`), whose
child runs the script. So a warm trial outlives its controller and is adopted the same way.

**Spares.** The server keeps one spare per trial that may run at once (the executor's parallel
trial count; a node's server on Ray starts with one per CPU, at most 8), and one more each time a
trial finds none left while that many trials run: a process forked from it, waiting for a trial,
with its supervisor, a small interpreter of its own. A fork of a process the size of the server
(torch loaded) takes ~7 ms and the supervisor's start ~10 ms; spares are made before the server
says it is ready and again once no request has come for 100 ms (the trials just started run first),
so starting a trial costs two pipe writes. The trial's process sends its exit code to its
supervisor just before it exits, so the ~10 ms the kernel takes to tear down a process that size
are not counted against the trial; a trial killed by a signal sends nothing and its supervisor
waits for its exit status as before. The server is a child subreaper: a trial's process still
leaving after its supervisor has gone is reaped there.

**No CUDA context in the fork server.** A CUDA context does not survive ``fork``: a child that
touches the GPU after its parent initialised CUDA fails ("Cannot re-initialize CUDA in forked
subprocess"). Importing torch does not initialise CUDA, but calling into it does
(``torch.cuda.is_available()`` does not; ``torch.cuda.device_count()`` may on some builds;
creating a tensor on a device does). The server therefore only imports the listed modules and
calls nothing; after the imports it checks ``torch.cuda.is_initialized()`` when torch is loaded,
and refuses to serve (cold starts, with a warning) if a module's import initialised CUDA. Each
trial initialises CUDA itself, in its own process, with its own ``CUDA_VISIBLE_DEVICES``.

A module that cannot be imported (or a server that does not start) never fails a trial: the
executor falls back to cold starts and says why in every trial's log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from trials._launch import PythonCommand, python_command

__all__ = ["SERVER_SCRIPT", "WarmPool", "warm_program"]

# The fork server. Its stdin (and its Unix socket, when it has one) takes one JSON request per
# line; it answers one JSON line each.
_SERVER = r"""
import importlib, json, os, signal, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
torch = sys.modules.get("torch")
try:
    cuda = bool(torch is not None and torch.cuda.is_initialized())
except Exception:
    cuda = False
if cuda:
    failed["torch"] = "importing the preload modules initialised CUDA, which a fork cannot inherit"
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
try:  # a trial whose supervisor is gone is reparented to us (and reaped), not to a stray init
    import ctypes
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:
    pass
_want = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else min(8, os.cpu_count() or 2)
_path = sys.argv[3] if len(sys.argv) > 3 else ""  # a Unix socket that also takes requests
_idle = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0  # leave after this long without one
_out = os.dup(1)
_private = set()  # the server's own descriptors (socket, connections): no child keeps them
_spares = []  # (supervisor pid, pipe to the supervisor, pipe to the trial's process)
_done = [None]  # in a trial's process: the pipe its exit code goes up to its supervisor


def _read_all(fd):
    chunks = []
    while True:
        try:
            b = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def _trial(req):
    fd = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.stdout.reconfigure(line_buffering=True, write_through=True)
    sys.stderr.reconfigure(line_buffering=True, write_through=True)
    import runpy
    code = 0
    try:
        if req["module"]:
            sys.argv = [req["target"], *req["args"]]
            sys.path[0] = os.getcwd()
            runpy.run_module(req["target"], run_name="__main__", alter_sys=True)
        else:
            sys.argv = [req["target"], *req["args"]]
            sys.path[0] = os.path.dirname(os.path.abspath(req["target"]))
            runpy.run_path(req["target"], run_name="__main__")  # sets argv[0] as given
    except SystemExit as exc:
        c = exc.code
        if c is None:
            code = 0
        elif isinstance(c, int):
            code = c & 0xFF
        else:
            print(c, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        if _done[0] is not None:
            try:
                os.write(_done[0], bytes([code & 0xFF]))
            except OSError:
                pass
        os._exit(code)


# A trial's supervisor: it writes its pid file when the server hands it a trial, then the trial's
# exit status, as the shell supervisor of a cold trial does. It is a small interpreter of its own
# (exec'd), so its exit, which the executor waits for, does not tear down a copy of the server.
_SUPERVISOR = r'''
import os, select, sys
child, inbox, done = (int(a) for a in sys.argv[1:4])
chunks = []
while True:
    try:
        b = os.read(inbox, 65536)
    except InterruptedError:
        continue
    if not b:
        break
    chunks.append(b)
os.close(inbox)
workdir = b"".join(chunks).decode()
if workdir:
    with open(os.path.join(workdir, "supervisor.pid"), "w") as fh:
        fh.write(f"{os.getpid()}\n")
# The trial's process sends its exit code just before it exits: the ~10 ms the kernel takes to
# tear down a process the size of the server are not the trial's. A signal's end sends nothing;
# then (or while a process the trial forked holds the pipe open) the exit status is waited for.
early = None
watch = [done]
try:
    watch.append(os.pidfd_open(child))
except (AttributeError, OSError):
    pass
while workdir and early is None and done in watch:
    try:
        ready = select.select(watch, [], [])[0]
    except InterruptedError:
        continue
    if done in ready:
        b = os.read(done, 1)
        if b:
            early = b[0]
        else:
            watch.remove(done)
    elif ready:
        break
if early is None:
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
if not workdir:  # the server left before handing us a trial
    os._exit(0)
if early is None:
    code = os.waitstatus_to_exitcode(status)
    early = 128 - code if code < 0 else code
# The trial's process, if it is still leaving, is reaped by the server (a subreaper). The status
# appears whole (renamed into place): a reader never sees an empty file.
path = os.path.join(workdir, "exit_status")
with open(path + ".tmp", "w") as fh:
    fh.write(f"{early}\n")
os.replace(path + ".tmp", path)
os._exit(early & 0xFF)
'''


# A spare: a trial's process and its supervisor, forked and waiting for a request. A fork of a
# process the size of the server (torch loaded) takes ~7 ms, and the supervisor's interpreter
# ~10 ms to start; spares are made while no request waits, so a start costs two pipe writes. The
# request goes straight to the trial's process, which starts at once even when no spare was left.
def _spare():
    inbox, to_sup = os.pipe()
    mine, to_trial = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (to_sup, to_trial, _out, *_private, *(w for s in _spares for w in s[1:])):
                os.close(fd)  # only the server may hold a spare's pipes (EOF: it is gone)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.close(null)
            os.setsid()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            done, _done[0] = os.pipe()
            child = os.fork()
            if child == 0:
                os.close(inbox)
                os.close(done)
                data = _read_all(mine)
                os.close(mine)
                if not data:
                    os._exit(0)
                _trial(json.loads(data))
            os.close(mine)
            os.close(_done[0])
            for fd in (inbox, done):
                os.set_inheritable(fd, True)
            os.execv(
                sys.executable,
                [sys.executable, "-I", "-S", "-c", _SUPERVISOR, str(child), str(inbox), str(done)],
            )
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(127)
    os.close(inbox)
    os.close(mine)
    _spares.append((pid, to_sup, to_trial))


def _send(fd, data):  # the whole of data, then EOF; False if the reader is gone
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _alive(pid):
    try:
        os.kill(pid, 0)  # our supervisors are reaped at once (SIGCHLD ignored): gone is gone
        return True
    except ProcessLookupError:
        return False
    except OSError:  # not ours to signal: someone's, so alive
        return True


_running = set()  # supervisors of the trials handed out


def _serve(req):  # hand a request to a spare; the supervisor's pid
    global _want
    data = json.dumps(req).encode()
    while True:
        if not _spares or len(_running) > 4 * _want:
            _running.intersection_update([p for p in _running if _alive(p)])
        if not _spares:
            # More trials at once than spares: keep one more from now on. Spares taken moments
            # ago and not yet replaced (the quiet window below) are no reason to.
            if len(_running) >= _want:
                _want = min(_want + 1, 64)
            _spare()
        pid, to_sup, to_trial = _spares.pop(0)
        alive = _alive(pid)
        # A spare that died waiting (killed by hand, out of memory) ran nothing: take another.
        if alive and _send(to_trial, data):
            _send(to_sup, req["workdir"].encode())
            _running.add(pid)
            return pid
        if alive:
            os.close(to_sup)
        else:
            for fd in (to_sup, to_trial):
                os.close(fd)


import gc
import select

# What the imports made lives as long as the server: out of the collector's sight (gc.freeze, as
# Python's docs advise before fork without exec), so a trial's collections do not write to, and
# copy, the pages it shares with the server.
gc.collect()
gc.freeze()
if not failed:  # the first trials, waiting for our imports, start from spares too
    while len(_spares) < _want:
        _spare()
import socket
import time

_listener = None
if _path and not failed:
    try:
        os.unlink(_path)
    except FileNotFoundError:
        pass
    _listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _listener.bind(_path)  # in a directory only our user can enter
    _listener.listen(64)
    _private.add(_listener.fileno())
os.write(_out, (json.dumps({"ready": not failed, "failed": failed}) + "\n").encode())
# Requests come one JSON line each, on stdin (answered on stdout) or on a connection to the
# socket (answered on it). Every request that has arrived is served before a spare is forked.
_pending = {0: b""}
_conns = {}
_last = time.monotonic()


def _drop(fd):
    _pending.pop(fd, None)
    conn = _conns.pop(fd, None)
    if conn is not None:
        _private.discard(fd)
        conn.close()


while True:
    fd = next((k for k, v in _pending.items() if b"\n" in v), None)
    if fd is not None:
        line, _pending[fd] = _pending[fd].split(b"\n", 1)
        if line.strip():
            reply = (json.dumps({"pid": _serve(json.loads(line))}) + "\n").encode()
            _last = time.monotonic()
            if fd == 0:
                os.write(_out, reply)
            else:
                try:
                    _conns[fd].sendall(reply)
                except OSError:
                    _drop(fd)
        continue
    watch = [0, *([_listener] if _listener is not None else []), *_conns.values()]
    # Trials that end together ask together: while requests keep coming, answer them before
    # forking spares (each fork holds the loop for ~7 ms, more on a busy machine). Then 100 ms
    # of quiet before the next spares: the trials just started get the CPU to reach their first
    # line (on 2 cores, forking at once doubled that, 10 -> 20 ms, for 8 trials at a time).
    burst = max(0.0, _last + 0.1 - time.monotonic())
    ready = select.select(watch, [], [], burst)[0]
    if not ready and len(_spares) < _want:
        _spare()
        continue
    if not ready:
        wait = max(0.0, _last + _idle - time.monotonic()) if _idle else None
        ready = select.select(watch, [], [], wait)[0]
        if not ready and _idle and time.monotonic() - _last >= _idle and not _conns:
            os._exit(0)  # idle: the next trial starts a fresh server (its memory goes back)
    for r in ready:
        if r is _listener:
            try:
                conn, _ = _listener.accept()
            except OSError:
                continue
            _conns[conn.fileno()] = conn
            _pending[conn.fileno()] = b""
            _private.add(conn.fileno())
        elif r == 0:
            chunk = os.read(0, 65536)
            if not chunk:
                # No more trials (stdin closed). Leave without the interpreter's shutdown, which
                # takes about a second with torch loaded; the spares see their pipes close and
                # leave too.
                os._exit(0)
            _pending[0] += chunk
        else:
            try:
                chunk = r.recv(65536)
            except OSError:
                chunk = b""
            if chunk:
                _pending[r.fileno()] += chunk
            else:
                _drop(r.fileno())
"""


#: The fork server's program, also sent with a Ray job (trials._ray_worker forks from it there).
SERVER_SCRIPT = _SERVER


def warm_program(argv: Sequence[str]) -> PythonCommand | None:
    """``argv`` as a program the fork server can run, or None (it then starts cold).

    Only ``python script.py ...`` or ``python -m module ...`` with this interpreter and no
    interpreter options: anything else (another interpreter, ``-u``, ``-O``, a shebang script)
    could behave differently when forked from this one.
    """
    if len(argv) < 2 or argv[0] != sys.executable:
        return None
    if argv[1].startswith("-") and argv[1] != "-m":
        return None
    return python_command(argv)


class WarmPool:
    """One fork server for an executor's trials (started on the first warm trial).

    Args:
        preload: Modules to import once in the server.
        spares: Trial processes the server keeps forked and waiting (the trials that may start
            at once), so that a start does not wait for a fork of the server.

    Attributes:
        problem: Why trials start cold (a module that did not import, CUDA initialised by an
            import, a server that did not start), or None while the server serves.
    """

    def __init__(self, preload: Sequence[str], spares: int = 2) -> None:
        self._preload = list(preload)
        self._spares = max(1, spares)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.problem: str | None = None

    def start_soon(self) -> None:
        """Start the server in the background now.

        Its imports then overlap the controller's start-up instead of delaying the first trial.
        """

        def go() -> None:
            with self._lock:
                self._start()

        threading.Thread(target=go, name="warm-server-start", daemon=True).start()

    def _start(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        if self.problem is not None:
            return False
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _SERVER, json.dumps(self._preload), str(self._spares)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self.problem = f"the warm trial server did not start: {exc.strerror or exc}"
            return False
        reply = self._read()
        if reply is None:
            self.problem = "the warm trial server exited while importing its preload modules"
            return False
        if not reply.get("ready"):
            failed = reply.get("failed")
            items = failed.items() if isinstance(failed, dict) else []
            self.problem = "preload failed (" + "; ".join(f"{k}: {v}" for k, v in items)
            self.problem += ")"
            self.close()
            return False
        return True

    def _read(self) -> dict[str, object] | None:
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            return None
        parsed = json.loads(line)
        return parsed if isinstance(parsed, dict) else None

    def spawn(
        self,
        program: PythonCommand,
        env: Mapping[str, str],
        cwd: Path,
        workdir: Path,
    ) -> int | None:
        """Fork the trial; the pid of its supervisor, or None (then start it cold)."""
        with self._lock:
            if not self._start():
                return None
            assert self._proc is not None and self._proc.stdin is not None
            req = {
                "target": program.target,
                "module": program.module,
                "args": list(program.args),
                "env": dict(env),
                "cwd": str(cwd),
                "workdir": str(workdir),
                "log": str(workdir / "trial.log"),
            }
            try:
                self._proc.stdin.write((json.dumps(req) + "\n").encode())
                self._proc.stdin.flush()
                reply = self._read()
            except (OSError, ValueError):
                reply = None
            if reply is None or not isinstance(reply.get("pid"), int):
                self.problem = "the warm trial server stopped answering"
                self.close()
                return None
            pid = reply["pid"]
            assert isinstance(pid, int)
            return pid

    def close(self) -> None:
        """Stop the server (forked trials run on: they are in sessions of their own)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
