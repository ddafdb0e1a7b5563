"""Spec fields for scale-out: executor, per-trial resources, notebook trials; and their export."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from automl.core import ExecutorKind, Resources, parse_quantity
from automl.errors import SpecError
from automl.spec import parse_spec
from automl.spec._export import to_katib
from tests.conftest import REPO

EXAMPLE_DIR = REPO / "examples" / "sklearn-digits"


def _doc(**extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = yaml.safe_load((EXAMPLE_DIR / "experiment.yaml").read_text())
    d.update(extra)
    return d


def _parse(d: dict[str, Any]) -> Any:
    return parse_spec(yaml.safe_dump(d, sort_keys=False), base_dir=EXAMPLE_DIR)


def _issues(d: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        _parse(d)
    return {i.path: i.message for i in info.value.issues}


def test_defaults_are_local_and_no_resources() -> None:
    spec = _parse(_doc())
    assert spec.executor.kind is ExecutorKind.LOCAL
    assert spec.trial_template.resources == Resources()
    assert not spec.trial_template.resources.distributed


def test_executor_and_resources_parse_and_round_trip() -> None:
    d = _doc(executor={"kind": "ray", "address": "auto", "max_retries": 2})
    d["trial"]["resources"] = {"cpu": 2, "memory": "4Gi", "gpu": 0.25, "gpu_memory": "10Gi"}
    spec = _parse(d)
    assert spec.executor.kind is ExecutorKind.RAY
    assert spec.executor.address == "auto"
    assert spec.executor.max_retries == 2
    r = spec.trial_template.resources
    assert (r.cpu, r.gpu, r.memory_bytes, r.gpu_memory_bytes) == (2, 0.25, 4 * 2**30, 10 * 2**30)
    assert type(spec).from_json(spec.to_json()) == spec


def test_executor_shorthand_string() -> None:
    assert _parse(_doc(executor="kubernetes")).executor.kind is ExecutorKind.KUBERNETES


@pytest.mark.parametrize(
    ("resources", "path", "words"),
    [
        ({"gpu": 1.5}, "trial.resources.gpu", "whole number"),
        ({"gpu": -1}, "trial.resources.gpu", "0 or more"),
        ({"cpu": 0}, "trial.resources.cpu", "greater than 0"),
        ({"memory": "lots"}, "trial.resources.memory", "'lots'"),
        ({"gpu_memory": "4Gi"}, "trial.resources.gpu_memory", "needs gpu > 0"),
        ({"workers": 0}, "trial.resources.workers", "[1, 1024]"),
        ({"processes_per_worker": 0}, "trial.resources.processes_per_worker", "[1, 1024]"),
        ({"workers": 10**9}, "trial.resources.workers", "[1, 1024]"),
    ],
)
def test_bad_resources_name_the_field(resources: dict[str, Any], path: str, words: str) -> None:
    d = _doc()
    d["trial"]["resources"] = resources
    issues = _issues(d)
    assert path in issues, issues
    assert words in issues[path]


def test_executor_settings_must_match_its_kind() -> None:
    issues = _issues(_doc(executor={"kind": "local", "address": "auto", "image": "x"}))
    assert "Ray setting" in issues["executor.address"]
    assert "Kubernetes setting" in issues["executor.image"]
    issues = _issues(_doc(executor={"kind": "slurm"}))
    assert any(p.startswith("executor") for p in issues)


def test_notebook_and_command_are_exclusive(tmp_path: Any) -> None:
    nb = REPO / "examples" / "notebooks" / "train.ipynb"  # a valid notebook with parameters
    d = _doc()
    d["trial"]["notebook"] = str(nb)
    issues = _issues(d)
    assert "command and notebook" in issues["trial"]
    d["trial"].pop("command")
    d["trial"]["notebook"] = str(tmp_path / "missing.ipynb")
    assert "existing notebook" in _issues(d)["trial.notebook"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512Mi", 512 * 2**20), ("4Gi", 4 * 2**30), ("2G", 2 * 10**9), ("1.5Gi", 3 * 2**29)],
)
def test_parse_quantity(text: str, expected: int) -> None:
    assert parse_quantity(text, "x") == expected


def test_export_puts_limits_on_the_container() -> None:
    d = _doc()
    d["trial"]["resources"] = {"cpu": 2, "memory": "4Gi", "gpu": 1}
    out = to_katib(_parse(d))
    trial_spec = out["spec"]["trialTemplate"]["trialSpec"]
    assert trial_spec["kind"] == "Job"
    container = trial_spec["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": 1}


def test_export_distributed_trial_is_a_pytorchjob() -> None:
    d = _doc()
    d["trial"]["resources"] = {"workers": 3, "processes_per_worker": 2, "gpu": 1}
    out = to_katib(_parse(d))
    template = out["spec"]["trialTemplate"]
    assert template["trialSpec"]["apiVersion"] == "kubeflow.org/v1"
    assert template["trialSpec"]["kind"] == "PyTorchJob"
    replicas = template["trialSpec"]["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1
    assert replicas["Worker"]["replicas"] == 2
    assert template["trialSpec"]["spec"]["nprocPerNode"] == "2"
    container = replicas["Worker"]["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch" == template["primaryContainerName"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert template["primaryPodLabels"] == {"training.kubeflow.org/job-role": "master"}
    assert 'type=="Succeeded"' in template["successCondition"]
    # And the exported document parses back into the same resources.
    back = parse_spec(yaml.safe_dump(out), base_dir=EXAMPLE_DIR)
    assert back.trial_template.manifest is not None


def test_export_refuses_fractional_gpu() -> None:
    d = _doc()
    d["trial"]["resources"] = {"gpu": 0.5}
    with pytest.raises(SpecError) as info:
        to_katib(_parse(d))
    assert info.value.issues[0].path == "trial_template.resources.gpu"


def test_impossible_gpu_request_fails_before_anything_is_stored(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from automl import Client
    from automl.cli import app

    monkeypatch.setenv("AUTOML_GPUS", "2")  # two simulated devices
    d = _doc(name="too-many-gpus")
    d["trial"]["resources"] = {"gpu": 4}
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    r = CliRunner().invoke(app, ["run", str(f), "--store", url, "--no-progress"])
    assert r.exit_code == 2, r.stdout
    out = " ".join((r.stdout + r.stderr).split())
    assert "trial.resources.gpu" in out
    assert "2 GPUs" in out
    with Client(url) as client:
        assert client.list() == []  # nothing stored: fixing the file and re-running just works


def test_run_executor_flags_override_a_katib_document(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from automl import Client
    from automl.cli import app
    from tests.conftest import KATIB_EXAMPLES

    url = f"sqlite:///{tmp_path / 'x.db'}"
    f = str(KATIB_EXAMPLES / "hp-tuning" / "random.yaml")
    runner = CliRunner()
    r = runner.invoke(app, ["run", f, "--store", url, "--executor", "slurm"])
    assert r.exit_code == 2
    assert "--executor" in r.stdout + r.stderr
    missing = tmp_path / "no-such-kubeconfig"
    r = runner.invoke(
        app,
        [
            "run",
            f,
            "--store",
            url,
            "--no-progress",
            "--executor",
            "kubernetes",
            "--executor-opt",
            f"kubeconfig={missing}",
        ],
    )
    assert r.exit_code == 2, r.stdout + r.stderr
    assert "executor.kubeconfig" in " ".join((r.stdout + r.stderr).split())
    with Client(url) as client:
        assert client.list() == []  # checked before the experiment was stored
