"""``automl.select_model``: which model, with which settings, for a table of data.

One call checks the data, builds a conditional search space over the catalogue of
:mod:`automl._select_space`, and runs it as an ordinary experiment through :func:`automl.tune`
(so it is stored, parallel, resumable and shown by ``automl show`` and the dashboard). Each trial
cross-validates one pipeline and reports the running mean after every fold, so the experiment's
early stopping (median stopping by default) ends a poor configuration after a fold or two. The
best configuration is then refitted on all the data and saved with :func:`automl.save_model`
into the best trial's artifact directory, where ``automl serve NAME`` finds it.

Calling it again with the same ``name`` and store continues the experiment: each call searches
for up to its own ``time_budget`` / ``max_trials`` more, then refits the best so far.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import statistics
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl._select_space import (
    CLASSIFICATION,
    MODELS,
    REGRESSION,
    DataShape,
    available_models,
    build_pipeline,
    default_points,
    search_space,
)
from automl.core import ExperimentRecord, ParamValue
from automl.errors import AutoMLError, NotFoundError, SpecError, SpecIssue
from automl.store import DEFAULT_STORE, Store

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METRICS", "SelectResult", "select_model"]

#: Metric name -> (scikit-learn scorer, direction) per task; the first is the task's default.
METRICS: dict[str, dict[str, tuple[str, str]]] = {
    CLASSIFICATION: {
        "accuracy": ("accuracy", "maximize"),
        "balanced_accuracy": ("balanced_accuracy", "maximize"),
        "f1_macro": ("f1_macro", "maximize"),
        "roc_auc": ("roc_auc", "maximize"),  # one-vs-rest for more than two classes
        "log_loss": ("neg_log_loss", "minimize"),
    },
    REGRESSION: {
        "r2": ("r2", "maximize"),
        "rmse": ("neg_root_mean_squared_error", "minimize"),
        "mae": ("neg_mean_absolute_error", "minimize"),
    },
}
DEFAULT_TIME_BUDGET = 60.0  # seconds, when neither a time budget nor a trial budget is given
_MAX_SHOWN = 20  # column names listed in an error


@dataclass(frozen=True)
class SelectResult:
    """What :func:`select_model` returns.

    Attributes:
        model: The best pipeline, refitted on all the data (a scikit-learn ``Pipeline``).
        best_params: The best trial's parameters (``model``, ``<model>.<name>``, ...).
        best_score: Its cross-validated ``metric`` (the mean over folds).
        metric: The metric searched.
        task: ``classification`` or ``regression``.
        experiment: The stored experiment (its name resumes it).
        trials: One row per trial (a pandas DataFrame).
        model_path: Where the refitted model was saved (``automl serve NAME`` serves it).
    """

    model: Any
    best_params: dict[str, ParamValue]
    best_score: float
    metric: str
    task: str
    experiment: ExperimentRecord
    trials: pd.DataFrame = field(repr=False)
    model_path: Path

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.experiment.name

    @property
    def best_model_name(self) -> str:
        """The estimator the search chose (``best_params["model"]``)."""
        return str(self.best_params["model"])


@dataclass(frozen=True)
class _Data:
    """Checked training data: the table, the target, what the space depends on."""

    X: Any  # a DataFrame (named columns) or a 2-D float array
    y: Any  # a 1-D array
    shape: DataShape


def _issue(issues: list[SpecIssue], path: str, message: str) -> None:
    issues.append(SpecIssue(path, message))


def _shown(names: Sequence[Any]) -> str:
    listed = ", ".join(repr(str(n)) for n in names[:_MAX_SHOWN])
    more = f" and {len(names) - _MAX_SHOWN} more" if len(names) > _MAX_SHOWN else ""
    return f"[{listed}{more}]"


def _table(X: Any, y: Any, issues: list[SpecIssue]) -> tuple[Any, Any] | None:
    """``X`` as a DataFrame or a 2-D numeric array, ``y`` as a 1-D array; None if unusable."""
    import numpy as np
    import pandas as pd

    if isinstance(y, str):
        if not isinstance(X, pd.DataFrame):
            _issue(issues, "y", f"a column name ({y!r}) needs X to be a pandas DataFrame")
            return None
        if y not in X.columns:
            _issue(
                issues,
                "target",
                f"no column {y!r} in the data; its columns are {_shown(X.columns)}",
            )
            return None
        X, y = X.drop(columns=[y]), X[y]
    if isinstance(X, pd.DataFrame):
        X = X.copy()
        X.columns = [str(c) for c in X.columns]  # scikit-learn wants string feature names
    else:
        try:
            X = np.asarray(X)
        except (TypeError, ValueError) as exc:
            _issue(issues, "X", f"must be a table (DataFrame or 2-D array): {exc}")
            return None
        if X.ndim != 2:
            _issue(issues, "X", f"must be 2-D (rows x columns); got shape {list(X.shape)}")
            return None
        if X.dtype.kind not in "biuf":  # strings or objects: name the columns, as a frame
            X = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])]).infer_objects()
    if X.shape[0] == 0 or X.shape[1] == 0:
        _issue(issues, "X", f"is empty: {X.shape[0]} rows, {X.shape[1]} columns")
        return None
    y = np.asarray(y.to_numpy() if isinstance(y, pd.Series) else y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        _issue(issues, "y", f"must be one column of targets; got shape {list(y.shape)}")
        return None
    if len(y) != X.shape[0]:
        _issue(issues, "y", f"has {len(y)} values for the {X.shape[0]} rows of X")
        return None
    return X, y


def _columns(X: Any, issues: list[SpecIssue]) -> tuple[tuple[Any, ...], tuple[Any, ...], bool]:
    """Numeric and categorical columns, and whether a numeric one holds NaN."""
    import numpy as np
    import pandas as pd

    if not isinstance(X, pd.DataFrame):
        values = X.astype(float)
        if np.isinf(values).any():
            col = int(np.nonzero(np.isinf(values).any(axis=0))[0][0])
            _issue(
                issues, f"X[:, {col}]", "holds infinite values; replace them with NaN or numbers"
            )
        return tuple(range(X.shape[1])), (), bool(np.isnan(values).any())
    numeric, categorical = [], []
    missing = False
    for name in X.columns:
        col = X[name]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            values = col.to_numpy(dtype=float, na_value=np.nan)
            if np.isinf(values).any():
                _issue(issues, f"X.{name}", "holds infinite values; replace them with NaN")
            missing = missing or bool(np.isnan(values).any())
            numeric.append(name)
        elif (
            isinstance(col.dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(col)
            or pd.api.types.is_string_dtype(col)
        ):
            categorical.append(name)
        else:
            _issue(
                issues,
                f"X.{name}",
                f"has type {col.dtype}, which the pipelines cannot use; convert it to numbers "
                "or strings",
            )
    return tuple(numeric), tuple(categorical), missing


def _target(y: Any, task: str, issues: list[SpecIssue]) -> tuple[Any, int]:
    """The target checked against the task; (y, number of classes)."""
    import numpy as np
    import pandas as pd

    missing = pd.isna(y)
    if missing.any():
        rows = np.nonzero(missing)[0]
        _issue(
            issues,
            "y",
            f"holds {len(rows)} missing values (NaN), first at row {int(rows[0])}; drop those "
            "rows or fill them in before selecting a model",
        )
        return y, 0
    numeric = y.dtype.kind in "biuf"
    if task == REGRESSION:
        if not numeric or y.dtype.kind == "b":
            example = next(iter(y))
            _issue(
                issues,
                "task",
                f"regression needs a numeric target; y holds {type(example).__name__} values "
                f"(e.g. {example!r}): use task='classification'",
            )
            return y, 0
        y = y.astype(float)
        if not np.isfinite(y).all():
            _issue(issues, "y", "holds infinite values")
        elif len(np.unique(y)) < 2:
            _issue(issues, "y", f"is constant ({y[0]!r}): there is nothing to predict")
        return y, 0
    if numeric and y.dtype.kind == "f":
        fractional = y[y != np.round(y)]
        if len(fractional):
            _issue(
                issues,
                "task",
                "classification needs class labels; y holds "
                f"{len(np.unique(fractional))} distinct non-integer numbers (e.g. "
                f"{float(fractional[0])!r}): use task='regression'",
            )
            return y, 0
        y = y.astype(int)
    if not numeric:
        y = y.astype(str) if any(isinstance(v, str) for v in y[:100]) else y
    classes = np.unique(y)
    if len(classes) < 2:
        _issue(
            issues,
            "y",
            f"holds one class only ({classes[0]!r}); classification needs at least two",
        )
    return y, len(classes)


def _check_data(X: Any, y: Any, task: str, cv: int, issues: list[SpecIssue]) -> _Data | None:
    table = _table(X, y, issues)
    if table is None:
        return None
    X, y = table
    numeric, categorical, missing = _columns(X, issues)
    y, n_classes = _target(y, task, issues)
    n = X.shape[0]
    if isinstance(cv, bool) or not isinstance(cv, int) or not 2 <= cv <= n:
        _issue(issues, "cv", f"must be an integer from 2 to the {n} rows; got {cv!r}")
    elif n_classes >= 2:
        import numpy as np

        classes, counts = np.unique(y, return_counts=True)
        if counts.min() < cv:
            small = classes[int(counts.argmin())]
            _issue(
                issues,
                "cv",
                f"must be at most the size of the smallest class ({int(counts.min())} rows of "
                f"class {small!r}) for stratified folds; got {cv}",
            )
    shape = DataShape(
        n_rows=n,
        numeric=numeric,
        categorical=categorical,
        missing=missing,
        n_classes=n_classes,
    )
    return _Data(X, y, shape)


def _check_args(
    task: str,
    metric: str | None,
    models: Sequence[str] | None,
    time_budget: float | None,
    max_trials: int | None,
    parallel_trials: int,
    n_rows: int | None,
    issues: list[SpecIssue],
) -> tuple[str, list[str]]:
    """The metric and models to search, with every problem of the other arguments noted."""
    if task not in METRICS:
        _issue(issues, "task", f"must be 'classification' or 'regression'; got {task!r}")
        return "", []
    metric = next(iter(METRICS[task])) if metric is None else metric
    if metric not in METRICS[task]:
        _issue(
            issues, "metric", f"must be one of {sorted(METRICS[task])} for {task}; got {metric!r}"
        )
    here = available_models(task)
    chosen: list[str] = []
    if models is None:
        chosen = available_models(task, n_rows)
    elif isinstance(models, str) or not isinstance(models, Sequence) or not models:
        _issue(issues, "models", f"must be a non-empty list of model names; got {models!r}")
    else:
        for i, m in enumerate(models):
            spec = MODELS.get(m) if isinstance(m, str) else None
            if spec is None or task not in spec.tasks:
                names = [n for n, s in MODELS.items() if task in s.tasks]
                _issue(issues, f"models[{i}]", f"must be one of {names} for {task}; got {m!r}")
            elif m not in here:
                _issue(
                    issues,
                    f"models[{i}]",
                    f"{m!r} needs the {spec.module} package, which is not installed "
                    f"(pip install {spec.module})",
                )
            elif m not in chosen:
                chosen.append(m)
    if time_budget is not None and (
        isinstance(time_budget, bool)
        or not isinstance(time_budget, int | float)
        or not time_budget > 0
        or not math.isfinite(time_budget)
    ):
        _issue(issues, "time_budget", f"must be a number of seconds > 0; got {time_budget!r}")
    if max_trials is not None and (
        isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1
    ):
        _issue(issues, "max_trials", f"must be an integer >= 1; got {max_trials!r}")
    if (
        isinstance(parallel_trials, bool)
        or not isinstance(parallel_trials, int)
        or parallel_trials < 1
    ):
        _issue(issues, "parallel_trials", f"must be an integer >= 1; got {parallel_trials!r}")
    return metric, chosen


class _CrossValidated:
    """The objective of one trial: cross-validate its pipeline, reporting after each fold.

    The running mean after fold k is reported at step k (folds 1 to cv-1), so an early-stopping
    rule compares configurations fold by fold and stops a poor one before its remaining fits.
    """

    def __init__(self, data: _Data, task: str, metric: str, splits: list[Any], seed: int) -> None:
        from sklearn.metrics import get_scorer

        self.data, self.task, self.metric, self.splits, self.seed = (
            data,
            task,
            metric,
            splits,
            seed,
        )
        scorer_name, direction = METRICS[task][metric]
        multiclass = data.shape.n_classes > 2
        if scorer_name == "roc_auc" and multiclass:
            scorer_name = "roc_auc_ovr"
        self.scorer = get_scorer(scorer_name)
        self.sign = 1.0 if direction == "maximize" else -1.0  # scorers maximize: neg_* errors
        self.proba = metric == "log_loss" or (metric == "roc_auc" and multiclass)
        self.budget: float | None = None  # seconds of search, counted from the first trial
        self._deadline: float | None = None
        self._lock = threading.Lock()

    def _too_late(self, started: float, done: int) -> bool:
        """Whether the folds left cannot end before the deadline (the trial would be lost)."""
        if self.budget is None:
            return False
        now = time.time()
        with self._lock:  # the controller's clock starts with the first trial, give or take
            if self._deadline is None:
                self._deadline = now + self.budget
        deadline = self._deadline
        per_fold = (now - started) / done if done else 0.0
        return now + per_fold * (len(self.splits) - done) > deadline

    def __call__(self, params: dict[str, Any]) -> dict[str, float]:
        from sklearn.base import clone

        from automl._report import TrialStopped, report, should_stop

        pipe = build_pipeline(self.task, params, self.data.shape, proba=self.proba, seed=self.seed)
        X, y = self.data.X, self.data.y
        scores: list[float] = []
        started = time.time()
        for k, (train, valid) in enumerate(self.splits, start=1):
            if self._too_late(started, k - 1):  # free the CPU for trials that can finish
                raise TrialStopped
            fitted = clone(pipe).fit(_rows(X, train), y[train])
            scores.append(self.sign * float(self.scorer(fitted, _rows(X, valid), y[valid])))
            mean = statistics.fmean(scores)
            if k < len(self.splits):
                report(step=k, **{self.metric: mean})
                if should_stop():  # stopped early, or the time budget ran out
                    raise TrialStopped
        return {self.metric: statistics.fmean(scores)}


def _rows(X: Any, index: Any) -> Any:
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


def _splits(data: _Data, task: str, cv: int, seed: int) -> list[Any]:
    from sklearn.model_selection import KFold, StratifiedKFold

    folds = (
        StratifiedKFold(cv, shuffle=True, random_state=seed)
        if task == CLASSIFICATION
        else KFold(cv, shuffle=True, random_state=seed)
    )
    return list(folds.split(_rows(data.X, slice(None)), data.y))


def _default_name(task: str) -> str:
    return f"select-{task}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _same_space(stored: Sequence[Any], wanted: Mapping[str, Any]) -> str | None:
    """Why a stored experiment's space differs from this call's (None when it does not)."""
    have = {p.name: p for p in stored}
    if set(have) != set(wanted):
        diff = sorted(set(have) ^ set(wanted))
        return f"its parameters differ ({_shown(diff)})"
    for pname, p in wanted.items():
        if have[pname].model_dump() != p.model_dump():
            return f"parameter {pname!r} differs"
    return None


def _resume_budget(
    client: Any, name: str, time_budget: float | None, max_trials: int | None, space: Any
) -> bool:
    """Prepare a stored experiment for another call's budgets; False if there is none.

    Budgets are per call: the time limit becomes the time already spent plus ``time_budget``
    and the trial limit the trials already ended plus ``max_trials``.
    """
    try:
        exp = client.get(name)
    except NotFoundError:
        return False
    why = _same_space(exp.spec.parameters, space)
    if why is not None:
        raise SpecError(
            f"experiment {name!r} exists with another search space ({why}: other data, task or "
            "models); pick another name to start a new search",
            path="name",
        )
    ended = sum(1 for t in client.store.trials.list(exp.id) if not t.state.is_active)
    # The controller's deadline is the first start plus the timeout: extend it from now.
    spent = time.time() - (exp.started_at or time.time())
    spec = exp.spec.model_copy(
        update={
            "timeout": None if time_budget is None else max(0.0, spent) + time_budget,
            "max_trial_count": None if max_trials is None else ended + max_trials,
        }
    )
    client.store.experiments.update(exp.id, spec=spec)
    return True


def _refit_and_save(
    client: Any,
    name: str,
    data: _Data,
    task: str,
    params: Mapping[str, Any],
    proba: bool,
    seed: int,
    trial: Any,
    runs_dir: Path,
) -> tuple[Any, Path]:
    """Fit the best configuration on all rows; save it where ``automl serve`` looks."""
    from automl._artifacts import artifact_dir, collect_outputs, save_model

    model = build_pipeline(task, params, data.shape, proba=proba, seed=seed)
    model.fit(data.X, data.y)
    where = artifact_dir(runs_dir, name, trial.id)
    path = save_model(model, "model", directory=where)
    # The trial ended before the model existed: record it with the trial as if it had saved it.
    client.store.trials.update(trial.id, outputs=collect_outputs(where))
    return model, path


def select_model(
    X: Any,
    y: Any,
    *,
    task: str = CLASSIFICATION,
    metric: str | None = None,
    time_budget: float | None = None,
    max_trials: int | None = None,
    models: Sequence[str] | None = None,
    cv: int = 5,
    parallel_trials: int | None = None,
    early_stopping: str | Mapping[str, Any] | None = "median",
    store: str | Store = DEFAULT_STORE,
    name: str | None = None,
    seed: int | None = 0,
    runs_dir: str | Path = "automl-runs",
    progress: bool | None = None,
) -> SelectResult:
    """Find the best scikit-learn pipeline for a table: model, preprocessing and settings.

    Searches one conditional space over the available estimators (logistic / ridge / elastic
    net, SVM, k-NN, random forest, extra trees, histogram gradient boosting, and LightGBM and
    XGBoost when installed), each with its own hyperparameters, plus preprocessing (imputation
    of missing numbers, one-hot encoding of string and categorical columns, a scaler for the
    models that need one). Each trial is cross-validated; the experiment is stored under
    ``name`` like any other and a second call with the same ``name`` continues it.

    Args:
        X: The features: a pandas DataFrame (string and categorical columns are one-hot
            encoded) or a 2-D array.
        y: The target (array or Series), or the name of a column of ``X``.
        task: ``classification`` or ``regression``.
        metric: What to optimize, by name: classification ``accuracy`` (default),
            ``balanced_accuracy``, ``f1_macro``, ``roc_auc``, ``log_loss``; regression ``r2``
            (default), ``rmse``, ``mae``.
        time_budget: Seconds of search for this call (default 60 when ``max_trials`` is unset
            too); the refit of the best pipeline comes after it.
        max_trials: Configurations to try in this call.
        models: Model names to search (default: every available one; SVM and k-NN only up to
            10,000 / 50,000 rows).
        cv: Cross-validation folds (stratified for classification).
        parallel_trials: Configurations evaluated at once (threads; default: the CPU count, at
            most 4).
        early_stopping: The early-stopping rule over folds (``"median"`` by default, any rule of
            :func:`automl.tune`, or None).
        store: Store URL or an open :class:`~automl.store.Store`.
        name: The experiment's name (generated if None); an existing one is continued.
        seed: Seed of the folds, the estimators and the search.
        runs_dir: Where trials keep their files, the refitted model among them.
        progress: Show the progress display (None: when the output is a terminal or notebook).

    Returns:
        The refitted best pipeline, its parameters and score, the experiment and its trials.

    Raises:
        SpecError: Bad data or arguments, each named, before any trial runs: a missing target
            column, a target that does not fit the task (strings for regression, one class,
            NaN), empty data, an unknown metric or model.
        AutoMLError: No configuration finished within the budget.

    Example:
        >>> from sklearn.datasets import load_iris  # doctest: +SKIP
        >>> X, y = load_iris(return_X_y=True, as_frame=True)
        >>> result = automl.select_model(X, y, task="classification", time_budget=30)
        >>> result.model.predict(X[:3]), result.best_params["model"]
    """
    from automl._api import tune

    entered = time.monotonic()
    issues: list[SpecIssue] = []
    data = _check_data(X, y, task, cv, issues) if task in METRICS else None
    metric, chosen = _check_args(
        task,
        metric,
        models,
        time_budget,
        max_trials,
        parallel_trials if parallel_trials is not None else 1,
        data.shape.n_rows if data is not None else None,
        issues,
    )
    if issues:
        raise SpecError(issues)
    assert data is not None
    seed_ = 0 if seed is None else seed
    if time_budget is None and max_trials is None:
        time_budget = DEFAULT_TIME_BUDGET
    if parallel_trials is None:
        parallel_trials = max(1, min(4, os.cpu_count() or 1))
    if max_trials is not None:  # no more at once than there are trials to run
        parallel_trials = min(parallel_trials, max_trials)
    space = search_space(task, chosen, data.shape)
    search_budget = None
    if time_budget is not None:  # what is left after the checks, less a share for the refit
        search_budget = max(0.1, (time_budget - (time.monotonic() - entered)) * 0.9)
    objective = _CrossValidated(data, task, metric, _splits(data, task, cv, seed_), seed_)
    name = name or _default_name(task)
    from automl._client import Client

    with Client(store, runs_dir=runs_dir) as client:
        resuming = _resume_budget(client, name, search_budget, max_trials, space)
        objective.budget = search_budget
        with warnings.catch_warnings():
            # Searching visits configurations that converge slowly; their warnings are noise.
            warnings.filterwarnings("ignore", module=r"sklearn|lightgbm|xgboost")
            warnings.filterwarnings("ignore", message=r".*(converge|feature names)")
            if resuming:
                result = client.resume(
                    name, objective=objective, parallel_trials=parallel_trials, progress=progress
                )
            else:
                result = tune(
                    objective,
                    space,
                    objective_metric=metric,
                    direction=METRICS[task][metric][1],
                    # The trial's value is its mean over every fold (the last value), not the
                    # best running mean after a lucky first fold.
                    metric_strategies={metric: "latest"},
                    algorithm="tpe",
                    # Every model's defaults first; TPE models the space from then on.
                    initial_points=default_points(task, chosen, data.shape),
                    algorithm_settings={"n_startup_trials": len(chosen)},
                    max_trials=max_trials,
                    parallel_trials=parallel_trials,
                    timeout=search_budget,
                    seed=seed,
                    early_stopping=early_stopping,
                    name=name,
                    store=client.store,
                    progress=progress,
                    runs_dir=runs_dir,
                )
            best = result.best_trial
            if best is None or best.value is None:
                raise AutoMLError(
                    f"no configuration finished in experiment {name!r} "
                    f"({result.reason}: {result.experiment.message}); raise time_budget or "
                    "max_trials, or call select_model again with the same name to go on"
                )
            model, path = _refit_and_save(
                client, name, data, task, best.params, objective.proba, seed_, best, Path(runs_dir)
            )
        exp = client.get(name)
    return SelectResult(
        model=model,
        best_params=dict(best.params),
        best_score=float(best.value),
        metric=metric,
        task=task,
        experiment=exp,
        trials=result.trials,
        model_path=path,
    )


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (or Parquet) file for ``automl select``.

    Raises:
        SpecError: The file is missing or cannot be parsed (path ``data``).
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise SpecError(f"no such file: {str(p)!r}", path="data")
    try:
        if re.search(r"\.parq(uet)?$", p.name):
            return pd.read_parquet(p)
        return pd.read_csv(p)
    except (ValueError, OSError, ImportError) as exc:
        raise SpecError(f"cannot read {str(p)!r}: {exc}", path="data") from None
