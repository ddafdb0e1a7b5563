"""The local process executor: argv without a shell, per-trial files, push and file metrics,
failures, timeouts that kill the whole process group, and values that try to run commands."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl import Client
from automl.core import ExperimentState, TrialState
from automl.spec import load_spec
from trials import ExitStatus, LocalProcessExecutor, TrialEvent, TrialRun

pytestmark = pytest.mark.integration


def write_exp(
    tmp_path: Path,
    script: str,
    *,
    name: str = "exp",
    parameters: dict[str, Any] | None = None,
    command: list[str] | None = None,
    metric: str = "loss",
    direction: str = "minimize",
    budget: dict[str, Any] | None = None,
    trial: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    algorithm: Any = "random",
    **extra: Any,
) -> Path:
    (tmp_path / "script.py").write_text(script)
    doc: dict[str, Any] = {
        "name": name,
        "objective": {"metric": metric, "direction": direction},
        "algorithm": algorithm,
        "seed": 0,
        "parameters": parameters or {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": budget or {"max_trials": 1},
        "trial": {"command": command or ["python", "script.py", "--x=${x}"], **(trial or {})},
    }
    if metrics:
        doc["metrics"] = metrics
    doc.update(extra)
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


def run_exp(tmp_path: Path, f: Path) -> Client:
    client = Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")
    client.run(f)
    return client


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def drain(ex: LocalProcessExecutor, trial_id: str, timeout: float = 30.0) -> list[TrialEvent]:
    """Events of one trial up to and including its exit event."""
    events: list[TrialEvent] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for ev in ex.poll(0.2):
            assert ev.trial_id == trial_id
            events.append(ev)
            if ev.exit is not None:
                return events
    raise AssertionError(f"trial {trial_id} did not end; events so far: {events}")


# -- the executor itself ----------------------------------------------------------------------


def test_executor_argv_env_and_trial_dir(tmp_path: Path) -> None:
    script = """
import json, os, sys
print("hello from the trial")
print("epoch=1 loss=0.5")
import automl
automl.report(step=2, loss=0.25)
info = automl.current_trial()
json.dump({"argv": sys.argv, "exe": sys.executable, "cwd": os.getcwd(),
           "dir": os.environ["AUTOML_TRIAL_DIR"], "name": os.environ["KATIB_TRIAL_NAME"],
           "info": [info.id, info.experiment, info.number, dict(info.params), info.workdir],
           "env": os.environ.get("MY_VAR")},
          open(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "seen.json"), "w"))
"""
    f = write_exp(
        tmp_path,
        script,
        name="exec",
        parameters={
            "x": {"type": "double", "min": 0, "max": 1},
            "n": {"type": "int", "min": 1, "max": 5},
        },
        command=["python", "script.py", "--x", "${x}", "--n=${n}", "${trialSpec.Name}"],
        trial={"env": {"MY_VAR": "n is ${n}"}},
    )
    spec = load_spec(f)
    ex = LocalProcessExecutor(spec, tmp_path / "runs")
    try:
        ex.submit(TrialRun("exec-abc", "exec", 7, {"x": 0.125, "n": 3}))
        events = drain(ex, "exec-abc")
    finally:
        ex.close()
    started = [e.started for e in events if e.started]
    assert len(started) == 1 and isinstance(started[0]["pid"], int)
    exit_ev = events[-1]
    assert exit_ev.exit is not None and exit_ev.exit.status is ExitStatus.COMPLETED
    metric_events = [(dict(e.metrics), e.step) for e in events if e.metrics]
    assert ({"loss": 0.5}, 1) in metric_events  # from stdout
    assert ({"loss": 0.25}, 2) in metric_events  # from automl.report via AUTOML_REPORT_FILE

    workdir = tmp_path / "runs" / "exec" / "exec-abc"
    assert started[0]["workdir"] == str(workdir)
    seen = json.loads((workdir / "seen.json").read_text())
    assert seen["argv"] == ["script.py", "--x", "0.125", "--n=3", "exec-abc"]
    assert seen["exe"] == sys.executable  # `python` is the controller's interpreter
    assert seen["cwd"] == str(tmp_path)  # the spec's workdir (the YAML's directory)
    assert seen["dir"] == str(workdir)
    assert seen["name"] == "exec-abc"
    assert seen["info"] == ["exec-abc", "exec", 7, {"x": 0.125, "n": 3}, str(workdir)]
    assert seen["env"] == "n is 3"

    log = (workdir / "trial.log").read_text()
    assert "hello from the trial" in log and "epoch=1 loss=0.5" in log
    assert "[automl] exit code 0" in log
    reports = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["metrics"]) for r in reports] == [(2, {"loss": 0.25})]


def test_executor_cannot_start_command(tmp_path: Path) -> None:
    f = write_exp(tmp_path, "", command=["/nonexistent/bin/trainer", "${x}"])
    ex = LocalProcessExecutor(load_spec(f), tmp_path / "runs")
    try:
        ex.submit(TrialRun("t-1", "exp", 0, {"x": 0.5}))
        events = drain(ex, "t-1")
    finally:
        ex.close()
    assert events[-1].exit is not None
    assert events[-1].exit.status is ExitStatus.FAILED
    assert "/nonexistent/bin/trainer" in events[-1].exit.message


def test_executor_cancel_kills_process_group_even_if_sigterm_ignored(tmp_path: Path) -> None:
    script = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
open(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "pids"), "w").write(f"{os.getpid()} {child.pid}")
time.sleep(120)
"""
    f = write_exp(tmp_path, script)
    ex = LocalProcessExecutor(load_spec(f), tmp_path / "runs")
    pid_file = tmp_path / "runs" / "exp" / "t-1" / "pids"
    try:
        ex.submit(TrialRun("t-1", "exp", 0, {"x": 0.5}))
        end = time.monotonic() + 20
        while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < end:
            time.sleep(0.05)
        pids = [int(p) for p in pid_file.read_text().split()]
        assert all(alive(p) for p in pids)
        t0 = time.monotonic()
        ex.cancel("t-1")
        events = drain(ex, "t-1")
        assert events[-1].exit is not None
        assert events[-1].exit.status is ExitStatus.CANCELLED
        assert time.monotonic() - t0 < 10  # SIGTERM ignored: SIGKILL after the grace period
        assert wait_gone(pids) == []
    finally:
        ex.close()


# -- through the controller -------------------------------------------------------------------


def test_stdout_metrics_with_steps(tmp_path: Path) -> None:
    script = """
for epoch, loss in enumerate([0.9, 0.4, 0.6], start=1):
    print(f"epoch={epoch} loss={loss}", flush=True)
"""
    f = write_exp(tmp_path, script, name="stdout")
    client = run_exp(tmp_path, f)
    (t,) = client.trials("stdout")
    assert t.state is TrialState.SUCCEEDED, t.message
    assert t.value == 0.4  # minimize -> min strategy
    assert t.workdir is not None and Path(t.workdir, "trial.log").exists()
    obs = sorted((o.step, o.value) for o in client.observations("stdout"))
    assert obs == [(1, 0.9), (2, 0.4), (3, 0.6)]


def test_push_collector_reports_from_subprocess(tmp_path: Path) -> None:
    script = """
import automl
print("accuracy=0.0001")  # ignored: the Push collector does not parse stdout
for step in range(3):
    automl.report(step=step, accuracy=0.5 + step / 10)
automl.report(accuracy=0.65)
"""
    f = write_exp(
        tmp_path,
        script,
        name="push",
        metric="accuracy",
        direction="maximize",
        metrics={"collector": "push"},
        objective={
            "metric": "accuracy",
            "direction": "maximize",
            "strategies": {"accuracy": "latest"},
        },
    )
    client = run_exp(tmp_path, f)
    (t,) = client.trials("push")
    assert t.state is TrialState.SUCCEEDED, t.message
    assert t.value == pytest.approx(0.65)
    assert t.metrics["accuracy"].max == pytest.approx(0.7)
    assert t.metrics["accuracy"].min == pytest.approx(0.5)  # 0.0001 from stdout was not taken
    obs = [(o.step, round(o.value, 6)) for o in client.observations("push")]
    assert sorted(obs, key=str) == sorted([(0, 0.5), (1, 0.6), (2, 0.7), (None, 0.65)], key=str)


def test_file_collector_json(tmp_path: Path) -> None:
    script = """
import json, os
with open(os.environ["AUTOML_TRIAL_NAME"] + ".jsonl", "w") as fh:
    fh.write(json.dumps({"epoch": 1, "loss": 0.8, "acc": "0.5"}) + "\\n")
    fh.write("not json\\n")
    fh.write(json.dumps({"epoch": 2, "loss": 0.3, "acc": 0.9}) + "\\n")
print("loss=0.0001")  # stdout is not parsed with the File collector
"""
    f = write_exp(
        tmp_path,
        script,
        name="filecol",
        metrics={"collector": "file", "path": "${trialSpec.Name}.jsonl", "format": "json"},
        objective={"metric": "loss", "direction": "minimize", "additional_metrics": ["acc"]},
    )
    client = run_exp(tmp_path, f)
    (t,) = client.trials("filecol")
    assert t.state is TrialState.SUCCEEDED, t.message
    assert t.value == pytest.approx(0.3)
    assert t.metrics["acc"].latest == pytest.approx(0.9)
    obs = sorted((o.metric, o.step, o.value) for o in client.observations("filecol"))
    assert obs == [("acc", 1, 0.5), ("acc", 2, 0.9), ("loss", 1, 0.8), ("loss", 2, 0.3)]


def test_custom_stdout_filter(tmp_path: Path) -> None:
    script = 'print("loss=0.0001")\nprint("LOSS: 0.42")\n'
    f = write_exp(
        tmp_path,
        script,
        name="filt",
        metrics={"filters": [r"(loss)\s*:\s*([\d.]+)", r"(LOSS)\s*:\s*([\d.]+)"]},
    )
    # The metric is named LOSS in the output; ask for it under that name.
    doc = yaml.safe_load(f.read_text())
    doc["objective"]["metric"] = "LOSS"
    f.write_text(yaml.safe_dump(doc))
    client = run_exp(tmp_path, f)
    (t,) = client.trials("filt")
    assert t.state is TrialState.SUCCEEDED, t.message
    assert t.value == pytest.approx(0.42)


def test_metrics_unavailable_names_the_metric(tmp_path: Path) -> None:
    f = write_exp(
        tmp_path, 'print("training done, accuracy=0.9")\n', name="nometric", metric="val_loss"
    )
    client = run_exp(tmp_path, f)
    (t,) = client.trials("nometric")
    assert t.state is TrialState.METRICS_UNAVAILABLE
    assert "'val_loss'" in t.message and "never reported" in t.message
    assert t.value is None


def test_failing_script_message_has_exit_code_and_output_tail(tmp_path: Path) -> None:
    script = """
import sys
for i in range(40):
    print(f"line {i}")
print("loss=0.5")
print("RuntimeError: marker-7f3 the data loader broke", file=sys.stderr)
sys.exit(3)
"""
    f = write_exp(tmp_path, script, name="failing")
    client = run_exp(tmp_path, f)
    (t,) = client.trials("failing")
    assert t.state is TrialState.FAILED
    assert "exit code 3" in t.message
    assert "marker-7f3 the data loader broke" in t.message  # stderr is in the tail
    assert "line 39" in t.message
    assert "line 0\n" not in t.message  # only the tail
    assert client.best_trial("failing") is None  # a failed trial is never the best


def test_killed_by_signal_is_reported(tmp_path: Path) -> None:
    f = write_exp(
        tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", name="sig"
    )
    client = run_exp(tmp_path, f)
    (t,) = client.trials("sig")
    assert t.state is TrialState.FAILED
    assert "killed by signal 9" in t.message


def test_trial_timeout_kills_the_process_group(tmp_path: Path) -> None:
    script = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "pids"), "w") as fh:
    fh.write(f"{os.getpid()} {child.pid}")
print("loss=0.5", flush=True)
time.sleep(120)
"""
    f = write_exp(tmp_path, script, name="tmo", trial={"timeout": 2})
    t0 = time.monotonic()
    client = run_exp(tmp_path, f)
    assert time.monotonic() - t0 < 20
    (t,) = client.trials("tmo")
    assert t.state is TrialState.FAILED
    assert "timeout" in t.message
    pids = [int(p) for p in Path(t.workdir or "", "pids").read_text().split()]
    assert len(pids) == 2
    assert wait_gone(pids) == [], "trial process or its child survived the timeout"
    exp = client.get("tmo")
    assert exp.state is ExperimentState.SUCCEEDED


# -- values that look like shell ----------------------------------------------------------------

ARGV_SCRIPT = """
import json, os, sys
out = os.path.join(os.environ["OUT_DIR"], os.environ["AUTOML_TRIAL_NAME"] + ".json")
with open(out, "w") as fh:
    json.dump(sys.argv[1:], fh)
print("loss=1")
"""


def _evil(tmp_path: Path) -> list[str]:
    return [
        f"; touch {tmp_path}/pwned",
        f"$(touch {tmp_path}/pwned2)",
        f"`touch {tmp_path}/pwned3`",
        f"x' && touch {tmp_path}/pwned4 && echo '",
        f'" ; touch {tmp_path}/pwned5 #',
        "a b\tc\nd",
    ]


def _argv_of(out: Path, client: Client, name: str) -> dict[str, list[str]]:
    seen = {}
    for t in client.trials(name):
        assert t.state is TrialState.SUCCEEDED, t.message
        seen[str(t.params["v"])] = json.loads((out / f"{t.id}.json").read_text())
    return seen


def test_native_values_reach_the_script_as_one_argv_element(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    values = _evil(tmp_path)
    f = write_exp(
        tmp_path,
        ARGV_SCRIPT,
        name="inject",
        algorithm="grid",
        parameters={"v": values},
        command=["python", "script.py", "--v", "${v}", "--w=${v}"],
        budget={"max_trials": len(values), "parallel": 2},
        trial={"env": {"OUT_DIR": str(out)}},
    )
    client = run_exp(tmp_path, f)
    seen = _argv_of(out, client, "inject")
    assert set(seen) == set(values)
    for v, argv in seen.items():
        assert argv == ["--v", v, f"--w={v}"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("pwned")) == []


def test_katib_sh_c_template_quotes_values(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "script.py").write_text(ARGV_SCRIPT)
    values = _evil(tmp_path)
    doc = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "katib-inject", "namespace": "kubeflow"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "grid"},
            "parallelTrialCount": 2,
            "maxTrialCount": len(values),
            "parameters": [
                {"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": values}}
            ],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": "x", "description": "x", "reference": "x"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "training-container",
                                        "image": "python:3.11",
                                        "command": [
                                            "sh",
                                            "-c",
                                            f"{sys.executable} script.py "
                                            "--x=${trialParameters.x} ${trialParameters.x}",
                                        ],
                                        "env": [{"name": "OUT_DIR", "value": str(out)}],
                                    }
                                ],
                                "restartPolicy": "Never",
                            }
                        }
                    },
                },
            },
        },
    }
    f = tmp_path / "katib.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    client = run_exp(tmp_path, f)
    trials = client.trials("katib-inject")
    assert len(trials) == len(values)
    seen = {}
    for t in trials:
        assert t.state is TrialState.SUCCEEDED, t.message
        seen[t.params["x"]] = json.loads((out / f"{t.id}.json").read_text())
    assert set(seen) == set(values)
    for v, argv in seen.items():
        assert argv == [f"--x={v}", v]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("pwned")) == []
    assert not Path(os.getcwd(), "pwned").exists()


def test_should_stop_sees_the_decision_before_the_signal(tmp_path: Path) -> None:
    """A stopped subprocess trial's ``automl.should_stop()`` is already true when SIGTERM comes."""
    script = """
import os, signal, sys, time
import automl
out = os.path.join(os.environ["AUTOML_TRIAL_DIR"], "seen")
def on_term(*_):
    open(out, "w").write(str(automl.should_stop()))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
assert not automl.should_stop()
open(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "ready"), "w").close()
time.sleep(120)
"""
    f = write_exp(tmp_path, script)
    ex = LocalProcessExecutor(load_spec(f), tmp_path / "runs")
    workdir = tmp_path / "runs" / "exp" / "t-1"
    try:
        ex.submit(TrialRun("t-1", "exp", 0, {"x": 0.5}))
        end = time.monotonic() + 60
        while not (workdir / "ready").exists() and time.monotonic() < end:
            time.sleep(0.02)
        ex.cancel("t-1")
        events = drain(ex, "t-1")
        assert events[-1].exit is not None
        assert events[-1].exit.status is ExitStatus.CANCELLED
        assert (workdir / "seen").read_text() == "True"
    finally:
        ex.close()
