"""The problems of ``benchmarks/sample_efficiency.py``: synthetic functions and real tuning jobs.

Every problem is minimized. Synthetic functions use domains that do not put the optimum at the
centre or on a Sobol point (Ackley and Styblinski-Tang are shifted), so no optimizer wins by
where it looks first. Real problems are scikit-learn (and one torch) models on datasets that ship
with scikit-learn, scored by cross-validation with a fixed split, so each is deterministic.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

import automl
from automl.core import Parameter

Params = Mapping[str, Any]


@dataclass(frozen=True)
class Problem:
    """One tuning problem: a space and a function to minimize."""

    name: str
    kind: str  # "synthetic" or "real"
    space: dict[str, Parameter]
    fn: Callable[[Params], float]


# -- synthetic functions -----------------------------------------------------------------------
def _branin(x1: float, x2: float) -> float:
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array(
    [[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]]
)
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann(x: np.ndarray, a: np.ndarray, p: np.ndarray) -> float:
    return float(-np.sum(_ALPHA * np.exp(-np.sum(a * (x - p) ** 2, axis=1))))


def _ackley(x: np.ndarray) -> float:
    d = len(x)
    return float(
        -20 * math.exp(-0.2 * math.sqrt(float(np.sum(x**2)) / d))
        - math.exp(float(np.sum(np.cos(2 * math.pi * x))) / d)
        + 20
        + math.e
    )


def _rosenbrock(x: np.ndarray) -> float:
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def _styblinski(x: np.ndarray) -> float:
    return float(np.sum(x**4 - 16 * x**2 + 5 * x) / 2)


def _levy(x: np.ndarray) -> float:
    w = 1 + (x - 1) / 4
    return float(
        math.sin(math.pi * w[0]) ** 2
        + np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2))
        + (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    )


def _vec(p: Params, prefix: str, n: int) -> np.ndarray:
    return np.array([float(p[f"{prefix}{i}"]) for i in range(n)])


def _dbl(n: int, lo: float, hi: float, prefix: str = "x") -> dict[str, Parameter]:
    return {f"{prefix}{i}": automl.double(lo, hi) for i in range(n)}


def _int(n: int, lo: int, hi: int, prefix: str = "x") -> dict[str, Parameter]:
    return {f"{prefix}{i}": automl.int(lo, hi) for i in range(n)}


_SHIFT = np.array([1.3, -0.7, 2.1, -1.6, 0.4, 0.9])


def _synthetic() -> list[Problem]:
    h3 = {f"x{i}": automl.double(0, 1) for i in range(3)}
    h6 = {f"x{i}": automl.double(0, 1) for i in range(6)}
    mixed_h6: dict[str, Parameter] = {f"x{i}": automl.double(0, 1) for i in range(4)}
    mixed_h6 |= {"k4": automl.int(0, 20), "k5": automl.int(0, 20)}
    cat_ackley: dict[str, Parameter] = {**_dbl(3, -10, 20)}
    cat_ackley["shift"] = automl.categorical(["none", "small", "large"])
    cat_branin: dict[str, Parameter] = {
        "x0": automl.double(-5, 10),
        "x1": automl.double(0, 15),
        "scale": automl.categorical(["a", "b", "c", "d"]),
    }
    scales = {"a": 1.5, "b": 1.0, "c": 2.0, "d": 3.0}
    shifts = {"none": 0.0, "small": 0.5, "large": 3.0}
    return [
        Problem(
            "branin",
            "synthetic",
            {"x0": automl.double(-5, 10), "x1": automl.double(0, 15)},
            lambda p: _branin(p["x0"], p["x1"]),
        ),
        Problem("hartmann3", "synthetic", h3, lambda p: _hartmann(_vec(p, "x", 3), _H3_A, _H3_P)),
        Problem("hartmann6", "synthetic", h6, lambda p: _hartmann(_vec(p, "x", 6), _H6_A, _H6_P)),
        Problem(
            "rosenbrock4", "synthetic", _dbl(4, -5, 10), lambda p: _rosenbrock(_vec(p, "x", 4))
        ),
        Problem(
            "ackley5-shifted",
            "synthetic",
            _dbl(5, -10, 25),
            lambda p: _ackley(_vec(p, "x", 5) - _SHIFT[:5]),
        ),
        Problem(
            "styblinski4-shifted",
            "synthetic",
            _dbl(4, -5, 5),
            lambda p: _styblinski(_vec(p, "x", 4) - _SHIFT[:4] / 3),
        ),
        Problem("levy5", "synthetic", _dbl(5, -10, 10), lambda p: _levy(_vec(p, "x", 5))),
        Problem(
            "branin-int",
            "synthetic",
            {"x0": automl.int(-5, 10), "x1": automl.double(0, 15)},
            lambda p: _branin(p["x0"], p["x1"]),
        ),
        Problem(
            "rosenbrock3-int", "synthetic", _int(3, -5, 10), lambda p: _rosenbrock(_vec(p, "x", 3))
        ),
        Problem(
            "hartmann6-mixed",
            "synthetic",
            mixed_h6,
            lambda p: _hartmann(
                np.array([*(p[f"x{i}"] for i in range(4)), p["k4"] / 20, p["k5"] / 20]),
                _H6_A,
                _H6_P,
            ),
        ),
        Problem(
            "ackley3-categorical",
            "synthetic",
            cat_ackley,
            lambda p: _ackley(_vec(p, "x", 3) - _SHIFT[:3] - shifts[p["shift"]]),
        ),
        Problem(
            "branin-categorical",
            "synthetic",
            cat_branin,
            lambda p: _branin(p["x0"], p["x1"]) * scales[p["scale"]],
        ),
    ]


# -- real tuning problems ----------------------------------------------------------------------
@cache
def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets
    from sklearn.preprocessing import StandardScaler

    loader = {
        "breast": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
        "digits": datasets.load_digits,
        "iris": datasets.load_iris,
        "diabetes": datasets.load_diabetes,
    }[name]
    x, y = loader(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    if name == "diabetes":
        y = (y - y.mean()) / y.std()
    return x, y


def _cv(model: Any, data: str, scoring: str, folds: int = 3) -> float:
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    x, y = _data(data)
    split = (
        KFold(folds, shuffle=True, random_state=0)
        if data == "diabetes"
        else StratifiedKFold(folds, shuffle=True, random_state=0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = cross_val_score(model, x, y, cv=split, scoring=scoring, error_score=np.nan)
    value = -float(np.mean(score))
    return value if math.isfinite(value) else 1e3


def _svm(p: Params) -> float:
    from sklearn.svm import SVC

    return _cv(SVC(C=p["C"], gamma=p["gamma"], tol=p["tol"]), "breast", "accuracy") + 1.0


def _knn(p: Params) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    m = KNeighborsClassifier(n_neighbors=p["n_neighbors"], p=p["p"], weights=p["weights"])
    return _cv(m, "wine", "neg_log_loss")


def _dt(p: Params) -> float:
    from sklearn.tree import DecisionTreeClassifier

    m = DecisionTreeClassifier(
        max_depth=p["max_depth"],
        min_samples_split=p["min_samples_split"],
        min_samples_leaf=p["min_samples_leaf"],
        max_features=p["max_features"],
        min_impurity_decrease=p["min_impurity_decrease"],
        random_state=0,
    )
    return _cv(m, "digits", "accuracy") + 1.0


def _rf(p: Params) -> float:
    from sklearn.ensemble import RandomForestClassifier

    m = RandomForestClassifier(
        n_estimators=10,
        max_depth=p["max_depth"],
        min_samples_split=p["min_samples_split"],
        min_samples_leaf=p["min_samples_leaf"],
        max_features=p["max_features"],
        criterion=p["criterion"],
        random_state=0,
    )
    return _cv(m, "wine", "neg_log_loss")


def _ridge(p: Params) -> float:
    from sklearn.linear_model import Ridge

    m = Ridge(alpha=p["alpha"], fit_intercept=p["fit_intercept"], tol=p["tol"])
    return _cv(m, "diabetes", "neg_mean_squared_error")


def _lasso(p: Params) -> float:
    from sklearn.linear_model import Lasso

    m = Lasso(
        alpha=p["alpha"], fit_intercept=p["fit_intercept"], max_iter=p["max_iter"], tol=p["tol"]
    )
    return _cv(m, "diabetes", "neg_mean_squared_error")


def _logreg(p: Params) -> float:
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(
        C=p["C"],
        intercept_scaling=p["intercept_scaling"],
        l1_ratio=1.0 if p["penalty"] == "l1" else 0.0,
        solver="liblinear",
    )
    return _cv(m, "breast", "neg_log_loss")


def _mlp(p: Params) -> float:
    from sklearn.neural_network import MLPClassifier

    m = MLPClassifier(
        hidden_layer_sizes=(p["hidden"],),
        alpha=p["alpha"],
        learning_rate_init=p["lr"],
        batch_size=p["batch_size"],
        max_iter=40,
        random_state=0,
    )
    return _cv(m, "iris", "neg_log_loss")


def _ada(p: Params) -> float:
    from sklearn.ensemble import AdaBoostClassifier

    m = AdaBoostClassifier(
        n_estimators=p["n_estimators"], learning_rate=p["learning_rate"], random_state=0
    )
    return _cv(m, "wine", "accuracy") + 1.0


def _torch_mlp(p: Params) -> float:
    import torch

    x, y = _data("breast")
    torch.manual_seed(0)
    n = len(y)
    idx = np.random.default_rng(0).permutation(n)
    losses = []
    for k in range(3):
        test = idx[k::3]
        train = np.setdiff1d(idx, test)
        xt = torch.tensor(x[train], dtype=torch.float32)
        yt = torch.tensor(y[train], dtype=torch.float32)
        model = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], int(p["hidden"])),
            torch.nn.ReLU(),
            torch.nn.Dropout(p["dropout"]),
            torch.nn.Linear(int(p["hidden"]), 1),
        )
        opt = torch.optim.Adam(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        for _ in range(30):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xt)[:, 0], yt)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(torch.tensor(x[test], dtype=torch.float32))[:, 0]
            test_loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, torch.tensor(y[test], dtype=torch.float32)
            )
        losses.append(float(test_loss))
    value = float(np.mean(losses))
    return value if math.isfinite(value) else 1e3


def _real() -> list[Problem]:
    frac = automl.double(0.01, 0.99)
    return [
        Problem(
            "svm-breast-acc",
            "real",
            {
                "C": automl.double(1, 1e3, log=True),
                "gamma": automl.double(1e-4, 1e-1, log=True),
                "tol": automl.double(1e-5, 1e-1, log=True),
            },
            _svm,
        ),
        Problem(
            "knn-wine-nll",
            "real",
            {
                "n_neighbors": automl.int(1, 25),
                "p": automl.int(1, 4),
                "weights": automl.categorical(["uniform", "distance"]),
            },
            _knn,
        ),
        Problem(
            "dt-digits-acc",
            "real",
            {
                "max_depth": automl.int(1, 15),
                "min_samples_split": frac,
                "min_samples_leaf": automl.double(0.01, 0.49),
                "max_features": frac,
                "min_impurity_decrease": automl.double(0, 0.5),
            },
            _dt,
        ),
        Problem(
            "rf-wine-nll",
            "real",
            {
                "max_depth": automl.int(1, 15),
                "min_samples_split": frac,
                "min_samples_leaf": automl.double(0.01, 0.49),
                "max_features": frac,
                "criterion": automl.categorical(["gini", "entropy"]),
            },
            _rf,
        ),
        Problem(
            "ridge-diabetes-mse",
            "real",
            {
                "alpha": automl.double(1e-2, 1e2, log=True),
                "fit_intercept": automl.categorical([True, False]),
                "tol": automl.double(1e-4, 1e-1, log=True),
            },
            _ridge,
        ),
        Problem(
            "lasso-diabetes-mse",
            "real",
            {
                "alpha": automl.double(1e-2, 1e2, log=True),
                "fit_intercept": automl.categorical([True, False]),
                "max_iter": automl.int(10, 5000, log=True),
                "tol": automl.double(1e-5, 1e-1, log=True),
            },
            _lasso,
        ),
        Problem(
            "logreg-breast-nll",
            "real",
            {
                "C": automl.double(1e-2, 1e2, log=True),
                "intercept_scaling": automl.double(1e-2, 1e2, log=True),
                "penalty": automl.categorical(["l1", "l2"]),
            },
            _logreg,
        ),
        Problem(
            "mlp-iris-nll",
            "real",
            {
                "hidden": automl.int(4, 64, log=True),
                "alpha": automl.double(1e-5, 1e1, log=True),
                "lr": automl.double(1e-4, 1e-1, log=True),
                "batch_size": automl.int(8, 128, log=True),
            },
            _mlp,
        ),
        Problem(
            "ada-wine-acc",
            "real",
            {
                "n_estimators": automl.int(10, 60),
                "learning_rate": automl.double(1e-4, 1e1, log=True),
            },
            _ada,
        ),
        Problem(
            "torch-mlp-breast-nll",
            "real",
            {
                "hidden": automl.int(4, 128, log=True),
                "lr": automl.double(1e-4, 1e-1, log=True),
                "weight_decay": automl.double(1e-6, 1e-1, log=True),
                "dropout": automl.double(0.0, 0.7),
            },
            _torch_mlp,
        ),
    ]


def problems() -> list[Problem]:
    """Every problem of the suite, synthetic first."""
    return _synthetic() + _real()


QUICK = ("branin", "hartmann6-mixed")
