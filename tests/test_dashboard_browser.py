"""The dashboard in a real browser: ``automl dashboard`` + headless Chromium on 127.0.0.1.

Seeds a SQLite store with a real experiment, starts ``automl dashboard`` as a subprocess (its own
process group), waits for ``/_stcore/health``, renders the experiments page and the experiment page
with headless Chromium (driven over the DevTools protocol) and checks the experiment's name, its
best value and a Plotly chart are in the DOM. Screenshots land in ``tests/artifacts/``; with
``AUTOML_UPDATE_SCREENSHOTS=1`` they are also copied to ``docs/img/``.

Chromium: ``.ci/run`` installs Debian's ``chromium`` (``scripts/browser.sh``); when it is missing
this test tries ``scripts/browser.sh`` itself and skips only if that fails.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import plotly  # noqa: F401 - dev dependencies: a missing one fails, never skips
import pytest
import streamlit  # noqa: F401

from automl._dashboard import free_port
from tests.conftest import REPO

pytestmark = pytest.mark.integration

NAME = "browser-demo"
ARTIFACTS = REPO / "tests" / "artifacts"
DOCS_IMG = REPO / "docs" / "img"
REAL_APP = REPO / "dashboard" / "app.py"
AUTOML = Path(sys.executable).parent / "automl"

# A stand-in used only while dashboard/app.py does not exist yet: it proves the launcher, the
# health wait, the browser and the DOM checks; the real app replaces it automatically.
STAND_IN_APP = """
import argparse, os
import plotly.graph_objects as go
import streamlit as st
import automl
p = argparse.ArgumentParser()
p.add_argument("--store", default=os.environ.get("AUTOML_STORE"))
p.add_argument("--read-only", action="store_true")
p.add_argument("--allow-remote-actions", action="store_true")
a = p.parse_args()
c = automl.Client(a.store)
name = st.query_params.get("experiment")
if not name:
    st.title("Experiments")
    for e in c.list():
        st.write(e.name)
else:
    st.title(name)
    trials = [t for t in c.trials(name) if t.value is not None]
    best = min(t.value for t in trials)
    st.metric("best", f"{best:.6g}")
    st.plotly_chart(go.Figure(go.Scatter(y=[t.value for t in trials])))
"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    found = _chromium()
    if found is None:
        script = REPO / "scripts" / "browser.sh"
        proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
        found = _chromium()
        if found is None:
            pytest.skip(
                "chromium is not installed and scripts/browser.sh could not install it "
                f"(rc {proc.returncode}): {proc.stderr.strip()[-300:]}"
            )
    return found


def _objective(x: float, y: float) -> float:
    return (x - 1.0) ** 2 + (y + 0.5) ** 2


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, float]:
    import automl

    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'automl.db'}"
    result = automl.tune(
        _objective,
        {"x": automl.double(-5, 5), "y": automl.double(-5, 5)},
        max_trials=10,
        seed=0,
        name=NAME,
        store=url,
    )
    assert result.best_value is not None
    return url, float(result.best_value)


@pytest.fixture(scope="module")
def server(seeded: tuple[str, float], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, _ = seeded
    port = free_port()
    env = dict(os.environ)
    if not REAL_APP.is_file():
        stand_in = tmp_path_factory.mktemp("app") / "app.py"
        stand_in.write_text(STAND_IN_APP)
        env["AUTOML_DASHBOARD_APP"] = str(stand_in)
        warnings.warn(
            "dashboard/app.py does not exist yet: checked the launcher with a stand-in app",
            stacklevel=1,
        )
    log = (tmp_path_factory.mktemp("server") / "server.log").open("w+b")
    proc = subprocess.Popen(
        [str(AUTOML), "dashboard", "--port", str(port), "--store", url],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"automl dashboard exited {proc.returncode}: {log.read().decode()}")
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the dashboard did not become healthy within 90 s")
            time.sleep(0.25)
        yield base
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=10)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


class Browser:
    """Headless Chromium driven over the DevTools protocol (``websockets`` comes with streamlit).

    ``--dump-dom`` with ``--virtual-time-budget`` does not wait for Streamlit's websocket to
    deliver the elements (virtual time fast-forwards while the server runs the script), so the
    test polls the live DOM in real time until the expected content is there.
    """

    def __init__(self, chromium: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="automl-chromium-")
        self.proc = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={self.profile}",
                "--window-size=1280,900",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        active = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.is_file() and active.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(active.read_text().split()[0])
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chromium has no page target")
            time.sleep(0.1)
        from websockets.sync.client import connect

        url = pages[0]["webSocketDebuggerUrl"]
        self.ws = connect(url, max_size=None, open_timeout=10, legacy=True)
        self._id = 0

    def call(self, method: str, **params: object) -> dict[str, object]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def evaluate(self, expression: str) -> object:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return dict(res.get("result", {})).get("value")  # type: ignore[call-overload]

    def open(self, url: str, ready: str, timeout: float = 60.0) -> tuple[str, str]:
        """Navigate, wait until the JS expression ``ready`` is true; the HTML and page text."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(ready):
                break
            time.sleep(0.25)
        time.sleep(1.0)  # let Plotly finish drawing before the screenshot
        html = str(self.evaluate("document.documentElement.outerHTML"))
        text = str(self.evaluate("document.body.innerText"))
        return html, text

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(str(data)))

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    b = Browser(chromium)
    try:
        yield b
    finally:
        b.close()


def _render(browser: Browser, url: str, ready: str, shot: str) -> tuple[str, str]:
    """The HTML and visible text of ``url`` once ``ready``; a screenshot in tests/artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    html, text = browser.open(url, ready)
    png = ARTIFACTS / shot
    browser.screenshot(png)
    if os.environ.get("AUTOML_UPDATE_SCREENSHOTS") == "1" and REAL_APP.is_file():
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, DOCS_IMG / shot)
    return html, text


def _best_forms(v: float) -> list[str]:
    """How the app prints the best value (dashboard/app.py ``_fmt``: ``f"{v:.6g}"``)."""
    return [f"{v:.6g}"]


def _has(text: str) -> str:
    return f"document.body.innerText.includes({json.dumps(text)})"


PLOT = "document.querySelector('.js-plotly-plot .main-svg, [data-testid=stPlotlyChart]')"


def test_experiments_page(browser: Browser, server: str) -> None:
    # The table is st.dataframe (a canvas grid): its cells are in the grid's accessible
    # <table> in the HTML, not in the visible text.
    ready = f"document.documentElement.outerHTML.includes({json.dumps(NAME)})"
    html, _text = _render(browser, server + "/", ready, "dashboard-experiments.png")
    assert "glide-cell" in html or "stDataFrame" in html, "no experiments table"
    assert NAME in html, "the experiments page does not list the experiment"
    assert (ARTIFACTS / "dashboard-experiments.png").stat().st_size > 10_000


def test_experiment_page(browser: Browser, server: str, seeded: tuple[str, float]) -> None:
    _, best = seeded
    forms = _best_forms(best)
    any_form = f"{json.dumps(forms)}.some(f => document.body.innerText.includes(f))"
    ready = f"{_has(NAME)} && {PLOT} !== null && {any_form}"
    html, text = _render(
        browser, f"{server}/?experiment={NAME}", ready, "dashboard-experiment.png"
    )
    assert NAME in text
    assert any(form in text for form in forms), f"best value {best!r} not shown as any of {forms}"
    assert "stPlotlyChart" in html or "js-plotly-plot" in html, "no Plotly chart rendered"
    assert (ARTIFACTS / "dashboard-experiment.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("query", "title", "shot"),
    [
        ("trial", "Trial ", "dashboard-trial.png"),
        ("page=compare", "Compare experiments", "dashboard-compare.png"),
        ("page=steer", "Submit an experiment", "dashboard-steer.png"),
    ],
)
def test_other_pages_render(
    browser: Browser, server: str, seeded: tuple[str, float], query: str, title: str, shot: str
) -> None:
    from automl import Client

    url, _ = seeded
    if query == "trial":
        best = Client(url).best_trial(NAME)
        assert best is not None
        query = f"trial={best.id}"
        title = f"Trial {best.id}"
    _html, text = _render(browser, f"{server}/?{query}", _has(title), shot)
    assert title in text
    assert (ARTIFACTS / shot).stat().st_size > 10_000


# -- the launcher's rules (no browser needed) -------------------------------------------------
def test_plan_loopback_keeps_actions(tmp_path: Path) -> None:
    from automl import _dashboard

    p = _dashboard.plan("sqlite:///x.db", port=0, app=tmp_path / "app.py")
    assert p.host == "127.0.0.1" and p.port > 0 and not p.read_only
    cmd = p.command
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == str(p.port)
    assert cmd[cmd.index("--") + 1 :] == ["--store", "sqlite:///x.db"]


def test_plan_remote_host_is_read_only_unless_allowed(tmp_path: Path) -> None:
    from automl import _dashboard

    app = tmp_path / "app.py"
    p = _dashboard.plan("s.db", host="0.0.0.0", port=8600, app=app)
    assert p.read_only and p.command[-1] == "--read-only"
    p = _dashboard.plan("s.db", host="0.0.0.0", port=8600, app=app, allow_remote_actions=True)
    assert not p.read_only and p.command[-1] == "--allow-remote-actions"
    assert _dashboard.is_loopback("::1") and _dashboard.is_loopback("localhost")
    assert not _dashboard.is_loopback("192.168.1.5")


def test_missing_streamlit_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from typer.testing import CliRunner

    from automl.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "streamlit" else real(name, *a),
    )
    res = CliRunner().invoke(app, ["dashboard", "--port", "0"])
    assert res.exit_code == 2
    assert "pip install 'automl[dashboard]'" in res.output
