"""Train an SVM on scikit-learn's bundled digits and print its validation accuracy.

A trial script like any other: it reads hyperparameters from its arguments and prints
``name=value`` metrics, which automl's StdOut collector reads (Katib's default format).
"""

import argparse
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, required=True)
    parser.add_argument("--gamma", type=float, required=True)
    parser.add_argument("--kernel", choices=["rbf", "poly", "sigmoid"], required=True)
    parser.add_argument("--degree", type=int, default=3)
    parser.add_argument("--folds", type=int, default=3)
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    model = make_pipeline(
        StandardScaler(), SVC(C=args.C, gamma=args.gamma, kernel=args.kernel, degree=args.degree)
    )
    start = time.perf_counter()
    scores = cross_val_score(model, X, y, cv=args.folds)
    for fold, score in enumerate(scores):
        print(f"fold={fold} accuracy={score:.4f}")
    print(f"accuracy={scores.mean():.4f}")
    print(f"fit_seconds={time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main()
