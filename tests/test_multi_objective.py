"""Several objectives: spec, algorithms, the stored Pareto front, goals, CLI and export."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import create_trial
from typer.testing import CliRunner

import automl
import search
from automl.cli import app
from automl.core import ExperimentState, TrialState
from automl.core._pareto import dominates, pareto_front
from automl.errors import SpecError
from automl.spec import parse_spec

pytestmark = pytest.mark.integration

TWO = [
    {"metric": "f1", "direction": "minimize"},
    {"metric": "f2", "direction": "minimize"},
]
SPACE = {"x": automl.double(0, 1), "y": automl.double(0, 1)}


def toy(x: float, y: float) -> dict[str, float]:
    # Both minimized; the true front is y == 0 (f2 = 1 - x), every x on it.
    return {"f1": x, "f2": 1.0 - x + y}


def _optuna_front(result: automl.TuneResult) -> set[int]:
    """Optuna's own study.best_trials over the same finished trials (numbers)."""
    study = optuna.create_study(directions=["minimize", "minimize"])
    numbers = []
    for row in result.trials.itertuples():
        if row.state != "Succeeded":
            continue
        study.add_trial(
            create_trial(
                params={},
                distributions={},
                values=[float(row.f1), float(row.f2)],
            )
        )
        numbers.append(int(row.number))
    return {numbers[t.number] for t in study.best_trials}


def test_front_is_non_dominated_and_matches_optunas_best_trials(sqlite_url: str) -> None:
    r = automl.tune(
        toy,
        SPACE,
        objectives=TWO,
        algorithm="motpe",
        algorithm_settings={"n_startup_trials": 6},
        max_trials=20,
        seed=1,
        store=sqlite_url,
        name="toy",
        progress=False,
    )
    spec = r.experiment.spec
    assert spec.multi_objective and [o.metric for o in spec.all_objectives] == ["f1", "f2"]
    front = r.best_trials
    assert len(front) >= 2
    assert set(front["number"]) == _optuna_front(r)
    vecs = [(float(a), float(b)) for a, b in zip(front["f1"], front["f2"], strict=True)]
    for i, a in enumerate(vecs):
        assert not any(dominates(spec, b, a) for j, b in enumerate(vecs) if j != i)
    # Every trial off the front is dominated by a front member.
    off = r.trials[~r.trials["pareto"]]
    for a, b in zip(off["f1"], off["f2"], strict=True):
        assert any(dominates(spec, v, (float(a), float(b))) for v in vecs)
    # The stored objective vector, and the Client's view of the same front.
    with automl.Client(sqlite_url) as client:
        stored = {t.number: t for t in client.trials("toy")}
        assert list(client.pareto_front("toy")["number"]) == list(front["number"])
    for n, a, b in zip(front["number"], front["f1"], front["f2"], strict=True):
        assert stored[n].attrs["values"] == pytest.approx([a, b])
    # best_trial: the front member best on the first objective.
    assert r.best_value == pytest.approx(float(front["f1"].min()))


@pytest.mark.parametrize(
    ("algorithm", "settings"),
    [
        ("nsga2", {"population_size": 4}),
        ("nsga3", {"population_size": 4}),
        ("tpe", {"n_startup_trials": 4}),
        ("bayesianoptimization", {"n_initial_points": 4}),
        ("auto", {"n_initial_points": 4}),
        ("random", {}),
        ("sobol", {}),
    ],
)
def test_multi_objective_algorithms_run(algorithm: str, settings: dict[str, Any]) -> None:
    store = automl.store.Store("sqlite://")
    r = automl.tune(
        toy,
        SPACE,
        objectives=TWO,
        algorithm=algorithm,
        algorithm_settings=settings,
        max_trials=8,
        seed=0,
        store=store,
        name=f"mo-{algorithm}",
        progress=False,
    )
    assert r.reason == "ExperimentMaxTrialsReached"
    assert (r.trials["state"] == "Succeeded").all()
    assert len(r.best_trials) >= 1


def test_suggester_mirror_holds_every_objective() -> None:
    spec = _parse(_native_doc())
    s = search.create_suggester(spec.model_copy(update={"algorithm": _algo("nsga2")}))
    from search._optuna import OptunaSuggester, frozen_trials

    assert isinstance(s, OptunaSuggester)
    (sug,) = s.suggest(["t0"])
    from automl.core import MetricSummary, TrialRecord

    s.tell(
        TrialRecord(
            id="t0",
            experiment_id="e",
            number=0,
            params=sug.params,
            state=TrialState.SUCCEEDED,
            value=0.9,
            metrics={
                "accuracy": MetricSummary(0.9, 0.9, 0.9),
                "latency_ms": MetricSummary(3, 3, 3),
            },
        )
    )
    (ft,) = frozen_trials(s)
    assert ft.values == [0.9, 3.0]
    assert s._study.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]


def _parse(doc: dict[str, Any]) -> Any:
    return parse_spec(yaml.safe_dump(doc))


def _algo(name: str) -> Any:
    from automl.core import AlgorithmSpec

    return AlgorithmSpec(name=name)


def _native_doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "mo",
        "objectives": [
            {"metric": "accuracy", "direction": "maximize", "goal": 0.98},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "trial": {"command": ["python", "t.py", "${x}"]},
    }
    doc.update(over)
    return doc


def test_native_objectives_and_one_item_list() -> None:
    spec = _parse(_native_doc())
    assert spec.multi_objective
    assert spec.objective.metric == "accuracy" and spec.objective.goal == 0.98
    assert spec.objective.additional_metrics == ("latency_ms",)  # collected like the first
    assert [o.type.value for o in spec.all_objectives] == ["maximize", "minimize"]
    one = _parse(_native_doc(objectives=[{"metric": "loss", "direction": "minimize"}]))
    single = _parse(
        {**_native_doc(objective={"metric": "loss", "direction": "minimize"}), "objectives": None}
    )
    assert not one.multi_objective and one.objectives == ()
    assert one.objective == single.objective
    assert one.to_json() == single.to_json()


@pytest.mark.parametrize(
    ("over", "path", "needle"),
    [
        (
            {"objectives": [{"metric": "a", "direction": "maximize"}, {"metric": "b"}]},
            "objectives[1].direction",
            "'minimize' or 'maximize'",
        ),
        (
            {"objectives": [{"metric": "a", "direction": "up"}]},
            "objectives[0].direction",
            "got 'up'",
        ),
        (
            {"objective": {"metric": "a", "direction": "minimize"}},
            "objectives",
            "not both",
        ),
        (
            {
                "objectives": [
                    {"metric": "a", "direction": "minimize"},
                    {"metric": "a", "direction": "maximize"},
                ]
            },
            "objectives[1].metric",
            "unique",
        ),
        ({"objectives": []}, "objectives", "at least one"),
        ({"algorithm": "cmaes"}, "algorithm", "cmaes optimizes one objective"),
        ({"algorithm": "hyperband"}, "algorithm", "hyperband optimizes one objective"),
        ({"algorithm": "pbt"}, "algorithm", "pbt optimizes one objective"),
        ({"algorithm": "evolution"}, "algorithm", "evolution optimizes one objective"),
    ],
)
def test_bad_objectives_are_spec_errors(over: dict[str, Any], path: str, needle: str) -> None:
    with pytest.raises(SpecError) as exc:
        _parse(_native_doc(**over))
    found = {i.path: i.message for i in exc.value.issues}
    assert path in found, exc.value
    assert needle in found[path]


def test_tune_refuses_single_objective_algorithm_by_name(sqlite_url: str) -> None:
    with pytest.raises(SpecError) as exc:
        automl.tune(toy, SPACE, objectives=TWO, algorithm="cmaes", store=sqlite_url)
    assert exc.value.path == "algorithm"
    assert "cmaes optimizes one objective" in str(exc.value)
    with pytest.raises(SpecError) as exc:
        automl.tune(toy, SPACE, objectives=TWO, goal=0.1, store=sqlite_url)
    assert exc.value.path == "goal"


def test_goal_ends_the_experiment_when_a_front_member_reaches_every_goal(
    sqlite_url: str,
) -> None:
    r = automl.tune(
        toy,
        SPACE,
        objectives=[
            {"metric": "f1", "direction": "minimize", "goal": 0.9},
            {"metric": "f2", "direction": "minimize", "goal": 0.9},
        ],
        algorithm="random",
        max_trials=200,
        seed=0,
        store=sqlite_url,
        name="goal",
        progress=False,
    )
    assert r.experiment.state is ExperimentState.SUCCEEDED
    assert r.reason == "ExperimentGoalReached"
    assert len(r.trials) < 200
    msg = r.experiment.message
    assert "on the Pareto front reached every goal" in msg and "f1=" in msg and "f2=" in msg
    member = msg.split("trial ")[1].split(" ")[0]
    assert member in set(r.best_trials["trial"])
    row = r.trials[r.trials["trial"] == member].iloc[0]
    assert row["f1"] <= 0.9 and row["f2"] <= 0.9


def test_missing_objective_metric_is_metrics_unavailable_naming_it(sqlite_url: str) -> None:
    r = automl.tune(
        lambda x, y: {"f1": x},
        SPACE,
        objectives=TWO,
        algorithm="random",
        max_trials=2,
        seed=0,
        store=sqlite_url,
        name="missing",
        progress=False,
    )
    assert set(r.trials["state"]) == {TrialState.METRICS_UNAVAILABLE.value}
    assert "the objective metric 'f2' was never reported" in r.trials["message"][0]
    assert r.best_trials.empty and r.best_trial is None


def test_katib_export_refuses_several_objectives() -> None:
    from automl.spec._export import to_katib

    spec = _parse(_native_doc())
    with pytest.raises(SpecError) as exc:
        to_katib(spec)
    assert exc.value.path == "objectives"
    assert "one objective" in str(exc.value) and "accuracy, latency_ms" in str(exc.value)


SCRIPT = """
import sys
x = float(sys.argv[1])
print(f"acc={1 - (x - 0.3) ** 2} latency_ms={10 * x}")
"""


def test_cli_best_prints_the_front_and_show_marks_it(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(SCRIPT)
    doc = {
        "name": "mo-cli",
        "objectives": [
            {"metric": "acc", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "algorithm": "random",
        "seed": 0,
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 6, "parallel": 2},
        "trial": {"command": ["python", "t.py", "${x}"]},
    }
    f = tmp_path / "mo.yaml"
    f.write_text(yaml.safe_dump(doc))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(app, [*args, "--store", url], env={"COLUMNS": "200"})

    r = cli("run", str(f), "--no-progress", "--runs-dir", str(tmp_path / "runs"))
    assert r.exit_code == 0, r.stdout
    with automl.Client(url) as client:
        trials = client.trials("mo-cli")
        spec = client.get("mo-cli").spec
    front = pareto_front(spec, trials)
    # Latency grows with x: the trial with the smallest x is always on the front.
    assert min(trials, key=lambda t: float(t.params["x"])) in front
    r = cli("best", "mo-cli", "--json")
    assert r.exit_code == 0, r.stdout
    rows = json.loads(r.stdout)
    assert [row["trial"] for row in rows] == [t.id for t in front]
    assert set(rows[0]["values"]) == {"acc", "latency_ms"}
    assert all(math.isfinite(v) for row in rows for v in row["values"].values())
    r = cli("best", "mo-cli")
    assert r.exit_code == 0
    assert f"Pareto front of mo-cli: {len(front)} trials" in r.stdout
    for t in front:
        assert t.id in r.stdout
    r = cli("show", "mo-cli")
    assert r.exit_code == 0
    marked = {t.id for t in trials if f"{t.id} *" in r.stdout}
    assert marked == {t.id for t in front}
    r = cli("export", "mo-cli", "--format", "katib")
    assert r.exit_code == 2
    assert "one objective" in r.stdout + r.stderr


def _three(x: float, y: float) -> dict[str, float]:
    return {"f1": x, "f2": 1.0 - x + y, "size": 100 * y}


def test_plots_front_and_hypervolume(sqlite_url: str) -> None:
    from automl import plots

    r = automl.tune(
        _three,
        SPACE,
        objectives=TWO,
        constraints=["size <= 70"],
        algorithm="random",
        max_trials=16,
        seed=2,
        store=sqlite_url,
        name="plots",
        progress=False,
    )
    fig = plots.pareto_front(r)
    names = {tr.name for tr in fig.data}
    assert names == {"trials", "infeasible", "Pareto front"}
    front = next(tr for tr in fig.data if tr.name == "Pareto front")
    assert len(front.x) == len(r.best_trials)
    bad = next(tr for tr in fig.data if tr.name == "infeasible")
    assert len(bad.x) == int((~r.trials["feasible"]).sum())
    # Hypervolume over trials never falls, and its last value is the front's hypervolume as
    # Optuna computes it against the same reference point.
    with automl.Client(sqlite_url) as c:
        spec, trials = c.get("plots").spec, c.trials("plots")
    ref = plots.hypervolume_figure(spec, trials).layout.title.text
    hist = plots.hypervolume_history(spec, trials)
    ys = [h for _, h in hist]
    assert ys == sorted(ys) and ys[-1] > 0 and "reference point" in ref
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    from automl._pareto_plots import default_reference

    point = default_reference(spec, trials)
    assert point is not None
    pts = np.array(list(zip(r.best_trials["f1"], r.best_trials["f2"], strict=True)), dtype=float)
    assert ys[-1] == pytest.approx(compute_hypervolume(pts, np.array(point)))


def test_dashboard_experiment_page_draws_the_front(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    from streamlit.testing.v1 import AppTest

    automl.tune(
        _three,
        SPACE,
        objectives=TWO,
        constraints=["size <= 70"],
        algorithm="random",
        max_trials=10,
        seed=0,
        store=sqlite_url,
        name="mo-dash",
        progress=False,
    )
    monkeypatch.setenv("AUTOML_STORE", sqlite_url)
    monkeypatch.delenv("AUTOML_READ_ONLY", raising=False)
    app = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=60)
    at.query_params["experiment"] = "mo-dash"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(s.value == "Pareto front" for s in at.subheader)
    assert any("infeasible trials (never best)" in c.value for c in at.caption)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [str(ch.get("layout", {}).get("title", {}).get("text", "")) for ch in charts]
    assert any(t.startswith("Pareto front:") for t in titles), titles
    assert any(t.startswith("Hypervolume over trials") for t in titles), titles


def _curve(x: float, y: float) -> None:
    for step in range(1, 6):
        automl.report(step=step, f1=x * (6 - step), f2=1.0 - x + y)
        if automl.should_stop():
            return


def test_early_stopping_follows_the_first_objective(sqlite_url: str) -> None:
    r = automl.tune(
        _curve,
        SPACE,
        objectives=TWO,
        early_stopping={"name": "median", "settings": {"n_startup_trials": 2}},
        algorithm="random",
        max_trials=12,
        seed=0,
        store=sqlite_url,
        name="mo-es",
        progress=False,
    )
    states = set(r.trials["state"])
    assert states == {"Succeeded", "EarlyStopped"}
    stopped = r.trials[r.trials["state"] == "EarlyStopped"]
    assert "by median" in stopped["message"].iloc[0]
    assert set(r.best_trials["trial"]) <= set(r.trials[r.trials["state"] == "Succeeded"]["trial"])


def test_the_example_parses_with_each_objective_reduced_by_its_own_direction() -> None:
    from automl.core import MetricStrategy

    here = Path(__file__).resolve().parents[1] / "examples" / "multi-objective"
    spec = parse_spec((here / "experiment.yaml").read_text(), base_dir=here)
    assert [o.metric for o in spec.all_objectives] == ["accuracy", "params"]
    assert spec.objective.strategy("accuracy") is MetricStrategy.MAX
    assert spec.objective.strategy("params") is MetricStrategy.MIN  # not the first's max
    assert [c.text for c in spec.constraints] == ["latency_ms < 1"]
    assert spec.objective.metrics == ("accuracy", "params", "latency_ms")


def test_resume_rebuilds_the_search_from_stored_vectors(sqlite_url: str) -> None:
    from search._optuna import OptunaSuggester, frozen_trials

    kw: dict[str, Any] = {
        "objectives": TWO,
        "algorithm": "nsga2",
        "algorithm_settings": {"population_size": 4},
        "seed": 0,
        "store": sqlite_url,
        "name": "mo-resume",
        "progress": False,
    }
    automl.tune(toy, SPACE, max_trials=6, **kw)
    r = automl.tune(toy, SPACE, max_trials=10, resume=True, **kw)
    assert len(r.trials) == 10 and (r.trials["state"] == "Succeeded").all()
    with automl.Client(sqlite_url) as c:
        spec, trials = c.get("mo-resume").spec, c.trials("mo-resume")
    s = search.create_suggester(spec, trials)
    assert isinstance(s, OptunaSuggester)
    mirrored = [ft.values for ft in frozen_trials(s)]
    assert mirrored == [list(t.attrs["values"]) for t in trials]
    assert r.best_trials["trial"].tolist() == [t.id for t in pareto_front(spec, trials)]


def test_ask_tell_judges_vectors_constraints_and_goals(tmp_path: Path, sqlite_url: str) -> None:
    doc = _native_doc(
        name="mo-tell",
        objectives=[
            {"metric": "acc", "direction": "maximize", "goal": 0.9},
            {"metric": "ms", "direction": "minimize", "goal": 10},
        ],
        constraints=["mem <= 100"],
        algorithm="random",
        budget={"max_trials": 10},
    )
    f = tmp_path / "tell.yaml"
    f.write_text(yaml.safe_dump(doc))
    with automl.Client(sqlite_url) as c:
        c.create(f)
        t = c.ask("mo-tell")
        c.tell(t, final=True, acc=0.95, ms=5.0, mem=500.0)  # reaches both goals, infeasible
        told = c.trial("mo-tell", t.id)
        assert told.state is TrialState.SUCCEEDED and told.attrs["feasible"] is False
        assert told.attrs["values"] == [0.95, 5.0]
        assert c.get("mo-tell").state is ExperimentState.RUNNING  # infeasible: no goal
        t = c.ask("mo-tell")
        c.tell(t, final=True, acc=0.5)
        missing = c.trial("mo-tell", t.id)
        assert missing.state is TrialState.METRICS_UNAVAILABLE
        assert "'ms'" in missing.message and "'mem'" in missing.message
        t = c.ask("mo-tell")
        c.tell(t, final=True, acc=0.91, ms=9.0, mem=50.0)
        exp = c.get("mo-tell")
        assert exp.state is ExperimentState.SUCCEEDED and exp.reason == "ExperimentGoalReached"
        assert t.id in exp.message and "on the Pareto front" in exp.message


def plain(x: float, y: float) -> float:
    return x + y


@pytest.mark.parametrize("processes", [False, True])
def test_a_plain_return_value_is_the_first_objective(sqlite_url: str, processes: bool) -> None:
    r = automl.tune(
        plain,
        SPACE,
        objectives=[{"metric": "score", "direction": "maximize"}],
        algorithm="random",
        max_trials=2,
        seed=0,
        store=sqlite_url,
        name=f"plain-{int(processes)}",
        trial_processes=processes,
        progress=False,
    )
    assert not r.experiment.spec.multi_objective  # a one-item list is one objective
    assert (r.trials["state"] == "Succeeded").all()
    assert r.best_value == pytest.approx(max(r.trials["score"]))


THREE = [*TWO, {"metric": "f3", "direction": "minimize"}]


def three(x: float, y: float, kind: str = "a", z: float = 0.0) -> dict[str, float]:
    return {"f1": x, "f2": 1.0 - x + y, "f3": y + z + (0.5 if kind == "b" else 0.0)}


@pytest.mark.parametrize("conditional", [False, True])
def test_auto_with_three_objectives_follows_sobol_with_tpe(
    conditional: bool, sqlite_url: str
) -> None:
    """Three or more objectives: auto goes from Sobol to (univariate) TPE, never to the GP,
    on flat and conditional spaces, and proposes no configuration twice in parallel."""
    space: dict[str, Any] = dict(SPACE)
    if conditional:
        space["kind"] = automl.categorical(["a", "b"])
        space["z"] = automl.double(0, 1, when={"kind": "b"})
    r = automl.tune(
        three,
        space,
        objectives=THREE,
        algorithm="auto",
        algorithm_settings={"n_initial_points": 4},
        max_trials=12,
        parallel_trials=3,
        seed=0,
        store=sqlite_url,
        name="three",
        progress=False,
    )
    assert (r.trials["state"] == "Succeeded").all() and len(r.trials) == 12
    with automl.Client(sqlite_url) as client:
        stored = client.trials("three")
    strategies = [t.attrs["strategy"] for t in stored]
    assert "gp" not in strategies
    assert "sobol" in strategies and "tpe" in strategies
    assert len({repr(sorted(t.params.items())) for t in stored}) == 12  # none proposed twice
    if conditional:  # z only where kind is b
        assert all(("z" in t.params) == (t.params["kind"] == "b") for t in stored)
    assert len(r.best_trials) >= 1
