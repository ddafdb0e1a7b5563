"""What the dashboard's charts draw on a large experiment: samples, aggregates, axes, markers.

The store is seeded through the public store API (``dashboard/seed.py``): 1,500 trials x 12
steps with a log parameter, a categorical one, early-stopped and failed trials.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from automl.core import Observation, TrialRecord, TrialState
from automl.plots import MAX_LINES, MAX_POINTS
from automl.store import Store
from dashboard import plots
from dashboard.queries import Queries
from dashboard.seed import METRIC, NAME, seed

TRIALS = 1500
STEPS = 12


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Queries, dict]:
    url = f"sqlite:///{tmp_path_factory.mktemp('charts') / 'big.db'}"
    info = seed(url, TRIALS, STEPS)
    return Queries(Store(url)), info


def _exp(q: Queries):
    exp = q.experiment(NAME)
    assert exp is not None
    return exp


def test_history_samples_points_but_not_the_best_so_far_line(big) -> None:
    q, info = big
    exp = _exp(q)
    hist = q.history(exp.id)
    fig = plots.history_figure(hist, exp.direction)
    by = {d.name: d for d in fig.data}
    ok = [(n, v) for n, v, s, _ in hist if s == "Succeeded" and v is not None]
    # Points: a sample, the best trial always among them, and the chart says so.
    assert len(by["succeeded"].x) == MAX_POINTS < len(ok)
    assert info["best_number"] in set(by["succeeded"].x)
    assert f"showing {MAX_POINTS:,} of {len(ok):,} succeeded trials" in (
        fig.layout.title.subtitle.text
    )
    # The best-so-far line is computed on every trial: at each of its x it equals the running
    # minimum of all succeeded values up to that trial.
    line = by["best so far"]
    for x, y in zip(line.x, line.y, strict=True):
        assert y == pytest.approx(min(v for n, v in ok if n <= x))
    assert line.y[-1] == pytest.approx(info["best_value"]) and line.x[-1] == ok[-1][0]
    # Early-stopped and failed trials are marked along the same trial-number axis.
    failed = {n for n, _, s, _ in hist if s == "Failed"}
    assert set(by["failed"].x) <= failed and len(by["failed"].x) == min(len(failed), 250)
    assert set(by["early stopped"].x) <= {n for n, _, s, _ in hist if s == "EarlyStopped"}
    assert fig.layout.xaxis.tickformat == ",d" and fig.layout.xaxis.title.text == "trial number"
    assert all(float(x).is_integer() for x in by["succeeded"].x)
    # Everything when asked for.
    every = plots.history_figure(hist, exp.direction, max_points=None)
    assert len(next(d for d in every.data if d.name == "succeeded").x) == len(ok)
    assert "showing" not in (every.layout.title.subtitle.text or "")


def test_small_history_axis_ticks_every_trial(tmp_path: Path) -> None:
    hist = [(n, float(n), "Succeeded", None) for n in range(6)]
    fig = plots.history_figure(hist, "maximize")
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == ",d"


def test_curves_pick_lines_and_mark_each_stop_at_its_step(big) -> None:
    q, _ = big
    exp = _exp(q)
    hist = q.history(exp.id)
    view = plots.curves_view(q, exp, METRIC, hist, None)
    assert len(view.lines.points) <= plots.CURVE_LINES < TRIALS
    assert view.band and [b[0] for b in view.band] == [float(s) for s in range(1, STEPS + 1)]
    assert view.band[0][4] == view.total  # every trial reported step 1
    fig = plots.curves_figure(view, METRIC)
    names = [d.name for d in fig.data]
    assert names[:2] == [f"all {view.total:,} trials: range", f"all {view.total:,} trials: mean"]
    marks = next(d for d in fig.data if d.name == "stopped here")
    stopped = [n for n, _, s, _ in hist if s == "EarlyStopped"]
    assert len(marks.x) == len(stopped)
    # Each early-stopped trial is marked at the last step it reported, as it counted it.
    trials = {t.number: t for t in q.store.trials.list(exp.id)}
    for text, x, y in list(zip(marks.text, marks.x, marks.y, strict=True))[:40]:
        number = int(text.split()[1])
        obs = q.store.observations.list(trials[number].id)
        assert (x, y) == (obs[-1].step, obs[-1].value)
        assert trials[number].message == f"stopped early at step {obs[-1].step} by medianstop"
    assert fig.layout.xaxis.tickformat == ",d"
    every = plots.curves_view(q, exp, METRIC, hist, None, draw_all=True)
    assert every.lines.points.keys() == q.curves(exp.id, METRIC).points.keys()
    assert not every.band


def test_implicit_steps_count_from_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url, 3, 0, name="nosteps")
    store = Store(url)
    q = Queries(store)
    exp = q.experiment("nosteps")
    assert exp is not None
    tid = store.trials.list(exp.id)[0].id
    store.observations.append([Observation(tid, METRIC, v, None, 0.0) for v in (3.0, 2.0, 1.5)])
    curves = q.curves(exp.id, METRIC)
    assert curves.points[0] == ([1.0, 2.0, 3.0], [3.0, 2.0, 1.5])
    tc = plots.trial_curves_figure(q.trial_observations(tid))
    assert list(tc.data[0].x) == [1, 2, 3]


def test_parallel_coordinates_sample_log_axis_and_early_stopped(big) -> None:
    q, _ = big
    exp = _exp(q)
    rows = q.params_values(exp.id, ("Succeeded", "EarlyStopped"))
    fig = plots.parallel_lines_figure(rows, exp.spec)
    labels = list(fig.layout.xaxis.ticktext)
    assert labels == ["x", "y", "lr (log)", "optimizer", METRIC]
    # Labels sit inside the x range (nothing clipped at the ends).
    lo, hi = fig.layout.xaxis.range
    assert lo < 0 and hi > len(labels) - 1
    lines = sum(sum(1 for v in d.x if v is None) for d in fig.data)
    assert lines == MAX_LINES
    assert f"showing {MAX_LINES:,} of {len(rows):,} trials" in fig.layout.title.subtitle.text
    stopped = next(d for d in fig.data if d.name.startswith("early stopped"))
    assert stopped.line.dash == "dot"
    # The log axis: decade ticks 1e-05 .. 0.1, each at its log position.
    ticks = {a.text: a.y for a in fig.layout.annotations if a.x == 2}
    assert set(ticks) == {"1e-05", "0.0001", "0.001", "0.01", "0.1"}
    assert ticks["0.001"] == pytest.approx(0.5)
    # Line positions on that axis are log-scaled: each line crosses it at (log10(lr) + 5) / 4.
    by_number = {r[0]: r for r in rows}
    first = fig.data[0]
    for i in range(0, len(first.x), 6):
        number = int(first.text[i].split()[1].rstrip(":"))
        lr = by_number[number][1]["lr"]
        assert first.y[i + 2] == pytest.approx((math.log10(lr) + 5) / 4)
    # The notebook figure (parcoords) has the same log dimension.
    par = plots.parallel_figure(rows, exp.spec)
    lr = next(d for d in par.data[0].dimensions if d.label == "lr (log)")
    assert list(lr.range) == [-5, -1] and "0.001" in lr.ticktext
    assert [d.label for d in par.data[0].dimensions][-2] == "state"


def test_slice_and_contour_axes(big) -> None:
    q, _ = big
    exp = _exp(q)
    rows = q.params_values(exp.id, ("Succeeded", "EarlyStopped"))
    s = plots.slice_figure(rows, exp.spec, "lr")
    assert s.layout.xaxis.type == "log" and s.layout.xaxis.title.text == "lr (log)"
    assert len(s.data[0].x) == MAX_POINTS
    assert s.data[1].name == "early stopped"
    cat = plots.slice_figure(rows, exp.spec, "optimizer")
    assert cat.layout.xaxis.type == "category"
    assert plots.slice_figure(rows, exp.spec, "x").layout.xaxis.type is None
    c = plots.contour_figure(rows, exp.spec, "x", "lr")
    surface, dots, star = c.data
    assert surface.type == "contour" and len(surface.z) == plots.GRID
    assert all(len(r) == plots.GRID for r in surface.z)
    assert c.layout.yaxis.type == "log" and min(surface.y) == pytest.approx(1e-5, rel=0.05)
    assert len(dots.x) == plots.CONTOUR_POINTS
    assert "surface:" in c.layout.title.subtitle.text
    best = min((r for r in rows if r[3] == "Succeeded"), key=lambda r: r[2])
    assert star.x[0] == best[1]["x"] and star.y[0] == best[1]["lr"]
    cc = plots.contour_figure(rows, exp.spec, "optimizer", "x")
    assert list(cc.layout.xaxis.ticktext) == ["adam", "rmsprop", "sgd"]


def test_compare_never_puts_both_directions_on_one_axis() -> None:
    a = [(0, 1.0, "Succeeded", None), (1, 0.5, "Succeeded", None)]
    b = [(0, 0.7, "Succeeded", None), (1, 0.9, "Succeeded", None)]
    fig = plots.compare_figure({"a": (a, "minimize"), "b": (b, "maximize")}, {"a": "loss"})
    assert "separate axes" in fig.layout.title.text
    ya, yb = (d.yaxis for d in fig.data)
    assert ya != yb
    assert list(fig.data[1].y) == [0.7, 0.9]
    same = plots.compare_figure({"a": (a, "minimize"), "c": (a, "minimize")})
    assert {d.yaxis for d in same.data} == {"y"}
    assert same.layout.yaxis.type is None  # 1.0 to 0.5: linear
    wide = [(0, 100.0, "Succeeded", None), (1, 0.5, "Succeeded", None)]
    assert plots.compare_figure({"w": (wide, "minimize")}).layout.yaxis.type == "log"


def test_metric_table_says_each_strategy() -> None:
    from automl.core import ExperimentSpec, Objective, Parameter, TrialTemplate
    from dashboard.app import metrics_table, params_table

    spec = ExperimentSpec(
        name="m",
        objective=Objective(
            type="maximize",
            metric="acc",
            additional_metrics=("loss",),
            strategies={"loss": "latest"},
        ),
        parameters=(Parameter(name="x", type="double", min=0.0, max=1.0),),
        trial_template=TrialTemplate(function="m:f"),
        source="python",
    )
    df = metrics_table({"acc": [0.5, 0.9, 0.8], "loss": [0.1, 0.7, 0.3]}, spec)
    rows = {r["metric"]: r for r in df.to_dict("records")}
    assert rows["acc"]["strategy"] == "max" and rows["acc"]["value"] == "0.9"
    assert rows["loss"]["strategy"] == "latest" and rows["loss"]["value"] == "0.3"
    assert list(params_table({"x": 0.123456789, "k": "rbf"})["value"]) == ["0.123457", "rbf"]


def test_running_trials_are_marked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    info = seed(url, 20, 4, running=3)
    assert info["counts"]["Running"] == 3
    q = Queries(Store(url))
    exp = q.experiment(NAME)
    assert exp is not None and exp.state == "Running"
    hist = q.history(exp.id)
    fig = plots.history_figure(hist, exp.direction)
    assert list(next(d for d in fig.data if d.name == "running").x) == [17, 18, 19]
    assert TrialRecord and TrialState  # the seed writes through these public types


def test_launcher_hides_the_deploy_menu(tmp_path: Path) -> None:
    from automl import _dashboard

    cmd = _dashboard.plan("sqlite:///x.db", port=0, app=tmp_path / "app.py").command
    assert cmd[cmd.index("--client.toolbarMode") + 1] == "minimal"


def test_launcher_turns_off_streamlits_collection_after_each_run(tmp_path: Path) -> None:
    """Each chart is a fragment run; a full gc.collect() after each held its message back."""
    from automl import _dashboard

    cmd = _dashboard.plan("sqlite:///x.db", port=0, app=tmp_path / "app.py").command
    assert cmd[cmd.index("--runner.postScriptGC") + 1] == "false"


def test_the_installed_streamlit_has_the_plotly_bundle_that_chart_pages_preload() -> None:
    """A renamed bundle would silently lose the preload (a second on the first chart)."""
    import streamlit as st

    from dashboard.pace import _plotly_chunk

    chunk = _plotly_chunk()
    assert chunk is not None and chunk.startswith("PlotlyChart.")
    assert (Path(st.__file__).parent / "static" / "static" / "js" / chunk).is_file()
