"""The experiment page's section for several objectives and constraints.

Two objectives: the Pareto front as a scatter (front members joined, infeasible trials as red
crosses); three: a 3-D scatter. Below it, the hypervolume of the feasible front after each trial,
against the default reference point of :mod:`automl._pareto_plots` (printed in the chart's
title). A single-objective experiment with constraints gets the count of infeasible trials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from automl import plots
from automl.core._pareto import feasible

__all__ = ["pareto_section"]


def pareto_section(q: Any, e: Any, chart: Callable[[Any, str], None]) -> None:
    """Draw the section for experiment summary ``e`` (nothing for one plain objective)."""
    spec = e.spec
    if not spec.multi_objective and not spec.constraints:
        return
    trials = q.trials(e.id)
    if spec.constraints:
        bad = sum(1 for t in trials if t.state.value == "Succeeded" and not feasible(t))
        rules = ", ".join(c.text for c in spec.constraints)
        st.caption(f"Constraints: {rules} · {bad} infeasible trials (never best)")
    if not spec.multi_objective:
        return
    st.subheader("Pareto front")
    chart(plots.pareto_figure(spec, trials), "pareto")
    chart(plots.hypervolume_figure(spec, trials), "hypervolume")
