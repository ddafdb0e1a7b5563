"""Plotly figures of an experiment, for notebooks (and the dashboard, which reuses them).

Each helper takes a :class:`automl.TuneResult` or an experiment name (read through ``client``, or
a :class:`automl.Client` on the default store) and returns a ``plotly.graph_objects.Figure``,
which Jupyter renders inline::

    from automl import plots

    result = automl.tune(...)
    plots.history(result)
    plots.parallel_coordinates("my-experiment", client=automl.Client("sqlite:///a.db"))

plotly is imported when a figure is built (``pip install 'automl[notebooks]'``); importing this
module costs nothing. The figure builders that work on plain rows (``history_figure``,
``parallel_figure``, ``param_importances``, ``importance_figure``) are what the dashboard uses.
"""

from __future__ import annotations

import atexit
import html
import math
import os
import random
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from automl._pareto_plots import (
    hypervolume,
    hypervolume_figure,
    hypervolume_history,
    pareto_figure,
    pareto_front,
)
from automl.core import Direction, Distribution, ExperimentSpec, ParameterType
from automl.errors import AutoMLError

if TYPE_CHECKING:
    from automl._api import Client, TuneResult

__all__ = [
    "history",
    "history_figure",
    "hypervolume",
    "hypervolume_figure",
    "hypervolume_history",
    "importance",
    "importance_figure",
    "intermediate_values",
    "parallel_coordinates",
    "parallel_figure",
    "param_importances",
    "pareto_figure",
    "pareto_front",
    "summary_html",
]

# What a chart draws at most unless asked for everything: a person cannot see more points, and
# the browser (SVG, or WebGL under software rendering) freezes on tens of thousands.
MAX_POINTS = 300
MAX_LINES = 300
FAILED_STATES = ("Failed", "Killed", "MetricsUnavailable")

# (number, params, value, state) of one trial, as the figure builders take them.
Row = tuple[int, Mapping[str, Any], float | None, str]


def _go() -> Any:
    try:
        import plotly.graph_objects as go  # type: ignore[import-untyped]  # no type information
    except ImportError as exc:
        raise AutoMLError("plots need plotly: pip install 'automl[notebooks]'") from exc
    return go


# -- sampling -----------------------------------------------------------------------------------
def sample(
    items: Sequence[Any],
    limit: int | None,
    key: Any = None,
    best: int | None = None,
    maximize: bool = False,
) -> list[Any]:
    """At most ``limit`` of ``items``: the ``best`` by ``key`` plus an even random sample.

    The sample is deterministic (seeded by the number of items) and keeps the items' order, so
    a chart redrawn with the same data draws the same points. ``limit=None`` keeps everything.
    """
    n = len(items)
    if limit is None or n <= limit:
        return list(items)
    keep: set[int] = set()
    if key is not None and best:
        order = sorted(range(n), key=lambda i: key(items[i]), reverse=maximize)
        keep.update(order[: min(best, limit)])
    rest = [i for i in range(n) if i not in keep]
    keep.update(random.Random(n).sample(rest, max(0, limit - len(keep))))
    return [items[i] for i in sorted(keep)]


def sample_note(shown: int, total: int, what: str = "trials", how: str = "") -> str:
    """The subtitle a sampled chart carries (empty when it shows everything)."""
    if shown >= total:
        return ""
    how = f" ({how})" if how else ""
    return f"showing {shown:,} of {total:,} {what}{how}; tick 'Draw every trial' for all"


def _subtitle(fig: Any, *notes: str) -> None:
    text = " · ".join(n for n in notes if n)
    if text:
        fig.update_layout(title={"subtitle": {"text": text}}, margin={"t": 90})


def integer_axis(lo: float, hi: float) -> dict[str, Any]:
    """A linear axis of integers (trial numbers, steps): no fractional ticks."""
    axis: dict[str, Any] = {"tickformat": ",d", "hoverformat": ",d"}
    if hi - lo <= 20:
        axis["dtick"] = 1
        axis["tick0"] = 0
    return axis


# -- parameter scales ----------------------------------------------------------------------------
def is_log(spec: ExperimentSpec, name: str) -> bool:
    """Whether parameter ``name`` is searched on a log scale (logUniform or logNormal)."""
    for p in spec.parameters:
        if p.name == name:
            return p.distribution in (Distribution.LOG_UNIFORM, Distribution.LOG_NORMAL)
    return False


def _param(spec: ExperimentSpec, name: str) -> Any:
    return next((p for p in spec.parameters if p.name == name), None)


def is_numeric(spec: ExperimentSpec, name: str, values: Sequence[Any] = ()) -> bool:
    """Whether a parameter is drawn on a numeric axis (int, double, or numeric discrete)."""
    p = _param(spec, name)
    if p is not None and p.type in (ParameterType.INT, ParameterType.DOUBLE):
        return True
    vals = values or (p.values if p is not None else ())
    return bool(vals) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals
    )


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick positions (log10 units) and labels (real values) for a log axis drawn linearly."""
    a, b = math.floor(lo), math.ceil(hi)
    step = max(1, math.ceil((b - a) / 8))
    vals = [float(e) for e in range(a, b + 1, step)]
    return vals, [f"{10.0**e:g}" for e in vals]


# -- figure builders on plain rows (shared with the dashboard) ---------------------------------
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


def best_steps(
    points: Sequence[tuple[int, float]], maximize: bool
) -> tuple[list[int], list[float]]:
    """The best-so-far line of ``(number, value)`` points, only where it changes (and the end)."""
    xs: list[int] = []
    ys: list[float] = []
    for (n, _), b in zip(points, _best_so_far([v for _, v in points], maximize), strict=True):
        if b is None:
            continue
        if not ys or b != ys[-1]:
            xs.append(n)
            ys.append(b)
    if points and xs and xs[-1] != points[-1][0]:
        xs.append(points[-1][0])
        ys.append(ys[-1])
    return xs, ys


def history_figure(
    history: Sequence[tuple[int, float | None, str, float | None]],
    direction: str,
    max_points: int | None = MAX_POINTS,
) -> Any:
    """Objective value per trial number and the best value so far.

    The best-so-far line uses every succeeded trial; the points are the best ones plus an even
    sample when there are more than ``max_points`` (None: all). Early-stopped trials are red
    crosses at their value; failed, killed and running trials are ticks along the bottom. The x
    axis counts trials (integers).
    """
    go = _go()
    maximize = direction == Direction.MAXIMIZE.value
    ok = [(n, v) for n, v, s, _ in history if s == "Succeeded" and v is not None]
    stopped = [(n, v) for n, v, s, _ in history if s == "EarlyStopped"]
    failed = [n for n, _, s, _ in history if s in FAILED_STATES]
    running = [n for n, _, s, _ in history if s in ("Running", "Created")]
    pts = sample(
        ok, max_points, key=lambda p: p[1], best=max_points and max_points // 5, maximize=maximize
    )
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[n for n, _ in pts],
            y=[v for _, v in pts],
            mode="markers",
            marker={"size": 5, "color": "rgba(31,119,180,0.6)"},
            name="succeeded",
            hovertemplate="trial %{x}: %{y}<extra></extra>",
        )
    )
    bx, by = best_steps(ok, maximize)
    fig.add_trace(
        go.Scatter(
            x=bx,
            y=by,
            mode="lines",
            line={"shape": "hv", "color": "#d62728" if maximize else "#2ca02c", "width": 2},
            name="best so far",
            hovertemplate="best after trial %{x}: %{y}<extra></extra>",
        )
    )
    st_pts = sample([p for p in stopped if p[1] is not None], max_points and max_points // 4)
    if st_pts:
        fig.add_trace(
            go.Scatter(
                x=[n for n, _ in st_pts],
                y=[v for _, v in st_pts],
                mode="markers",
                marker={"symbol": "x", "size": 6, "color": "rgba(214,39,40,0.45)"},
                name="early stopped",
                hovertemplate="trial %{x} (early stopped): %{y}<extra></extra>",
            )
        )
        fig.data = (fig.data[-1], *fig.data[:-1])  # behind the succeeded trials
    rug: list[tuple[str, list[int], dict[str, Any]]] = [
        ("early stopped (no value)", [n for n, v in stopped if v is None], {"color": "#d62728"}),
        ("failed", failed, {"color": "#7f7f7f"}),
        ("running", running, {"color": "#1f77b4"}),
    ]
    for name, numbers, style in rug:
        shown = sample(numbers, max_points and max_points // 2)
        if shown:
            fig.add_trace(
                go.Scatter(
                    x=shown,
                    y=[0.02] * len(shown),
                    yaxis="y2",
                    mode="markers",
                    marker={"symbol": "line-ns-open", "size": 10, **style},
                    name=name,
                    hovertemplate=f"trial %{{x}} ({name})<extra></extra>",
                )
            )
    numbers = [h[0] for h in history] or [0]
    clip = ""
    drawn = [v for _, v in pts] + [v for _, v in st_pts if v is not None]
    if len(drawn) >= 50 and min(drawn) > 0 and max(drawn) / min(drawn) >= 100:
        # Values over orders of magnitude: on a linear axis the best-so-far line would lie
        # flat along the bottom.
        fig.update_yaxes(type="log")
        clip = "log y axis"
    fig.update_layout(
        title="Optimisation history",
        xaxis={"title": "trial number", **integer_axis(min(numbers), max(numbers))},
        yaxis_title="objective",
        yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
        height=380,
        uirevision="history",
        legend={"orientation": "h", "y": -0.2},
    )
    _subtitle(
        fig,
        sample_note(len(pts), len(ok), "succeeded trials", "the best and a random sample"),
        f"{len(stopped):,} early stopped, {len(failed):,} failed" if stopped or failed else "",
        clip,
    )
    return fig


def _numeric(values: Sequence[Any]) -> tuple[list[Any], dict[str, Any]]:
    """Values for a parcoords dimension: numbers as is, others as category indexes."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return list(values), {}
    cats = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(cats)}
    return [index[str(v)] for v in values], {"tickvals": list(range(len(cats))), "ticktext": cats}


def _axis(spec: ExperimentSpec, name: str, values: Sequence[Any]) -> dict[str, Any]:
    """A parcoords axis where a trial without the parameter (inactive) is missing, not zero.

    Such trials cross the axis at an ``inactive`` tick just below its range.
    """
    present = [v for v in values if v is not None]
    if len(present) == len(values) or not present:
        return _dimension(spec, name, present if present else values)
    dim = _dimension(spec, name, present)
    nums = [float(v) for v in dim["values"]]
    lo, hi = dim.get("range", [min(nums), max(nums)])
    gap = lo - 0.12 * ((hi - lo) or 1.0)
    it = iter(nums)
    dim["values"] = [gap if v is None else next(it) for v in values]
    dim["range"] = [gap, hi]
    if "tickvals" not in dim:
        ticks = [lo + i * (hi - lo) / 4 for i in range(5)] if hi > lo else [lo]
        dim["tickvals"], dim["ticktext"] = ticks, [f"{t:.4g}" for t in ticks]
    dim["tickvals"] = [gap, *dim["tickvals"]]
    dim["ticktext"] = ["inactive", *dim["ticktext"]]
    return dim


def _dimension(spec: ExperimentSpec, name: str, values: Sequence[Any]) -> dict[str, Any]:
    """One parcoords axis: log parameters in log10 units with real-valued ticks."""
    p = _param(spec, name)
    if is_log(spec, name) and all(isinstance(v, (int, float)) and v > 0 for v in values):
        logs = [math.log10(v) for v in values]
        lo = math.log10(p.min) if p is not None and p.min else min(logs, default=0.0)
        hi = math.log10(p.max) if p is not None and p.max else max(logs, default=1.0)
        tickvals, ticktext = log_ticks(lo, hi)
        return {
            "label": f"{name} (log)",
            "values": logs,
            "range": [lo, hi],
            "tickvals": tickvals,
            "ticktext": ticktext,
        }
    vals, extra = _numeric(values)
    dim = {"label": name, "values": vals, **extra}
    if not extra and p is not None and p.min is not None and p.max is not None:
        dim["range"] = [p.min, p.max]
    return dim


def parallel_figure(
    rows: Sequence[Row], spec: ExperimentSpec, max_lines: int | None = MAX_LINES
) -> Any:
    """Parallel coordinates of the trials' parameters, coloured by value.

    Succeeded and early-stopped trials with a value are drawn (a ``state`` axis tells them
    apart and filters them by brushing); above ``max_lines`` the best fifth of the lines plus an
    even sample. Log parameters are on log axes.
    """
    go = _go()
    maximize = spec.objective.type is Direction.MAXIMIZE
    valued = [r for r in rows if r[2] is not None and math.isfinite(r[2])]
    shown = sample(
        valued, max_lines, key=lambda r: r[2], best=max_lines and max_lines // 5, maximize=maximize
    )
    dims = [_axis(spec, p.name, [r[1].get(p.name) for r in shown]) for p in spec.parameters]
    states = sorted({r[3] for r in shown})
    if len(states) > 1 or (states and states != ["Succeeded"]):
        index = {s: i for i, s in enumerate(states)}
        dims.append(
            {
                "label": "state",
                "values": [index[r[3]] for r in shown],
                "tickvals": list(range(len(states))),
                "ticktext": states,
                "range": [-0.3, len(states) - 0.7] if len(states) > 1 else [-1, 1],
            }
        )
    values = [r[2] for r in shown]
    dims.append({"label": spec.objective.metric, "values": values})
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": values,
                "colorscale": "Viridis",
                "reversescale": not maximize,  # the best trials are yellow either way
                "showscale": True,
                "colorbar": {"title": {"text": spec.objective.metric}, "x": 1.06},
            },
            dimensions=dims,
            labelangle=0,
            labelside="top",
        )
    )
    fig.update_layout(
        title="Parallel coordinates",
        height=440,
        margin={"l": 90, "r": 120, "t": 110, "b": 40},
        uirevision="parallel",
    )
    _subtitle(fig, sample_note(len(shown), len(valued), "trials", "the best and a random sample"))
    return fig


def param_importances(
    rows: Sequence[Row], spec: ExperimentSpec, max_trials: int = 2000
) -> dict[str, float]:
    """Parameter importances (Optuna's default evaluator) of the last succeeded trials.

    The study is rebuilt in memory from the last ``max_trials`` trials; it needs at least 2.

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
        if any(len(t.params) < len(codec.distributions) for t in frozen):
            imp = _with_conditional(imp, frozen, direction)
    return {k: float(v) for k, v in imp.items()}


def _with_conditional(imp: Mapping[str, float], frozen: Sequence[Any], direction: Any) -> Any:
    """Importances with the parameters some trials lack (inactive, conditional).

    Optuna ranks only the parameters every trial has. Each other parameter is ranked among the
    trials that have it, its share scaled by the fraction of trials it was active in (inactive
    is missing, not a value), and the whole is normalized again.
    """
    import optuna

    out = dict(imp)
    names = {n for t in frozen for n in t.params}
    for name in sorted(names - set(imp)):
        subset = [t for t in frozen if name in t.params]
        if len(subset) < 2:
            continue
        study = optuna.create_study(direction=direction)
        study.add_trials(subset)
        try:
            sub = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError):
            continue
        out[name] = float(sub.get(name, 0.0)) * len(subset) / len(frozen)
    total = sum(out.values())
    if total <= 0:
        return out
    return dict(sorted(((k, v / total) for k, v in out.items()), key=lambda kv: -kv[1]))


def importance_figure(importances: Mapping[str, float]) -> Any:
    """Horizontal bars of parameter importances."""
    go = _go()
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h"))
    fig.update_layout(title="Parameter importance", xaxis_title="importance", height=320)
    return fig


# -- notebook helpers ------------------------------------------------------------------------
_FIGURE: Any = None
_KALEIDO: dict[str, Any] = {}


def static_svg(fig: Any) -> str | None:
    """The figure as an SVG (kaleido, with a Chrome/Chromium), or None when it cannot be drawn.

    One headless browser is started on first use and kept for the session (a second figure
    takes a fraction of a second). ``AUTOML_PLOTS_STATIC=0`` turns it off.
    """
    if os.environ.get("AUTOML_PLOTS_STATIC", "1").lower() in ("0", "false", "no", "off"):
        return None
    if _KALEIDO.get("failed"):
        return None
    try:
        import kaleido  # type: ignore[import-untyped,import-not-found,unused-ignore]

        if not _KALEIDO.get("started"):
            kaleido.start_sync_server(silence_warnings=True)
            _KALEIDO["started"] = True
            atexit.register(kaleido.stop_sync_server, silence_warnings=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = fig.to_image(format="svg")
    except Exception:  # no kaleido, no browser: the interactive figure alone
        _KALEIDO["failed"] = True
        return None
    return data.decode() if isinstance(data, bytes) else str(data)


def notebook_figure(fig: Any) -> Any:
    """``fig`` as a Figure whose notebook output also carries a static SVG.

    Jupyter shows the interactive figure; GitHub and ``jupyter nbconvert`` (which cannot run
    Plotly's JavaScript) show the ``image/svg+xml`` kept next to it in the saved notebook.
    """
    global _FIGURE
    if _FIGURE is None:
        base: Any = _go().Figure

        class NotebookFigure(base):  # type: ignore[misc]
            """A Plotly figure with a static SVG in its notebook output."""

            def _repr_mimebundle_(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
                bundle: dict[str, Any] = dict(super()._repr_mimebundle_(*args, **kwargs) or {})
                svg = static_svg(self)
                if svg:
                    bundle["image/svg+xml"] = svg
                return bundle

        _FIGURE = NotebookFigure
    return _FIGURE(fig)


def _result(result_or_name: TuneResult | str, client: Client | None) -> TuneResult:
    if isinstance(result_or_name, str):
        from automl._api import Client

        if client is not None:
            return client.result(result_or_name)
        with Client() as c:
            return c.result(result_or_name)
    return result_or_name


def _rows(result: TuneResult) -> list[Row]:
    """(number, params, value, state) per trial, from the result's trials table."""
    spec = result.experiment.spec
    df = result.trials
    rows: list[Row] = []
    if len(df) == 0:
        return rows
    names = [p.name for p in spec.parameters]
    for rec in df.to_dict("records"):
        value = rec.get("value")
        if isinstance(value, float) and math.isnan(value):
            value = None
        params = {n: _plain(rec.get(f"params_{n}")) for n in names}
        rows.append((int(rec["number"]), params, value, str(rec["state"])))
    return rows


def _plain(v: Any) -> Any:
    """A numpy scalar from a DataFrame back to a Python value."""
    item = getattr(v, "item", None)
    return item() if callable(item) else v


def history(result_or_name: TuneResult | str, client: Client | None = None) -> Any:
    """Objective value of each succeeded trial and the best value so far.

    Args:
        result_or_name: What :func:`automl.tune` returned, or an experiment name.
        client: Where to read a named experiment (default: a Client on the default store).

    Returns:
        A Plotly figure.
    """
    res = _result(result_or_name, client)
    spec = res.experiment.spec
    fig = history_figure([(n, v, s, None) for n, _, v, s in _rows(res)], spec.objective.type.value)
    fig.update_layout(title=f"Optimisation history: {res.name}", yaxis_title=spec.objective.metric)
    return notebook_figure(fig)


def parallel_coordinates(result_or_name: TuneResult | str, client: Client | None = None) -> Any:
    """Parallel coordinates: each succeeded trial's parameters and objective value.

    Args:
        result_or_name: What :func:`automl.tune` returned, or an experiment name.
        client: Where to read a named experiment.

    Returns:
        A Plotly figure.
    """
    res = _result(result_or_name, client)
    rows = [r for r in _rows(res) if r[3] in ("Succeeded", "EarlyStopped")]
    return notebook_figure(parallel_figure(rows, res.experiment.spec))


def importance(result_or_name: TuneResult | str, client: Client | None = None) -> Any:
    """Parameter importance (Optuna's evaluator on an in-memory study of the trials).

    Args:
        result_or_name: What :func:`automl.tune` returned, or an experiment name.
        client: Where to read a named experiment.

    Returns:
        A Plotly figure; its title says so when there are too few trials to rank.
    """
    res = _result(result_or_name, client)
    rows = [r for r in _rows(res) if r[3] == "Succeeded"]
    imp = param_importances(rows, res.experiment.spec)
    fig = importance_figure(imp)
    if not imp:
        fig.update_layout(title="Parameter importance: needs 2 or more succeeded trials")
    return notebook_figure(fig)


def intermediate_values(
    result_or_name: TuneResult | str, client: Client | None = None, metric: str | None = None
) -> Any:
    """Every trial's reported values of a metric over its steps (the objective by default).

    Args:
        result_or_name: What :func:`automl.tune` returned, or an experiment name.
        client: Where to read a named experiment (a result reads the store it came from).
        metric: The metric to draw.

    Returns:
        A Plotly figure, one line per trial.
    """
    from automl._api import Client

    res = _result(result_or_name, client)
    metric = metric or res.experiment.spec.objective.metric
    own = client is None
    c = client if client is not None else Client(res.store_url or "sqlite:///automl.db")
    try:
        obs = c.observations(res.name)
        numbers = {t.id: t.number for t in c.trials(res.name)}
    finally:
        if own:
            c.close()
    curves: dict[int, tuple[list[float], list[float]]] = {}
    for o in obs:
        if o.metric != metric or o.trial_id not in numbers:
            continue
        steps, values = curves.setdefault(numbers[o.trial_id], ([], []))
        steps.append(float(o.step if o.step is not None else len(steps) + 1))
        values.append(o.value)
    go = _go()
    fig = go.Figure()
    for number in sorted(curves):
        steps, values = curves[number]
        fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=f"trial {number}"))
    every = [s for steps, _ in curves.values() for s in steps] or [0.0, 1.0]
    fig.update_layout(
        title=f"Intermediate values: {metric}",
        xaxis={"title": "step", **integer_axis(min(every), max(every))},
        yaxis_title=metric,
        height=400,
    )
    return notebook_figure(fig)


def summary_html(result: TuneResult) -> str:
    """A compact HTML table of a result (what Jupyter shows for a TuneResult)."""
    exp = result.experiment
    counts = result.trials["state"].value_counts().to_dict() if len(result.trials) else {}
    states = ", ".join(f"{n} {s.lower()}" for s, n in counts.items()) or "none"
    best = result.best_trial
    rows = [
        ("experiment", exp.name),
        ("state", f"{exp.state.value} ({exp.reason})" if exp.reason else exp.state.value),
        ("trials", f"{len(result.trials)}: {states}"),
    ]
    if best is not None:
        metric = exp.spec.objective.metric
        rows.append((f"best {metric}", f"{best.value:.6g}" if best.value is not None else "-"))
        rows.append(("best trial", f"{best.number} ({best.id})"))
        rows.extend((f"  {k}", _fmt(v)) for k, v in best.params.items())
        models = list((best.outputs or {}).get("models", {}))
        if models:
            rows.append(("saved models", ", ".join(models)))
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table class='automl-result'>{body}</table>"


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)
