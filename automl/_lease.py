"""Who holds an experiment: controller ids (``host:pid:nonce``) and whether their process lives."""

from __future__ import annotations

import os
import socket
import time

from automl.core import ExperimentRecord

__all__ = ["controller_live"]

STALE_S = 30.0  # a controller on another host is gone once its heartbeat is this old


def _holder_alive(controller: str | None) -> bool | None:
    """Whether the process behind a controller id lives.

    True or False on this host; None on another host, where only its heartbeat tells.
    """
    if not controller:
        return False
    host, _, rest = controller.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_dead(controller: str | None) -> bool:
    """Whether a controller id names a process on this host that no longer exists."""
    return _holder_alive(controller) is False


def controller_live(exp: ExperimentRecord) -> bool:
    """Whether a live controller holds the experiment (by pid on this host, else heartbeat)."""
    alive = _holder_alive(exp.controller) if exp.controller else False
    if alive is None:
        return exp.heartbeat_at is not None and time.time() - exp.heartbeat_at < STALE_S
    return alive
