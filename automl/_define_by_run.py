"""Define-by-run objectives: ``def objective(trial)`` calling ``trial.suggest_float(...)``.

How it works with a durable, parallel controller. The controller's suggester proposes a value for
every parameter seen so far (search.DefineByRunSuggester), and those values are the trial's
parameters while it runs. Inside the objective, :meth:`Trial.suggest_float` and its siblings
return the proposed value when the asked range holds it, and draw a new value (uniformly, seeded
by the experiment's seed and the trial number) for a name not seen before. Each call records the
parameter and its range in the trial's ``outputs.json`` (``outputs.data["suggested"]``); when the
trial ends the controller stores the parameters it actually asked for as its params (a parameter
the objective never asked for is absent, as an inactive conditional one is) and the search learns
the ranges, so the space grows as the objective's suggest calls are seen. A resumed controller
rebuilds the space from the stored trials.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from automl import _report
from automl.core import (
    SUGGESTED_KEY,
    Distribution,
    Parameter,
    ParameterType,
    ParamValue,
    suggested,
)

__all__ = ["DefineByRunObjective", "Trial", "is_define_by_run", "run_define_by_run", "used_params"]


def is_define_by_run(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is an Optuna-style objective.

    One required positional parameter, called ``trial`` or annotated as a trial
    (``automl.Trial``, ``optuna.Trial``).
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    ps = [p for p in sig.parameters.values() if p.default is p.empty]
    if len(ps) != 1 or ps[0].kind not in (ps[0].POSITIONAL_ONLY, ps[0].POSITIONAL_OR_KEYWORD):
        return False
    note = ps[0].annotation
    named = getattr(note, "__name__", note if isinstance(note, str) else "")
    return ps[0].name == "trial" or str(named).rsplit(".", 1)[-1] == "Trial"


def _on_grid(low: float, high: float, step: float | None) -> float:
    """``high`` lowered onto the step grid from ``low``, as Optuna does (with a warning there)."""
    if step is None or step <= 0 or high <= low:
        return high
    k = math.floor((high - low) / step + 1e-9)
    top = low + k * step
    return int(top) if isinstance(low, int) and isinstance(step, int) else float(f"{top:.12g}")


def _holds(p: Parameter, value: ParamValue) -> bool:
    """Whether ``value`` (a proposal) is a value ``p`` can take, on its step grid too."""
    if not p.feasible(value):
        return False
    if p.step is None or p.min is None:
        return True
    k = (float(value) - p.min) / p.step
    return abs(k - round(k)) <= 1e-9 * max(1.0, abs(k))


def _same(a: Parameter, b: Parameter) -> bool:
    return a.model_dump(exclude={"name"}) == b.model_dump(exclude={"name"})


class Trial:
    """The ``trial`` an Optuna-style objective receives (the subset of ``optuna.Trial`` it uses).

    Args:
        proposal: The values the search proposed for this trial (its params while it runs).
        metric: The objective metric :meth:`report` reports under.
        number: The trial's number in its experiment.
        seed: The experiment's seed (new parameters are drawn reproducibly from it), or None.
        record: Write what was asked for to the trial's ``outputs.json`` (off outside a trial).
    """

    def __init__(
        self,
        proposal: Mapping[str, ParamValue],
        metric: str,
        number: int = 0,
        seed: int | None = None,
        record: bool = True,
    ) -> None:
        self._proposal = dict(proposal)
        self._metric = metric
        self._number = number
        self._seed = seed
        self._record = record
        self._params: dict[str, ParamValue] = {}
        self._asked: dict[str, Parameter] = {}
        self._user_attrs: dict[str, Any] = {}

    # -- what an Optuna objective reads ----------------------------------------------------
    @property
    def number(self) -> int:
        """The trial's 0-based number in its experiment."""
        return self._number

    @property
    def params(self) -> dict[str, ParamValue]:
        """The parameters suggested so far."""
        return dict(self._params)

    @property
    def distributions(self) -> dict[str, Parameter]:
        """The range each suggested parameter was asked with (Optuna's ``trial.distributions``)."""
        return dict(self._asked)

    @property
    def user_attrs(self) -> dict[str, Any]:
        """Attributes set with :meth:`set_user_attr`."""
        return dict(self._user_attrs)

    def set_user_attr(self, key: str, value: Any) -> None:
        """Keep a JSON-able value with the trial (its ``outputs.data["user_attrs"]``)."""
        self._user_attrs[key] = value
        self._save()

    def report(self, value: float, step: int) -> None:
        """An intermediate value of the objective metric: :func:`automl.report`."""
        _report.report(step, **{self._metric: float(value)})

    def should_prune(self) -> bool:
        """Whether early stopping decided to stop this trial: :func:`automl.should_stop`.

        Raise ``automl.TrialStopped`` (or ``optuna.TrialPruned``) when it is true.
        """
        return _report.should_stop()

    # -- suggestions -----------------------------------------------------------------------
    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        """A real value in ``[low, high]``, on a log scale with ``log``, a grid with ``step``."""
        if log and step is not None:
            raise ValueError("suggest_float: step and log cannot be used together (as in Optuna)")
        if low == high:  # one value, as Optuna allows: a range of one point is a choice of one
            return float(self.suggest_categorical(name, [float(low)]))
        high = _on_grid(low, high, step)
        dist = Distribution.LOG_UNIFORM if log else Distribution.UNIFORM
        p = Parameter(
            name=name,
            type=ParameterType.DOUBLE,
            min=float(low),
            max=float(high),
            step=None if step is not None and high == low else step,
            distribution=dist,
        )
        return float(self._suggest(p))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        """An integer in ``[low, high]`` (on a log scale with ``log``)."""
        if log and step != 1:
            raise ValueError("suggest_int: step and log cannot be used together (as in Optuna)")
        dist = Distribution.LOG_UNIFORM if log else Distribution.UNIFORM
        high = int(_on_grid(low, high, step))
        p = Parameter(
            name=name,
            type=ParameterType.INT,
            min=int(low),
            max=high,
            step=None if step == 1 or high == low else step,
            distribution=dist,
        )
        return int(self._suggest(p))

    def suggest_categorical(self, name: str, choices: Sequence[ParamValue]) -> Any:
        """One of ``choices`` (strings, numbers or booleans)."""
        for c in choices:
            if not isinstance(c, (bool, int, float, str)):
                raise TypeError(
                    f"suggest_categorical({name!r}): choices must be str, int, float or bool; "
                    f"got {c!r}"
                )
        p = Parameter(name=name, type=ParameterType.CATEGORICAL, values=tuple(choices))
        return self._suggest(p)

    def suggest_uniform(self, name: str, low: float, high: float) -> float:
        """Optuna's old name for ``suggest_float(name, low, high)``."""
        return self.suggest_float(name, low, high)

    def suggest_loguniform(self, name: str, low: float, high: float) -> float:
        """Optuna's old name for ``suggest_float(name, low, high, log=True)``."""
        return self.suggest_float(name, low, high, log=True)

    def _suggest(self, p: Parameter) -> ParamValue:
        problems = p.problems(p.name)
        if problems:
            raise ValueError("; ".join(str(i) for i in problems))
        if p.name in self._params:
            if not _same(p, self._asked[p.name]):
                raise ValueError(
                    f"parameter {p.name!r} was already suggested in this trial with another range"
                )
            return self._params[p.name]
        proposed = self._proposal.get(p.name)
        value = proposed if proposed is not None and _holds(p, proposed) else self._draw(p)
        self._params[p.name] = value
        self._asked[p.name] = p
        self._save()
        return value

    def _draw(self, p: Parameter) -> ParamValue:
        """A uniform draw (log-uniform with ``log``) for a parameter the search does not know."""
        rng = random.Random(
            None if self._seed is None else f"{self._seed}:{self._number}:{p.name}"
        )
        if not p.is_numeric_range:
            return rng.choice(list(p.values))
        assert p.min is not None and p.max is not None
        if p.step is not None or p.type is ParameterType.INT:
            step = p.step or 1.0
            n = round((p.max - p.min) / step)
            if p.distribution is Distribution.LOG_UNIFORM:  # int log: uniform on the log scale
                x = math.exp(rng.uniform(math.log(p.min - 0.5 + 1e-9), math.log(p.max + 0.5)))
                k = min(max(round((x - p.min) / step), 0), n)
            else:
                k = rng.randint(0, n)
            v = p.min + k * step
            return round(v) if p.type is ParameterType.INT else float(f"{v:.12g}")
        if p.distribution is Distribution.LOG_UNIFORM:
            return math.exp(rng.uniform(math.log(p.min), math.log(p.max)))
        return rng.uniform(p.min, p.max)

    def _save(self) -> None:
        if not self._record:
            return
        from automl._artifacts import log_outputs

        data: dict[str, Any] = {
            SUGGESTED_KEY: {
                "params": self._params,
                "space": [
                    q.model_dump(mode="json", exclude_defaults=True) for q in self._asked.values()
                ],
            }
        }
        if self._user_attrs:
            data["user_attrs"] = self._user_attrs
        log_outputs(**data)


def run_define_by_run(
    fn: Callable[[Trial], Any],
    params: Mapping[str, ParamValue],
    metric: str,
    seed: int | None = None,
) -> Any:
    """Call an Optuna-style objective for the current trial, with ``params`` as its proposal.

    ``optuna.TrialPruned`` becomes :class:`automl.TrialStopped`, so the trial ends as
    EarlyStopped.
    """
    info = _report.current_trial()
    trial = Trial(
        params,
        metric,
        number=info.number if info is not None else 0,
        seed=seed,
        record=info is not None and info.artifact_dir is not None,
    )
    trial._save()  # "asked for nothing yet": the controller then stores no proposal as params
    try:
        return fn(trial)
    except Exception as exc:
        if type(exc).__name__ == "TrialPruned" and type(exc).__module__.startswith("optuna"):
            raise _report.TrialStopped(str(exc)) from exc
        raise


class DefineByRunObjective:
    """Runs an Optuna-style objective as a function trial (``tune`` wraps it with this).

    Args:
        fn: The objective, ``def objective(trial)``.
        metric: The objective metric (:meth:`Trial.report` reports under it).
        seed: The experiment's seed.
    """

    def __init__(self, fn: Callable[[Trial], Any], metric: str, seed: int | None = None) -> None:
        self.fn = fn
        self.metric = metric
        self.seed = seed

    def __call__(self, /, **params: Any) -> Any:
        # Keyword arguments whatever the names (an objective may suggest one called "params").
        return run_define_by_run(self.fn, params, self.metric, self.seed)


def used_params(outputs: Mapping[str, Any] | None) -> dict[str, ParamValue]:
    """The params a finished define-by-run trial asked for ({} if it asked for none)."""
    found = suggested(outputs)
    return {} if found is None else found[0]
