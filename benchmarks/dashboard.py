"""What the dashboard costs on large experiments: in the server, and drawn in a real browser.

Seeds a SQLite store through the public store API (``dashboard/seed.py``: the experiment
``bench-dashboard`` with N trials x 20 observations, about 90 % succeeded, 6 % stopped early,
4 % failed, plus a 10x smaller ``bench-dashboard-b`` for the Compare page), then:

  server    times what ``dashboard/app.py`` does for the experiment page without a browser: the
            queries of ``dashboard/queries.py`` and every figure of the page built and
            serialised with ``to_json()`` as ``st.plotly_chart`` does.
  browser   starts ``automl dashboard`` on the store and drives headless Chromium over the
            DevTools protocol (``dashboard/devtools.py``, as ``tests/test_dashboard_browser.py``
            does): for each page, the time from navigation to the last websocket message from
            the server (all the data is in the browser) and to the last chart drawn, and the
            main thread's long tasks. One warm-up load first (Streamlit's first session
            imports pandas and plotly), then one load of the experiment page reported on its
            own ("cold": the browser evaluates Streamlit's Plotly bundle before V8 has cached
            its code, once per browser profile), then the median of ``--repeat`` loads.

Targets (issue 16): experiment page drawn < 4 s from navigation and < 2 s after the data
arrives at 10,000 trials; no long task over 500 ms.

Run: python benchmarks/dashboard.py [--trials 1000,10000] [--obs 20] [--repeat 3]
     [--mode server,browser] [--quick]
``--quick`` (what the test suite runs): 200 trials x 5 observations, one load per page.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from automl._dashboard import free_port, stop, wait_healthy
from automl.store import Store
from dashboard import plots
from dashboard.devtools import Browser, PageTiming, find_chromium
from dashboard.queries import Queries
from dashboard.seed import METRIC, NAME, seed

TARGET_NAV_MS = 4000.0
TARGET_AFTER_DATA_MS = 2000.0
TARGET_LONGTASK_MS = 500.0
# Charts each page draws (the experiment page: history, intermediate values, parallel
# coordinates, importance, slice, contour).
PAGES: list[tuple[str, str, int]] = [
    ("experiments", "/", 0),
    ("experiment", f"/?experiment={NAME}", 6),
    ("trial", "/?trial={best}", 1),
    ("compare", "/?page=compare", 2),
]


def make_store(path: Path, trials: int, obs: int) -> tuple[str, dict[str, Any]]:
    """A SQLite store with the two benchmark experiments; the big one's seed report."""
    url = f"sqlite:///{path}"
    seed(url, max(2, trials // 10), obs, name=f"{NAME}-b", random_seed=1)
    info = seed(url, trials, obs)
    return url, info


@contextmanager
def _timer(out: dict[str, float], key: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    out[key] = out.get(key, 0.0) + time.perf_counter() - t


def server_page(store: Store) -> dict[str, float]:
    """One render's server-side work for the experiment page, per step (seconds)."""
    t: dict[str, float] = {}
    q = Queries(store)
    with _timer(t, "data:experiment"):
        e = q.experiment(NAME)
    assert e is not None
    with _timer(t, "data:best_trial"):
        q.best_trial(e.id, e.direction)
    with _timer(t, "data:history"):
        hist = q.history(e.id)
    with _timer(t, "data:trials_page"):
        q.trials_page(e.id, [], "number", False, 0, 50, None)
    with _timer(t, "data:curves"):
        view = plots.curves_view(q, e, METRIC, hist, None)
    with _timer(t, "data:params_values"):
        rows = q.params_values(e.id, ("Succeeded", "EarlyStopped"))
    spec = e.spec
    figures: list[tuple[str, Callable[[], Any]]] = [
        ("plot:history", lambda: plots.history_figure(hist, e.direction)),
        ("plot:curves", lambda: plots.curves_figure(view, METRIC)),
        ("plot:parallel", lambda: plots.parallel_lines_figure(rows, spec)),
        ("plot:importance", lambda: plots.importance_figure(plots.param_importances(rows, spec))),
        ("plot:slice", lambda: plots.slice_figure(rows, spec, "lr")),
        ("plot:contour", lambda: plots.contour_figure(rows, spec, "x", "lr")),
    ]
    for key, build in figures:
        with _timer(t, key):
            build().to_json()
    return t


def bench_server(url: str, label: str, repeat: int) -> dict[str, Any]:
    """Median server-side seconds per step of the experiment page (the first run is cold)."""
    store = Store(url)
    runs = [server_page(store) for _ in range(repeat + 1)]
    store.close()
    med = {k: statistics.median(r[k] for r in runs[1:]) for k in runs[0]}
    for k, v in med.items():
        print(f"[{label}] server {k:22s} {v * 1000:8.1f} ms")
    data = sum(v for k, v in med.items() if k.startswith("data:"))
    total = sum(med.values())
    print(f"[{label}] server: data {data:.3f} s, data + figures {total:.3f} s")
    return {"data_s": round(data, 3), "total_s": round(total, 3)}


@contextmanager
def dashboard(url: str) -> Iterator[str]:
    """``automl dashboard`` on ``url`` (a free port); its base address."""
    port = free_port()
    cmd = [sys.executable, "-m", "automl", "dashboard", "--port", str(port), "--store", url]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc, timeout=90)
        yield f"http://127.0.0.1:{port}"
    except BaseException:
        log.seek(0)
        sys.stderr.write(log.read().decode(errors="replace")[-3000:])
        raise
    finally:
        stop(proc)  # type: ignore[arg-type]
        log.close()


def bench_browser(
    url: str, label: str, best_id: str, repeat: int, chromium: str, timeout: float
) -> dict[str, Any]:
    """Median browser timings per page; every load's long tasks."""
    out: dict[str, Any] = {}
    with dashboard(url) as base, Browser(chromium) as b:
        b.load(base + "/", "true", 0, timeout)  # warm-up: the first session imports plotly
        # The browser's first chart page evaluates Streamlit's Plotly bundle (4.7 MB) without
        # compiled code; V8 caches it for every later load. Reported on its own line.
        cold = b.load(base + PAGES[1][1], "true", PAGES[1][2], timeout)
        cold_row = {
            "nav_ms": None if cold.charts_ms is None else round(cold.charts_ms),
            "longtask_ms": round(cold.longest_task_ms),
        }
        print(
            f"[{label}] browser first chart page in a fresh browser: -> last chart "
            f"{cold_row['nav_ms']} ms, longest task {cold_row['longtask_ms']} ms "
            "(Streamlit's Plotly bundle evaluated before V8 has cached its code)"
        )
        for page, path, charts in PAGES:
            loads: list[PageTiming] = []
            for _ in range(repeat):
                loads.append(b.load(base + path.format(best=best_id), "true", charts, timeout))
            nav = [t.charts_ms if charts else t.content_ms for t in loads]
            data = [t.data_ms for t in loads]
            after = [t.after_data_ms if charts else 0.0 for t in loads]
            if None in nav or None in after or None in data:
                print(f"[{label}] browser {page:12s} NOT DRAWN within {timeout:.0f} s")
                out[page] = {"nav_ms": None, "after_data_ms": None, "longtask_ms": None}
                continue
            longest = max(t.longest_task_ms for t in loads)
            row = {
                "nav_ms": round(statistics.median(nav)),  # type: ignore[type-var]
                "data_ms": round(statistics.median(data)),  # type: ignore[type-var]
                "after_data_ms": round(statistics.median(after)),  # type: ignore[type-var]
                "longtask_ms": round(longest),
                "charts": loads[-1].charts,
            }
            out[page] = row
            print(
                f"[{label}] browser {page:12s} navigation -> last data {row['data_ms']:6d} ms, "
                f"-> last chart {row['nav_ms']:6d} ms (after data {row['after_data_ms']:6d} ms), "
                f"longest task {row['longtask_ms']:5d}"
                f" ms, {row['charts']} charts"
            )
        out["cold"] = cold_row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--trials", default="1000,10000")
    ap.add_argument("--obs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mode", default="server,browser")
    ap.add_argument("--timeout", type=float, default=60.0, help="per page load, seconds")
    ap.add_argument("--quick", action="store_true", help="200 trials x 5 observations, once")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)
    if args.quick:
        args.trials, args.obs, args.repeat = "200", 5, 1
    modes = set(args.mode.split(","))
    chromium = find_chromium() if "browser" in modes else None
    if "browser" in modes and chromium is None:
        print("browser mode skipped: no chromium on PATH (scripts/browser.sh installs it)")
        modes.discard("browser")
    results: list[dict[str, Any]] = []
    ok = True
    for n in (int(x) for x in args.trials.split(",")):
        label = f"{n:,} trials"
        with tempfile.TemporaryDirectory() as d:
            url, info = make_store(Path(d) / "automl.db", n, args.obs)
            print(f"[{label}] seeded {n:,} x {args.obs} observations in {info['seconds']:.1f} s")
            res: dict[str, Any] = {"trials": n, "observations": args.obs}
            if "server" in modes:
                res["server"] = bench_server(url, label, args.repeat)
            if "browser" in modes and chromium is not None:
                from automl import Client

                with Client(url) as c:
                    best = c.best_trial(NAME)
                assert best is not None
                res["browser"] = br = bench_browser(
                    url, label, best.id, args.repeat, chromium, args.timeout
                )
                exp = br.get("experiment", {})
                met = (
                    exp.get("nav_ms") is not None
                    and exp["nav_ms"] < TARGET_NAV_MS
                    and exp["after_data_ms"] < TARGET_AFTER_DATA_MS
                    and all(
                        p.get("longtask_ms") is not None and p["longtask_ms"] <= TARGET_LONGTASK_MS
                        for k, p in br.items()
                        if k != "cold"
                    )
                )
                ok = ok and met
            results.append(res)
    print("targets met" if ok else "targets NOT met")
    print(json.dumps(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
