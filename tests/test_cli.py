"""The command line: run, validate, list, show, best, stop, resume, delete; --json output;
bad input exits 2 with a message and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from automl import Client
from automl.cli import app
from automl.core import ExperimentState, TrialState

pytestmark = pytest.mark.integration

SCRIPT = """
import sys
x = float(sys.argv[1])
k = sys.argv[2]
print(f"epoch=1 loss={x * x + (0.5 if k == 'b' else 0.0)} acc={1 - abs(x)}")
"""


def write_exp(tmp_path: Path, name: str = "tiny", **budget: Any) -> Path:
    (tmp_path / "script.py").write_text(SCRIPT)
    doc = {
        "name": name,
        "objective": {"metric": "loss", "direction": "minimize", "additional_metrics": ["acc"]},
        "algorithm": {"name": "tpe", "settings": {"n_startup_trials": 3}},
        "seed": 0,
        "parameters": {
            "x": {"type": "double", "min": -1, "max": 1},
            "k": ["a", "b"],
        },
        "budget": {"max_trials": 4, "parallel": 2, **budget},
        "trial": {"command": ["python", "script.py", "${x}", "${k}"]},
    }
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    def invoke(*args: str, store: bool = True, input: str | None = None) -> Any:
        argv = list(args)
        if store:
            argv += ["--store", url]
        return runner.invoke(app, argv, input=input, env={"COLUMNS": "200"})

    invoke.url = url  # type: ignore[attr-defined]
    return invoke


def run_tiny(cli: Any, tmp_path: Path, name: str = "tiny", **budget: Any) -> Any:
    f = write_exp(tmp_path, name, **budget)
    r = cli("run", str(f), "--no-progress", "--runs-dir", str(tmp_path / "runs"))
    assert r.exit_code == 0, r.stdout + r.stderr
    return r


def test_run_prints_summary(cli: Any, tmp_path: Path) -> None:
    r = run_tiny(cli, tmp_path)
    assert "experiment tiny: tpe, 2 in parallel" in r.stdout
    assert "tiny: Succeeded (ExperimentMaxTrialsReached)" in r.stdout
    assert "4 trials: 4 succeeded" in r.stdout
    assert (tmp_path / "runs" / "tiny").is_dir()
    assert len(list((tmp_path / "runs" / "tiny").iterdir())) == 4


def test_run_json(cli: Any, tmp_path: Path) -> None:
    f = write_exp(tmp_path)
    r = cli("run", str(f), "--json", "--runs-dir", str(tmp_path / "runs"))
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["name"] == "tiny"
    assert data["state"] == "Succeeded"
    assert data["reason"] == "ExperimentMaxTrialsReached"
    assert data["trials"] == {"Succeeded": 4}
    assert data["objective"] == {"metric": "loss", "type": "minimize", "goal": None}
    best = data["best_trial"]
    assert set(best["params"]) == {"x", "k"}
    assert best["metrics"]["loss"]["min"] == best["value"]


def test_run_name_override_and_duplicate(cli: Any, tmp_path: Path) -> None:
    f = write_exp(tmp_path)
    args = ("run", str(f), "--no-progress", "--runs-dir", str(tmp_path / "runs"))
    assert cli(*args, "--name", "renamed").exit_code == 0
    assert cli(*args, "--name", "renamed").exit_code == 2
    r = cli(*args, "--name", "renamed")
    assert "already exists" in r.stderr
    r = cli(*args, "--name", "Bad Name!")
    assert r.exit_code == 2
    assert "name: must be" in r.stderr
    names = [e["name"] for e in json.loads(cli("list", "--json").stdout)]
    assert names == ["renamed"]


def test_run_failed_experiment_exits_1(cli: Any, tmp_path: Path) -> None:
    f = write_exp(tmp_path, "failing", max_failed=1)
    (tmp_path / "script.py").write_text("import sys\nsys.exit(4)\n")
    r = cli("run", str(f), "--no-progress", "--runs-dir", str(tmp_path / "runs"))
    assert r.exit_code == 1
    assert "Failed (ExperimentFailed)" in r.stdout


def test_validate_good_and_bad(cli: Any, tmp_path: Path) -> None:
    good = write_exp(tmp_path)
    r = cli("validate", str(good), store=False)
    assert r.exit_code == 0, r.stderr
    assert "ok" in r.stdout and "'tiny'" in r.stdout and "2 parameters" in r.stdout

    doc = yaml.safe_load(good.read_text())
    doc["parameters"]["x"] = {"type": "double", "min": 1, "max": 0}
    doc["budget"]["paralel"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    r = cli("validate", str(bad), store=False)
    assert r.exit_code == 2
    assert "budget.paralel: is not a known field" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout

    del doc["budget"]["paralel"]
    bad.write_text(yaml.safe_dump(doc))
    r = cli("validate", str(bad), str(good), store=False)
    assert r.exit_code == 2
    assert "parameters.x.max: must be greater than min (1); got 0" in r.stderr
    assert "ok" in r.stdout  # the good file is still reported

    r = cli("validate", str(bad), "--json", store=False)
    assert r.exit_code == 2
    (entry,) = json.loads(r.stdout)
    assert entry["valid"] is False
    assert {"path": "parameters.x.max", "message": "must be greater than min (1); got 0"} in entry[
        "issues"
    ]


def test_validate_malformed_yaml_and_missing_file(cli: Any, tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("name: x\nobjective: [unclosed\n")
    r = cli("validate", str(f), store=False)
    assert r.exit_code == 2
    assert "malformed YAML at line" in r.stderr
    r = cli("validate", str(tmp_path / "missing.yaml"), store=False)
    assert r.exit_code == 2
    assert "cannot read" in r.stderr
    r = cli("run", str(tmp_path / "missing.yaml"))
    assert r.exit_code == 2 and "cannot read" in r.stderr


def test_validate_katib_paths(cli: Any, tmp_path: Path) -> None:
    doc = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "k"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "acc"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.1", "max": "0.01"},
                }
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
                                "containers": [
                                    {
                                        "name": "main",
                                        "command": [
                                            "python",
                                            "t.py",
                                            "--lr=${trialParameters.lr}",
                                        ],
                                    }
                                ]
                            }
                        }
                    },
                },
            },
        },
    }
    f = tmp_path / "katib.yaml"
    f.write_text(yaml.safe_dump(doc))
    r = cli("validate", str(f), store=False)
    assert r.exit_code == 2
    assert "spec.parameters[0].feasibleSpace.max" in r.stderr


def test_list_show_best_json(cli: Any, tmp_path: Path) -> None:
    run_tiny(cli, tmp_path)
    rows = json.loads(cli("list", "--json").stdout)
    assert [r["name"] for r in rows] == ["tiny"]
    row = rows[0]
    assert row["state"] == "Succeeded" and row["algorithm"] == "tpe"
    assert row["trials"] == {"Succeeded": 4}
    assert row["best_trial"]["state"] == "Succeeded"

    r = cli("show", "tiny", "--json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["spec"]["name"] == "tiny"
    assert data["spec"]["max_trial_count"] == 4
    trials = data["trial_list"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    for t in trials:
        assert t["state"] == "Succeeded" and t["attempt"] == 1
        assert set(t["params"]) == {"x", "k"} and t["params"]["k"] in ("a", "b")
        x, k = t["params"]["x"], t["params"]["k"]
        assert t["value"] == pytest.approx(x * x + (0.5 if k == "b" else 0.0))
        assert t["metrics"]["acc"]["latest"] == pytest.approx(1 - abs(x))
        assert t["finished_at"] >= t["started_at"]

    r = cli("best", "tiny", "--json")
    assert r.exit_code == 0
    best = json.loads(r.stdout)
    assert best["value"] == min(t["value"] for t in trials)
    assert best["id"] == data["best_trial"]["id"]

    # Human output mentions the same things.
    r = cli("show", "tiny")
    assert r.exit_code == 0 and f"{best['id']} *" in r.stdout  # the best trial is marked
    for t in trials:
        assert t["id"] in r.stdout
    r = cli("best", "tiny")
    assert r.exit_code == 0 and "loss (min)" in r.stdout
    r = cli("list")
    assert r.exit_code == 0 and "tiny" in r.stdout


def test_best_without_succeeded_trial_exits_1(cli: Any, tmp_path: Path) -> None:
    Client(cli.url).create(write_exp(tmp_path, "empty"))
    r = cli("best", "empty", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout) is None


def test_unknown_experiment_exits_2(cli: Any, tmp_path: Path) -> None:
    run_tiny(cli, tmp_path)  # the store exists and has another experiment
    for cmd in (
        ["show", "nope"],
        ["best", "nope"],
        ["stop", "nope"],
        ["resume", "nope"],
        ["delete", "nope", "--yes"],
        ["show", "nope", "--json"],
    ):
        r = cli(*cmd)
        assert r.exit_code == 2, cmd
        assert "no experiment named 'nope'" in r.stderr, cmd


def test_stop_and_delete(cli: Any, tmp_path: Path) -> None:
    client = Client(cli.url)
    client.create(write_exp(tmp_path, "pending"))
    r = cli("stop", "pending")
    assert r.exit_code == 0
    assert "pending: Stopped" in r.stdout
    assert client.get("pending").state is ExperimentState.STOPPED

    run_tiny(cli, tmp_path)
    r = cli("stop", "tiny")  # already finished: nothing changes
    assert r.exit_code == 0 and "tiny: Succeeded" in r.stdout

    r = cli("delete", "tiny", input="n\n")
    assert r.exit_code == 1
    assert client.get("tiny").name == "tiny"
    r = cli("delete", "tiny", "--yes")
    assert r.exit_code == 0 and "deleted tiny" in r.stdout
    r = cli("show", "tiny")
    assert r.exit_code == 2
    assert [e.name for e in client.list()] == ["pending"]
    r = cli("delete", "pending", input="y\n")
    assert r.exit_code == 0
    assert client.list() == []


def test_resume_finished_with_more_trials(cli: Any, tmp_path: Path) -> None:
    run_tiny(cli, tmp_path)
    client = Client(cli.url)
    first = {t.id: t for t in client.trials("tiny")}
    r = cli(
        "resume",
        "tiny",
        "--max-trials",
        "7",
        "--no-progress",
        "--json",
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["state"] == "Succeeded" and data["reason"] == "ExperimentMaxTrialsReached"
    assert data["trials"] == {"Succeeded": 7}
    trials = client.trials("tiny")
    assert [t.number for t in trials] == list(range(7))
    for t in trials[:4]:
        old = first[t.id]
        assert (t.params, t.value, t.finished_at) == (old.params, old.value, old.finished_at)
    assert client.get("tiny").spec.max_trial_count == 7
    assert all(t.state is TrialState.SUCCEEDED for t in trials)

    # Resuming again without a larger budget ends at once.
    r = cli("resume", "tiny", "--no-progress", "--runs-dir", str(tmp_path / "runs"))
    assert r.exit_code == 0
    assert len(client.trials("tiny")) == 7


def test_resume_bad_budget_exits_2(cli: Any, tmp_path: Path) -> None:
    run_tiny(cli, tmp_path)
    r = cli("resume", "tiny", "--max-trials", "0", "--no-progress")
    assert r.exit_code == 2
    assert "must be at least 1" in r.stderr
    r = cli("resume", "tiny", "--max-trials", "1", "--no-progress")  # parallel is 2
    assert r.exit_code == 2
    assert "must not exceed" in r.stderr
    assert Client(cli.url).get("tiny").spec.max_trial_count == 4  # nothing was changed


def test_store_from_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    f = write_exp(tmp_path)
    runner = CliRunner()
    r = runner.invoke(
        app,
        ["run", str(f), "--no-progress", "--runs-dir", str(tmp_path / "runs")],
        env={"AUTOML_STORE": url},
    )
    assert r.exit_code == 0, r.stderr
    assert [e.name for e in Client(url).list()] == ["tiny"]


def test_real_process_bad_input_has_no_traceback(tmp_path: Path) -> None:
    good = write_exp(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("max_trials: 4", "max_trials: -1"))
    url = f"sqlite:///{tmp_path / 'p.db'}"
    cases = [
        (["run", str(bad), "--store", url], "budget.max_trials"),
        (["show", "nope", "--store", url], "no automl store at"),  # a reader creates none
        (["list", "--store", str(tmp_path / "no" / "dir" / "x.db")], "does not exist"),
        (["show", "nope", "--store", f"sqlite:///{tmp_path / 'made.db'}"], "no experiment named"),
    ]
    Client(f"sqlite:///{tmp_path / 'made.db'}").close()
    for args, needle in cases:
        p = subprocess.run(
            [sys.executable, "-m", "automl", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert p.returncode == 2, (args, p.stderr)
        assert needle in p.stderr, (args, p.stderr)
        assert "Traceback" not in p.stderr + p.stdout, args
    p = subprocess.run(
        [sys.executable, "-m", "automl", "--help"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0
    for cmd in ("run", "validate", "list", "show", "best", "stop", "resume", "delete"):
        assert cmd in p.stdout


def test_show_does_not_claim_no_trial_succeeded(cli: Any, tmp_path: Path) -> None:
    run_tiny(cli, tmp_path)
    r = cli("show", "tiny")
    assert r.exit_code == 0
    assert "4 succeeded" in r.stdout
    assert "no trial succeeded" not in r.stdout


def test_store_url_with_bad_port_exits_2(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "automl", "list", "--store", "postgresql://u@h:notaport/db"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert "Traceback" not in p.stderr
    assert p.returncode == 2
    assert "store" in p.stderr


KATIB_BAD_SETTING = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: k}
spec:
  objective: {type: maximize, objectiveMetricName: acc}
  algorithm:
    algorithmName: tpe
    algorithmSettings: [{name: n_startup_trials, value: "-3"}]
  parameters:
  - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: lr, reference: lr}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
            - {name: main, command: [python, t.py, "--lr=${trialParameters.lr}"]}
"""


def test_validate_json_names_the_katib_setting(cli: Any, tmp_path: Path) -> None:
    f = tmp_path / "k.yaml"
    f.write_text(KATIB_BAD_SETTING)
    r = cli("validate", "--json", str(f), store=False)
    assert r.exit_code == 2
    (entry,) = json.loads(r.stdout)
    assert entry["issues"] == [
        {
            "path": "spec.algorithm.algorithmSettings[name=n_startup_trials]",
            "message": "must be an integer >= 0; got '-3'",
        }
    ]


@pytest.mark.parametrize("case", ["validate", "run", "driver"])
def test_error_text_in_brackets_is_printed(cli: Any, tmp_path: Path, case: str) -> None:
    f = tmp_path / "k.yaml"
    f.write_text(KATIB_BAD_SETTING)
    if case == "validate":
        r = cli("validate", str(f), store=False)
        needle = "algorithmSettings[name=n_startup_trials]"
    elif case == "run":
        r = cli("run", str(f), "--no-progress")
        needle = "algorithmSettings[name=n_startup_trials]"
    else:
        # The mysqlclient driver (MySQLdb) is not installed; the hint names the extra.
        r = cli("list", "--store", "mysql+mysqldb://root@127.0.0.1/x", store=False)
        needle = "pip install 'automl[mysql]'"
    assert r.exit_code == 2
    assert needle in r.stderr


def test_unknown_dialect_exits_2(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "automl", "list", "--store", "foo://x"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert "Traceback" not in p.stderr
    assert p.returncode == 2


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sklearn-digits"


def test_validate_the_example(cli: Any) -> None:
    r = cli("validate", str(EXAMPLE / "experiment.yaml"), store=False)
    assert r.exit_code == 0, r.stderr
    assert "'sklearn-digits'" in r.stdout and "4 parameters" in r.stdout


def test_run_the_example_with_a_small_budget(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text((EXAMPLE / "train.py").read_text())
    doc = yaml.safe_load((EXAMPLE / "experiment.yaml").read_text())
    doc["budget"].update(max_trials=2, parallel=2, max_failed=1)
    f = tmp_path / "experiment.yaml"
    f.write_text(yaml.safe_dump(doc))
    r = cli("run", str(f), "--json", "--runs-dir", str(tmp_path / "runs"))
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["name"] == "sklearn-digits"
    assert data["state"] == "Succeeded"
    assert data["reason"] in ("ExperimentMaxTrialsReached", "ExperimentGoalReached")
    best = data["best_trial"]
    assert 0 < best["value"] <= 1
    assert best["metrics"]["accuracy"]["latest"] == best["value"]  # strategy: latest
    assert best["metrics"]["fit_seconds"]["latest"] > 0
