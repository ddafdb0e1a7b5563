"""Searching conditional spaces (parameters with ``when``): define-by-run sampling and the grid.

Optuna samples a conditional space the way an Optuna user's objective does: parameters are asked
for one at a time, parents first, and a parameter whose condition does not hold is never asked,
so it has no value in the trial. TPE models each parameter on the trials that have it (Optuna's
define-by-run spaces); samplers with a joint model (GP, CMA-ES, QMC) model the parameters every
trial has and draw the others from their independent sampler.

The grid enumerates only valid combinations: the values of an inactive parameter are not crossed
with the rest, so no two points differ only in a value a trial would never see.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from automl.core import (
    ExperimentSpec,
    Parameter,
    ParamValue,
    Suggestion,
    TrialRecord,
    active_params,
    ordered,
    value_in,
)
from search._base import Suggester
from search._registry import resolve_settings
from search._space import SpaceCodec

__all__ = ["ConditionalGridSuggester", "count_points", "grid_points", "sample_active"]


class _QuietConditions(logging.Filter):
    """Drops QMCSampler's warning that it assumes no conditions.

    It is expected here: the Sobol points cover the parameters the first trial had, the others
    come from the independent sampler (the documented behaviour for a conditional space).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "does not include any conditions" not in record.getMessage()


logging.getLogger("optuna.samplers._qmc").addFilter(_QuietConditions())


def _ask(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _active(p: Parameter, external: Mapping[str, ParamValue]) -> bool:
    return all(
        parent in external and value_in(external[parent], values)
        for parent, values in p.when.items()
    )


def sample_active(
    trial: optuna.Trial, parameters: Sequence[Parameter], codec: SpaceCodec
) -> dict[str, Any]:
    """Ask ``trial`` for the active parameters only, parents first; their internal values.

    Args:
        trial: A trial from ``Study.ask()`` (without fixed distributions).
        parameters: The space, in :func:`automl.core.ordered` order.
        codec: The space's codec (internal values and distributions).
    """
    external: dict[str, ParamValue] = {}
    internal: dict[str, Any] = {}
    for p in parameters:
        if not _active(p, external):
            continue
        value = _ask(trial, p.name, codec.distributions[p.name])
        internal[p.name] = value
        external[p.name] = codec.codecs[p.name].to_external(value)
    return internal


def grid_points(parameters: Sequence[Parameter]) -> list[dict[str, ParamValue]]:
    """Every valid combination of the parameters' grids, each with its active parameters only.

    Raises:
        SpecError: A double parameter has no step.
    """
    params = ordered(parameters)
    axes = {p.name: p.grid() for p in params}
    out: list[dict[str, ParamValue]] = []

    def walk(i: int, partial: dict[str, ParamValue]) -> None:
        if i == len(params):
            out.append(dict(partial))
            return
        p = params[i]
        if not _active(p, partial):
            walk(i + 1, partial)
            return
        for v in axes[p.name]:
            partial[p.name] = v
            walk(i + 1, partial)
            del partial[p.name]

    walk(0, {})
    return out


def count_points(parameters: Sequence[Parameter], size: Callable[[Parameter], float]) -> float:
    """How many valid points a conditional space has (``math.inf`` for a continuous one).

    Args:
        parameters: The space.
        size: Number of values of one parameter (``math.inf`` when continuous).
    """
    params = ordered(parameters)
    parents = {parent for p in params for parent in p.when}

    def walk(i: int, partial: dict[str, ParamValue]) -> float:
        if i == len(params):
            return 1.0
        p = params[i]
        if not _active(p, partial):
            return walk(i + 1, partial)
        if p.name not in parents:
            return size(p) * walk(i + 1, partial)
        total = 0.0
        for v in p.values:
            partial[p.name] = v
            total += walk(i + 1, partial)
            del partial[p.name]
        return total

    return walk(0, {})


class ConditionalGridSuggester(Suggester):
    """Grid search over a conditional space: each valid combination once.

    The order is the enumeration order, shuffled by ``random_state`` when one is set; handed-out
    points (finished or running, including those of a resumed history) are never proposed again.

    Args:
        spec: The validated experiment spec (``algorithm.name == "grid"``).
        history: Stored trials of the experiment, in creation order.
        state: Unused: the grid is rebuilt from the history.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        history: Sequence[TrialRecord] = (),
        state: Mapping[str, Any] | None = None,
    ) -> None:
        settings = resolve_settings(spec)
        self._params = spec.parameters
        points = grid_points(spec.parameters)
        seed = settings.get("random_state")
        if seed is not None:
            random.Random(seed).shuffle(points)
        self._points = points
        self._taken: set[tuple[tuple[str, str], ...]] = set()
        for t in history:
            self._taken.add(self._key(t.params))
        self._next = 0

    def _key(self, params: Mapping[str, ParamValue]) -> tuple[tuple[str, str], ...]:
        active = active_params(self._params, params)
        return tuple(sorted((n, repr(v)) for n, v in active.items()))

    def _remaining(self) -> int | None:
        while self._next < len(self._points):
            if self._key(self._points[self._next]) not in self._taken:
                return self._next
            self._next += 1
        return None

    @property
    def exhausted(self) -> bool:
        """Every valid combination has been handed out."""
        return self._remaining() is None

    def suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        """The next untried combinations, one per id, until the grid runs out."""
        out: list[Suggestion] = []
        for _ in trial_ids:
            i = self._remaining()
            if i is None:
                break
            point = self._points[i]
            self._taken.add(self._key(point))
            out.append(Suggestion(params=dict(point)))
        return out

    def add_pending(self, trial: TrialRecord) -> None:
        """An enqueued configuration takes its grid point: it is not proposed again."""
        self._taken.add(self._key(trial.params))

    def tell(self, trial: TrialRecord) -> None:
        """Nothing to learn: a grid point runs once whatever its outcome."""
