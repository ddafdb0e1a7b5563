"""What a define-by-run trial asked for, as its ``outputs.json`` records it.

A define-by-run objective (``def objective(trial)``, :mod:`automl._define_by_run`) records each
``trial.suggest_*`` call under ``outputs.data["suggested"]``: the values (``params``) and the
ranges they were drawn from (``space``, :class:`Parameter` dumps). The controller stores the
values as the trial's params and the search learns the ranges from it, so the space survives a
controller restart with the trials that defined it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from automl.core._spec import ExperimentSpec, Parameter, ParameterType, ParamValue
from automl.core._trial import TrialRecord

__all__ = ["SUGGESTED_KEY", "observed_space", "searched_space", "suggested"]

#: Key of ``outputs.json`` under which a define-by-run trial records what it asked for.
SUGGESTED_KEY = "suggested"


def suggested(
    outputs: Mapping[str, Any] | None,
) -> tuple[dict[str, ParamValue], list[Parameter]] | None:
    """The params a define-by-run trial asked for and their ranges, or None if it recorded none.

    Args:
        outputs: A trial's stored outputs (``{"data": {...}, ...}``).
    """
    data = (outputs or {}).get("data")
    entry = data.get(SUGGESTED_KEY) if isinstance(data, Mapping) else None
    if not isinstance(entry, Mapping):
        return None
    raw_params = entry.get("params")
    params = dict(raw_params) if isinstance(raw_params, Mapping) else {}
    space: list[Parameter] = []
    for raw in entry.get("space") or ():
        try:
            space.append(Parameter.model_validate(raw))
        except ValidationError:
            continue  # written by another version: leave it out
    names = {p.name for p in space}
    return {k: v for k, v in params.items() if k in names}, space


def searched_space(spec: ExperimentSpec, trials: Iterable[TrialRecord]) -> tuple[Parameter, ...]:
    """The parameters an experiment searched.

    The spec's, or for a define-by-run objective the ranges its trials asked for (the latest
    range of a name wins), in first-seen order.
    """
    if not spec.define_by_run:
        return spec.parameters
    space: dict[str, Parameter] = {}
    for t in trials:
        found = suggested(t.outputs)
        for p in found[1] if found is not None else ():
            space[p.name] = p
    return tuple(space.values())


def observed_space(
    spec: ExperimentSpec, params: Iterable[Mapping[str, ParamValue]]
) -> tuple[Parameter, ...]:
    """The spec's parameters, or for a define-by-run objective ranges read off observed values.

    For views that hold trials' params but not their outputs (the dashboard's plots): numbers
    give a double over their observed range, other values a categorical of those seen.
    """
    if not spec.define_by_run:
        return spec.parameters
    seen: dict[str, list[ParamValue]] = {}
    for row in params:
        for k, v in row.items():
            seen.setdefault(k, []).append(v)
    out: list[Parameter] = []
    for name, values in seen.items():
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            lo, hi = float(min(values)), float(max(values))
            out.append(
                Parameter(
                    name=name, type=ParameterType.DOUBLE, min=lo, max=hi if hi > lo else lo + 1
                )
            )
        else:
            uniq = list(dict.fromkeys(values))
            out.append(Parameter(name=name, type=ParameterType.CATEGORICAL, values=tuple(uniq)))
    return tuple(out)
