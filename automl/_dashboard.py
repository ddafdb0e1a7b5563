"""Launching the Streamlit dashboard (``automl dashboard``).

The app itself lives in the ``dashboard`` package (``dashboard/app.py``); this module finds it,
builds the ``streamlit run`` command line, starts the server in its own process group, waits until
``/_stcore/health`` answers and stops it again on Ctrl-C or SIGTERM.

Safety rules: the server binds to 127.0.0.1 unless ``--host`` names another address; on a
non-loopback address the app is read-only unless ``--allow-remote-actions`` is given.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from automl.errors import AutoMLError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501
INSTALL_HINT = "pip install 'automl[dashboard]'"


class DashboardError(AutoMLError):
    """The dashboard cannot be started (missing extra, app not found, server died)."""


@dataclass(frozen=True)
class LaunchPlan:
    """Everything needed to start the server: the command line, the address and the app mode."""

    command: list[str]
    host: str
    port: int
    read_only: bool
    allow_remote_actions: bool

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def health_url(self) -> str:
        """Streamlit's health endpoint (answers ``ok`` once the server is up)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = "::1" if host == "::" else host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/_stcore/health"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def app_path() -> Path:
    """``dashboard/app.py`` of the installed ``dashboard`` package (or ``$AUTOML_DASHBOARD_APP``).

    Raises:
        DashboardError: streamlit is not installed, or the app file is missing.
    """
    if importlib.util.find_spec("streamlit") is None:
        raise DashboardError(f"the dashboard needs streamlit; install it with: {INSTALL_HINT}")
    override = os.environ.get("AUTOML_DASHBOARD_APP")
    if override:
        path = Path(override)
    else:
        spec = importlib.util.find_spec("dashboard")
        dirs = list(spec.submodule_search_locations or []) if spec is not None else []
        if not dirs:
            raise DashboardError("the dashboard package is not installed; reinstall automl")
        path = Path(dirs[0]).resolve() / "app.py"
    if not path.is_file():
        raise DashboardError(f"dashboard app not found at {path}")
    return path


def plan(
    store: str,
    *,
    server: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    read_only: bool = False,
    allow_remote_actions: bool = False,
    app: Path | None = None,
    python: str = sys.executable,
) -> LaunchPlan:
    """The ``streamlit run`` command for ``store`` or ``server`` (port 0 picks a free one).

    With ``server`` the app reads and writes through that ``automl server``; its token travels
    in ``$AUTOML_TOKEN`` (see :func:`serve`), never on the command line.

    On a non-loopback host the app gets ``--read-only`` unless ``allow_remote_actions``.
    """
    if port < 0 or port > 65535:
        raise DashboardError(f"port must be between 0 and 65535, not {port}")
    if port == 0:
        port = free_port(host if host not in ("0.0.0.0", "::") else DEFAULT_HOST)
    remote = not is_loopback(host)
    if remote and not allow_remote_actions:
        read_only = True
    app_file = app if app is not None else app_path()
    cmd = [
        python,
        "-m",
        "streamlit",
        "run",
        str(app_file),
        "--server.headless",
        "true",
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",  # no "Deploy" button or menu: this is not a Streamlit Cloud app
        # Streamlit runs a full gc.collect() after every script and fragment run: with a
        # 10,000-trial experiment's rows cached that holds the GIL for about 0.2 s before the
        # run's last chart is sent (each chart of a page is a fragment run, dashboard/pace.py).
        # Python's own generational collector still runs.
        "--runner.postScriptGC",
        "false",
        "--",
        *(["--server", server] if server else ["--store", store]),
    ]
    if read_only:
        cmd.append("--read-only")
    if allow_remote_actions:
        cmd.append("--allow-remote-actions")
    return LaunchPlan(cmd, host, port, read_only, allow_remote_actions)


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 60.0) -> None:
    """Poll the health endpoint until it answers ``ok``.

    Raises:
        DashboardError: The server exited or did not become healthy within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DashboardError(f"the dashboard server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise DashboardError(f"the dashboard did not answer {url} within {timeout:.0f} s")


def start(p: LaunchPlan, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start the server in a new process group (so stopping it stops its children)."""
    return subprocess.Popen(p.command, env=env, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """Stop the server's process group: SIGINT, then SIGTERM, then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def serve(
    store: str,
    *,
    server: str | None = None,
    token: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    read_only: bool = False,
    allow_remote_actions: bool = False,
    echo: Callable[[str], object] = print,
) -> int:
    """Run the dashboard in the foreground until Ctrl-C; returns the server's exit code."""
    p = plan(
        store,
        server=server,
        host=host,
        port=port,
        read_only=read_only,
        allow_remote_actions=allow_remote_actions,
    )
    env = dict(os.environ)
    if server:  # the token by environment: a command line is visible to every local user
        env.pop("AUTOML_STORE", None)
        env["AUTOML_SERVER"] = server
        if token:
            env["AUTOML_TOKEN"] = token
    else:
        env["AUTOML_STORE"] = store
    proc = start(p, env)
    try:
        wait_healthy(p.health_url, proc)
        mode = "read-only" if p.read_only else "read-write"
        echo(f"automl dashboard: {p.url}  ({mode}; Ctrl-C to stop)")
        return proc.wait()
    except KeyboardInterrupt:
        stop(proc)
        return 130
    except BaseException:
        stop(proc)
        raise
