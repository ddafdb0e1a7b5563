"""Katib's NAS examples (``tests/data/katib-examples/nas``) parse, render and run on the CPU with
the stand-in trial scripts of ``examples/katib/nas`` (tiny budgets); ``automl show`` prints what
they found and ``automl export --format torch`` writes a module that rebuilds it."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from automl import Client
from automl.cli import app
from automl.core import ExperimentState, TrialState
from automl.spec import load_spec
from automl.spec._render import render_trials
from search import Architecture, NasSpace
from tests.conftest import KATIB_EXAMPLES, REPO

pytestmark = pytest.mark.integration

NAS_DIR = KATIB_EXAMPLES / "nas"
ENAS_SCRIPTS = REPO / "examples" / "katib" / "nas" / "enas-cnn"
DARTS_SCRIPTS = REPO / "examples" / "katib" / "nas" / "darts-cnn"


def cli(
    tmp_path: Path, *args: str, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "automl", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NAS_DIGITS_LIMIT": "150", **env},
    )


def test_both_examples_parse_and_render() -> None:
    enas = load_spec(NAS_DIR / "enas-cpu.yaml")
    assert enas.algorithm.name == "enas" and not enas.parameters
    space = NasSpace.from_spec(enas)
    assert space.num_layers == 1 and space.input_sizes == (32, 32, 3)
    for r in render_trials(enas, 2):
        assert r.argv is not None and r.argv[2] == "RunTrial.py"
        arch_arg = next(a for a in r.argv if a.startswith("--architecture="))
        Architecture.from_katib(arch_arg.removeprefix("--architecture="))  # Katib's quotes
    darts = load_spec(NAS_DIR / "darts-gpu.yaml")
    assert darts.algorithm.name == "darts" and darts.objective.metric == "Best-Genotype"
    (r,) = render_trials(darts, 1)
    assert r.argv is not None and r.argv[-1] == '--num-layers="3"'


def test_enas_example_runs_end_to_end(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'a.db'}"
    p = cli(
        tmp_path,
        "run",
        str(NAS_DIR / "enas-cpu.yaml"),
        "--workdir",
        str(ENAS_SCRIPTS),
        "--max-trials",
        "2",
        "--store",
        store,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
    )
    assert p.returncode == 0, p.stdout + p.stderr
    client = Client(store)
    e = client.get("enas-cpu")
    assert e.state is ExperimentState.SUCCEEDED
    trials = client.trials("enas-cpu")
    assert len(trials) == 2 and all(t.state is TrialState.SUCCEEDED for t in trials)
    space = NasSpace.from_spec(e.spec)
    for t in trials:
        assert t.value is not None and 0.0 <= t.value <= 1.0
        arch = Architecture.from_dict(t.attrs["architecture"])
        space.check(arch)
        assert Architecture.from_katib(str(t.params["architecture"])) == arch
        # The trial stored what it built as data (nas.record_result -> outputs.json).
        assert t.outputs["data"]["architecture"] == arch.to_dict()
        assert t.outputs["data"]["nas"]["kind"] == "enas"
        log = (tmp_path / "runs" / "enas-cpu" / t.id / "trial.log").read_text()
        assert "Validation-Accuracy=" in log  # Katib's stdout format, parsed by StdOut
    # The controller's state is in the store (what a resume reloads).
    assert e.sampler_state["controller"] and e.sampler_state["sampled"] == 2

    runner = CliRunner()
    show = runner.invoke(app, ["show", "enas-cpu", "--store", store], terminal_width=200)
    assert show.exit_code == 0, show.output
    best = client.best_trial("enas-cpu")
    assert best is not None
    best_op = space.operation_names[Architecture.from_dict(best.attrs["architecture"]).ops[0]]
    assert "architecture of" in show.output and best_op in show.output
    for t in trials:  # every trial's architecture is a column of the trial table
        first = space.operation_names[Architecture.from_dict(t.attrs["architecture"]).ops[0]]
        row = next(ln for ln in show.output.splitlines() if t.id in ln)
        assert first in row

    out = tmp_path / "model.py"
    ex = runner.invoke(
        app, ["export", "enas-cpu", "--format", "torch", "-o", str(out), "--store", store]
    )
    assert ex.exit_code == 0, ex.output
    module = runpy.run_path(str(out))
    model = module["build"]()
    assert module["ARCHITECTURE"] == best.attrs["architecture"]
    assert tuple(model(torch.zeros(2, 3, 32, 32)).shape) == (2, 10)


def _tiny_darts(tmp_path: Path) -> Path:
    doc = yaml.safe_load((NAS_DIR / "darts-gpu.yaml").read_text())
    doc["spec"]["algorithm"]["algorithmSettings"] = [
        {"name": "num_epochs", "value": "1"},
        {"name": "batch_size", "value": "32"},
        {"name": "init_channels", "value": "4"},
        {"name": "num_nodes", "value": "2"},
    ]
    # The example asks for a GPU (nvidia.com/gpu: 1), kept as written: `--resources gpu=0`
    # runs it on the CPU.
    path = tmp_path / "darts-tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_darts_example_without_a_gpu_is_refused_with_a_hint(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'a.db'}"
    p = cli(
        tmp_path,
        "run",
        str(NAS_DIR / "darts-gpu.yaml"),
        "--workdir",
        str(DARTS_SCRIPTS),
        "--store",
        store,
        "--no-progress",
        AUTOML_GPUS="0",  # a machine without GPUs
    )
    assert p.returncode == 2, p.stdout + p.stderr
    out = " ".join(p.stderr.split())
    assert "resources.gpu" in out and "--resources gpu=0" in out
    assert Client(store).list() == []


def test_darts_example_runs_one_search_trial(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'a.db'}"
    p = cli(
        tmp_path,
        "run",
        str(_tiny_darts(tmp_path)),
        "--workdir",
        str(DARTS_SCRIPTS),
        "--store",
        store,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
        "--resources",
        "gpu=0",
        NAS_FIRST_ORDER="1",
        AUTOML_GPUS="0",
    )
    assert p.returncode == 0, p.stdout + p.stderr
    client = Client(store)
    (t,) = client.trials("darts-gpu")
    assert t.state is TrialState.SUCCEEDED
    assert set(t.params) == {"algorithm-settings", "search-space", "num-layers"}
    settings = json.loads(str(t.params["algorithm-settings"]).replace("'", '"'))
    assert settings["num_epochs"] == "1" and settings["w_lr"] == 0.025  # Katib's form
    # The numeric value under Katib's metric name is the supernet's best validation accuracy.
    assert t.value is not None and 0.0 <= t.value <= 1.0
    log = (tmp_path / "runs" / "darts-gpu" / t.id / "trial.log").read_text()
    line = next(ln for ln in log.splitlines() if ln.startswith("Best-Genotype="))
    assert " " not in line and line.startswith("Best-Genotype=Genotype(normal=[[(")

    show = cli(tmp_path, "show", "darts-gpu", "--store", store, "--json")
    assert show.returncode == 0, show.stderr
    found = json.loads(show.stdout)["architecture"]
    assert found["kind"] == "darts" and len(found["genotype"]["normal"]) == 2  # num_nodes 2
    # Stored with the trial as data (outputs.json["nas"]), with the sizes that rebuild it.
    assert t.outputs["data"]["nas"]["genotype"] == found["genotype"]
    assert found["init_channels"] == 4 and found["in_channels"] == 1
    assert line.removeprefix("Best-Genotype=") == found["genotype_str"].replace(" ", "")

    out = tmp_path / "derived.py"
    ex = cli(
        tmp_path, "export", "darts-gpu", "--format", "torch", "-o", str(out), "--store", store
    )
    assert ex.returncode == 0, ex.stderr
    # The exported module retrains the derived network as a normal trial would.
    retrain = subprocess.run(
        [sys.executable, str(out), "--epochs", "1", "--limit", "200"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert retrain.returncode == 0, retrain.stderr
    assert retrain.stdout.strip().startswith("Validation-Accuracy=")


def test_bad_input_is_named_before_any_trial(tmp_path: Path) -> None:
    doc = yaml.safe_load((NAS_DIR / "enas-cpu.yaml").read_text())
    doc["spec"]["algorithm"]["algorithmSettings"] = [
        {"name": "controller_temperature", "value": "hot"}
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    p = cli(tmp_path, "run", str(bad), "--workdir", str(ENAS_SCRIPTS), "--no-progress")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "controller_temperature" in p.stderr and "'hot'" in p.stderr
    p = cli(tmp_path, "run", str(NAS_DIR / "enas-cpu.yaml"), "--workdir", str(tmp_path / "no"))
    assert p.returncode == 2 and "--workdir" in p.stderr


def _enas_with(tmp_path: Path, algorithm: str) -> Path:
    """Katib's enas-cpu.yaml, unchanged but for algorithmName (multi-trial NAS, docs/nas.md)."""
    doc = yaml.safe_load((NAS_DIR / "enas-cpu.yaml").read_text())
    doc["spec"]["algorithm"]["algorithmName"] = algorithm
    path = tmp_path / f"enas-{algorithm}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_nas_config_with_other_algorithms_is_accepted_but_not_exported(tmp_path: Path) -> None:
    from automl.errors import SpecError
    from automl.spec._export import to_katib

    for algorithm in ("random", "evolution", "tpe", "grid"):
        spec = load_spec(_enas_with(tmp_path, algorithm))
        assert spec.algorithm.name == algorithm and spec.nas_config is not None
        # The ENAS template runs unchanged: each trial gets Katib's two strings.
        for r in render_trials(spec, 2):
            assert r.argv is not None
            arch = next(a for a in r.argv if a.startswith("--architecture="))
            NasSpace.from_spec(spec).check(Architecture.from_katib(arch.split("=", 1)[1]))
        # Katib cannot run nasConfig with this algorithm: the export says so, naming the field.
        with pytest.raises(SpecError) as info:
            to_katib(spec)
        (issue,) = info.value.issues
        assert issue.path == "algorithm.name" and repr(algorithm) in issue.message
        assert "enas" in issue.message
    assert to_katib(load_spec(NAS_DIR / "enas-cpu.yaml"))["spec"]["algorithm"] == {
        "algorithmName": "enas"
    }

    # The template may reference the architecture's choices too; anything else is named.
    doc = yaml.safe_load(_enas_with(tmp_path, "random").read_text())
    doc["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = "layer_0_op"
    assert load_spec(_write(tmp_path, doc)).algorithm.name == "random"
    doc["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = "layer_1_op"
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, doc))
    (issue,) = info.value.issues
    assert issue.path == "spec.trialTemplate.trialParameters[0].reference"
    assert "'layer_1_op'" in issue.message and "'architecture'" in issue.message

    # Algorithms that cannot search an architecture, a space without sizes, a grid too small.
    for algorithm in ("hyperband", "pbt"):
        with pytest.raises(SpecError) as info:
            load_spec(_enas_with(tmp_path, algorithm))
        paths = {i.path: i.message for i in info.value.issues}
        assert "cannot search an architecture space" in paths["spec.algorithm.algorithmName"]
    doc = yaml.safe_load(_enas_with(tmp_path, "random").read_text())
    del doc["spec"]["nasConfig"]["graphConfig"]["inputSizes"]
    doc["spec"]["nasConfig"]["operations"][0]["operationType"] = "convolutions"
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, doc))
    paths = {i.path: i.message for i in info.value.issues}
    assert "multi-trial NAS" in paths["spec.nasConfig.graphConfig.inputSizes"]
    assert "'convolutions'" in paths["spec.nasConfig.operations[0].operationType"]
    doc = yaml.safe_load(_enas_with(tmp_path, "grid").read_text())
    doc["spec"]["maxTrialCount"] = 500  # 106 operations, 1 layer: 106 architectures
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, doc))
    (issue,) = info.value.issues
    assert issue.path == "spec.maxTrialCount" and "(106)" in issue.message


def _write(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("algorithm", "trials"),
    # evolution proves the pairing end to end; random (parsed and rendered by the test above)
    # runs the same path with another sampler.
    [("evolution", 3), pytest.param("random", 2, marks=pytest.mark.slow)],
)
def test_katib_nas_example_runs_with_another_algorithm(
    tmp_path: Path, algorithm: str, trials: int
) -> None:
    store = f"sqlite:///{tmp_path / 'a.db'}"
    p = cli(
        tmp_path,
        "run",
        str(_enas_with(tmp_path, algorithm)),
        "--workdir",
        str(ENAS_SCRIPTS),
        "--max-trials",
        str(trials),
        "--store",
        store,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
    )
    assert p.returncode == 0, p.stdout + p.stderr
    client = Client(store)
    e = client.get("enas-cpu")
    assert e.state is ExperimentState.SUCCEEDED and e.spec.algorithm.name == algorithm
    got = client.trials("enas-cpu")
    assert len(got) == trials and all(t.state is TrialState.SUCCEEDED for t in got)
    space = NasSpace.from_spec(e.spec)
    for t in got:
        assert t.value is not None and 0.0 <= t.value <= 1.0
        arch = Architecture.from_dict(t.attrs["architecture"])
        space.check(arch)
        # The algorithm searched the choices; the template got Katib's strings for them.
        assert space.decode(t.params) == arch
        assert Architecture.from_katib(str(t.params["architecture"])) == arch
        assert t.outputs["data"]["architecture"] == arch.to_dict()  # what the trial built

    show = cli(tmp_path, "show", "enas-cpu", "--store", store, "--json")
    assert show.returncode == 0, show.stderr
    data = json.loads(show.stdout)
    for row in data["trial_list"]:  # every trial's architecture, as data
        stored = next(t for t in got if t.id == row["id"])
        assert row["outputs"]["data"]["architecture"] == stored.attrs["architecture"]
        assert (
            row["params"]["layer_0_op"]
            == space.operation_names[stored.attrs["architecture"]["ops"][0]]
        )
    best = client.best_trial("enas-cpu")
    assert best is not None
    assert data["architecture"] == {"kind": "layers", "architecture": best.attrs["architecture"]}
    text = CliRunner().invoke(app, ["show", "enas-cpu", "--store", store], terminal_width=200)
    assert text.exit_code == 0, text.output
    best_op = space.operation_names[best.attrs["architecture"]["ops"][0]]
    assert f"architecture of {best.id}" in text.output and best_op in text.output

    ex = CliRunner().invoke(app, ["export", "enas-cpu", "--format", "katib", "--store", store])
    assert ex.exit_code == 2, ex.output
    assert "algorithm" in ex.output and "Katib cannot run nasConfig" in " ".join(ex.output.split())
