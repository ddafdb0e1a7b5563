"""Optuna's GP with HEBO-style input warping: a Kumaraswamy CDF per numeric dimension.

A GP with a stationary kernel assumes the objective varies as fast everywhere. Tuning
objectives rarely do: an error rate is flat over most of a learning rate's range and steep near
its best values. Warping each numeric input through a Kumaraswamy CDF ``1 - (1 - x^a)^b``
(learnt with the kernel by maximizing the marginal likelihood, ``a = b = 1`` being no warping)
lets the model stretch the region where the objective moves and squeeze where it is flat, as
HEBO's and BoTorch's input warping do. Categorical dimensions are not warped (their distance is
the Hamming distance).

Optuna's ``GPSampler`` has no hook for an input transform, so ``WarpedGPSampler`` replaces the
one step that fits the GP (``_sample_relative_impl``) and keeps the rest: the acquisition
function, its optimizer, pending trials and constraints. Those pieces are private to Optuna:
``available()`` says whether the installed Optuna has them, and ``search._auto`` falls back to
the plain ``GPSampler`` where it does not.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial

__all__ = ["WarpedGPSampler", "available"]

_EPS = 1e-6  # keeps x^a differentiable at the bounds (a < 1)
_MAX_LOG_WARP = 1.0
_LOG_WARP_VAR = 0.25  # prior on log a and log b: N(0, 0.5^2)


def available() -> bool:
    """Whether the installed Optuna has the private GP pieces this sampler builds on."""
    try:
        from optuna._gp import gp, search_space  # noqa: F401
        from optuna._gp.thread_limiting import limit_threads_in_optimization  # noqa: F401
        from optuna.samplers._gp.sampler import _get_params, _standardize_values  # noqa: F401
    except ImportError:
        return False
    sampler = optuna.samplers.GPSampler
    return all(
        hasattr(sampler, name)
        for name in ("_sample_relative_impl", "_get_acqf_and_best_params", "_optimize_acqf")
    ) and hasattr(gp.GPRegressor, "_cache_matrix")


def _regressor_class() -> type:
    import torch
    from optuna._gp import gp

    class WarpedGPRegressor(gp.GPRegressor):  # type: ignore[misc]
        """``GPRegressor`` whose kernel sees each numeric input through a Kumaraswamy CDF."""

        def __init__(
            self,
            is_categorical: torch.Tensor,
            X_train: torch.Tensor,
            y_train: torch.Tensor,
            params: torch.Tensor,
        ) -> None:
            d = X_train.shape[1]
            super().__init__(
                is_categorical, X_train, y_train, params[:d], params[d], params[d + 1]
            )
            self._numeric = ~is_categorical
            self._set_warp(params[d + 2 : 2 * d + 2], params[2 * d + 2 :])

        def _set_warp(self, log_a: torch.Tensor, log_b: torch.Tensor) -> None:
            self.log_a, self.log_b = log_a, log_b
            self._warped_train = self._warp(self._X_train)
            self._squared_X_diff = self._sqd(self._warped_train, None)

        def _warp(self, x: torch.Tensor) -> torch.Tensor:
            xc = x.clamp(_EPS, 1.0 - _EPS)
            warped = 1.0 - (1.0 - xc ** self.log_a.exp()) ** self.log_b.exp()
            return torch.where(self._numeric, warped, x)

        def _sqd(self, x1: torch.Tensor, x2: torch.Tensor | None) -> torch.Tensor:
            x2 = x1 if x2 is None else x2
            sqd = (x1 - x2 if x1.ndim == 1 else x1.unsqueeze(-2) - x2.unsqueeze(-3)).square()
            if self._is_categorical.any():
                sqd = torch.where(self._is_categorical, (sqd > 0.0).to(sqd.dtype), sqd)
            return sqd

        def kernel(
            self, X1: torch.Tensor | None = None, X2: torch.Tensor | None = None
        ) -> torch.Tensor:
            if X1 is None:
                sqd = self._squared_X_diff
            else:
                # The acquisition function asks for k(x, X_train) many times: warped once.
                trained = X2 is None or X2 is self._X_train or X2 is self._X_all
                x2 = self._warped_train if trained else self._warp(X2)
                sqd = self._sqd(self._warp(X1), x2)
            apply_kernel: Callable[[torch.Tensor], torch.Tensor] = gp.Matern52Kernel.apply
            return apply_kernel(sqd.matmul(self.inverse_squared_lengthscales)) * self.kernel_scale

    return WarpedGPRegressor


def _fit(
    X: np.ndarray,
    Y: np.ndarray,
    is_categorical: np.ndarray,
    log_prior: Callable[[Any], torch.Tensor],
    minimum_noise: float,
    deterministic: bool,
) -> Any:
    """The warped GP with its kernel and warping fitted by MAP (L-BFGS-B, as Optuna's fit)."""
    import scipy.optimize
    import torch
    from optuna._gp.thread_limiting import limit_threads_in_optimization

    regressor = _regressor_class()
    d = X.shape[1]
    numeric = torch.from_numpy(~is_categorical)
    cat = torch.from_numpy(is_categorical)
    x_t, y_t = torch.from_numpy(X), torch.from_numpy(Y)

    def build(raw: torch.Tensor) -> Any:
        noise = (
            torch.tensor(minimum_noise, dtype=torch.float64)
            if deterministic
            else raw[d + 1].exp() + minimum_noise
        )
        params = torch.cat(
            [
                raw[:d].exp(),
                raw[d : d + 1].exp(),
                noise.reshape(1),
                torch.where(numeric, raw[d + 2 : 2 * d + 2], 0.0),
                torch.where(numeric, raw[2 * d + 2 :], 0.0),
            ]
        )
        return regressor(cat, x_t, y_t, params)

    def loss(raw_np: np.ndarray) -> tuple[float, np.ndarray]:
        raw = torch.from_numpy(raw_np).requires_grad_(True)
        with torch.enable_grad():
            gpr = build(raw)
            warp = (gpr.log_a.square().sum() + gpr.log_b.square().sum()) / (2 * _LOG_WARP_VAR)
            value = -gpr.marginal_log_likelihood() - log_prior(gpr) + warp
            value.backward()  # type: ignore[no-untyped-call]
        grad = raw.grad
        assert grad is not None
        return value.item(), grad.detach().numpy()

    # Optuna's starting point (unit lengthscales, scale and noise), no warping.
    start = np.zeros(3 * d + 2)
    start[d + 1] = math.log(1.0 - 0.99 * minimum_noise)
    # a and b within [e^-2, e^2]: beyond, points squeeze together until the kernel matrix is
    # singular, and no tuning objective needs a sharper warp.
    bounds = [(None, None)] * (d + 2) + [(-_MAX_LOG_WARP, _MAX_LOG_WARP)] * (2 * d)
    try:
        with limit_threads_in_optimization():
            res = scipy.optimize.minimize(
                loss, start, jac=True, method="l-bfgs-b", bounds=bounds, options={"gtol": 1e-2}
            )
        if not res.success:
            raise RuntimeError(res.message)
        gpr = build(torch.from_numpy(res.x))
        gpr._set_warp(gpr.log_a.detach(), gpr.log_b.detach())
        gpr._cache_matrix()
    except RuntimeError:  # torch's LinAlgError included: the unwarped GP, as Optuna fits it
        from optuna._gp import gp

        return gp.fit_kernel_params(
            X=X,
            Y=Y,
            is_categorical=is_categorical,
            log_prior=log_prior,
            minimum_noise=minimum_noise,
            deterministic_objective=deterministic,
        )
    return gpr


class WarpedGPSampler(optuna.samplers.GPSampler):
    """``GPSampler`` whose GP learns a Kumaraswamy input warping with its kernel."""

    def _sample_relative_impl(
        self,
        study: Study,
        completed_trials: list[FrozenTrial],
        running_trials: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        from optuna._gp import search_space as gp_search_space
        from optuna.samplers._gp.sampler import _get_params, _standardize_values
        from optuna.study import StudyDirection

        space = gp_search_space.SearchSpace(search_space)
        X = space.get_normalized_params(completed_trials)
        X_running = (
            space.get_normalized_params(running_trials, [_get_params(t) for t in running_trials])
            if running_trials
            else None
        )
        sign = np.array([-1.0 if d == StudyDirection.MINIMIZE else 1.0 for d in study.directions])
        Y, _, _ = _standardize_values(sign * np.array([t.values for t in completed_trials]))
        gprs = [
            _fit(
                X,
                Y[:, i],
                space.is_categorical,
                self._log_prior,
                self._minimum_noise,
                self._deterministic,
            )
            for i in range(Y.shape[-1])
        ]
        acqf, best = self._get_acqf_and_best_params(
            completed_trials, gprs, space, X, X_running, Y
        )
        return dict(space.get_unnormalized_param(self._optimize_acqf(acqf, best)))
