"""Notebooks: the quickstart executes end to end, and a notebook can be the trial (papermill).

Every kernel here is real (ipykernel over loopback ZMQ), started by papermill; each costs about
1.5 s to start, so the budgets are small.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import papermill  # noqa: F401  (a dev dependency: missing fails, never skips)
import pytest
from typer.testing import CliRunner

import automl
from automl.cli import app
from automl.core import ExperimentSpec, Objective, Parameter, TrialState, TrialTemplate
from automl.errors import SpecError
from automl.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "notebooks"


def _outputs(nb: Any) -> list[tuple[int, dict[str, Any]]]:
    return [
        (i, o)
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    ]


def test_quickstart_notebook_executes_and_tunes(tmp_path: Path) -> None:
    from trials._notebook import run_notebook

    url = f"sqlite:///{tmp_path / 'quick.db'}"
    out = tmp_path / "quickstart.out.ipynb"
    run_notebook(
        EXAMPLES / "quickstart.ipynb",
        out,
        {"n_trials": 3, "store": url},
        cwd=tmp_path,
        kernel_dir=tmp_path / "kernel",
        echo=False,
    )
    nb = nbformat.read(out, as_version=4)
    outputs = _outputs(nb)
    assert not [o for _, o in outputs if o["output_type"] == "error"]

    # It tuned: the store holds the experiment with its three trials, each with a saved model.
    with automl.Client(url) as client:
        [exp] = client.list()
        trials = client.trials(exp.name)
        assert len(trials) == 3
        assert {t.state for t in trials} == {TrialState.SUCCEEDED}
        assert all(t.outputs["models"]["model"]["format"] == "sklearn" for t in trials)
        best = client.best_trial(exp.name)
    assert best is not None
    # Trial files went under the kernel's working directory (papermill's cwd).
    assert (tmp_path / "automl-runs" / exp.name / best.id / "artifacts" / "model.joblib").is_file()

    texts = [
        "".join(o.get("data", {}).get("text/plain", "")) + "".join(o.get("text", ""))
        for _, o in outputs
    ]
    # The live progress display ended in its final state (updated in place, one output).
    progress = [t for t in texts if "trials ·" in t]
    assert len(progress) == 1, progress
    assert f"{exp.name}: 3/3 trials · best accuracy={best.value:.6g}" in progress[0]
    assert progress[0].endswith("· done")
    # The TuneResult's HTML summary and the trials DataFrame.
    htmls = ["".join(o.get("data", {}).get("text/html", "")) for _, o in outputs]
    assert any("automl-result" in h and exp.name in h for h in htmls)
    assert any("<table" in h and "params_gamma" in h for h in htmls)
    # Three Plotly figures: history, parallel coordinates, importance.
    figures = [
        o["data"]["application/vnd.plotly.v1+json"]
        for _, o in outputs
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    kinds = [fig["data"][0]["type"] for fig in figures]
    assert kinds == ["scatter", "parcoords", "bar"]
    assert sorted(figures[2]["data"][0]["y"]) == ["C", "gamma", "kernel"]
    # The best model, loaded and scored in the notebook.
    assert any(f"best trial {best.number}:" in t and "test accuracy" in t for t in texts)


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    def invoke(*args: str) -> Any:
        return runner.invoke(app, [*args, "--store", url], env={"COLUMNS": "200"})

    invoke.url = url  # type: ignore[attr-defined]
    return invoke


def test_notebook_experiment_runs_trials_under_papermill(tmp_path: Path, cli: Any) -> None:
    runs = tmp_path / "runs"
    r = cli(
        "run",
        str(EXAMPLES / "experiment.yaml"),
        "--max-trials",
        "2",
        "--no-progress",
        "--runs-dir",
        str(runs),
    )
    assert r.exit_code == 0, r.stdout + r.stderr
    with automl.Client(cli.url) as client:
        trials = client.trials("notebook-digits")
        assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2, [t.message for t in trials]
        for t in trials:
            # accuracy came from automl.report in the kernel (it inherited AUTOML_REPORT_FILE),
            # fit_seconds from a fit_seconds=... line on its stdout.
            assert 0.5 < t.metrics["accuracy"].latest <= 1.0
            reports = (Path(t.workdir or "") / "metrics.jsonl").read_text().splitlines()
            assert [json.loads(line)["metrics"] for line in reports] == [
                {"accuracy": t.metrics["accuracy"].latest}
            ]
            assert t.metrics["fit_seconds"].latest > 0
            executed = Path(t.outputs["artifact_dir"]) / "executed.ipynb"
            assert executed == runs / "notebook-digits" / t.id / "artifacts" / "executed.ipynb"
            nb = nbformat.read(executed, as_version=4)
            injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
            assert len(injected) == 1
            assert f"C = {t.params['C']!r}" in injected[0].source
            assert "model" in t.outputs["models"]
        best = client.best_trial("notebook-digits")
        assert best is not None
        model = client.load_model("notebook-digits")
        assert pytest.approx(best.params["C"]) == model.C
        assert model.gamma == pytest.approx(best.params["gamma"])


def _notebook(path: Path, tagged: bool = True, source: str = "C = 1.0", **meta: Any) -> Path:
    nb = nbformat.v4.new_notebook(
        metadata=meta
        or {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )
    cell = nbformat.v4.new_code_cell(source)
    if tagged:
        cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("import automl\nautoml.report(loss=C * 2)")]
    nbformat.write(nb, path)
    return path


def _yaml(tmp_path: Path, notebook: str) -> Path:
    f = tmp_path / "exp.yaml"
    f.write_text(
        "name: nb-bad\n"
        "objective: {metric: loss, direction: minimize}\n"
        "parameters:\n"
        "  C: {type: double, min: 0.1, max: 1}\n"
        "  alpha: {type: double, min: 0.1, max: 1}\n"
        "budget: {max_trials: 1}\n"
        f"trial: {{notebook: {notebook}}}\n"
    )
    return f


def test_notebook_without_parameters_cell_is_a_spec_error(tmp_path: Path, cli: Any) -> None:
    _notebook(tmp_path / "plain.ipynb", tagged=False)
    f = _yaml(tmp_path, "plain.ipynb")
    with pytest.raises(SpecError) as err:
        load_spec(f)
    assert err.value.path == "trial.notebook"
    assert "plain.ipynb has no cell tagged 'parameters'" in str(err.value)
    # The CLI refuses it before any trial starts: nothing is stored.
    r = cli("run", str(f), "--no-progress", "--runs-dir", str(tmp_path / "runs"))
    assert r.exit_code == 2
    assert "trial.notebook" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    with automl.Client(cli.url) as client:
        assert client.list() == []
    assert not (tmp_path / "runs").exists()


def test_spec_made_in_python_is_checked_before_trials(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "plain.ipynb", tagged=False)
    spec = ExperimentSpec(
        name="py-nb",
        objective=Objective(type="minimize", metric="loss"),
        parameters=(Parameter(name="C", type="double", min=0.1, max=1.0),),
        trial_template=TrialTemplate(notebook=str(nb)),
    )
    with automl.Client(str(tmp_path / "p.db"), runs_dir=tmp_path / "runs") as client:
        with pytest.raises(SpecError) as err:
            client.run(spec)
        assert err.value.path == "trial_template.notebook"
        assert client.trials("py-nb") == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not a readable Jupyter notebook"),
        (None, "must be a Python notebook"),
    ],
)
def test_unusable_notebooks_are_named(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "nb.ipynb"
    if content is None:
        _notebook(path, kernelspec={"name": "ir", "language": "R", "display_name": "R"})
    else:
        path.write_text(content)
    with pytest.raises(SpecError, match=message) as err:
        load_spec(_yaml(tmp_path, "nb.ipynb"))
    assert err.value.path == "trial.notebook"


def test_parameters_missing_from_the_cell_warn(tmp_path: Path) -> None:
    _notebook(tmp_path / "nb.ipynb")
    with pytest.warns(UserWarning, match="does not set alpha; papermill injects them anyway"):
        spec = load_spec(_yaml(tmp_path, "nb.ipynb"))
    assert spec.trial_template.notebook == str(tmp_path / "nb.ipynb")


def test_failing_notebook_fails_the_trial_and_keeps_the_executed_copy(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "boom.ipynb", source="C = 1.0\nalpha = 0.5")
    book = nbformat.read(nb, as_version=4)
    book.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('diverged at C=%s' % C)"))
    nbformat.write(book, nb)
    with automl.Client(str(tmp_path / "f.db"), runs_dir=tmp_path / "runs") as client:
        client.run(_yaml(tmp_path, "boom.ipynb"))
        [t] = client.trials("nb-bad")
        assert t.state is TrialState.FAILED
        log = (Path(t.workdir or "") / "trial.log").read_text()
        assert "raised RuntimeError: diverged at C=" in log
        executed = tmp_path / "runs" / "nb-bad" / t.id / "artifacts" / "executed.ipynb"
        assert t.outputs["files"] == ["executed.ipynb"]
        errors = [
            o
            for _, o in _outputs(nbformat.read(executed, as_version=4))
            if o.output_type == "error"
        ]
        assert errors and errors[0]["ename"] == "RuntimeError"


def test_notebook_runner_usage(tmp_path: Path) -> None:
    from trials._notebook import main, notebook_command

    assert main([]) == 2
    assert notebook_command("/x/train.ipynb") == (
        sys.executable,
        "-m",
        "trials._notebook",
        "/x/train.ipynb",
    )
