"""Katib files from the command line: dry runs, local runs of the real examples with the shipped
trainer, the Kubernetes-only kinds, export back to Katib, and Katib's resume policies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from automl import Client
from automl.core import ExperimentState, TrialState
from automl.spec import parse_spec
from tests.conftest import KATIB_EXAMPLES, REPO

pytestmark = pytest.mark.integration

AUTOML = [sys.executable, "-m", "automl"]
TRAINER = REPO / "examples" / "katib" / "pytorch-mnist"
MAP = ["--path-map", f"/opt/pytorch-mnist={TRAINER}"]


def cli(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUTOML, *args], cwd=tmp_path, capture_output=True, text=True, timeout=timeout
    )


def test_dry_run_prints_defaults_and_rendered_trials(tmp_path: Path) -> None:
    f = KATIB_EXAMPLES / "hp-tuning" / "random.yaml"
    p = cli(tmp_path, "run", str(f), "--dry-run", "--trials", "2", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    spec = out["spec"]
    assert spec["parallel_trial_count"] == 3 and spec["resume_policy"] == "Never"
    assert all(par["distribution"] == "uniform" for par in spec["parameters"])
    assert len(out["trials"]) == 2
    for t in out["trials"]:
        assert t["argv"][:2] == ["python3", "/opt/pytorch-mnist/mnist.py"]
        assert f"--lr={t['params']['lr']!r}" in t["argv"]
        assert "${" not in json.dumps(t["argv"]) + json.dumps(t["manifest"])
        assert t["manifest"]["metadata"]["name"] == t["name"]
    assert not (tmp_path / "automl.db").exists()  # a dry run stores nothing


def test_dry_run_renders_kubernetes_only_kinds(tmp_path: Path) -> None:
    p = cli(tmp_path, "run", str(KATIB_EXAMPLES / "argo" / "argo-workflow.yaml"), "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "executor: kubernetes" in p.stdout and "kind: Workflow" in p.stdout


@pytest.mark.parametrize(
    "rel",
    [
        "argo/argo-workflow.yaml",
        "tekton/pipeline-run.yaml",
        "kubeflow-training-operator/mpijob-horovod.yaml",
    ],
)
def test_kinds_that_cannot_run_here_say_so(tmp_path: Path, rel: str) -> None:
    p = cli(tmp_path, "run", str(KATIB_EXAMPLES / rel), "--no-progress")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert ("executor: kubernetes" in p.stderr) or ("not run" in p.stderr), p.stderr
    assert not Client(f"sqlite:///{tmp_path / 'automl.db'}").list()  # nothing stored


@pytest.mark.parametrize(
    "rel",
    [
        "hp-tuning/tpe.yaml",
        "hp-tuning/hyperopt-distribution.yaml",
        "early-stopping/median-stop.yaml",
        "resume-experiment/from-volume-resume.yaml",
    ],
)
def test_katib_example_runs_locally_with_the_shipped_trainer(tmp_path: Path, rel: str) -> None:
    p = cli(tmp_path, "run", str(KATIB_EXAMPLES / rel), *MAP, "--max-trials", "2", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "is not pulled" not in p.stdout  # the notice goes to stderr, JSON stays clean
    out = json.loads(p.stdout)
    best = out["best_trial"]
    metric = out["objective"]["metric"]
    assert out["state"] == "Succeeded" and metric in best["metrics"], out
    # Two trials start together. Whichever finishes first may already reach the file's goal
    # (hyperopt-distribution.yaml: loss 0.05), which ends the experiment and kills the other
    # one (docs/spec.md: trials still running at the end are killed); otherwise both succeed.
    if out["reason"] == "ExperimentGoalReached":
        assert best["metrics"][metric]["min"] <= out["objective"]["goal"], out
        assert out["trials"].get("Succeeded", 0) >= 1, out
        assert set(out["trials"]) <= {"Succeeded", "Killed"}, out
        assert sum(out["trials"].values()) == 2, out
    else:
        assert out["reason"] == "ExperimentMaxTrialsReached", out
        assert out["trials"] == {"Succeeded": 2}, out


def test_export_round_trips_a_stored_katib_experiment(tmp_path: Path) -> None:
    f = KATIB_EXAMPLES / "hp-tuning" / "random.yaml"
    p = cli(tmp_path, "run", str(f), *MAP, "--max-trials", "1", "--no-progress")
    assert p.returncode == 0, p.stdout + p.stderr
    p = cli(tmp_path, "export", "random", "--format", "katib")
    assert p.returncode == 0, p.stderr
    doc = yaml.safe_load(p.stdout)
    assert (doc["apiVersion"], doc["kind"]) == ("kubeflow.org/v1beta1", "Experiment")
    stored = Client(f"sqlite:///{tmp_path / 'automl.db'}").get("random").spec
    again = parse_spec(p.stdout, base_dir=KATIB_EXAMPLES / "hp-tuning")
    # The stored spec carries the local path map and the quick-try budget; both export as is.
    assert again.model_dump(exclude={"trial_template": {"path_map", "workdir"}}) == (
        stored.model_dump(exclude={"trial_template": {"path_map", "workdir"}})
    )


def test_export_of_a_native_experiment_is_a_katib_file(tmp_path: Path) -> None:
    example = REPO / "examples" / "sklearn-digits" / "experiment.yaml"
    store = f"sqlite:///{tmp_path / 's.db'}"
    Client(store).create(example)
    out = tmp_path / "katib.yaml"
    p = cli(tmp_path, "export", "sklearn-digits", "--store", store, "-o", str(out))
    assert p.returncode == 0, p.stderr
    spec = parse_spec(out.read_text(), base_dir=example.parent)
    assert spec.source == "katib" and spec.name == "sklearn-digits"
    assert [p.name for p in spec.parameters] == ["C", "gamma", "kernel", "degree"]
    assert any("${trialParameters.C}" in a for a in spec.trial_template.command or ())


# -- resumePolicy ----------------------------------------------------------------------------

TRIAL = 'import sys\nlr = float(sys.argv[1].split("=")[1])\nprint(f"loss={(lr - 0.02) ** 2}")\n'


def katib_doc(tmp_path: Path, name: str, policy: str | None) -> Path:
    (tmp_path / "t.py").write_text(TRIAL)
    spec: dict[str, object] = {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {"algorithmName": "random"},
        "parallelTrialCount": 1,
        "maxTrialCount": 2,
        "parameters": [
            {
                "name": "lr",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.01", "max": "0.03"},
            },
        ],
        "trialTemplate": {
            "primaryContainerName": "main",
            "trialParameters": [{"name": "lr", "reference": "lr"}],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "python:3.11",
                                    "command": ["python", "t.py", "--lr=${trialParameters.lr}"],
                                },
                            ],
                        }
                    }
                },
            },
        },
    }
    if policy is not None:
        spec["resumePolicy"] = policy
    doc = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": spec,
    }
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


def test_resume_policy_never_refuses_a_finished_experiment(tmp_path: Path) -> None:
    f = katib_doc(tmp_path, "never", None)  # Katib's default
    assert cli(tmp_path, "run", str(f), "--no-progress").returncode == 0
    p = cli(tmp_path, "resume", "never", "--max-trials", "3", "--no-progress")
    assert p.returncode == 2
    assert "resumePolicy" in p.stderr and "Never" in p.stderr and "Traceback" not in p.stderr
    assert len(Client(f"sqlite:///{tmp_path / 'automl.db'}").trials("never")) == 2


@pytest.mark.parametrize("policy", ["LongRunning", "FromVolume"])
def test_resume_policy_lets_a_finished_experiment_go_on(tmp_path: Path, policy: str) -> None:
    f = katib_doc(tmp_path, policy.lower(), policy)
    name = policy.lower()
    assert cli(tmp_path, "run", str(f), "--no-progress").returncode == 0
    client = Client(f"sqlite:///{tmp_path / 'automl.db'}")
    first = {t.id: t for t in client.trials(name)}
    p = cli(tmp_path, "resume", name, "--max-trials", "4", "--no-progress", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    trials = client.trials(name)
    assert len(trials) == 4 and all(t.state is TrialState.SUCCEEDED for t in trials)
    for t in trials:  # the first two are kept as they were
        if t.id in first:
            assert t.finished_at == first[t.id].finished_at
    exp = client.get(name)
    assert exp.state is ExperimentState.SUCCEEDED and exp.spec.max_trial_count == 4


def test_resume_policy_never_still_continues_a_stopped_experiment(tmp_path: Path) -> None:
    f = katib_doc(tmp_path, "stopped", None)
    store = f"sqlite:///{tmp_path / 'automl.db'}"
    client = Client(store)
    exp = client.create(f)
    client.stop(exp.name)  # no controller: stopped at once, nothing ran
    assert client.get("stopped").state is ExperimentState.STOPPED
    p = cli(tmp_path, "resume", "stopped", "--no-progress")
    assert p.returncode == 0, p.stdout + p.stderr
    assert client.get("stopped").state is ExperimentState.SUCCEEDED


def test_custom_collector_without_a_command_is_refused_before_anything_is_stored(
    tmp_path: Path,
) -> None:
    d = yaml.safe_load((KATIB_EXAMPLES / "hp-tuning" / "random.yaml").read_text())
    d["spec"]["metricsCollectorSpec"] = {
        "collector": {
            "kind": "Custom",
            "customCollector": {"name": "custom-metrics-logger", "image": "my/collector:v1"},
        }
    }
    f = tmp_path / "custom.yaml"
    f.write_text(yaml.safe_dump(d))
    spec = parse_spec(f.read_text(), base_dir=tmp_path)
    assert spec.trial_template.local_blocker is not None
    assert "'custom-metrics-logger' sets no command" in spec.trial_template.local_blocker
    p = cli(tmp_path, "run", str(f), *MAP, "--no-progress")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "sets no command" in p.stderr and "executor: kubernetes" in p.stderr
    assert (
        not (tmp_path / "automl.db").exists()
        or not Client(f"sqlite:///{tmp_path / 'automl.db'}").list()
    )


def test_max_trials_applies_before_validation_and_says_what_it_changed(tmp_path: Path) -> None:
    d = yaml.safe_load((KATIB_EXAMPLES / "hp-tuning" / "random.yaml").read_text())
    d["spec"]["algorithm"] = {"algorithmName": "grid"}
    d["spec"]["parameters"] = [
        {"name": "lr", "parameterType": "discrete", "feasibleSpace": {"list": ["0.01", "0.02"]}},
        {"name": "momentum", "parameterType": "discrete", "feasibleSpace": {"list": ["0.5"]}},
    ]
    f = tmp_path / "grid.yaml"
    f.write_text(yaml.safe_dump(d))
    p = cli(tmp_path, "validate", str(f))
    assert p.returncode == 2 and "number of grid combinations (2)" in p.stdout + p.stderr
    p = cli(tmp_path, "run", str(f), "--max-trials", "2", "--dry-run", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["spec"]["max_trial_count"] == 2
    for note in (
        "max trials: 12 -> 2 (--max-trials)",
        "parallel trials: 3 -> 2 (to fit --max-trials)",
        "max failed trials: 3 -> 2 (to fit --max-trials)",
    ):
        assert note in p.stderr, p.stderr
