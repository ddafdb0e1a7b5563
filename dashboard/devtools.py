"""Headless Chromium over the DevTools protocol: what the dashboard costs in a real browser.

Used by ``tests/test_dashboard_browser.py`` and ``benchmarks/dashboard.py``. :class:`Browser`
starts Chromium with a fresh profile on 127.0.0.1 and talks to its page over a websocket
(``websockets`` comes with streamlit). Before every navigation it installs :data:`PROBE`, a
script that runs in the page from its first byte and records, on every animation frame, when
each Plotly chart is first fully drawn (its layout, data and SVG exist and no drawing promise is
pending) and every main-thread long task (PerformanceObserver ``longtask``). Times are
``performance.now()`` of the new document, i.e. milliseconds since the navigation started.

Why not ``chromium --screenshot`` / ``--dump-dom``: with ``--virtual-time-budget`` Chromium
fast-forwards time while the Streamlit server still runs the script, so it captures the empty
shell; polling the live DOM in real time waits for what the user would see.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PROBE", "Browser", "PageTiming", "find_chromium"]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PROBE = r"""
(() => {
  if (window.__automl) return;
  const m = window.__automl = {charts: [], longtasks: [], content: null};
  try {
    new PerformanceObserver(list => {
      for (const e of list.getEntries()) m.longtasks.push([e.startTime, e.duration]);
    }).observe({type: 'longtask', buffered: true});
  } catch (e) {}
  const seen = new WeakMap();
  function tick() {
    const now = performance.now();
    document.querySelectorAll('.js-plotly-plot').forEach(gd => {
      let rec = seen.get(gd);
      if (!rec) {
        rec = {seen: now, drawn: null, title: ''};
        seen.set(gd, rec);
        m.charts.push(rec);
      }
      rec.attached = gd.isConnected;
      const drawn = gd._fullLayout && gd._fullData && gd.querySelector('.main-svg')
        && !(gd._promises && gd._promises.length);
      if (drawn && rec.drawn === null) {
        rec.drawn = now;
        const t = gd._fullLayout.title;
        rec.title = (t && t.text) || '';
      }
    });
    if (m.content === null && document.querySelector('[data-testid=stMetricValue], h1'))
      m.content = now;
    requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);
})();
"""

# Whether Streamlit is still running the script (its status widget shows while it runs).
_RUNNING = "!!document.querySelector('[data-testid=stStatusWidget] *')"


def find_chromium() -> str | None:
    """The first Chromium/Chrome binary on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class PageTiming:
    """One page load, in milliseconds since navigation started.

    Attributes:
        content_ms: The first content element (title or header metric) appeared.
        data_ms: The last websocket message from the server arrived (the script's last
            element: every chart's data is in the browser).
        charts_ms: The last chart was drawn (None if a chart never drew within the timeout).
        charts: Charts on the page once it settled.
        titles: Their Plotly titles, in page order.
        longtasks_ms: Durations of the main-thread long tasks (> 50 ms) during the load.
    """

    content_ms: float | None
    data_ms: float | None
    charts_ms: float | None
    charts: int
    titles: tuple[str, ...]
    longtasks_ms: tuple[float, ...]

    @property
    def after_data_ms(self) -> float | None:
        """From the last data's arrival to the last chart drawn: the browser's own time."""
        if self.charts_ms is None or self.data_ms is None:
            return None
        return max(0.0, self.charts_ms - self.data_ms)

    @property
    def longest_task_ms(self) -> float:
        """The longest main-thread task (0 when none exceeded 50 ms)."""
        return max(self.longtasks_ms, default=0.0)


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol.

    Args:
        chromium: The browser binary.
        width: Window width in CSS pixels.
        height: Window height.
    """

    def __init__(self, chromium: str, width: int = 1400, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="automl-chromium-")
        self.size = (width, height)
        self.proc = subprocess.Popen(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._connect()
        except BaseException:
            self.close()
            raise
        self._nav_ts: float | None = None  # the document request (DevTools' monotonic clock)
        self._ws_last: float | None = None  # the last websocket frame received after it
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Page.addScriptToEvaluateOnNewDocument", source=PROBE)

    def _connect(self) -> None:
        active = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.is_file() and active.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
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

        self.ws = connect(
            pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10, legacy=True
        )
        self._id = 0

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and wait for its answer (events in between are dropped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=timeout))
            method = msg.get("method")
            if method == "Network.requestWillBeSent":
                p = msg["params"]
                if p.get("type") == "Document":
                    self._nav_ts, self._ws_last = p["timestamp"], None
            elif method == "Network.webSocketFrameReceived":
                self._ws_last = msg["params"]["timestamp"]
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        """The value of a JavaScript expression in the page (JSON-able)."""
        res = self.call(
            "Runtime.evaluate", timeout=timeout, expression=expression, returnByValue=True
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression[:80]}: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        """Open ``url`` (the probe is installed before the page's own scripts run)."""
        self.call("Page.navigate", url=url)

    def wait(self, expression: str, timeout: float = 60.0, poll: float = 0.05) -> bool:
        """Poll until ``expression`` is truthy; False when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(expression, timeout=max(1.0, deadline - time.monotonic())):
                return True
            time.sleep(poll)
        return False

    def load(
        self, url: str, ready: str = "true", min_charts: int = 0, timeout: float = 60.0
    ) -> PageTiming:
        """Navigate and wait until the page has settled; when it drew what, from navigation.

        Settled: content has arrived, ``ready`` is true, the script has finished running, at
        least ``min_charts`` Plotly charts exist and every chart on the page is drawn, for 0.5 s
        in a row.
        """
        self.navigate(url)
        done = (
            f"(() => {{ const m = window.__automl;"
            f" if (!m || m.content === null || !({ready})) return false;"
            f" if ({_RUNNING}) return false;"
            " const on = m.charts.filter(c => c.attached);"
            f" return on.length >= {min_charts} && on.every(c => c.drawn !== null); }})()"
        )
        deadline = time.monotonic() + timeout
        stable_since: float | None = None
        data_ts: float | None = None
        while time.monotonic() < deadline:
            ok = self.evaluate(done, timeout=max(1.0, deadline - time.monotonic()))
            if ok:
                if stable_since is None:
                    stable_since, data_ts = time.monotonic(), self._ws_last
                if time.monotonic() - stable_since >= 0.5:
                    break
            else:
                stable_since = None
            time.sleep(0.05)
        m = self.evaluate(
            "(() => { const m = window.__automl || {charts: [], longtasks: []};"
            " const on = m.charts.filter(c => c.attached);"
            " return {content: m.content, charts: on.map(c => [c.drawn, c.title]),"
            " longtasks: m.longtasks.map(t => t[1])}; })()"
        )
        charts = m["charts"]
        drawn = [d for d, _ in charts]
        nav = self._nav_ts
        return PageTiming(
            content_ms=m["content"],
            data_ms=None if nav is None or data_ts is None else (data_ts - nav) * 1000.0,
            charts_ms=None if not charts or None in drawn else max(drawn),
            charts=len(charts),
            titles=tuple(t for _, t in charts),
            longtasks_ms=tuple(m["longtasks"]),
        )

    def text(self) -> str:
        """The page's visible text."""
        return str(self.evaluate("document.body.innerText"))

    def screenshot(self, path: Path, full: bool = True) -> None:
        """A PNG of the page; ``full`` lays the whole app out (Streamlit scrolls inside)."""
        if full:
            height = self.evaluate(
                "Math.max(...[...document.querySelectorAll('[data-testid=stMain], section.main,"
                " [data-testid=stAppViewContainer]')].map(e => e.scrollHeight), innerHeight)"
            )
            width, _ = self.size
            self.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=min(int(height or 900), 12000),
                deviceScaleFactor=1,
                mobile=False,
            )
            time.sleep(1.0)  # let the charts lay out at the new size
        try:
            data = self.call("Page.captureScreenshot", format="png")["data"]
        finally:
            if full:
                self.call("Emulation.clearDeviceMetricsOverride")
        path.write_bytes(base64.b64decode(str(data)))

    def close(self) -> None:
        """Stop the browser and remove its profile."""
        if getattr(self, "ws", None) is not None:
            # Asked over DevTools, Chromium leaves at once; on SIGTERM, with a page still
            # trying to reach a server that has gone, it took 10 s (the live-refresh test).
            with contextlib.suppress(Exception):
                self.call("Browser.close", timeout=5)
            with contextlib.suppress(Exception):  # closing a dead socket
                self.ws.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
