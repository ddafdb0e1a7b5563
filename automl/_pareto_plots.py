"""Figures for several objectives and constraints: the Pareto front and hypervolume over trials.

Re-exported by :mod:`automl.plots` (``plots.pareto_front(result)``, ``plots.hypervolume(result)``)
and drawn by the dashboard's experiment page. Infeasible trials are drawn as red crosses, the
front's members as larger markers joined in order of the first objective.

Hypervolume is measured in loss space (every objective minimized) against a reference point:
by default, for each objective, the worst value any feasible succeeded trial reached, moved out by
10% of that objective's range (or by 1 when all values are equal), so every feasible trial counts
and the curve can only grow. Pass ``reference`` (in the objectives' own units and directions) to
compare experiments on a fixed point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from automl.core import Direction, ExperimentSpec, TrialRecord
from automl.core._pareto import feasible, trial_vector
from automl.core._pareto import pareto_front as front_of

if TYPE_CHECKING:
    from automl._api import Client, TuneResult

__all__ = [
    "default_reference",
    "hypervolume",
    "hypervolume_figure",
    "hypervolume_history",
    "pareto_figure",
    "pareto_front",
]


def _losses(spec: ExperimentSpec, vec: Sequence[float]) -> tuple[float, ...]:
    return tuple(
        v if o.type is Direction.MINIMIZE else -v
        for v, o in zip(vec, spec.all_objectives, strict=True)
    )


def _done(spec: ExperimentSpec, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    return sorted(
        (t for t in trials if trial_vector(spec, t) is not None and not t.invalidated),
        key=lambda t: t.number,
    )


def default_reference(
    spec: ExperimentSpec, trials: Sequence[TrialRecord]
) -> tuple[float, ...] | None:
    """The default reference point (objective units): worst feasible value + 10% of the range."""
    vecs = [trial_vector(spec, t) for t in _done(spec, trials) if feasible(t)]
    losses = [_losses(spec, v) for v in vecs if v is not None]
    if not losses:
        return None
    ref = []
    for j, o in enumerate(spec.all_objectives):
        col = [x[j] for x in losses]
        span = max(col) - min(col)
        worst = max(col) + (0.1 * span if span > 0 else 1.0)
        ref.append(worst if o.type is Direction.MINIMIZE else -worst)
    return tuple(ref)


def _hv(points: Sequence[Sequence[float]], ref: Sequence[float]) -> float:
    """Hypervolume of loss vectors up to ``ref`` (points beyond it count nothing)."""
    pts = [tuple(p) for p in points if all(a < r for a, r in zip(p, ref, strict=True))]
    if not pts:
        return 0.0
    if len(ref) == 2:  # a sweep: exact and cheap
        area, best_y = 0.0, ref[1]
        for x, y in sorted(pts):
            if y < best_y:
                area += (ref[0] - x) * (best_y - y)
                best_y = y
        return area
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(np.asarray(pts, dtype=float), np.asarray(ref, dtype=float)))


def hypervolume_history(
    spec: ExperimentSpec,
    trials: Sequence[TrialRecord],
    reference: Sequence[float] | None = None,
) -> list[tuple[int, float]]:
    """``(trial number, hypervolume of the feasible trials so far)`` after each finished trial."""
    ref = tuple(reference) if reference is not None else default_reference(spec, trials)
    if ref is None:
        return []
    ref_loss = _losses(spec, ref)
    out: list[tuple[int, float]] = []
    seen: list[tuple[float, ...]] = []
    for t in _done(spec, trials):
        vec = trial_vector(spec, t)
        if feasible(t) and vec is not None:
            seen.append(_losses(spec, vec))
        out.append((t.number, _hv(seen, ref_loss)))
    return out


def _label(spec: ExperimentSpec, j: int) -> str:
    o = spec.all_objectives[j]
    return f"{o.metric} ({'min' if o.type is Direction.MINIMIZE else 'max'})"


def pareto_figure(spec: ExperimentSpec, trials: Sequence[TrialRecord]) -> Any:
    """Succeeded trials in objective space with the front highlighted, infeasible ones marked.

    Two objectives: a scatter; three or more: a 3-D scatter of the first three.
    """
    from automl.plots import _go

    go = _go()
    front_ids = {t.id for t in front_of(spec, trials)}
    done = _done(spec, trials)
    groups: dict[str, list[TrialRecord]] = {"trials": [], "infeasible": [], "Pareto front": []}
    for t in done:
        key = "Pareto front" if t.id in front_ids else "trials" if feasible(t) else "infeasible"
        groups[key].append(t)
    if groups["Pareto front"]:
        groups["Pareto front"].sort(key=lambda t: _losses(spec, trial_vector(spec, t) or ())[0])
    style: dict[str, dict[str, Any]] = {
        "trials": {"color": "#9aa5b1", "size": 7},
        "infeasible": {"color": "#d62728", "size": 8, "symbol": "x"},
        "Pareto front": {"color": "#1f77b4", "size": 11},
    }
    three = len(spec.all_objectives) >= 3
    fig = go.Figure()
    for name, ts in groups.items():
        if not ts:
            continue
        vecs = [trial_vector(spec, t) or () for t in ts]
        cols = list(zip(*vecs, strict=True))
        text = [f"trial {t.number}" for t in ts]
        mode = "lines+markers" if name == "Pareto front" and not three else "markers"
        if three:
            fig.add_trace(
                go.Scatter3d(
                    x=cols[0], y=cols[1], z=cols[2], mode="markers", name=name,
                    text=text, marker={**style[name], "size": style[name]["size"] - 3},
                )
            )  # fmt: skip
        else:
            fig.add_trace(
                go.Scatter(
                    x=cols[0], y=cols[1], mode=mode, name=name, text=text, marker=style[name],
                    line={"shape": "hv", "width": 1},
                )
            )  # fmt: skip
    title = f"Pareto front: {len(groups['Pareto front'])} of {len(done)} succeeded trials"
    if groups["infeasible"]:
        title += f" ({len(groups['infeasible'])} infeasible)"
    if three:
        fig.update_layout(
            title=title,
            scene={
                "xaxis_title": _label(spec, 0),
                "yaxis_title": _label(spec, 1),
                "zaxis_title": _label(spec, 2),
            },
        )
    else:
        fig.update_layout(title=title, xaxis_title=_label(spec, 0), yaxis_title=_label(spec, 1))
    return fig


def hypervolume_figure(
    spec: ExperimentSpec,
    trials: Sequence[TrialRecord],
    reference: Sequence[float] | None = None,
) -> Any:
    """Hypervolume of the feasible front after each trial (reference point in the subtitle)."""
    from automl.plots import _go

    go = _go()
    ref = tuple(reference) if reference is not None else default_reference(spec, trials)
    hist = hypervolume_history(spec, trials, ref)
    fig = go.Figure(
        go.Scatter(
            x=[n for n, _ in hist], y=[h for _, h in hist], mode="lines+markers",
            line={"shape": "hv"}, name="hypervolume",
        )
    )  # fmt: skip
    point = ", ".join(f"{v:.4g}" for v in ref) if ref else "-"
    fig.update_layout(
        title=f"Hypervolume over trials (reference point {point})",
        xaxis_title="trial",
        yaxis_title="hypervolume",
    )
    return fig


def _records(result_or_name: TuneResult | str, client: Client | None) -> tuple[Any, list[Any]]:
    from automl._api import Client as _Client

    name = result_or_name if isinstance(result_or_name, str) else result_or_name.name
    if client is not None:
        return client.get(name).spec, client.trials(name)
    store = None if isinstance(result_or_name, str) else result_or_name.store_url
    with _Client(store) if store else _Client() as c:
        return c.get(name).spec, c.trials(name)


def pareto_front(result_or_name: TuneResult | str, client: Client | None = None) -> Any:
    """The Pareto front of a multi-objective experiment (a Plotly figure)."""
    spec, trials = _records(result_or_name, client)
    return pareto_figure(spec, trials)


def hypervolume(
    result_or_name: TuneResult | str,
    client: Client | None = None,
    reference: Sequence[float] | None = None,
) -> Any:
    """Hypervolume over trials of a multi-objective experiment (a Plotly figure)."""
    spec, trials = _records(result_or_name, client)
    return hypervolume_figure(spec, trials, reference)
