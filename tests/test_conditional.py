"""Conditional search spaces (``when``): validation, active parameters, algorithms, the grid."""

from __future__ import annotations

from typing import Any

import pytest

import automl
from automl.core import (
    ExperimentSpec,
    MetricSummary,
    TrialRecord,
    TrialState,
    active_names,
    active_params,
)
from automl.errors import SpecError
from automl.spec import parse_spec
from search import create_suggester

SPACE = """
  model: {type: categorical, values: [svm, forest, boosting]}
  kernel: {type: categorical, values: [rbf, linear], when: {model: svm}}
  gamma: {type: double, min: 0.25, max: 1, step: 0.25, when: {kernel: rbf}}
  C: {type: double, min: 1, max: 3, step: 1, when: {model: svm}}
  n_estimators: {type: int, min: 20, max: 22, when: {model: [forest, boosting]}}
  x: {type: discrete, values: [1, 2]}
"""


def doc(space: str = SPACE, algorithm: str = "tpe", command: str = "[python, t.py]") -> str:
    return f"""
name: cond
objective: {{metric: loss, direction: minimize}}
algorithm: {algorithm}
parameters:
{space}
trial: {{command: {command}}}
budget: {{max_trials: 10}}
"""


def spec_of(algorithm: str = "tpe", space: str = SPACE, **kw: Any) -> ExperimentSpec:
    return parse_spec(doc(space, algorithm, **kw))


def errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    return [str(i) for i in info.value.issues]


def valid(params: dict[str, Any]) -> bool:
    """Whether a suggestion holds exactly its active parameters, each in its range."""
    expect = {"model", "x"}
    if params["model"] == "svm":
        expect |= {"kernel", "C"} | ({"gamma"} if params["kernel"] == "rbf" else set())
    else:
        expect |= {"n_estimators"}
    return set(params) == expect


# -- validation --------------------------------------------------------------------------------


def test_yaml_when_is_parsed_one_value_or_many() -> None:
    spec = spec_of()
    by = {p.name: p for p in spec.parameters}
    assert by["kernel"].when == {"model": ("svm",)}
    assert by["n_estimators"].when == {"model": ("forest", "boosting")}
    assert by["model"].when == {}
    assert ExperimentSpec.from_json(spec.to_json()) == spec  # the store keeps it
    assert len(set(spec.parameters)) == len(spec.parameters)  # still hashable


def test_condition_on_an_unknown_parameter_names_the_path() -> None:
    msgs = errors(
        doc(SPACE.replace("step: 1, when: {model: svm}}", "step: 1, when: {modle: svm}}"))
    )
    assert any(m.startswith("parameters.C.when.modle: must name a parameter") for m in msgs), msgs


def test_value_not_among_the_parents_values_is_refused() -> None:
    msgs = errors(doc(SPACE.replace("when: {kernel: rbf}", "when: {kernel: [rbf, poly]}")))
    assert msgs == [
        "parameters.gamma.when.kernel: must be one of the values of 'kernel' ['rbf', 'linear']; "
        "got 'poly'"
    ]


def test_cycles_and_self_conditions_are_refused() -> None:
    cyc = SPACE.replace(
        "model: {type: categorical, values: [svm, forest, boosting]}",
        "model: {type: categorical, values: [svm, forest, boosting], when: {x: 1}}\n"
        "  y: {type: categorical, values: [1, 2], when: {y: 1}}",
    ).replace(
        "x: {type: discrete, values: [1, 2]}",
        "x: {type: discrete, values: [1, 2], when: {model: svm}}",
    )
    msgs = errors(doc(cyc))
    assert "parameters.y.when.y: a parameter cannot depend on itself ('y')" in msgs
    assert any(
        m.startswith("parameters.model.when.x: conditions must not form a cycle; got model -> x")
        for m in msgs
    ), msgs


def test_nested_mapping_and_numeric_parent_are_refused() -> None:
    msgs = errors(doc(SPACE.replace("when: {kernel: rbf}", "when: {kernel: {model: svm}}")))
    assert len(msgs) == 1 and msgs[0].startswith("parameters.gamma.when: ")
    assert "a nested condition goes on the parent parameter's own when" in msgs[0]
    msgs = errors(doc(SPACE.replace("when: {kernel: rbf}", "when: {C: 1}")))
    assert msgs == [
        "parameters.gamma.when.C: a condition must be on a categorical or discrete parameter; "
        "'C' is double"
    ]


def test_nested_conditions_are_allowed_and_resolved_parents_first() -> None:
    spec = spec_of()
    assert active_names(spec.parameters, {"model": "svm", "kernel": "rbf", "x": 1}) == [
        "model",
        "kernel",
        "gamma",
        "C",
        "x",
    ]
    # gamma's parent kernel is inactive for a forest, so gamma is too, whatever kernel says.
    full = {"model": "forest", "kernel": "rbf", "gamma": 0.5, "C": 1.0, "n_estimators": 20, "x": 2}
    assert active_params(spec.parameters, full) == {"model": "forest", "n_estimators": 20, "x": 2}


def test_python_api_when_and_bad_when() -> None:
    p = automl.double(1e-3, 1e3, log=True, when={"model": "svm"})
    assert p.when == {"model": ("svm",)}
    q = automl.categorical(["a", "b"], when={"model": ["forest", "boosting"]})
    assert q.when == {"model": ("forest", "boosting")}
    with pytest.raises(SpecError) as info:
        automl.int(1, 3, when={"model": {"x": 1}})
    assert info.value.path == "when"


def test_tune_refuses_a_condition_on_an_unknown_parameter(tmp_path: Any) -> None:
    with pytest.raises(SpecError) as info:
        automl.tune(
            lambda a, b=0: a,
            {"a": automl.int(1, 3), "b": automl.int(1, 3, when={"c": "x"})},
            max_trials=1,
            store=f"sqlite:///{tmp_path}/s.db",
        )
    assert str(info.value).startswith("parameters.b.when.c: must name a parameter")


def test_command_placeholder_of_a_conditional_parameter_needs_a_default() -> None:
    msgs = errors(doc(command="[python, t.py, '--C=${C}', '--x=${x}']"))
    assert len(msgs) == 1
    assert msgs[0].startswith("trial.command: uses ${C}, but 'C' is inactive unless model in")
    with_default = SPACE.replace(
        "step: 1, when: {model: svm}}", "step: 1, default: 1.0, when: {model: svm}}"
    )
    spec = parse_spec(doc(with_default, command="[python, t.py, '--C=${C}']"))
    assert spec.parameter("C").default == 1.0


def test_default_must_be_feasible_and_needs_a_condition() -> None:
    bad = SPACE.replace(
        "step: 1, when: {model: svm}}", "step: 1, default: 7.0, when: {model: svm}}"
    )
    assert errors(doc(bad)) == [
        "parameters.C.default: must be a value the parameter can take; got 7.0"
    ]
    bad = SPACE.replace(
        "x: {type: discrete, values: [1, 2]}", "x: {type: discrete, values: [1, 2], default: 1}"
    )
    msgs = errors(doc(bad))
    assert (
        len(msgs) == 1
        and msgs[0].startswith("parameters.x.default: ")
        and "needs a when" in msgs[0]
    )


# -- every algorithm ---------------------------------------------------------------------------


def _finished(trial_id: str, number: int, params: dict[str, Any], value: float) -> TrialRecord:
    return TrialRecord(
        id=trial_id,
        experiment_id="e",
        number=number,
        params=params,
        state=TrialState.SUCCEEDED,
        value=value,
        metrics={"loss": MetricSummary(value, value, value)},
        created_at=0.0,
    )


def _loss(params: dict[str, Any]) -> float:
    # svm with rbf and a large gamma is best: model-based samplers should find it.
    if params["model"] != "svm":
        return 2.0 + params["n_estimators"] / 100
    return (
        1.0 - (params.get("gamma", 0.0) if params["kernel"] == "rbf" else 0.0) + params["C"] / 10
    )


def _run(algorithm: str, n: int) -> list[dict[str, Any]]:
    spec = spec_of(algorithm)
    suggester = create_suggester(spec)
    seen: list[dict[str, Any]] = []
    for i in range(n):
        got = suggester.suggest([f"t{i}"])
        if not got:
            break
        params = dict(got[0].params)
        seen.append(params)
        suggester.tell(_finished(f"t{i}", i, params, _loss(params)))
    return seen


@pytest.mark.parametrize(
    "algorithm",
    ["auto", "tpe", "multivariate-tpe", "random", "sobol", "cmaes", "bayesianoptimization"],
)
def test_algorithm_samples_only_active_parameters(algorithm: str) -> None:
    seen = _run(algorithm, 24)
    assert len(seen) == 24
    bad = [p for p in seen if not valid(p)]
    assert bad == []
    # Both branches are explored, and a conditional parameter is sampled where it is active.
    assert {p["model"] for p in seen} >= {"svm", "forest"} or algorithm == "cmaes"
    assert any("gamma" in p for p in seen) or algorithm == "cmaes"


def test_tpe_models_the_conditional_parameters() -> None:
    # After its startup trials TPE concentrates on the good branch (svm, rbf).
    later = _run("{name: tpe, settings: {n_startup_trials: 8, seed: 3}}", 40)[20:]
    assert sum(p["model"] == "svm" and p.get("kernel") == "rbf" for p in later) >= 10


@pytest.mark.parametrize("algorithm", ["hyperband", "pbt", "evolution"])
def test_algorithm_that_cannot_search_a_conditional_space_refuses(algorithm: str) -> None:
    settings = (
        ", settings: {resource_name: n_estimators, r_l: 1}" if algorithm == "hyperband" else ""
    )
    with pytest.raises(SpecError) as info:
        create_suggester(parse_spec(doc(algorithm=f"{{name: {algorithm}{settings}}}")))
    msg = str(info.value)
    assert f"algorithm: {algorithm} cannot search a conditional space" in msg
    assert "['kernel', 'gamma', 'C', 'n_estimators']" in msg


@pytest.mark.parametrize("algorithm", ["enas", "darts"])
def test_nas_algorithms_refuse_parameters(algorithm: str) -> None:
    with pytest.raises(SpecError) as info:
        create_suggester(spec_of(algorithm))
    assert "parameters" in str(info.value) or "nas_config" in str(info.value)


def test_grid_enumerates_only_valid_combinations_once() -> None:
    seen = _run("grid", 1000)
    # svm: rbf 4 gamma x 3 C + linear 3 C = 15; forest and boosting: 3 each; all times 2 x.
    assert len(seen) == (15 + 3 + 3) * 2
    keys = [tuple(sorted(p.items())) for p in seen]
    assert len(set(keys)) == len(keys)
    assert all(valid(p) for p in seen)


def test_grid_resumes_without_repeating_a_point() -> None:
    spec = spec_of("grid")
    first = create_suggester(spec)
    done = [dict(s.params) for s in first.suggest([f"t{i}" for i in range(10)])]
    history = [_finished(f"t{i}", i, p, 1.0) for i, p in enumerate(done)]
    rest = create_suggester(spec, history)
    later = [dict(s.params) for s in rest.suggest([f"u{i}" for i in range(100)])]
    assert len(done) + len(later) == 42
    assert not {tuple(sorted(p.items())) for p in done} & {tuple(sorted(p.items())) for p in later}
    assert rest.exhausted


def test_auto_resumed_from_history_keeps_proposing_valid_points() -> None:
    spec = spec_of("auto")
    s = create_suggester(spec)
    history = []
    for i in range(8):
        p = dict(s.suggest([f"t{i}"])[0].params)
        history.append(_finished(f"t{i}", i, p, _loss(p)))
        s.tell(history[-1])
    again = create_suggester(spec, history)
    more = [dict(x.params) for x in again.suggest([f"u{i}" for i in range(6)])]
    assert len(more) == 6 and all(valid(p) for p in more)


# -- end to end: tune, a command experiment, the store, show, export, plots ---------------------

CALLS: list[dict[str, Any]] = []


def svm_or_forest(model: str, x: int, C: float = -1.0, n_estimators: int = -1) -> float:
    """Defaults for the parameters that can be inactive: a trial passes only the active ones."""
    CALLS.append({"model": model, "x": x, "C": C, "n_estimators": n_estimators})
    return C if model == "svm" else n_estimators / 10 + x


def test_tune_passes_and_stores_only_active_parameters(tmp_path: Any) -> None:
    CALLS.clear()
    result = automl.tune(
        svm_or_forest,
        {
            "model": automl.categorical(["svm", "forest"]),
            "C": automl.double(0.1, 1.0, when={"model": "svm"}),
            "n_estimators": automl.int(1, 9, when={"model": "forest"}),
            "x": automl.int(0, 1),
        },
        algorithm="tpe",
        max_trials=12,
        seed=4,
        store=f"sqlite:///{tmp_path}/s.db",
        runs_dir=tmp_path / "runs",
        name="e2e",
        progress=False,
    )
    assert len(CALLS) == 12
    for call in CALLS:  # the function's default stood in for the inactive parameter
        assert (call["C"] == -1.0) == (call["model"] == "forest")
        assert (call["n_estimators"] == -1) == (call["model"] == "svm")
    with automl.Client(f"sqlite:///{tmp_path}/s.db") as client:
        trials = client.store.trials.list(client.get("e2e").id)
    for t in trials:  # absent from the store, not null or zero
        assert set(t.params) == (
            {"model", "C", "x"} if t.params["model"] == "svm" else {"model", "n_estimators", "x"}
        )
    df = result.trials
    svm = df[df["params_model"] == "svm"]
    assert len(svm) > 0 and svm["params_n_estimators"].isna().all()
    assert svm["params_C"].notna().all()
    from automl.plots import parallel_figure, param_importances

    rows = [(t.number, dict(t.params), t.value, t.state.value) for t in trials]
    with automl.Client(f"sqlite:///{tmp_path}/s.db") as client:
        spec = client.get("e2e").spec
    imp = param_importances(rows, spec)
    # The conditional parameters are ranked on the trials that have them; the shares sum to 1.
    assert {"C", "n_estimators"} <= set(imp) and abs(sum(imp.values()) - 1.0) < 1e-6
    fig = parallel_figure(rows, spec)
    axes = {d["label"]: d for d in fig.data[0].dimensions}
    c_axis = axes["C"]
    assert c_axis["ticktext"][0] == "inactive"  # missing, drawn apart, not as zero
    gap = c_axis["tickvals"][0]
    assert gap < 0.1 and c_axis["range"][0] == gap
    for (_, params, _, _), v in zip(rows, c_axis["values"], strict=True):
        assert (v == gap) == ("C" not in params)
    # The dashboard's line chart leaves the axis out of an inactive trial's line (a gap).
    from dashboard.plots import parallel_lines_figure

    lines = parallel_lines_figure(rows, spec)
    names = [p.name for p in spec.parameters]
    ys = [y for trace in lines.data for y in trace.y]
    xs = [x for trace in lines.data for x in trace.x]
    at_c = [y for x, y in zip(xs, ys, strict=True) if x == names.index("C")]
    n_forest = sum(p["model"] == "forest" for _, p, _, _ in rows)
    assert sum(y is None for y in at_c) == n_forest and n_forest > 0


COMMAND_DOC = """
name: cmd
objective: {metric: loss, direction: minimize}
algorithm: {name: grid}
parameters:
  model: {type: categorical, values: [svm, forest]}
  C: {type: double, min: 0.5, max: 1.0, step: 0.5, when: {model: svm}, default: 0.5}
  n: {type: int, min: 1, max: 2, when: {model: forest}}
trial:
  command: [python, trial.py, "${model}", "${C}"]
budget: {max_trials: 10}
"""

TRIAL = """
import sys
print(sys.argv[1:], flush=True)
print(f"loss={float(sys.argv[2])}")
"""


def test_command_experiment_renders_the_default_and_show_marks_inactive(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from automl.cli import app

    (tmp_path / "trial.py").write_text(TRIAL)
    (tmp_path / "exp.yaml").write_text(COMMAND_DOC)
    url = f"sqlite:///{tmp_path}/s.db"
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "run",
            str(tmp_path / "exp.yaml"),
            "--store",
            url,
            "--no-progress",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        env={"COLUMNS": "200"},
    )
    assert r.exit_code == 0, r.stdout
    with automl.Client(url) as client:
        trials = client.store.trials.list(client.get("cmd").id)
    # The grid: svm with C 0.5 and 1.0, forest with n 1 and 2; nothing else, nothing twice.
    assert sorted(tuple(sorted(t.params.items())) for t in trials) == [
        (("C", 0.5), ("model", "svm")),
        (("C", 1.0), ("model", "svm")),
        (("model", "forest"), ("n", 1)),
        (("model", "forest"), ("n", 2)),
    ]
    assert {t.state for t in trials} == {TrialState.SUCCEEDED}
    forest = [t for t in trials if t.params["model"] == "forest"]
    assert all(t.value == 0.5 for t in forest)  # ${C} took its default while inactive
    shown = runner.invoke(app, ["show", "cmd", "--store", url], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.stdout
    forest_rows = [line for line in shown.stdout.splitlines() if "forest" in line]
    assert len(forest_rows) == 2 and all(" - " in line for line in forest_rows)


def test_katib_export_refuses_conditions() -> None:
    from automl.spec import to_katib

    with pytest.raises(SpecError) as info:
        to_katib(spec_of())
    assert info.value.path == "parameters.kernel.when"
    assert "Katib's parameters are unconditional" in str(info.value)


@pytest.mark.parametrize("algorithm", ["tpe", "random", "auto", "grid"])
def test_an_enqueued_configuration_is_pending_with_its_active_parameters(algorithm: str) -> None:
    s = create_suggester(spec_of(algorithm))
    given = {"model": "svm", "kernel": "linear", "C": 2.0, "x": 1}
    s.add_pending(
        TrialRecord(id="q", experiment_id="e", number=0, params=given, state=TrialState.RUNNING)
    )
    s.tell(_finished("q", 0, given, 0.5))
    seen = [dict(x.params) for x in s.suggest([f"t{i}" for i in range(20)])]
    assert len(seen) == 20 and all(valid(p) for p in seen)
    if algorithm in ("grid", "auto"):  # finite or deduplicating: the point is taken
        assert given not in seen
    if algorithm == "tpe":  # the study holds what ran, no inactive values (random holds nothing)
        from search._optuna import frozen_trials

        assert frozen_trials(s)[0].params.keys() == {"model", "kernel", "C", "x"}


def test_a_dry_run_renders_the_default_of_an_inactive_parameter(tmp_path: Any) -> None:
    from automl.spec._render import render_trials

    (tmp_path / "trial.py").write_text(TRIAL)
    spec = parse_spec(COMMAND_DOC, base_dir=tmp_path)
    rendered = render_trials(spec, 4)
    assert len(rendered) == 4
    for r in rendered:
        assert r.argv is not None
        c = r.params.get("C", 0.5)  # forest trials: C is inactive, its default stands in
        assert r.argv[-2:] == [str(r.params["model"]), repr(c)], r.argv
        assert ("C" in r.params) == (r.params["model"] == "svm")


def test_dashboard_pages_of_a_conditional_and_a_define_by_run_experiment(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    url = f"sqlite:///{tmp_path}/s.db"
    space = {
        "model": automl.categorical(["svm", "forest"]),
        "C": automl.double(0.1, 1.0, when={"model": "svm"}),
        "n_estimators": automl.int(1, 9, when={"model": "forest"}),
        "x": automl.int(0, 1),
    }
    common: dict[str, Any] = {"store": url, "runs_dir": tmp_path / "runs", "progress": False}
    automl.tune(svm_or_forest, space, max_trials=8, seed=1, name="cond", **common)

    def by_run(trial: Any) -> float:
        if trial.suggest_categorical("model", ["a", "b"]) == "a":
            return trial.suggest_float("lr", 1e-3, 1.0, log=True)
        return 1.0 + trial.suggest_int("depth", 1, 5)

    automl.tune(by_run, max_trials=8, seed=1, name="dbr", **common)
    app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    monkeypatch.setenv("AUTOML_STORE", url)
    monkeypatch.delenv("AUTOML_READ_ONLY", raising=False)
    for name in ("cond", "dbr"):
        at = AppTest.from_file(app, default_timeout=60)
        at.query_params["experiment"] = name
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        # history, parallel coordinates, importance, slice, contour: inactive values are gaps
        assert len(at.get("plotly_chart")) >= 5, name
        trials = at.dataframe[0].value
        assert len(trials) == 8


def test_a_child_declared_before_its_parent_and_typed_condition_values() -> None:
    spec = parse_spec(
        doc(
            """
  lr: {type: double, min: 0.1, max: 1, when: {use_lr: true}}
  use_lr: {type: categorical, values: [true, false]}
  width: {type: int, min: 1, max: 4, when: {depth: [2, 3]}}
  depth: {type: discrete, values: [1, 2, 3]}
""",
            algorithm="random",
        )
    )
    s = create_suggester(spec)
    seen = [dict(x.params) for x in s.suggest([f"t{i}" for i in range(40)])]
    for p in seen:
        assert ("lr" in p) == (p["use_lr"] is True), p
        assert ("width" in p) == (p["depth"] in (2, 3)), p
    assert {p["use_lr"] for p in seen} == {True, False}
    # A stored value written as text (Katib passes strings) still decides the condition.
    assert active_names(spec.parameters, {"use_lr": "true", "depth": "2"}) == [
        "use_lr",
        "lr",
        "depth",
        "width",
    ]
