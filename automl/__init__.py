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
import warnings
from typing import TYPE_CHECKING, Any

# Optuna imports tqdm.auto, which warns "IProgress not found" in every Jupyter kernel without
# ipywidgets; automl's notebook progress display needs no widgets, so the warning is noise.
warnings.filterwarnings("ignore", message="IProgress not found", module=r"tqdm(\.|$)")

__version__ = "0.1.0"

_EXPORTS = {
    "report": "automl._report",
    "current_trial": "automl._report",
    "should_stop": "automl._report",
    "TrialInfo": "automl._report",
    "TrialStopped": "automl._report",
    "Trial": "automl._define_by_run",
    "tune": "automl._api",
    "Client": "automl._client",
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
    "save_model": "automl._artifacts",
    "load_model": "automl._artifacts",
    "log_outputs": "automl._artifacts",
    "select_model": "automl._select",
    "SelectResult": "automl._select",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from automl._api import (
        TuneResult as TuneResult,
    )
    from automl._api import (
        categorical as categorical,
    )
    from automl._api import (
        discrete as discrete,
    )
    from automl._api import (
        double as double,
    )
    from automl._api import (
        int as int,
    )
    from automl._api import (
        tune as tune,
    )
    from automl._artifacts import load_model as load_model
    from automl._artifacts import log_outputs as log_outputs
    from automl._artifacts import save_model as save_model
    from automl._client import Client as Client
    from automl._define_by_run import Trial as Trial
    from automl._report import (
        TrialInfo as TrialInfo,
    )
    from automl._report import (
        TrialStopped as TrialStopped,
    )
    from automl._report import (
        current_trial as current_trial,
    )
    from automl._report import (
        report as report,
    )
    from automl._report import (
        should_stop as should_stop,
    )
    from automl._select import SelectResult as SelectResult
    from automl._select import select_model as select_model
    from automl.core import (
        ExperimentSpec as ExperimentSpec,
    )
    from automl.core import (
        ExperimentState as ExperimentState,
    )
    from automl.core import (
        TrialState as TrialState,
    )
    from automl.errors import (
        AutoMLError as AutoMLError,
    )
    from automl.errors import (
        NotFoundError as NotFoundError,
    )
    from automl.errors import (
        SpecError as SpecError,
    )
    from automl.errors import (
        StorageError as StorageError,
    )
    from automl.spec import load_spec as load_spec
    from automl.spec import parse_spec as parse_spec
    from automl.store import Store as Store


def __getattr__(name: str) -> Any:
    if name == "plots":  # a submodule: `automl.plots.history(...)` after a plain `import automl`
        return importlib.import_module("automl.plots")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'automl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
