"""Server-side cost of the dashboard's experiment page on a large experiment.

Seeds one experiment with 10,000 trials x 20 observations (bulk SQLAlchemy Core executemany),
then times what dashboard/app.py does for the experiments page and the experiment page:

  page data   dashboard.queries: experiments_summary, experiment, best_trial, history,
              trials_page (count + first page of 50), curves (all observations of the metric,
              then downsample), metric_names, params_values
  plots       dashboard.plots: history, curves, parallel coordinates, parameter importance,
              slice and contour figures (each built, then serialised with to_json() as
              st.plotly_chart does)

on SQLite and PostgreSQL (a fresh database, dropped at the end, like tests/conftest.py).
Targets: page data < 1 s, page data + plots < 2 s. Without dashboard.queries the page data is
timed with equivalent direct queries and plots are skipped.

Run: python benchmarks/dashboard.py [--trials 10000] [--obs 20] [--repeat 3]
     [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import sqlalchemy as sa

import automl
from automl.core import ExperimentSpec
from automl.store import Store
from automl.store import _schema as S

warnings.simplefilter("ignore")
PG_ADMIN = os.environ.get(
    "AUTOML_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NAME = "bench-dashboard"
METRIC = "objective"
STATES = ["Succeeded"] * 90 + ["Failed"] * 4 + ["EarlyStopped"] * 6

try:
    from dashboard import plots
    from dashboard.queries import Queries, downsample

    HAVE_DASHBOARD = True
except ImportError:  # pragma: no cover - before dashboard/ existed
    HAVE_DASHBOARD = False


def _objective(x: float, y: float, lr: float, opt: str) -> float:
    return (x - 1) ** 2 + (y + 2) ** 2 + lr


SPACE = {
    "x": automl.double(-10, 10),
    "y": automl.double(-10, 10),
    "lr": automl.double(1e-5, 1e-1, log=True),
    "opt": automl.categorical(["adam", "sgd", "rmsprop"]),
}


def seed(url: str, n_trials: int, n_obs: int) -> float:
    """One experiment with ``n_trials`` trials and ``n_obs`` observations each; seconds taken."""
    t0 = time.perf_counter()
    automl.tune(_objective, SPACE, max_trials=1, seed=0, name=NAME, store=url)
    store = Store(url)
    with store.begin() as c:
        exp_id = c.execute(sa.select(S.experiments.c.id).where(S.experiments.c.name == NAME))
        exp_id = exp_id.scalar_one()
        text = c.execute(
            sa.select(S.experiments.c.spec).where(S.experiments.c.id == exp_id)
        ).scalar_one()
        spec = ExperimentSpec.from_json(text).model_copy(update={"max_trial_count": n_trials + 1})
        c.execute(
            S.experiments.update().where(S.experiments.c.id == exp_id).values(spec=spec.to_json())
        )
    rng = random.Random(0)
    now = time.time() - n_trials * 2.0
    chunk = 2000
    for start in range(1, n_trials + 1, chunk):
        trials, obs = [], []
        for n in range(start, min(start + chunk, n_trials + 1)):
            p = {
                "x": rng.uniform(-10, 10),
                "y": rng.uniform(-10, 10),
                "lr": 10 ** rng.uniform(-5, -1),
                "opt": rng.choice(["adam", "sgd", "rmsprop"]),
            }
            value = _objective(**p)
            state = rng.choice(STATES)
            tid = f"{NAME}-{n:07d}"
            t = now + n * 2.0
            steps = n_obs if state != "EarlyStopped" else n_obs // 2
            trials.append(
                {
                    "id": tid,
                    "experiment_id": exp_id,
                    "number": n,
                    "params": json.dumps(p),
                    "state": state,
                    "value": value if state == "Succeeded" else None,
                    "metrics": json.dumps({METRIC: value}) if state == "Succeeded" else "{}",
                    "created_at": t,
                    "started_at": t,
                    "finished_at": t + 1.5,
                    "message": "",
                    "attempt": 1,
                    "attrs": "{}",
                    "runner": "{}",
                }
            )
            obs.extend(
                {
                    "trial_id": tid,
                    "metric": METRIC,
                    "step": s,
                    "value": value * (1 + 5.0 / (s + 1)),
                    "time": t + s * 0.05,
                }
                for s in range(steps)
            )
        with store.begin() as c:
            c.execute(S.trials.insert(), trials)
            c.execute(S.observations.insert(), obs)
    store.close()
    return time.perf_counter() - t0


def _direct_page_data(store: Store) -> dict[str, Any]:
    """Equivalent direct queries (used only when dashboard.queries is not importable)."""
    E, T, Ob = S.experiments.c, S.trials.c, S.observations.c
    with store.engine.connect() as c:
        exp = c.execute(sa.select(E.id, E.spec, E.state).where(E.name == NAME)).one()
        best = c.execute(
            sa.select(T.id, T.number, T.params, T.value)
            .where(T.experiment_id == exp.id, T.state == "Succeeded", T.value.is_not(None))
            .order_by(T.value, T.number)
            .limit(1)
        ).one()
        hist = c.execute(
            sa.select(T.number, T.value, T.state).where(T.experiment_id == exp.id)
        ).all()
        total = c.execute(
            sa.select(sa.func.count()).select_from(S.trials).where(T.experiment_id == exp.id)
        ).scalar_one()
        page = c.execute(
            sa.select(T.id, T.number, T.state, T.value, T.params)
            .where(T.experiment_id == exp.id)
            .order_by(T.number)
            .limit(50)
        ).all()
        curves = c.execute(
            sa.select(T.number, Ob.step, Ob.value)
            .join(S.trials, S.trials.c.id == Ob.trial_id)
            .where(T.experiment_id == exp.id, Ob.metric == METRIC)
        ).all()
    return {"best": best, "hist": hist, "total": total, "page": page, "curves": curves}


@contextmanager
def _timer(out: dict[str, float], key: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    out[key] = out.get(key, 0.0) + time.perf_counter() - t


def page(store: Store) -> dict[str, float]:
    """One render's server-side work, per step (seconds)."""
    t: dict[str, float] = {}
    if not HAVE_DASHBOARD:
        with _timer(t, "data:direct"):
            _direct_page_data(store)
        return t
    q = Queries(store)
    with _timer(t, "data:experiments_summary"):
        q.experiments_summary()
    with _timer(t, "data:experiment"):
        e = q.experiment(NAME)
    assert e is not None
    with _timer(t, "data:best_trial"):
        q.best_trial(e.id, e.direction)
    with _timer(t, "data:history"):
        hist = q.history(e.id)
    with _timer(t, "data:trials_page"):
        q.trials_page(e.id, [], "number", False, 0, 1, None)
        q.trials_page(e.id, [], "number", False, 0, 50, None)
    with _timer(t, "data:metric_names"):
        q.metric_names(e.id)
    with _timer(t, "data:curves"):
        # What the experiment page reads: the curves of the trials it plots (the best 200, the
        # running ones and the last 200 stopped), as dashboard/app.py's _curves does.
        stopped = {n for n, _, s, _ in hist if s == "EarlyStopped"}
        failed = {n for n, _, s, _ in hist if s in ("Failed", "Killed", "MetricsUnavailable")}
        ok = sorted((v, n) for n, v, s, _ in hist if s == "Succeeded" and v is not None)
        running = {n for n, _, s, _ in hist if s == "Running"}
        top = {n for _, n in ok[:200]} | running | set(sorted(stopped)[-200:])
        cur = q.curves_for(e.id, METRIC, top, None)
        thin = downsample(cur, 50, top)
    with _timer(t, "data:params_values"):
        rows = q.params_values(e.id)
    spec = e.spec
    figures: list[tuple[str, Callable[[], Any]]] = [
        ("plot:history", lambda: plots.history_figure(hist, e.direction)),
        ("plot:curves", lambda: plots.curves_figure(thin, METRIC, stopped, failed)),
        ("plot:parallel", lambda: plots.parallel_figure(rows, spec)),
        (
            "plot:importance",
            lambda: plots.importance_figure(plots.param_importances(rows, spec)),
        ),
        ("plot:slice", lambda: plots.slice_figure(rows, "x", METRIC)),
        ("plot:contour", lambda: plots.contour_figure(rows, "x", "y")),
    ]
    for key, build in figures:
        with _timer(t, key):
            build().to_json()
    return t


def bench(url: str, label: str, n_trials: int, n_obs: int, repeat: int) -> dict[str, Any]:
    seconds = seed(url, n_trials, n_obs)
    print(f"[{label}] seeded {n_trials:,} trials x {n_obs} observations in {seconds:.1f} s")
    store = Store(url)
    runs = [page(store) for _ in range(repeat + 1)]  # the first run is cold
    store.close()
    keys = list(runs[0])
    med = {k: statistics.median(r[k] for r in runs[1:]) for k in keys}
    data = sum(v for k, v in med.items() if k.startswith("data:"))
    plot = sum(v for k, v in med.items() if k.startswith("plot:"))
    cold = sum(runs[0].values())
    imp = med.get("plot:importance", 0.0)
    for k in keys:
        print(f"[{label}]   {k:28s} {med[k] * 1000:8.1f} ms")
    print(
        f"[{label}] page data {data:.3f} s (target < 1 s), with plots {data + plot:.3f} s "
        f"(target < 2 s); without the importance figure (st.cache_data in app.py) "
        f"{data + plot - imp:.3f} s; cold first render {cold:.3f} s"
    )
    return {
        "backend": label,
        "data_s": data,
        "total_s": data + plot,
        "cached_importance_s": data + plot - imp,
        "cold_s": cold,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--obs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    if not HAVE_DASHBOARD:
        print("dashboard.queries / dashboard.plots not importable: direct queries, no plots")
    results = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as d:
                url = f"sqlite:///{d}/automl.db"
                results.append(bench(url, "sqlite", args.trials, args.obs, args.repeat))
        elif backend == "postgresql":
            name = f"automl_bench_{secrets.token_hex(4)}"
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as c:
                    c.execute(sa.text(f"CREATE DATABASE {name}"))
            except sa.exc.OperationalError as exc:
                print(f"[postgresql] skipped: {PG_ADMIN} not reachable ({exc.orig})")
                continue
            url = sa.engine.make_url(PG_ADMIN).set(database=name)
            try:
                results.append(
                    bench(
                        url.render_as_string(hide_password=False),
                        "postgresql",
                        args.trials,
                        args.obs,
                        args.repeat,
                    )
                )
            finally:
                with admin.connect() as c:
                    c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                admin.dispose()
        else:
            ap.error(f"unknown backend {backend!r}")
    ok = all(r["data_s"] < 1.0 and r["total_s"] < 2.0 for r in results)
    print("targets met" if ok else "targets NOT met")
    print(json.dumps(results))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
