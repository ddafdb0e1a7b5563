"""Run one trial of a Python objective in a process of its own: ``python -m automl._fnrun``.

``automl.tune(fn, ..., trial_processes=True)`` makes each trial this command, so a function
trial is a supervised local process like any command trial: it outlives its controller, is
adopted by the next one, and is killed with its process group on stop or timeout. The
parameters come from the trial's environment (``AUTOML_TRIAL``); the return value is reported
with :func:`automl.report` (a number under the objective metric, or a dict of metrics).
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Mapping
from typing import Any

from automl import _report


def _metrics(result: Any, metric: str) -> dict[str, float]:
    if result is None:
        return {}
    if isinstance(result, Mapping):
        return {str(k): float(v) for k, v in result.items()}
    if isinstance(result, bool) or not isinstance(result, int | float):
        raise TypeError(
            "objective must return a number, a dict of metrics or None; got "
            f"{type(result).__name__}"
        )
    value = float(result)
    if math.isnan(value):
        raise ValueError(f"objective returned NaN for {metric!r}")
    return {metric: value}


def main(argv: list[str]) -> int:
    """Import ``module:qualname``, call it with the trial's parameters, report what it returns."""
    flags = [a for a in argv[2:] if a == "--define-by-run" or a.startswith("--seed=")]
    if len(argv) < 2 or len(flags) != len(argv) - 2:
        print(
            "usage: python -m automl._fnrun MODULE:FUNCTION OBJECTIVE_METRIC "
            "[--define-by-run [--seed=N]]",
            file=sys.stderr,
        )
        return 2
    path, metric = argv[:2]
    module, _, qualname = path.partition(":")
    fn: Any = importlib.import_module(module)
    for part in qualname.split("."):
        fn = getattr(fn, part)
    trial = _report.current_trial()
    if trial is None:
        print("automl._fnrun runs inside a trial (AUTOML_TRIAL is not set)", file=sys.stderr)
        return 2
    from trials._inprocess import call_objective

    if "--define-by-run" in flags:  # def objective(trial): trial.suggest_float(...)
        from automl._define_by_run import run_define_by_run

        seeds = [int(a.removeprefix("--seed=")) for a in flags if a.startswith("--seed=")]
        result = run_define_by_run(fn, trial.params, metric, seeds[0] if seeds else None)
    else:
        result = call_objective(fn, trial.params)
    metrics = _metrics(result, metric)
    if metrics:
        _report.report(None, **metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
