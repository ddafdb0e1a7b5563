"""Epochs saved by early stopping, side by side in one run.

A small MLP (scikit-learn, one ``partial_fit`` pass per epoch) on the digits, up to 27 epochs per
trial, 40 trials of random search with the same seed (so every method sees the same
configurations in the same order), four ways: no stopping, Katib's medianstop, ASHA (Optuna's
successive halving) and Hyperband (Optuna's pruner). Reports the epochs consumed and the best
validation accuracy.

Run: python benchmarks/early_stopping.py [--trials 40] [--epochs 27]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import automl

X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_tr)
X_tr, X_va = scaler.transform(X_tr), scaler.transform(X_va)
CLASSES = np.unique(y)
EPOCHS = 27


def objective(lr: float, hidden: int, alpha: float) -> float:
    model = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        learning_rate_init=lr,
        alpha=alpha,
        batch_size=64,
        random_state=0,
    )
    acc = 0.0
    for epoch in range(1, EPOCHS + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(X_tr, y_tr, classes=CLASSES)
        acc = float(model.score(X_va, y_va))
        automl.report(step=epoch, accuracy=acc)
        if automl.should_stop():
            raise automl.TrialStopped
    return acc


SPACE = {
    "lr": automl.double(1e-5, 1e-1, log=True),
    "hidden": automl.int(8, 128, log=True),
    "alpha": automl.double(1e-6, 1e-1, log=True),
}
METHODS: dict[str, Any] = {
    "no stopping": None,
    "medianstop": {"name": "medianstop", "settings": {"min_trials_required": 3, "start_step": 3}},
    "asha": {"name": "asha", "settings": {"min_resource": 1, "reduction_factor": 3}},
    "hyperband rf=4": {
        "name": "hyperband",
        "settings": {"min_resource": 1, "reduction_factor": 4, "max_resource": EPOCHS},
    },
    "hyperband": {
        "name": "hyperband",
        "settings": {"min_resource": 1, "reduction_factor": 3, "max_resource": EPOCHS},
    },
}


def main() -> None:
    global EPOCHS
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=27)
    ap.add_argument("--quick", action="store_true", help="6 trials of 9 epochs: the suite's")
    args = ap.parse_args()
    if args.quick:
        args.trials, args.epochs = 6, 9
    EPOCHS = args.epochs
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/es.db"
        for label, stopping in METHODS.items():
            t0 = time.perf_counter()
            res = automl.tune(
                objective,
                SPACE,
                progress=False,
                objective_metric="accuracy",
                direction="maximize",
                algorithm="random",
                max_trials=args.trials,
                seed=0,
                early_stopping=stopping,
                store=url,
                name=label.replace(" ", "-").replace("=", ""),
            )
            seconds = time.perf_counter() - t0
            obs = automl.Client(url).observations(res.name)
            epochs = sum(1 for o in obs if o.metric == "accuracy" and o.step is not None)
            stopped = int((res.trials["state"] == "EarlyStopped").sum())
            rows.append((label, epochs, res.best_value or 0.0, stopped, seconds))
    base_epochs, base_best = rows[0][1], rows[0][2]
    print(f"{args.trials} trials x up to {EPOCHS} epochs, random search seed 0, MLP on digits")
    print(
        f"{'method':<14}{'epochs':>8}{'saving':>9}{'best acc':>10}{'vs none':>9}"
        f"{'stopped':>9}{'seconds':>9}"
    )
    for label, epochs, best, stopped, seconds in rows:
        print(
            f"{label:<14}{epochs:>8}{base_epochs / epochs:>8.2f}x{best:>10.4f}"
            f"{100 * (best - base_best):>+8.2f}p{stopped:>9}{seconds:>9.1f}"
        )


if __name__ == "__main__":
    main()
