"""Population-based training (Katib's ``pbt``): synchronous generations over a fixed population.

Generation 0 is ``n_population`` trials with parameters drawn from the search space. When every
trial of a generation has finished, the next generation is planned from their objective values:

* the bottom ``truncation_threshold`` fraction (``k = floor(n * t)`` trials; trials that did not
  succeed rank last), and every trial that did not succeed, is replaced: each takes a random one
  of the top ``max(k, 1)`` succeeded trials as parent, starts from a copy of the parent's
  checkpoint and gets the parent's hyperparameters explored (see :meth:`PbtSuggester._explore`);
  when nothing succeeded, they start afresh with new parameters and no parent;
* every other trial continues itself: same parameters, its own checkpoint copied, parent = itself.

So every generation has ``n_population`` trials, one per member of the population. A trial's
checkpoint directory is ``<suggestion_trial_dir>/<trial id>`` (created empty, for the trial to
write); the parent's checkpoint is copied to ``<suggestion_trial_dir>/<trial id>.parent`` (for the
trial to read). Both paths, and the lineage, are kept in the trial's attributes::

    {"checkpoint_dir": ".../pbt/exp-k3j9x0aa",
     "parent_checkpoint_dir": ".../pbt/exp-k3j9x0aa.parent",   # absent in generation 0
     "pbt": {"generation": 1, "parent": "exp-7hq2m1zz", "replaces": "exp-0c8d5e2b"}}

The executors hand the two directories to the trial (``AUTOML_CHECKPOINT_DIR`` and
``AUTOML_PARENT_CHECKPOINT_DIR``, or :func:`automl.current_trial`).

Every random draw of generation ``g`` comes from a generator seeded with ``(seed, g)`` and the
plan depends only on the previous generation's trials, so a suggester rebuilt from the stored
trials plans exactly what the lost one would have. The seed (drawn at random for an unseeded
experiment) and the checkpoint root are kept in the experiment's algorithm state.
"""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from automl.core import (
    Direction,
    ExperimentSpec,
    Parameter,
    ParameterType,
    ParamValue,
    Suggestion,
    TrialRecord,
    TrialState,
)
from search._base import Suggester
from search._registry import resolve_settings
from search._space import ParamCodec, SpaceCodec, index_of

__all__ = ["PbtSuggester"]

#: Multiplicative perturbations of a numeric parameter (Katib's and the PBT paper's).
PERTURB_FACTORS = (0.8, 1.2)
#: Suffix of the directory holding the copy of a trial's parent checkpoint.
PARENT_SUFFIX = ".parent"


@dataclass(frozen=True)
class _Slot:
    """A planned member of a generation, not yet handed to a trial."""

    params: dict[str, ParamValue]
    parent: str | None  # the trial whose checkpoint it starts from
    parent_dir: str | None  # that trial's checkpoint directory
    replaces: str | None  # the member of the previous generation it takes over from


@dataclass
class _Member:
    """A trial of the current generation."""

    trial_id: str
    params: dict[str, ParamValue]
    checkpoint_dir: str | None
    done: bool = False
    value: float | None = None  # the objective value if it succeeded


def _local_dir(spec: ExperimentSpec, settings: Mapping[str, Any]) -> str | None:
    """``suggestion_trial_dir`` where this machine may write it, or None for the default.

    A Katib file's directory (``/var/log/katib/checkpoints/``) is a path inside Katib's pods:
    it is used here only through a ``--path-map`` entry that covers it (the longest prefix at a
    path boundary wins); otherwise checkpoints go under the runs directory, like every other
    file a trial writes. A native spec's directory is the user's own choice and is kept.
    """
    raw = settings.get("suggestion_trial_dir")
    if not raw or spec.source != "katib":
        return str(raw) if raw else None
    text = str(raw).rstrip("/") or "/"
    mapping = spec.trial_template.path_map
    for src in sorted(mapping, key=len, reverse=True):
        prefix = src.rstrip("/") or "/"
        if text == prefix or text.startswith(prefix.rstrip("/") + "/"):
            return str(mapping[src]).rstrip("/") + text[len(prefix.rstrip("/")) :]
    return None


class PbtSuggester(Suggester):
    """Katib's population-based training as a :class:`Suggester`.

    Args:
        spec: The validated experiment spec (algorithm ``pbt``).
        history: Stored trials of the experiment, in creation order.
        state: Algorithm state saved by :meth:`state` (the seed and the checkpoint root).
        runs_dir: Root of the default checkpoint location ``<runs_dir>/<experiment>/pbt`` when
            ``suggestion_trial_dir`` is not set, or is a Katib path no ``--path-map`` entry
            covers (default ``automl-runs``, from the working directory).

    Raises:
        SpecError: Bad settings (``n_population`` < 5, ``truncation_threshold`` outside [0, 1]).
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        history: Sequence[TrialRecord] = (),
        state: Mapping[str, Any] | None = None,
        *,
        runs_dir: str | Path | None = None,
    ) -> None:
        settings = resolve_settings(spec)
        self._n: int = settings["n_population"]
        self._truncation: float = settings["truncation_threshold"]
        self._resample: float | None = settings.get("resample_probability")
        self._maximize = spec.objective.type is Direction.MAXIMIZE
        self._codecs: dict[str, ParamCodec] = SpaceCodec(spec.parameters).codecs
        saved = dict(state or {})
        seed = saved.get("seed", settings.get("random_state"))
        if not isinstance(seed, int):
            seed = random.SystemRandom().randrange(2**31)
        self._seed: int = seed
        root = saved.get("checkpoint_root") or _local_dir(spec, settings)
        if not root:
            root = Path(runs_dir or "automl-runs") / spec.name / "pbt"
        self._root = Path(root).expanduser().resolve()
        self._state = {"seed": self._seed, "checkpoint_root": str(self._root)}
        self._generation = 0
        self._plan: list[_Slot] = self._first_plan()
        self._members: list[_Member] = []
        self._by_id: dict[str, _Member] = {}
        for trial in history:
            self._adopt(trial)

    # -- protocol -----------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """The generation being handed out or run."""
        return self._generation

    @property
    def checkpoint_root(self) -> Path:
        """The directory holding every trial's checkpoint directory (absolute)."""
        return self._root

    def suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        """Hand out the current generation's remaining members, one per id, in order.

        Returns none while every member of the generation has been handed out and some have not
        finished: the next generation is planned only from a complete one.

        Raises:
            OSError: A checkpoint could not be copied (``FileNotFoundError``: a parent's
                checkpoint directory has disappeared).
        """
        out: list[Suggestion] = []
        for trial_id in trial_ids:
            if len(self._members) >= len(self._plan):
                break
            slot = self._plan[len(self._members)]
            try:
                attrs = self._prepare(trial_id, slot)
            except OSError:
                if out:
                    break  # hand out what is ready; the next call raises again
                raise
            member = _Member(trial_id, dict(slot.params), attrs["checkpoint_dir"])
            self._members.append(member)
            self._by_id[trial_id] = member
            out.append(Suggestion(params=dict(slot.params), attrs=attrs))
        return out

    def tell(self, trial: TrialRecord) -> None:
        """Record a finished member; the last one of a generation plans the next generation.

        Unknown ids and trials told twice are ignored.
        """
        member = self._by_id.get(trial.id)
        if member is None or member.done or trial.state.is_active:
            return
        member.done = True
        if (
            trial.state is TrialState.SUCCEEDED
            and trial.value is not None
            and math.isfinite(trial.value)
        ):
            member.value = float(trial.value)
        if len(self._members) == len(self._plan) and all(m.done for m in self._members):
            self._plan = self._next_plan(self._members)
            self._generation += 1
            self._members = []
            self._by_id = {}

    def state(self) -> Mapping[str, Any]:
        """The seed and the checkpoint root, so a rebuilt suggester draws and writes the same."""
        return self._state

    # -- rebuilding ---------------------------------------------------------------------------
    def _adopt(self, trial: TrialRecord) -> None:
        """Take a stored trial back as a member of the current generation (rebuild)."""
        lineage = trial.attrs.get("pbt")
        if not isinstance(lineage, Mapping) or lineage.get("generation") != self._generation:
            return  # not one of ours, or inconsistent with the replayed bookkeeping
        if len(self._members) >= len(self._plan):
            return
        ckpt = trial.attrs.get("checkpoint_dir")
        member = _Member(trial.id, dict(trial.params), str(ckpt) if ckpt else None)
        self._members.append(member)
        self._by_id[trial.id] = member
        if not trial.state.is_active:
            self.tell(trial)

    # -- planning -----------------------------------------------------------------------------
    def _rng(self, generation: int) -> random.Random:
        # A string seed is hashed with SHA-512: the same in every process (no PYTHONHASHSEED).
        return random.Random(f"automl-pbt:{self._seed}:{generation}")

    def _first_plan(self) -> list[_Slot]:
        rng = self._rng(0)
        return [_Slot(self._sample(rng), None, None, None) for _ in range(self._n)]

    def _next_plan(self, members: Sequence[_Member]) -> list[_Slot]:
        """Plan the next generation from a finished one (members in creation order)."""
        rng = self._rng(self._generation + 1)
        n = len(members)
        k = math.floor(n * self._truncation + 1e-9)
        sign = -1.0 if self._maximize else 1.0
        scored = [(sign * m.value, i) for i, m in enumerate(members) if m.value is not None]
        # Best first, ties in creation order; members that did not succeed rank last.
        ranked = [i for _, i in sorted(scored)]
        ranked += [i for i, m in enumerate(members) if m.value is None]
        replaced = set(ranked[n - k :]) | {i for i, m in enumerate(members) if m.value is None}
        top = [i for i in ranked[: max(k, 1)] if members[i].value is not None]
        plan: list[_Slot] = []
        for i, member in enumerate(members):
            if i not in replaced:
                plan.append(
                    _Slot(
                        dict(member.params),
                        member.trial_id,
                        member.checkpoint_dir,
                        member.trial_id,
                    )
                )
            elif top:
                parent = members[top[rng.randrange(len(top))]]
                plan.append(
                    _Slot(
                        self._explore(parent.params, rng),
                        parent.trial_id,
                        parent.checkpoint_dir,
                        member.trial_id,
                    )
                )
            else:  # nothing succeeded: no checkpoint worth inheriting, start this member afresh
                plan.append(_Slot(self._sample(rng), None, None, member.trial_id))
        return plan

    def _explore(self, params: Mapping[str, ParamValue], rng: random.Random) -> dict[str, Any]:
        """A parent's parameters, explored.

        Each parameter is resampled from its prior with probability ``resample_probability``
        (when set); otherwise an int or double is multiplied by 0.8 or 1.2 (clipped to
        ``[min, max]``, rounded to its step, and moved by at least one step when it has one), and a
        categorical or discrete parameter moves to a neighbouring value (discrete values in
        numeric order, categorical ones in the order listed; the ends stay put when the move
        would leave the list).
        """
        out: dict[str, Any] = {}
        for name, codec in self._codecs.items():
            value = params.get(name)
            resample = self._resample is not None and rng.random() < self._resample
            if value is None or resample:
                out[name] = _sample_one(codec, rng)
            else:
                out[name] = _perturb(codec.param, value, rng)
        return out

    def _sample(self, rng: random.Random) -> dict[str, ParamValue]:
        return {name: _sample_one(codec, rng) for name, codec in self._codecs.items()}

    # -- checkpoints --------------------------------------------------------------------------
    def _prepare(self, trial_id: str, slot: _Slot) -> dict[str, Any]:
        """Create the trial's checkpoint directory and copy its parent's checkpoint."""
        own = self._root / trial_id
        own.mkdir(parents=True, exist_ok=True)
        attrs: dict[str, Any] = {"checkpoint_dir": str(own)}
        if slot.parent is not None:
            src = Path(slot.parent_dir) if slot.parent_dir else self._root / slot.parent
            dst = self._root / f"{trial_id}{PARENT_SUFFIX}"
            _copy_checkpoint(src, dst, slot.parent)
            attrs["parent_checkpoint_dir"] = str(dst)
        attrs["pbt"] = {
            "generation": self._generation,
            "parent": slot.parent,
            "replaces": slot.replaces,
        }
        return attrs


def _copy_checkpoint(src: Path, dst: Path, parent: str) -> None:
    """Copy ``src`` to ``dst`` through a temporary sibling, so ``dst`` is never half written."""
    if not src.is_dir():
        raise FileNotFoundError(f"the checkpoint of parent trial {parent} is missing: {src}")
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


def _sample_one(codec: ParamCodec, rng: random.Random) -> ParamValue:
    """Draw one value from a parameter's prior (warped priors through their codec)."""
    d = codec.distribution
    internal: Any
    if isinstance(d, CategoricalDistribution):
        internal = rng.randrange(len(d.choices))
    elif isinstance(d, IntDistribution):
        if d.log:  # Optuna's way: log-uniform over [low - 0.5, high + 0.5], rounded
            x = math.exp(rng.uniform(math.log(d.low - 0.5), math.log(d.high + 0.5)))
            internal = min(max(round(x), d.low), d.high)
        else:
            internal = d.low + d.step * rng.randrange((d.high - d.low) // d.step + 1)
    else:
        assert isinstance(d, FloatDistribution)
        if d.step is not None:
            internal = d.low + d.step * rng.randrange(round((d.high - d.low) / d.step) + 1)
            internal = min(internal, d.high)
        elif d.log:
            internal = math.exp(rng.uniform(math.log(d.low), math.log(d.high)))
        else:
            internal = rng.uniform(d.low, d.high)
    return codec.to_external(internal)


def _perturb(p: Parameter, value: ParamValue, rng: random.Random) -> ParamValue:
    """Move one value: numbers by x0.8 or x1.2, choices to a neighbour."""
    if p.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
        choices = list(p.values)
        if p.type is ParameterType.DISCRETE:
            choices.sort(key=float)
        try:
            i = index_of(tuple(choices), value)
        except ValueError:  # not a value of the space (the stored value is stale): resample
            return choices[rng.randrange(len(choices))]
        j = min(max(i + rng.choice((-1, 1)), 0), len(choices) - 1)
        return choices[j]
    assert p.min is not None and p.max is not None
    factor = rng.choice(PERTURB_FACTORS)
    old = float(value)
    target = min(max(old * factor, p.min), p.max)
    step = p.step if p.step is not None else (1.0 if p.type is ParameterType.INT else None)
    new = _snap(p, target, step)
    if step is not None and new == _snap(p, old, step) and target != old:
        # Rounding undid the move (1 * 1.2 -> 1): take one step in its direction instead.
        direction = 1.0 if target > old else -1.0
        new = _snap(p, old + direction * step, step)
    if p.type is ParameterType.INT:
        return round(new)
    return new


def _snap(p: Parameter, x: float, step: float | None) -> float:
    """Clip ``x`` to ``[min, max]`` and round it to the step grid from ``min``."""
    assert p.min is not None and p.max is not None
    x = min(max(x, p.min), p.max)
    if step is not None:
        x = p.min + round((x - p.min) / step) * step
        x = min(max(x, p.min), p.max)
        return float(f"{x:.12g}")
    return x
