"""Reaching a Ray cluster from the controller's side, and reaping a dead controller's trials.

:func:`probe` fails fast on an address nothing listens on; :func:`reap_ray` kills every process
of a trial attempt that nobody can adopt (``automl stop`` without a live controller), on every
node of the cluster it ran on.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from automl.core import ExperimentSpec
from automl.errors import SpecError
from trials import _ray_warm, _ray_worker
from trials._ray_worker import _kill_marked

__all__ = ["probe", "reap_ray"]

CONNECT_TIMEOUT = 5.0  # seconds to reach a cluster's address before giving up


def _by_value(ray: Any) -> None:
    """Ship the task code (:mod:`trials._ray_worker`, :mod:`trials._ray_warm`) by value.

    By reference, each fresh worker would import the ``trials`` and ``automl`` packages (pydantic
    models, every executor: ~0.4 s of CPU, 1.5 s for 8 workers starting at once on 2 cores) before
    its first trial; by value it needs only the standard library and ray, which it has loaded.
    A command trial then needs nothing of automl on the worker; a function trial imports
    ``automl._report`` (``automl.report``) when it starts.
    """
    ray.cloudpickle.register_pickle_by_value(_ray_worker)
    ray.cloudpickle.register_pickle_by_value(_ray_warm)


def _import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise SpecError(
            f"executor: ray needs the 'ray' package ({exc}): pip install 'automl[ray]'",
            path="executor.kind",
        ) from exc


def probe(address: str) -> None:
    """Fail fast (CONNECT_TIMEOUT) on a host:port nothing listens on.

    ray.init would retry for minutes.
    """
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        if address.startswith("ray://"):
            host, port = hostport, "10001"
        else:
            raise SpecError(
                f"must be host:port, ray://host:port or 'auto'; got {address!r}",
                path="executor.address",
            )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise SpecError(
            f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc}",
            path="executor.address",
        ) from exc


def _loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rpartition(":")[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def _same_address(a: str, b: str) -> bool:
    def norm(x: str) -> str:
        x = x.split("://", 1)[-1]
        return x.replace("localhost", "127.0.0.1")

    return norm(a) == norm(b)


def reap_ray(spec: ExperimentSpec, runner: Mapping[str, Any]) -> bool:
    """Kill a Ray trial a dead controller left, for a stop without a live controller.

    Connects to the cluster at the address the trial's ``started`` event stored and kills every
    process of that trial attempt on every live node (a task per node, found by the
    ``AUTOML_RAY_TRIAL`` mark in their environment), then disconnects. Ray itself ends the
    Ray workers of a driver that died, and each worker's reaper the process groups of its
    trials; what this adds is the rest: processes a trial started in a session of their own,
    and trials whose worker Ray had not ended yet. A local cluster that the dead controller
    started died with it (its processes share its fate): only this machine is searched then,
    as it is when the cluster cannot be reached.

    Returns:
        False when ``runner`` is not a Ray trial's (nothing to do), else True.
    """
    info = runner.get("ray")
    if not isinstance(info, Mapping) or not info.get("mark"):
        return False
    address = str(info.get("address") or "")
    if info.get("local") or not address:
        _reap_here(runner, info)
        return True
    if _loopback(address):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = _import_ray()
    if ray.is_initialized():
        if not _same_address(str(info.get("gcs", "")), ray.get_runtime_context().gcs_address):
            _reap_here(runner, info)  # one connection per process: not to a second cluster
            return True
        _reap_on_cluster(ray, info)
        return True
    try:
        probe(address)
    except SpecError as exc:
        logging.getLogger(__name__).warning("ray: nothing to reap on the cluster: %s", exc)
        _reap_here(runner, info)
        return True
    kwargs: dict[str, Any] = {
        "address": address,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if spec.executor.settings.get("runtime_env"):
        kwargs["runtime_env"] = dict(spec.executor.settings["runtime_env"])
    token_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = token_log.level
    token_log.setLevel(logging.ERROR)
    try:
        ray.init(**kwargs)
    except Exception as exc:  # the stop goes on: what ran here is still reaped
        logging.getLogger(__name__).warning("ray: cannot connect to %s to reap: %s", address, exc)
        with contextlib.suppress(Exception):
            ray.shutdown()
        _reap_here(runner, info)
        return True
    finally:
        token_log.setLevel(level)
    try:
        _reap_on_cluster(ray, info)
    finally:
        ray.shutdown()
    return True


def _reap_on_cluster(ray: Any, info: Mapping[str, Any]) -> list[int]:
    """Run :func:`_kill_marked` on every live node of the connected cluster; the pids killed."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    _by_value(ray)
    kill = ray.remote(_kill_marked)
    refs = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        node_id = node["NodeID"]
        pids = list(info.get("pids") or []) if node_id == info.get("node_id") else []
        strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
        # no CPU: it runs even on a cluster busy with other trials
        opts = {"num_cpus": 0, "max_retries": 0, "scheduling_strategy": strategy}
        refs.append(kill.options(**opts).remote(str(info["mark"]), pids))
    killed: list[int] = []
    for ref in refs:
        try:
            killed.extend(ray.get(ref, timeout=60))
        except Exception as exc:  # a node that died meanwhile took its processes with it
            logging.getLogger(__name__).warning("ray: reaping on a node failed: %s", exc)
    return killed


def _reap_here(runner: Mapping[str, Any], info: Mapping[str, Any]) -> list[int]:
    """:func:`_kill_marked` on this machine, when the trial ran here."""
    if runner.get("host") != socket.gethostname():
        return []
    return _kill_marked(str(info["mark"]), list(info.get("pids") or []))
