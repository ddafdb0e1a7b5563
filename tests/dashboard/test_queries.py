"""The dashboard's query layer on a store seeded by real experiments."""

from __future__ import annotations

import time

import pytest

import automl
from automl.store import Store
from dashboard import plots
from dashboard.queries import Queries, downsample


@pytest.fixture(scope="module")
def q(seeded_url: str) -> Queries:
    return Queries(Store(seeded_url))


def test_experiments_summary(q: Queries) -> None:
    rows = {s.name: s for s in q.experiments_summary()}
    assert set(rows) == {"quad", "curves", "broken"}
    quad = rows["quad"]
    assert quad.state == "Succeeded" and quad.reason == "ExperimentMaxTrialsReached"
    assert quad.done == 12 and quad.counts == {"Succeeded": 12}
    best = automl.Client(q.store).best_trial("quad")
    assert best is not None and quad.best_value == pytest.approx(best.value)
    assert rows["curves"].counts.get("EarlyStopped", 0) >= 1
    broken = rows["broken"]
    assert broken.state == "Failed" and broken.counts.get("Failed", 0) >= 2
    assert broken.best_value is None
    assert quad.row()["progress"] == "12/12"


def test_experiment_and_best_trial(q: Queries) -> None:
    exp = q.experiment("quad")
    assert exp is not None
    best = q.best_trial(exp.id, exp.direction)
    assert best is not None and best["value"] == pytest.approx(exp.best_value)
    assert set(best["params"]) == {"x", "y", "kind"}
    assert q.experiment("nope") is None


def test_trials_page_paging_sort_filter(q: Queries) -> None:
    exp = q.experiment("quad")
    assert exp is not None
    page1 = q.trials_page(exp.id, offset=0, limit=5)
    page2 = q.trials_page(exp.id, offset=5, limit=5)
    page3 = q.trials_page(exp.id, offset=10, limit=5)
    assert page1.total == 12 and len(page1.rows) == 5 and len(page3.rows) == 2
    numbers = [r["number"] for r in page1.rows + page2.rows + page3.rows]
    assert numbers == list(range(12))
    by_value = q.trials_page(exp.id, sort="value", limit=100).rows
    values = [r["value"] for r in by_value]
    assert values == sorted(values)
    desc = q.trials_page(exp.id, sort="value", desc=True, limit=1).rows
    assert desc[0]["value"] == max(values)
    assert isinstance(by_value[0]["params"]["x"], float)
    assert "objective" in by_value[0]["metrics"]
    assert q.trials_page(exp.id, states=["Failed"]).total == 0
    kind_b = q.trials_page(exp.id, search='"b"')
    assert kind_b.total == sum(1 for r in by_value if r["params"]["kind"] == "b") > 0
    assert all(r["params"]["kind"] == "b" for r in kind_b.rows)
    assert {r["strategy"] for r in by_value} == {None}  # random search proposes alone
    broken = q.experiment("broken")  # the default algorithm, auto: each trial names its part
    assert broken is not None
    strategies = [r["strategy"] for r in q.trials_page(broken.id).rows]
    assert strategies and all(isinstance(s, str) and s for s in strategies)
    curves = q.experiment("curves")
    assert curves is not None
    stopped = q.trials_page(curves.id, states=["EarlyStopped"])
    assert stopped.total >= 1 and all(r["state"] == "EarlyStopped" for r in stopped.rows)


def test_history_and_plots(q: Queries) -> None:
    exp = q.experiment("quad")
    assert exp is not None
    hist = q.history(exp.id)
    assert [h[0] for h in hist] == list(range(12)) and all(h[2] == "Succeeded" for h in hist)
    fig = plots.history_figure(hist, exp.direction)
    best = next(d for d in fig.data if d.name == "best so far")
    assert min(y for y in best.y if y is not None) == pytest.approx(exp.best_value)
    rows = q.params_values(exp.id)
    imp = plots.param_importances(rows, exp.spec)
    assert set(imp) == {"x", "y", "kind"}
    assert plots.param_importances(rows[:1], exp.spec) == {}
    plots.parallel_figure(rows, exp.spec)
    plots.parallel_lines_figure(rows, exp.spec)
    plots.slice_figure(rows, exp.spec, "x")
    plots.contour_figure(rows, exp.spec, "x", "y")
    plots.importance_figure(imp)


def test_curves_since_cursor(q: Queries) -> None:
    exp = q.experiment("curves")
    assert exp is not None
    full = q.curves(exp.id, "loss")
    assert full.points and full.last_id > 0
    assert all(len(s) == len(v) for s, v in full.points.values())
    assert q.curves(exp.id, "loss", since_id=full.last_id).points == {}
    # the cursor half-way: the rest extends the first half into the full set
    ids = sorted(_obs_ids(q, exp.id))
    mid = ids[len(ids) // 2]
    head = q.curves(exp.id, "loss")
    head.points.clear()
    head.last_id = 0
    # rebuild: first half by hand, then the incremental call must add exactly the rest
    part = q.curves(exp.id, "loss", since_id=mid)
    assert sum(len(s) for s, _ in part.points.values()) == len([i for i in ids if i > mid])
    assert part.last_id == full.last_id
    small = downsample(full, max_points=2)
    assert all(len(s) <= 3 for s, _ in small.points.values())
    assert all(s[-1] == full.points[n][0][-1] for n, (s, _) in small.points.items())
    hist = q.history(exp.id)
    stopped = {n for n, _, s, _ in hist if s == "EarlyStopped"}
    view = plots.curves_view(q, exp, "loss", hist, None)
    assert view.lines.points == full.points  # 8 trials: every curve, no band
    assert not view.band
    fig = plots.curves_figure(view, "loss")
    assert fig.data[-1].name == "stopped here" and len(fig.data[-1].x) == len(stopped)
    assert {d.name for d in fig.data} >= {"finished", "early stopped"}
    # trials changed since a time: everything since 0, nothing after the end
    assert len(q.changed_since(exp.id, 0.0)) == 8
    assert q.changed_since(exp.id, time.time() + 10) == []


def _obs_ids(q: Queries, exp_id: str) -> list[int]:
    import sqlalchemy as sa

    from automl.store import _schema as S

    with q.engine.connect() as c:
        return [
            r[0]
            for r in c.execute(
                sa.select(S.observations.c.id)
                .join(S.trials, S.trials.c.id == S.observations.c.trial_id)
                .where(S.trials.c.experiment_id == exp_id)
            )
        ]


def test_trial_and_observations(q: Queries) -> None:
    exp = q.experiment("curves")
    assert exp is not None
    tid = q.trials_page(exp.id, limit=1).rows[0]["id"]
    t = q.trial(tid)
    assert t is not None and t["experiment"] == "curves" and "lr" in t["params"]
    obs = q.trial_observations(tid)
    assert obs and {o["metric"] for o in obs} == {"loss"}
    assert q.trial_observations(tid, since_id=obs[-1]["id"]) == []
    assert q.trial("missing") is None
    assert q.lineage(exp.id) == []


def test_empty_store(empty_url: str) -> None:
    q = Queries(Store(empty_url))
    assert q.experiments_summary() == []


def test_lineage_figure() -> None:
    rows = [
        {"id": "a", "number": 0, "value": 1.0, "generation": 0, "parent": None},
        {"id": "b", "number": 1, "value": 0.5, "generation": 1, "parent": "a"},
    ]
    fig = plots.lineage_figure(rows)
    assert list(fig.data[0].x) == [0, 1, None]


def test_curves_for_a_subset_grows_incrementally(q: Queries) -> None:
    exp = q.experiment("curves")
    assert exp is not None
    full = q.curves(exp.id, "loss")
    some = q.curves_for(exp.id, "loss", {0, 1}, None)
    assert set(some.points) == {0, 1} and some.numbers == {0, 1}
    assert some.points[0] == full.points[0]
    # a trial joins the set: its past observations are read, nothing is read twice
    more = q.curves_for(exp.id, "loss", {0, 1, 2}, some)
    assert more is some and set(more.points) == {0, 1, 2}
    assert more.points[2] == full.points[2] and more.points[0] == full.points[0]
    everything = q.curves_for(exp.id, "loss", None, None)
    assert everything.points == full.points
    again = q.curves_for(exp.id, "loss", None, everything)
    assert again.points == full.points


def test_trial_and_best_trial_carry_outputs(outputs_url: str) -> None:
    q = Queries(Store(outputs_url))
    exp = q.experiment("saved")
    assert exp is not None
    best = q.best_trial(exp.id, exp.direction)
    assert best is not None
    stored = automl.Client(q.store).best_trial("saved")
    assert stored is not None and best["id"] == stored.id
    assert best["outputs"] == dict(stored.outputs) and best["record"] == stored
    assert best["outputs"]["models"]["clf"]["format"] == "sklearn"
    t = q.trial(stored.id)
    assert t is not None
    assert t["outputs"]["artifact_dir"] == stored.outputs["artifact_dir"]
    assert t["record"] == stored and t["spec"] == exp.spec
