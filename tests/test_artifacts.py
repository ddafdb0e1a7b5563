"""Trial artifacts: save_model / log_outputs, what the store records, and getting models back."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import automl
from automl import Client
from automl.core import ExperimentSpec, Objective, Parameter, TrialState, TrialTemplate
from automl.errors import AutoMLError, NotFoundError
from automl.store import Store
from automl.store import _schema as S

X, Y = load_iris(return_X_y=True)


def fit_and_save(C: float) -> float:
    """An objective that keeps its model and a structured output."""
    model = LogisticRegression(C=C, max_iter=300).fit(X, Y)
    automl.save_model(model)
    automl.log_outputs(summary={"C": C, "classes": 3})
    info = automl.current_trial()
    assert info is not None and info.artifact_dir is not None
    (Path(info.artifact_dir) / "notes.txt").write_text("any file is kept")
    return float(model.score(X, Y))


def test_in_process_trials_save_and_load_sklearn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # automl.tune keeps trial files under ./automl-runs
    url = f"sqlite:///{tmp_path / 'a.db'}"
    res = automl.tune(
        fit_and_save,
        {"C": automl.double(0.01, 10, log=True)},
        direction="maximize",
        max_trials=3,
        seed=0,
        store=url,
        name="keep",
    )
    best = res.best_trial
    assert best is not None
    out = best.outputs
    expected_dir = tmp_path / "automl-runs" / "keep" / best.id / "artifacts"
    assert out["artifact_dir"] == str(expected_dir)
    assert set(out["files"]) == {"model.joblib", "model.json", "outputs.json", "notes.txt"}
    meta = out["models"]["model"]
    assert meta["format"] == "sklearn"
    assert meta["file"] == "model.joblib"
    assert meta["class"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert meta["n_features_in_"] == 4
    assert "scikit-learn" in meta["versions"]
    assert out["data"] == {"summary": {"C": best.params["C"], "classes": 3}}

    # The best trial's model is one call away, from the result and from a later client.
    model = res.best_model()
    assert isinstance(model, LogisticRegression)
    assert pytest.approx(best.params["C"]) == model.C
    assert model.score(X, Y) == pytest.approx(best.value)
    assert res.artifacts == expected_dir
    with Client(url) as client:
        assert client.artifacts("keep") == expected_dir
        stored = {t.number: t for t in client.trials("keep")}
        assert all(t.outputs["models"]["model"]["format"] == "sklearn" for t in stored.values())
        other = next(n for n, t in stored.items() if t.id != best.id)
        m2 = client.load_model("keep", trial=other)
        assert pytest.approx(stored[other].params["C"]) == m2.C
        assert automl.load_model(expected_dir / "model.json").C == model.C
        with pytest.raises(NotFoundError, match="no trial number 99"):
            client.artifacts("keep", trial=99)
        with pytest.raises(NotFoundError, match=r"no model 'encoder'.*saved models: model"):
            client.load_model("keep", model="encoder")


def plain(x: float) -> float:
    return x * x


def test_trial_without_saved_model_is_a_clear_error(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = automl.tune(
        plain, {"x": automl.double(-1, 1)}, max_trials=2, seed=0, store=str(tmp_path / "b.db")
    )
    assert res.best_trial is not None and res.best_trial.outputs == {}
    with pytest.raises(NotFoundError, match=r"saved no artifacts.*automl\.save_model\(obj\)"):
        res.best_model()
    with Client(str(tmp_path / "b.db")) as client, pytest.raises(NotFoundError, match="saved no"):
        client.load_model(res.name)


def test_save_model_outside_a_trial(tmp_path: Path) -> None:
    model = LogisticRegression(max_iter=300).fit(X, Y)
    with pytest.raises(AutoMLError, match=r"outside a trial.*directory="):
        automl.save_model(model)
    with pytest.raises(AutoMLError, match="outside a trial"):
        automl.log_outputs(a=1)
    with pytest.raises(AutoMLError, match="name must be"):
        automl.save_model(model, "../escape", directory=tmp_path)
    with pytest.raises(AutoMLError, match="JSON-serializable"):
        automl.log_outputs(directory=tmp_path, bad=object())
    path = automl.save_model(model, "clf", directory=tmp_path, input_example=X[:2])
    assert path == tmp_path / "clf.joblib"
    meta = json.loads((tmp_path / "clf.json").read_text())
    assert meta["input_shape"] == [2, 4] and meta["input_dtype"] == "float64"
    assert (
        automl.load_model(tmp_path, "clf").predict(X[:5]).tolist() == model.predict(X[:5]).tolist()
    )
    # Anything else that pickles.
    automl.save_model({"vocab": ["a", "b"]}, "vocab", directory=tmp_path)
    assert json.loads((tmp_path / "vocab.json").read_text())["format"] == "pickle"
    assert automl.load_model(tmp_path, "vocab") == {"vocab": ["a", "b"]}


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_torch_module_whole_and_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(5, 4)
    path = automl.save_model(net, directory=tmp_path, input_example=x)
    assert path == tmp_path / "model.pt"
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["format"] == "torch" and meta["state_dict"] == "model.state_dict.pt"
    assert meta["n_features_in_"] == 4 and meta["input_shape"] == [5, 4]
    loaded = automl.load_model(tmp_path)
    assert isinstance(loaded, Net)
    assert torch.equal(loaded(x), net(x))
    # The state dict loads with weights_only=True into a freshly built module.
    fresh = Net()
    fresh.load_state_dict(torch.load(tmp_path / "model.state_dict.pt", weights_only=True))
    assert torch.equal(fresh(x), net(x))


def test_torch_module_that_does_not_pickle_keeps_its_state_dict(tmp_path: Path) -> None:
    class Local(torch.nn.Module):  # defined in a function: pickle cannot find the class
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

    automl.save_model(Local(), directory=tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["file"] == "model.state_dict.pt" and "does not pickle" in meta["note"]
    assert not (tmp_path / "model.pt").exists()
    state = automl.load_model(tmp_path)
    assert torch.equal(state["w"], torch.ones(2))


def torch_objective(lr: float) -> float:
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    xs, ys = torch.tensor(X, dtype=torch.float32), torch.tensor(Y)
    for _ in range(20):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xs), ys)
        loss.backward()
        opt.step()
    automl.save_model(net)
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(net(xs), ys))


def test_in_process_torch_trial_best_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = automl.tune(
        torch_objective,
        {"lr": automl.double(0.01, 0.5, log=True)},
        max_trials=2,
        seed=1,
        store=str(tmp_path / "t.db"),
    )
    net = res.best_model()
    assert isinstance(net, Net)
    xs, ys = torch.tensor(X, dtype=torch.float32), torch.tensor(Y)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(net(xs), ys)
    assert float(loss) == pytest.approx(res.best_value, rel=1e-5)


SCRIPT = """
import os, sys
from pathlib import Path
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier
import automl

depth = int(sys.argv[1])
X, y = load_iris(return_X_y=True)
clf = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X, y)
automl.save_model(clf, "tree")
Path(os.environ["AUTOML_ARTIFACT_DIR"], "extra.csv").write_text("a,b\\n")
automl.log_outputs(depth=depth, leaves=int(clf.get_n_leaves()))
print(f"accuracy={clf.score(X, y)}")
"""


def test_subprocess_trials_save_models(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(textwrap.dedent(SCRIPT))
    (tmp_path / "exp.yaml").write_text(
        textwrap.dedent(
            """
            name: sub-art
            objective: {metric: accuracy, direction: maximize}
            algorithm: grid
            parameters:
              depth: {type: int, min: 1, max: 2}
            budget: {max_trials: 2, parallel: 2}
            trial:
              command: [python, train.py, "${depth}"]
            """
        )
    )
    runs = tmp_path / "runs"
    with Client(str(tmp_path / "s.db"), runs_dir=runs) as client:
        res = client.run(tmp_path / "exp.yaml")
        trials = client.trials("sub-art")
        assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2, [t.message for t in trials]
        for t in trials:
            assert t.outputs["artifact_dir"] == str(
                (runs / "sub-art" / t.id / "artifacts").absolute()
            )
            assert t.outputs["files"] == ["extra.csv", "outputs.json", "tree.joblib", "tree.json"]
            assert t.outputs["data"]["depth"] == t.params["depth"]
            assert t.outputs["models"]["tree"]["class"].endswith("DecisionTreeClassifier")
        assert res.best_params == {"depth": 2}
        tree = client.load_model("sub-art", model="tree")
        assert tree.max_depth == 2
        assert tree.score(X, Y) == pytest.approx(res.best_value)
        # result objects from the client work the same way
        assert res.best_model("tree").max_depth == 2
        best_dir = client.artifacts("sub-art")
    # `automl show` says where the best trial's models are; --json carries every trial's outputs
    from typer.testing import CliRunner

    from automl.cli import app

    url = f"sqlite:///{tmp_path / 's.db'}"
    shown = CliRunner().invoke(app, ["show", "sub-art", "--store", url], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert f"tree (sklearn) in {best_dir}" in " ".join(shown.output.split())
    data = json.loads(
        CliRunner().invoke(app, ["show", "sub-art", "--store", url, "--json"]).output
    )
    assert {t["outputs"]["artifact_dir"] for t in data["trial_list"]} == {
        str((runs / "sub-art" / t.id / "artifacts").absolute()) for t in trials
    }


def test_migration_adds_outputs_to_an_existing_database(store_url: str) -> None:
    """A store made by revision 0001 upgrades in place; old trials read as having no outputs."""
    from alembic import command
    from alembic.config import Config

    from automl.store._sql import normalize_url

    engine = sa.create_engine(normalize_url(store_url))
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(automl.store.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    with engine.begin() as conn:
        cols = {c["name"] for c in sa.inspect(conn).get_columns("automl_trials")}
        assert "outputs" not in cols
        conn.execute(
            sa.text(
                "INSERT INTO automl_experiments (id, name, spec, state, reason, message, "
                "created_at, stop_requested, sampler_state) VALUES "
                "('e1', 'old', :spec, 'Succeeded', '', '', 1.0, :f, '{}')"
            ),
            {"spec": _spec().to_json(), "f": False},
        )
        conn.execute(
            sa.text(
                "INSERT INTO automl_trials (id, experiment_id, number, params, state, value, "
                "metrics, created_at, message, attempt, attrs, runner) VALUES "
                "('old-t0', 'e1', 0, '{\"x\": 1.0}', 'Succeeded', 0.5, '{}', 1.0, '', 1, '{}', "
                "'{}')"
            )
        )
    engine.dispose()
    store = Store(store_url)
    try:
        with store.engine.connect() as conn:
            cols = {c["name"] for c in sa.inspect(conn).get_columns("automl_trials")}
            version = conn.execute(sa.text("SELECT version_num FROM automl_alembic_version"))
            assert version.scalar() == S.HEAD  # every later migration ran too
        assert "outputs" in cols
        exp = store.experiments.get("old")
        [old] = store.trials.list(exp.id)
        assert old.outputs == {} and old.value == 0.5
        outputs = {"artifact_dir": "/x", "models": {}, "files": ["a.txt"], "data": {"k": [1, 2]}}
        store.trials.finish(old.id, TrialState.SUCCEEDED, 0.25, {}, "", outputs=outputs)
        [again] = store.trials.list(exp.id)
        assert again.outputs == outputs and again.value == 0.25
    finally:
        store.close()


def _spec() -> ExperimentSpec:
    return ExperimentSpec(
        name="old",
        objective=Objective(type="minimize", metric="objective"),
        parameters=(Parameter(name="x", type="double", min=0.0, max=2.0),),
        trial_template=TrialTemplate(command=(sys.executable, "-c", "pass")),
    )


def test_collect_outputs_is_none_for_empty_or_missing(tmp_path: Path) -> None:
    from automl._artifacts import collect_outputs

    assert collect_outputs(tmp_path / "missing") is None
    assert collect_outputs(tmp_path) is None
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "arr.npy", np.arange(3))
    got = collect_outputs(tmp_path)
    assert got == {
        "artifact_dir": str(tmp_path),
        "models": {},
        "files": ["arr.npy", "sub/"],
        "data": {},
    }
