"""Search spaces and algorithms: a registry of suggesters on Optuna.

Use :func:`create_suggester` to build the suggester an experiment spec asks for, rebuilt from the
experiment's stored history. Besides Optuna's samplers: Katib's Hyperband and PBT, regularized
evolution (``evolution``), and neural architecture search over a ``nas_config``: ENAS's LSTM
controller (``enas``, torch), Katib's one-trial DARTS (``darts``), or any categorical-capable
algorithm over the architecture's choices (multi-trial NAS).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from automl.core import ExperimentSpec, TrialRecord, has_conditions
from search._base import Suggester
from search._nas_space import Architecture, NasSpace, Operation
from search._registry import ALGORITHMS, AlgorithmInfo, Setting, algorithm_names, resolve_settings
from search._stopping import (
    STOPPERS,
    EarlyStopper,
    create_stopper,
    resolve_stopper_settings,
    stopper_names,
)

__all__ = [
    "ALGORITHMS",
    "STOPPERS",
    "AlgorithmInfo",
    "Architecture",
    "EarlyStopper",
    "NasSpace",
    "Operation",
    "Setting",
    "Suggester",
    "algorithm_names",
    "create_stopper",
    "create_suggester",
    "resolve_settings",
    "resolve_stopper_settings",
    "stopper_names",
]


def create_suggester(
    spec: ExperimentSpec,
    history: Sequence[TrialRecord] = (),
    state: Mapping[str, Any] | None = None,
    *,
    runs_dir: str | Path | None = None,
) -> Suggester:
    """Build the suggester for ``spec.algorithm``, rebuilt from ``history``.

    Args:
        spec: A validated experiment spec.
        history: The experiment's stored trials, in creation order.
        state: Experiment-level algorithm state saved from :meth:`Suggester.state`.
        runs_dir: Where trials keep their files (PBT puts its checkpoints below it).

    Raises:
        SpecError: Unknown algorithm or bad settings.
    """
    from search._registry import canonical_name

    name = canonical_name(spec.algorithm.name)
    if name in ("enas", "darts"):
        resolve_settings(spec)  # NAS settings and nas_config, named errors before any trial
        if name == "darts":
            from search._nas_multitrial import DartsSuggester

            return DartsSuggester(spec, history, state)
        try:
            from search._enas import EnasSuggester
        except ImportError as exc:  # torch is optional
            from automl.errors import SpecError

            raise SpecError(
                f"enas needs torch: pip install 'automl[nas]' ({exc})", path="algorithm.name"
            ) from None
        return EnasSuggester(spec, history, state)
    if spec.nas_config is not None and not spec.parameters:
        # Multi-trial NAS: any algorithm searches the architecture's categorical choices.
        from search._nas_multitrial import NasSuggester, nas_search_spec
        from search._nas_space import NasSpace

        resolve_settings(spec)
        inner_spec = nas_search_spec(spec)
        wrapper_names = {p.name for p in inner_spec.parameters}
        inner_history = [
            dataclasses.replace(
                t, params={k: v for k, v in t.params.items() if k in wrapper_names}
            )
            for t in history
        ]
        inner = create_suggester(inner_spec, inner_history, state, runs_dir=runs_dir)
        return NasSuggester(inner, NasSpace.from_spec(spec))
    if spec.define_by_run:
        from search._define_by_run import DefineByRunSuggester

        resolve_settings(spec)
        return DefineByRunSuggester(spec, history, state)
    if name == "grid" and has_conditions(spec.parameters):
        from search._conditional import ConditionalGridSuggester

        return ConditionalGridSuggester(spec, history, state)
    if name == "auto":
        from search._auto import AutoSuggester

        return AutoSuggester(spec, history, state)
    if name == "evolution":
        from search._evolution import EvolutionSuggester

        return EvolutionSuggester(spec, history, state)
    if name == "hyperband":
        from search._hyperband import HyperbandSuggester

        return HyperbandSuggester(spec, history, state)
    if name == "pbt":
        from search._pbt import PbtSuggester

        return PbtSuggester(spec, history, state, runs_dir=runs_dir)
    from search._optuna import OptunaSuggester  # Optuna loads only when a search runs

    return OptunaSuggester(spec, history, state)
