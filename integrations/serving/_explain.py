"""Per-feature attributions for scikit-learn models, served on v1 ``:explain``.

Every attribution is measured against a *baseline* input ``b`` (a "typical" instance) and
explains one scalar output ``f``: the decision function of the predicted class for linear
classifiers, the probability of the predicted class for other classifiers, the prediction for
regressors. The attributions of an instance ``x`` always add up to ``f(x) - f(b)``.

* ``linear`` (a bare linear model with ``coef_``: LinearRegression, Ridge, LogisticRegression,
  LinearSVC, SGD...): ``coef_j * (x_j - b_j)``, exact (these are the model's Shapley values).
* ``shapley-permutation`` (any other model: trees, ensembles, pipelines, kernels): baseline
  Shapley values estimated by sampling feature orderings (Castro et al. 2009; Štrumbelj &
  Kononenko 2014). Along each ordering the features switch one at a time from ``b_j`` to
  ``x_j`` and each is credited with the change of ``f`` it causes; the credits of one ordering
  telescope to ``f(x) - f(b)``, so their average over orderings does too. Orderings come in
  antithetic pairs (an ordering and its reverse), which cancels much of the sampling noise;
  one model call evaluates all of them for an instance.

The baseline is, first found: the ``background`` given to the server (``--background``: a
``.npy`` or ``.csv`` of rows, averaged), ``<model>.background.npy`` in the artifact directory
(a trial can ``np.save`` its training-set mean there), the ``mean_`` of a leading
StandardScaler in a Pipeline, or zeros. KServe runs explainers (Alibi, ART) as a separate
``explainer`` container; here the explainer runs in the serving process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automl.errors import AutoMLError
from integrations.serving._codec import to_jsonable
from integrations.serving._model import Predictor, SklearnPredictor

__all__ = ["Explainer", "load_background", "make_explainer"]


def load_background(path: str | Path) -> np.ndarray:
    """A baseline row from a ``.npy`` or ``.csv`` file of rows (their mean) or of one row.

    Raises:
        AutoMLError: Unreadable file, or not numeric.
    """
    p = Path(path)
    try:
        if p.suffix == ".npy":
            data = np.load(p, allow_pickle=False)
        else:
            data = np.loadtxt(p, delimiter=",", ndmin=2)
    except (OSError, ValueError) as exc:
        raise AutoMLError(f"cannot read background {p}: {exc}") from None
    data = np.asarray(data, dtype=np.float64)
    return data.mean(axis=0) if data.ndim == 2 else data.reshape(-1)


@dataclass(frozen=True)
class _Target:
    label: Any
    output: str


class Explainer:
    """Attributions for one scikit-learn model (see the module docs for the method).

    Args:
        predictor: The served model.
        baseline: The baseline instance ``b``.
        baseline_source: Where ``b`` came from (reported with every explanation).
        permutations: Orderings sampled per instance (rounded up to an even number) for the
            model-agnostic method.
        seed: Seed of the orderings (explanations are reproducible).
    """

    def __init__(
        self,
        predictor: SklearnPredictor,
        baseline: np.ndarray,
        baseline_source: str,
        permutations: int = 16,
        seed: int = 0,
    ) -> None:
        self.predictor = predictor
        self.model = predictor.model
        self.baseline = np.asarray(baseline, dtype=np.float64).reshape(-1)
        self.baseline_source = baseline_source
        self.permutations = max(2, permutations + permutations % 2)
        self.seed = seed
        self.method = "linear" if _is_linear(self.model) else "shapley-permutation"

    # -- the explained output f --------------------------------------------------------------
    def _target(self, x: np.ndarray) -> tuple[np.ndarray, list[_Target]]:
        """Which output column to explain for each instance, and its description."""
        classes = getattr(self.model, "classes_", None)
        if classes is None:
            return np.zeros(len(x), dtype=int), [_Target(None, "predict")] * len(x)
        pred = np.asarray(self.model.predict(self.predictor._frame(x)))
        idx = np.searchsorted(classes, pred) if classes.dtype.kind in "iuf" else None
        if idx is None:
            lookup = {c: i for i, c in enumerate(classes.tolist())}
            idx = np.array([lookup[p] for p in pred.tolist()])
        what = "decision_function" if self.method == "linear" else "predict_proba"
        return idx, [_Target(to_jsonable(classes[i]), f"{what}[{classes[i]!s}]") for i in idx]

    def _f(self, z: np.ndarray, column: int) -> np.ndarray:
        m = self.model
        frame = self.predictor._frame(z)
        if getattr(m, "classes_", None) is None:
            out = np.asarray(m.predict(frame), dtype=np.float64)
            return out if out.ndim == 1 else out[:, 0]
        if self.method == "linear":
            d = np.asarray(m.decision_function(frame), dtype=np.float64)
            if d.ndim == 1:  # binary: the decision is for classes_[1]; negate for classes_[0]
                return d if column == 1 else -d
            return d[:, column]
        if callable(getattr(m, "predict_proba", None)):
            return np.asarray(m.predict_proba(frame), dtype=np.float64)[:, column]
        # A classifier without probabilities: explain the 0/1 "is the predicted class".
        hit: np.ndarray = np.asarray(m.predict(frame)) == m.classes_[column]
        return hit.astype(np.float64)

    # -- attributions ------------------------------------------------------------------------
    def explain(self, x: np.ndarray) -> list[dict[str, Any]]:
        """One explanation per instance of the (already validated) batch ``x``."""
        if self.baseline.shape[0] != x.shape[1]:
            raise AutoMLError(
                f"explainer baseline ({self.baseline_source}) has {self.baseline.shape[0]} "
                f"features; the model takes {x.shape[1]}"
            )
        columns, targets = self._target(x)
        names = list(self.predictor.info.feature_names or [f"x{j}" for j in range(x.shape[1])])
        out = []
        for i, row in enumerate(x):
            col = int(columns[i])
            linear = self.method == "linear"
            phi = self._linear(row, col) if linear else self._shapley(row, col, i)
            fx, fb = self._f(np.stack([row, self.baseline]), col)
            out.append(
                {
                    "target": targets[i].label,
                    "output": targets[i].output,
                    "value": float(fx),
                    "baseline_value": float(fb),
                    "attributions": [float(v) for v in phi],
                    "feature_names": names,
                }
            )
        return out

    def _linear(self, row: np.ndarray, column: int) -> np.ndarray:
        coef = np.asarray(self.model.coef_, dtype=np.float64)
        if coef.ndim == 2:
            if coef.shape[0] > 1:
                w = coef[column]
            elif column == 0 and getattr(self.model, "classes_", None) is not None:
                w = -coef[0]  # binary: the decision function speaks for classes_[1]
            else:
                w = coef[0]
        else:
            w = coef
        phi: np.ndarray = w * (row - self.baseline)
        return phi

    def _shapley(self, row: np.ndarray, column: int, salt: int) -> np.ndarray:
        n = row.shape[0]
        rng = np.random.default_rng([self.seed, salt])
        half = [rng.permutation(n) for _ in range(self.permutations // 2)]
        orders = half + [p[::-1] for p in half]
        # For each ordering: rows 0..n, where row k has the first k features of the ordering
        # switched from the baseline to x.
        z = np.repeat(self.baseline[None, None, :], len(orders), axis=0)
        z = np.repeat(z, n + 1, axis=1)
        for o, order in enumerate(orders):
            for k, j in enumerate(order):
                z[o, k + 1 :, j] = row[j]
        f = self._f(z.reshape(-1, n), column).reshape(len(orders), n + 1)
        phi = np.zeros(n)
        for o, order in enumerate(orders):
            phi[order] += np.diff(f[o])
        return phi / len(orders)


def _is_linear(model: Any) -> bool:
    """A bare model whose output is ``coef_ @ x + intercept_``, one row of coef_ per class.

    Pipelines are not (their steps transform x first); nor is a one-vs-one SVC, whose rows
    are class pairs.
    """
    if hasattr(model, "steps") or not hasattr(model, "intercept_"):
        return False
    try:
        coef = np.asarray(model.coef_)
    except (AttributeError, ValueError):  # e.g. SVC(kernel="rbf").coef_ raises
        return False
    classes = getattr(model, "classes_", None)
    if classes is None:
        return coef.ndim == 1 or coef.shape[0] == 1
    if not callable(getattr(model, "decision_function", None)):
        return False
    return coef.ndim == 2 and coef.shape[0] == (1 if len(classes) == 2 else len(classes))


def make_explainer(
    predictor: Predictor,
    background: np.ndarray | str | Path | None = None,
    permutations: int = 16,
    seed: int = 0,
) -> Explainer | None:
    """The explainer for a predictor, or None when it cannot be explained (torch models).

    Args:
        predictor: The served model.
        background: Baseline rows (array or file); see the module docs for the fallbacks.
        permutations: Orderings per instance for non-linear models.
        seed: Seed of the orderings.
    """
    if not isinstance(predictor, SklearnPredictor):
        return None
    if background is not None:
        source = "background" if isinstance(background, np.ndarray) else str(background)
        base = (
            np.asarray(background, dtype=np.float64)
            if isinstance(background, np.ndarray)
            else load_background(background)
        )
        if base.ndim == 2:
            base = base.mean(axis=0)
        return Explainer(predictor, base, source, permutations, seed)
    info = predictor.info
    saved = Path(info.artifact_dir) / f"{Path(info.model_file).stem}.background.npy"
    if saved.is_file():
        return Explainer(predictor, load_background(saved), str(saved), permutations, seed)
    steps = getattr(predictor.model, "steps", None)
    if steps:
        first = steps[0][1]
        mean = getattr(first, "mean_", None)
        if mean is not None:
            return Explainer(
                predictor,
                np.asarray(mean, dtype=np.float64),
                f"mean_ of pipeline step {steps[0][0]!r}",
                permutations,
                seed,
            )
    n = info.n_features
    if n is None:
        return None
    return Explainer(predictor, np.zeros(n), "zeros", permutations, seed)
