"""Optuna-backed suggesters: every built-in algorithm runs on an in-memory Optuna study.

The study is a mirror, never the source of truth: it is rebuilt from the store's trials when a
controller starts (finished trials are replayed with their values and the algorithm state kept
with them), so a resumed experiment continues its search instead of restarting it. Running
trials stay RUNNING in the mirror, which is what stops Optuna's samplers from proposing them
again (constant liar for TPE, running-point handling for GP, grid bookkeeping).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, create_trial
from optuna.trial import TrialState as OptunaState

from automl.core import (
    Direction,
    ExperimentSpec,
    Suggestion,
    TrialRecord,
    TrialState,
    has_conditions,
    ordered,
)
from automl.core._pareto import constraint_values, trial_vector
from search._base import Suggester
from search._conditional import sample_active
from search._registry import canonical_name, resolve_settings
from search._space import SpaceCodec

__all__ = ["OptunaSuggester"]

optuna.logging.set_verbosity(optuna.logging.WARNING)
_tell_fast: Callable[..., Any] | None
try:  # Optuna's internal tell, used by its own optimize loop; the public one is the fallback
    from optuna.study._tell import _tell_with_warning as _tell_fast
except ImportError:  # pragma: no cover - a future Optuna may move it
    _tell_fast = None
# Where Optuna keeps a trial's constraint values (optuna.study._constrained_optimization).
_CONSTRAINTS_KEY = "constraints"
# Keys of Optuna's per-trial system attributes that are derived, not state worth storing.
_SKIP_ATTRS = frozenset({"search_space"})


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler, made deterministic and resumable.

    Each new trial takes the first unvisited point of the (seed-shuffled) grid, counting running
    trials as visited, so replayed history and parallel trials never repeat a point. Stopping is
    left to the controller (``Study.stop`` only works inside ``optimize``).
    """

    def before_trial(self, study: Any, trial: FrozenTrial) -> None:
        if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return
        unvisited = self._get_unvisited_grid_ids(study)
        grid_id = min(unvisited) if unvisited else 0
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        study._storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)

    def after_trial(self, *args: Any, **kwargs: Any) -> None:
        return None

    def grid_ids(self) -> dict[tuple[Any, ...], int]:
        """Grid id of each combination (values in sorted parameter-name order)."""
        return {tuple(g): i for i, g in enumerate(self._all_grids)}


def _reseed(seed: int | None, n_history: int) -> int | None:
    # A resumed seeded study must not replay the random draws it made before the crash
    # (Optuna issue 3255); derive a new, still deterministic seed from the history length.
    if seed is None or n_history == 0:
        return seed
    return (seed * 1_000_003 + n_history * 7_919) % (2**31 - 1)


def _make_sampler(
    spec: ExperimentSpec, settings: Mapping[str, Any], codec: SpaceCodec, n_history: int
) -> BaseSampler:
    name = canonical_name(spec.algorithm.name)
    seed = _reseed(settings.get("random_state"), n_history)
    if name in ("nsga2", "nsga3"):
        cls = optuna.samplers.NSGAIISampler if name == "nsga2" else optuna.samplers.NSGAIIISampler
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(
                population_size=settings["population_size"],
                mutation_prob=settings.get("mutation_prob"),
                crossover_prob=settings["crossover_prob"],
                swapping_prob=settings["swapping_prob"],
                seed=seed,
            )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        # Not reseeded: the grid's shuffled order must be the same in every controller.
        grid = {n: list(_choices(d)) for n, d in codec.distributions.items()}
        return _GridSampler(grid, seed=settings.get("random_state"))
    if name in ("tpe", "multivariate-tpe", "motpe"):
        gamma_frac = settings.get("gamma")
        gamma = None
        if gamma_frac is not None:
            # Katib's tpe runs hyperopt, whose gamma splits ceil(gamma * sqrt(n)) good trials.
            def gamma(n: int, g: float = gamma_frac) -> int:
                return min(math.ceil(g * math.sqrt(n)), 25)

        tpe_kwargs: dict[str, Any] = {}
        if "prior_weight" in spec.algorithm.settings:
            tpe_kwargs["prior_weight"] = settings["prior_weight"]
        if gamma is not None:
            tpe_kwargs["gamma"] = gamma
        multivariate = name in ("multivariate-tpe", "motpe") or settings.get("multivariate")
        if multivariate and has_conditions(spec.parameters):
            # A conditional space: model the parameters that occur together as one group.
            tpe_kwargs["group"] = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FutureWarning, and group's ExperimentalWarning
            return optuna.samplers.TPESampler(
                n_startup_trials=settings["n_startup_trials"],
                n_ei_candidates=settings["n_ei_candidates"],
                seed=seed,
                multivariate=(
                    True if name in ("multivariate-tpe", "motpe") else settings.get("multivariate")
                ),
                constant_liar=settings["constant_liar"],
                **tpe_kwargs,
            )
    if name == "cmaes" and settings["restart_strategy"] != "none":
        from search._cmaes import RestartCmaEsSampler

        return RestartCmaEsSampler(
            restart_strategy=settings["restart_strategy"],
            inc_popsize=settings["inc_popsize"],
            popsize=settings.get("popsize"),
            sigma0=settings.get("sigma"),
            n_startup_trials=settings["n_startup_trials"],
            seed=seed,
            use_separable_cma=settings["use_separable_cma"],
        )
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(
            sigma0=settings.get("sigma"),
            n_startup_trials=settings["n_startup_trials"],
            popsize=settings.get("popsize"),
            use_separable_cma=settings["use_separable_cma"],
            seed=seed,
            warn_independent_sampling=False,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
        )
    if name == "sobol":
        with warnings.catch_warnings():  # "QMCSampler is experimental": not the user's concern
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(
                qmc_type="sobol",
                scramble=settings["scramble"],
                seed=settings.get("random_state"),
                warn_asynchronous_seeding=False,
                warn_independent_sampling=False,
                independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            )
    if name == "bayesianoptimization":
        return optuna.samplers.GPSampler(
            seed=seed,
            n_startup_trials=settings["n_initial_points"],
            deterministic_objective=settings["deterministic_objective"],
            warn_independent_sampling=False,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
        )
    raise AssertionError(f"unregistered algorithm {name}")  # resolve_settings rejects it first


_RECYCLE = 1000  # asks between fresh mirror studies of a forgetful (random) suggester


class OptunaSuggester(Suggester):
    """A :class:`Suggester` for every built-in algorithm, on an in-memory Optuna study.

    Args:
        spec: The validated experiment spec.
        history: Stored trials of the experiment, in creation order.
        state: Experiment-level algorithm state saved by :meth:`state` (e.g. Sobol's index).
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        history: Sequence[TrialRecord] = (),
        state: Mapping[str, Any] | None = None,
    ) -> None:
        settings = resolve_settings(spec)
        self._grid = spec.algorithm.name == "grid"
        self._codec = SpaceCodec(spec.parameters, grid=self._grid)
        # A conditional space is asked for parameter by parent-first parameter (define-by-run).
        self._conditional = ordered(spec.parameters) if has_conditions(spec.parameters) else None
        self._grid_size = (
            math.prod(len(_choices(d)) for d in self._codec.distributions.values())
            if self._grid
            else None
        )
        directions = [
            optuna.study.StudyDirection.MAXIMIZE
            if o.type is Direction.MAXIMIZE
            else optuna.study.StudyDirection.MINIMIZE
            for o in spec.all_objectives
        ]
        self._spec = spec
        self._sampler = _make_sampler(spec, settings, self._codec, len(history))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._study = optuna.create_study(directions=directions, sampler=self._sampler)
        self._storage = self._study._storage
        self._study_id = self._study._study_id
        self._ids: dict[str, int] = {}  # our trial id -> Optuna's internal trial id
        # Only these samplers keep state in system attributes; reading them copies, so skip
        # the read for the others (it is on the per-trial hot path).
        self._trial_attrs = spec.algorithm.name == "cmaes"
        self._study_attrs = spec.algorithm.name == "sobol"
        # Random search reads no history: its mirror study keeps no trials (each asked trial is
        # closed at once, and the study is replaced every _RECYCLE asks), so a 100,000-trial
        # experiment's controller holds no 100,000 FrozenTrials.
        self._forgetful = spec.algorithm.name == "random"
        self._asked = 0
        self._taken = 0
        for key, value in (state or {}).items():
            self._storage.set_study_system_attr(self._study_id, key, value)
        self._state_seen = dict(state or {})
        all_grids = self._sampler.grid_ids() if isinstance(self._sampler, _GridSampler) else None
        for trial in () if self._forgetful else history:
            self._replay(trial, all_grids)

    def _replay(self, trial: TrialRecord, all_grids: dict[tuple[Any, ...], int] | None) -> None:
        try:
            internal = self._codec.to_internal(trial.params)
        except Exception:  # a value outside the space (the spec changed): leave it out
            return
        dists = {n: self._codec.distributions[n] for n in internal}
        attrs = dict(trial.attrs)
        if all_grids is not None:
            combo = tuple(internal[n] for n in sorted(internal))
            if combo in all_grids:
                attrs["grid_id"] = all_grids[combo]
                attrs["search_space"] = {
                    n: list(_choices(d)) for n, d in sorted(self._codec.distributions.items())
                }
        state, values = _optuna_outcome(self._spec, trial)
        if state is OptunaState.COMPLETE and self._spec.constraints:
            cons = constraint_values(self._spec, trial)
            if cons is not None:  # Optuna's own key: its samplers read trial.constraints
                attrs[_CONSTRAINTS_KEY] = list(cons)
        frozen = create_trial(
            params=internal,
            distributions=dists,
            state=state,
            values=values,
            system_attrs=attrs,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._study.add_trial(frozen)
        self._ids[trial.id] = self._storage.get_all_trials(self._study_id, deepcopy=False)[
            -1
        ]._trial_id
        self._taken += 1

    @property
    def exhausted(self) -> bool:
        """Grid search: every combination has been handed out."""
        return self._grid_size is not None and self._taken >= self._grid_size

    def suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        """Ask the Optuna study once per id, stopping early when the grid is exhausted."""
        out: list[Suggestion] = []
        for trial_id in trial_ids:
            if self.exhausted:
                break
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if self._conditional is not None:
                    ot = self._study.ask()
                    sample_active(ot, self._conditional, self._codec)
                else:
                    ot = self._study.ask(fixed_distributions=self._codec.distributions)
            self._ids[trial_id] = ot._trial_id
            attrs = (
                {
                    k: v
                    for k, v in self._storage.get_trial_system_attrs(ot._trial_id).items()
                    if k not in _SKIP_ATTRS
                }
                if self._trial_attrs
                else {}
            )
            out.append(Suggestion(params=self._codec.to_external(ot.params), attrs=attrs))
            self._taken += 1
            if self._forgetful:
                self._forget(trial_id, ot)
        return out

    def _forget(self, trial_id: str, ot: optuna.Trial) -> None:
        """Random search: close the asked trial now and start a fresh study now and then."""
        del self._ids[trial_id]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if _tell_fast is not None:  # no deep copy of the trial (see tell)
                _tell_fast(self._study, ot, None, OptunaState.FAIL, suppress_warning=True)
            else:
                self._study.tell(ot, state=OptunaState.FAIL)
        self._asked += 1
        if self._asked % _RECYCLE == 0:  # every trial in it is closed: nothing is lost
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._study = optuna.create_study(
                    directions=self._study.directions, sampler=self._sampler
                )
            self._storage = self._study._storage
            self._study_id = self._study._study_id

    def add_pending(self, trial: TrialRecord) -> None:
        """Run an enqueued configuration as the study's next trial (Optuna's enqueue_trial)."""
        if self._forgetful:
            return  # random search learns nothing from it
        try:
            internal = self._codec.to_internal(trial.params)
        except Exception:  # a value outside the space: the study cannot hold it
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._study.enqueue_trial(internal, skip_if_exists=False)
            if self._conditional is not None:  # the enqueued values come back, nothing more
                ot = self._study.ask()
                sample_active(ot, self._conditional, self._codec)
            else:
                ot = self._study.ask(fixed_distributions=self._codec.distributions)
        self._ids[trial.id] = ot._trial_id

    def tell(self, trial: TrialRecord) -> None:
        """Tell the study the trial's outcome (unknown ids are ignored)."""
        internal_id = self._ids.pop(trial.id, None)
        if internal_id is None:
            return
        state, values = _optuna_outcome(self._spec, trial)
        if state is OptunaState.COMPLETE and self._spec.constraints:
            cons = constraint_values(self._spec, trial)
            if cons is not None:  # where Optuna's constraints_func puts them
                self._storage.set_trial_system_attr(internal_id, _CONSTRAINTS_KEY, list(cons))
        number = self._storage.get_trial_number_from_id(internal_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if _tell_fast is not None:
                # What Study.optimize calls: Study.tell adds a deep copy of the trial per call.
                _tell_fast(
                    self._study,
                    number,
                    values,
                    state,
                    skip_if_finished=True,
                    suppress_warning=True,
                )
            else:
                self._study.tell(number, values, state=state, skip_if_finished=True)

    def state(self) -> Mapping[str, Any]:
        """Study-level system attributes that changed (Sobol's sequence index)."""
        if not self._study_attrs:
            return self._state_seen
        attrs = self._storage.get_study_system_attrs(self._study_id)
        if attrs != self._state_seen:
            self._state_seen = dict(attrs)
        return self._state_seen


def _choices(d: BaseDistribution) -> tuple[Any, ...]:
    assert isinstance(d, CategoricalDistribution)  # grid codecs are categorical by construction
    return tuple(d.choices)


def _optuna_outcome(
    spec: ExperimentSpec, trial: TrialRecord
) -> tuple[OptunaState, list[float] | None]:
    vector = trial_vector(spec, trial)
    if vector is not None:
        return OptunaState.COMPLETE, list(vector)
    if trial.state.is_active:
        return OptunaState.RUNNING, None
    if trial.state is TrialState.EARLY_STOPPED:
        return OptunaState.PRUNED, None
    return OptunaState.FAIL, None


def frozen_trials(suggester: OptunaSuggester) -> list[FrozenTrial]:
    """The mirror study's trials (for tests and diagnostics)."""
    return suggester._study.get_trials(deepcopy=False)
