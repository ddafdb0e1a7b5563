"""One local Ray cluster per controller worker, shared by the experiments it runs.

An experiment with ``executor: {kind: ray}`` and no address starts a local Ray cluster in its
controller's process. A worker runs each experiment's controller in a child process of its own,
so each such experiment would pay a cluster start (seconds, and about 1 GB) and run on a cluster
of its own. Instead, the worker starts one cluster the first time it needs one, in a small
driver process that holds it (:data:`_DRIVER`), and gives its children its address in
``RAY_ADDRESS``, which the Ray executor connects to when the spec names no address. The driver
reads its stdin: when the worker exits (or dies: ``PR_SET_PDEATHSIG``), the pipe closes and the
cluster is shut down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from automl.errors import AutoMLError

__all__ = ["LocalRayCluster"]

# Binds and advertises 127.0.0.1 only (stack notes: Ray advertises the routable address
# unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is 0).
_DRIVER = r"""
import json, logging, sys
import ray
ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
print(json.dumps({"address": ray.get_runtime_context().gcs_address}), flush=True)
sys.stdin.read()  # until the worker goes
ray.shutdown()
"""


# Ray's token authentication, explicitly: the cluster writes its token to ~/.ray/auth_token and
# the controllers (same user) send it; without the mode set, a second process does not.
_AUTH = {"RAY_AUTH_MODE": "token"}


class LocalRayCluster:
    """The worker's local Ray cluster, started on first use."""

    def __init__(self, preexec: Callable[[], None] | None = None) -> None:
        self._preexec = preexec
        self._proc: subprocess.Popen[bytes] | None = None
        self.address: str | None = None

    def ensure(self) -> str:
        """The cluster's address, starting it if it is not running.

        Raises:
            AutoMLError: Ray is not installed or the cluster did not start.
        """
        if self._proc is not None and self._proc.poll() is None and self.address:
            return self.address
        env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", **_AUTH)
        env.pop("RAY_ADDRESS", None)  # start one, do not join whatever the environment names
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            preexec_fn=self._preexec,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        try:
            self.address = str(json.loads(line)["address"])
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise AutoMLError(
                "the worker could not start a local Ray cluster (is ray installed? "
                "pip install 'automl[ray]')"
            ) from None
        return self.address

    def env(self) -> dict[str, str]:
        """What a controller's environment needs to use the cluster (starting it if needed).

        Raises:
            AutoMLError: The cluster did not start.
        """
        return {"RAY_ADDRESS": self.ensure(), **_AUTH}

    def stop(self) -> None:
        """Shut the cluster down (its trials end with it)."""
        proc, self._proc = self._proc, None
        self.address = None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
