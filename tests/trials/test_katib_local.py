"""Katib's example Experiments run locally: the real files with the shipped digits trainer via the
path map, the path rewriting rules, and the TensorFlowEvent, PrometheusMetric and Custom
collectors end to end."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl import Client
from automl.core import (
    CollectorKind,
    ExperimentSpec,
    MetricsCollectorSpec,
    TrialState,
)
from automl.spec import load_spec
from trials import LocalProcessExecutor
from trials._collectors import PathMap, parse_prometheus
from trials._local import local_notice

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KATIB = REPO / "tests" / "data" / "katib-examples"
TRAINER_DIR = REPO / "examples" / "katib" / "pytorch-mnist"


def client_for(tmp_path: Path) -> Client:
    return Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")


def with_template(spec: ExperimentSpec, **update: Any) -> ExperimentSpec:
    template = spec.trial_template.model_copy(update=update)
    return spec.model_copy(update={"trial_template": template})


def katib_spec(name: str, path_map: dict[str, str], trials: int = 2) -> ExperimentSpec:
    spec = load_spec(KATIB / name)
    spec = spec.model_copy(
        update={"max_trial_count": trials, "parallel_trial_count": 2, "seed": 0}
    )
    return with_template(spec, path_map=path_map)


def native_spec(
    tmp_path: Path,
    script: str,
    *,
    name: str,
    command: list[str],
    metric: str = "loss",
    additional: list[str] | None = None,
    direction: str = "minimize",
    collector: MetricsCollectorSpec | None = None,
    env: dict[str, str] | None = None,
    path_map: dict[str, str] | None = None,
) -> ExperimentSpec:
    (tmp_path / "script.py").write_text(script)
    doc: dict[str, Any] = {
        "name": name,
        "objective": {
            "metric": metric,
            "direction": direction,
            "additional_metrics": additional or [],
        },
        "algorithm": "random",
        "seed": 0,
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 1},
        "trial": {"command": command, "env": env or {}},
    }
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    spec = load_spec(f)
    if collector is not None:
        spec = spec.model_copy(update={"metrics_collector": collector})
    return with_template(spec, path_map=path_map or {})


def trial_log(tmp_path: Path, spec: ExperimentSpec, trial_id: str) -> str:
    return (tmp_path / "runs" / spec.name / trial_id / "trial.log").read_text()


# -- Katib's example files with the digits trainer ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "metrics"),
    [
        ("hp-tuning/random.yaml", {"loss"}),  # StdOut: the training loss lines
        ("metrics-collector/metrics-collection-strategy.yaml", {"loss"}),
        ("resume-experiment/long-running-resume.yaml", {"loss"}),
        ("metrics-collector/file-metrics-collector.yaml", {"loss", "accuracy"}),
        ("metrics-collector/file-metrics-collector-with-json-format.yaml", {"loss", "accuracy"}),
    ],
)
def test_katib_example_runs_with_the_shipped_trainer(
    tmp_path: Path, name: str, metrics: set[str]
) -> None:
    path_map = {"/opt/pytorch-mnist": str(TRAINER_DIR)}
    mapped_katib = "file-metrics-collector.yaml" in name
    if mapped_katib:  # the writable /katib mapped (and created); JSON: left to the trial dir
        path_map["/katib"] = str(tmp_path / "katib-out")
    spec = katib_spec(name, path_map)
    client = client_for(tmp_path)
    result = client.run(spec)
    trials = client.trials(spec.name)
    assert len(trials) == 2, result
    for t in trials:
        assert t.state is TrialState.SUCCEEDED, (t.message, trial_log(tmp_path, spec, t.id))
        assert metrics <= set(t.metrics), t.metrics
        assert t.value is not None
        assert t.value == t.metrics[spec.objective.metric].pick(
            spec.objective.strategy(spec.objective.metric).value
        )
        log = trial_log(tmp_path, spec, t.id)
        assert log.startswith("[automl] image ghcr.io/kubeflow/katib/pytorch-mnist-cpu:latest")
        assert f"{TRAINER_DIR}/mnist.py" in log
    if spec.metrics_collector.kind is CollectorKind.FILE:
        for t in trials:  # each trial wrote its own file: parallel trials never share one
            if mapped_katib:
                own = tmp_path / "katib-out" / t.id / "mnist.log"
            else:
                own = tmp_path / "runs" / spec.name / t.id / "katib" / "mnist.json"
            assert own.is_file(), own
    if "json-format" in name:  # cloudml-hypertune lines: string values, string global_step
        obs = client.observations(spec.name)
        assert {o.metric for o in obs} == {"loss", "accuracy"}
        assert {o.step for o in obs} == {1}


def test_executor_notice_says_the_image_is_not_pulled(tmp_path: Path) -> None:
    plain = load_spec(KATIB / "hp-tuning" / "random.yaml")
    unmapped = local_notice(plain)
    assert unmapped is not None
    assert "ghcr.io/kubeflow/katib/pytorch-mnist-cpu:latest is not pulled" in unmapped
    assert "not found here: /opt/pytorch-mnist/mnist.py" in unmapped

    target = tmp_path / "made" / "katib"
    spec = with_template(
        load_spec(KATIB / "metrics-collector" / "file-metrics-collector.yaml"),
        path_map={"/opt/pytorch-mnist": str(TRAINER_DIR), "/katib": str(target)},
    )
    ex = LocalProcessExecutor(spec, tmp_path / "runs")
    try:
        assert ex.notice is not None
        assert "runs here as a local process" in ex.notice
        assert f"/opt/pytorch-mnist -> {TRAINER_DIR}" in ex.notice
        assert "not found here" not in ex.notice
        assert f"File collector path /katib is per trial: {target}/<trial>" in ex.notice
        assert target.is_dir()  # a mapped target that did not exist is created
    finally:
        ex.close()


# -- path rewriting ----------------------------------------------------------------------------


def test_path_map_rewrites_prefixes_at_path_boundaries() -> None:
    pm = PathMap({"/opt/app": "/local/app", "/opt/app/data": "/big/data", "/katib/": "/tmp/k"})
    assert pm("/opt/app") == "/local/app"
    assert pm("/opt/app/mnist.py") == "/local/app/mnist.py"
    assert pm("--script=/opt/app/mnist.py") == "--script=/local/app/mnist.py"
    assert pm("--log-path=/katib/mnist.log") == "--log-path=/tmp/k/mnist.log"
    # longest prefix first
    assert pm("/opt/app/data/train.csv") == "/big/data/train.csv"
    assert pm("--data=/opt/app/data") == "--data=/big/data"
    # not a prefix at a path boundary: left alone
    assert pm("/opt/application/x") == "/opt/application/x"
    assert pm("/opt/app.py") == "/opt/app.py"
    assert pm("/x/opt/app/y") == "/x/opt/app/y"
    assert pm("relative/opt/app") == "relative/opt/app"
    assert pm("/katibx/y") == "/katibx/y"
    # lists, shell words and quotes
    assert pm("/opt/app/lib:/katib/lib") == "/local/app/lib:/tmp/k/lib"
    assert (
        pm("python3 '/opt/app/m.py' --out=/katib/o.log && cat /katib/o.log")
        == "python3 '/local/app/m.py' --out=/tmp/k/o.log && cat /tmp/k/o.log"
    )
    assert pm.covering("/opt/app/data/x") == ("/opt/app/data", "/big/data")
    assert pm.covering("/opt/apps") is None
    root = PathMap({"/": "/sandbox", "/opt/app": "/local/app"})
    assert root("/etc/x") == "/sandbox/etc/x"
    assert root("/opt/app/m.py") == "/local/app/m.py"
    assert PathMap({"/data": "rel/dir"}, base=Path("/base"))("/data/x") == "/base/rel/dir/x"
    with pytest.raises(ValueError, match="absolute"):
        PathMap({"data": "/x"})


def test_path_map_applies_to_argv_env_and_workdir(tmp_path: Path) -> None:
    script = """
import json, os, sys
json.dump({"argv": sys.argv, "cwd": os.getcwd(), "env": os.environ["TRAINER_PATHS"]},
          open(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "seen.json"), "w"))
print("loss=0.5")
"""
    app = tmp_path / "app"
    app.mkdir()
    spec = native_spec(
        tmp_path,
        script,
        name="mapped",
        command=["python", "/img/app/script.py", "--out=/img/out/${trialSpec.Name}", "/img/x"],
        env={"TRAINER_PATHS": "/img/app:/img/lib"},
        path_map={"/img": str(tmp_path / "img-root"), "/img/app": str(app)},
    )
    (app / "script.py").write_text(script)
    spec = with_template(spec, workdir="/img/app")
    client = client_for(tmp_path)
    client.run(spec)
    (t,) = client.trials("mapped")
    assert t.state is TrialState.SUCCEEDED, t.message
    seen = json.loads((tmp_path / "runs" / "mapped" / t.id / "seen.json").read_text())
    root = tmp_path / "img-root"
    assert seen["argv"] == [str(app / "script.py"), f"--out={root}/out/{t.id}", f"{root}/x"]
    assert seen["env"] == f"{app}:{root}/lib"
    assert seen["cwd"] == str(app)
    assert root.is_dir()  # created: it did not exist


# -- TensorFlowEvent ---------------------------------------------------------------------------

TFEVENT_SCRIPT = """
import sys
import time
from torch.utils.tensorboard import SummaryWriter
logdir = sys.argv[1].split("=", 1)[1]
w = SummaryWriter(logdir)
for step, loss in [(1, 0.5), (2, 0.3), (3, 0.4)]:
    w.add_scalar("loss", loss, step)
w.add_scalar("eval/f1", 0.7, 3)
w.close()
for sub, acc in [("test", 0.8), ("train", 0.6)]:  # Katib's layout: one directory per split
    w = SummaryWriter(f"{logdir}/{sub}")
    w.add_scalar("accuracy", acc, 3)
    w.close()
"""


def test_tensorflow_event_collector_reads_scalar_summaries(tmp_path: Path) -> None:
    spec = native_spec(
        tmp_path,
        TFEVENT_SCRIPT,
        name="tfevent",
        command=["python", "script.py", "--logdir=/var/log/katib/tfevent"],
        additional=["test/accuracy", "f1"],
        collector=MetricsCollectorSpec(
            kind=CollectorKind.TENSORFLOW_EVENT,
            path="/var/log/katib/tfevent",
            path_kind="Directory",
        ),
        path_map={"/var/log/katib": str(tmp_path / "tb")},
    )
    client = client_for(tmp_path)
    client.run(spec)
    (t,) = client.trials("tfevent")
    assert t.state is TrialState.SUCCEEDED, (t.message, trial_log(tmp_path, spec, t.id))
    assert t.value == pytest.approx(0.3)  # min of the loss summaries
    assert t.metrics["test/accuracy"].latest == pytest.approx(0.8)  # not train/accuracy
    assert t.metrics["f1"].latest == pytest.approx(0.7)  # the tag eval/f1's last component
    loss_steps = sorted(
        (o.step, round(o.value, 4)) for o in client.observations("tfevent") if o.metric == "loss"
    )
    assert loss_steps == [(1, 0.5), (2, 0.3), (3, 0.4)]
    assert list((tmp_path / "tb" / "tfevent" / t.id).glob("*tfevents*"))  # per-trial dir


def test_tensorflow_event_collector_finding_nothing_is_metrics_unavailable(
    tmp_path: Path,
) -> None:
    spec = native_spec(
        tmp_path,
        "print('loss=0.1')  # stdout is not the collector\n",
        name="tfnone",
        command=["python", "script.py"],
        collector=MetricsCollectorSpec(
            kind=CollectorKind.TENSORFLOW_EVENT, path="/logs/tb", path_kind="Directory"
        ),
        path_map={"/logs": str(tmp_path / "logs")},
    )
    client = client_for(tmp_path)
    client.run(spec)
    (t,) = client.trials("tfnone")
    assert t.state is TrialState.METRICS_UNAVAILABLE
    assert "no scalar summary of loss" in trial_log(tmp_path, spec, t.id)


def test_file_collector_finding_nothing_is_metrics_unavailable(tmp_path: Path) -> None:
    spec = native_spec(
        tmp_path,
        "print('loss=0.1')\n",
        name="filenone",
        command=["python", "script.py"],
        collector=MetricsCollectorSpec(kind=CollectorKind.FILE, path="/katib/mnist.log"),
        path_map={"/katib": str(tmp_path / "katib")},
    )
    client = client_for(tmp_path)
    client.run(spec)
    (t,) = client.trials("filenone")
    assert t.state is TrialState.METRICS_UNAVAILABLE
    assert "the objective metric 'loss' was never reported" in t.message
    assert f"cannot read {tmp_path}/katib/{t.id}/mnist.log" in trial_log(tmp_path, spec, t.id)


# -- PrometheusMetric --------------------------------------------------------------------------

PROMETHEUS_SCRIPT = """
import http.server, os, threading, time
state = {"epoch": 0, "accuracy": 0.0}

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/custom-metrics":
            self.send_error(404)
            return
        body = (
            "# HELP accuracy Validation accuracy.\\n# TYPE accuracy gauge\\n"
            'accuracy{split="train"} 0.99\\n'
            f"accuracy {state['accuracy']}\\n"
            "# TYPE epoch gauge\\n"
            f"epoch {state['epoch']}\\n"
            "# TYPE samples_total counter\\n"
            f"samples_total {state['epoch'] * 100}\\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["METRICS_PORT"])), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
for epoch, acc in [(1, 0.5), (2, 0.75), (3, 0.9)]:
    state.update(epoch=epoch, accuracy=acc)
    time.sleep(0.5)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_prometheus_collector_scrapes_loopback_while_the_trial_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trials._local_collect.SCRAPE_INTERVAL", 0.1)
    port = free_port()
    spec = native_spec(
        tmp_path,
        PROMETHEUS_SCRIPT,
        name="prom",
        command=["python", "script.py"],
        metric="accuracy",
        additional=["samples"],
        direction="maximize",
        env={"METRICS_PORT": str(port)},
        collector=MetricsCollectorSpec(
            kind=CollectorKind.PROMETHEUS, http_get={"path": "custom-metrics", "port": port}
        ),
    )
    client = client_for(tmp_path)
    client.run(spec)
    (t,) = client.trials("prom")
    assert t.state is TrialState.SUCCEEDED, (t.message, trial_log(tmp_path, spec, t.id))
    assert t.value == pytest.approx(0.9)  # the unlabelled sample, not split="train"
    acc = [(o.step, o.value) for o in client.observations("prom") if o.metric == "accuracy"]
    assert acc[-1] == (3, pytest.approx(0.9))
    assert len(acc) == len({v for _, v in acc}) >= 2  # seen while running; no repeats
    assert t.metrics["samples"].max == pytest.approx(300)  # a counter: samples_total


def test_prometheus_text_parsing() -> None:
    text = 'loss{split="val"} 0.4\nloss 0.3\nglobal_step 12\nother 1\n'
    parsed = parse_prometheus(text, ["loss", "accuracy"])
    assert parsed is not None
    assert dict(parsed.values) == {"loss": 0.3}
    assert parsed.step == 12
    assert parse_prometheus("other 1\n", ["loss"]) is None


def test_prometheus_collector_with_nothing_listening_is_metrics_unavailable(
    tmp_path: Path,
) -> None:
    port = free_port()
    spec = native_spec(
        tmp_path,
        "print('accuracy=0.5')\n",
        name="promnone",
        command=["python", "script.py"],
        collector=MetricsCollectorSpec(kind=CollectorKind.PROMETHEUS, http_get={"port": port}),
    )
    client = client_for(tmp_path)
    client.run(spec)
    (t,) = client.trials("promnone")
    assert t.state is TrialState.METRICS_UNAVAILABLE
    log = trial_log(tmp_path, spec, t.id)
    assert f"no scrape of http://127.0.0.1:{port}/metrics succeeded" in log


# -- Custom ------------------------------------------------------------------------------------

COLLECTOR_SCRIPT = """
import os, sys
text = open(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "result.txt")).read().split()
assert sys.argv[1] == "--names=" + os.environ["AUTOML_METRIC_NAMES"], sys.argv
here = os.path.dirname(os.path.abspath(__file__))
assert os.environ["FROM_SPEC"] == f"{here}/{os.environ['AUTOML_TRIAL_NAME']}"
print("collector output")
print("{metricName: accuracy, metricValue: " + text[0] + "}")
print("{metricName: loss, metricValue: " + text[1] + "}")
"""

CUSTOM_TRIAL = """
import os
open(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "result.txt"), "w").write("0.875 0.25")
open(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "ran"), "w").write("yes")
"""
KATIB_FILTER = r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"


def custom_spec(tmp_path: Path, name: str, container: dict[str, Any]) -> ExperimentSpec:
    (tmp_path / "collector").mkdir(exist_ok=True)
    (tmp_path / "collector" / "collect.py").write_text(COLLECTOR_SCRIPT)
    return native_spec(
        tmp_path,
        CUSTOM_TRIAL,
        name=name,
        command=["python", "script.py"],
        metric="accuracy",
        additional=["loss"],
        direction="maximize",
        collector=MetricsCollectorSpec(
            kind=CollectorKind.CUSTOM, filters=(KATIB_FILTER,), custom_collector=container
        ),
        path_map={"/collector": str(tmp_path / "collector")},
    )


def test_custom_collector_runs_after_the_trial_and_its_stdout_is_parsed(tmp_path: Path) -> None:
    container = {
        "name": "custom-metrics-logger-and-collector",
        "image": "example.com/collector:1",
        "command": ["python", "/collector/collect.py"],
        "args": ["--names=accuracy,loss"],
        "env": [{"name": "FROM_SPEC", "value": "/collector/${trialSpec.Name}"}],  # mapped
    }
    spec = custom_spec(tmp_path, "custom", container)
    client = client_for(tmp_path)
    client.run(spec)
    (t,) = client.trials("custom")
    log = trial_log(tmp_path, spec, t.id)
    assert t.state is TrialState.SUCCEEDED, (t.message, log)
    assert t.value == pytest.approx(0.875)
    assert t.metrics["loss"].latest == pytest.approx(0.25)
    assert f"custom metrics collector: $ {sys.executable} {tmp_path}/collector/collect.py" in log
    assert "collector output" in log


def test_custom_collector_without_command_fails_the_trial(tmp_path: Path) -> None:
    spec = custom_spec(
        tmp_path, "nocmd", {"name": "collector", "image": "example.com/collector:1"}
    )
    client = client_for(tmp_path)
    client.run(spec)
    (t,) = client.trials("nocmd")
    assert t.state is TrialState.FAILED
    assert "Custom metrics collector container has no command" in t.message
    assert not (tmp_path / "runs" / "nocmd" / t.id / "ran").exists()  # the trial never ran


def test_custom_collector_failing_fails_the_trial(tmp_path: Path) -> None:
    container = {
        "name": "collector",
        "command": [
            "python",
            "-c",
            "import sys; print('broken collector', file=sys.stderr); sys.exit(3)",
        ],
    }
    spec = custom_spec(tmp_path, "badcol", container)
    client = client_for(tmp_path)
    client.run(spec)
    (t,) = client.trials("badcol")
    assert t.state is TrialState.FAILED
    assert "custom metrics collector failed (exit code 3)" in t.message
    assert "broken collector" in t.message


def test_custom_collector_shell_script_takes_values_as_data(tmp_path: Path) -> None:
    """A value in a Custom collector's ``sh -c`` script reaches it as data, never as code."""
    from trials import ExitStatus, LocalProcessExecutor, TrialRun

    hostile = '$(touch pwned1)"; touch pwned2; echo "`touch pwned3`'
    container = {
        "name": "collector",
        "image": "example.com/collector:1",
        "command": [
            "sh",
            "-c",
            'printf %s "${trialParameters.x}" > "$AUTOML_TRIAL_DIR/got"; '
            'echo "{metricName: accuracy, metricValue: 0.5}"',
        ],
    }
    spec = custom_spec(tmp_path, "customsh", container)
    ex = LocalProcessExecutor(spec, tmp_path / "runs", cwd=tmp_path)
    try:
        ex.submit(TrialRun("t-1", "customsh", 0, {"x": hostile}))
        events = []
        end = time.monotonic() + 60
        while not any(e.exit for e in events) and time.monotonic() < end:
            events.extend(ex.poll(0.2))
    finally:
        ex.close()
    exit_ = next(e.exit for e in events if e.exit is not None)
    assert exit_.status is ExitStatus.COMPLETED, exit_.message
    assert {"accuracy": 0.5} in [dict(e.metrics) for e in events]
    assert (tmp_path / "runs" / "customsh" / "t-1" / "got").read_text() == hostile
    assert not [p for p in tmp_path.rglob("pwned*")]
