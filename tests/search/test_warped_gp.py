"""``auto``'s GP with input warping (search._warped_gp): what it learns and when it steps aside."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest
import torch

import automl
from search import _auto, _warped_gp
from search._warped_gp import WarpedGPSampler
from tests.search.test_auto import _drive, _spec, quadratic

# Steep around x = 0.1, flat beyond: the shape of an error rate over a learning rate's range.
_STEEP = 0.1


def _steep(x: np.ndarray) -> np.ndarray:
    return np.tanh(40.0 * (x - _STEEP))


def _fit(x: np.ndarray, y: np.ndarray, categorical: list[bool] | None = None) -> Any:
    from optuna._gp.prior import DEFAULT_MINIMUM_NOISE_VAR, default_log_prior

    is_cat = np.array(categorical or [False] * x.shape[1])
    return _warped_gp._fit(
        x, (y - y.mean()) / y.std(), is_cat, default_log_prior, DEFAULT_MINIMUM_NOISE_VAR, False
    )


def test_installed_optuna_has_what_the_warped_gp_builds_on() -> None:
    # If this fails after an Optuna upgrade, `auto` silently runs the plain GP: mend the
    # override rather than accept the fallback.
    assert _warped_gp.available()


def test_the_warp_stretches_where_the_objective_is_steep() -> None:
    x = np.linspace(0.0, 1.0, 15)[:, None]
    gpr = _fit(x, _steep(x[:, 0]))
    grid = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)[:, None]
    warped = gpr._warp(grid)[:, 0].numpy()
    assert warped[0] == pytest.approx(0.0, abs=0.01)
    assert warped[-1] == pytest.approx(1.0, abs=0.01)
    assert (np.diff(warped) >= 0).all()  # monotone: the order of the inputs is kept
    # The steep tenth of the range takes more than a tenth of the warped range.
    assert warped[20] - warped[0] > 0.2, warped[[0, 10, 20, 50, 100]]


def test_the_warped_gp_predicts_a_steep_objective_better_than_the_plain_one() -> None:
    from optuna._gp import gp
    from optuna._gp.prior import DEFAULT_MINIMUM_NOISE_VAR, default_log_prior

    x = np.linspace(0.0, 1.0, 12)[:, None]
    y = _steep(x[:, 0])
    mu, sd = y.mean(), y.std()
    warped = _fit(x, y)
    plain = gp.fit_kernel_params(
        X=x,
        Y=(y - mu) / sd,
        is_categorical=np.array([False]),
        log_prior=default_log_prior,
        minimum_noise=DEFAULT_MINIMUM_NOISE_VAR,
        deterministic_objective=False,
    )
    test = np.linspace(0.02, 0.98, 49)
    truth = (_steep(test) - mu) / sd
    xt = torch.from_numpy(test[:, None])
    err = {
        name: float(np.mean((model.posterior(xt)[0].detach().numpy() - truth) ** 2))
        for name, model in (("warped", warped), ("plain", plain))
    }
    assert err["warped"] < err["plain"], err


def test_categorical_dimensions_are_not_warped() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.random(12), rng.integers(0, 3, 12).astype(float)])
    y = _steep(x[:, 0]) + x[:, 1]
    gpr = _fit(x, y, categorical=[False, True])
    assert float(gpr.log_a[1]) == 0.0 and float(gpr.log_b[1]) == 0.0
    probe = torch.tensor([[0.5, 2.0]], dtype=torch.float64)
    assert float(gpr._warp(probe)[0, 1]) == 2.0


def test_a_fit_that_breaks_down_falls_back_to_the_plain_gp(monkeypatch: Any) -> None:
    def singular(*a: Any, **k: Any) -> Any:
        raise torch.linalg.LinAlgError("not positive-definite")

    monkeypatch.setattr("scipy.optimize.minimize", singular)
    x = np.linspace(0.0, 1.0, 8)[:, None]
    gpr = _fit(x, _steep(x[:, 0]))
    assert not hasattr(gpr, "log_a")  # Optuna's own GPRegressor
    mean, _ = gpr.posterior(torch.tensor([[0.5]], dtype=torch.float64))
    assert np.isfinite(float(mean[0]))


def test_auto_fits_the_warped_gp_and_falls_back_without_it(monkeypatch: Any) -> None:
    used: list[str] = []
    for cls in (WarpedGPSampler, optuna.samplers.GPSampler):
        original = cls._sample_relative_impl

        def spy(self: Any, *a: Any, _orig: Any = original, **k: Any) -> Any:
            used.append(type(self).__name__)
            return _orig(self, *a, **k)

        monkeypatch.setattr(cls, "_sample_relative_impl", spy)
    space = {"x": automl.double(-3, 3), "y": automl.double(-3, 3)}
    _drive(_auto.AutoSuggester(_spec(space)), quadratic, 6)
    assert used and set(used) == {"WarpedGPSampler"}
    used.clear()
    monkeypatch.setattr(_auto, "warped_available", lambda: False)
    _drive(_auto.AutoSuggester(_spec(space)), quadratic, 6)
    assert used and set(used) == {"GPSampler"}
