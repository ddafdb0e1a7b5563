"""Model selection against FLAML: held-out score and time to the final model, equal budgets.

Every classification and regression dataset that ships with scikit-learn (iris, wine,
breast_cancer, digits; diabetes; california_housing only when it is already cached: no data is
downloaded) plus generated ones (make_classification, make_regression, make_friedman1 at a few
sizes). Each dataset is split once (75% train, 25% held out, stratified for classification);
each system gets the same wall-clock budget on the training part and is scored on the held-out
part (accuracy, R^2; the metric each system optimizes too). FLAML 2.x runs with its defaults
(``AutoML().fit(X, y, task=..., time_budget=..., metric=...)``); automl with
``select_model(X, y, task=..., time_budget=...)`` into a fresh SQLite store. Every run is a
process of its own, one at a time, so neither system shares the CPUs with the other.

Reported per dataset, budget and system: the mean held-out score over the seeds, the mean time
until the final (refitted) model was returned, and at the end each system's mean rank (1 = best
held-out score of the systems on that dataset and seed; ties share the mean rank).

Run: python benchmarks/model_selection.py [--budgets 30 120] [--seeds 3] [--quick]
     [--datasets iris,diabetes] [--systems automl,flaml] [--out FILE.json]
``--quick`` runs 2 small datasets, one seed, a 3 s budget (a test runs it).
FLAML needs ``pip install 'flaml[automl]'`` (``scripts/setup.sh bench``); without it only
automl runs and the table says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _sklearn(loader: str, **kw: Any) -> Callable[[], tuple[Any, Any]]:
    def load() -> tuple[Any, Any]:
        from sklearn import datasets

        return getattr(datasets, loader)(return_X_y=True, **kw)  # type: ignore[no-any-return]

    return load


def _generated(maker: str, **kw: Any) -> Callable[[], tuple[Any, Any]]:
    def load() -> tuple[Any, Any]:
        from sklearn import datasets

        return getattr(datasets, maker)(random_state=0, **kw)[:2]  # type: ignore[no-any-return]

    return load


# name -> (task, loader)
DATASETS: dict[str, tuple[str, Callable[[], tuple[Any, Any]]]] = {
    "iris": ("classification", _sklearn("load_iris")),
    "wine": ("classification", _sklearn("load_wine")),
    "breast_cancer": ("classification", _sklearn("load_breast_cancer")),
    "digits": ("classification", _sklearn("load_digits")),
    "classif_1k": (
        "classification",
        _generated("make_classification", n_samples=1000, n_features=20, n_informative=8),
    ),
    "classif_5k": (
        "classification",
        _generated(
            "make_classification", n_samples=5000, n_features=40, n_informative=12, n_classes=3
        ),
    ),
    "diabetes": ("regression", _sklearn("load_diabetes")),
    "california": ("regression", _sklearn("fetch_california_housing", download_if_missing=False)),
    "regress_1k": ("regression", _generated("make_regression", n_samples=1000, noise=10.0)),
    "friedman1_1k": ("regression", _generated("make_friedman1", n_samples=1000, noise=1.0)),
    "friedman1_5k": ("regression", _generated("make_friedman1", n_samples=5000, noise=1.0)),
}
QUICK = ["iris", "diabetes"]
METRIC = {"classification": "accuracy", "regression": "r2"}


def _split(name: str) -> tuple[str, Any, Any, Any, Any]:
    from sklearn.model_selection import train_test_split

    task, load = DATASETS[name]
    X, y = load()
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    strat = y if task == "classification" else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=strat)
    return task, X_tr, X_te, y_tr, y_te


def _score(task: str, y_true: Any, y_pred: Any) -> float:
    from sklearn.metrics import accuracy_score, r2_score

    if task == "classification":
        return float(accuracy_score(y_true, y_pred))
    return float(r2_score(y_true, y_pred))


def run_one(system: str, dataset: str, budget: float, seed: int) -> dict[str, Any]:
    """One search, in this process: the held-out score and the seconds to the final model."""
    task, X_tr, X_te, y_tr, y_te = _split(dataset)
    warnings.filterwarnings("ignore")
    out: dict[str, Any] = {"system": system, "dataset": dataset, "budget": budget, "seed": seed}
    if system == "automl":
        import optuna  # noqa: F401  # imported before the clock starts, as FLAML's are

        import automl
        import automl._api
        import automl._client
        import automl._select

        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = automl.select_model(
                X_tr,
                y_tr,
                task=task,
                metric=METRIC[task],
                time_budget=budget,
                seed=seed,
                store=f"sqlite:///{tmp}/automl.db",
                runs_dir=f"{tmp}/runs",
                progress=False,
            )
            out["seconds"] = time.perf_counter() - start
            out["score"] = _score(task, y_te, result.model.predict(X_te))
            out["model"] = result.best_model_name
            out["trials"] = len(result.trials)
    elif system == "flaml":
        from flaml import AutoML

        model = AutoML()
        start = time.perf_counter()
        model.fit(
            X_tr, y_tr, task=task, time_budget=budget, metric=METRIC[task], seed=seed, verbose=0
        )
        out["seconds"] = time.perf_counter() - start
        out["score"] = _score(task, y_te, model.predict(X_te))
        out["model"] = model.best_estimator
        out["trials"] = len(getattr(model, "config_history", {}) or {})
    else:
        raise SystemExit(f"unknown system {system!r}")
    return out


def _available(dataset: str) -> str | None:
    """Why a dataset cannot run here (None when it can)."""
    try:
        DATASETS[dataset][1]()
    except OSError as exc:  # fetch_* with download_if_missing=False and no cached copy
        return f"not cached locally ({type(exc).__name__}); no download is attempted"
    return None


def _child(system: str, dataset: str, budget: float, seed: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--one", system, dataset, str(budget), str(seed)],
        capture_output=True,
        text=True,
        timeout=budget * 4 + 300,
        cwd=tempfile.gettempdir(),
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {
            "system": system,
            "dataset": dataset,
            "budget": budget,
            "seed": seed,
            "error": (proc.stderr.strip().splitlines() or ["no output"])[-1],
        }
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def _ranks(rows: list[dict[str, Any]], systems: list[str]) -> dict[tuple[float, str], list[float]]:
    """Each system's rank per (dataset, seed, budget): 1 is the best held-out score."""
    out: dict[tuple[float, str], list[float]] = {}
    groups: dict[tuple[str, int, float], dict[str, float]] = {}
    for r in rows:
        if "score" in r:
            groups.setdefault((r["dataset"], r["seed"], r["budget"]), {})[r["system"]] = r["score"]
    for (_, _, budget), scores in groups.items():
        if set(scores) != set(systems):
            continue  # a system failed there: no rank for anyone
        for s in systems:
            better = sum(1 for o in systems if scores[o] > scores[s])
            ties = sum(1 for o in systems if scores[o] == scores[s])
            out.setdefault((budget, s), []).append(better + (ties + 1) / 2)
    return out


def _table(rows: list[dict[str, Any]], systems: list[str], budgets: list[float]) -> str:
    lines = []
    head = "| dataset | task | budget |" + "".join(f" {s} score | {s} s |" for s in systems)
    lines += [head, "|" + " --- |" * (3 + 2 * len(systems))]
    for budget in budgets:
        for dataset in DATASETS:
            cells = []
            seen = False
            for s in systems:
                mine = [
                    r
                    for r in rows
                    if r["dataset"] == dataset and r["budget"] == budget and r["system"] == s
                ]
                ok = [r for r in mine if "score" in r]
                seen = seen or bool(mine)
                if ok:
                    score = statistics.fmean(r["score"] for r in ok)
                    secs = statistics.fmean(r["seconds"] for r in ok)
                    fail = f" ({len(mine) - len(ok)} failed)" if len(ok) < len(mine) else ""
                    cells += [f"{score:.4f}{fail}", f"{secs:.1f}"]
                else:
                    cells += ["failed" if mine else "-", "-"]
            if seen:
                task = DATASETS[dataset][0]
                lines.append(f"| {dataset} | {task} | {budget:g} s |" + "".join(
                    f" {c} |" for c in cells
                ))  # fmt: skip
    ranks = _ranks(rows, systems)
    lines.append("")
    for budget in budgets:
        parts = [
            f"{s} {statistics.fmean(ranks[(budget, s)]):.2f}"
            for s in systems
            if ranks.get((budget, s))
        ]
        n = len(ranks.get((budget, systems[0]), []))
        lines.append(
            f"mean rank at {budget:g} s over {n} dataset x seed runs: " + ", ".join(parts)
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--one", nargs=4, metavar=("SYSTEM", "DATASET", "BUDGET", "SEED"))
    ap.add_argument("--budgets", type=float, nargs="+", default=[30.0, 120.0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--systems", default="automl,flaml")
    ap.add_argument("--out", type=Path, default=None, help="Write every run as JSON here.")
    ap.add_argument("--quick", action="store_true", help="2 datasets, 1 seed, a 3 s budget.")
    args = ap.parse_args()
    if args.one:
        system, dataset, budget, seed = args.one
        print(json.dumps(run_one(system, dataset, float(budget), int(seed))))
        return
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    budgets, seeds = args.budgets, args.seeds
    if args.quick:
        datasets, budgets, seeds = QUICK, [3.0], 1
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise SystemExit(f"unknown datasets {unknown}; known: {list(DATASETS)}")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if "flaml" in systems and importlib.util.find_spec("flaml") is None:
        print("flaml is not installed (pip install 'flaml[automl]'): automl runs alone")
        systems = [s for s in systems if s != "flaml"]
    for d in list(datasets):
        why = _available(d)
        if why is not None:
            print(f"skipped {d}: {why}")
            datasets.remove(d)
    print(f"cpus: {os.cpu_count()}; budgets {budgets} s; seeds {seeds}; systems {systems}")
    rows: list[dict[str, Any]] = []
    for budget in budgets:
        for d in datasets:
            for seed in range(seeds):
                for s in systems if seed % 2 == 0 else systems[::-1]:  # alternate who goes first
                    r = _child(s, d, budget, seed)
                    rows.append(r)
                    what = (
                        f"score {r['score']:.4f} in {r['seconds']:.1f} s ({r['model']}, "
                        f"{r['trials']} trials)"
                        if "score" in r
                        else f"error: {r['error']}"
                    )
                    print(f"{d:14s} {budget:5g} s seed {seed} {s:7s} {what}", flush=True)
                    if args.out is not None:
                        args.out.parent.mkdir(parents=True, exist_ok=True)
                        args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print()
    print(_table(rows, systems, budgets))


if __name__ == "__main__":
    main()
