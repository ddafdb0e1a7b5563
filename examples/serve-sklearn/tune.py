"""Tune a scikit-learn classifier on the bundled wine data and save each trial's model.

Every trial fits a StandardScaler + LogisticRegression pipeline, reports its cross-validated
accuracy and saves the fitted model with ``automl.save_model``, so ``automl serve wine`` can
serve the best one afterwards. Trials write their artifacts under ``./automl-runs``.

    python tune.py --store sqlite:///automl.db --trials 8
"""

import argparse

from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import automl

X, y = load_wine(return_X_y=True)


def objective(C: float, fit_intercept: str) -> float:
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=C, fit_intercept=fit_intercept == "true", max_iter=1000),
    )
    accuracy = float(cross_val_score(model, X, y, cv=3).mean())
    automl.save_model(model.fit(X, y))  # the model to serve if this trial is the best
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite:///automl.db")
    parser.add_argument("--name", default="wine")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    result = automl.tune(
        objective,
        {
            "C": automl.double(1e-3, 1e2, log=True),
            "fit_intercept": automl.categorical(["true", "false"]),
        },
        objective_metric="accuracy",
        direction="maximize",
        max_trials=args.trials,
        name=args.name,
        store=args.store,
        seed=args.seed,
    )
    print(f"best accuracy={result.best_value:.4f} params={result.best_params}")
    print(f"next: automl serve {args.name} --store {args.store} --port 8080")


if __name__ == "__main__":
    main()
