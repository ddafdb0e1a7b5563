"""Stage functions of the digits pipeline (used by digits-pipeline.yaml and pipeline.py).

Each function gets its inputs, the paths of its artifact outputs and its args as keyword
arguments: artifacts as ``pathlib.Path``, values typed. Nothing here knows about the pipeline
runner, so each function can be called (and tested) on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import automl


def prepare(data: Path, test_size: float = 0.25, seed: int = 0) -> dict[str, int]:
    """Split scikit-learn's digits into train and held-out test sets (``digits.npz``)."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    data.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        data / "digits.npz", X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test
    )
    return {"n_train": len(y_train), "n_test": len(y_test)}


def _model(model: str, C: float, gamma: float) -> Any:
    if model == "svc":
        clf: Any = SVC(C=C, gamma=gamma)
    else:
        clf = LogisticRegression(C=C, max_iter=300)
    return make_pipeline(StandardScaler(), clf)


def objective(model: str, C: float, gamma: float, data: Path) -> float:
    """One trial: fit on 70% of the training split, return validation accuracy."""
    d = np.load(data / "digits.npz")
    X_fit, X_val, y_fit, y_val = train_test_split(
        d["X_train"], d["y_train"], test_size=0.3, random_state=0, stratify=d["y_train"]
    )
    clf = _model(model, C, gamma).fit(X_fit, y_fit)
    automl.save_model(clf)  # the tune stage hands the best trial's model on
    return float(clf.score(X_val, y_val))


def fit(model: str, C: float, gamma: float, data: Path) -> Any:
    """Train the best configuration on the whole training split; return the estimator."""
    d = np.load(data / "digits.npz")
    return _model(model, C, gamma).fit(d["X_train"], d["y_train"])


def score(model: Any, data: Path) -> dict[str, float]:
    """Accuracy of the trained model on the held-out test split."""
    d = np.load(data / "digits.npz")
    return {"accuracy": float(model.score(d["X_test"], d["y_test"])), "n_test": len(d["y_test"])}
