"""Real servers and workers as subprocesses on 127.0.0.1, on real SQLite/PostgreSQL/MariaDB."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (states, never a fixed sleep)."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def spec_text(
    name: str,
    *,
    trials: int = 2,
    parallel: int = 1,
    sleep: float = 0.1,
    ledger: Path | None = None,
    extra: str = "",
) -> str:
    """A native experiment whose trials append their id to ``ledger`` when they start."""
    log = f'echo "$AUTOML_TRIAL_NAME" >> {ledger}; ' if ledger else ""
    return f"""
name: {name}
objective: {{metric: loss, direction: minimize}}
algorithm: random
seed: 1
budget: {{max_trials: {trials}, parallel: {parallel}}}
parameters:
  x: {{type: double, min: 0, max: 1}}
trial:
  command: [sh, -c, '{log}sleep {sleep}; echo loss=${{x}}']
{extra}"""


class Procs:
    """Subprocesses started by a test; all are stopped at its end."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        proc = subprocess.Popen(
            [PY, "-m", "automl", *args],
            cwd=self.cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.started.append(proc)
        return proc

    def server(self, store: str, *args: str, env: dict[str, str] | None = None) -> str:
        port = free_port()
        proc = self.start("server", "--store", store, "--port", str(port), *args, env=env)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise AssertionError(f"server exited {proc.returncode}: {out}")
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "the server to answer /healthz")
        return url

    def worker(self, store: str, *args: str) -> subprocess.Popen[bytes]:
        return self.start("worker", "--store", store, "--lease", "10", "--runs-dir", "runs", *args)

    def stop_all(self) -> None:
        for p in self.started:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.started:
            try:
                p.wait(40)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """Start servers and workers in ``tmp_path``; they are stopped after the test."""
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.stop_all()
