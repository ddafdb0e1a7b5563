"""Pipelines: local runs through the CLI, DAG validation, and the Kubeflow Pipelines compile."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from automl import Client
from automl.cli import app
from automl.errors import SpecError
from integrations.pipelines import (
    EphemeralStoreWarning,
    Pipeline,
    Stage,
    StageKind,
    compile_pipeline,
    load_compiled,
    load_pipeline,
    parse_pipeline,
    run_pipeline,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pipelines"
STAGES = ["prepare", "tune", "train", "evaluate", "serve"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "automl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def record(runs: Path, pipeline: str = "digits") -> dict[str, Any]:
    (run_dir,) = sorted((runs / "pipelines" / pipeline).iterdir())
    return json.loads((run_dir / "run.json").read_text())


# -- the example, end to end ----------------------------------------------------------------------
def test_example_runs_end_to_end_and_each_stage_feeds_the_next(tmp_path: Path) -> None:
    from automl._artifacts import load_model

    store = f"sqlite:///{tmp_path / 'automl.db'}"
    runs = tmp_path / "runs"
    args = ["--store", store, "--runs-dir", str(runs), "--param", "max_trials=3"]
    args += ["--param", "test_size=0.3"]
    proc = cli("pipeline", "run", str(EXAMPLE / "digits-pipeline.yaml"), *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in STAGES:  # one progress line per stage, and the summary table
        assert f"succeeded {name}" in proc.stdout
    assert "pipeline digits run" in proc.stdout

    rec = record(runs)
    assert rec["status"] == "succeeded"
    assert rec["params"] == {"test_size": 0.3, "seed": 0, "max_trials": 3}
    st = rec["stages"]
    assert [st[n]["status"] for n in STAGES] == ["succeeded"] * 5
    assert all(st[n]["seconds"] > 0 and Path(st[n]["log"]).is_file() for n in STAGES)

    # prepare: the split, with the test_size parameter applied
    data = np.load(Path(st["prepare"]["outputs"]["data"]) / "digits.npz")
    assert st["prepare"]["outputs"]["n_test"] == len(data["y_test"]) == 540
    assert st["prepare"]["outputs"]["n_train"] == len(data["y_train"]) == 1257

    # tune: a real experiment in the store, with the overridden budget
    tune = st["tune"]["outputs"]
    with Client(store) as client:
        trials = client.trials(tune["experiment"])
        best = client.best_trial(tune["experiment"])
    assert len(trials) == 3
    assert best is not None and dict(best.params) == tune["best_params"]
    assert tune["best_value"] == pytest.approx(best.value)
    assert set(tune["best_params"]) == {"model", "C", "gamma"}
    tuned = Path(tune["model"])
    assert json.loads((tuned / "best.json").read_text())["params"] == tune["best_params"]
    assert (tuned / "model.joblib").is_file()  # the best trial's automl.save_model

    # train: the best parameters, fitted on the whole training split
    model = load_model(st["train"]["outputs"]["model"])
    assert pytest.approx(tune["best_params"]["C"]) == model[-1].C
    assert model.score(data["X_train"], data["y_train"]) > 0.9

    # evaluate: the trained model on the held-out split, as metrics.json
    metrics_file = Path(st["evaluate"]["outputs"]["metrics"])
    assert metrics_file.name == "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    assert metrics["accuracy"] == pytest.approx(model.score(data["X_test"], data["y_test"]))
    assert metrics["n_test"] == 540

    # serve: a KServe manifest pointing at the trained model; nothing was started
    manifest = yaml.safe_load(Path(st["serve"]["outputs"]["manifest"]).read_text())
    assert manifest["kind"] == "InferenceService"
    assert manifest["spec"]["predictor"]["model"]["modelFormat"]["name"] == "sklearn"
    assert manifest["spec"]["predictor"]["model"]["storageUri"].endswith("/train/model")

    # --resume without the --param of the first run: its recorded parameters, not the file's
    # defaults (max_trials 8), so nothing runs again
    again = cli(
        "pipeline", "run", str(EXAMPLE / "digits-pipeline.yaml"), *args[:4], "--resume",
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming with the recorded parameters: test_size=0.3, seed=0, max_trials=3" in (
        again.stdout
    )
    assert "no parameter changed" in again.stdout
    rec2 = record(runs)
    assert rec2["run_id"] == rec["run_id"]
    assert rec2["params"] == {"test_size": 0.3, "seed": 0, "max_trials": 3}
    assert [rec2["stages"][n]["status"] for n in STAGES] == ["cached"] * 5
    with Client(store) as client:
        assert len(client.list()) == 1  # no second experiment


# -- failures -------------------------------------------------------------------------------------
FLAKY = """
from pathlib import Path


def make(out: Path) -> int:
    out.write_text("hello")
    return 5


def boom(text: Path, x: Path) -> None:
    raise ValueError("boom: " + text.read_text())


def after(x: Path, y: Path) -> None:
    y.write_text(x.read_text())


def other(n: int, z: Path) -> None:
    z.write_text(str(n * 2))
"""

FLAKY_PIPELINE = """
apiVersion: automl/v1
kind: Pipeline
name: flaky
stages:
  - name: make
    python: flaky:make
    outputs: {out: artifact, n: int}
  - name: bad
    python: flaky:boom
    inputs: {text: make.out}
    outputs: {x: artifact}
  - name: after-bad
    python: flaky:after
    inputs: [bad.x]
    outputs: {y: artifact}
  - name: independent
    python: flaky:other
    inputs: [make.n]
    outputs: {z: artifact}
  - name: shell-free
    command: [python, -c, "import sys; open(sys.argv[2], 'w').write(str(int(sys.argv[1]) + 1))",
              "${inputs.n}", "${outputs.m}"]
    inputs: [make.n]
    outputs: {m: int}
"""


def test_a_failing_stage_stops_its_dependents_and_exits_nonzero(tmp_path: Path) -> None:
    (tmp_path / "flaky.py").write_text(FLAKY)
    (tmp_path / "flaky.yaml").write_text(FLAKY_PIPELINE)
    runs = tmp_path / "runs"
    proc = cli("pipeline", "run", "flaky.yaml", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 1
    assert "stage 'bad' failed: raised ValueError: boom: hello" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    st = record(runs, "flaky")["stages"]
    assert st["bad"]["status"] == "failed"
    assert st["after-bad"]["status"] == "skipped"
    assert "upstream stage 'bad'" in st["after-bad"]["message"]
    assert not (Path(st["bad"]["log"]).parent.parent / "after-bad").exists()
    # stages that do not depend on the failure still ran, with the values passed along
    assert st["independent"]["status"] == "succeeded"
    assert Path(st["independent"]["outputs"]["z"]).read_text() == "10"
    assert st["shell-free"]["outputs"] == {"m": 6}
    assert "Traceback" in Path(st["bad"]["log"]).read_text()  # kept in the stage's log


TUNE_FILE = """
name: quad
objective: {metric: loss, direction: minimize}
algorithm: grid
parameters:
  x: {type: double, min: 0, max: 4, step: 2}
budget: {max_trials: 3}
trial:
  command:
    - python
    - -c
    - "import sys; a, b = map(float, sys.argv[1:]); print('loss=%s' % (a - b) ** 2)"
    - "${x}"
    - "${inputs.target}"
"""


def test_a_tune_stage_runs_a_command_experiment_file_with_upstream_values(tmp_path: Path) -> None:
    (tmp_path / "quad.yaml").write_text(TUNE_FILE)
    (tmp_path / "p.yaml").write_text(
        _yaml(
            """
            - name: target
              command: [python, -c, "import sys; open(sys.argv[1], 'w').write('2.0')",
                        "${outputs.t}"]
              outputs: {t: float}
            - name: tune
              tune: {experiment: quad.yaml}
              inputs: {target: target.t}
              args: {max_trials: "${params.n}"}
            """,
            params="{n: 3}",
        )
    )
    store = f"sqlite:///{tmp_path / 'a.db'}"
    run = run_pipeline(tmp_path / "p.yaml", store=store, runs_dir=tmp_path / "runs")
    assert run.ok, [(s.name, s.message) for s in run.stages]
    out = run.stage("tune").outputs
    assert out["best_params"] == {"x": 2.0} and out["best_value"] == 0.0
    with Client(store) as client:
        assert len(client.trials(out["experiment"])) == 3  # grid: 0, 2, 4 against target 2.0
    best = json.loads((Path(out["model"]) / "best.json").read_text())
    assert best["metric"] == "loss" and best["params"] == {"x": 2.0}


def test_a_stage_that_does_not_write_its_output_fails(tmp_path: Path) -> None:
    (tmp_path / "lazy.py").write_text("def noop(out):\n    return None\n")
    p = Pipeline("lazy", [Stage.python("lazy:noop", outputs={"out": "dataset"})])
    assert p.order == ("noop",)
    (tmp_path / "lazy.yaml").write_text(
        "kind: Pipeline\nname: lazy\nstages:\n"
        "  - {name: noop, python: 'lazy:noop', outputs: {out: dataset}}\n"
    )
    run = run_pipeline(tmp_path / "lazy.yaml", runs_dir=tmp_path / "runs")
    assert not run.ok
    assert run.stage("noop").message.startswith("did not write its output 'out' (a file or")


# -- validation -----------------------------------------------------------------------------------
def _yaml(stages: str, params: str = "{}") -> str:
    return f"apiVersion: automl/v1\nkind: Pipeline\nname: p\nparameters: {params}\nstages:\n" + (
        textwrap.indent(textwrap.dedent(stages), "  ")
    )


@pytest.mark.parametrize(
    ("stages", "path", "words"),
    [
        (
            """
            - {name: a, python: 'm:a', inputs: [c.z], outputs: {x: artifact}}
            - {name: b, python: 'm:b', inputs: [a.x], outputs: {y: artifact}}
            - {name: c, python: 'm:c', inputs: [b.y], outputs: {z: artifact}}
            """,
            "stages[0].inputs[0]",
            "'c.z' closes a cycle: a -> b -> c -> a",
        ),
        (
            "- {name: a, python: 'm:a', inputs: [nope.x]}\n",
            "stages[0].inputs[0]",
            "unknown stage 'nope'",
        ),
        (
            """
            - {name: a, python: 'm:a', outputs: {x: dataset}}
            - {name: b, python: 'm:b', inputs: [a.y]}
            """,
            "stages[1].inputs[0]",
            "stage 'a' has no output 'y' (it has: x)",
        ),
        (
            "- {name: a, python: 'm:a', inputs: [ghost]}\n",
            "stages[0].inputs[0]",
            "no stage has an output called 'ghost'",
        ),
        (
            """
            - {name: a, python: 'm:a'}
            - {name: a, python: 'm:b'}
            """,
            "stages[1].name",
            "must be unique",
        ),
        (
            "- {name: a, python: 'm:a', args: {n: '${params.nope}'}}\n",
            "stages[0].args",
            "${params.nope}",
        ),
        ("- {name: a, python: 'm:a', command: [ls]}\n", "stages[0]", "exactly one of"),
        ("- {name: a, command: 'ls -l'}\n", "stages[0].command", "without a shell"),
        (
            "- {name: a, python: 'm:a', outputs: {x: table}}\n",
            "stages[0].outputs.x",
            "kind must be",
        ),
        ("- {name: t, tune: {objective: 'm:f'}}\n", "stages[0].tune", "exactly one of experiment"),
        (
            """
            - {name: a, python: 'm:a', outputs: {x: dataset}}
            - {name: t, train_best: 'm:fit', inputs: [a.x]}
            """,
            "stages[1].inputs",
            "needs a dict input called best_params",
        ),
    ],
)
def test_dag_validation_names_the_field(stages: str, path: str, words: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_pipeline(_yaml(stages))
    assert exc.value.path == path, str(exc.value)
    assert words in str(exc.value)


def test_the_cycle_message_walks_the_loop() -> None:
    text = _yaml(
        """
        - {name: a, python: 'm:a', inputs: [b.y], outputs: {x: artifact}}
        - {name: b, python: 'm:b', inputs: [a.x], outputs: {y: artifact}}
        """
    )
    with pytest.raises(
        SpecError, match=r"stages\[0\]\.inputs\[0\]: 'b\.y' closes a cycle: a -> b -> a"
    ):
        parse_pipeline(text)


def test_stage_order_follows_inputs_not_the_written_order() -> None:
    p = parse_pipeline(
        _yaml(
            """
            - {name: last, python: 'm:c', inputs: {v: mid.y}}
            - {name: mid, python: 'm:b', inputs: [first.x], outputs: {y: float}}
            - {name: first, python: 'm:a', outputs: {x: dataset}}
            """
        )
    )
    assert p.order == ("first", "mid", "last")
    assert p.upstream("last") == {"first", "mid"}
    assert [(i.keyword, i.stage, i.output) for i in p.inputs_of("last")] == [("v", "mid", "y")]


runner = CliRunner()


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (None, "FILE: no such file"),
        ("kind: Pipeline\nname: p\nstages: [\n", "malformed YAML at line"),
        (
            _yaml(
                "- {name: a, python: 'm:a', inputs: [a2.x]}\n"
                "- {name: a2, python: 'm:b', inputs: [a.a2]}\n"
            ),
            "stages[",
        ),
    ],
)
def test_cli_bad_input_exits_2_without_traceback(
    tmp_path: Path, content: str | None, expect: str
) -> None:
    f = tmp_path / "p.yaml"
    if content is not None:
        f.write_text(content)
    for cmd in (
        ["run", str(f), "--runs-dir", str(tmp_path)],
        ["compile", str(f), "-o", str(tmp_path / "o.yaml")],
    ):
        result = runner.invoke(app, ["pipeline", *cmd])
        assert result.exit_code == 2, result.output
        assert expect in result.output
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_run_checks_modules_and_files_before_any_stage_runs(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        _yaml(
            """
            - {name: a, python: 'no_such_module_here:f', outputs: {x: dataset}}
            - {name: t, tune: {experiment: missing.yaml}, inputs: [a.x]}
            """
        )
    )
    r = runner.invoke(app, ["pipeline", "run", str(f), "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 2
    assert "stages[0].python: no module 'no_such_module_here'" in r.output
    assert "stages[1].tune.experiment: no such file" in r.output
    assert not (tmp_path / "runs").exists()


def test_cli_rejects_an_unknown_or_mistyped_param(tmp_path: Path) -> None:
    f = EXAMPLE / "digits-pipeline.yaml"
    r = runner.invoke(
        app, ["pipeline", "run", str(f), "--runs-dir", str(tmp_path), "-p", "nope=1"]
    )
    assert r.exit_code == 2 and "--param: unknown parameter 'nope'" in r.output
    r = runner.invoke(
        app, ["pipeline", "run", str(f), "--runs-dir", str(tmp_path), "-p", "max_trials=x"]
    )
    assert r.exit_code == 2 and "max_trials must be a int like its default 8; got 'x'" in r.output
    r = runner.invoke(app, ["pipeline", "run", str(f), "--runs-dir", str(tmp_path), "--resume"])
    assert r.exit_code == 2 and "--resume: no earlier run of pipeline 'digits'" in r.output


# -- Python form ----------------------------------------------------------------------------------
DECORATED = """
from pathlib import Path

from integrations.pipelines import Pipeline, Stage, stage


@stage(outputs={"numbers": "list"}, args={"n": "${params.n}"})
def produce(n: int) -> list[int]:
    return list(range(n))


@stage(inputs=["produce.numbers"], outputs={"total": "float", "report": "artifact"})
def total(numbers: list[int], report: Path) -> dict[str, float]:
    report.write_text(",".join(map(str, numbers)))
    return {"total": float(sum(numbers))}


pipeline = Pipeline("sums", [total, produce], parameters={"n": 4})
"""


def test_decorated_functions_make_a_pipeline_that_runs(tmp_path: Path) -> None:
    (tmp_path / "sums_pipeline.py").write_text(DECORATED)
    p = load_pipeline(tmp_path / "sums_pipeline.py")
    assert p.order == ("produce", "total")
    assert p.stage("produce").function == "sums_pipeline:produce"
    assert p.stage("produce").param_refs() == {"n"}
    run = run_pipeline(
        tmp_path / "sums_pipeline.py", runs_dir=tmp_path / "runs", params={"n": "5"}
    )
    assert run.ok, [s.message for s in run.stages]
    assert run.stage("produce").outputs == {"numbers": [0, 1, 2, 3, 4]}
    assert run.stage("total").outputs["total"] == 10.0
    assert Path(run.stage("total").outputs["report"]).read_text() == "0,1,2,3,4"


def test_resume_reuses_the_recorded_parameters_and_says_which_changed(tmp_path: Path) -> None:
    (tmp_path / "sums_pipeline.py").write_text(DECORATED)
    f, runs = str(tmp_path / "sums_pipeline.py"), str(tmp_path / "runs")
    first = runner.invoke(app, ["pipeline", "run", f, "--runs-dir", runs, "-p", "n=6"])
    assert first.exit_code == 0, first.output
    # no --param: the recorded n=6, not the default 4; every stage cached
    same = runner.invoke(app, ["pipeline", "run", f, "--runs-dir", runs, "--resume"])
    assert same.exit_code == 0, same.output
    assert "resuming with the recorded parameters: n=6" in same.output
    assert "no parameter changed" in same.output
    assert "changed n" not in same.output
    rec = record(tmp_path / "runs", "sums")
    assert rec["params"] == {"n": 6} and rec["changed_params"] == {}
    assert {s["status"] for s in rec["stages"].values()} == {"cached"}
    # a new value is used, reported, and re-runs the stages that depend on it
    run = run_pipeline(f, runs_dir=runs, params={"n": "3"}, resume=True)
    assert run.params == {"n": 3} and run.changed_params == {"n": (6, 3)}
    assert [s.status for s in run.stages] == ["succeeded", "succeeded"]
    assert run.stage("produce").outputs == {"numbers": [0, 1, 2]}
    out = runner.invoke(app, ["pipeline", "run", f, "--runs-dir", runs, "--resume", "-p", "n=5"])
    assert out.exit_code == 0 and "changed n: 3 -> 5 (stages that use it run again)" in out.output
    assert record(tmp_path / "runs", "sums")["changed_params"] == {"n": [3, 5]}


def test_python_stage_objects_validate_like_yaml() -> None:
    with pytest.raises(SpecError) as exc:
        Pipeline("p", [Stage.python("m:a", inputs=["b.y"]), Stage.python("m:b", inputs=["a.z"])])
    assert exc.value.path == "stages[0].inputs[0]"
    with pytest.raises(SpecError, match="module-level function"):
        Stage.python(lambda: None)
    with pytest.raises(SpecError, match="must be a Stage or a function"):
        Pipeline("p", [42])


# -- Kubeflow Pipelines compile -------------------------------------------------------------------
PG = "postgresql://automl@db.cluster.local:5432/automl"


def test_compile_requires_a_store_for_tune_stages_and_warns_about_sqlite(tmp_path: Path) -> None:
    f, out = str(EXAMPLE / "digits-pipeline.yaml"), tmp_path / "o.yaml"
    r = runner.invoke(app, ["pipeline", "compile", f, "-o", str(out)])
    assert r.exit_code == 2 and not out.exists()
    assert "--default-store: pipeline 'digits' has a tune stage (tune)" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(
        app, ["pipeline", "compile", f, "-o", str(out), "--default-store", "sqlite:////tmp/a.db"]
    )
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "vanish with the pod" in " ".join(r.output.split())
    with pytest.warns(EphemeralStoreWarning, match="SQLite file inside the tune stage's pod"):
        compile_pipeline(load_pipeline(f), out, store="sqlite:////tmp/a.db")
    with pytest.raises(SpecError, match="has a tune stage") as exc:
        compile_pipeline(load_pipeline(f), out)
    assert exc.value.path == "--default-store"


def test_compiled_yaml_loads_back_with_kfp_and_names_every_stage(tmp_path: Path) -> None:
    from kfp import components

    out = tmp_path / "digits-kfp.yaml"
    r = runner.invoke(
        app,
        [
            "pipeline",
            "compile",
            str(EXAMPLE / "digits-pipeline.yaml"),
            "-o",
            str(out),
            "--image",
            "reg/automl:1",
            "--default-store",
            PG,
        ],
    )
    assert r.exit_code == 0, r.output
    assert "5 tasks" in r.output
    assert "warning" not in r.output  # a database the cluster reaches: nothing to warn about

    doc = yaml.safe_load(out.read_text())
    assert doc["pipelineInfo"]["name"] == "digits"
    assert doc["schemaVersion"] == "2.1.0"
    tasks = doc["root"]["dag"]["tasks"]
    assert set(tasks) == set(STAGES)
    assert {t["taskInfo"]["name"] for t in tasks.values()} == set(STAGES)
    assert set(doc["components"]) == {f"comp-{s}" for s in STAGES}
    assert set(doc["deploymentSpec"]["executors"]) == {f"exec-{s}" for s in STAGES}
    # edges: artifacts and values flow from producer to consumer
    assert sorted(tasks["train"]["dependentTasks"]) == ["prepare", "tune"]
    assert tasks["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"] == {
        "outputArtifactKey": "model",
        "producerTask": "train",
    }
    assert tasks["train"]["inputs"]["parameters"]["best_params"]["taskOutputParameter"] == {
        "outputParameterKey": "best_params",
        "producerTask": "tune",
    }
    # the tune component: runs the stage entry point in the image, typed outputs
    tune = doc["deploymentSpec"]["executors"]["exec-tune"]["container"]
    assert tune["image"] == "reg/automl:1"
    assert tune["command"] == [
        "automl",
        "pipeline",
        "stage",
        "/workspace/digits-pipeline.yaml",
        "--stage",
        "tune",
    ]
    assert "--store" in tune["args"]
    outs = doc["components"]["comp-tune"]["outputDefinitions"]
    assert outs["parameters"]["best_params"]["parameterType"] == "STRUCT"
    assert outs["parameters"]["best_value"]["parameterType"] == "NUMBER_DOUBLE"
    assert outs["artifacts"]["model"]["artifactType"]["schemaTitle"] == "system.Model"
    data = doc["components"]["comp-prepare"]["outputDefinitions"]["artifacts"]["data"]
    assert data["artifactType"]["schemaTitle"] == "system.Dataset"
    serve = doc["deploymentSpec"]["executors"]["exec-serve"]["container"]["args"]
    assert serve[serve.index("--input-uri") + 2] == "{{$.inputs.artifacts['model'].uri}}"
    # pipeline parameters
    params = doc["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"test_size", "seed", "max_trials", "automl_store"}
    assert params["max_trials"]["parameterType"] == "NUMBER_INTEGER"
    assert params["test_size"]["defaultValue"] == 0.25
    assert params["automl_store"]["defaultValue"] == PG
    assert tasks["tune"]["inputs"]["parameters"]["max_trials"] == {
        "componentInputParameter": "max_trials"
    }

    # kfp's own loader reads the pipeline IR back (as a component with the pipeline's inputs)
    loaded = components.load_component_from_file(str(out))
    assert loaded.name == "digits"
    assert set(loaded.component_spec.inputs) == set(params)
    assert set(loaded.component_spec.implementation.graph.root.dag.tasks) == set(STAGES)
    summary = load_compiled(out)
    assert set(summary["tasks"]) == set(STAGES) and summary["images"] == ["reg/automl:1"]


def test_python_and_yaml_forms_compile_to_the_same_pipeline(tmp_path: Path) -> None:
    py, ya = (
        load_pipeline(EXAMPLE / "pipeline.py"),
        load_pipeline(EXAMPLE / "digits-pipeline.yaml"),
    )
    assert [s.kind for s in py.stages] == [s.kind for s in ya.stages]
    assert [s.kind for s in ya.stages] == [
        StageKind.PYTHON,
        StageKind.TUNE,
        StageKind.TRAIN_BEST,
        StageKind.EVALUATE,
        StageKind.SERVE,
    ]
    a = compile_pipeline(py, tmp_path / "py.yaml", store=PG)
    b = compile_pipeline(ya, tmp_path / "yaml.yaml", store=PG)
    doc_a = yaml.safe_load(a.read_text().replace("/workspace/pipeline.py", "FILE"))
    doc_b = yaml.safe_load(b.read_text().replace("/workspace/digits-pipeline.yaml", "FILE"))
    assert doc_a == doc_b
    assert set(doc_a["root"]["dag"]["tasks"]) == set(STAGES)


def test_a_parameter_named_like_an_input_is_renamed_in_components(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("def a(data):\n    pass\n")
    p = parse_pipeline(
        _yaml(
            """
            - {name: a, python: 'm:a', args: {k: '${params.data}'}, outputs: {data: dataset}}
            - {name: b, python: 'm:a', inputs: [a.data], args: {k: '${params.data}'}}
            """,
            params="{data: 3}",
        ),
        source=tmp_path / "p.yaml",
    )
    doc = yaml.safe_load(compile_pipeline(p, tmp_path / "o.yaml").read_text())
    b_inputs = doc["root"]["dag"]["tasks"]["b"]["inputs"]
    assert b_inputs["parameters"]["param_data"] == {"componentInputParameter": "data"}
    assert "data" in b_inputs["artifacts"]
    assert "automl_store" not in doc["root"]["inputDefinitions"]["parameters"]  # no tune stage


def test_the_stage_command_runs_as_a_kfp_container_would(tmp_path: Path) -> None:
    """The serve component's command line, with paths and the model's artifact URI filled in."""
    from sklearn.linear_model import LogisticRegression

    from automl._artifacts import save_model

    model_dir = tmp_path / "minio" / "train" / "model"
    save_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), directory=model_dir)
    out = tmp_path / "outputs" / "manifest"  # KFP's output path; its parent may not exist
    r = runner.invoke(
        app,
        [
            "pipeline", "stage", str(EXAMPLE / "digits-pipeline.yaml"), "--stage", "serve",
            "--input", "model", str(model_dir),
            "--input-uri", "model", "s3://mlpipeline/v2/artifacts/digits/123/train/model",
            "--output", "manifest", str(out),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    manifest = yaml.safe_load(out.read_text())
    model = manifest["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://mlpipeline/v2/artifacts/digits/123/train/model"
    assert model["modelFormat"]["name"] == "sklearn"
    assert manifest["metadata"]["name"] == "digits"

    missing = runner.invoke(
        app,
        ["pipeline", "stage", str(EXAMPLE / "digits-pipeline.yaml"), "--stage", "serve"],
    )
    assert missing.exit_code == 2
    assert "--input: missing input 'model'" in missing.output
    assert "--output: missing the path of output 'manifest'" in missing.output
