"""Launchers for distributed trials: a trial's argv wrapped in ``torchrun`` on this machine.

A trial with ``processes_per_worker: N`` runs its Python program as N processes (``workers`` *
N when ``workers`` > 1, all on this machine) under ``python -m torch.distributed.run`` with a
free loopback port per trial. Only local rank 0's output reaches the trial log
(``--local-ranks-filter 0``), so stdout metrics are observed once; :func:`automl.report` writes
only on rank 0 for the same reason.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from automl.core import Resources, TrialTemplate

__all__ = ["PythonCommand", "free_port", "python_command", "torchrun_argv", "torchrun_env"]

_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
# Interpreter options that take a value as the next argument.
_OPTS_WITH_VALUE = {"-W", "-X", "-Q"}


@dataclass(frozen=True, slots=True)
class PythonCommand:
    """A command split into what runs it: ``python [opts] script args`` or ``python -m mod args``.

    Attributes:
        target: The script path or module name.
        module: Whether ``target`` is a module (``-m``).
        args: The program's own arguments.
    """

    target: str
    module: bool
    args: tuple[str, ...]


def python_command(argv: Sequence[str]) -> PythonCommand | None:
    """``argv`` as a Python program, or None when it is not one.

    Accepted: ``python``/``python3``/``python3.11``/an interpreter path (or ``sys.executable``)
    followed by interpreter options (dropped: torchrun starts each process itself) and then
    ``script.py args`` or ``-m module args``; or a ``*.py`` script as the command itself.
    """
    if not argv:
        return None
    head = argv[0]
    if head.endswith(".py"):
        return PythonCommand(head, False, tuple(argv[1:]))
    if head != sys.executable and not _PYTHON.match(os.path.basename(head)):
        return None
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "-m":
            return (
                PythonCommand(argv[i + 1], True, tuple(argv[i + 2 :]))
                if i + 1 < len(argv)
                else None
            )
        if a.startswith("-m") and len(a) > 2:
            return PythonCommand(a[2:], True, tuple(argv[i + 1 :]))
        if a in ("-c", "-") or a.startswith("-c"):
            return None  # inline code has no file each process could run
        if a in _OPTS_WITH_VALUE:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return PythonCommand(a, False, tuple(argv[i + 1 :]))
    return None


def template_is_python(template: TrialTemplate) -> bool:
    """Whether the template's command (before substitution) is a Python program."""
    return template.command is not None and python_command(template.command) is not None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nproc(resources: Resources) -> int:
    """Processes of a trial on this machine: ``workers * processes_per_worker``."""
    return max(1, resources.workers * resources.processes_per_worker)


def torchrun_argv(
    command: PythonCommand, processes: int, port: int, python: str | None = None
) -> list[str]:
    """The argv that runs ``command`` as ``processes`` ranks under torchrun on this machine.

    Args:
        command: The trial's Python program.
        processes: ``--nproc-per-node``.
        port: The rendezvous port on 127.0.0.1 (one per trial: see :func:`free_port`).
        python: The interpreter (default: the one running automl).
    """
    return [
        python or sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(processes),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        "--local-ranks-filter",
        "0",
        *(["-m"] if command.module else []),
        "--",
        command.target,
        *command.args,
    ]


def torchrun_env(env: dict[str, str]) -> dict[str, str]:
    """Settings every rank needs locally, unless the trial's environment sets them.

    Gloo talks over loopback (no other interface need be up or reachable), and each rank runs one
    OpenMP thread (torchrun's own default, set here so it does not warn about it).
    """
    out = dict(env)
    if os.path.exists("/sys/class/net/lo"):
        out.setdefault("GLOO_SOCKET_IFNAME", "lo")
    out.setdefault("OMP_NUM_THREADS", "1")
    return out
