"""The best trials as users see them: the Pareto front in DataFrames, tables and JSON.

One objective: the best trial is the best feasible succeeded one, as it always was. Several
objectives: the best trials are the Pareto front of feasible succeeded trials, and ``best_trial``
(one trial, for ``best_params`` and ``best_value``) is the front member best on the first
objective.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from automl.core import ExperimentSpec, TrialRecord
from automl.core._pareto import feasible, outcome, pareto_front

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["best_trial", "front_rows", "with_front_columns"]


def best_trial(spec: ExperimentSpec, trials: Sequence[TrialRecord]) -> TrialRecord | None:
    """The best trial: the best feasible one on the first objective among the front."""
    front = pareto_front(spec, trials)
    best: TrialRecord | None = None
    for t in front:
        if best is None or (
            t.value is not None
            and best.value is not None
            and spec.objective.better(t.value, best.value)
        ):
            best = t
    return best


def with_front_columns(
    spec: ExperimentSpec, trials: Sequence[TrialRecord], df: pd.DataFrame
) -> pd.DataFrame:
    """Add ``pareto`` (front member) and, with constraints, ``feasible`` to a trial table.

    With several objectives each objective's column holds the value under that objective's own
    strategy. A single-objective experiment without constraints gets no new column.
    """
    if not spec.multi_objective and not spec.constraints:
        return df
    if df.empty:
        return df.assign(pareto=[], **({"feasible": []} if spec.constraints else {}))
    front = {t.id for t in pareto_front(spec, trials)}
    by_id = {t.id: t for t in trials}
    out = df.copy()
    if spec.multi_objective:
        for i, o in enumerate(spec.all_objectives):
            out[o.metric] = [outcome(spec, by_id[tid].metrics).values[i] for tid in out["trial"]]
    if spec.constraints:
        out["feasible"] = [feasible(by_id[tid]) for tid in out["trial"]]
    out["pareto"] = [tid in front for tid in out["trial"]]
    return out


def front_rows(spec: ExperimentSpec, trials: Sequence[TrialRecord]) -> list[dict[str, Any]]:
    """The front as plain rows: trial, number, objective values, params (for JSON and the CLI)."""
    rows = []
    for t in pareto_front(spec, trials):
        out = outcome(spec, t.metrics)
        rows.append(
            {
                "trial": t.id,
                "number": t.number,
                "values": {
                    o.metric: v for o, v in zip(spec.all_objectives, out.values, strict=True)
                },
                "params": dict(t.params),
            }
        )
    return rows
