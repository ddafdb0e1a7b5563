"""Search spaces and algorithms: a registry of suggesters on Optuna.

Use :func:`create_suggester` to build the suggester an experiment spec asks for, rebuilt from the
experiment's stored history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from automl.core import ExperimentSpec, TrialRecord
from search._base import Suggester
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
    "EarlyStopper",
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
    name = spec.algorithm.name
    if name == "hyperband":
        from search._hyperband import HyperbandSuggester

        return HyperbandSuggester(spec, history, state)
    if name == "pbt":
        from search._pbt import PbtSuggester

        return PbtSuggester(spec, history, state, runs_dir=runs_dir)
    from search._optuna import OptunaSuggester  # Optuna loads only when a search runs

    return OptunaSuggester(spec, history, state)
