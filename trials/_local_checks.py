"""Checks of a local trial before it starts.

The resources a spec asks for fit this machine; the program a command names can be started.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from automl.core import ExperimentSpec
from automl.errors import SpecError, SpecIssue
from trials._gpu import FreeMemory, GpuDevice, Request, ResourceAllocator, discover_gpus_live
from trials._launch import python_command

__all__ = ["check_local_resources", "not_runnable"]


def not_runnable(program: str, cwd: Path, env: Mapping[str, str]) -> str | None:
    """Why ``program`` cannot be started (the supervisor's shell would only say 127), or None."""
    if not program:
        return "cannot start the trial: its command is empty"
    if "/" in program:
        path = Path(program) if os.path.isabs(program) else cwd / program
        if not path.exists():
            return f"cannot start {program!r}: No such file or directory"
        if path.is_dir() or not os.access(path, os.X_OK):
            return f"cannot start {program!r}: Permission denied"
        return None
    if shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        return f"cannot start {program!r}: No such file or directory"
    return None


def check_local_resources(
    spec: ExperimentSpec,
    gpus: Sequence[GpuDevice] | None = None,
    cpus: float | None = None,
    *,
    free_memory: FreeMemory | None = None,
) -> ResourceAllocator | None:
    """The allocator a spec's trial resources need here (None without gpu or cpu), checked.

    Call it before storing an experiment to fail fast; :class:`LocalProcessExecutor` calls it.

    Args:
        spec: The experiment.
        gpus: The devices (default: discovered, only when ``resources.gpu`` is set).
        cpus: Cores trials may hold (default: ``executor.settings.cpus``, else all).
        free_memory: Reads the devices' live free memory (default: the discovering backend's
            reader when ``gpus`` is not given).

    Raises:
        SpecError: The resources can never fit this machine (more GPUs or GPU memory than it
            has, more cores than ``cpus``), or a distributed trial's command is not a Python
            program; named by field (``trial.resources.gpu`` in a native spec).
    """
    template = spec.trial_template
    r = template.resources
    field_ = "trial.resources" if spec.source == "native" else "trial_template.resources"
    issues: list[SpecIssue] = []
    if r.distributed and python_command(template.command or ()) is None:
        issues.append(
            SpecIssue(
                f"{field_}.processes_per_worker"
                if r.processes_per_worker > 1
                else f"{field_}.workers",
                "a distributed trial runs under torchrun, which needs a Python program "
                "(python script.py ..., python -m module ..., or script.py ...); got the "
                f"command {' '.join(template.command or ())!r}",
            )
        )
    if r.gpu <= 0 and r.cpu is None:
        if issues:
            raise SpecError(issues)
        return None
    if cpus is None and spec.executor.settings.get("cpus") is not None:
        raw = spec.executor.settings["cpus"]
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
            issues.append(
                SpecIssue("executor.settings.cpus", f"must be a number > 0; got {raw!r}")
            )
        else:
            cpus = float(raw)
    if gpus is None and r.gpu > 0:
        gpus, found = discover_gpus_live()
        free_memory = free_memory or found
    allocator = ResourceAllocator(gpus or (), cpus, free_memory=free_memory)
    issues.extend(allocator.problems(Request.of(r), field_))
    if issues:
        raise SpecError(issues)
    return allocator
