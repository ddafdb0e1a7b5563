"""CMA-ES restarts (Katib's ``restart_strategy``: ipop, bipop) and their settings' errors."""

from __future__ import annotations

from typing import Any

import pytest

import automl
from automl.core import (
    AlgorithmSpec,
    Direction,
    ExperimentSpec,
    Objective,
    TrialRecord,
    TrialState,
)
from automl.errors import SpecError
from search import create_suggester, resolve_settings
from search._cmaes import RESTART_KEY, STATE_KEY


def _spec(**settings: Any) -> ExperimentSpec:
    return ExperimentSpec(
        name="cma",
        objective=Objective(type=Direction.MINIMIZE, metric="loss"),
        algorithm=AlgorithmSpec(name="cmaes", settings=settings),
        parameters=tuple(automl.double(-5, 5).model_copy(update={"name": n}) for n in ("x", "y")),
        seed=0,
    )


def plateau(x: float, y: float) -> float:
    """Zero on a disc that nearly fills the box, positive in its corners.

    CMA-ES converges there: its values have no spread left for 25 generations.
    """
    return max(0.0, x * x + y * y - 42.0)


def _run(spec: ExperimentSpec, n: int) -> list[TrialRecord]:
    suggester = create_suggester(spec)
    out = []
    for i in range(n):
        (s,) = suggester.suggest([f"t{i}"])
        rec = TrialRecord(
            id=f"t{i}",
            experiment_id="e",
            number=i,
            params=s.params,
            state=TrialState.SUCCEEDED,
            value=plateau(**s.params),
            attrs=s.attrs,
        )
        suggester.tell(rec)
        out.append(rec)
    return out


@pytest.mark.parametrize("strategy", ["ipop", "bipop"])
def test_restart_after_convergence(strategy: str) -> None:
    trials = _run(_spec(restart_strategy=strategy, popsize=4, inc_popsize=2), 260)
    restarts = [t.attrs.get(RESTART_KEY, 0) for t in trials]
    assert restarts == sorted(restarts)  # restarts only move forward
    assert max(restarts) >= 1, "CMA-ES converged on the plateau but never restarted"
    states = [t.attrs[STATE_KEY] for t in trials if STATE_KEY in t.attrs]
    first = next(s for s in states if s["restart"] == 1)
    assert first["popsize"] == 8  # the first restart is a large one: 4 x inc_popsize
    assert first["evals_large"] >= 4 * 25  # CMA-ES's flat-values rule: 25 generations of 4


def test_no_restart_strategy_keeps_one_run() -> None:
    trials = _run(_spec(popsize=4), 60)
    assert all(RESTART_KEY not in t.attrs for t in trials)


def test_restart_settings_are_typed_and_explained() -> None:
    settings = resolve_settings(_spec(restart_strategy="bipop", inc_popsize="3", popsize="6"))
    assert (settings["restart_strategy"], settings["inc_popsize"], settings["popsize"]) == (
        "bipop",
        3,
        6,
    )
    with pytest.raises(SpecError) as err:
        resolve_settings(_spec(restart_strategy="sometimes"))
    # The choice error itself, not a rewrite of it into "must be choice".
    assert str(err.value).count("algorithm.settings.restart_strategy") == 1
    assert "must be one of ['none', 'ipop', 'bipop']; got 'sometimes'" in str(err.value)
    with pytest.raises(SpecError, match=r"inc_popsize: must be an integer >= 1; got 0"):
        resolve_settings(_spec(restart_strategy="ipop", inc_popsize=0))
