"""A real local Ray cluster for the Ray executor's tests, bound to 127.0.0.1.

The head node declares 4 CPUs and 2 GPUs: Ray only does the bookkeeping for GPUs (it sets
``CUDA_VISIBLE_DEVICES`` for a task), so fractional-GPU scheduling is tested on a CPU machine.
More nodes (``add_node``) are real raylets on this machine; ``kill_node`` SIGKILLs one node's
processes, as a machine that dies would. Everything runs under a private ``RAY_TMPDIR``, so no
other Ray user of this machine sees (or is hijacked by) this cluster, and every process it
started is gone at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Ray reads this once, when it is first imported: set before any test module imports ray, so
# the cluster and its workers bind and advertise 127.0.0.1 only.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
HEAD_CPUS = 4
HEAD_GPUS = 2


@dataclass
class RayCluster:
    """The running test cluster."""

    address: str
    cluster: Any  # ray.cluster_utils.Cluster

    def add_node(self, **kwargs: Any) -> Any:
        """Start another node (a raylet and its workers) and wait until it has joined."""
        return self.cluster.add_node(**kwargs)

    def kill_node(self, node: Any) -> None:
        """SIGKILL every process of ``node`` (its raylet, workers and agents)."""
        self.cluster.remove_node(node, allow_graceful=False)

    def pids(self) -> list[int]:
        nodes = [self.cluster.head_node, *self.cluster.worker_nodes]
        out = []
        for node in nodes:
            if node is None:
                continue
            for infos in node.all_processes.values():
                out.extend(i.process.pid for i in infos if i.process is not None)
        return out


def _set_env(values: dict[str, str]) -> dict[str, str | None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    return old


def _restore_env(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """One real Ray cluster for the session (Ray takes ~5-12 s to start and ~1 GB of RAM)."""
    import ray  # a dev dependency: missing fails, never skips
    from ray.cluster_utils import Cluster

    tmp = tempfile.mkdtemp(prefix="amr-", dir="/tmp")  # short: Ray's socket paths are bounded
    old = _set_env({"RAY_TMPDIR": tmp, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": HEAD_CPUS,
            "num_gpus": HEAD_GPUS,
            "include_dashboard": False,
            "ray_client_server_port": None,
        },
    )
    rc = RayCluster(cluster.address, cluster)
    # The test process is the driver, connected once: executors reuse the connection and its
    # warm workers (a new connection is a new Ray job, which starts its own worker processes).
    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
    try:
        yield rc
    finally:
        pids = rc.pids()
        with contextlib.suppress(Exception):
            ray.shutdown()
        cluster.shutdown()
        import psutil

        for pid in pids:  # nothing of the cluster may outlive the session
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        _restore_env(old)
        shutil.rmtree(tmp, ignore_errors=True)
