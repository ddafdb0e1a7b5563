"""The dashboard in a real browser: ``automl dashboard`` + headless Chromium on 127.0.0.1.

Seeds SQLite stores (a real 10-trial experiment run by ``automl.tune``; 10,000 trials x 20
observations written through the public store API by ``dashboard/seed.py``), starts
``automl dashboard`` as a subprocess (its own process group), waits for ``/_stcore/health`` and
drives headless Chromium over the DevTools protocol (``dashboard/devtools.py``). Each check looks
at one element where it stands (the header's metric box, a cell of the best trial's table, a
chart's Plotly layout), never at the page's text as a whole. Screenshots of every page at 10 and
10,000 trials land in ``tests/artifacts/``; with ``AUTOML_UPDATE_SCREENSHOTS=1`` they are also
copied to ``docs/img/``.

Chromium: ``.ci/run`` installs Debian's ``chromium`` (``scripts/browser.sh``); when it is missing
this module runs ``scripts/browser.sh`` itself and skips only if that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from automl._dashboard import free_port
from dashboard.devtools import Browser, PageTiming, find_chromium
from tests.conftest import REPO

pytestmark = pytest.mark.integration

NAME = "browser-demo"
ARTIFACTS = REPO / "tests" / "artifacts"
DOCS_IMG = REPO / "docs" / "img"
AUTOML = Path(sys.executable).parent / "automl"


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        script = REPO / "scripts" / "browser.sh"
        proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
        found = find_chromium()
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
    automl.tune(
        _objective,
        {"x": automl.double(-5, 5), "y": automl.double(-5, 5)},
        max_trials=6,
        seed=1,
        name=f"{NAME}-2",
        store=url,
    )
    assert result.best_value is not None
    return url, float(result.best_value)


@contextmanager
def _serve(url: str, **env: str) -> Iterator[str]:
    """``automl dashboard --port <free> --store url``; its base address."""
    port = free_port()
    proc = subprocess.Popen(
        [str(AUTOML), "dashboard", "--port", str(port), "--store", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"automl dashboard exited {proc.returncode}: {out}")
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
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def server(seeded: tuple[str, float]) -> Iterator[str]:
    with _serve(seeded[0]) as base:
        yield base


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with Browser(chromium) as b:
        yield b


def _shot(browser: Browser, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / name
    browser.screenshot(png)
    if os.environ.get("AUTOML_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, DOCS_IMG / name)
    assert png.stat().st_size > 10_000
    return png


def _metric(browser: Browser, label: str) -> str | None:
    """The value shown in the metric box whose label starts with ``label``."""
    return browser.evaluate(
        "(() => { for (const m of document.querySelectorAll('[data-testid=stMetric]')) {"
        " const l = m.querySelector('[data-testid=stMetricLabel]');"
        f" if (l && l.innerText.trim().startsWith({json.dumps(label)}))"
        " return m.querySelector('[data-testid=stMetricValue]').innerText.trim(); }"
        " return null; })()"
    )


def _table(browser: Browser, first_header: str) -> dict[str, list[str]]:
    """The st.table whose first header cell is ``first_header``: {row label: [cells]}."""
    return browser.evaluate(
        "(() => { for (const t of document.querySelectorAll('[data-testid=stTable] table')) {"
        " const h = [...t.querySelectorAll('thead th')].map(c => c.innerText.trim());"
        f" if (h[0] !== {json.dumps(first_header)}) continue;"
        " const out = {header: h};"
        " for (const r of t.querySelectorAll('tbody tr')) {"
        "  const c = [...r.querySelectorAll('th, td')].map(x => x.innerText.trim());"
        "  out[c[0]] = c.slice(1); }"
        " return out; } return null; })()"
    )


def _layouts(browser: Browser) -> list[dict[str, object]]:
    """Title, subtitle, axes and trace names of every Plotly chart on the page, in order."""
    return browser.evaluate(
        "[...document.querySelectorAll('.js-plotly-plot')].map(gd => { const L = gd._fullLayout;"
        " const plain = s => (s || '').replace(/<[^>]+>/g, '');"
        " return {title: plain(L.title.text), subtitle: plain((L.title.subtitle || {}).text),"
        " xtype: L.xaxis.type, ytype: L.yaxis.type, xformat: L.xaxis.tickformat,"
        " xtitle: (L.xaxis.title || {}).text || '', ytitle: (L.yaxis.title || {}).text || '',"
        " ticktext: L.xaxis.ticktext || [], xrange: L.xaxis.range,"
        " traces: gd._fullData.map(d => [d.name, (d.x || []).length]) }; })"
    )


def _deploy_hidden(browser: Browser) -> bool:
    return bool(
        browser.evaluate(
            "[...document.querySelectorAll('[data-testid=stAppDeployButton], "
            "[data-testid=stMainMenu]')].every(e => e.offsetParent === null)"
            " && ![...document.querySelectorAll('button')].some(b => b.offsetParent !== null"
            " && b.innerText.trim() === 'Deploy')"
        )
    )


def test_experiments_page(browser: Browser, server: str) -> None:
    t = browser.load(server + "/", "document.querySelector('[data-testid=stDataFrame]')")
    assert t.content_ms is not None
    # The table is a canvas grid; its cells are in the grid's accessible <table>.
    names = browser.evaluate(
        "[...document.querySelectorAll('[data-testid=stDataFrame] table td')]"
        ".map(c => c.innerText.trim())"
    )
    assert NAME in names and f"{NAME}-2" in names
    # Fits a 1,400 px window: no horizontal scrolling of the page or of the grid.
    fits = browser.evaluate(
        "(() => { const s = document.querySelector('[data-testid=stDataFrame] .dvn-scroller');"
        " return document.documentElement.scrollWidth <= innerWidth"
        " && (!s || s.scrollWidth <= s.clientWidth + 1); })()"
    )
    assert browser.evaluate("innerWidth") == 1400 and fits
    assert _deploy_hidden(browser)
    _shot(browser, "dashboard-experiments.png")


def _assert_paced(browser: Browser) -> None:
    """The page's charts reached the browser one at a time (dashboard/pace.py).

    The probe notes, on every animation frame, when each chart element first exists: charts
    that Streamlit revealed in one commit (and drew in one task) share that time. A gate asks
    for its chart only once the chart before it is in the page, so every time differs.
    """
    seen = browser.evaluate("window.__automl.charts.filter(c => c.attached).map(c => c.seen)")
    assert len(seen) == len(set(seen)), seen
    assert browser.evaluate("document.querySelectorAll('[data-automl-gate]').length") == 0
    # Streamlit's Plotly bundle is fetched from the top of the page, not after the first chart.
    assert browser.evaluate(
        "!!document.querySelector('link[rel=modulepreload][href*=\"PlotlyChart.\"]')"
    )


def test_experiment_page(browser: Browser, server: str, seeded: tuple[str, float]) -> None:
    url, best = seeded
    from automl import Client

    with Client(url) as c:
        trial = c.best_trial(NAME)
    assert trial is not None
    t = browser.load(f"{server}/?experiment={NAME}", "true", min_charts=6)
    assert t.charts_ms is not None and t.charts == 6, t.titles
    _assert_paced(browser)
    # The header's best value, in its own metric box.
    assert _metric(browser, "Best objective") == f"{best:.6g}"
    assert _metric(browser, "Progress") == "10/10"
    # The best trial's parameters and metrics as tables, each value in its row.
    params = _table(browser, "parameter")
    assert params is not None and set(params) == {"header", "x", "y"}
    assert params["x"] == [f"{trial.params['x']:.6g}"]
    metrics = _table(browser, "metric")
    assert metrics is not None
    assert metrics["header"] == ["metric", "strategy", "value", "min", "max", "latest"]
    assert metrics["objective"][:2] == ["min", f"{best:.6g}"]
    charts = _layouts(browser)
    titles = [c["title"] for c in charts]
    assert titles == [
        "Optimisation history",
        "Intermediate values: objective",
        "Parallel coordinates",
        "Parameter importance",
        "Slice: x",
        "Contour: x x y",
    ]
    history = charts[0]
    assert history["xtitle"] == "trial number" and history["xformat"] == ",d"
    assert dict(history["traces"])["succeeded"] == 10  # 10 trials: every point, no sample
    assert "showing" not in history["subtitle"]
    # A returned value is one step-less report per trial: drawn at step 1, as it counted it.
    assert charts[1]["xformat"] == ",d"
    assert charts[2]["ticktext"] == ["x", "y", "objective"]
    assert _deploy_hidden(browser)
    _shot(browser, "dashboard-experiment.png")


@pytest.mark.parametrize(
    ("query", "title", "shot", "charts"),
    [
        ("trial", "Trial ", "dashboard-trial.png", 1),
        ("page=compare", "Compare experiments", "dashboard-compare.png", 2),
        ("page=steer", "Submit an experiment", "dashboard-steer.png", 0),
    ],
)
def test_other_pages_render(
    browser: Browser,
    server: str,
    seeded: tuple[str, float],
    query: str,
    title: str,
    shot: str,
    charts: int,
) -> None:
    from automl import Client

    url, _ = seeded
    if query == "trial":
        best = Client(url).best_trial(NAME)
        assert best is not None
        query = f"trial={best.id}"
        title = f"Trial {best.id}"
    heading = (
        "[...document.querySelectorAll('h1, h2')]"
        f".some(h => h.innerText.trim().startsWith({json.dumps(title)}))"
    )
    t = browser.load(f"{server}/?{query}", heading, min_charts=charts)
    assert t.charts == charts and (charts == 0 or t.charts_ms is not None)
    if query.startswith("trial="):
        params = _table(browser, "parameter")
        assert params is not None and set(params) == {"header", "x", "y"}
    _shot(browser, shot)


# -- 10,000 trials ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, object]]:
    from dashboard.seed import NAME as BIG
    from dashboard.seed import seed

    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.db'}"
    seed(url, 1000, 20, name=f"{BIG}-b", random_seed=1)
    return url, seed(url, 10_000, 20)


@pytest.mark.slow
def test_ten_thousand_trials_every_chart_painted(browser: Browser, big) -> None:
    """Every page of a 10,000 x 20 experiment draws all its charts, sampled and saying so.

    Not a timing test: the load may take up to 60 s here; the figures measured on this page
    are the benchmark's (benchmarks/dashboard.py). The timings seen are kept with the
    screenshots (tests/artifacts/dashboard-10k-timings.json).
    """
    from automl import Client
    from dashboard.seed import NAME as BIG

    url, info = big
    with Client(url) as c:
        best = c.best_trial(BIG)
    assert best is not None
    timings: dict[str, PageTiming] = {}
    with _serve(url) as base:
        browser.load(base + "/", "true", 0)  # the first session imports plotly
        timings["experiments"] = browser.load(base + "/")
        _shot(browser, "dashboard-10k-experiments.png")
        timings["experiment"] = t = browser.load(f"{base}/?experiment={BIG}", "true", 6)
        assert t.charts == 6 and t.charts_ms is not None, t
        _assert_paced(browser)
        assert _metric(browser, "Best loss") == f"{info['best_value']:.6g}"
        charts = {c["title"]: c for c in _layouts(browser)}
        assert set(charts) == {
            "Optimisation history",
            "Intermediate values: loss",
            "Parallel coordinates",
            "Parameter importance",
            "Slice: x",
            "Contour: x x y",
        }
        for name in ("Optimisation history", "Parallel coordinates", "Slice: x"):
            assert charts[name]["subtitle"].startswith("showing "), name
        assert "over the mean and range of all" in charts["Intermediate values: loss"]["subtitle"]
        assert "surface:" in charts["Contour: x x y"]["subtitle"]
        assert sum(n for _, n in charts["Optimisation history"]["traces"]) < 2000
        _shot(browser, "dashboard-10k-experiment.png")
        timings["trial"] = browser.load(f"{base}/?trial={best.id}", "true", 1)
        _shot(browser, "dashboard-10k-trial.png")
        timings["compare"] = browser.load(f"{base}/?page=compare", "true", 2)
        assert timings["compare"].charts_ms is not None
        _shot(browser, "dashboard-10k-compare.png")
    (ARTIFACTS / "dashboard-10k-timings.json").write_text(
        json.dumps(
            {
                k: {
                    "content_ms": v.content_ms,
                    "data_ms": v.data_ms,
                    "charts_ms": v.charts_ms,
                    "after_data_ms": v.after_data_ms,
                    "longest_task_ms": v.longest_task_ms,
                }
                for k, v in timings.items()
            },
            indent=1,
        )
    )


# -- live refresh -----------------------------------------------------------------------------
def _drag_zoom(browser: Browser, chart: str) -> None:
    """Drag the mouse across 30 % to 60 % of a chart's plot area (Plotly's zoom box)."""
    browser.evaluate(f"{chart}.scrollIntoView({{block: 'center'}})")
    time.sleep(0.3)
    r = browser.evaluate(
        f"(() => {{ const b = {chart}.querySelector('.nsewdrag').getBoundingClientRect();"
        " return [b.x, b.y, b.width, b.height]; })()"
    )
    x0, y0, w, h = r
    points = [(x0 + w * f, y0 + h * 0.5) for f in (0.3, 0.4, 0.5, 0.6)]
    browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=points[0][0], y=points[0][1])
    browser.call(
        "Input.dispatchMouseEvent",
        type="mousePressed",
        x=points[0][0],
        y=points[0][1],
        button="left",
        clickCount=1,
    )
    for x, y in points[1:]:
        browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, button="left")
    browser.call(
        "Input.dispatchMouseEvent",
        type="mouseReleased",
        x=points[-1][0],
        y=points[-1][1],
        button="left",
        clickCount=1,
    )
    time.sleep(0.5)


def test_live_refresh_keeps_scroll_selection_and_zoom(browser: Browser, tmp_path: Path) -> None:
    """A running experiment refreshes in place: new trials appear; the scroll position and the
    user's selections stay; a zoomed chart stays zoomed while its data does not change."""
    from automl.core import MetricSummary, TrialState
    from automl.store import Store
    from dashboard.seed import NAME as LIVE
    from dashboard.seed import seed

    url = f"sqlite:///{tmp_path / 'live.db'}"
    seed(url, 30, 5, running=2)
    toggle = (
        "[...document.querySelectorAll('[data-testid=stCheckbox]')]"
        ".find(l => l.innerText.includes('Draw every trial'))"
    )
    with _serve(url, AUTOML_DASHBOARD_REFRESH="1") as base:
        browser.load(f"{base}/?experiment={LIVE}", "true", 5)
        assert _metric(browser, "Progress") == "28/30"
        browser.evaluate(f"{toggle}.querySelector('input').click()")  # a selection
        assert browser.wait(f"{toggle}.querySelector('input').checked", timeout=20)
        history = "document.querySelectorAll('.js-plotly-plot')[0]"
        assert browser.wait(f"!!{history} && !!{history}._fullLayout", timeout=20)
        full = browser.evaluate(f"{history}._fullLayout.xaxis.range")
        _drag_zoom(browser, history)  # as a user zooms: drag across the history chart
        zoom = browser.evaluate(f"{history}._fullLayout.xaxis.range")
        assert zoom != full and zoom[1] - zoom[0] < (full[1] - full[0]) * 0.6
        time.sleep(2.5)  # two refreshes without new data: the zoom stays
        assert browser.evaluate(f"{history}._fullLayout.xaxis.range") == zoom
        scroller = (
            "[...document.querySelectorAll('[data-testid=stMain], section.main,"
            " [data-testid=stAppViewContainer]')].find(e => e.scrollHeight > e.clientHeight)"
        )
        browser.evaluate(f"(() => {{ const s = {scroller}; s.scrollTop = 400; return true; }})()")
        before = browser.evaluate(f"{scroller}.scrollTop")
        assert before == 400
        store = Store(url)
        try:
            exp_id = store.experiments.get(LIVE).id
            tid = next(t for t in store.trials.list(exp_id) if t.state is TrialState.RUNNING).id
            store.trials.finish(
                tid, TrialState.SUCCEEDED, 1.0, {"loss": MetricSummary(1.0, 2.0, 1.0)}, ""
            )
        finally:
            store.close()
        assert browser.wait(
            "(() => { for (const m of document.querySelectorAll('[data-testid=stMetric]'))"
            " if (m.innerText.includes('Progress') && m.innerText.includes('29/30'))"
            " return true; return false; })()",
            timeout=30,
        ), "the page did not refresh"
        time.sleep(1.5)  # one more refresh after the change
        assert browser.evaluate(f"{scroller}.scrollTop") == before
        assert browser.evaluate(f"{toggle}.querySelector('input').checked")
