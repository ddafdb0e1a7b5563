"""Warm trial starts: a fork server with the trial's heavy imports done once.

``trial.warm: {preload: [torch, sklearn, mypackage.train]}`` starts one Python process per local
executor that imports those modules, then forks each ``python script.py ...`` or
``python -m module ...`` trial from it instead of starting a cold interpreter. The forked trial is
set up as a cold one would be: a session (process group) of its own, its working directory, its
environment (exactly the trial's), ``sys.argv``, ``sys.path[0]``, stdin from ``/dev/null``,
stdout and stderr appended to ``trial.log`` (unbuffered, as ``PYTHONUNBUFFERED=1`` makes a cold
trial), default signal handlers, and the script run as ``__main__`` (``runpy``). Its exit code is
the script's (``sys.exit``, an uncaught exception's 1, a signal's).

Each trial is forked twice: the first child is the trial's supervisor (it writes
``supervisor.pid`` and, when the trial ends, ``exit_status``, as the shell supervisor of a cold
trial does: :mod:`trials._supervise`), the second runs the script. So a warm trial outlives its
controller and is adopted the same way.

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

# The fork server. Its stdin takes one JSON request per line; it answers one JSON line each.
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
sys.stdout.write(json.dumps({"ready": not failed, "failed": failed}) + "\n")
sys.stdout.flush()
_out = os.dup(1)


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
        os._exit(code)


def _supervise(req):
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    workdir = req["workdir"]
    with open(os.path.join(workdir, "supervisor.pid"), "w") as fh:
        fh.write(f"{os.getpid()}\n")
    child = os.fork()
    if child == 0:
        _trial(req)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    shell = 128 - code if code < 0 else code  # as the shell supervisor writes $?
    with open(os.path.join(workdir, "exit_status"), "w") as fh:
        fh.write(f"{shell}\n")
    os._exit(shell & 0xFF)


for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(_out)
            _supervise(req)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(127)
    os.write(_out, (json.dumps({"pid": pid}) + "\n").encode())
# No more trials (the executor closed our stdin). Leave without the interpreter's shutdown,
# which takes about a second with torch loaded, and the executor's close waits for us.
os._exit(0)
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

    Attributes:
        problem: Why trials start cold (a module that did not import, CUDA initialised by an
            import, a server that did not start), or None while the server serves.
    """

    def __init__(self, preload: Sequence[str]) -> None:
        self._preload = list(preload)
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
                [sys.executable, "-c", _SERVER, json.dumps(self._preload)],
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
