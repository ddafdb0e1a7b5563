"""Plotly figures for the dashboard, built from the rows of :mod:`dashboard.queries`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]

from automl.core import Direction

# The figures a notebook also draws live in automl.plots (automl must not import the dashboard).
from automl.plots import (
    _best_so_far,
    _numeric,  # noqa: F401 - kept importable from here
    history_figure,
    importance_figure,
    parallel_figure,
    param_importances,
)
from dashboard.queries import Curves

__all__ = [
    "compare_figure",
    "contour_figure",
    "curves_figure",
    "history_figure",
    "importance_figure",
    "lineage_figure",
    "parallel_figure",
    "param_importances",
    "slice_figure",
]

_MAX_PLOT_TRIALS = 2000


def slice_figure(
    rows: Sequence[tuple[int, Mapping[str, Any], float | None, str]], param: str, metric: str
) -> go.Figure:
    """Objective value against one parameter."""
    rows = [r for r in rows if r[2] is not None]
    fig = go.Figure(
        go.Scattergl(
            x=[r[1].get(param) for r in rows],
            y=[r[2] for r in rows],
            mode="markers",
            marker={"color": [r[0] for r in rows], "colorscale": "Blues", "showscale": True},
            text=[f"trial {r[0]}" for r in rows],
        )
    )
    fig.update_layout(title=f"Slice: {param}", xaxis_title=param, yaxis_title=metric, height=360)
    return fig


def contour_figure(
    rows: Sequence[tuple[int, Mapping[str, Any], float | None, str]], px: str, py: str
) -> go.Figure:
    """Objective value over two parameters (contour of the points, plus the points)."""
    rows = [r for r in rows if r[2] is not None][-_MAX_PLOT_TRIALS:]
    xs = [r[1].get(px) for r in rows]
    ys = [r[1].get(py) for r in rows]
    zs = [r[2] for r in rows]
    fig = go.Figure()
    numeric = all(isinstance(v, (int, float)) for v in xs + ys)
    if numeric and len(rows) >= 3:
        fig.add_trace(
            go.Contour(x=xs, y=ys, z=zs, colorscale="Viridis", connectgaps=True, opacity=0.7)
        )
    fig.add_trace(
        go.Scatter(x=xs, y=ys, mode="markers", marker={"color": "black", "size": 5}, name="trials")
    )
    fig.update_layout(title=f"Contour: {px} x {py}", xaxis_title=px, yaxis_title=py, height=420)
    return fig


def curves_figure(
    curves: Curves, metric: str, stopped: set[int] | None = None, failed: set[int] | None = None
) -> go.Figure:
    """Intermediate values of every trial on one chart; early-stopped trials marked with an x.

    All curves of a kind share one WebGL trace (gaps between trials), so thousands of trials
    stay cheap to build and to draw; hovering a point names its trial.
    """
    stopped = stopped or set()
    failed = failed or set()
    groups: dict[str, tuple[list[float | None], list[float | None], list[str]]] = {
        "finished": ([], [], []),
        "early stopped": ([], [], []),
        "failed": ([], [], []),
    }
    for number in sorted(curves.points):
        steps, values = curves.points[number]
        kind = (
            "early stopped" if number in stopped else "failed" if number in failed else "finished"
        )
        xs, ys, text = groups[kind]
        xs.extend([*steps, None])
        ys.extend([*values, None])
        text.extend([f"trial {number}"] * len(steps) + [""])
    styles = {
        "finished": {"width": 1, "color": "rgba(31,119,180,0.5)"},
        "early stopped": {"width": 1, "color": "rgba(214,39,40,0.5)", "dash": "dot"},
        "failed": {"width": 1, "color": "rgba(127,127,127,0.5)"},
    }
    fig = go.Figure()
    for kind, (xs, ys, text) in groups.items():
        if xs:
            fig.add_trace(
                go.Scattergl(
                    x=xs,
                    y=ys,
                    text=text,
                    mode="lines",
                    name=kind,
                    line=styles[kind],
                    hovertemplate="%{text}<br>step %{x}: %{y}<extra></extra>",
                )
            )
    ends = [curves.points[n] for n in sorted(stopped) if curves.points.get(n, ([], []))[0]]
    if ends:
        fig.add_trace(
            go.Scatter(
                x=[s[-1] for s, _ in ends],
                y=[v[-1] for _, v in ends],
                mode="markers",
                marker={"symbol": "x", "size": 9, "color": "red"},
                name="stopped here",
            )
        )
    fig.update_layout(
        title=f"Intermediate values: {metric}", xaxis_title="step", yaxis_title=metric, height=400
    )
    return fig


def trial_curves_figure(observations: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Every metric of one trial over its steps."""
    by_metric: dict[str, tuple[list[float], list[float]]] = {}
    for o in observations:
        xs, ys = by_metric.setdefault(o["metric"], ([], []))
        xs.append(o["step"] if o["step"] is not None else len(xs))
        ys.append(o["value"])
    fig = go.Figure()
    for m, (xs, ys) in sorted(by_metric.items()):
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=m))
    fig.update_layout(title="Metrics", xaxis_title="step", height=360)
    return fig


def compare_figure(
    histories: Mapping[str, tuple[Sequence[tuple[int, float | None, str, float | None]], str]],
) -> go.Figure:
    """Best value so far of several experiments on one chart."""
    fig = go.Figure()
    for name, (hist, direction) in histories.items():
        ok = [(n, v) for n, v, s, _ in hist if s == "Succeeded" and v is not None]
        fig.add_trace(
            go.Scatter(
                x=[n for n, _ in ok],
                y=_best_so_far([v for _, v in ok], direction == Direction.MAXIMIZE.value),
                mode="lines",
                line={"shape": "hv"},
                name=name,
            )
        )
    fig.update_layout(
        title="Best value so far", xaxis_title="trial", yaxis_title="objective", height=400
    )
    return fig


def best_bar_figure(best: Mapping[str, float | None]) -> go.Figure:
    """Best value of each experiment."""
    items = [(k, v) for k, v in best.items() if v is not None]
    fig = go.Figure(go.Bar(x=[k for k, _ in items], y=[v for _, v in items]))
    fig.update_layout(title="Best values", height=320)
    return fig


def lineage_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """PBT lineage: trials by generation (x) and value (y), edges from parent to child."""
    pos = {r["id"]: (r.get("generation") or 0, r.get("value")) for r in rows}
    ex: list[float | None] = []
    ey: list[float | None] = []
    for r in rows:
        parent = r.get("parent")
        if parent and parent in pos and parent != r["id"]:
            px, py = pos[parent]
            cx, cy = pos[r["id"]]
            if py is not None and cy is not None:
                ex += [px, cx, None]
                ey += [py, cy, None]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=ex, y=ey, mode="lines", line={"width": 1, "color": "#999"}, name="parent")
    )
    fig.add_trace(
        go.Scatter(
            x=[r.get("generation") for r in rows],
            y=[r.get("value") for r in rows],
            mode="markers",
            text=[f"trial {r['number']} ({r['id']})" for r in rows],
            name="trials",
        )
    )
    fig.update_layout(
        title="PBT lineage", xaxis_title="generation", yaxis_title="objective", height=400
    )
    return fig
