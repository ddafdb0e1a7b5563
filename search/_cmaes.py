"""CMA-ES with IPOP and BIPOP restarts (Katib's ``restart_strategy``).

Optuna's ``CmaEsSampler`` dropped its restart strategies in 4.4 (the arguments are accepted and
ignored). This subclass brings them back on the same ``cmaes`` optimizer: when the optimizer
reports convergence (``should_stop``: the spread of recent values or of the search distribution
fell below its tolerance), a new one starts at a random point of the space.

* ``ipop`` (Auger and Hansen 2005): each restart multiplies the population by ``inc_popsize``,
  which turns CMA-ES from a local into a more global search on multimodal functions.
* ``bipop`` (Hansen 2009): alternates a *large* regime (population growing as in IPOP, the
  default step size) with a *small* regime (a population between the default and half the
  current large one, drawn at random, and a step size down to 1/100 of the default), always
  running the regime that has spent fewer evaluations, so both local refinement and broad
  exploration get half of the budget.

The optimizer and the restart state are kept in the trial's system attributes like Optuna keeps
its optimizer, so the controller stores them with the trial and a resumed experiment continues
the same restart.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import optuna
from optuna._transform import _SearchSpaceTransform
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

__all__ = ["RESTART_KEY", "STATE_KEY", "RestartCmaEsSampler"]

#: Trial system attribute: which restart (0 = the first run) the trial belongs to.
RESTART_KEY = "cma:restart"
#: Trial system attribute: the restart bookkeeping, stored with the optimizer.
STATE_KEY = "cma:restart_state"


def default_popsize(dim: int) -> int:
    """CMA-ES's default population, 4 + floor(3 ln n)."""
    return 4 + math.floor(3 * math.log(max(dim, 1)))


class RestartCmaEsSampler(optuna.samplers.CmaEsSampler):
    """Optuna's CMA-ES sampler with IPOP or BIPOP restarts.

    Args:
        restart_strategy: ``"ipop"`` or ``"bipop"``.
        inc_popsize: Factor by which each large restart multiplies the population.
        popsize: The first population (CMA-ES's default for the dimension if None).
        sigma0: The first step size, in the [0, 1]-scaled space (1/6 if None).
        n_startup_trials: Trials sampled independently before CMA-ES starts.
        seed: Seed of every random choice.
        use_separable_cma: Diagonal covariance (sep-CMA-ES).
    """

    def __init__(
        self,
        *,
        restart_strategy: str,
        inc_popsize: int = 2,
        popsize: int | None = None,
        sigma0: float | None = None,
        n_startup_trials: int = 0,
        seed: int | None = None,
        use_separable_cma: bool = False,
    ) -> None:
        if restart_strategy not in ("ipop", "bipop"):
            raise ValueError(f"restart_strategy must be ipop or bipop; got {restart_strategy!r}")
        super().__init__(
            sigma0=sigma0,
            n_startup_trials=n_startup_trials,
            popsize=popsize,
            seed=seed,
            use_separable_cma=use_separable_cma,
            warn_independent_sampling=False,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
        )
        self._strategy = restart_strategy
        self._inc_popsize = inc_popsize
        self._rs = np.random.RandomState(seed)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        """Ask the current optimizer; tell it a finished generation; restart it on convergence."""
        if not search_space:
            return {}
        completed = self._get_trials(study)
        if len(completed) < self._n_startup_trials:
            return {}
        trans = _SearchSpaceTransform(search_space, transform_step=True, transform_0_1=True)
        dim = len(trans.bounds)
        optimizer, state = self._restore(completed)
        if optimizer is None or state is None:
            popsize = self._popsize or default_popsize(dim)
            state = {
                "restart": 0,
                "popsize": popsize,
                "base_popsize": popsize,
                "n_large": 0,
                "regime": "large",
                "evals_small": 0,
                "evals_large": 0,
            }
            optimizer = self._fresh(trans, popsize, None, None)
        if optimizer.dim != dim:
            return {}
        generation = [
            t
            for t in completed
            if t.system_attrs.get(RESTART_KEY, 0) == state["restart"]
            and t.system_attrs.get(self._attr_key_generation) == optimizer.generation
        ]
        sign = 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0
        if len(generation) >= optimizer.population_size:
            solutions = []
            for t in generation[: optimizer.population_size]:
                assert t.value is not None
                solutions.append((trans.transform(t.params), sign * t.value))
            optimizer.tell(solutions)
            state = dict(state)
            state[f"evals_{state['regime']}"] += optimizer.population_size
            if optimizer.should_stop():
                optimizer, state = self._restart(trans, state)
            attrs = self._split_optimizer_str(pickle.dumps(optimizer).hex())
            for key, value in attrs.items():
                study._storage.set_trial_system_attr(trial._trial_id, key, value)
            study._storage.set_trial_system_attr(trial._trial_id, STATE_KEY, state)
        optimizer._rng.seed(self._cma_rng.rng.randint(1, 2**16) + trial.number)
        params = optimizer.ask()
        study._storage.set_trial_system_attr(
            trial._trial_id, self._attr_key_generation, optimizer.generation
        )
        study._storage.set_trial_system_attr(trial._trial_id, RESTART_KEY, state["restart"])
        return trans.untransform(params)

    def _restore(self, completed: list[FrozenTrial]) -> tuple[Any, dict[str, Any] | None]:
        for t in reversed(completed):
            attrs = {k: v for k, v in t.system_attrs.items() if k.startswith("cma:optimizer")}
            if attrs and STATE_KEY in t.system_attrs:
                text = self._concat_optimizer_attrs(attrs)
                return pickle.loads(bytes.fromhex(text)), dict(t.system_attrs[STATE_KEY])
        return None, None

    def _fresh(
        self,
        trans: _SearchSpaceTransform,
        popsize: int,
        mean: np.ndarray | None,
        sigma: float | None,
    ) -> Any:
        import cmaes

        bounds = trans.bounds
        lower, upper = bounds[:, 0], bounds[:, 1]
        mean = lower + (upper - lower) / 2 if mean is None else mean
        default_sigma = (
            self._sigma0 if self._sigma0 is not None else float(np.min(upper - lower) / 6)
        )
        sigma = max(default_sigma if sigma is None else sigma, 1e-10)
        seed = self._cma_rng.rng.randint(1, 2**31 - 2)
        if self._use_separable_cma and len(bounds) > 1:
            return cmaes.SepCMA(
                mean=mean, sigma=sigma, bounds=bounds, seed=seed, population_size=popsize
            )
        return cmaes.CMA(
            mean=mean,
            sigma=sigma,
            bounds=bounds,
            seed=seed,
            n_max_resampling=10 * len(bounds),
            population_size=popsize,
        )

    def _default_sigma(self, trans: _SearchSpaceTransform) -> float:
        if self._sigma0 is not None:
            return float(self._sigma0)
        return float(np.min(trans.bounds[:, 1] - trans.bounds[:, 0]) / 6)

    def _restart(
        self, trans: _SearchSpaceTransform, state: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        lower, upper = trans.bounds[:, 0], trans.bounds[:, 1]
        mean = lower + self._rs.rand(len(lower)) * (upper - lower)
        base = int(state["base_popsize"])
        state = dict(state, restart=int(state["restart"]) + 1)
        sigma: float | None = None
        if self._strategy == "ipop":
            popsize = int(state["popsize"]) * self._inc_popsize
            state["n_large"] = int(state["n_large"]) + 1
        elif state["n_large"] == 0 or state["evals_small"] >= state["evals_large"]:
            state["n_large"] = int(state["n_large"]) + 1
            state["regime"] = "large"
            popsize = base * self._inc_popsize ** int(state["n_large"])
        else:  # BIPOP's small regime: a random population and step size below the default
            state["regime"] = "small"
            large = base * self._inc_popsize ** int(state["n_large"])
            u = float(self._rs.rand())
            popsize = max(2, math.floor(base * (0.5 * large / base) ** (u**2)))
            sigma = self._default_sigma(trans) * 10 ** (-2 * float(self._rs.rand()))
        state["popsize"] = popsize
        return self._fresh(trans, popsize, mean, sigma), state
