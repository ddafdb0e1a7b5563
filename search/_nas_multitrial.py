"""Multi-trial NAS with any categorical-capable algorithm, and Katib's one-trial DARTS.

An architecture of a :class:`~search.NasSpace` is a set of categorical choices
(``layer_{i}_op``, ``layer_{i}_skip_{j}``), so ``random``, ``grid``, ``tpe``, ``evolution`` and
the other samplers search it like any hyperparameter space. :class:`NasSuggester` wraps such a
suggester: the wrapped one sees the spec with ``parameters`` set to the space's choices; every
trial it proposes gets, besides those choices, Katib's ENAS assignments ``architecture`` and
``nn_config`` (so a Katib trial template written for ENAS runs unchanged under any algorithm), and
the architecture as data in the trial's attributes.

:class:`DartsSuggester` is Katib's DARTS service: one trial whose assignments are
``algorithm-settings``, ``search-space`` and ``num-layers`` (Katib's string forms); the trial runs
the whole differentiable search, and the experiment ends when it does.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from automl.core import ExperimentSpec, Suggestion, TrialRecord
from search._base import Suggester
from search._nas_space import NasSpace

__all__ = ["DartsSuggester", "NasSuggester", "darts_search_space", "nas_search_spec"]


def nas_search_spec(spec: ExperimentSpec) -> ExperimentSpec:
    """The spec a plain suggester searches: ``parameters`` are the architecture's choices."""
    space = NasSpace.from_spec(spec)
    return spec.model_copy(update={"parameters": space.parameters()})


class NasSuggester(Suggester):
    """Adds the architecture to the suggestions of a suggester over the space's choices.

    The wrapped suggester searches :meth:`NasSpace.parameters`; each suggestion gains Katib's
    ``architecture`` and ``nn_config`` strings and the structured architecture (attrs).

    Args:
        inner: The wrapped suggester, built on :func:`nas_search_spec`.
        space: The architecture space.
    """

    def __init__(self, inner: Suggester, space: NasSpace) -> None:
        self.inner = inner
        self.space = space
        self._names = {p.name for p in space.parameters()}

    def suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        """The wrapped suggestions, with the architecture in Katib's and structured form."""
        from search._enas import katib_assignments

        out: list[Suggestion] = []
        for s in self.inner.suggest(trial_ids):
            arch = self.space.decode(s.params)
            params = {**s.params, **katib_assignments(self.space, arch)}
            out.append(
                Suggestion(params=params, attrs={**s.attrs, "architecture": arch.to_dict()})
            )
        return out

    def tell(self, trial: TrialRecord) -> None:
        """Tell the wrapped suggester, with only the parameters it knows."""
        self.inner.tell(self.strip(trial))

    def strip(self, trial: TrialRecord) -> TrialRecord:
        """``trial`` with the derived assignments removed from its parameters."""
        params = {k: v for k, v in trial.params.items() if k in self._names}
        return dataclasses.replace(trial, params=params)

    @property
    def exhausted(self) -> bool:
        """Whether the wrapped suggester is exhausted (a finished grid)."""
        return self.inner.exhausted

    def state(self) -> Mapping[str, Any]:
        """The wrapped suggester's state."""
        return self.inner.state()


def darts_search_space(space: NasSpace) -> list[str]:
    """Katib's DARTS ``search-space``: ``<type>_<k>x<k>`` per listed filter size.

    Filter sizes are the first parameter of each operation as written (as Katib reads it);
    ``skip_connection`` stays as is.
    """
    out: list[str] = []
    if space.katib_operations:
        for op in space.katib_operations:
            op_type = str(op.get("operationType"))
            params = op.get("parameters") or []
            if op_type == "skip_connection" or not params:
                out.append(op_type)
                continue
            for k in (params[0].get("feasibleSpace") or {}).get("list") or []:
                out.append(f"{op_type}_{k}x{k}")
        return out
    for o in space.operations:
        k = o.value("filter_size") if "filter_size" in o.params else None
        name = o.type if k is None else f"{o.type}_{k}x{k}"
        if name not in out:
            out.append(name)
    return out


class DartsSuggester(Suggester):
    """Katib's ``darts``: a single trial runs the one-shot search.

    Its parameters are Katib's assignments (the same strings Katib's DARTS service returns):
    ``algorithm-settings`` (every setting, defaults filled, values as written), ``search-space``
    (the operations by filter size) and ``num-layers``. Once that trial has been suggested the
    suggester is exhausted, so the experiment ends when the trial does.

    Args:
        spec: A validated spec with ``algorithm.name == "darts"`` and a ``nas_config``.
        history: Stored trials.
        state: Unused.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        history: Sequence[TrialRecord] = (),
        state: Mapping[str, Any] | None = None,
    ) -> None:
        from search._nas_settings import darts_assignments
        from search._registry import resolve_settings

        resolve_settings(spec)
        self.space = NasSpace.from_spec(spec)
        # Katib's string forms of algorithm-settings and num-layers; search-space from the space.
        assignments = dict(darts_assignments(spec, []))
        assignments["search-space"] = json.dumps(darts_search_space(self.space)).replace('"', "'")
        self.assignments: dict[str, str] = assignments
        self._given = len(history)

    def suggest(self, trial_ids: Sequence[str]) -> list[Suggestion]:
        """The one DARTS trial (nothing once it has been given)."""
        if self._given or not trial_ids:
            return []
        self._given = 1
        return [Suggestion(params=dict(self.assignments), attrs={"darts": {"search": True}})]

    def tell(self, trial: TrialRecord) -> None:
        """Nothing to learn: the trial itself searched."""

    @property
    def exhausted(self) -> bool:
        """True once the DARTS trial has been suggested."""
        return self._given > 0
