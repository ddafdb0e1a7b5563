"""An MLP on scikit-learn's digits: accuracy against size, under a memory-style constraint.

Prints one line of metrics that automl's StdOut collector reads:
``accuracy=0.95 params=4106 latency_ms=0.02``.
"""

from __future__ import annotations

import argparse
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, required=True)
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--lr", type=float, required=True)
    args = ap.parse_args()
    X, y = load_digits(return_X_y=True)
    xtr, xva, ytr, yva = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(
            hidden_layer_sizes=(args.units,),
            alpha=args.alpha,
            learning_rate_init=args.lr,
            max_iter=60,
            random_state=0,
        ).fit(xtr, ytr)
    params = 64 * args.units + args.units + args.units * 10 + 10
    t0 = time.perf_counter()
    accuracy = clf.score(xva, yva)
    latency_ms = 1000 * (time.perf_counter() - t0) / len(xva)
    print(f"accuracy={accuracy:.4f} params={params} latency_ms={latency_ms:.5f}")


if __name__ == "__main__":
    main()
