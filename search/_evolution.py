"""Regularized evolution: tournament selection, one-choice mutation, and ageing.

Real et al. 2019, "Regularized Evolution for Image Classifier Architecture Search".

The algorithm keeps a *population* of the last ``population_size`` evaluated trials, in the
order they finished. The first ``population_size`` suggestions are random. After that, each
suggestion samples ``sample_size`` members uniformly (without replacement), takes the best of
the sample as the parent (the tournament) and mutates it; when the child's result comes back it
joins the population and the **oldest** member leaves (ageing), whatever its value. Ageing rather
than killing the worst is what makes it "regularized": a lucky model cannot stay forever, so the
search keeps favouring architectures that retrain well.

It works on any space of categorical, discrete, int and double parameters (an architecture
space is a set of categorical choices; see :meth:`search.NasSpace.parameters`). A mutation
changes exactly one parameter to a different value (Real et al.'s "one choice"); with
``mutation_rate`` set, each parameter changes with that probability instead (at least one does).
A double parameter is resampled from its prior.

Nothing needs saving: the population is the last ``population_size`` finished trials of the
stored history in the order they finished, and the random stream is re-seeded from the seed and
the history length (as the other seeded suggesters do), so a resumed search continues where it
was.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from automl.core import (
    Direction,
    ExperimentSpec,
    Parameter,
    ParamValue,
    Suggestion,
    TrialRecord,
    TrialState,
)
from search._base import Suggester
from search._registry import resolve_settings
from search._space import SpaceCodec

__all__ = ["EvolutionSuggester", "Member"]


@dataclass(frozen=True)
class Member:
    """One evaluated trial in the population."""

    trial_id: str
    params: Mapping[str, ParamValue]
    value: float


def _reseed(seed: int | None, n_history: int) -> random.Random:
    if seed is None:
        return random.Random()
    return random.Random(f"evolution:{seed}:{n_history}")


class EvolutionSuggester(Suggester):
    """Regularized evolution over the spec's parameters.

    Args:
        spec: The validated experiment spec (algorithm ``evolution``).
        history: Stored trials, in creation order.
        state: Unused (everything is rebuilt from the history); accepted for the interface.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        history: Sequence[TrialRecord] = (),
        state: Mapping[str, Any] | None = None,
    ) -> None:
        settings = resolve_settings(spec)
        self._params: tuple[Parameter, ...] = spec.parameters
        self._codec = SpaceCodec(spec.parameters)
        self.population_size: int = settings["population_size"]
        self.sample_size: int = min(settings["sample_size"], self.population_size)
        self.mutation_rate: float | None = settings.get("mutation_rate")
        self._maximize = spec.objective.type is Direction.MAXIMIZE
        self._rng = _reseed(settings.get("random_state"), len(history))
        self.population: collections.deque[Member] = collections.deque()
        self._suggested = len(history)
        self._pending: set[str] = {t.id for t in history if t.state.is_active}
        finished = [t for t in history if not t.state.is_active]
        # Completion order is the order of ageing (tell() sees trials in that order).
        finished.sort(key=lambda t: (t.finished_at or 0.0, t.number))
        for t in finished:
            self._admit(t)

    # -- the interface ---------------------------------------------------------------------

    def suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        """Random members until the population has been seeded, then mutated tournament winners.

        Returns fewer suggestions (none) when the initial population has all been handed out and
        none of it has finished yet: the controller waits for a result before asking again.
        """
        out: list[Suggestion] = []
        for trial_id in trial_ids:
            if self._suggested < self.population_size:
                params = self._random()
                attrs: dict[str, Any] = {"evolution": {"parent": None}}
            elif self.population:
                parent = self.tournament()
                params, changed = self.mutate(parent.params)
                attrs = {"evolution": {"parent": parent.trial_id, "mutated": changed}}
            else:
                break
            self._suggested += 1
            self._pending.add(trial_id)
            out.append(Suggestion(params=params, attrs=attrs))
        return out

    def tell(self, trial: TrialRecord) -> None:
        """Add a finished trial to the population (youngest), ageing out the oldest."""
        self._pending.discard(trial.id)
        if not trial.state.is_active:
            self._admit(trial)

    def state(self) -> Mapping[str, Any]:
        """The population's trial ids, oldest first (informational; rebuilt from history)."""
        return {"population": [m.trial_id for m in self.population]}

    # -- the algorithm ---------------------------------------------------------------------

    def _admit(self, trial: TrialRecord) -> None:
        if trial.value is None or trial.state not in (
            TrialState.SUCCEEDED,
            TrialState.EARLY_STOPPED,
        ):
            return  # failed trials carry no fitness
        try:
            params = {p.name: p.coerce(trial.params[p.name]) for p in self._params}
        except Exception:  # a value outside the space (the spec changed): leave it out
            return
        self.population.append(Member(trial.id, params, float(trial.value)))
        while len(self.population) > self.population_size:
            self.population.popleft()  # ageing: the oldest goes, not the worst

    def _fitness(self, m: Member) -> float:
        return m.value if self._maximize else -m.value

    def tournament(self) -> Member:
        """The best of ``sample_size`` members drawn uniformly without replacement."""
        k = min(self.sample_size, len(self.population))
        sample = self._rng.sample(list(self.population), k)
        return max(sample, key=self._fitness)

    def mutate(self, params: Mapping[str, ParamValue]) -> tuple[dict[str, ParamValue], list[str]]:
        """A copy of ``params`` with one parameter changed to a different value.

        With ``mutation_rate`` set, each parameter changes with that probability (at least one).

        Returns:
            The child's parameters and the names of the parameters that changed.
        """
        child = dict(params)
        mutable = [p for p in self._params if _can_change(p)]
        if not mutable:
            return child, []
        if self.mutation_rate is None:
            chosen = [self._rng.choice(mutable)]
        else:
            chosen = [p for p in mutable if self._rng.random() < self.mutation_rate]
            if not chosen:
                chosen = [self._rng.choice(mutable)]
        for p in chosen:
            child[p.name] = self._other_value(p, child[p.name])
        return child, [p.name for p in chosen]

    def _random(self) -> dict[str, ParamValue]:
        return {p.name: self._draw(p) for p in self._params}

    def _draw(self, p: Parameter) -> ParamValue:
        from search._pbt import _sample_one

        return _sample_one(self._codec.codecs[p.name], self._rng)

    def _other_value(self, p: Parameter, current: ParamValue) -> ParamValue:
        if p.is_numeric_range:
            v = current
            for _ in range(32):  # a different value from the prior (rejection)
                v = self._draw(p)
                if v != current:
                    break
            return v
        others = [v for v in p.values if v != current]
        return self._rng.choice(others) if others else current


def _can_change(p: Parameter) -> bool:
    if p.is_numeric_range:
        return p.min != p.max
    return len(set(map(str, p.values))) > 1
