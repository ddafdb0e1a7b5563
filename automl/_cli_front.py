"""``automl best`` and ``automl show`` for several objectives: the Pareto front.

Kept out of :mod:`automl.cli` (which is near its size limit); the commands call in here when an
experiment has more than one objective or has constraints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import typer
from rich.table import Table

from automl._cli_common import console, dumps_json
from automl._front import front_rows
from automl.core import ExperimentRecord, TrialRecord, TrialState
from automl.core._pareto import feasible, pareto_front

__all__ = ["front_ids", "infeasible_note", "print_front"]


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return str(v)


def print_front(e: ExperimentRecord, trials: Sequence[TrialRecord], as_json: bool) -> None:
    """Print the Pareto front (a table, or a JSON list); exit 1 when it is empty.

    Raises:
        typer.Exit: No feasible trial succeeded yet (code 1).
    """
    rows = front_rows(e.spec, trials)
    if as_json:
        print(dumps_json(rows))
    elif not rows:
        console.print(f"{e.name}: no feasible trial succeeded yet")
    else:
        objs = e.spec.all_objectives
        table = Table(title=f"Pareto front of {e.name}: {len(rows)} trials", header_style="bold")
        table.add_column("#", justify="right")
        table.add_column("trial")
        for o in objs:
            table.add_column(f"{o.metric} ({o.type.value[:3]})", justify="right")
        names = [p.name for p in e.spec.parameters]
        for n in names:
            table.add_column(n, justify="right")
        for r in rows:
            table.add_row(
                str(r["number"]),
                str(r["trial"]),
                *(_fmt(r["values"][o.metric]) for o in objs),
                *(_fmt(r["params"].get(n, "-")) for n in names),
            )
        console.print(table)
    if not rows:
        raise typer.Exit(1)


def front_ids(e: ExperimentRecord, trials: Sequence[TrialRecord]) -> set[str]:
    """Ids of the trials ``automl show`` marks with ``*``: the front (one trial for one)."""
    return {t.id for t in pareto_front(e.spec, trials)}


def infeasible_note(t: TrialRecord) -> str:
    """``infeasible: memory_mb <= 2000 (got 2400)`` for an infeasible trial, else ``""``."""
    if t.state is not TrialState.SUCCEEDED or feasible(t):
        return ""
    return t.message or "infeasible"
