"""Per-trial overhead of the tuning loop, side by side in one run.

1,000 trials of a no-op objective with TPE:
  (a) Optuna, in-memory storage
  (b) Optuna, its SQLite RDB storage
  (c) automl.tune with the durable SQLite store (every trial and observation committed)

Peak RSS at scale (``--rss 10000,100000``): random search with a no-op objective, each size in
a fresh process, automl.tune (durable SQLite store) beside Optuna in memory, and the growth per
1,000 trials.

Run: python benchmarks/overhead.py [--trials 1000] [--repeat 3] [--skip-rdb] [--rss 10000,100000]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable

import optuna

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import pandas  # noqa: F401

import automl
import automl._api

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.simplefilter("ignore")


def optuna_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_float("y", -10, 10)
    return (x - 1) ** 2 + (y + 2) ** 2


def automl_objective(x: float, y: float) -> float:
    return (x - 1) ** 2 + (y + 2) ** 2


def run_optuna(n: int, storage: str | None) -> float:
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0))
    t = time.perf_counter()
    study.optimize(optuna_objective, n_trials=n)
    return time.perf_counter() - t


def run_automl(n: int, url: str) -> float:
    gc.collect()
    t = time.perf_counter()
    automl.tune(
        automl_objective,
        {"x": automl.double(-10, 10), "y": automl.double(-10, 10)},
        progress=False,
        algorithm="tpe",
        max_trials=n,
        seed=0,
        store=url,
        name="overhead",
    )
    return time.perf_counter() - t


def _rss_child(kind: str, n: int) -> None:
    """Run one size in this (fresh) process and print its peak RSS in MB and its time."""
    t = time.perf_counter()
    if kind == "optuna":
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(optuna_objective, n_trials=n)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            automl.tune(
                automl_objective,
                {"x": automl.double(-10, 10), "y": automl.double(-10, 10)},
                progress=False,
                algorithm="random",
                max_trials=n,
                seed=0,
                store=f"sqlite:///{tmp}/rss.db",
                name="rss",
            )
    elapsed = time.perf_counter() - t
    print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} {elapsed:.2f}")


def _rss(sizes: list[int]) -> None:
    import subprocess

    print("\npeak RSS, random search, no-op objective, a fresh process per run")
    print(f"{'trials':>8}{'automl MB':>11}{'optuna MB':>11}{'automl s':>10}{'optuna s':>10}")
    rows = []
    for n in sizes:
        got = {}
        for kind in ("automl", "optuna"):
            out = subprocess.run(
                [sys.executable, __file__, "--rss-child", f"{kind}:{n}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            got[kind] = (float(out[-2]), float(out[-1]))
        rows.append((n, got))
        a, o = got["automl"], got["optuna"]
        print(f"{n:>8}{a[0]:>11.0f}{o[0]:>11.0f}{a[1]:>10.1f}{o[1]:>10.1f}")
    if len(rows) > 1:
        (n0, g0), (n1, g1) = rows[0], rows[-1]
        per = (g1["automl"][0] - g0["automl"][0]) / (n1 - n0) * 1000
        print(f"automl's growth from {n0} to {n1} trials: {per:.2f} MB per 1,000 trials")


def _peak_kib(fn: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of (a), (c); medians reported")
    ap.add_argument("--skip-rdb", action="store_true", help="skip (b), which takes ~35 s")
    ap.add_argument("--quick", action="store_true", help="50 trials, 1 round, no (b): the suite's")
    ap.add_argument("--rss", default="", help="sizes for the peak RSS runs, e.g. 10000,100000")
    ap.add_argument("--rss-child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        kind, size = args.rss_child.split(":")
        _rss_child(kind, int(size))
        return
    if args.quick:
        args.trials, args.repeat, args.skip_rdb = 50, 1, True
        args.rss = args.rss or "100,200"
    n = args.trials
    runs: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):  # interleaved, so load on the machine hits both alike
            gc.collect()
            runs["a"].append(run_optuna(n, None))
            gc.collect()
            runs["c"].append(run_automl(n, f"sqlite:///{tmp}/automl-{i}.db"))
        if not args.skip_rdb:
            runs["b"].append(run_optuna(n, f"sqlite:///{tmp}/optuna.db"))
        # Memory: peak Python allocations of one run each (tracemalloc is slow: a smaller run).
        m = min(n, 300)
        mem = {
            "a": _peak_kib(lambda: run_optuna(m, None)),
            "c": _peak_kib(lambda: run_automl(m, f"sqlite:///{tmp}/automl-mem.db")),
        }
    results = {k: statistics.median(v) for k, v in runs.items() if v}
    names = {"a": "optuna in-memory", "b": "optuna SQLite RDB", "c": "automl.tune, SQLite store"}
    print(f"{n} trials, TPE, no-op objective (2 floats); median of {args.repeat} rounds for a, c")
    print(f"{'run':<32}{'total s':>10}{'ms/trial':>10}   rounds")
    for k, v in results.items():
        rounds = ", ".join(f"{x:.2f}" for x in runs[k])
        print(f"({k}) {names[k]:<28}{v:>10.2f}{1000 * v / n:>10.2f}   {rounds}")
    print(f"ratio c/a: {results['c'] / results['a']:.2f}x  (target <= 1.5x)")
    print(
        f"automl's own cost: {1000 * (results['c'] - results['a']) / n:.2f} ms per trial above "
        "Optuna in memory (target <= 0.5 ms)"
    )
    if "b" in results:
        print(f"ratio b/c: {results['b'] / results['c']:.2f}x  (target >= 3x)")
    print(
        f"peak Python memory of a {m}-trial run: (a) {mem['a']:.0f} KiB, (c) {mem['c']:.0f} KiB "
        f"({mem['c'] / m:.1f} KiB per trial; ratio {mem['c'] / mem['a']:.2f}x)"
    )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss_mb:.0f} MB")
    if args.rss:
        _rss([int(x) for x in args.rss.split(",")])


if __name__ == "__main__":
    main()
