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

import html
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from automl.core import Direction, ExperimentSpec
from automl.errors import AutoMLError

if TYPE_CHECKING:
    from automl._api import Client, TuneResult

__all__ = [
    "history",
    "history_figure",
    "importance",
    "importance_figure",
    "intermediate_values",
    "parallel_coordinates",
    "parallel_figure",
    "param_importances",
    "summary_html",
]

_MAX_PLOT_TRIALS = 2000

# (number, params, value, state) of one trial, as the figure builders take them.
Row = tuple[int, Mapping[str, Any], float | None, str]


def _go() -> Any:
    try:
        import plotly.graph_objects as go  # type: ignore[import-untyped]  # no type information
    except ImportError as exc:
        raise AutoMLError("plots need plotly: pip install 'automl[notebooks]'") from exc
    return go


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


def history_figure(
    history: Sequence[tuple[int, float | None, str, float | None]], direction: str
) -> Any:
    """Objective value per trial number, and the best value so far."""
    go = _go()
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


def parallel_figure(rows: Sequence[Row], spec: ExperimentSpec) -> Any:
    """Parallel coordinates of the parameters of succeeded trials, coloured by value."""
    go = _go()
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
    return {k: float(v) for k, v in imp.items()}


def importance_figure(importances: Mapping[str, float]) -> Any:
    """Horizontal bars of parameter importances."""
    go = _go()
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h"))
    fig.update_layout(title="Parameter importance", xaxis_title="importance", height=320)
    return fig


# -- notebook helpers ------------------------------------------------------------------------
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
    return fig


def parallel_coordinates(result_or_name: TuneResult | str, client: Client | None = None) -> Any:
    """Parallel coordinates: each succeeded trial's parameters and objective value.

    Args:
        result_or_name: What :func:`automl.tune` returned, or an experiment name.
        client: Where to read a named experiment.

    Returns:
        A Plotly figure.
    """
    res = _result(result_or_name, client)
    rows = [r for r in _rows(res) if r[3] == "Succeeded"]
    return parallel_figure(rows, res.experiment.spec)


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
    return fig


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
    fig.update_layout(
        title=f"Intermediate values: {metric}", xaxis_title="step", yaxis_title=metric, height=400
    )
    return fig


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
