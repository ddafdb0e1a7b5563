"""The Kubernetes executor end to end with the real ``kubernetes`` client, against
FakeKubernetesApiServer (tests/trials/k8s_double.py), a TEST DOUBLE of the API server that runs
each pod's container argv as a local process: create, labels, log streaming and metrics,
delete (or retain), stop and early stop, failures, and bad kube-configs."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl import Client
from automl.core import ExperimentState, TrialState
from automl.errors import SpecError
from automl.spec import parse_spec
from tests.trials.k8s_double import FakeKubernetesApiServer
from trials import ExitStatus, TrialEvent, TrialRun
from trials._kubernetes import KubernetesExecutor, reap_kubernetes

pytestmark = pytest.mark.integration

SCRIPT = """
import json, os, sys, time, automl
x = float(sys.argv[1])
if len(sys.argv) > 3:  # later trials worse: x grows with the trial's number
    x += json.loads(os.environ["AUTOML_TRIAL"])["number"]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 1
for step in range(1, steps + 1):
    print(f"epoch={step} loss={x * step:.6f}", flush=True)
    automl.report(step=step, acc=0.5)
    if steps > 1:
        time.sleep(0.3)
if x < 0:
    sys.exit(3)
"""


@pytest.fixture
def api() -> Iterator[FakeKubernetesApiServer]:
    with FakeKubernetesApiServer() as server:
        yield server


def spec_doc(kubeconfig: Path, tmp_path: Path, **over: Any) -> dict[str, Any]:
    (tmp_path / "train.py").write_text(SCRIPT)
    doc: dict[str, Any] = {
        "name": "k8s-exp",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "seed": 0,
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 2, "parallel": 2},
        "trial": {"command": ["python", str(tmp_path / "train.py"), "${x}"]},
        "executor": {
            "kind": "kubernetes",
            "kubeconfig": str(kubeconfig),
            "image": "python:3.11-slim",
            "namespace": "team-a",
            "settings": {"poll_interval": 0.1},
        },
    }
    for k, v in over.items():
        doc[k] = {**doc[k], **v} if isinstance(v, dict) and isinstance(doc.get(k), dict) else v
    return doc


def run_exp(tmp_path: Path, doc: dict[str, Any]) -> Client:
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc))
    client = Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")
    client.run(f)
    return client


def test_experiment_runs_on_the_double(api: FakeKubernetesApiServer, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    client = run_exp(tmp_path, spec_doc(kc, tmp_path))
    exp = client.get("k8s-exp") if hasattr(client, "get") else None
    trials = client.trials("k8s-exp")
    assert len(trials) == 2
    for t in trials:
        assert t.state is TrialState.SUCCEEDED
        assert t.value == pytest.approx(t.params["x"])  # loss=x, read from the pod log
        assert t.metrics["acc"].latest == 0.5  # automl.report printed by the pod
    assert exp is None or exp.state is ExperimentState.SUCCEEDED
    # Created in the namespace with the labels, deleted after the trial ended.
    assert len(api.created) == 2
    for obj in api.created:
        assert obj["kind"] == "Job" and obj["metadata"]["namespace"] == "team-a"
        labels = obj["metadata"]["labels"]
        assert labels["katib.kubeflow.org/experiment"] == "k8s-exp"
        assert labels["katib.kubeflow.org/trial"] in {t.id for t in trials}
        assert labels["automl.dev/trial"] == labels["katib.kubeflow.org/trial"]
    assert sorted(n for _, n, _ in api.deleted) == sorted(t.id for t in trials)
    assert {p for _, _, p in api.deleted} == {"Background"}
    assert api.live("jobs") == []
    log = (tmp_path / "runs" / "k8s-exp" / trials[0].id / "trial.log").read_text()
    assert "loss=" in log and "deleted Job team-a/" in log
    assert (tmp_path / "runs" / "k8s-exp" / trials[0].id / "manifest.yaml").exists()


def test_retain_keeps_the_job_and_failed_container_fails_the_trial(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(
        kc,
        tmp_path,
        parameters={"x": {"type": "double", "min": -1, "max": -0.5}},
        budget={"max_trials": 1, "parallel": 1},
    )
    spec = parse_spec(yaml.safe_dump(doc), base_dir=tmp_path)
    spec = spec.model_copy(
        update={"trial_template": spec.trial_template.model_copy(update={"retain": True})}
    )
    ex = KubernetesExecutor(spec, tmp_path / "runs")
    try:
        ex.submit(TrialRun("k8s-exp-bcdfghjk", "k8s-exp", 0, {"x": -0.75}))
        events = collect(ex, "k8s-exp-bcdfghjk")
    finally:
        ex.close()
    exit_ = events[-1].exit
    assert exit_ is not None and exit_.status is ExitStatus.FAILED
    assert "exited with code 3" in exit_.message and "loss=-0.75" in exit_.message
    assert any(e.metrics.get("loss") == -0.75 for e in events)
    assert [o["metadata"]["name"] for o in api.live("jobs")] == ["k8s-exp-bcdfghjk"]
    assert api.deleted == []


def collect(ex: KubernetesExecutor, trial: str, limit: float = 30) -> list[TrialEvent]:
    out: list[TrialEvent] = []
    end = time.monotonic() + limit
    while time.monotonic() < end:
        out.extend(e for e in ex.poll(0.2) if e.trial_id == trial)
        if out and out[-1].exit is not None:
            return out
    raise AssertionError(f"no exit event for {trial}: {out}")


def test_cancel_deletes_the_running_job(api: FakeKubernetesApiServer, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(
        kc, tmp_path, trial={"command": ["python", str(tmp_path / "train.py"), "${x}", "100"]}
    )
    spec = parse_spec(yaml.safe_dump(doc), base_dir=tmp_path)
    ex = KubernetesExecutor(spec, tmp_path / "runs")
    try:
        ex.submit(TrialRun("k8s-exp-cdfghjkl", "k8s-exp", 0, {"x": 0.5}))
        seen: list[TrialEvent] = []
        end = time.monotonic() + 30
        while not any(e.metrics for e in seen) and time.monotonic() < end:
            seen.extend(ex.poll(0.2))
        assert any(e.metrics.get("loss") == 0.5 for e in seen)  # streamed while it runs
        assert api.running_processes() == 1
        ex.cancel("k8s-exp-cdfghjkl")
        events = collect(ex, "k8s-exp-cdfghjkl")
    finally:
        ex.close()
    assert events[-1].exit is not None and events[-1].exit.status is ExitStatus.CANCELLED
    assert ("jobs", "k8s-exp-cdfghjkl", "Background") in api.deleted
    assert api.live("jobs") == [] and api.running_processes() == 0


def test_early_stopping_deletes_the_stopped_job(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(
        kc,
        tmp_path,
        budget={"max_trials": 2, "parallel": 1},
        trial={"command": ["python", str(tmp_path / "train.py"), "${x}", "6", "by-number"]},
        early_stopping={
            "name": "medianstop",
            "settings": {"min_trials_required": 1, "start_step": 2},
        },
    )
    client = run_exp(tmp_path, doc)
    trials = sorted(client.trials("k8s-exp"), key=lambda t: t.number)
    assert [t.state for t in trials] == [TrialState.SUCCEEDED, TrialState.EARLY_STOPPED]
    stopped = trials[1].id
    assert any(n == stopped for _, n, _ in api.deleted)
    log = (tmp_path / "runs" / "k8s-exp" / stopped / "trial.log").read_text()
    assert "epoch=6" not in log, trials[1].message  # deleted before it ran to the end
    assert api.live("jobs") == [] and api.running_processes() == 0


def test_experiment_stop_deletes_running_jobs(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(
        kc,
        tmp_path,
        budget={"max_trials": 2, "parallel": 2, "timeout": 2},
        trial={"command": ["python", str(tmp_path / "train.py"), "${x}", "100"]},
    )
    client = run_exp(tmp_path, doc)
    trials = client.trials("k8s-exp")
    assert {t.state for t in trials} <= {TrialState.KILLED, TrialState.SUCCEEDED}
    assert TrialState.KILLED in {t.state for t in trials}
    assert sorted(n for _, n, _ in api.deleted) == sorted(t.id for t in trials)
    assert api.live("jobs") == [] and api.running_processes() == 0


def test_pytorchjob_reads_the_master_log(api: FakeKubernetesApiServer, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(kc, tmp_path, budget={"max_trials": 1, "parallel": 1})
    doc["trial"]["resources"] = {"workers": 2}
    client = run_exp(tmp_path, doc)
    (t,) = client.trials("k8s-exp")
    assert t.state is TrialState.SUCCEEDED and t.value == pytest.approx(t.params["x"])
    (obj,) = api.created
    assert obj["kind"] == "PyTorchJob"
    assert api.deleted == [("pytorchjobs", t.id, "Background")]


def test_reap_deletes_a_job_left_by_a_dead_controller(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(
        kc, tmp_path, trial={"command": ["python", str(tmp_path / "train.py"), "${x}", "100"]}
    )
    spec = parse_spec(yaml.safe_dump(doc), base_dir=tmp_path)
    first = KubernetesExecutor(spec, tmp_path / "runs")
    first.submit(TrialRun("k8s-exp-dfghjklm", "k8s-exp", 0, {"x": 0.5}))
    started = None
    end = time.monotonic() + 30
    while started is None and time.monotonic() < end:
        started = next((e.started for e in first.poll(0.2) if e.started), None)
    while api.running_processes() < 1 and time.monotonic() < end:
        time.sleep(0.05)
    first._closed.set()  # the controller "dies": nothing of it deletes the job
    assert started is not None and api.running_processes() == 1
    assert reap_kubernetes(spec, {"pid": 1, "host": "elsewhere"}, tmp_path / "runs") is False
    assert api.live("jobs")  # a runner that is not a Kubernetes job's deletes nothing
    # The runner of a later attempt (another job name): the first attempt's job is found by
    # the trial's label and deleted too.
    later = {**started, "kubernetes": {**started["kubernetes"], "name": "k8s-exp-dfghjklm-a2"}}
    assert reap_kubernetes(spec, later, tmp_path / "runs") is True
    assert api.live("jobs") == [] and api.running_processes() == 0
    assert ("jobs", "k8s-exp-dfghjklm", "Background") in api.deleted


def test_unreachable_or_missing_kubeconfig_is_a_spec_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    spec = parse_spec(yaml.safe_dump(spec_doc(kc, tmp_path)), base_dir=tmp_path)
    with pytest.raises(SpecError) as e:
        KubernetesExecutor(spec, tmp_path / "runs")
    assert e.value.issues[0].path == "executor.kubeconfig"
    assert f"127.0.0.1:{port}" in str(e.value)
    missing = parse_spec(
        yaml.safe_dump(spec_doc(tmp_path / "nope.yaml", tmp_path)), base_dir=tmp_path
    )
    with pytest.raises(SpecError) as e:
        KubernetesExecutor(missing, tmp_path / "runs")
    assert e.value.issues[0].path == "executor.kubeconfig" and "nope.yaml" in str(e.value)


def test_bad_settings_image_and_context_fail_before_any_trial(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    cases = [
        ({"image": None}, "executor.image"),
        ({"context": "elsewhere"}, "executor.context"),
        ({"settings": {"poll_interval": -1}}, "executor.settings.poll_interval"),
        ({"settings": {"watch_timeout": 0}}, "executor.settings.watch_timeout"),
        ({"settings": {"pod_list_after": "soon"}}, "executor.settings.pod_list_after"),
        ({"settings": {"colour": "blue"}}, "executor.settings.colour"),
    ]
    for over, path in cases:
        doc = spec_doc(kc, tmp_path)
        doc["executor"] = {**doc["executor"], **over}
        spec = parse_spec(yaml.safe_dump(doc), base_dir=tmp_path)
        before = len(api.requests)
        with pytest.raises(SpecError) as e:
            KubernetesExecutor(spec, tmp_path / "runs")
        assert e.value.issues[0].path == path, over
        if path != "executor.context":  # found offline, before any request to the server
            assert len(api.requests) == before, over
    doc = spec_doc(kc, tmp_path)
    doc["trial"]["resources"] = {"gpu": 0.25}
    with pytest.raises(SpecError) as e:
        KubernetesExecutor(parse_spec(yaml.safe_dump(doc), base_dir=tmp_path), tmp_path / "runs")
    assert e.value.issues[0].path == "trial.resources.gpu"
    assert api.created == []


@pytest.mark.k8s
def test_real_cluster_runs_two_trials(tmp_path: Path) -> None:
    """Opt in with ``-m k8s`` and a reachable ``KUBECONFIG``."""
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("KUBECONFIG is not set")
    doc = {
        "name": "automl-k8s-smoke",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 2, "parallel": 2},
        "trial": {"command": ["python", "-c", "import sys; print(f'loss={sys.argv[1]}')", "${x}"]},
        "executor": {"kind": "kubernetes", "image": "python:3.11-slim"},
    }
    spec = parse_spec(yaml.safe_dump(doc), base_dir=tmp_path)
    try:
        KubernetesExecutor(spec, tmp_path / "runs").close()
    except SpecError as exc:
        pytest.skip(f"cluster not reachable: {exc}")
    client = run_exp(tmp_path, doc)
    trials = client.trials("automl-k8s-smoke")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2
    assert all(t.value == pytest.approx(t.params["x"]) for t in trials)


def test_dropped_log_stream_resumes_without_repeats(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    api.drop_log_after = 3  # the first stream ends after "epoch=1", its report and "epoch=2"
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(kc, tmp_path, budget={"max_trials": 1, "parallel": 1})
    doc["trial"]["command"] = ["python", str(tmp_path / "train.py"), "${x}", "4"]
    client = run_exp(tmp_path, doc)
    (t,) = client.trials("k8s-exp")
    assert t.state is TrialState.SUCCEEDED
    assert api.log_connections >= 2
    log = (tmp_path / "runs" / "k8s-exp" / t.id / "trial.log").read_text()
    for step in range(1, 5):
        assert log.count(f"epoch={step} ") == 1, log
    assert t.metrics["loss"].max == pytest.approx(t.params["x"] * 4, rel=1e-5)


def test_unpullable_image_fails_the_trial(api: FakeKubernetesApiServer, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(kc, tmp_path, budget={"max_trials": 1, "parallel": 1})
    doc["executor"]["image"] = "registry.example/trainer:missing"
    client = run_exp(tmp_path, doc)
    (t,) = client.trials("k8s-exp")
    assert t.state is TrialState.FAILED
    assert "ImagePullBackOff" in t.message and "trainer:missing" in t.message
    assert api.deleted == [("jobs", t.id, "Background")]


# -- Katib trials --------------------------------------------------------------------------
def katib_doc(
    kubeconfig: Path, trial_spec: dict[str, Any] | None, **template: Any
) -> dict[str, Any]:
    tt: dict[str, Any] = {
        "primaryContainerName": "training-container",
        "trialParameters": [{"name": "learningRate", "reference": "lr"}],
        **template,
    }
    if trial_spec is not None:
        tt["trialSpec"] = trial_spec
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "katib-k8s", "namespace": "kubeflow"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 2,
            "maxTrialCount": 2,
            "parameters": [
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.01", "max": "0.05"},
                }
            ],
            "trialTemplate": tt,
        },
        "x-kubeconfig": str(kubeconfig),
    }


KATIB_JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "training-container",
                        "image": "docker.io/kubeflowkatib/pytorch-mnist-cpu:latest",
                        "command": [
                            "python3",
                            "-c",
                            "import sys; print('loss=' + sys.argv[1])",
                            "${trialParameters.learningRate}",
                        ],
                    }
                ],
                "restartPolicy": "Never",
            }
        }
    },
}


def katib_spec(tmp_path: Path, doc: dict[str, Any]) -> Any:
    kc = doc.pop("x-kubeconfig")
    spec = parse_spec(yaml.safe_dump(doc), base_dir=tmp_path)
    from automl.core import ExecutorKind, ExecutorSpec

    return spec.model_copy(
        update={
            "executor": ExecutorSpec(
                kind=ExecutorKind.KUBERNETES, kubeconfig=kc, settings={"poll_interval": 0.1}
            )
        }
    )


def run_spec(tmp_path: Path, spec: Any) -> Client:
    client = Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")
    client.run(spec)
    return client


def test_katib_job_trial_runs_with_default_conditions(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    spec = katib_spec(tmp_path, katib_doc(kc, KATIB_JOB))
    client = run_spec(tmp_path, spec)
    trials = client.trials("katib-k8s")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2
    assert all(t.value == pytest.approx(t.params["lr"]) for t in trials)
    for obj in api.created:
        # The trialSpec as written, substituted, in the Katib namespace, with the trial's labels.
        assert obj["metadata"]["namespace"] == "kubeflow"
        c = obj["spec"]["template"]["spec"]["containers"][0]
        assert c["image"] == "docker.io/kubeflowkatib/pytorch-mnist-cpu:latest"
        assert float(c["command"][3]) == pytest.approx(
            next(t.params["lr"] for t in trials if t.id == obj["metadata"]["name"])
        )
        pod_labels = obj["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["katib.kubeflow.org/trial"] == obj["metadata"]["name"]
    assert api.live("jobs") == []


def test_a_job_that_ends_before_its_pod_is_watched_keeps_its_metrics(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    """The job's end (the job watch) can reach the controller before its pod's events (the pod
    watch) do; under load this made a finished trial MetricsUnavailable. The reader lists the
    trial's pods once before deciding that the job left no log to read. (Here the pod watch
    sees nothing at all, and the periodic fallback LIST is 10 s away.)"""
    api.pod_watch_blind = True
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    client = run_spec(tmp_path, katib_spec(tmp_path, katib_doc(kc, KATIB_JOB)))
    trials = client.trials("katib-k8s")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2
    assert all(t.value == pytest.approx(t.params["lr"]) for t in trials)


def test_katib_template_from_a_config_map(api: FakeKubernetesApiServer, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    api.config_maps[("kubeflow", "trial-templates")] = {"job.yaml": yaml.safe_dump(KATIB_JOB)}
    doc = katib_doc(
        kc,
        None,
        configMap={
            "configMapName": "trial-templates",
            "configMapNamespace": "kubeflow",
            "templatePath": "job.yaml",
        },
        successCondition='status.conditions.#(type=="Complete")#|#(status=="True")#',
        failureCondition='status.conditions.#(type=="Failed")#|#(status=="True")#',
    )
    client = run_spec(tmp_path, katib_spec(tmp_path, doc))
    assert [t.state for t in client.trials("katib-k8s")] == [TrialState.SUCCEEDED] * 2


def test_condition_outside_the_gjson_subset_is_a_spec_error(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = katib_doc(kc, KATIB_JOB, successCondition='status.conditions.#(type%"Comp*")#')
    with pytest.raises(SpecError) as e:
        KubernetesExecutor(katib_spec(tmp_path, doc), tmp_path / "runs")
    assert e.value.issues[0].path == "trial_template.success_condition"
    assert "%" in str(e.value) and "Comp*" in str(e.value)
    assert api.created == []


def test_trial_timeout_deletes_the_job(api: FakeKubernetesApiServer, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(
        kc,
        tmp_path,
        trial={"command": ["python", str(tmp_path / "train.py"), "${x}", "100"], "timeout": 1},
    )
    spec = parse_spec(yaml.safe_dump(doc), base_dir=tmp_path)
    ex = KubernetesExecutor(spec, tmp_path / "runs")
    try:
        ex.submit(TrialRun("k8s-exp-fghjklmn", "k8s-exp", 0, {"x": 0.5}))
        events = collect(ex, "k8s-exp-fghjklmn")
    finally:
        ex.close()
    exit_ = events[-1].exit
    assert exit_ is not None and exit_.status is ExitStatus.TIMED_OUT
    assert api.created[0]["spec"]["activeDeadlineSeconds"] == 1
    assert ("jobs", "k8s-exp-fghjklmn", "Background") in api.deleted
    assert api.running_processes() == 0


def test_log_timestamps_sort_as_time_does() -> None:
    from trials._kubernetes import _ts_key

    stamps = ["2026-01-01T00:00:07Z", "2026-01-01T00:00:07.1234Z", "2026-01-01T00:00:07.12345Z"]
    assert sorted(stamps, key=_ts_key) == stamps
    assert sorted(reversed(stamps), key=_ts_key) == stamps
    assert _ts_key("2026-01-01T00:00:07.5Z") > _ts_key("2026-01-01T00:00:07.123456789Z")


# -- GJSON ---------------------------------------------------------------------------------
JOB_DONE = {"status": {"conditions": [{"type": "Complete", "status": "True", "reason": "Done"}]}}
JOB_FAILED = {
    "status": {
        "conditions": [
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "late"}
        ]
    }
}
JOB_RUNNING = {"status": {"active": 1}}


@pytest.mark.parametrize(
    ("expression", "doc", "holds"),
    [
        ('status.conditions.#(type=="Complete")#|#(status=="True")#', JOB_DONE, True),
        ('status.conditions.#(type=="Complete")#|#(status=="True")#', JOB_FAILED, False),
        ('status.conditions.#(type=="Complete")#|#(status=="True")#', JOB_RUNNING, False),
        ('status.conditions.#(type=="Failed")#|#(status=="True")#', JOB_FAILED, True),
        ('status.conditions.#(type=="Failed")#|#(status=="False")#', JOB_FAILED, False),
        ('status.[@this].#(phase=="Succeeded")#', {"status": {"phase": "Succeeded"}}, True),
        ('status.[@this].#(phase=="Succeeded")#', {"status": {"phase": "Running"}}, False),
        ('status.conditions.#(type=="Complete")', JOB_DONE, True),
        ("status.conditions.0", JOB_DONE, True),
        ("status.conditions.1", JOB_DONE, False),
        ("status.replicas.#(count>=2)#", {"status": {"replicas": [{"count": 3}]}}, True),
        ("status.replicas.#(count<2)#", {"status": {"replicas": [{"count": 3}]}}, False),
        ('status.#(a.b!="x")#', {"status": [{"a": {"b": "y"}}]}, True),
    ],
)
def test_gjson_subset_matches_katib(expression: str, doc: dict[str, Any], holds: bool) -> None:
    from trials._gjson import compile_path, condition_holds

    ok, cond = condition_holds(compile_path(expression), doc)
    assert ok is holds
    if expression.endswith('"True")#') and holds:
        assert cond is not None and cond["reason"] in ("Done", "DeadlineExceeded")


def test_gjson_projection_after_query_all() -> None:
    from trials._gjson import compile_path

    assert compile_path('status.conditions.#(type=="Complete")#.reason').get(JOB_DONE) == ["Done"]
    assert compile_path("status.conditions.#").get(JOB_DONE) == 1


@pytest.mark.parametrize(
    "expression",
    ["status.*", 'a.#(x%"y*")#', "status|@reverse", "a.{b,c}", "a.#(x)", "", "a.#(b==)"],
)
def test_gjson_outside_the_subset_is_refused(expression: str) -> None:
    from trials._gjson import GJSONError, compile_path

    with pytest.raises(GJSONError):
        compile_path(expression)


# -- watch ---------------------------------------------------------------------------------
def _status_calls(api: FakeKubernetesApiServer, collection: str) -> dict[str, int]:
    """Requests on a collection: item GETs, LISTs and WATCHes (logs excluded)."""
    out = {"get": 0, "list": 0, "watch": 0}
    for method, path, query in api.calls:
        if method != "GET" or not path.startswith(collection) or path.endswith("/log"):
            continue
        if path.rstrip("/") != collection:
            out["get"] += 1
        elif query.get("watch", "").lower() == "true":
            out["watch"] += 1
        else:
            out["list"] += 1
    return out


def test_watch_makes_status_requests_per_experiment_not_per_trial(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(kc, tmp_path, budget={"max_trials": 6, "parallel": 6})
    doc["trial"]["command"] = ["python", str(tmp_path / "train.py"), "${x}", "4"]
    client = run_exp(tmp_path, doc)
    trials = client.trials("k8s-exp")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 6
    for t in trials:  # every step's metric, read while the job ran, then its completion
        assert t.metrics["loss"].max == pytest.approx(t.params["x"] * 4, rel=1e-5)
    assert api.live("jobs") == [] and len(api.deleted) == 6
    # Polling made a job GET per running trial per poll_interval (0.1 s here) and pod LISTs
    # until each container started; the watch needs one LIST and one WATCH for all six jobs,
    # and the same for their pods.
    jobs = _status_calls(api, "/apis/batch/v1/namespaces/team-a/jobs")
    pods = _status_calls(api, "/api/v1/namespaces/team-a/pods")
    assert jobs["get"] == 0 and pods["get"] == 0, (jobs, pods)
    assert 1 <= jobs["list"] <= 2 and 1 <= jobs["watch"] <= 2, jobs
    assert 1 <= pods["list"] <= 2 and 1 <= pods["watch"] <= 2, pods
    watches = [q for m, p, q in api.calls if q.get("watch", "").lower() == "true"]
    for q in watches:  # the experiment's label, from the list's version, renewed in time
        assert q["labelSelector"] == "automl.dev/experiment=k8s-exp"
        assert int(q["resourceVersion"]) >= 1 and int(q["timeoutSeconds"]) == 300


def test_expired_watch_relists_and_loses_no_trial(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(kc, tmp_path)
    doc["trial"]["command"] = ["python", str(tmp_path / "train.py"), "${x}", "3"]
    ex = KubernetesExecutor(parse_spec(yaml.safe_dump(doc), base_dir=tmp_path), tmp_path / "runs")
    ids = ["k8s-exp-ghjklmnp", "k8s-exp-hjklmnpq", "k8s-exp-jklmnpqr"]
    events: list[TrialEvent] = []
    try:
        for i, trial in enumerate(ids):
            ex.submit(TrialRun(trial, "k8s-exp", i, {"x": 0.25 * (i + 1)}))
        end = time.monotonic() + 30
        while {e.trial_id for e in events if e.metrics} != set(ids) and time.monotonic() < end:
            events.extend(ex.poll(0.1))
        assert {e.trial_id for e in events if e.metrics} == set(ids)  # all three running
        api.hold_watches()  # the watches end; the jobs complete while nobody watches
        while api.running_processes() and time.monotonic() < end:
            time.sleep(0.05)
        assert api.running_processes() == 0
        assert all(len(o["status"].get("conditions", [])) == 1 for o in api.live("jobs"))
        events.extend(ex.poll(0.5))
        assert not [e for e in events if e.exit], "a trial ended with no job status seen"
        lists_before = _status_calls(api, "/apis/batch/v1/namespaces/team-a/jobs")["list"]
        api.expire_watches()  # the history the watches would resume from is gone: 410
        while len([e for e in events if e.exit]) < 3 and time.monotonic() < end:
            events.extend(ex.poll(0.1))
    finally:
        ex.close()
    exits = {e.trial_id: e.exit for e in events if e.exit}
    assert set(exits) == set(ids)
    assert all(x.status is ExitStatus.COMPLETED for x in exits.values()), exits
    assert api.gone_served >= 1
    assert _status_calls(api, "/apis/batch/v1/namespaces/team-a/jobs")["list"] > lists_before
    for i, trial in enumerate(ids):  # every step's metric came before the exit
        losses = [e.metrics["loss"] for e in events if e.trial_id == trial and "loss" in e.metrics]
        assert losses == pytest.approx([0.25 * (i + 1) * s for s in (1, 2, 3)], rel=1e-5)
    assert api.live("jobs") == []


def test_job_deleted_outside_automl_fails_the_trial(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    import urllib.request

    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(
        kc, tmp_path, trial={"command": ["python", str(tmp_path / "train.py"), "${x}", "100"]}
    )
    ex = KubernetesExecutor(parse_spec(yaml.safe_dump(doc), base_dir=tmp_path), tmp_path / "runs")
    try:
        ex.submit(TrialRun("k8s-exp-klmnpqrs", "k8s-exp", 0, {"x": 0.5}))
        seen: list[TrialEvent] = []
        end = time.monotonic() + 30
        while not any(e.metrics for e in seen) and time.monotonic() < end:
            seen.extend(ex.poll(0.1))
        url = f"{api.url}/apis/batch/v1/namespaces/team-a/jobs/k8s-exp-klmnpqrs"
        with urllib.request.urlopen(urllib.request.Request(url, method="DELETE")) as resp:
            assert resp.status == 200  # "kubectl delete job", by someone else
        events = collect(ex, "k8s-exp-klmnpqrs")
    finally:
        ex.close()
    exit_ = events[-1].exit
    assert exit_ is not None and exit_.status is ExitStatus.FAILED
    assert "deleted outside automl" in exit_.message
    assert api.running_processes() == 0


def test_pods_the_watch_cannot_see_are_listed_per_trial(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    api.unlabelled_pods = True  # no pod carries the experiment's label
    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(kc, tmp_path, budget={"max_trials": 1, "parallel": 1})
    doc["executor"]["settings"] = {"poll_interval": 0.1, "pod_list_after": 0.5}
    doc["trial"]["command"] = ["python", str(tmp_path / "train.py"), "${x}", "2"]
    client = run_exp(tmp_path, doc)
    (t,) = client.trials("k8s-exp")
    assert t.state is TrialState.SUCCEEDED
    assert t.metrics["loss"].max == pytest.approx(t.params["x"] * 2, rel=1e-5)
    own = [
        q
        for m, p, q in api.calls
        if p.endswith("/pods") and "job-name" in q.get("labelSelector", "")
    ]
    assert own and all(q["labelSelector"] == f"job-name={t.id}" for q in own)


def test_resume_adopts_the_jobs_of_a_sigkilled_controller(
    api: FakeKubernetesApiServer, tmp_path: Path
) -> None:
    """A controller killed with SIGKILL leaves its jobs running; ``automl resume`` finds them
    (by name, or by the trial's label) and follows them to their end: no job is created twice,
    every trial ends Succeeded in its first attempt with all its steps observed."""
    import signal
    import subprocess
    import sys

    kc = api.write_kubeconfig(tmp_path / "kubeconfig")
    doc = spec_doc(
        kc, tmp_path, trial={"command": ["python", str(tmp_path / "train.py"), "${x}", "8"]}
    )
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    cli = [sys.executable, "-m", "automl"]
    common = ["--store", url, "--no-progress", "--runs-dir", str(tmp_path / "runs")]
    proc = subprocess.Popen([*cli, "run", str(f), *common], cwd=tmp_path)
    try:
        end = time.monotonic() + 60
        while api.running_processes() < 2 and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.02)
        assert api.running_processes() == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(api.created) == 2 and api.running_processes() == 2  # the jobs outlived it
    res = subprocess.run(
        [*cli, "resume", "k8s-exp", *common], cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(api.created) == 2  # adopted, not created again
    client = Client(url)
    exp = client.get("k8s-exp")
    assert exp.state is ExperimentState.SUCCEEDED
    trials = client.trials("k8s-exp")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2
    assert [t.attempt for t in trials] == [1, 1]
    for t in trials:  # every step observed once, read again from the job's log
        steps = [o.step for o in client.store.observations.list(t.id) if o.metric == "loss"]
        assert steps == list(range(1, 9))
    assert api.live("jobs") == []  # deleted once recorded
