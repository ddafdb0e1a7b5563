"""``automl.report`` and ``automl.current_trial``: how a trial talks back.

A leaf module of the kernel (stdlib only), so a subprocess trial that imports automl to report a
metric pays for nothing else. Inside an in-process trial the executor binds a reporter to a
context variable; inside a subprocess trial the executor sets ``AUTOML_REPORT_FILE`` and reports
are appended to it as JSON lines, which the controller tails.
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrialInfo", "TrialStopped", "current_trial", "report", "should_stop"]


class TrialStopped(Exception):
    """Raise it from an in-process objective once :func:`should_stop` is true.

    The trial then ends as EarlyStopped (or Killed, after a user stop), not Failed.
    """


REPORT_FILE_ENV = "AUTOML_REPORT_FILE"
#: Set to ``1`` where no report file can be shared (a Kubernetes pod): reports are printed to
#: stdout as :data:`REPORT_LINE_PREFIX` + JSON, and the executor picks them out of the log.
REPORT_STDOUT_ENV = "AUTOML_REPORT_STDOUT"
REPORT_LINE_PREFIX = "[automl.report] "
TRIAL_ENV = "AUTOML_TRIAL"  # JSON: id, experiment, number, params, workdir
#: A file the executor creates when it stops a subprocess trial (early stopping, a user stop)
#: just before it signals the process, so that :func:`should_stop` can see the decision.
STOP_FILE_ENV = "AUTOML_STOP_FILE"

Reporter = Callable[[int | None, Mapping[str, float]], None]


@dataclass(frozen=True, slots=True)
class TrialInfo:
    """The trial the calling code runs in.

    Attributes:
        id: Trial id (also its name).
        experiment: Experiment name.
        number: 0-based trial number within the experiment.
        params: Typed parameter values.
        workdir: The trial's own output directory, if it has one.
        checkpoint_dir: Where the trial writes its checkpoint (population-based training).
        parent_checkpoint_dir: The checkpoint it starts from, copied from its parent (PBT).
        artifact_dir: Where the trial keeps models and outputs (``automl.save_model``); created
            on first use.
    """

    id: str
    experiment: str
    number: int
    params: Mapping[str, Any] = field(default_factory=dict)
    workdir: str | None = None
    checkpoint_dir: str | None = None
    parent_checkpoint_dir: str | None = None
    artifact_dir: str | None = None


@dataclass(frozen=True, slots=True)
class _Binding:
    info: TrialInfo
    reporter: Reporter
    should_stop: Callable[[], bool] = lambda: False


_binding: contextvars.ContextVar[_Binding | None] = contextvars.ContextVar(
    "automl_trial", default=None
)
_warned = False


def bind(
    info: TrialInfo, reporter: Reporter, should_stop: Callable[[], bool]
) -> contextvars.Token[Any]:
    """Bind the current context to a trial (used by in-process executors)."""
    return _binding.set(_Binding(info, reporter, should_stop))


def unbind(token: contextvars.Token[Any]) -> None:
    """Undo :func:`bind`."""
    _binding.reset(token)


def current_trial() -> TrialInfo | None:
    """The trial this code runs in, in-process or in a subprocess; None outside any trial."""
    b = _binding.get()
    if b is not None:
        return b.info
    raw = os.environ.get(TRIAL_ENV)
    if not raw:
        return None
    data = json.loads(raw)
    return TrialInfo(
        data["id"],
        data["experiment"],
        int(data["number"]),
        data.get("params", {}),
        data.get("workdir"),
        data.get("checkpoint_dir"),
        data.get("parent_checkpoint_dir"),
        data.get("artifact_dir") or os.environ.get("AUTOML_ARTIFACT_DIR"),
    )


def report(step: int | None = None, **metrics: float) -> None:
    """Report metric values of the current trial, optionally at a training step.

    Works inside an in-process trial (``automl.tune``) and inside a subprocess trial started by
    the process executor. Outside a trial it warns once and does nothing, so a training script
    still runs on its own. In a distributed subprocess trial (``RANK`` set, as torchrun and
    PyTorchJob set it) only rank 0's reports are kept, so each value is observed once.

    Args:
        step: Training step or epoch the values belong to.
        **metrics: Metric names and numeric values, e.g. ``accuracy=0.97``.

    Raises:
        TypeError: A value is not a real number, or ``step`` is not an integer.

    Example:
        >>> import automl
        >>> automl.report(step=3, accuracy=0.91, loss=0.3)  # doctest: +SKIP
    """
    global _warned
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise TypeError(f"automl.report: step must be an integer; got {step!r}")
    clean: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)  # numpy and torch scalars
            except (TypeError, ValueError):
                raise TypeError(
                    f"automl.report: metric {name!r} must be a number; got {value!r}"
                ) from None
        clean[name] = float(value)
    b = _binding.get()
    if b is not None:
        b.reporter(step, clean)
        return
    path = os.environ.get(REPORT_FILE_ENV)
    subprocess_trial = bool(path) or os.environ.get(REPORT_STDOUT_ENV) == "1"
    if subprocess_trial and os.environ.get("RANK", "0") != "0":
        return  # a distributed trial (torchrun, PyTorchJob) is observed through rank 0 only
    if path:
        line = json.dumps(
            {
                "step": step,
                "metrics": {k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()},
                "time": time.time(),
            }
        )
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        return
    if os.environ.get(REPORT_STDOUT_ENV) == "1":
        stdout_line = json.dumps(
            {
                "step": step,
                "metrics": {k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()},
                "time": time.time(),
            }
        )
        print(REPORT_LINE_PREFIX + stdout_line, flush=True)
        return
    if not _warned:
        _warned = True
        warnings.warn(
            "automl.report() called outside a trial; the values are dropped",
            RuntimeWarning,
            stacklevel=2,
        )


def should_stop() -> bool:
    """Whether the controller asked the current trial to stop.

    In-process trials: true right after the :func:`report` call that made the early stopper
    decide, or after a stop request. Subprocess trials: true once the executor has created the
    file named by ``AUTOML_STOP_FILE`` (a cheap ``stat``), for executors that set it.
    """
    b = _binding.get()
    if b is not None:
        return b.should_stop()
    path = os.environ.get(STOP_FILE_ENV)
    return path is not None and path != "" and os.path.exists(path)
