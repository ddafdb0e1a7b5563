"""Model selection's catalogue: estimators, their search spaces and the pipelines they build.

:func:`search_space` turns a task, the data's shape and the chosen models into one conditional
space: a ``model`` choice, each estimator's hyperparameters active only under its own model
(``when={"model": ...}``), and preprocessing choices where they matter (a scaler for the
distance- and margin-based models, an imputation strategy when ``X`` has missing numbers).
:func:`build_pipeline` turns one trial's active parameters into an unfitted scikit-learn
``Pipeline``: imputation, one-hot encoding of categorical columns, scaling, the estimator.

LightGBM and XGBoost join the catalogue only when they are importable; SVMs and k-NN leave it
for large tables (their cost grows with the square of the rows).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sklearn.base import BaseEstimator, ClassifierMixin

from automl.core import Parameter, ParameterType, ParamValue
from automl.core._spec import Distribution

__all__ = [
    "MODELS",
    "DataShape",
    "LabelEncodedClassifier",
    "available_models",
    "build_pipeline",
    "default_points",
    "search_space",
]

CLASSIFICATION = "classification"
REGRESSION = "regression"
# Kernel SVMs and k-NN cost O(n^2) in rows: above these they cannot finish inside a budget.
_MAX_ROWS = {"svm": 10_000, "knn": 50_000}
# Boosting stops on a validation split from this many training rows (rounds where it pays).
EARLY_STOP_ROWS = 1_000


@dataclass(frozen=True)
class DataShape:
    """What the space depends on in the data.

    Attributes:
        n_rows: Training rows.
        numeric: Numeric columns (names for a DataFrame, positions for an array).
        categorical: Categorical and string columns.
        missing: Whether a numeric column holds NaN.
        n_classes: Classes of a classification target (0 for regression).
    """

    n_rows: int
    numeric: tuple[Any, ...]
    categorical: tuple[Any, ...] = ()
    missing: bool = False
    n_classes: int = 0


@dataclass(frozen=True)
class _Model:
    """One estimator of the catalogue: who provides it and its hyperparameters."""

    tasks: tuple[str, ...]
    module: str | None = None  # an optional package it needs (lightgbm, xgboost)
    scaled: bool = False  # distance- or margin-based: the scaler choice matters
    params: Mapping[str, Parameter] = field(default_factory=dict)


def _num(
    kind: ParameterType, lo: float, hi: float, log: bool = False
) -> Parameter:  # a range parameter, named later
    dist = Distribution.LOG_UNIFORM if log else Distribution.UNIFORM
    return Parameter(name="_", type=kind, min=lo, max=hi, distribution=dist)


def _real(lo: float, hi: float, log: bool = False) -> Parameter:
    return _num(ParameterType.DOUBLE, lo, hi, log)


def _int(lo: int, hi: int, log: bool = False) -> Parameter:
    return _num(ParameterType.INT, lo, hi, log)


def _choice(*values: ParamValue) -> Parameter:
    return Parameter(name="_", type=ParameterType.CATEGORICAL, values=tuple(values))


_BOTH = (CLASSIFICATION, REGRESSION)
_TREES = {"n_estimators": _int(20, 300, log=True), "max_features": _real(0.1, 1.0)}
_TREES |= {"min_samples_leaf": _int(1, 20, log=True)}
_BOOST = {"learning_rate": _real(0.01, 0.3, log=True), "n_estimators": _int(20, 500, log=True)}

#: The catalogue, in the order ``models=None`` lists it.
MODELS: dict[str, _Model] = {
    "logistic": _Model((CLASSIFICATION,), scaled=True, params={"C": _real(1e-3, 1e3, log=True)}),
    "ridge": _Model((REGRESSION,), scaled=True, params={"alpha": _real(1e-4, 1e3, log=True)}),
    "elastic_net": _Model(
        (REGRESSION,),
        scaled=True,
        params={"alpha": _real(1e-5, 10.0, log=True), "l1_ratio": _real(0.01, 1.0)},
    ),
    "svm": _Model(
        _BOTH,
        scaled=True,
        params={"C": _real(1e-2, 1e3, log=True), "gamma": _real(1e-4, 1.0, log=True)},
    ),
    "knn": _Model(
        _BOTH,
        scaled=True,
        params={"n_neighbors": _int(1, 50, log=True), "weights": _choice("uniform", "distance")},
    ),
    "random_forest": _Model(_BOTH, params=dict(_TREES)),
    "extra_trees": _Model(_BOTH, params=dict(_TREES)),
    "hist_gradient_boosting": _Model(
        _BOTH,
        params={
            "learning_rate": _real(0.01, 0.3, log=True),
            "max_iter": _int(20, 500, log=True),
            "max_leaf_nodes": _int(4, 128, log=True),
            "min_samples_leaf": _int(2, 100, log=True),
            "l2_regularization": _real(1e-8, 10.0, log=True),
        },
    ),
    "lightgbm": _Model(
        _BOTH,
        module="lightgbm",
        params=_BOOST
        | {
            "num_leaves": _int(4, 128, log=True),
            "min_child_samples": _int(2, 100, log=True),
            "colsample_bytree": _real(0.3, 1.0),
            "reg_lambda": _real(1e-8, 10.0, log=True),
        },
    ),
    "xgboost": _Model(
        _BOTH,
        module="xgboost",
        params=_BOOST
        | {
            "max_depth": _int(2, 10),
            "min_child_weight": _real(1e-2, 20.0, log=True),
            "subsample": _real(0.5, 1.0),
            "colsample_bytree": _real(0.3, 1.0),
            "reg_lambda": _real(1e-8, 10.0, log=True),
        },
    ),
}


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def available_models(task: str, n_rows: int | None = None) -> list[str]:
    """The catalogue's models for ``task`` that can run here (and at ``n_rows`` rows)."""
    return [
        name
        for name, m in MODELS.items()
        if task in m.tasks
        and (m.module is None or _importable(m.module))
        and (n_rows is None or n_rows <= _MAX_ROWS.get(name, n_rows))
    ]


def search_space(task: str, models: Sequence[str], shape: DataShape) -> dict[str, Parameter]:
    """The conditional search space over ``models`` for data of ``shape``.

    Args:
        task: ``classification`` or ``regression``.
        models: Model names from :data:`MODELS` (already checked).
        shape: What the data looks like.

    Returns:
        Parameters by name: ``model``, then ``<model>.<hyperparameter>`` under
        ``when={"model": <model>}``, ``scaler`` under the scaled models, and ``imputer`` when
        numbers are missing.
    """
    space: dict[str, Parameter] = {"model": _choice(*models).model_copy(update={"name": "model"})}
    scaled = tuple(m for m in models if MODELS[m].scaled)
    if scaled:
        space["scaler"] = _choice("standard", "robust", "quantile").model_copy(
            update={"name": "scaler", "when": {"model": scaled}}
        )
    if shape.missing:
        space["imputer"] = _choice("median", "mean").model_copy(update={"name": "imputer"})
    for model in models:
        for pname, p in MODELS[model].params.items():
            name = f"{model}.{pname}"
            space[name] = p.model_copy(update={"name": name, "when": {"model": (model,)}})
    return space


#: The order default configurations run in: the cheapest first (a result in any budget), then
#: the strongest.
_DEFAULT_ORDER = (
    "logistic",
    "ridge",
    "hist_gradient_boosting",
    "random_forest",
    "lightgbm",
    "svm",
    "extra_trees",
    "knn",
    "xgboost",
    "elastic_net",
)


def default_points(task: str, models: Sequence[str], shape: DataShape) -> list[dict[str, Any]]:
    """Each model's library defaults (clipped into its space), as configurations to run first.

    A search that starts from every model's defaults has a sound result after one round and
    tells the algorithm early which families fit the data, where random start-up points would
    spend the first trials on arbitrary corners of a large space.

    Args:
        task: ``classification`` or ``regression``.
        models: The models searched.
        shape: The data's columns (the SVM's gamma and the forests' feature share use it).

    Returns:
        One configuration per model, in :data:`_DEFAULT_ORDER`.
    """
    n_features = max(1, len(shape.numeric) + len(shape.categorical))
    trees = {
        "n_estimators": 100,
        # Scikit-learn's defaults: sqrt(p) features per split to classify, all to regress.
        "max_features": 1.0 if task == REGRESSION else max(0.1, min(1.0, n_features**-0.5)),
        "min_samples_leaf": 1,
    }
    defaults: dict[str, dict[str, Any]] = {
        "logistic": {"C": 1.0},
        "ridge": {"alpha": 1.0},
        "elastic_net": {"alpha": 1e-3, "l1_ratio": 0.5},
        "svm": {"C": 1.0, "gamma": max(1e-4, min(1.0, 1.0 / n_features))},  # gamma='scale'
        "knn": {"n_neighbors": 5, "weights": "distance"},
        "random_forest": trees,
        "extra_trees": trees,
        "hist_gradient_boosting": {
            "learning_rate": 0.1,
            "max_iter": 100,
            "max_leaf_nodes": 31,
            "min_samples_leaf": 20,
            "l2_regularization": 1e-8,
        },
        "lightgbm": {
            "learning_rate": 0.1,
            "n_estimators": 100,
            "num_leaves": 31,
            "min_child_samples": 20,
            "colsample_bytree": 1.0,
            "reg_lambda": 1e-8,
        },
        "xgboost": {
            "learning_rate": 0.3,
            "n_estimators": 100,
            "max_depth": 6,
            "min_child_weight": 1.0,
            "subsample": 1.0,
            "colsample_bytree": 1.0,
            "reg_lambda": 1.0,
        },
    }
    points = []
    for model in sorted(models, key=_DEFAULT_ORDER.index):
        point: dict[str, Any] = {"model": model}
        point |= {f"{model}.{k}": v for k, v in defaults[model].items()}
        if MODELS[model].scaled:
            point["scaler"] = "standard"
        if shape.missing:
            point["imputer"] = "median"
        points.append(point)
    return points


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier fitted on labels encoded as 0..k-1 that predicts the original labels.

    XGBoost accepts only encoded labels; wrapping it keeps the pipeline's ``predict`` in the
    user's labels (a saved, served model answers with them).

    Args:
        estimator: The classifier to wrap.
    """

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any) -> LabelEncodedClassifier:
        """Encode ``y``, fit a clone of the wrapped classifier."""
        import numpy as np
        from sklearn.base import clone

        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        self.estimator_ = clone(self.estimator).fit(X, codes)
        return self

    def predict(self, X: Any) -> Any:
        """Predicted labels, decoded."""
        import numpy as np

        return self.classes_[np.asarray(self.estimator_.predict(X)).astype(int)]

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, columns in ``classes_`` order."""
        return self.estimator_.predict_proba(X)


def _estimator(
    task: str, model: str, p: Mapping[str, Any], shape: DataShape, proba: bool, seed: int
) -> Any:
    """The unfitted estimator of one configuration (``p``: its hyperparameters, unprefixed)."""
    clf = task == CLASSIFICATION
    stop = shape.n_rows >= EARLY_STOP_ROWS  # boosting rounds stop on a validation split
    if model == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=p["C"], max_iter=2000)
    if model == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=p["alpha"])
    if model == "elastic_net":
        from sklearn.linear_model import ElasticNet

        return ElasticNet(alpha=p["alpha"], l1_ratio=p["l1_ratio"], max_iter=5000)
    if model == "svm":
        from sklearn.svm import SVC, SVR

        if clf:
            return SVC(C=p["C"], gamma=p["gamma"], probability=proba, random_state=seed)
        return _scaled_target(SVR(C=p["C"], gamma=p["gamma"]))
    if model == "knn":
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        k = min(int(p["n_neighbors"]), max(1, shape.n_rows // 2))
        cls = KNeighborsClassifier if clf else KNeighborsRegressor
        return cls(n_neighbors=k, weights=p["weights"])
    if model in ("random_forest", "extra_trees"):
        from sklearn import ensemble

        name = ("RandomForest" if model == "random_forest" else "ExtraTrees") + (
            "Classifier" if clf else "Regressor"
        )
        return getattr(ensemble, name)(
            n_estimators=int(p["n_estimators"]),
            max_features=float(p["max_features"]),
            min_samples_leaf=int(p["min_samples_leaf"]),
            random_state=seed,
            n_jobs=1,
        )
    if model == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier as HGBC
        from sklearn.ensemble import HistGradientBoostingRegressor as HGBR

        return (HGBC if clf else HGBR)(
            learning_rate=p["learning_rate"],
            max_iter=int(p["max_iter"]),
            max_leaf_nodes=int(p["max_leaf_nodes"]),
            min_samples_leaf=int(p["min_samples_leaf"]),
            l2_regularization=p["l2_regularization"],
            early_stopping=stop,
            random_state=seed,
        )
    if model == "lightgbm":
        import lightgbm

        kind = lightgbm.LGBMClassifier if clf else lightgbm.LGBMRegressor
        return kind(
            learning_rate=p["learning_rate"],
            n_estimators=int(p["n_estimators"]),
            num_leaves=int(p["num_leaves"]),
            min_child_samples=int(p["min_child_samples"]),
            colsample_bytree=p["colsample_bytree"],
            reg_lambda=p["reg_lambda"],
            random_state=seed,
            n_jobs=1,
            verbose=-1,
        )
    if model == "xgboost":
        import xgboost

        kw = {
            "learning_rate": p["learning_rate"],
            "n_estimators": int(p["n_estimators"]),
            "max_depth": int(p["max_depth"]),
            "min_child_weight": p["min_child_weight"],
            "subsample": p["subsample"],
            "colsample_bytree": p["colsample_bytree"],
            "reg_lambda": p["reg_lambda"],
            "tree_method": "hist",
            "random_state": seed,
            "n_jobs": 1,
        }
        if clf:
            return LabelEncodedClassifier(xgboost.XGBClassifier(**kw))
        return xgboost.XGBRegressor(**kw)
    raise ValueError(f"unknown model {model!r}")


def _scaled_target(regressor: Any) -> Any:
    """SVR's epsilon and C assume a target of unit scale: standardize it around the model."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler

    return TransformedTargetRegressor(regressor=regressor, transformer=StandardScaler())


def _scaler(name: str, n_rows: int, seed: int) -> Any:
    from sklearn.preprocessing import QuantileTransformer, RobustScaler, StandardScaler

    if name == "robust":
        return RobustScaler()
    if name == "quantile":
        quantiles = max(10, min(1000, n_rows))
        return QuantileTransformer(
            n_quantiles=quantiles, output_distribution="normal", random_state=seed
        )
    return StandardScaler()


def build_pipeline(
    task: str,
    params: Mapping[str, ParamValue],
    shape: DataShape,
    *,
    proba: bool = False,
    seed: int = 0,
) -> Any:
    """The unfitted scikit-learn ``Pipeline`` of one trial's parameters.

    Numeric columns are imputed (``imputer``, median by default) and then scaled (``scaler``,
    scaled models only); categorical columns are imputed with their most frequent value and
    one-hot encoded (at most 20 levels each; unknown levels at prediction time encode as zeros).

    Args:
        task: ``classification`` or ``regression``.
        params: The trial's active parameters (``model``, ``<model>.<name>``...).
        shape: The data's columns and size.
        proba: The metric needs ``predict_proba`` (SVC computes it only on request).
        seed: Seed of the randomized estimators.

    Returns:
        A ``Pipeline`` of ``prepare`` (a ``ColumnTransformer``) and ``model``.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    model = str(params["model"])
    own = {k.removeprefix(f"{model}."): v for k, v in params.items() if k.startswith(f"{model}.")}
    steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy=str(params.get("imputer", "median"))))
    ]
    if MODELS[model].scaled:
        steps.append(("scale", _scaler(str(params.get("scaler", "standard")), shape.n_rows, seed)))
    parts: list[tuple[str, Any, list[Any]]] = []
    if shape.numeric:
        parts.append(("numeric", Pipeline(steps), list(shape.numeric)))
    if shape.categorical:
        onehot = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=20)
        encode = Pipeline(
            [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", onehot)]
        )
        parts.append(("categorical", encode, list(shape.categorical)))
    prepare = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    estimator = _estimator(task, model, own, shape, proba, seed)
    return Pipeline([("prepare", prepare), ("model", estimator)])
