"""Katib's Hyperband: brackets of successive halving over a resource parameter.

Hyperband (Li et al., 2018) with ``s_max = floor(log_eta(r_l))`` and ``B = (s_max + 1) * r_l``
runs brackets ``s = s_max, ..., 0``. Bracket ``s`` samples
``n = ceil(B / r_l * eta^s / (s + 1))`` random configurations and runs them at resource
``r = r_l * eta^-s``; then successive halving: rung ``i`` runs ``n_i`` configurations at
``r_i = r * eta^i`` and the best ``floor(n_i / eta)`` of them (by the objective) run again, as new
trials with the same parameters and the next resource, in rung ``i + 1``, up to ``i = s``. With an
integer ``eta``, ``n_i = floor(n * eta^-i)``.

Rungs are synchronous, as in Katib: nothing new is suggested while a rung still has unfinished
trials. Failed, MetricsUnavailable, Killed and EarlyStopped trials rank after every succeeded one.

Every suggestion carries ``{"hyperband": {"bracket", "rung", "config", "resource"}}`` in its
attrs, and new configurations are drawn from a generator seeded by ``(seed, bracket, config)``,
so a suggester rebuilt from the stored trials replays them and resumes exactly where it was. An
unseeded experiment draws a seed once and keeps it in :meth:`HyperbandSuggester.state`.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from automl.core import (
    Direction,
    ExperimentSpec,
    ParameterType,
    ParamValue,
    Suggestion,
    TrialRecord,
    TrialState,
)
from search._base import Suggester
from search._registry import resolve_settings
from search._space import SpaceCodec

__all__ = ["ATTR_KEY", "STATE_SEED_KEY", "HyperbandSuggester", "bracket_plan"]

ATTR_KEY = "hyperband"
"""Key of the bracket/rung/config record in a trial's attrs."""
STATE_SEED_KEY = "hyperband_seed"
"""Key of the sampling seed in the experiment-level algorithm state."""

_EPS = 1e-9  # float slack for floor/ceil of values that are integers on paper (9 * 3**-2)


def _floor(x: float) -> int:
    return math.floor(x + _EPS)


def _ceil(x: float) -> int:
    return math.ceil(x - _EPS)


def _s_max(r_l: float, eta: float) -> int:
    """``floor(log_eta(r_l))``, 0 when ``r_l < 1`` (the registry's rule)."""
    return _floor(math.log(r_l) / math.log(eta)) if r_l >= 1 else 0


def _bracket_size(s: int, s_max: int, eta: float) -> int:
    """``n = ceil(B / r_l * eta^s / (s + 1))`` with ``B / r_l = s_max + 1``."""
    return max(1, _ceil((s_max + 1) * eta**s / (s + 1)))


def _promoted(n_i: int, eta: float) -> int:
    """How many of ``n_i`` configurations go on to the next rung: ``floor(n_i / eta)``, >= 1."""
    return max(1, _floor(n_i / eta))


def _resource(r_l: float, eta: float, s: int, i: int) -> float:
    """``r_i = r_l * eta^(i - s)``, cleaned of float noise."""
    return float(f"{r_l * eta ** (i - s):.12g}")


def bracket_plan(r_l: float, eta: float = 3.0) -> list[list[tuple[int, float]]]:
    """Hyperband's schedule: per bracket (``s_max`` first), each rung's ``(count, resource)``.

    Args:
        r_l: The largest resource a configuration gets.
        eta: The halving rate.

    Returns:
        One list per bracket, one ``(configurations, resource)`` pair per rung.
    """
    s_max = _s_max(r_l, eta)
    plan = []
    for s in range(s_max, -1, -1):
        n_i = _bracket_size(s, s_max, eta)
        rungs = []
        for i in range(s + 1):
            rungs.append((n_i, _resource(r_l, eta, s, i)))
            n_i = _promoted(n_i, eta)
        plan.append(rungs)
    return plan


@dataclass
class _Slot:
    """One configuration to run in the current rung."""

    config: int
    params: dict[str, ParamValue]
    trial_id: str | None = None  # set once suggested (or replayed from history)
    outcome: TrialRecord | None = None  # set once told


@dataclass
class _Rung:
    """The rung being run: its slots, in suggestion order."""

    bracket: int
    rung: int
    resource: float
    slots: list[_Slot] = field(default_factory=list)
    next: int = 0  # slots[next:] are still to be suggested

    @property
    def complete(self) -> bool:
        """Whether every slot was suggested and told."""
        return self.next >= len(self.slots) and all(s.outcome is not None for s in self.slots)


class HyperbandSuggester(Suggester):
    """Katib's Hyperband, resumable from the stored trials.

    Args:
        spec: The validated experiment spec (algorithm ``hyperband``).
        history: Stored trials of the experiment, in creation order; active ones count as
            running and are told again when they finish.
        state: Experiment-level state saved by :meth:`state` (the sampling seed).

    Raises:
        SpecError: Bad settings (see :func:`search.resolve_settings`).
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        history: Sequence[TrialRecord] = (),
        state: Mapping[str, Any] | None = None,
    ) -> None:
        settings = resolve_settings(spec)
        self._spec = spec
        self._eta: float = settings["eta"]
        self._r_l: float = settings["r_l"]
        self._resource_name: str = settings["resource_name"]
        self._resource_param = spec.parameter(self._resource_name)
        self._s_max = _s_max(self._r_l, self._eta)
        self._minimize = spec.objective.type is Direction.MINIMIZE
        self._codec = SpaceCodec(spec.parameters)
        seed = settings.get("random_state")
        if seed is None and state is not None and isinstance(state.get(STATE_SEED_KEY), int):
            seed = state[STATE_SEED_KEY]
        self._seed: int = seed if seed is not None else secrets.randbits(32)
        self._state: dict[str, Any] = {STATE_SEED_KEY: self._seed}
        self._running: dict[str, _Slot] = {}
        self._rung: _Rung | None = self._new_bracket(self._s_max)
        for trial in history:
            self._replay(trial)
        self._advance()

    # -- the schedule -----------------------------------------------------------------------
    def _new_bracket(self, s: int) -> _Rung | None:
        if s < 0:
            return None
        n = _bracket_size(s, self._s_max, self._eta)
        rung = _Rung(s, 0, _resource(self._r_l, self._eta, s, 0))
        rung.slots = [_Slot(k, self._sample(s, k, rung.resource)) for k in range(n)]
        return rung

    def _sample(self, bracket: int, config: int, resource: float) -> dict[str, ParamValue]:
        """A random configuration, the same for the same seed, bracket and config id."""
        rng = np.random.default_rng([self._seed, bracket, config])
        params: dict[str, ParamValue] = {}
        for name, codec in self._codec.codecs.items():
            if name == self._resource_name:
                params[name] = self._resource_value(resource)
            else:
                params[name] = codec.to_external(_draw(rng, codec.distribution))
        return params

    def _resource_value(self, resource: float) -> ParamValue:
        """The resource parameter's value: rounded (half up, at least min) for an int."""
        p = self._resource_param
        if p.type is ParameterType.INT:
            low = math.ceil(p.min) if p.min is not None else 0
            return max(low, math.floor(resource + 0.5))
        return resource

    def _advance(self) -> None:
        """Move on while the current rung is complete: promote, or start the next bracket."""
        while self._rung is not None and self._rung.complete:
            cur = self._rung
            if cur.rung >= cur.bracket:
                self._rung = self._new_bracket(cur.bracket - 1)
                continue
            ranked = sorted(cur.slots, key=self._rank_key)
            top = ranked[: min(len(ranked), _promoted(len(cur.slots), self._eta))]
            resource = _resource(self._r_l, self._eta, cur.bracket, cur.rung + 1)
            value = self._resource_value(resource)
            self._rung = _Rung(
                cur.bracket,
                cur.rung + 1,
                resource,
                [_Slot(s.config, {**s.params, self._resource_name: value}) for s in top],
            )

    def _rank_key(self, slot: _Slot) -> tuple[int, float, int]:
        """Succeeded trials by value (best first), then every other outcome; ties by config."""
        t = slot.outcome
        if (
            t is not None
            and t.state is TrialState.SUCCEEDED
            and t.value is not None
            and math.isfinite(t.value)
        ):
            return (0, t.value if self._minimize else -t.value, slot.config)
        return (1, 0.0, slot.config)

    # -- rebuilding -------------------------------------------------------------------------
    def _replay(self, trial: TrialRecord) -> None:
        """Take a stored trial as suggested (and told, if it finished)."""
        self._advance()
        rung = self._rung
        where = _position(trial.attrs)
        if rung is None or where is None or where[:2] != (rung.bracket, rung.rung):
            return  # not part of the schedule being run (another algorithm's, or stale)
        config = where[2]
        for j in range(rung.next, len(rung.slots)):
            if rung.slots[j].config == config:
                break
        else:
            return
        slot = rung.slots.pop(j)
        rung.slots.insert(rung.next, slot)
        rung.next += 1
        slot.params = dict(trial.params)  # what actually ran is what gets promoted
        slot.trial_id = trial.id
        if trial.state.is_active:
            self._running[trial.id] = slot
        else:
            slot.outcome = trial

    # -- the Suggester protocol -------------------------------------------------------------
    @property
    def exhausted(self) -> bool:
        """Whether every bracket has been run to its last rung."""
        return self._rung is None

    def suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        """Hand out the current rung's next configurations, one per id.

        Returns fewer (or none) while the rung's remaining trials run, and none once exhausted.
        """
        out: list[Suggestion] = []
        for trial_id in trial_ids:
            self._advance()
            rung = self._rung
            if rung is None or rung.next >= len(rung.slots):
                break
            slot = rung.slots[rung.next]
            rung.next += 1
            slot.trial_id = trial_id
            self._running[trial_id] = slot
            attrs = {
                ATTR_KEY: {
                    "bracket": rung.bracket,
                    "rung": rung.rung,
                    "config": slot.config,
                    "resource": rung.resource,
                }
            }
            out.append(Suggestion(params=dict(slot.params), attrs=attrs))
        return out

    def tell(self, trial: TrialRecord) -> None:
        """Record a finished trial; a rung's last one promotes the best (unknown ids: ignored)."""
        slot = self._running.pop(trial.id, None)
        if slot is None:
            return
        slot.outcome = trial
        self._advance()

    def state(self) -> Mapping[str, Any]:
        """The sampling seed, so an unseeded experiment resumes with the same draws."""
        return self._state


def _position(attrs: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """``(bracket, rung, config)`` from a trial's attrs, or None when absent or malformed."""
    rec = attrs.get(ATTR_KEY)
    if not isinstance(rec, Mapping):
        return None
    try:
        values = (rec["bracket"], rec["rung"], rec["config"])
    except KeyError:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    return values[0], values[1], values[2]


def _draw(rng: np.random.Generator, dist: BaseDistribution) -> Any:
    """One uniform draw from an Optuna distribution (as Optuna's RandomSampler draws)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[int(rng.integers(len(dist.choices)))]
    if isinstance(dist, IntDistribution):
        if dist.log:
            x = math.exp(rng.uniform(math.log(dist.low - 0.5), math.log(dist.high + 0.5)))
            return min(max(round(x), dist.low), dist.high)
        return dist.low + int(rng.integers((dist.high - dist.low) // dist.step + 1)) * dist.step
    if isinstance(dist, FloatDistribution):
        if dist.step is not None:
            k = int(rng.integers(round((dist.high - dist.low) / dist.step) + 1))
            return min(dist.low + k * dist.step, dist.high)
        if dist.log:
            return min(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high))), dist.high)
        return float(rng.uniform(dist.low, dist.high))
    raise TypeError(f"unsupported distribution {dist!r}")  # pragma: no cover - codecs make these
