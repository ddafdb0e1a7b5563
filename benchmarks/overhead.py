"""Per-trial overhead of the tuning loop, side by side in one run.

300 and 1,000 trials of a no-op objective with TPE (automl's ``tpe`` defaults on both sides:
Optuna's TPESampler with ``constant_liar=True``):
  (a) Optuna, in-memory storage
  (b) Optuna, its SQLite RDB storage
  (c) automl.tune with the durable SQLite store (every trial and observation committed)

automl's own cost per trial is (c) minus (a), each without the time spent inside the sampler's
methods (timed in both runs alike): what the loop, the store and the records cost. The
sampler's own time varies by +-20 % from run to run on a shared machine, which would drown a
0.5 ms difference in a 5 ms TPE step; the plain wall ratio is printed too.

Peak RSS at scale (``--rss 10000,100000``): random search with a no-op objective, each size in
a fresh process, automl.tune (durable SQLite store) beside Optuna in memory, and the growth per
1,000 trials.

Run: python benchmarks/overhead.py [--trials 300,1000] [--repeat 3] [--skip-rdb]
                                   [--algorithm random] [--rss 10000,100000]
"""

from __future__ import annotations

import argparse
import contextlib
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


_SAMPLER_S = [0.0]  # seconds spent inside the samplers' methods (see _time_samplers)


def _time_samplers() -> None:
    """Count the time spent in TPE's and random search's methods, in either run."""
    names = ("infer_relative_search_space", "sample_relative", "sample_independent")
    for cls in (optuna.samplers.TPESampler, optuna.samplers.RandomSampler):
        for name in (*names, "before_trial", "after_trial"):
            fn = cls.__dict__.get(name)
            if fn is None:
                continue

            def timed(*a: object, _fn: Callable[..., object] = fn, **k: object) -> object:
                t = time.perf_counter()
                try:
                    return _fn(*a, **k)
                finally:
                    _SAMPLER_S[0] += time.perf_counter() - t

            setattr(cls, name, timed)


def run_optuna(n: int, storage: str | None, algorithm: str = "tpe") -> tuple[float, float, float]:
    """Seconds of (wall, CPU of this process, wall outside the sampler) for n trials."""
    sampler: optuna.samplers.BaseSampler = (
        optuna.samplers.RandomSampler(seed=0)
        if algorithm == "random"
        else optuna.samplers.TPESampler(seed=0, constant_liar=True)
    )
    study = optuna.create_study(storage=storage, sampler=sampler)
    _SAMPLER_S[0] = 0.0
    t, c = time.perf_counter(), time.process_time()
    study.optimize(optuna_objective, n_trials=n)
    wall = time.perf_counter() - t
    return wall, time.process_time() - c, wall - _SAMPLER_S[0]


def run_automl(n: int, url: str, algorithm: str = "tpe") -> tuple[float, float, float]:
    """Seconds of (wall, CPU, wall outside the sampler) for n trials, store creation included."""
    gc.collect()
    _SAMPLER_S[0] = 0.0
    t, c = time.perf_counter(), time.process_time()
    automl.tune(
        automl_objective,
        {"x": automl.double(-10, 10), "y": automl.double(-10, 10)},
        progress=False,
        algorithm=algorithm,
        max_trials=n,
        seed=0,
        store=url,
        name="overhead",
    )
    wall = time.perf_counter() - t
    return wall, time.process_time() - c, wall - _SAMPLER_S[0]


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


_STARTUP_SPEC = """\
name: startup
objective: {metric: loss, direction: minimize}
algorithm: {name: random}
parameters:
  x: {type: double, min: 0, max: 1}
budget: {max_trials: 1}
trial:
  command: [/bin/sh, -c, "echo loss=1"]
"""


def _startup(rounds: int) -> None:
    """``automl run`` in a fresh process: spawn -> experiment stored -> first trial started."""
    import sqlite3
    import subprocess

    automl_cli = [sys.executable, "-m", "automl.cli"]
    got: list[tuple[float, float, float]] = []
    for i in range(rounds + 1):  # the first run warms the OS's file cache; not counted
        with tempfile.TemporaryDirectory() as tmp:
            spec = os.path.join(tmp, "startup.yaml")
            with open(spec, "w") as f:
                f.write(_STARTUP_SPEC)
            t = time.time()
            subprocess.run(
                [*automl_cli, "run", spec, "--store", f"sqlite:///{tmp}/s.db", "--no-progress"],
                cwd=tmp,
                capture_output=True,
                check=True,
            )
            done = time.time()
            with contextlib.closing(sqlite3.connect(f"{tmp}/s.db")) as c:
                stored = c.execute("SELECT created_at FROM automl_experiments").fetchone()[0]
                started = c.execute("SELECT started_at FROM automl_trials").fetchone()[0]
            if i:
                got.append((stored - t, started - t, done - t))
    med = [statistics.median(x[k] for x in got) for k in range(3)]
    print(
        "\nstart-up of `automl run` (a 1-trial /bin/sh experiment, new SQLite store), "
        f"median of {rounds}:"
    )
    print(
        f"  spawn -> experiment stored {med[0]:.2f} s, -> first trial started {med[1]:.2f} s "
        f"(target < 0.5 s), -> exit {med[2]:.2f} s"
    )


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
    ap.add_argument("--trials", default="300,1000", help="sizes, e.g. 300,1000")
    ap.add_argument("--algorithm", default="tpe", choices=["tpe", "random"], help="both runs")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of (a), (c); medians reported")
    ap.add_argument("--skip-rdb", action="store_true", help="skip (b), which takes ~35 s")
    ap.add_argument("--quick", action="store_true", help="50 trials, 1 round, no (b): the suite's")
    ap.add_argument("--rss", default="", help="sizes for the peak RSS runs, e.g. 10000,100000")
    ap.add_argument("--startup", type=int, default=5, help="rounds of the start-up run (0: none)")
    ap.add_argument("--rss-child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        kind, size = args.rss_child.split(":")
        _rss_child(kind, int(size))
        return
    if args.quick:
        args.trials, args.repeat, args.skip_rdb, args.startup = "50", 1, True, 1
        args.rss = args.rss or "100,200"
    sizes = [int(x) for x in str(args.trials).split(",")]
    names = {"a": "optuna in-memory", "b": "optuna SQLite RDB", "c": "automl.tune, SQLite store"}
    algo = args.algorithm  # tpe, or random (where the sampler costs next to nothing)
    print(
        f"{args.algorithm}, no-op objective (2 floats); median of {args.repeat} interleaved "
        "rounds for a, c"
    )
    print("wall: elapsed time; CPU: this process's CPU time (what other load on the machine")
    print("does not change); ms per trial")
    print("outside: wall time outside the sampler's methods (the loop, store and records)")
    print(
        f"{'trials':>7}  {'run':<30}{'wall':>8}{'CPU':>8}{'outside':>9}   wall of each round (s)"
    )
    _time_samplers()
    own: dict[int, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run_optuna(20, None, algo)  # warm-up: first-call imports and caches, in neither's figures
        run_automl(20, f"sqlite:///{tmp}/warm-up.db", algo)
        for n in sizes:
            runs: dict[str, list[tuple[float, float, float]]] = {"a": [], "b": [], "c": []}
            for i in range(args.repeat):  # interleaved, so load on the machine hits both alike
                gc.collect()
                runs["a"].append(run_optuna(n, None, algo))
                gc.collect()
                runs["c"].append(run_automl(n, f"sqlite:///{tmp}/automl-{n}-{i}.db", algo))
            if not args.skip_rdb:
                runs["b"].append(run_optuna(n, f"sqlite:///{tmp}/optuna-{n}.db", algo))
            med = {
                k: tuple(statistics.median(r[j] for r in v) for j in range(3))
                for k, v in runs.items()
                if v
            }
            for k, (w, c, o) in med.items():
                rounds = ", ".join(f"{r[0]:.2f}" for r in runs[k])
                print(
                    f"{n:>7}  ({k}) {names[k]:<26}{1000 * w / n:>8.2f}{1000 * c / n:>8.2f}"
                    f"{1000 * o / n:>9.2f}   {rounds}"
                )
            a, c_ = med["a"], med["c"]
            own[n] = (
                1000 * (c_[2] - a[2]) / n,
                1000 * (c_[0] - a[0]) / n,
                1000 * (c_[1] - a[1]) / n,
            )
            line = f"{n:>7}  ratio c/a: {c_[0] / a[0]:.2f}x wall, {c_[1] / a[1]:.2f}x CPU"
            if "b" in med:
                line += f"; b/c: {med['b'][0] / c_[0]:.2f}x wall"
            print(
                f"{line}; own cost {own[n][0]:.2f} ms outside the sampler "
                f"({own[n][1]:.2f} ms wall, {own[n][2]:.2f} ms CPU in all) per trial"
            )
        # Memory: peak Python allocations of one run each (tracemalloc is slow: a smaller run).
        m = min(min(sizes), 300)
        mem = {
            "a": _peak_kib(lambda: run_optuna(m, None, algo)),
            "c": _peak_kib(lambda: run_automl(m, f"sqlite:///{tmp}/automl-mem.db", algo)),
        }
    print(
        "automl's own cost per trial above Optuna in memory, outside the sampler "
        "(target <= 0.5 ms): "
        + ", ".join(
            f"{o:.2f} ms at {n} (all in: {w:.2f} ms wall, {c:.2f} ms CPU)"
            for n, (o, w, c) in own.items()
        )
    )
    print(
        f"peak Python memory of a {m}-trial run: (a) {mem['a']:.0f} KiB, (c) {mem['c']:.0f} KiB "
        f"({mem['c'] / m:.1f} KiB per trial; ratio c/a {mem['c'] / mem['a']:.2f}x)"
    )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss_mb:.0f} MB")
    if args.startup:
        _startup(args.startup)
    if args.rss:
        _rss([int(x) for x in args.rss.split(",")])


if __name__ == "__main__":
    main()
