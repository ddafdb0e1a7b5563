"""Rendered trial manifests validate offline: Job and PyTorchJob from native specs, and the
Katib examples whose trial is a Job or a PyTorchJob, against the Kubernetes OpenAPI schema
(kubernetes-validate) and the training-operator PyTorchJob CRD schema."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl.errors import SpecError
from automl.spec import load_spec, parse_spec
from tests.conftest import KATIB_EXAMPLES
from trials._base import TrialRun
from trials._manifests import (
    ManifestError,
    job_name,
    label_value,
    pod_templates,
    render_manifest,
    validate_manifest,
)

EVIL = "; rm -rf ~ && echo $(whoami) `id` | cat > /tmp/x"


def native(tmp_path: Path, resources: dict[str, Any] | None = None, **executor: Any) -> Any:
    doc = {
        "name": "k8s-native",
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": {
            "lr": {"type": "double", "min": 0.001, "max": 0.1},
            "opt": {"type": "categorical", "values": ["sgd", EVIL]},
        },
        "trial": {
            "command": ["python", "train.py", "--lr=${lr}", "--opt", "${opt}"],
            "env": {"MODE": "fast-${opt}"},
            "resources": resources or {},
        },
        "executor": {"kind": "kubernetes", "image": "python:3.11-slim", **executor},
    }
    return parse_spec(yaml.safe_dump(doc), base_dir=tmp_path)


def run(**kw: Any) -> TrialRun:
    return TrialRun("k8s-native-bcdfghjk", "k8s-native", 0, {"lr": 0.01, "opt": EVIL}, **kw)


def container(m: dict[str, Any]) -> dict[str, Any]:
    return next(pod_templates(m))["spec"]["containers"][0]


def test_native_job_renders_and_validates(tmp_path: Path) -> None:
    spec = native(tmp_path, {"cpu": 1.5, "memory": "2Gi", "gpu": 2})
    m = render_manifest(spec, run(), "team-a")
    assert validate_manifest(m) is True
    assert (m["apiVersion"], m["kind"]) == ("batch/v1", "Job")
    assert m["metadata"]["namespace"] == "team-a"
    assert m["spec"]["backoffLimit"] == 0
    pod = m["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    c = container(m)
    assert c["image"] == "python:3.11-slim"
    # No shell: the command is the argv, a value with shell metacharacters is one element.
    assert c["command"] == ["python", "train.py", "--lr=0.01", "--opt", EVIL]
    assert "args" not in c
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["MODE"] == f"fast-{EVIL}"
    assert env["AUTOML_REPORT_STDOUT"] == "1"
    assert env["KATIB_TRIAL_NAME"] == "k8s-native-bcdfghjk"
    assert c["resources"] == {
        "requests": {"cpu": "1500m", "memory": "2Gi"},
        "limits": {"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": "2"},
    }
    labels = m["metadata"]["labels"]
    assert labels["katib.kubeflow.org/experiment"] == "k8s-native"
    assert labels["katib.kubeflow.org/trial"] == "k8s-native-bcdfghjk"
    assert labels["automl.dev/trial"] == "k8s-native-bcdfghjk"
    assert pod["metadata"]["labels"]["automl.dev/experiment"] == "k8s-native"


def test_native_pytorchjob_renders_and_validates(tmp_path: Path) -> None:
    spec = native(tmp_path, {"workers": 3, "processes_per_worker": 2, "gpu": 1, "cpu": 4})
    m = render_manifest(spec, run(), "default")
    assert validate_manifest(m) is True
    assert (m["apiVersion"], m["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    assert m["spec"]["nprocPerNode"] == "2"
    replicas = m["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1
    assert replicas["Worker"]["replicas"] == 2
    for r in replicas.values():
        assert r["restartPolicy"] == "OnFailure"
        c = r["template"]["spec"]["containers"][0]
        assert c["name"] == "pytorch"
        assert c["command"] == ["torchrun", "train.py", "--lr=0.01", "--opt", EVIL]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_two_workers_one_process_each_keeps_python(tmp_path: Path) -> None:
    m = render_manifest(native(tmp_path, {"workers": 2}), run(), "default")
    assert validate_manifest(m)
    assert set(m["spec"]["pytorchReplicaSpecs"]) == {"Master", "Worker"}
    assert container(m)["command"][0] == "python"


def test_only_core_kinds_and_pytorchjobs_are_schema_checked() -> None:
    # What the README says: other custom kinds go to the API server as written.
    tfjob = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": "t"},
        "spec": {"notAField": True},
    }
    assert validate_manifest(tfjob) is False
    bad_job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {}}
    bad_job["spec"]["notAField"] = True
    with pytest.raises(ManifestError):
        validate_manifest(bad_job)


def test_fractional_gpu_is_refused_without_a_shared_resource(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as e:
        render_manifest(native(tmp_path, {"gpu": 0.5}), run(), "default")
    assert e.value.issues[0].path == "trial.resources.gpu"
    assert "0.5" in str(e.value)
    spec = native(tmp_path, {"gpu": 0.5}, settings={"gpu_resource": "nvidia.com/gpu.shared"})
    m = render_manifest(spec, run(), "default")
    assert validate_manifest(m)
    assert container(m)["resources"]["limits"] == {"nvidia.com/gpu.shared": "1"}


def test_native_trial_needs_an_image(tmp_path: Path) -> None:
    spec = native(tmp_path, image=None)
    with pytest.raises(SpecError) as e:
        render_manifest(spec, run(), "default")
    assert e.value.issues[0].path == "executor.image"


def test_validation_names_the_bad_field(tmp_path: Path) -> None:
    m = render_manifest(native(tmp_path), run(), "default")
    m["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(ManifestError) as e:
        validate_manifest(m)
    assert "imagePullPolicyy" in str(e.value)
    assert e.value.path == "spec.template.spec.containers.0"
    p = render_manifest(native(tmp_path, {"workers": 2}), run(), "default")
    p["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = "one"
    with pytest.raises(ManifestError) as e:
        validate_manifest(p)
    assert e.value.path == "spec.pytorchReplicaSpecs.Master.replicas"
    q = render_manifest(native(tmp_path, {"workers": 2}), run(), "default")
    q["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["cpu"] = 1
    with pytest.raises(ManifestError) as e:
        validate_manifest(q)
    assert e.value.path.startswith("spec.pytorchReplicaSpecs.Worker.template.spec.containers")


def test_names_and_labels_are_valid_kubernetes_values() -> None:
    r = TrialRun("My_Exp.v2-bcdfghjk", "My_Exp.v2", 0, {}, attempt=3)
    name = job_name(r)
    assert name.startswith("my-exp-v2-bcdfghjk-a3-")  # changed, so a hash keeps it unique
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63
    assert job_name(TrialRun("exp-bcdfghjk", "exp", 0, {})) == "exp-bcdfghjk"
    long = "x" * 80
    v = label_value(long)
    assert len(v) <= 63 and v != label_value("x" * 81)


def _katib_job_examples() -> list[Path]:
    out = []
    for f in sorted(KATIB_EXAMPLES.glob("*/*.yaml")):
        text = f.read_text()
        if "kind: Job" in text or "kind: PyTorchJob" in text:
            out.append(f)
    return out


@pytest.mark.parametrize("path", _katib_job_examples(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_katib_examples_render_and_validate(path: Path) -> None:
    spec = load_spec(path)
    m = spec.trial_template.manifest
    assert m is not None and m["kind"] in ("Job", "PyTorchJob")
    params = {}
    for p in spec.parameters:
        params[p.name] = (
            p.values[0] if p.values else (int(p.min) if p.type.value == "int" else p.min)
        )
    if not spec.parameters:  # NAS: the assignments are strings
        params = {tp.reference: "1" for tp in spec.trial_template.trial_parameters}
    r = TrialRun(f"{spec.name}-bcdfghjk", spec.name, 0, params)
    out = render_manifest(spec, r, "kubeflow")
    assert validate_manifest(out) is True
    assert "${trialParameters." not in str(out)
    assert out["metadata"]["name"] == job_name(r)
    assert out["metadata"]["labels"]["katib.kubeflow.org/trial"] == r.trial_id
    primary = [
        c
        for pod in pod_templates(out)
        for c in pod["spec"]["containers"]
        if c["name"] == spec.trial_template.primary_container_name
    ]
    assert primary
    for c in primary:
        assert {"name": "KATIB_TRIAL_NAME", "value": r.trial_id} in c["env"]


def test_katib_resources_fill_the_trial_template() -> None:
    random = load_spec(KATIB_EXAMPLES / "hp-tuning" / "random.yaml").trial_template.resources
    assert (random.cpu, random.memory, random.gpu) == (0.5, "1Gi", 0.0)
    darts = load_spec(KATIB_EXAMPLES / "nas" / "darts-gpu.yaml").trial_template.resources
    assert darts.gpu == 1
    mnist = load_spec(KATIB_EXAMPLES / "kubeflow-training-operator" / "pytorchjob-mnist.yaml")
    r = mnist.trial_template.resources
    assert (r.workers, r.processes_per_worker) == (2, 1)  # Master + 1 Worker


def test_katib_pytorchjob_nproc_and_cpu_millis(tmp_path: Path) -> None:
    path = KATIB_EXAMPLES / "kubeflow-training-operator" / "pytorchjob-mnist.yaml"
    doc = yaml.safe_load(path.read_text())
    spec = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]
    spec["nprocPerNode"] = "4"
    spec["pytorchReplicaSpecs"]["Worker"]["replicas"] = 3
    for replica in spec["pytorchReplicaSpecs"].values():
        replica["template"]["spec"]["containers"][0]["resources"] = {
            "limits": {"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": 2}
        }
    r = parse_spec(yaml.safe_dump(doc), base_dir=tmp_path).trial_template.resources
    assert (r.workers, r.processes_per_worker, r.cpu, r.memory, r.gpu) == (4, 4, 1.5, "2Gi", 2)
    spec["nprocPerNode"] = "auto"
    r = parse_spec(yaml.safe_dump(doc), base_dir=tmp_path).trial_template.resources
    assert r.processes_per_worker == 1
