"""automl: hyperparameter tuning with Katib's experiments and Optuna's search.

Three ways in: an experiment YAML (``automl run experiment.yaml``), the Python API
(:func:`automl.tune`, :class:`automl.Client`) and the dashboard. Attributes load lazily, so a trial
that only calls :func:`automl.report` imports nothing heavy.

Example:
    >>> import automl
    >>> result = automl.tune(lambda x: (x - 2) ** 2, {"x": automl.double(-5, 5)},
    ...                      max_trials=20, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "report": "automl._report",
    "current_trial": "automl._report",
    "should_stop": "automl._report",
    "TrialInfo": "automl._report",
    "tune": "automl._api",
    "Client": "automl._api",
    "TuneResult": "automl._api",
    "int": "automl._api",
    "double": "automl._api",
    "categorical": "automl._api",
    "discrete": "automl._api",
    "ExperimentSpec": "automl.core",
    "TrialState": "automl.core",
    "ExperimentState": "automl.core",
    "parse_spec": "automl.spec",
    "load_spec": "automl.spec",
    "Store": "automl.store",
    "AutoMLError": "automl.errors",
    "SpecError": "automl.errors",
    "StorageError": "automl.errors",
    "NotFoundError": "automl.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from automl._api import Client, TuneResult, categorical, discrete, double, int, tune
    from automl._report import TrialInfo, current_trial, report, should_stop
    from automl.core import ExperimentSpec, ExperimentState, TrialState
    from automl.errors import AutoMLError, NotFoundError, SpecError, StorageError
    from automl.spec import load_spec, parse_spec
    from automl.store import Store


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'automl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
