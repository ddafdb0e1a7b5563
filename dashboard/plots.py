"""Plotly figures for the dashboard, built from the rows of :mod:`dashboard.queries`.

Every chart sends what a person can see, whatever the experiment's size: above a few hundred
trials it draws the best ones plus an even sample (and says so in its subtitle), aggregates the
rest (the best-so-far line, the per-step band of every trial's intermediate values), or, for
contours, a gridded surrogate instead of raw scatter. ``max_points=None`` (the page's "Draw every
trial" toggle) draws everything. All traces are SVG (no WebGL contexts to start), and every
figure keeps its zoom across live refreshes (``uirevision``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from automl.core import Direction, ExperimentSpec

# The figures a notebook also draws live in automl.plots (automl must not import the dashboard).
from automl.plots import (
    FAILED_STATES,
    MAX_LINES,
    MAX_POINTS,
    Row,
    _best_so_far,  # noqa: F401 - kept importable from here
    _numeric,  # noqa: F401 - kept importable from here
    _subtitle,
    best_steps,
    history_figure,
    importance_figure,
    integer_axis,
    is_log,
    is_numeric,
    parallel_figure,
    param_importances,
    sample,
    sample_note,
)
from dashboard.queries import Curves, ExperimentSummary, Queries, downsample

__all__ = [
    "MAX_LINES",
    "MAX_POINTS",
    "CurveView",
    "compare_figure",
    "contour_figure",
    "curves_figure",
    "curves_view",
    "history_figure",
    "importance_figure",
    "lineage_figure",
    "parallel_figure",
    "parallel_lines_figure",
    "param_importances",
    "settle",
    "slice_figure",
    "trial_curves_figure",
]

CURVE_LINES = 60  # curves drawn one by one above this many trials: the best, running, stopped
CONTOUR_POINTS = 300
GRID = 40
KNN_MAX = 1500  # up to this many trials the contour surface is a k-nearest-neighbour mean


def settle(fig: go.Figure) -> go.Figure:
    """Fixed margins (room for a bottom legend and a colour bar), no automatic expansion.

    Plotly otherwise measures legends and colour bars after a first draw and draws again with
    wider margins: on a page of six charts that doubled the browser's drawing time.
    """
    m = fig.layout.margin
    fig.update_layout(
        margin={
            "l": m.l if m.l is not None else 70,
            "r": m.r if m.r is not None else 150,
            "t": m.t if m.t is not None else 60,
            "b": m.b if m.b is not None else 110,
            "autoexpand": False,
        },
        # Streamlit draws each chart twice: once on mount, then again with a deep copy of the
        # figure (its theme applied on an effect). Without a data revision Plotly.react takes
        # every copied array for new data and recalculates the whole chart; with one it
        # compares the arrays by value. A figure whose data changes is a new element to
        # Streamlit (its id hashes the spec), so a constant revision is enough.
        datarevision=1,
    )
    # Tick labels are drawn inside fixed margins: Plotly's default ("hide past div") measures
    # every label with getBoundingClientRect after drawing, a forced layout of the page per label.
    fig.update_xaxes(ticklabeloverflow="allow")
    fig.update_yaxes(ticklabeloverflow="allow")
    return fig


# -- intermediate values -------------------------------------------------------------------------
@dataclass
class CurveView:
    """What the intermediate-values chart draws.

    Attributes:
        lines: The curves drawn one by one (all of them, or the chosen trials).
        kinds: ``finished``, ``early stopped``, ``failed`` or ``running`` per trial number.
        stopped_at: ``{number: (step, value)}`` where each early-stopped trial stopped.
        band: ``(step, mean, min, max, trials)`` over every trial (drawn when lines are a pick).
        total: Trials with intermediate values.
        cache: The incremental cursor to pass back on the next refresh.
    """

    lines: Curves
    kinds: dict[int, str]
    stopped_at: dict[int, tuple[float, float]]
    band: list[tuple[float, float, float, float, int]] = field(default_factory=list)
    total: int = 0
    cache: Curves | None = None


def _kind(state: str) -> str:
    if state == "EarlyStopped":
        return "early stopped"
    if state in FAILED_STATES:
        return "failed"
    if state in ("Running", "Created"):
        return "running"
    return "finished"


def curves_view(
    q: Queries,
    exp: ExperimentSummary,
    metric: str,
    hist: Sequence[tuple[int, float | None, str, float | None]],
    previous: Curves | None,
    draw_all: bool = False,
) -> CurveView:
    """The curves to draw for ``metric``; reads only what is new since ``previous``.

    Up to :data:`CURVE_LINES` trials every curve is drawn. Above, the best succeeded trials,
    the running ones and the last early-stopped and failed ones are drawn one by one and every
    trial is summarised by the per-step mean and range; ``draw_all`` draws every curve.
    """
    kinds = {n: _kind(s) for n, _, s, _ in hist}
    wanted: set[int] | None = None
    band: list[tuple[float, float, float, float, int]] = []
    if len(hist) > CURVE_LINES and not draw_all:
        maximize = exp.direction == Direction.MAXIMIZE.value
        ok = sorted(
            ((v, n) for n, v, s, _ in hist if s == "Succeeded" and v is not None),
            reverse=maximize,
        )
        by_kind = {k: sorted(n for n, kk in kinds.items() if kk == k) for k in set(kinds.values())}
        wanted = (
            {n for _, n in ok[: CURVE_LINES // 2]}
            | set(by_kind.get("running", [])[-CURVE_LINES // 4 :])
            | set(by_kind.get("early stopped", [])[-CURVE_LINES // 4 :])
            | set(by_kind.get("failed", [])[-CURVE_LINES // 10 :])
        )
        band = q.step_band(exp.id, metric)
    cache = q.curves_for(exp.id, metric, wanted, previous)
    lines = downsample(cache, 50, wanted)
    stopped_at = q.last_points(exp.id, metric)
    total = max((b[4] for b in band), default=len(lines.points))
    return CurveView(lines, kinds, stopped_at, band, total, cache)


def curves_figure(view: CurveView, metric: str, max_markers: int | None = MAX_POINTS) -> Any:
    """Intermediate values over the steps as each trial counted them.

    Curves of a kind share one trace (gaps between trials); each early-stopped trial is marked
    with an x at the step where it stopped; behind a pick of curves, the mean and the range of
    every trial per step.
    """
    styles = {
        "finished": {"width": 1, "color": "rgba(31,119,180,0.55)"},
        "running": {"width": 1.5, "color": "rgba(44,160,44,0.9)"},
        "early stopped": {"width": 1, "color": "rgba(214,39,40,0.55)", "dash": "dot"},
        "failed": {"width": 1, "color": "rgba(127,127,127,0.55)"},
    }
    fig = go.Figure()
    if view.band:
        steps = [b[0] for b in view.band]
        fig.add_trace(
            go.Scatter(
                x=steps + steps[::-1],
                y=[b[3] for b in view.band] + [b[2] for b in view.band][::-1],
                fill="toself",
                fillcolor="rgba(31,119,180,0.12)",
                line={"width": 0},
                hoverinfo="skip",
                name=f"all {view.total:,} trials: range",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=[b[1] for b in view.band],
                mode="lines",
                line={"color": "rgba(31,119,180,1)", "width": 2, "dash": "dash"},
                name=f"all {view.total:,} trials: mean",
                hovertemplate="step %{x}: mean %{y}<extra></extra>",
            )
        )
    groups: dict[str, tuple[list[float | None], list[float | None], list[str]]] = {
        k: ([], [], []) for k in styles
    }
    for number in sorted(view.lines.points):
        steps_n, values = view.lines.points[number]
        xs, ys, text = groups[view.kinds.get(number, "finished")]
        xs.extend([*steps_n, None])
        ys.extend([*values, None])
        text.extend([f"trial {number}"] * len(steps_n) + [""])
    # Few points: markers too (a trial that reported once is a point, not an invisible line).
    few = sum(len(xs) for xs, _, _ in groups.values()) <= 400
    for kind, (xs, ys, text) in groups.items():
        if xs:
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    text=text,
                    mode="lines+markers" if few else "lines",
                    marker={"size": 4, "color": styles[kind]["color"]},
                    name=kind,
                    line=styles[kind],
                    connectgaps=False,
                    hovertemplate="%{text}<br>step %{x}: %{y}<extra></extra>",
                )
            )
    marks = sample(sorted(view.stopped_at.items()), max_markers)
    if marks:
        fig.add_trace(
            go.Scatter(
                x=[s for _, (s, _) in marks],
                y=[v for _, (_, v) in marks],
                text=[f"trial {n}" for n, _ in marks],
                mode="markers",
                marker={"symbol": "x", "size": 6, "color": "rgba(214,39,40,0.5)"},
                name="stopped here",
                hovertemplate="%{text} stopped at step %{x}: %{y}<extra></extra>",
            )
        )
    all_steps = [s for st, _ in view.lines.points.values() for s in st] or [0.0, 1.0]
    fig.update_layout(
        title=f"Intermediate values: {metric}",
        xaxis={"title": "step", **integer_axis(min(all_steps), max(all_steps))},
        yaxis_title=metric,
        height=400,
        uirevision="curves",
        legend={"orientation": "h", "y": -0.2},
    )
    if view.band:
        _subtitle(
            fig,
            f"curves of {len(view.lines.points):,} of {view.total:,} trials (the best, running "
            "and last stopped) over the mean and range of all; tick 'Draw every trial' for all",
        )
    return fig


def trial_curves_figure(observations: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Every metric of one trial over its steps (implicit steps count 1, 2, ...)."""
    by_metric: dict[str, tuple[list[float], list[float]]] = {}
    for o in observations:
        xs, ys = by_metric.setdefault(o["metric"], ([], []))
        xs.append(o["step"] if o["step"] is not None else len(xs) + 1)
        ys.append(o["value"])
    fig = go.Figure()
    for m, (xs, ys) in sorted(by_metric.items()):
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=m))
    every = [x for xs, _ in by_metric.values() for x in xs] or [0, 1]
    fig.update_layout(
        title="Metrics",
        xaxis={"title": "step", **integer_axis(min(every), max(every))},
        height=360,
        uirevision="trial",
    )
    return fig


# -- search space --------------------------------------------------------------------------------
def _split(rows: Sequence[Row]) -> tuple[list[Row], list[Row]]:
    valued = [r for r in rows if r[2] is not None and math.isfinite(r[2])]
    return [r for r in valued if r[3] != "EarlyStopped"], [
        r for r in valued if r[3] == "EarlyStopped"
    ]


def _axis(spec: ExperimentSpec, name: str, values: Sequence[Any]) -> dict[str, Any]:
    if is_log(spec, name):
        return {"title": f"{name} (log)", "type": "log", "exponentformat": "e"}
    if not is_numeric(spec, name, values):
        return {"title": name, "type": "category"}
    return {"title": name}


def slice_figure(
    rows: Sequence[Row], spec: ExperimentSpec, param: str, max_points: int | None = MAX_POINTS
) -> go.Figure:
    """Objective value against one parameter (log axis for a log parameter).

    Succeeded trials are coloured by trial number, early-stopped ones are red crosses; above
    ``max_points`` the best fifth plus an even sample.
    """
    maximize = spec.objective.type is Direction.MAXIMIZE
    done, stopped = _split(rows)
    best = max_points and max_points // 5
    pts = sample(done, max_points, key=lambda r: r[2], best=best, maximize=maximize)
    spts = sample(stopped, max_points and max_points // 4)
    fig = go.Figure(
        go.Scatter(
            x=[r[1].get(param) for r in pts],
            y=[r[2] for r in pts],
            mode="markers",
            marker={
                "size": 6,
                "color": [r[0] for r in pts],
                "colorscale": "Blues",
                "showscale": True,
                "colorbar": {"title": {"text": "trial"}},
            },
            text=[f"trial {r[0]}" for r in pts],
            name="succeeded",
            hovertemplate="%{text}<br>%{x}: %{y}<extra></extra>",
        )
    )
    if spts:
        fig.add_trace(
            go.Scatter(
                x=[r[1].get(param) for r in spts],
                y=[r[2] for r in spts],
                mode="markers",
                marker={"symbol": "x", "size": 6, "color": "rgba(214,39,40,0.7)"},
                text=[f"trial {r[0]} (early stopped)" for r in spts],
                name="early stopped",
                hovertemplate="%{text}<br>%{x}: %{y}<extra></extra>",
            )
        )
    values = [r[1].get(param) for r in done + stopped]
    fig.update_layout(
        title=f"Slice: {param}",
        xaxis=_axis(spec, param, values),
        yaxis_title=spec.objective.metric,
        height=380,
        uirevision=f"slice:{param}",
        showlegend=bool(spts),
        legend={"orientation": "h", "y": -0.2},
    )
    _subtitle(
        fig,
        sample_note(
            len(pts) + len(spts), len(done) + len(stopped), "trials", "best and random sample"
        ),
    )
    return fig


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)] if hi > lo else [lo]


def _scale(spec: ExperimentSpec, name: str, values: Sequence[Any]) -> dict[str, Any]:
    """How one parameter maps onto a [0, 1] axis: position function and tick labels."""
    p = next((p for p in spec.parameters if p.name == name), None)
    if is_log(spec, name) and all(isinstance(v, (int, float)) and v > 0 for v in values):
        lo = math.log10(p.min) if p is not None and p.min else min(map(math.log10, values))
        hi = math.log10(p.max) if p is not None and p.max else max(map(math.log10, values))
        span = (hi - lo) or 1.0
        ticks = [float(e) for e in range(math.ceil(lo), math.floor(hi) + 1)] or [lo, hi]
        return {
            "label": f"{name} (log)",
            "pos": lambda v: (math.log10(v) - lo) / span,
            "ticks": [((t - lo) / span, f"{10.0**t:g}") for t in ticks],
        }
    if is_numeric(spec, name, values):
        nums = [float(v) for v in values]
        lo = p.min if p is not None and p.min is not None else min(nums, default=0.0)
        hi = p.max if p is not None and p.max is not None else max(nums, default=1.0)
        span = (hi - lo) or 1.0
        return {
            "label": name,
            "pos": lambda v: (float(v) - lo) / span,
            "ticks": [((t - lo) / span, f"{t:.4g}") for t in _ticks(lo, hi)],
        }
    cats = [str(v) for v in p.values] if p is not None and p.values else []
    cats += sorted({str(v) for v in values} - set(cats))
    k = max(1, len(cats) - 1)
    return {
        "label": name,
        "pos": lambda v: cats.index(str(v)) / k if len(cats) > 1 else 0.5,
        "ticks": [(i / k if len(cats) > 1 else 0.5, c) for i, c in enumerate(cats)],
    }


def parallel_lines_figure(
    rows: Sequence[Row], spec: ExperimentSpec, max_lines: int | None = MAX_LINES, bins: int = 6
) -> go.Figure:
    """Parallel coordinates drawn as SVG lines.

    Not Plotly's parcoords: that needs a WebGL context, which takes seconds to start under
    software rendering (a browser without a GPU) and froze the page.
    One axis per parameter (log parameters on log axes, categories spread along theirs) and one
    for the objective. Lines are coloured by value in ``bins`` quantile bins, one legend entry
    each, best on top; early-stopped trials are a dashed red entry, so a click on the legend
    hides or shows them. Above ``max_lines``, the best fifth plus an even sample.
    """
    maximize = spec.objective.type is Direction.MAXIMIZE
    valued = [r for r in rows if r[2] is not None and math.isfinite(r[2])]
    best = max_lines and max_lines // 5
    shown = sample(valued, max_lines, key=lambda r: r[2], best=best, maximize=maximize)
    names = [p.name for p in spec.parameters]
    scales = [
        _scale(spec, n, [r[1].get(n) for r in shown if r[1].get(n) is not None]) for n in names
    ]
    metric = spec.objective.metric
    vals = [float(r[2]) for r in shown if r[2] is not None]
    vlo, vhi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    vspan = (vhi - vlo) or 1.0
    scales.append(
        {
            "label": metric,
            "pos": lambda v: (float(v) - vlo) / vspan,
            "ticks": [((t - vlo) / vspan, f"{t:.4g}") for t in _ticks(vlo, vhi)],
        }
    )
    dims = len(scales)

    def line(r: Row) -> tuple[list[float | None], list[float | None]]:
        ys: list[float | None] = []
        for name, sc in zip([*names, metric], scales, strict=True):
            v = r[2] if name == metric else r[1].get(name)
            try:
                ys.append(None if v is None else float(sc["pos"](v)))
            except (ValueError, TypeError):
                ys.append(None)
        return [*range(dims), None], [*ys, None]

    fig = go.Figure()
    done = [r for r in shown if r[3] != "EarlyStopped"]
    order = sorted(done, key=lambda r: float(r[2] or 0.0), reverse=not maximize)  # best last
    colors = ["#440154", "#414487", "#2a788e", "#22a884", "#7ad151", "#fde725"]
    step = max(1, math.ceil(len(order) / bins))
    for i in range(0, len(order), step):
        chunk = order[i : i + step]
        xs: list[float | None] = []
        ys: list[float | None] = []
        text: list[str] = []
        for r in chunk:
            lx, ly = line(r)
            xs += lx
            ys += ly
            text += [f"trial {r[0]}: {metric} {r[2]:.4g}"] * dims + [""]
        lo_v = min(float(r[2] or 0.0) for r in chunk)
        hi_v = max(float(r[2] or 0.0) for r in chunk)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                text=text,
                mode="lines",
                line={"width": 1, "color": colors[min(len(colors) - 1, i // step)]},
                opacity=0.6,
                name=f"{lo_v:.4g} to {hi_v:.4g}",
                hovertemplate="%{text}<extra></extra>",
            )
        )
    stopped = [r for r in shown if r[3] == "EarlyStopped"]
    if stopped:
        xs, ys, text = [], [], []
        for r in stopped:
            lx, ly = line(r)
            xs += lx
            ys += ly
            text += [f"trial {r[0]} (early stopped): {r[2]:.4g}"] * dims + [""]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                text=text,
                mode="lines",
                line={"width": 1, "color": "rgba(214,39,40,0.6)", "dash": "dot"},
                name=f"early stopped ({len(stopped):,})",
                hovertemplate="%{text}<extra></extra>",
            )
        )
    annotations = []
    shapes = []
    for i, sc in enumerate(scales):
        shapes.append(
            {"type": "line", "x0": i, "x1": i, "y0": 0, "y1": 1, "line": {"color": "#444"}}
        )
        for y, label in sc["ticks"]:
            annotations.append(
                {
                    "x": i,
                    "y": y,
                    "text": label,
                    "showarrow": False,
                    "xanchor": "right",
                    "xshift": -4,
                    "font": {"size": 10},
                    "bgcolor": "rgba(255,255,255,0.85)",
                }
            )
    fig.update_layout(
        title="Parallel coordinates",
        xaxis={
            "tickvals": list(range(dims)),
            "ticktext": [sc["label"] for sc in scales],
            "side": "top",
            "range": [-0.6, dims - 0.6],
            "showgrid": False,
            "zeroline": False,
            "fixedrange": True,
        },
        yaxis={"visible": False, "range": [-0.05, 1.05], "fixedrange": True},
        shapes=shapes,
        annotations=annotations,
        height=460,
        margin={"t": 130},
        plot_bgcolor="white",
        uirevision="parallel",
        legend={
            "title": {"text": f"{metric} (click to hide or show):"},
            "orientation": "h",
            "y": -0.04,
        },
    )
    _subtitle(
        fig,
        sample_note(len(shown), len(valued), "trials", "the best and a random sample"),
    )
    return fig


def _coords(spec: ExperimentSpec, name: str, values: Sequence[Any]) -> tuple[list[float], Any]:
    """Grid coordinates of a parameter's values: log10 for log, index for categories."""
    if is_log(spec, name) and all(isinstance(v, (int, float)) and v > 0 for v in values):
        return [math.log10(v) for v in values], "log"
    if is_numeric(spec, name, values):
        return [float(v) for v in values], "linear"
    cats = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(cats)}
    return [float(index[str(v)]) for v in values], cats


def surrogate_grid(
    x: Sequence[float], y: Sequence[float], z: Sequence[float], grid: int = GRID, k: int = 8
) -> tuple[list[float], list[float], list[list[float]]]:
    """A smooth surface over ``(x, y)``: the grid's x, y and z rows.

    Up to :data:`KNN_MAX` trials, each grid node gets the distance-weighted mean of the ``k``
    nearest trials (coordinates scaled to [0, 1]). Above, each cell the mean of the trials in
    it and its 8 neighbours (one pass over the trials, however many); cells with no trial near
    are left empty (None).
    """
    import numpy as np

    pts = np.column_stack([np.asarray(x, float), np.asarray(y, float)])
    zs = np.asarray(z, float)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    gx = np.linspace(lo[0], hi[0], grid)
    gy = np.linspace(lo[1], hi[1], grid)
    if len(zs) > KNN_MAX:
        cell = np.clip(np.rint((pts - lo) / span * (grid - 1)).astype(int), 0, grid - 1)
        flat = cell[:, 1] * grid + cell[:, 0]
        sums = np.bincount(flat, weights=zs, minlength=grid * grid).reshape(grid, grid)
        counts = np.bincount(flat, minlength=grid * grid).reshape(grid, grid).astype(float)
        ps, pc = np.pad(sums, 1), np.pad(counts, 1)
        s3 = sum(ps[i : i + grid, j : j + grid] for i in range(3) for j in range(3))
        c3 = sum(pc[i : i + grid, j : j + grid] for i in range(3) for j in range(3))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s3 / c3
        rows = [
            [None if c == 0 else float(v) for v, c in zip(r, cr, strict=True)]
            for r, cr in zip(mean, c3, strict=True)
        ]
        return gx.tolist(), gy.tolist(), rows  # type: ignore[return-value]
    mx, my = np.meshgrid(gx, gy)
    nodes = (np.column_stack([mx.ravel(), my.ravel()]) - lo) / span
    scaled = (pts - lo) / span
    d2 = ((nodes[:, None, :] - scaled[None, :, :]) ** 2).sum(axis=2)
    kk = min(k, len(zs))
    near = np.argpartition(d2, kk - 1, axis=1)[:, :kk]
    dn = np.take_along_axis(d2, near, axis=1)
    w = 1.0 / (np.sqrt(dn) + 1e-3)
    surf = (w * zs[near]).sum(axis=1) / w.sum(axis=1)
    return gx.tolist(), gy.tolist(), surf.reshape(grid, grid).tolist()


def contour_figure(
    rows: Sequence[Row],
    spec: ExperimentSpec,
    px: str,
    py: str,
    max_points: int | None = CONTOUR_POINTS,
) -> go.Figure:
    """Objective over two parameters: a gridded surrogate's contours, and a sample of trials.

    The surface is the distance-weighted mean of the nearest trials at each node of a
    :data:`GRID` x :data:`GRID` grid (log parameters on log axes, categories as rows/columns);
    the dots are the best trials plus an even sample, the star the best trial.
    """
    maximize = spec.objective.type is Direction.MAXIMIZE
    done, _ = _split(rows)
    done = [r for r in done if r[1].get(px) is not None and r[1].get(py) is not None]
    fig = go.Figure()
    if not done:
        fig.update_layout(title=f"Contour: {px} x {py}", height=440)
        return fig
    xv = [r[1][px] for r in done]
    yv = [r[1][py] for r in done]
    cx, kx = _coords(spec, px, xv)
    cy, ky = _coords(spec, py, yv)
    z = [float(r[2]) for r in done if r[2] is not None]
    if len(done) >= 3:
        gx, gy, zz = surrogate_grid(cx, cy, z, grid=GRID)

        def back(g: list[float], kind: Any) -> list[Any]:
            return [10**v for v in g] if kind == "log" else g

        fig.add_trace(
            go.Contour(
                x=back(gx, kx) if not isinstance(kx, list) else gx,
                y=back(gy, ky) if not isinstance(ky, list) else gy,
                z=zz,
                colorscale="Viridis",
                reversescale=not maximize,
                ncontours=15,
                colorbar={"title": {"text": spec.objective.metric}},
                connectgaps=True,
                hovertemplate=f"{px} %{{x}}<br>{py} %{{y}}<br>surrogate %{{z}}<extra></extra>",
                name="surrogate",
            )
        )
    pts = sample(
        done,
        max_points,
        key=lambda r: r[2],
        best=max_points and max_points // 5,
        maximize=maximize,
    )

    def pos(r: Row, name: str, kind: Any) -> Any:
        v = r[1][name]
        return float(kind.index(str(v))) if isinstance(kind, list) else v

    fig.add_trace(
        go.Scatter(
            x=[pos(r, px, kx) for r in pts],
            y=[pos(r, py, ky) for r in pts],
            mode="markers",
            marker={"color": "rgba(0,0,0,0.55)", "size": 4},
            text=[f"trial {r[0]}: {r[2]:.4g}" for r in pts],
            hovertemplate="%{text}<extra></extra>",
            name="trials",
        )
    )
    top = (max if maximize else min)(done, key=lambda r: float(r[2] or 0.0))
    fig.add_trace(
        go.Scatter(
            x=[pos(top, px, kx)],
            y=[pos(top, py, ky)],
            mode="markers",
            marker={"symbol": "star", "size": 14, "color": "#d62728", "line": {"width": 1}},
            name=f"best (trial {top[0]})",
        )
    )

    def axis(name: str, kind: Any) -> dict[str, Any]:
        if kind == "log":
            return {"title": f"{name} (log)", "type": "log", "exponentformat": "e"}
        if isinstance(kind, list):
            return {"title": name, "tickvals": list(range(len(kind))), "ticktext": kind}
        return {"title": name}

    fig.update_layout(
        title=f"Contour: {px} x {py}",
        xaxis=axis(px, kx),
        yaxis=axis(py, ky),
        height=460,
        uirevision=f"contour:{px}:{py}",
        legend={"orientation": "h", "y": -0.2},
    )
    _subtitle(
        fig,
        (
            f"surface: distance-weighted mean of the 8 nearest of {len(done):,} trials"
            if len(done) <= KNN_MAX
            else f"surface: mean of the {len(done):,} trials in each cell and its neighbours"
        )
        + f" on a {GRID}x{GRID} grid",
        sample_note(len(pts), len(done), "trials as dots"),
    )
    return fig


# -- compare, lineage ----------------------------------------------------------------------------
def compare_figure(
    histories: Mapping[str, tuple[Sequence[tuple[int, float | None, str, float | None]], str]],
    metrics: Mapping[str, str] | None = None,
) -> go.Figure:
    """Best value so far of several experiments.

    Experiments that minimise and experiments that maximise are never drawn on one axis: with
    both, the figure has one panel per direction, each titled with its direction and metrics.
    """
    metrics = metrics or {}
    directions = sorted({d for _, d in histories.values()})
    fig = make_subplots(
        rows=len(directions),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=[
            f"{d}: "
            + ", ".join(
                sorted(
                    {metrics.get(n, "objective") for n, (_, dd) in histories.items() if dd == d}
                )
            )
            for d in directions
        ],
    )
    last = 0
    for name, (hist, direction) in histories.items():
        ok = [(n, v) for n, v, s, _ in hist if s == "Succeeded" and v is not None]
        xs, ys = best_steps(ok, direction == Direction.MAXIMIZE.value)
        last = max([last, *xs])
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"shape": "hv"},
                name=f"{name} ({direction} {metrics.get(name, 'objective')})",
            ),
            row=directions.index(direction) + 1,
            col=1,
        )
    for i in range(1, len(directions) + 1):  # values over orders of magnitude: log axis
        ys = [y for t in fig.data if t.yaxis == ("y" if i == 1 else f"y{i}") for y in t.y]
        if ys and min(ys) > 0 and max(ys) / min(ys) >= 100:
            fig.update_yaxes(type="log", row=i, col=1)
    fig.update_xaxes(title_text="trial number", row=len(directions), col=1)
    fig.update_xaxes(**integer_axis(0, last))
    for i, d in enumerate(directions, 1):
        fig.update_yaxes(title_text=f"best so far ({d})", row=i, col=1)
    fig.update_layout(
        title="Best value so far"
        + (" (minimize and maximize on separate axes)" if len(directions) > 1 else ""),
        height=400 if len(directions) == 1 else 620,
        uirevision="compare",
    )
    return fig


def best_bar_figure(
    best: Mapping[str, float | None], directions: Mapping[str, str] | None = None
) -> go.Figure:
    """Best value of each experiment (with its direction in the bar's name)."""
    directions = directions or {}
    items = [(k, v) for k, v in best.items() if v is not None]
    fig = go.Figure(
        go.Bar(
            x=[f"{k} ({directions[k]})" if k in directions else k for k, _ in items],
            y=[v for _, v in items],
        )
    )
    fig.update_layout(title="Best values", height=320, uirevision="best")
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
        title="PBT lineage",
        xaxis={"title": "generation", "tickformat": ",d"},
        yaxis_title="objective",
        height=400,
        uirevision="lineage",
    )
    return fig
