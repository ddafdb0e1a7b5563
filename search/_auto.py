"""``auto``: the default algorithm, which picks a strategy per trial by space, budget and phase.

Each suggestion is made by one strategy, recorded in the trial's ``attrs["strategy"]``:

* ``sobol``: the first few trials (``n_initial_points``, by default ``1 + ceil(d / 2)`` clamped to
  [3, 6] for ``d`` parameters) are points of one scrambled Sobol sequence, which covers the space
  more evenly than random draws, so the model that follows starts from a better spread. Trials that
  start in parallel before that many have finished take further Sobol points.
* ``gp``: then a Gaussian process (Optuna's ``GPSampler``: Matern-5/2 with automatic relevance,
  categorical dimensions by Hamming distance, log expected improvement, running trials as pending
  points) over numeric and mixed spaces while the history is small (``gp_max_trials``, default
  200, and at most 30 parameters). The GP sees the objective after a HEBO-style power transform
  (Yeo-Johnson on robustly scaled values, fitted per suggestion), so the heavy tail of losses
  (a diverging configuration's error) does not flatten the model around the good region.
* ``tpe``: multivariate TPE with constant liar for categorical-only spaces, large spaces and long
  runs, where it is as good and much cheaper than a GP whose cost grows with the cube of the
  history. With three or more objectives TPE follows Sobol at once, univariate (Optuna's MOTPE):
  there the GP's hypervolume acquisition cost ~1 s a trial and settled on corners of the front
  (benchmarks/multi_objective.py, DTLZ2 at 50 trials: GP 11.15, multivariate TPE 11.27,
  univariate TPE 12.60, NSGA-II 11.50).
* ``random``: a proposal equal to a trial already run or pending (a GP at a corner, a small
  discrete space) is replaced by a fresh random point, so no configuration is run twice; when a
  finite space has no untried point left, the search is exhausted.

On a conditional space (parameters with ``when``) every point keeps its active parameters only:
Sobol and random points are projected onto them; the GP sees an inactive parameter at its lowest
value (imputed, as SMAC does, so it models one space) and its proposal is projected; TPE is asked
define-by-run and models each parameter on the trials that have it. Duplicates are judged on
the active parameters.

The suggester keeps no state of its own: every suggestion is computed from the history (finished
and pending trials, in order) and a seed derived from the experiment's seed and the history length.
A resumed experiment therefore proposes exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState as OptunaState
from optuna.trial import create_trial

from automl.core import (
    Direction,
    ExperimentSpec,
    Suggestion,
    TrialRecord,
    TrialState,
    active_names,
    has_conditions,
    ordered,
)
from automl.core._pareto import constraint_values, trial_vector
from search._base import Suggester
from search._conditional import count_points, sample_active
from search._registry import resolve_settings
from search._space import SpaceCodec

__all__ = ["AutoSuggester", "initial_points", "power_transform"]

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Largest space (parameters) the GP phase takes; beyond it TPE models the space.
GP_MAX_DIMS = 30
_RANDOM_TRIES = 64


@dataclass
class _Entry:
    internal: dict[str, Any]
    state: OptunaState
    value: tuple[float, ...] | None  # as reported; the directions are applied where it matters
    strategy: str
    constraints: tuple[float, ...] | None = None  # Optuna's constraint values (<= 0 holds)


def initial_points(n_params: int) -> int:
    """Default number of space-filling points before a model proposes: 1 + ceil(d/2) in [3, 6].

    HEBO's default, 1 + d, was measured against it (docs/search.md): better on 5-6 parameter
    functions, worse on the suite as a whole.
    """
    return max(3, min(6, 1 + math.ceil(n_params / 2)))


def power_transform(values: Sequence[float]) -> np.ndarray:
    """HEBO-style output warping: robust scaling, Yeo-Johnson, then standardization.

    The values are centred on their median and scaled by their interquartile range (so a few huge
    losses do not squash the rest together), Yeo-Johnson-transformed with its maximum-likelihood
    exponent (which pulls a heavy tail in), and standardized. The transform is monotone: the
    order of the values, and so the best one, is unchanged.
    """
    y = np.asarray(values, dtype=float)
    if y.size < 3 or not np.isfinite(y).all():
        return y
    # Equal values (a classifier's accuracy on its first few configurations, say) carry no
    # order to warp; their std is a rounding error, and dividing by it gave NaN.
    if float(np.ptp(y)) <= 1e-12 * max(1.0, float(np.abs(y).max())):
        return np.zeros_like(y)
    lo, hi = np.percentile(y, [25, 75])
    scale = float(hi - lo) or float(y.std())
    z: np.ndarray = (y - float(np.median(y))) / scale
    try:
        from scipy.stats import yeojohnson

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, _ = yeojohnson(z)
    except (ValueError, FloatingPointError, ArithmeticError):
        t = z
    t = np.asarray(t, dtype=float)
    t_std = float(t.std())
    if not np.isfinite(t).all() or not np.isfinite(t_std) or t_std <= 0.0:
        t, t_std = z, float(z.std())
    if not np.isfinite(t_std) or t_std <= 0.0:
        return np.zeros_like(y)
    out: np.ndarray = (t - t.mean()) / t_std
    return out


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the model on one thread.

    Its matrices are small and gain nothing from more; on a busy machine, BLAS and OpenMP threads
    waiting for each other made a GP suggestion three times slower.
    """
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(ImportError):  # scikit-learn brings threadpoolctl
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(1))
        import torch

        before = torch.get_num_threads()
        if before != 1:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if before != 1:
                torch.set_num_threads(before)


def _derive_seed(seed: int | None, n: int) -> int | None:
    if seed is None:
        return None
    return (seed * 1_000_003 + n * 7_919 + 17) % (2**31 - 1)


def _from_unit(dist: BaseDistribution, u: float) -> Any:
    """The internal value at quantile-like position ``u`` in [0, 1) of a distribution."""
    u = min(max(u, 0.0), 1.0 - 1e-12)
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[min(int(u * len(dist.choices)), len(dist.choices) - 1)]
    if isinstance(dist, IntDistribution):
        if dist.log:
            lo, hi = math.log(dist.low - 0.5), math.log(dist.high + 0.5)
            v = round(math.exp(lo + u * (hi - lo)))
        else:
            n = (dist.high - dist.low) // dist.step + 1
            v = dist.low + min(int(u * n), n - 1) * dist.step
        return int(min(max(v, dist.low), dist.high))
    assert isinstance(dist, FloatDistribution)
    if dist.log:
        lo, hi = math.log(dist.low), math.log(dist.high)
        return float(min(max(math.exp(lo + u * (hi - lo)), dist.low), dist.high))
    if dist.step is not None:
        n = round((dist.high - dist.low) / dist.step) + 1
        return float(min(dist.low + min(int(u * n), n - 1) * dist.step, dist.high))
    return float(dist.low + u * (dist.high - dist.low))


def _size(dist: BaseDistribution) -> float:
    if isinstance(dist, CategoricalDistribution):
        return len(dist.choices)
    if isinstance(dist, IntDistribution):
        return (dist.high - dist.low) // dist.step + 1
    assert isinstance(dist, FloatDistribution)
    if dist.step is not None:
        return round((dist.high - dist.low) / dist.step) + 1
    return math.inf


class AutoSuggester(Suggester):
    """The ``auto`` algorithm (see the module documentation for the strategies and why).

    Args:
        spec: The validated experiment spec (``algorithm.name == "auto"``).
        history: Stored trials of the experiment, in creation order.
        state: Unused: the suggester is rebuilt from the history alone.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        history: Sequence[TrialRecord] = (),
        state: Mapping[str, Any] | None = None,
    ) -> None:
        settings = resolve_settings(spec)
        self._codec = SpaceCodec(spec.parameters)
        self._dists = dict(self._codec.distributions)
        self._names = list(self._dists)
        # A conditional space: points keep their active parameters only, and the model is
        # asked define-by-run (search._conditional).
        self._conditional = ordered(spec.parameters) if has_conditions(spec.parameters) else None
        self._spec = spec
        self._minimize = [o.type is Direction.MINIMIZE for o in spec.all_objectives]
        # Three or more objectives: univariate TPE instead of the GP (see the module docstring).
        self._many = len(self._minimize) >= 3
        self._seed: int | None = settings.get("random_state")
        d = len(self._dists)
        self._n_init = int(settings.get("n_initial_points") or initial_points(d))
        self._gp_max_trials = int(settings["gp_max_trials"])
        numeric = [n for n, x in self._dists.items() if not isinstance(x, CategoricalDistribution)]
        self._has_torch = importlib.util.find_spec("torch") is not None
        # Categorical-only spaces go to TPE: its per-choice densities beat a Hamming-kernel GP.
        self._gp_space = bool(numeric) and d <= GP_MAX_DIMS and self._has_torch
        self._space_size = math.prod(_size(x) for x in self._dists.values()) if d else 1
        if self._conditional is not None:
            self._space_size = count_points(
                self._conditional, lambda p: _size(self._dists[p.name])
            )
        self._entries: dict[str, _Entry] = {}
        self._seen: set[tuple[Any, ...]] = set()
        for t in history:
            try:
                internal = self._codec.to_internal(t.params)
            except Exception:  # a value outside the space (the spec changed): leave it out
                continue
            if set(internal) != self._active(internal):
                continue
            state_, value, cons = _outcome(spec, t)
            strategy = str(t.attrs.get("strategy", "")) if t.attrs else ""
            self._entries[t.id] = _Entry(internal, state_, value, strategy, cons)
            self._seen.add(self._key(internal))

    # -- bookkeeping --------------------------------------------------------------------------
    def _key(self, internal: Mapping[str, Any]) -> tuple[Any, ...]:
        external = self._codec.to_external(internal)
        return tuple(repr(external[n]) if n in external else "-" for n in self._names)

    def _active(self, internal: Mapping[str, Any]) -> set[str]:
        """Names a point must have: every parameter, or those its values make active."""
        if self._conditional is None:
            return set(self._dists)
        return set(active_names(self._conditional, self._codec.to_external(internal)))

    def _dists_of(self, internal: Mapping[str, Any]) -> dict[str, BaseDistribution]:
        return {n: self._dists[n] for n in internal}

    def _imputed(self, internal: Mapping[str, Any]) -> dict[str, Any]:
        """A point with every parameter: an inactive one at its lowest value."""
        return {
            n: internal[n] if n in internal else _from_unit(d, 0.0) for n, d in self._dists.items()
        }

    def _project(self, internal: dict[str, Any]) -> dict[str, Any]:
        """A full point without the parameters its values make inactive."""
        if self._conditional is None:
            return internal
        return {n: internal[n] for n in self._active(internal)}

    @property
    def exhausted(self) -> bool:
        """A finite space whose every point was tried or is pending."""
        return len(self._seen) >= self._space_size

    def _completed(self) -> list[_Entry]:
        return [e for e in self._entries.values() if e.state is OptunaState.COMPLETE]

    def strategy_for_next(self) -> str:
        """The strategy the next suggestion would use (before duplicate replacement)."""
        if not self._dists:
            return "random"
        n_done = len(self._completed())
        if n_done < self._n_init:
            return "sobol"
        if self._gp_space and n_done <= self._gp_max_trials and not self._many:
            return "gp"
        return "tpe"

    # -- the protocol -------------------------------------------------------------------------
    def suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        """Propose one point per id; fewer when a finite space runs out of untried points."""
        out: list[Suggestion] = []
        for trial_id in trial_ids:
            if self.exhausted:
                break
            n = len(self._entries)
            seed = _derive_seed(self._seed, n)
            rng = np.random.default_rng(seed)
            strategy = self.strategy_for_next()
            internal = self._propose(strategy, seed)
            if internal is None or self._key(internal) in self._seen:
                strategy = "random"
                internal = self._random_unseen(rng)
                if internal is None:
                    break
            # What the store will hold, read back as a resumed controller would.
            external = self._codec.to_external(internal)
            internal = self._codec.to_internal(external)
            self._entries[trial_id] = _Entry(internal, OptunaState.RUNNING, None, strategy)
            self._seen.add(self._key(internal))
            out.append(Suggestion(params=external, attrs={"strategy": strategy}))
        return out

    def add_pending(self, trial: TrialRecord) -> None:
        """Count an enqueued configuration as pending; its outcome is told like any other."""
        try:
            internal = self._codec.to_internal(trial.params)
        except Exception:  # a value outside the space: leave it out, as a rebuild would
            return
        if set(internal) != self._active(internal):
            return
        self._entries[trial.id] = _Entry(internal, OptunaState.RUNNING, None, "enqueued")
        self._seen.add(self._key(internal))

    def tell(self, trial: TrialRecord) -> None:
        """Record the outcome of a trial this suggester proposed (or rebuilt)."""
        entry = self._entries.get(trial.id)
        if entry is None:
            return
        entry.state, entry.value, entry.constraints = _outcome(self._spec, trial)

    # -- strategies ---------------------------------------------------------------------------
    def _propose(self, strategy: str, seed: int | None) -> dict[str, Any] | None:
        if strategy == "sobol":
            return self._sobol()
        if strategy == "random" or not self._dists:
            return self._random_unseen(np.random.default_rng(seed))
        return self._ask_model(strategy, seed)

    def _sobol(self) -> dict[str, Any]:
        from scipy.stats import qmc

        index = sum(1 for e in self._entries.values() if e.strategy == "sobol")
        d = len(self._names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "balance properties" for non-powers of two
            engine = qmc.Sobol(d=d, scramble=True, seed=self._seed)
            if index:
                engine.fast_forward(index)
            u = engine.random(1)[0]
        return self._project(
            {n: _from_unit(self._dists[n], float(u[i])) for i, n in enumerate(self._names)}
        )

    def _random_unseen(self, rng: np.random.Generator) -> dict[str, Any] | None:
        for _ in range(_RANDOM_TRIES):
            u = rng.random(len(self._names))
            cand = self._project(
                {n: _from_unit(self._dists[n], float(u[i])) for i, n in enumerate(self._names)}
            )
            if self._key(cand) not in self._seen:
                return cand
        if self._space_size <= 100_000:  # small finite space: take the first untried point
            import itertools

            axes = [_values(self._dists[n]) for n in self._names]
            for combo in itertools.product(*axes):
                cand = self._project(dict(zip(self._names, combo, strict=True)))
                if self._key(cand) not in self._seen:
                    return cand
        return None

    def _ask_model(self, strategy: str, seed: int | None) -> dict[str, Any] | None:
        completed = self._completed()
        # Losses: every objective minimized, column by column.
        signed = np.array(
            [
                [
                    float(v) if m else -float(v)
                    for v, m in zip(e.value or (), self._minimize, strict=True)
                ]
                for e in completed
            ],
            dtype=float,
        ).reshape(len(completed), len(self._minimize))
        sampler: optuna.samplers.BaseSampler
        # A conditional space: the GP sees every parameter, an inactive one at its lowest value
        # (imputed, as SMAC does), and its proposal is projected onto the active parameters;
        # TPE models each parameter on the trials that have it.
        impute = self._conditional is not None and strategy == "gp"
        with warnings.catch_warnings(), _one_thread():
            warnings.simplefilter("ignore")
            if strategy == "gp":
                # Each objective warped alone: monotone, so the Pareto order is unchanged.
                fitted = np.stack(
                    [power_transform(signed[:, j].tolist()) for j in range(signed.shape[1])],
                    axis=1,
                ).tolist()
                sampler = optuna.samplers.GPSampler(
                    seed=seed,
                    n_startup_trials=0,
                    warn_independent_sampling=False,
                    independent_sampler=optuna.samplers.RandomSampler(seed=seed),
                )
            else:
                fitted = signed.tolist()
                sampler = optuna.samplers.TPESampler(
                    n_startup_trials=0,
                    multivariate=not self._many,
                    # conditional: per co-occurring group (univariate TPE needs none)
                    group=self._conditional is not None and not self._many,
                    constant_liar=True,
                    seed=seed,
                    warn_independent_sampling=False,
                )
            study = optuna.create_study(
                directions=["minimize"] * len(self._minimize), sampler=sampler
            )
            frozen = [
                create_trial(
                    params=self._imputed(e.internal) if impute else e.internal,
                    distributions=self._dists if impute else self._dists_of(e.internal),
                    state=OptunaState.COMPLETE,
                    values=v,
                    # Optuna's key for constraint values: the samplers model feasibility.
                    system_attrs={} if e.constraints is None else {"constraints": e.constraints},
                )
                for e, v in zip(completed, fitted, strict=True)
            ]
            frozen += [
                create_trial(
                    params=self._imputed(e.internal) if impute else e.internal,
                    distributions=self._dists if impute else self._dists_of(e.internal),
                    state=OptunaState.RUNNING,
                )
                for e in self._entries.values()
                if e.state is OptunaState.RUNNING
            ]
            study.add_trials(frozen)
            if self._conditional is not None and not impute:
                params = sample_active(study.ask(), self._conditional, self._codec)
            elif impute:
                params = self._project(dict(study.ask(fixed_distributions=self._dists).params))
            else:
                params = dict(study.ask(fixed_distributions=self._dists).params)
        return params if set(params) == self._active(params) else None


def _values(dist: BaseDistribution) -> list[Any]:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    assert isinstance(dist, FloatDistribution) and dist.step is not None
    n = round((dist.high - dist.low) / dist.step) + 1
    return [min(dist.low + i * dist.step, dist.high) for i in range(n)]


def _outcome(
    spec: ExperimentSpec, trial: TrialRecord
) -> tuple[OptunaState, tuple[float, ...] | None, tuple[float, ...] | None]:
    vector = trial_vector(spec, trial)
    if vector is not None:
        cons = constraint_values(spec, trial) if spec.constraints else None
        return OptunaState.COMPLETE, vector, cons
    if trial.state.is_active:
        return OptunaState.RUNNING, None, None
    if trial.state is TrialState.EARLY_STOPPED:
        return OptunaState.PRUNED, None, None
    return OptunaState.FAIL, None, None
