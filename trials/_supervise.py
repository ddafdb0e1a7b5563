"""A trial process that outlives its controller, and the files that tell its fate.

A local trial runs under a tiny supervisor: ``/bin/sh`` with a fixed script, started in a new
session, that writes its own pid to ``supervisor.pid`` in the trial's directory, runs the
trial's argv (as ``"$@"``: values are never parsed by the shell), and writes the trial's exit
status to ``exit_status`` before it exits. The trial's stdout and stderr go straight to
``trial.log`` (a file, not a pipe), so nothing breaks when the controller dies: the trial runs to
its end, and whoever runs the experiment next reads what it left behind (the log, the
``metrics.jsonl`` of :func:`automl.report`, the exit status) instead of running it again.

Only builtins run in the shell (``echo``, redirection), so the supervisor costs one fork and
exec of ``/bin/sh`` per trial. A file is written with a single ``write`` of a few bytes; a
reader that finds it empty treats it as not written yet.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_FILE",
    "PID_FILE",
    "SUPERVISOR",
    "decode_status",
    "descendant_groups",
    "group_alive",
    "on_exit",
    "process_start_time",
    "read_exit",
    "read_pid",
    "reap_runner",
    "signal_group",
    "supervised_argv",
    "supervisor_state",
]

PID_FILE = "supervisor.pid"
EXIT_FILE = "exit_status"

#: The supervisor script: $1 is the trial directory, the rest is the trial's argv. A trial that a
#: signal kills by itself gets the shell's one-line note ("Terminated", "Killed") at the end of
#: its log, as a terminal would show it.
SUPERVISOR = (
    'd=$1; shift; echo $$ > "$d/supervisor.pid"; "$@"; s=$?; echo $s > "$d/exit_status"; exit $s'
)


def supervised_argv(argv: list[str], workdir: Path) -> list[str]:
    """``argv`` wrapped in the supervisor for the trial directory ``workdir``."""
    return ["/bin/sh", "-c", SUPERVISOR, "automl-trial", str(workdir), *argv]


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:  # empty: being written
        return None


def read_exit(workdir: Path) -> int | None:
    """The trial's exit status as the supervisor wrote it (0-255), or None if not written."""
    return _read_int(workdir / EXIT_FILE)


def read_pid(workdir: Path) -> int | None:
    """The supervisor's pid, or None before it wrote it."""
    return _read_int(workdir / PID_FILE)


def decode_status(status: int) -> int:
    """A shell's ``$?`` as Popen's returncode: 128+N (killed by signal N) becomes -N."""
    return -(status - 128) if 128 < status < 128 + 65 else status


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), to tell a live process from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: nobody may reap orphans in a container)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return fields[0] not in ("Z", "X")


def _is_supervisor_of(pid: int, workdir: Path) -> bool:
    """Whether ``pid`` is the supervisor of ``workdir`` (its argv names the directory)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _alive(pid)  # no /proc: trust the pid file
    return str(workdir).encode() in argv


def supervisor_state(
    workdir: Path, pid: int | None = None, start: str | None = None
) -> tuple[str, int | None]:
    """Where a supervised trial stands: exited, running, starting or lost.

    Returns ``("exited", status)``, ``("running", pid)``, ``("starting", None)`` or
    ``("lost", None)``. ``lost`` means no exit status was written and no supervisor runs: the
    machine rebooted or someone killed the process group, so the trial's fate cannot be known.
    The supervisor is known by its command line (which names ``workdir``) or, for one forked
    from a warm server (whose command line is the server's), by its kernel ``start`` time.
    """
    status = read_exit(workdir)
    if status is not None:
        return "exited", status
    pid = read_pid(workdir) or pid
    if pid is None:
        return ("starting", None) if workdir.is_dir() else ("lost", None)
    ours = (start is not None and process_start_time(pid) == start) or _is_supervisor_of(
        pid, workdir
    )
    if _alive(pid) and ours:
        return "running", pid
    status = read_exit(workdir)  # it may have ended between the two reads
    if status is not None:
        return "exited", status
    return "lost", None


def _processes() -> list[tuple[int, str, int, int]] | None:
    """(pid, state, parent pid, process group) of every process (Linux ``/proc``); None without."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    out = []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            out.append((int(name), fields[0], int(fields[1]), int(fields[2])))
        except (OSError, IndexError, ValueError):
            continue
    return out


def descendant_groups(pid: int) -> set[int]:
    """Process groups of ``pid``'s descendants other than its own (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    pgid: dict[int, int] = {}
    for p, _, parent, group in _processes() or []:
        children.setdefault(parent, []).append(p)
        pgid[p] = group
    out: set[int] = set()
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        if pgid.get(child, pid) != pid:
            out.add(pgid[child])
        todo.extend(children.get(child, []))
    return out


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` still runs (zombies do not count)."""
    procs = _processes()
    if procs is None:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return any(group == pgid and state not in ("Z", "X") for _, state, _, group in procs)


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group ``pid`` leads; a gone group is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def reap_runner(runner: Mapping[str, Any]) -> None:
    """Kill the process group a trial's runner details name, if it still runs on this host.

    The pid's kernel start time must match the stored one, so a reused pid is never hit.
    """
    pid = runner.get("pid")
    if not isinstance(pid, int) or runner.get("host") != socket.gethostname():
        return
    start = process_start_time(pid)
    if start is not None and start == runner.get("start"):
        groups = descendant_groups(pid)  # torchrun's ranks run in sessions of their own
        signal_group(pid, signal.SIGKILL)
        for g in groups:
            signal_group(g, signal.SIGKILL)


def on_exit(pid: int, callback: Callable[[], None]) -> bool:
    """Call ``callback`` (on a thread of its own) as soon as process ``pid`` has exited.

    For a supervisor that is not our child (a warm trial's, an adopted trial's): the executor
    notices its end at once instead of at its next look at the files. Uses a pidfd (Linux 5.3+).

    Returns:
        False when no pidfd could be opened (the process is gone, or the system has none): the
        caller's own polling finds the end.
    """
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return False

    def wait() -> None:
        try:
            select.select([fd], [], [])  # readable once the process has exited
        finally:
            os.close(fd)
        callback()

    threading.Thread(target=wait, name=f"exit-{pid}", daemon=True).start()
    return True
