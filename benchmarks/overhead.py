"""Per-trial overhead of the tuning loop, side by side in one run.

1,000 trials of a no-op objective with TPE:
  (a) Optuna, in-memory storage
  (b) Optuna, its SQLite RDB storage
  (c) automl.tune with the durable SQLite store (every trial and observation committed)

Run: python benchmarks/overhead.py [--trials 1000] [--skip-rdb]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
import warnings

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
    t = time.perf_counter()
    automl.tune(
        automl_objective,
        {"x": automl.double(-10, 10), "y": automl.double(-10, 10)},
        algorithm="tpe",
        max_trials=n,
        seed=0,
        store=url,
        name="overhead",
    )
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--skip-rdb", action="store_true", help="skip (b), which takes ~40 s")
    args = ap.parse_args()
    n = args.trials
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        gc.collect()
        results["a"] = run_optuna(n, None)
        if not args.skip_rdb:
            results["b"] = run_optuna(n, f"sqlite:///{tmp}/optuna.db")
        results["c"] = run_automl(n, f"sqlite:///{tmp}/automl.db")
    names = {"a": "optuna in-memory", "b": "optuna SQLite RDB", "c": "automl.tune, SQLite store"}
    print(f"{n} trials, TPE, no-op objective (2 floats)")
    print(f"{'run':<28}{'total s':>10}{'ms/trial':>10}")
    for k, v in results.items():
        print(f"({k}) {names[k]:<24}{v:>10.2f}{1000 * v / n:>10.2f}")
    print(f"ratio c/a: {results['c'] / results['a']:.2f}x  (target <= 1.5x)")
    if "b" in results:
        print(f"ratio b/c: {results['b'] / results['c']:.2f}x  (target >= 3x)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
