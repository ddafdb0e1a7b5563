"""Pieces the dashboard's pages share: number and link formats, paced charts, tables."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import plots
from dashboard.pace import paced_chart
from dashboard.queries import Queries
from dashboard.remote import RemoteQueries

__all__ = [
    "CSS",
    "AnyQueries",
    "cell",
    "chart",
    "fmt",
    "link",
    "metrics_table",
    "params_table",
    "summaries",
]

#: A store's queries, or a server's (``automl dashboard --server``).
AnyQueries = Queries | RemoteQueries


def fmt(v: float | None) -> str:
    """A number with 6 significant digits, or "-"."""
    return "-" if v is None else f"{v:.6g}"


def link(**params: str) -> str:
    """A link to a dashboard page by its query parameters (``?trial=ID``...)."""
    return "?" + "&".join(f"{k}={v}" for k, v in params.items())


# Streamlit's "Deploy" button (and its menu) means nothing here: hide it. ``automl dashboard``
# also starts the server with ``--client.toolbarMode minimal``; this covers ``streamlit run``.
CSS = """
<style>
[data-testid="stAppDeployButton"], .stAppDeployButton, [data-testid="stDeployButton"] {
  display: none !important;
}
/* three short links: a narrow sidebar leaves the tables room in a 1,400 px window */
section[data-testid="stSidebar"] { width: 220px !important; min-width: 220px !important; }
[data-testid="stMainBlockContainer"] { padding-left: 2.5rem; padding-right: 2.5rem; }
</style>
"""


def chart(fig: Any, key: str) -> None:
    """A Plotly chart at full width with fixed margins, drawn when the browser asks for it.

    See :mod:`dashboard.pace`: the charts of a page reach the browser one at a time, so no
    main-thread task draws two of them.
    """
    fig = plots.settle(fig)
    paced_chart(
        lambda: st.plotly_chart(fig, width="stretch", key=key), key, fig.layout.height or None
    )


def cell(v: Any) -> str:
    """A cell of a readable table: numbers with 6 significant digits, everything else as text."""
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, float):
        return fmt(v)
    return str(v)


def params_table(params: dict[str, Any]) -> pd.DataFrame:
    """``parameter | value`` rows."""
    return pd.DataFrame({"parameter": list(params), "value": [cell(v) for v in params.values()]})


def metrics_table(raw: dict[str, Any], spec: Any) -> pd.DataFrame:
    """``metric | strategy | value | min | max | latest`` rows.

    Each value is labelled with how it was reduced from the trial's observations (the spec's
    metric strategy: ``min``, ``max`` or ``latest``).
    """
    rows = []
    for name, summary in raw.items():
        strategy = spec.objective.strategy(name).value if spec is not None else "latest"
        if isinstance(summary, (list, tuple)) and len(summary) == 3:
            lo, hi, latest = summary
            value = {"min": lo, "max": hi, "latest": latest}[strategy]
        else:
            lo = hi = latest = value = summary
        rows.append(
            {
                "metric": name,
                "strategy": strategy,
                "value": cell(value),
                "min": cell(lo),
                "max": cell(hi),
                "latest": cell(latest),
            }
        )
    return pd.DataFrame(rows, columns=["metric", "strategy", "value", "min", "max", "latest"])


def summaries(record: Any) -> dict[str, list[float]]:
    """A trial record's metric summaries as ``[min, max, latest]`` lists."""
    return {k: [m.min, m.max, m.latest] for k, m in record.metrics.items()}
