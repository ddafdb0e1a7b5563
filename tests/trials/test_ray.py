"""The Ray executor on a real local Ray cluster (see ray_cluster.py): command and function
trials with streamed metrics, fractional GPUs, stop and early stopping that kill the trial's
processes, node death and retries, distributed trials in placement groups, bad addresses."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from automl import Client
from automl._runner import run_experiment
from automl.core import ExperimentSpec, TrialState, TrialTemplate
from automl.errors import SpecError
from automl.spec import load_spec
from tests.trials import ray_cluster as cluster_fixture
from tests.trials.ray_cluster import RayCluster
from trials import ExitStatus, TrialEvent, TrialRun

pytestmark = pytest.mark.integration
ray_cluster = cluster_fixture.ray_cluster  # the session's real cluster

from trials._ray import RayExecutor  # noqa: E402


def spec_file(
    tmp_path: Path,
    script: str,
    address: str,
    *,
    name: str = "exp",
    trial: dict[str, Any] | None = None,
    executor: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    (tmp_path / "script.py").write_text(textwrap.dedent(script))
    doc: dict[str, Any] = {
        "name": name,
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "seed": 0,
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 1},
        "trial": {
            "command": [sys.executable, str(tmp_path / "script.py"), "--x=${x}"],
            **(trial or {}),
        },
        "executor": {"kind": "ray", "address": address, **(executor or {})},
    }
    doc.update(extra)
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


def collect(ex: RayExecutor, ids: set[str], timeout: float = 90.0) -> dict[str, list[TrialEvent]]:
    """Every event of ``ids`` until each has its exit event."""
    out: dict[str, list[TrialEvent]] = {i: [] for i in ids}
    left = set(ids)
    end = time.monotonic() + timeout
    while left and time.monotonic() < end:
        for ev in ex.poll(0.2):
            out[ev.trial_id].append(ev)
            if ev.exit is not None:
                left.discard(ev.trial_id)
    assert not left, f"no exit event for {left}"
    return out


def wait_for(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not met"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def run(n: int, params: dict[str, Any] | None = None, attempt: int = 1) -> TrialRun:
    return TrialRun(f"t{n}", "exp", n, params or {"x": 0.5}, attempt)


# -- address --------------------------------------------------------------------------------------


def test_unreachable_address_is_a_spec_error_before_any_trial(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed below: nothing listens there
    address = f"127.0.0.1:{port}"
    spec = load_spec(spec_file(tmp_path, "print('loss=1')", address))
    with pytest.raises(SpecError) as err:
        RayExecutor(spec, tmp_path / "runs")
    assert err.value.issues[0].path == "executor.address"
    assert address in str(err.value)
    # Refused by the executor's own bounded socket probe, before ray.init (whose retry loop
    # would run for minutes): the error comes from that connect.
    assert isinstance(err.value.__cause__, ConnectionRefusedError)
    assert "Connection refused" in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_bad_settings_are_spec_errors(tmp_path: Path) -> None:
    for settings, path in [
        ({"bogus": 1}, "executor.settings.bogus"),
        ({"resources": {"x": -1}}, "executor.settings.resources"),
        ({"placement_strategy": "CLOSE"}, "executor.settings.placement_strategy"),
    ]:
        spec = load_spec(spec_file(tmp_path, "", "127.0.0.1:1", executor={"settings": settings}))
        with pytest.raises(SpecError) as err:
            RayExecutor(spec, tmp_path / "runs")
        assert err.value.issues[0].path == path


# -- command trials -------------------------------------------------------------------------------

STREAM = """
import os, sys, time
import automl
x = float(sys.argv[1].split("=")[1])
gate = os.environ["GATE"]
print(f"epoch=1 loss={x + 1}", flush=True)
automl.report(step=1, acc=0.5)
while not os.path.exists(gate):  # the test opens the gate once it saw the first values
    time.sleep(0.05)
print(f"epoch=2 loss={x}", flush=True)
print(f"cwd={os.getcwd()} gpus={os.environ.get('CUDA_VISIBLE_DEVICES')}", flush=True)
"""


def test_command_trial_streams_metrics_while_it_runs(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    f = spec_file(
        tmp_path,
        STREAM,
        ray_cluster.address,
        trial={"env": {"GATE": str(gate)}, "workdir": str(tmp_path)},
        metrics={"filters": [r"(?P<name>epoch)=(?P<value>\d+)", r"(loss)=([-+.\de]+)"]},
        objective={"metric": "loss", "direction": "minimize", "additional_metrics": ["acc"]},
    )
    ex = RayExecutor(load_spec(f), tmp_path / "runs")
    try:
        ex.submit(run(0, {"x": 0.25}))
        seen: list[TrialEvent] = []
        wait_for(
            lambda: (
                seen.extend(ex.poll(0.1)),
                {"loss", "acc"} <= {k for e in seen for k in e.metrics},
            )[1]
        )
        assert not any(e.exit for e in seen)  # the trial still runs: values came live
        started = next(e.started for e in seen if e.started)
        assert started["node_ip"] == "127.0.0.1" and started["attempt"] == 1
        gate.touch()
        events = seen + collect(ex, {"t0"})["t0"]
    finally:
        ex.close()
    metrics = [(e.step, dict(e.metrics)) for e in events if e.metrics]
    assert (1, {"loss": 1.25}) in metrics  # the epoch filter sets the step
    assert (2, {"loss": 0.25}) in metrics
    assert (1, {"acc": 0.5}) in metrics  # automl.report
    end = events[-1].exit
    assert end is not None and end.status is ExitStatus.COMPLETED
    log = (tmp_path / "runs" / "exp" / "t0" / "trial.log").read_text()
    assert f"cwd={tmp_path}" in log and "gpus=None" in log


def test_experiment_on_the_cluster_records_intermediate_values(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    script = """
    import sys
    x = float(sys.argv[1].split("=")[1])
    for step in range(3):
        print(f"step={step} loss={x + 2 - step}", flush=True)
    """
    f = spec_file(
        tmp_path,
        script,
        ray_cluster.address,
        budget={"max_trials": 3, "parallel": 3},
        trial={"resources": {"cpu": 1}},
    )
    client = Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")
    result = client.run(f)
    trials = client.trials("exp")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 3
    obs = client.observations("exp")
    for t in trials:
        steps = sorted(o.step for o in obs if o.trial_id == t.id and o.metric == "loss")
        assert steps == [0, 1, 2]
        assert t.value == pytest.approx(t.params["x"])  # min over the intermediate values
        log = (tmp_path / "runs" / "exp" / t.id / "trial.log").read_text()
        assert "running on node 127.0.0.1" in log
    assert result.best_value == pytest.approx(min(t.params["x"] for t in trials))


def test_a_trial_that_fails_by_itself_is_not_retried(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    f = spec_file(
        tmp_path,
        "import sys; print('boom'); sys.exit(3)",
        ray_cluster.address,
        executor={"max_retries": 2},
    )
    ex = RayExecutor(load_spec(f), tmp_path / "runs")
    try:
        ex.submit(run(0))
        events = collect(ex, {"t0"})["t0"]
    finally:
        ex.close()
    end = events[-1].exit
    assert end is not None and end.status is ExitStatus.FAILED
    assert "exit code 3" in end.message and "boom" in end.message
    assert sum(1 for e in events if e.started) == 1
    assert not (tmp_path / "runs" / "exp" / "t0.attempt1").exists()


# -- resources ------------------------------------------------------------------------------------

GPU_SCRIPT = """
import json, os, sys, time
n = sys.argv[1].split("=")[1]
d = os.environ["OUT"]
start = time.time()
open(os.path.join(d, f"started-{n}"), "w").close()
want = int(os.environ["WANT"])
# hold the GPU until WANT trials have started (a barrier; the limit only ends a broken run)
end = time.time() + 120
while time.time() < end and len([f for f in os.listdir(d) if f.startswith("started-")]) < want:
    time.sleep(0.05)
with open(os.path.join(d, f"t-{n}.json"), "w") as fh:
    json.dump({"start": start, "end": time.time(), "gpus": os.environ["CUDA_VISIBLE_DEVICES"],
               "ray": os.environ["AUTOML_RAY_GPU_IDS"]}, fh)
print("loss=0")
"""


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = cur = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


@pytest.mark.parametrize(("gpu", "at_once"), [(0.5, 4), (1, 2)])
def test_fractional_gpus_share_devices(
    ray_cluster: RayCluster, tmp_path: Path, gpu: float, at_once: int
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    f = spec_file(
        tmp_path,
        GPU_SCRIPT,
        ray_cluster.address,
        trial={
            "resources": {"gpu": gpu, "cpu": 0.5},
            "env": {"OUT": str(out), "WANT": str(at_once)},
            "command": [sys.executable, str(tmp_path / "script.py"), "--n=${x}"],
        },
        parameters={"x": {"type": "int", "min": 0, "max": 10}},
    )
    ex = RayExecutor(load_spec(f), tmp_path / "runs")
    try:
        for n in range(4):
            ex.submit(run(n, {"x": n}))
        events = collect(ex, {f"t{n}" for n in range(4)})
    finally:
        ex.close()
    for evs in events.values():
        assert evs[-1].exit is not None and evs[-1].exit.status is ExitStatus.COMPLETED
    rows = [json.loads((out / f"t-{n}.json").read_text()) for n in range(4)]
    assert _max_overlap([(r["start"], r["end"]) for r in rows]) == at_once
    assert {r["gpus"] for r in rows} == {"0", "1"}  # Ray's GPU ids reach the trial
    assert all(r["gpus"] == r["ray"] for r in rows)


# -- stop -----------------------------------------------------------------------------------------

TREE = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open(os.environ["PIDS"], "w") as fh:
    fh.write(f"{os.getpid()} {child.pid}")
print("loss=1", flush=True)
time.sleep(300)
"""


def test_cancel_kills_the_trial_process_group(ray_cluster: RayCluster, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    f = spec_file(tmp_path, TREE, ray_cluster.address, trial={"env": {"PIDS": str(pids_file)}})
    ex = RayExecutor(load_spec(f), tmp_path / "runs")
    try:
        ex.submit(run(0))
        wait_for(lambda: pids_file.exists() and " " in pids_file.read_text())
        pids = [int(p) for p in pids_file.read_text().split()]
        assert all(alive(p) for p in pids)
        ex.cancel("t0")
        events = collect(ex, {"t0"})["t0"]
    finally:
        ex.close()
    assert events[-1].exit is not None and events[-1].exit.status is ExitStatus.CANCELLED
    wait_for(lambda: not any(alive(p) for p in pids), timeout=15)


def test_trial_timeout_kills_the_trial(ray_cluster: RayCluster, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    f = spec_file(
        tmp_path, TREE, ray_cluster.address, trial={"env": {"PIDS": str(pids_file)}, "timeout": 2}
    )
    ex = RayExecutor(load_spec(f), tmp_path / "runs")
    try:
        ex.submit(run(0))
        events = collect(ex, {"t0"})["t0"]
    finally:
        ex.close()
    end = events[-1].exit
    assert end is not None and end.status is ExitStatus.TIMED_OUT
    assert any(e.metrics.get("loss") == 1 for e in events)
    pids = [int(p) for p in pids_file.read_text().split()]
    wait_for(lambda: not any(alive(p) for p in pids), timeout=15)


def test_user_stop_of_an_experiment_kills_running_trials(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    pids_file = tmp_path / "pids"
    f = spec_file(tmp_path, TREE, ray_cluster.address, trial={"env": {"PIDS": str(pids_file)}})
    client = Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")
    done = threading.Event()

    def stop_when_running() -> None:
        wait_for(lambda: pids_file.exists() and " " in pids_file.read_text())
        Client(f"sqlite:///{tmp_path / 'store.db'}").stop("exp")
        done.set()

    th = threading.Thread(target=stop_when_running, daemon=True)
    th.start()
    client.run(f)
    th.join(30)
    assert done.is_set()
    pids = [int(p) for p in pids_file.read_text().split()]
    wait_for(lambda: not any(alive(p) for p in pids), timeout=15)
    assert [t.state for t in client.trials("exp")] == [TrialState.KILLED]


# -- function trials ------------------------------------------------------------------------------


def test_function_trials_report_to_the_controller(ray_cluster: RayCluster, tmp_path: Path) -> None:
    marker = tmp_path / "marker"

    def objective(x: float) -> float:  # cloudpickled by value: a closure over ``marker``
        import ray

        import automl

        for step in range(3):
            automl.report(step=step, loss=x + 3 - step)
        print(f"gpu ids {ray.get_gpu_ids()} pid {os.getpid()}")
        marker.write_text(str(os.getpid()))
        return x

    f = spec_file(tmp_path, "", ray_cluster.address, budget={"max_trials": 2, "parallel": 2})
    spec: ExperimentSpec = load_spec(f)
    spec = spec.model_copy(
        update={"trial_template": TrialTemplate(function="tests.trials.test_ray:nothing")}
    )
    client = Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")
    run_experiment(
        client.store, client.create(spec), objective=objective, runs_dir=client.runs_dir
    )
    trials = client.trials("exp")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2
    obs = client.observations("exp")
    for t in trials:
        steps = sorted(o.step for o in obs if o.trial_id == t.id and o.step is not None)
        assert steps == [0, 1, 2]
        assert t.value == pytest.approx(t.params["x"])
        log = (tmp_path / "runs" / "exp" / t.id / "trial.log").read_text()
        assert "gpu ids []" in log  # the objective's print streamed back
    assert int(marker.read_text()) != os.getpid()  # it ran in a Ray worker, not here


def test_tune_runs_the_objective_on_the_cluster(ray_cluster: RayCluster, tmp_path: Path) -> None:
    import automl

    def objective(x: float) -> dict[str, float]:
        import ray

        for step in range(2):
            automl.report(step=step, loss=x + 1 - step)
        automl.save_model({"x": x})  # lands in the trial's artifact dir, on a shared filesystem
        return {"loss": x, "gpus": float(len(ray.get_gpu_ids()))}

    res = automl.tune(
        objective,
        {"x": automl.double(0, 1)},
        objective_metric="loss",
        additional_metrics=["gpus"],
        max_trials=2,
        parallel_trials=2,
        resources_per_trial={"gpu": 0.5, "cpu": 0.5},
        executor={"kind": "ray", "address": ray_cluster.address},
        store=f"sqlite:///{tmp_path / 'store.db'}",
        name="tune-ray",
        runs_dir=tmp_path / "runs",
    )
    assert list(res.trials["state"]) == ["Succeeded", "Succeeded"]
    client = Client(f"sqlite:///{tmp_path / 'store.db'}")
    for t in client.trials("tune-ray"):
        assert t.metrics["gpus"].latest == 1  # a share of one of the cluster's GPUs
        steps = {o.step for o in client.observations("tune-ray") if o.trial_id == t.id}
        assert {0, 1} <= steps
    assert res.best_value == pytest.approx(min(t.params["x"] for t in client.trials("tune-ray")))
    assert res.best_model() == {"x": res.best_params["x"]}
    assert str(client.artifacts("tune-ray")).startswith(str(tmp_path / "runs"))


def nothing(x: float) -> float:
    return x


def test_early_stopping_stops_function_trials(ray_cluster: RayCluster, tmp_path: Path) -> None:
    def objective(x: float) -> None:
        import time

        import automl

        trial = automl.current_trial()
        assert trial is not None
        for step in range(40):
            # the first trial is good; later ones are worse and are stopped early
            automl.report(step=step, loss=1 if trial.number == 0 else 100 + x)
            time.sleep(0.1)

    f = spec_file(
        tmp_path,
        "",
        ray_cluster.address,
        budget={"max_trials": 3, "parallel": 1},
        early_stopping={
            "name": "medianstop",
            "settings": {"min_trials_required": 1, "start_step": 2},
        },
        algorithm="grid",
        parameters={"x": {"type": "discrete", "values": [0, 1, 2]}},
    )
    spec = load_spec(f).model_copy(
        update={"trial_template": TrialTemplate(function="tests.trials.test_ray:nothing")}
    )
    client = Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")
    run_experiment(
        client.store, client.create(spec), objective=objective, runs_dir=client.runs_dir
    )
    trials = client.trials("exp")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] + [TrialState.EARLY_STOPPED] * 2
    obs = client.observations("exp")
    for t in trials[1:]:
        assert max(o.step or 0 for o in obs if o.trial_id == t.id) < 39


# -- node death and retries -----------------------------------------------------------------------

VICTIM = """
import os, subprocess, sys, time
mark = os.environ["MARK"]
if not os.path.exists(mark):  # first attempt: park here until the node is killed
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(mark, "w") as fh:
        fh.write(f"{os.getpid()} {child.pid}")
    time.sleep(300)
print("loss=0.5", flush=True)
"""


def test_a_dead_node_fails_the_trial_and_a_retry_succeeds(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    mark = tmp_path / "mark"
    victim = ray_cluster.add_node(num_cpus=1, resources={"victim": 1})
    f = spec_file(
        tmp_path,
        VICTIM,
        ray_cluster.address,
        trial={"env": {"MARK": str(mark)}},
        executor={"max_retries": 1, "settings": {"resources": {"victim": 1}}},
    )
    ex = RayExecutor(load_spec(f), tmp_path / "runs")
    try:
        ex.submit(run(0))
        wait_for(lambda: mark.exists() and " " in mark.read_text())
        pids = [int(p) for p in mark.read_text().split()]
        ray_cluster.kill_node(victim)
        wait_for(lambda: not any(alive(p) for p in pids), timeout=15)  # died with its node
        ray_cluster.add_node(num_cpus=1, resources={"victim": 1})  # somewhere to retry
        events = collect(ex, {"t0"})["t0"]
    finally:
        ex.close()
    starts = [e.started for e in events if e.started]
    assert [s["attempt"] for s in starts] == [1, 2]
    assert starts[0]["node_id"] != starts[1]["node_id"]
    end = events[-1].exit
    assert end is not None and end.status is ExitStatus.COMPLETED, end
    assert any(e.metrics.get("loss") == 0.5 for e in events)
    old_log = (tmp_path / "runs" / "exp" / "t0.attempt1" / "trial.log").read_text()
    assert "NodeDiedError" in old_log or "died" in old_log


def test_a_dead_node_without_retries_preempts_the_trial(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """A node lost under a trial is not the trial's failure: it ends Preempted (the controller
    runs it again, not counted against maxFailedTrialCount; tests/test_preemption.py)."""
    mark = tmp_path / "mark"
    victim = ray_cluster.add_node(num_cpus=1, resources={"victim2": 1})
    f = spec_file(
        tmp_path,
        VICTIM,
        ray_cluster.address,
        trial={"env": {"MARK": str(mark)}},
        executor={"settings": {"resources": {"victim2": 1}}},
    )
    ex = RayExecutor(load_spec(f), tmp_path / "runs")
    try:
        ex.submit(run(0))
        wait_for(lambda: mark.exists())
        ray_cluster.kill_node(victim)
        events = collect(ex, {"t0"})["t0"]
    finally:
        ex.close()
    end = events[-1].exit
    assert end is not None and end.status is ExitStatus.PREEMPTED
    assert "died" in end.message


# -- distributed trials ---------------------------------------------------------------------------

DIST = """
import json, os, time
keys = ["MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"]
env = {k: os.environ.get(k) for k in keys}
with open(os.path.join(os.environ["OUT"], f"rank-{env['RANK']}.json"), "w") as fh:
    json.dump(env, fh)
while not os.path.exists(os.environ["GATE"]):
    time.sleep(0.05)
print(f"loss={env['RANK']}", flush=True)
"""


def test_distributed_trial_gets_a_placement_group_and_rank_env(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    import ray

    out, gate = tmp_path / "out", tmp_path / "gate"
    out.mkdir()
    f = spec_file(
        tmp_path,
        DIST,
        ray_cluster.address,
        trial={
            "env": {"OUT": str(out), "GATE": str(gate)},
            "resources": {"workers": 2, "processes_per_worker": 2, "cpu": 1},
        },
        executor={"settings": {"placement_strategy": "STRICT_PACK"}},
    )
    ex = RayExecutor(load_spec(f), tmp_path / "runs")
    try:
        ex.submit(run(0))
        wait_for(lambda: len(list(out.glob("rank-*.json"))) == 4)
        groups = [
            g
            for g in ray.util.placement_group_table().values()
            if g["name"] == "automl-t0#1" and g["state"] == "CREATED"
        ]
        assert len(groups) == 1
        assert groups[0]["strategy"] == "STRICT_PACK"
        assert list(groups[0]["bundles"].values()) == [{"CPU": 1.0}, {"CPU": 1.0}]
        gate.touch()
        events = collect(ex, {"t0"})["t0"]
        wait_for(
            lambda: all(
                g["state"] == "REMOVED"
                for g in ray.util.placement_group_table().values()
                if g["name"] == "automl-t0#1"
            ),
            timeout=15,
        )
    finally:
        ex.close()
    envs = [json.loads((out / f"rank-{r}.json").read_text()) for r in range(4)]
    assert {e["WORLD_SIZE"] for e in envs} == {"4"}
    assert [e["LOCAL_RANK"] for e in envs] == ["0", "1", "0", "1"]
    assert len({(e["MASTER_ADDR"], e["MASTER_PORT"]) for e in envs}) == 1
    assert envs[0]["MASTER_ADDR"] == "127.0.0.1"
    end = events[-1].exit
    assert end is not None and end.status is ExitStatus.COMPLETED
    assert [e.metrics["loss"] for e in events if e.metrics] == [0.0]  # rank 0's metrics only
    log = (tmp_path / "runs" / "exp" / "t0" / "trial.log").read_text()
    for rank in range(4):  # every rank's output reaches the trial's log, tagged
        assert f"[rank {rank}] loss={rank}" in log, log


def test_the_cluster_listens_on_loopback_only(ray_cluster: RayCluster) -> None:
    listening = [
        c.laddr.ip
        for pid in ray_cluster.pids()
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening
    assert {ip.removeprefix("::ffff:") for ip in listening} == {"127.0.0.1"}


# -- a controller that died -----------------------------------------------------------------------

ORPHAN = """
import os, subprocess, sys, time
mark = os.environ["MARK"]
if not os.path.exists(mark):  # attempt 1: still running when its controller is killed
    # a helper in a session of its own: outside the trial's process group, so neither Ray's end
    # of the dead driver's workers nor a worker's reaper stops it
    helper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True
    )
    with open(mark + ".tmp", "w") as fh:
        fh.write(f"{os.getpid()} {helper.pid}")
    os.rename(mark + ".tmp", mark)
    end = time.time() + 300
    while not os.path.exists(mark + ".go") and time.time() < end:  # the test lets it finish
        time.sleep(0.05)
with open(mark + ".done", "a") as fh:  # the trial's own ledger of completed executions
    fh.write(f"{os.getpid()}\\n")
print("loss=0.5", flush=True)
"""


def orphan_trial(ray_cluster: RayCluster, tmp_path: Path) -> tuple[str, list[int]]:
    """Start ``automl run`` in a subprocess, SIGKILL it while its trial runs; the trial's pids."""
    mark = tmp_path / "mark"
    f = spec_file(tmp_path, ORPHAN, ray_cluster.address, trial={"env": {"MARK": str(mark)}})
    store = f"sqlite:///{tmp_path / 'store.db'}"
    argv = [sys.executable, "-m", "automl", "run", str(f), "--store", store]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    controller = subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = Client(store)

    def runners() -> dict[str, dict[str, Any]]:
        return client.store.trials.runners(client.get("exp").id)

    try:
        wait_for(lambda: mark.exists() or controller.poll() is not None, timeout=120)
        assert controller.poll() is None, "the controller ended before its trial ran"
        pids = [int(p) for p in mark.read_text().split()]
        wait_for(lambda: any(runners().values()))  # stored as soon as the trial started
    finally:
        controller.kill()  # SIGKILL: no cleanup of its own
        controller.wait()
    try:
        [runner] = runners().values()
        assert runner["ray"]["mark"] and runner["ray"]["address"] == ray_cluster.address
        assert alive(pids[1])  # the helper, in a session of its own
    except BaseException:
        kill_left(pids)
        raise
    finally:
        client.close()
    return store, pids


def kill_left(pids: list[int]) -> None:
    for p in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(p).kill()


def test_resume_adopts_the_trial_a_killed_controller_left_on_the_cluster(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """The trial's task belongs to the cluster's hub, not to the controller: it outlives the
    SIGKILL, and resume follows it to its end instead of running it again."""
    store, pids = orphan_trial(ray_cluster, tmp_path)
    try:
        assert alive(pids[0])  # the trial itself still runs
        (tmp_path / "mark.go").touch()
        client = Client(store, runs_dir=tmp_path / "runs")
        client.resume("exp")  # this process is a driver of the same cluster already
    finally:
        kill_left(pids)
    [t] = client.trials("exp")
    assert t.state is TrialState.SUCCEEDED and t.attempt == 1
    assert t.value == pytest.approx(0.5)
    # It completed once, as the process the dead controller started.
    assert (tmp_path / "mark.done").read_text().split() == [str(pids[0])]


def test_stop_without_a_controller_kills_its_ray_trial(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    store, pids = orphan_trial(ray_cluster, tmp_path)
    try:
        # a new process, not connected to Ray: it connects to the address the trial stored
        p = subprocess.run(
            [sys.executable, "-m", "automl", "stop", "exp", "--store", store],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        wait_for(lambda: not any(alive(p) for p in pids), timeout=15)
    finally:
        kill_left(pids)
    [t] = Client(store).trials("exp")
    assert t.state is TrialState.KILLED


def test_task_code_reaches_workers_without_importing_automl(tmp_path: Path) -> None:
    """The task code travels by value: a fresh worker does not import automl (pydantic, every
    executor) before its first trial, the bulk of a first wave's overhead."""
    import ray
    import ray.cloudpickle as cloudpickle

    from trials import _ray, _ray_worker

    _ray._by_value(ray)
    blob = tmp_path / "task.pkl"
    blob.write_bytes(
        cloudpickle.dumps(
            (
                _ray_worker._run_task,
                _ray_worker._Hub,
                _ray_worker._rendezvous,
                _ray_worker._kill_marked,
            )
        )
    )
    code = textwrap.dedent(
        f"""
        import sys
        class Block:  # as on a worker where automl is not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("automl", "trials", "pydantic", "optuna"):
                    raise ImportError(name)
        sys.meta_path.insert(0, Block())
        import ray.cloudpickle
        fns = ray.cloudpickle.loads(open({str(blob)!r}, "rb").read())
        print(*[f.__name__ for f in fns])
        """
    )
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["_run_task", "_Hub", "_rendezvous", "_kill_marked"]


@pytest.mark.timeout(600)
def test_sigkill_at_random_moments_runs_every_ray_trial_exactly_once(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """The exactly-once kill test (benchmarks/exactly_once.py), shorter, on the Ray cluster:
    trials keep running on the cluster while no controller runs, and are adopted."""
    import random

    from benchmarks import exactly_once as eo

    (tmp_path / "trial.py").write_text(eo.TRIAL)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    o = eo.run_one(
        tmp_path, "eo-ray", url, kind="command", trials=6, kills=2, rng=random.Random(5),
        ray_address=ray_cluster.address,
    )  # fmt: skip
    assert o.kills >= 1, o
    assert (o.state, o.trials) == ("Succeeded", 6), o
    assert (o.lost, o.twice, o.tracebacks) == (0, 0, 0), o


_WARM = """
import json, os, sys
warm = "xml.dom.minidom" in sys.modules  # never imported by a cold interpreter's start-up
with open(f"/proc/{os.getppid()}/stat") as fh:  # the supervisor's parent: the fork server
    server = int(fh.read().rsplit(")", 1)[1].split()[1])
with open(f"/proc/{server}/stat") as fh:
    worker = int(fh.read().rsplit(")", 1)[1].split()[1])
print(json.dumps({"warm": warm, "server": server, "worker": worker, "argv": sys.argv,
                  "main": __name__, "cwd": os.getcwd(),
                  "name": os.environ.get("AUTOML_TRIAL_NAME")}), flush=True)
print(f"loss={float(sys.argv[1].split('=')[1])}")
"""


def _reapers() -> set[int]:
    """Pids of the Ray workers' trial reapers (trials._ray_worker._REAPER) on this machine."""
    from trials._ray_worker import _REAPER

    return {
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if (p.info["cmdline"] or [])[1:5] == ["-I", "-S", "-c", _REAPER]
    }


def _warm_lines(tmp_path: Path, trial_id: str) -> list[dict[str, Any]]:
    log = (tmp_path / "runs" / "exp" / trial_id / "trial.log").read_text()
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_warm_trials_fork_from_a_server_that_lives_across_trials(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """trial.warm on Ray: each trial is forked from the node's fork server, which keeps its
    preloaded modules between trials, and the script sees what a cold start would give."""
    f = spec_file(
        tmp_path,
        _WARM,
        ray_cluster.address,
        budget={"max_trials": 4, "parallel": 1},
        trial={"warm": {"preload": ["xml.dom.minidom"]}, "workdir": str(tmp_path)},
    )
    client = Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")
    reapers = _reapers()
    client.run(f)
    trials = client.trials("exp")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 4
    servers = []
    by_node: dict[str, set[int]] = {}
    for t in trials:
        (seen,) = _warm_lines(tmp_path, t.id)
        log = (tmp_path / "runs" / "exp" / t.id / "trial.log").read_text()
        (node,) = re.findall(r"running on node [\d.]+ \((\w+)\)", log)
        by_node.setdefault(node, set()).add(seen["server"])
        assert seen["warm"] is True  # forked after the preload, not a cold interpreter
        assert seen["main"] == "__main__" and seen["cwd"] == str(tmp_path)
        assert seen["argv"] == [str(tmp_path / "script.py"), f"--x={t.params['x']}"]
        assert seen["name"] == t.id
        assert t.value == pytest.approx(t.params["x"])  # its stdout reached the controller
        servers.append((seen["server"], seen["worker"]))
    # One fork server per node (kept by a detached actor), whichever worker ran the task; the
    # session's cluster may have more than one node.
    assert all(len(pids) == 1 for pids in by_node.values()), by_node
    assert len(set(servers)) < len(servers)
    # A Ray worker keeps one reaper (the task code comes by value: per-task globals leaked one
    # reaper per trial).
    assert _reapers()  # found by their program (a warm trial's supervisor is no reaper)
    assert len(_reapers() - reapers) < len(trials)


def test_a_warm_preload_that_fails_starts_ray_trials_cold(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    f = spec_file(
        tmp_path,
        _WARM,
        ray_cluster.address,
        budget={"max_trials": 2, "parallel": 1},
        trial={"warm": {"preload": ["no_such_module_for_automl"]}},
    )
    client = Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")
    client.run(f)
    trials = client.trials("exp")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2  # never a failed trial
    for t in trials:
        log = (tmp_path / "runs" / "exp" / t.id / "trial.log").read_text()
        assert "warm start unavailable (preload failed (no_such_module_for_automl" in log
        (seen,) = _warm_lines(tmp_path, t.id)
        assert seen["warm"] is False


def test_cancel_kills_a_warm_trial_and_its_children(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    pids_file = tmp_path / "pids"
    f = spec_file(
        tmp_path,
        TREE,
        ray_cluster.address,
        trial={"env": {"PIDS": str(pids_file)}, "warm": {"preload": ["xml.dom.minidom"]}},
    )
    ex = RayExecutor(load_spec(f), tmp_path / "runs")
    try:
        ex.submit(run(0))
        wait_for(lambda: pids_file.exists() and " " in pids_file.read_text())
        pids = [int(p) for p in pids_file.read_text().split()]
        assert all(alive(p) for p in pids)
        ex.cancel("t0")
        events = collect(ex, {"t0"})["t0"]
    finally:
        ex.close()
    assert events[-1].exit is not None and events[-1].exit.status is ExitStatus.CANCELLED
    wait_for(lambda: not any(alive(p) for p in pids), timeout=15)
