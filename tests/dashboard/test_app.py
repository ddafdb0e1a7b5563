"""The Streamlit app, page by page, with AppTest on a seeded store and an empty one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import automl
from dashboard.queries import Queries
from tests.dashboard.conftest import run_app


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AUTOML_READ_ONLY", raising=False)
    monkeypatch.delenv("AUTOML_ALLOW_REMOTE_ACTIONS", raising=False)
    yield


def _app(monkeypatch: pytest.MonkeyPatch, url: str, read_only: bool = False, **qp: str) -> AppTest:
    monkeypatch.setenv("AUTOML_STORE", url)
    if read_only:
        monkeypatch.setenv("AUTOML_READ_ONLY", "1")
    return run_app(**qp)


def _plotly(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def test_experiments_page(monkeypatch: pytest.MonkeyPatch, seeded_url: str) -> None:
    at = _app(monkeypatch, seeded_url)
    assert at.title[0].value == "Experiments"
    df = at.dataframe[0].value
    assert set(df["name"]) == {"quad", "curves", "broken"}
    assert set(df.columns) >= {"status", "reason", "algorithm", "progress", "best", "elapsed_s"}
    at.multiselect(key="exp_status").select("Failed").run()
    assert list(at.dataframe[0].value["name"]) == ["broken"]


def test_empty_store(monkeypatch: pytest.MonkeyPatch, empty_url: str) -> None:
    at = _app(monkeypatch, empty_url)
    assert at.title[0].value == "Experiments"
    assert "No experiments" in at.info[0].value


def test_experiment_page(monkeypatch: pytest.MonkeyPatch, seeded_url: str) -> None:
    at = _app(monkeypatch, seeded_url, experiment="quad")
    assert at.title[0].value == "Experiment quad"
    best = automl.Client(seeded_url).best_trial("quad")
    assert best is not None and best.value is not None
    assert at.metric[0].value == f"{best.value:.6g}"
    assert "Best" in at.metric[0].label
    # history, parallel coordinates, importance, slice, contour
    assert _plotly(at) >= 5
    trials = at.dataframe[0].value
    assert len(trials) == 12
    assert {"param.x", "param.y", "param.kind", "metric.objective"} <= set(trials.columns)
    at.selectbox(key="trial_sort").select("value").run()
    values = list(at.dataframe[0].value["value"])
    assert values == sorted(values)
    assert not any("max_trial_count" in c.value for c in at.code)  # the spec: on request
    at.toggle(key="show_spec").set_value(True).run()
    assert any("maxTrialCount" in c.value or "max_trial_count" in c.value for c in at.code)


def test_experiment_page_curves_and_failed(
    monkeypatch: pytest.MonkeyPatch, seeded_url: str
) -> None:
    at = _app(monkeypatch, seeded_url, experiment="curves")
    charts = at.get("plotly_chart")
    assert charts  # history + curves + search space plots
    at.multiselect(key="trial_states").select("EarlyStopped").run()
    assert set(at.dataframe[0].value["state"]) == {"EarlyStopped"}
    at = _app(monkeypatch, seeded_url, experiment="broken")
    assert at.metric[0].value == "-"
    assert at.metric[1].value == "Failed"
    at = _app(monkeypatch, seeded_url, experiment="nope")
    assert "No experiment" in at.error[0].value


def test_trial_page(monkeypatch: pytest.MonkeyPatch, seeded_url: str) -> None:
    q = Queries(automl.Client(seeded_url).store)
    exp = q.experiment("curves")
    assert exp is not None
    row = q.trials_page(exp.id, states=["EarlyStopped"], limit=1).rows[0]
    at = _app(monkeypatch, seeded_url, trial=row["id"])
    assert at.title[0].value == f"Trial {row['id']}"
    assert at.metric[0].value == "EarlyStopped"
    assert any("medianstop" in w.value for w in at.warning)
    assert _plotly(at) == 1
    assert at.get("json")


def test_compare_page(monkeypatch: pytest.MonkeyPatch, seeded_url: str) -> None:
    at = _app(monkeypatch, seeded_url, page="compare")
    assert at.title[0].value == "Compare experiments"
    assert _plotly(at) == 2


def test_steer_read_only(monkeypatch: pytest.MonkeyPatch, seeded_url: str) -> None:
    at = _app(monkeypatch, seeded_url, read_only=True, page="steer")
    assert "read-only" in at.warning[0].value
    assert len(at.button) == 0
    at = _app(monkeypatch, seeded_url, read_only=True, experiment="quad")
    assert len(at.button) == 0


def test_steer_validates_yaml(monkeypatch: pytest.MonkeyPatch, empty_url: str) -> None:
    at = _app(monkeypatch, empty_url, page="steer")
    assert at.button(key="submit").disabled
    bad = (
        "name: x\nobjective: {type: minimize, metric: loss}\n"
        "parameters:\n  - {name: a, type: double, min: 2, max: 1}\n"
    )
    at.text_area(key="spec_text").input(bad).run()
    assert at.error and at.dataframe[0].value["path"].str.contains("parameters").any()
    assert at.button(key="submit").disabled


def test_steer_actions(monkeypatch: pytest.MonkeyPatch, seeded_url: str, tmp_path) -> None:
    import shutil

    db = tmp_path / "copy.db"
    shutil.copy(seeded_url.removeprefix("sqlite:///"), db)
    url = f"sqlite:///{db}"
    at = _app(monkeypatch, url, page="steer", experiment="quad")
    assert at.selectbox(key="steer_exp").value == "quad"
    assert at.button(key="stop").disabled  # finished
    at.number_input(key="budget").set_value(20).run()
    at.button(key="raise").click().run()
    assert not at.exception
    assert automl.Client(url).get("quad").spec.max_trial_count == 20
    at.selectbox(key="steer_exp").select("broken").run()
    at.checkbox(key="confirm_delete").check().run()
    at.button(key="delete").click().run()
    assert any("Deleted broken" in s.value for s in at.success)
    names = [e.name for e in automl.Client(url).list()]
    assert "broken" not in names and "quad" in names


def test_steer_submit_goes_through_the_queue(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'submit.db'}"
    monkeypatch.chdir(tmp_path)  # the controller's automl-runs/ lands here
    monkeypatch.setenv("AUTOML_DASHBOARD_SPECS", str(tmp_path / "specs"))
    spec = (
        "name: submitted\n"
        "objective: {metric: loss, direction: minimize}\n"
        "algorithm: {name: random}\n"
        "parameters:\n  x: {type: double, min: 0, max: 1}\n"
        "budget: {max_trials: 2}\n"
        "trial:\n"
        "  command: [python, -c, \"print('loss=${x}')\"]\n"
    )
    at = _app(monkeypatch, url, page="steer")
    at.text_area(key="spec_text").input(spec).run()
    assert not at.error, [e.value for e in at.error]
    assert "Valid: submitted" in at.success[0].value
    at.button(key="submit").click().run()
    assert any("Queued [submitted]" in s.value for s in at.success), [e.value for e in at.error]
    client = automl.Client(url)
    assert client.get("submitted").state.value == "Created"  # queued, nobody runs it yet
    worker = subprocess.Popen([sys.executable, "-m", "automl", "worker", "--store", url])
    try:
        exp = client.wait("submitted", timeout=120, poll=0.2)
    finally:
        worker.terminate()
        worker.wait(60)
    assert exp.state.value == "Succeeded"
    assert len(automl.Client(url).trials("submitted")) == 2


def test_config_and_log_tail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dashboard import app, trial_page

    monkeypatch.setenv("AUTOML_STORE", "sqlite:///env.db")
    cfg = app.config(["--read-only"])
    assert cfg.store == "sqlite:///env.db" and cfg.read_only and not cfg.allow_remote_actions
    cfg = app.config(["--store", "sqlite:///x.db", "--allow-remote-actions"])
    assert cfg.store == "sqlite:///x.db" and not cfg.read_only and cfg.allow_remote_actions
    assert app.actions_allowed(app.config(["--read-only"]))[0] is False
    (tmp_path / "trial.log").write_text("".join(f"line {i}\n" for i in range(500)))
    tail = trial_page.log_tail(str(tmp_path), lines=3)
    assert tail == "line 497\nline 498\nline 499"
    assert trial_page.log_tail(None) is None
    assert trial_page.log_tail(str(tmp_path / "nope")) is None


def _frame(at: AppTest, *columns: str) -> Any:
    """The one table on the page with these columns."""
    (df,) = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    return df


def _texts(at: AppTest) -> str:
    """Every markdown, caption and code text on the page."""
    return "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.code, *at.subheader])


def test_trial_page_shows_saved_models_and_files(
    monkeypatch: pytest.MonkeyPatch, outputs_url: str
) -> None:
    client = automl.Client(outputs_url)
    trial = client.trials("saved")[0]
    where = trial.outputs["artifact_dir"]
    assert (Path(where) / "clf.joblib").is_file()  # automl.save_model wrote it
    at = _app(monkeypatch, outputs_url, trial=trial.id)
    assert "Outputs" in [s.value for s in at.subheader]
    assert f"Artifact directory: `{where}`" in [m.value for m in at.markdown]
    models = _frame(at, "model", "format")
    assert list(models["model"]) == ["clf"] and list(models["format"]) == ["sklearn"]
    assert models["class"][0].endswith("LogisticRegression")
    assert models["file"][0] == "clf.joblib"
    files = next(c.value for c in at.code if "clf.joblib" in c.value)
    assert set(files.splitlines()) == {"clf.joblib", "clf.json"}
    # Not a NAS experiment: no architecture section.
    assert not any(s.value.startswith("Architecture") for s in at.subheader)


def test_experiment_page_shows_best_trials_artifacts(
    monkeypatch: pytest.MonkeyPatch, outputs_url: str
) -> None:
    best = automl.Client(outputs_url).best_trial("saved")
    assert best is not None
    at = _app(monkeypatch, outputs_url, experiment="saved")
    line = f"Best trial's artifacts: clf (sklearn) in `{best.outputs['artifact_dir']}`"
    assert line in [m.value for m in at.markdown]


def test_nas_trial_page_shows_the_architecture(
    monkeypatch: pytest.MonkeyPatch, outputs_url: str
) -> None:
    from search import Architecture, NasSpace

    client = automl.Client(outputs_url)
    spec = client.get("nas-tiny").spec
    names = NasSpace.from_spec(spec).operation_names
    for trial in client.trials("nas-tiny")[:2]:
        arch = Architecture.from_dict(trial.attrs["architecture"])
        at = _app(monkeypatch, outputs_url, trial=trial.id)
        assert f"Architecture of {trial.id}" in [s.value for s in at.subheader]
        rows = _frame(at, "layer", "operation")
        assert list(rows["layer"]) == [0, 1, 2]
        assert list(rows["operation"]) == [names[op] for op in arch.ops]
        # Layer 2's inputs: layer 1, plus the network input / layer 0 where a skip bit is set.
        skips = arch.skips[2]
        expected = ["layer 1"] + [("input", "layer 0")[j] for j in range(2) if skips[j]]
        assert rows["inputs"][2] == ", ".join(expected)
        assert "This trial saved no artifacts." in [c.value for c in at.caption]
    best = client.best_trial("nas-tiny")
    assert best is not None
    at = _app(monkeypatch, outputs_url, experiment="nas-tiny")
    assert f"Architecture of {best.id}" in [s.value for s in at.subheader]
    best_arch = Architecture.from_dict(best.attrs["architecture"])
    ops = list(_frame(at, "layer", "operation")["operation"])
    assert ops == [names[op] for op in best_arch.ops]


def test_darts_trial_page_shows_the_genotype(
    monkeypatch: pytest.MonkeyPatch, outputs_url: str
) -> None:
    (trial,) = automl.Client(outputs_url).trials("darts-tiny")
    found = trial.outputs["data"]["nas"]  # stored by nas.darts_search (record_result)
    assert found["kind"] == "darts"
    at = _app(monkeypatch, outputs_url, trial=trial.id)
    assert f"Genotype of {trial.id} (DARTS)" in [s.value for s in at.subheader]
    rows = _frame(at, "cell", "edges")
    normal = found["genotype"]["normal"]
    assert list(rows["cell"]) == ["normal"] * len(normal)  # 1 layer: no reduction cell
    op, src = normal[0][0]
    state = {0: "c_{k-2}", 1: "c_{k-1}"}.get(src, f"node {src - 2}")
    assert rows["edges"][0].startswith(f"{op} <- {state}")
    assert found["genotype_str"] in [c.value for c in at.code]
    assert "outputs.json" in _texts(at)
