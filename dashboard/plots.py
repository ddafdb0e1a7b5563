"""Plotly figures for the dashboard, built from the rows of :mod:`dashboard.queries`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]

from automl.core import Direction, ExperimentSpec
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


def _best_so_far(values: Sequence[float | None], maximize: bool) -> list[float | None]:
    out: list[float | None] = []
    best: float | None = None
    for v in values:
        if (
            v is not None
            and math.isfinite(v)
            and (best is None or (v > best if maximize else v < best))
        ):
            best = v
        out.append(best)
    return out


def history_figure(
    history: Sequence[tuple[int, float | None, str, float | None]], direction: str
) -> go.Figure:
    """Objective value per trial number, and the best value so far."""
    ok = [(n, v) for n, v, s, _ in history if s == "Succeeded" and v is not None]
    xs = [n for n, _ in ok]
    ys = [v for _, v in ok]
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=xs, y=ys, mode="markers", name="value"))
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=_best_so_far(ys, direction == Direction.MAXIMIZE.value),
            mode="lines",
            line={"shape": "hv"},
            name="best so far",
        )
    )
    fig.update_layout(
        title="Optimisation history", xaxis_title="trial", yaxis_title="objective", height=380
    )
    return fig


def _numeric(values: Sequence[Any]) -> tuple[list[Any], dict[str, Any]]:
    """Values for a parcoords dimension: numbers as is, others as category indexes."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return list(values), {}
    cats = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(cats)}
    return [index[str(v)] for v in values], {"tickvals": list(range(len(cats))), "ticktext": cats}


def parallel_figure(
    rows: Sequence[tuple[int, Mapping[str, Any], float | None, str]], spec: ExperimentSpec
) -> go.Figure:
    """Parallel coordinates of the parameters of succeeded trials, coloured by value."""
    rows = [r for r in rows if r[2] is not None][-_MAX_PLOT_TRIALS:]
    names = [p.name for p in spec.parameters]
    dims = []
    for name in names:
        vals, extra = _numeric([r[1].get(name) for r in rows])
        dims.append({"label": name, "values": vals, **extra})
    values = [r[2] for r in rows]
    dims.append({"label": spec.objective.metric, "values": values})
    fig = go.Figure(
        go.Parcoords(
            line={"color": values, "colorscale": "Viridis", "showscale": True}, dimensions=dims
        )
    )
    fig.update_layout(title="Parallel coordinates", height=420)
    return fig


def param_importances(
    rows: Sequence[tuple[int, Mapping[str, Any], float | None, str]],
    spec: ExperimentSpec,
    max_trials: int = 2000,
) -> dict[str, float]:
    """Parameter importances (Optuna's default evaluator) of the last succeeded trials.

    The study is rebuilt from the last ``max_trials`` stored trials; it needs at least 2.

    Returns an empty dict when there are too few trials or parameters to rank.
    """
    import optuna
    from optuna.trial import TrialState as OptunaState
    from optuna.trial import create_trial

    from search._space import SpaceCodec

    done = [r for r in rows if r[2] is not None and math.isfinite(r[2])][-max_trials:]
    if len(done) < 2 or not spec.parameters:
        return {}
    codec = SpaceCodec(spec.parameters)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = (
        optuna.study.StudyDirection.MAXIMIZE
        if spec.objective.type is Direction.MAXIMIZE
        else optuna.study.StudyDirection.MINIMIZE
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction=direction)
        frozen = []
        for _, params, value, _ in done:
            try:
                internal = codec.to_internal(params)
            except Exception:  # outside the space (edited spec): skip
                continue
            frozen.append(
                create_trial(
                    params=internal,
                    distributions={n: codec.distributions[n] for n in internal},
                    state=OptunaState.COMPLETE,
                    value=value,
                )
            )
        if len(frozen) < 2:
            return {}
        study.add_trials(frozen)
        try:
            imp = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError):
            return {}
    return {k: float(v) for k, v in imp.items()}


def importance_figure(importances: Mapping[str, float]) -> go.Figure:
    """Horizontal bars of parameter importances."""
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h"))
    fig.update_layout(title="Parameter importance", xaxis_title="importance", height=320)
    return fig


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
