"""Distributed trials under torchrun: the launcher's argv, real DDP from examples/torch-ddp with
metrics from rank 0 only, and every rank killed on stop and on timeout."""

from __future__ import annotations

import os
import signal
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
from trials._launch import PythonCommand, python_command, torchrun_argv

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "torch-ddp"


def test_python_command_forms() -> None:
    assert python_command(["python", "train.py", "--lr", "0.1"]) == PythonCommand(
        "train.py", False, ("--lr", "0.1")
    )
    assert python_command([sys.executable, "-u", "-W", "ignore", "t.py"]) == PythonCommand(
        "t.py", False, ()
    )
    assert python_command(["python3.11", "-m", "pkg.train", "-x"]) == PythonCommand(
        "pkg.train", True, ("-x",)
    )
    assert python_command(["/usr/bin/python3", "-mpkg", "a"]) == PythonCommand("pkg", True, ("a",))
    assert python_command(["./train.py", "a"]) == PythonCommand("./train.py", False, ("a",))
    for not_python in (["bash", "-c", "python t.py"], ["python", "-c", "print(1)"], ["python"]):
        assert python_command(not_python) is None, not_python


def test_torchrun_argv_runs_rank0_output_on_loopback() -> None:
    argv = torchrun_argv(PythonCommand("pkg.train", True, ("--lr", "0.1")), 4, 29517, "py")
    assert argv == [
        "py",
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "4",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        "29517",
        "--local-ranks-filter",
        "0",
        "-m",
        "--",
        "pkg.train",
        "--lr",
        "0.1",
    ]


def ddp_experiment(tmp_path: Path, *, trials: int, epochs: int, parallel: int = 1) -> Path:
    doc = yaml.safe_load((EXAMPLE / "experiment.yaml").read_text())
    doc["budget"].update(max_trials=trials, parallel=parallel, max_failed=trials)
    doc["trial"]["workdir"] = str(EXAMPLE)
    cmd = doc["trial"]["command"]
    cmd[cmd.index("--epochs") + 1] = str(epochs)
    f = tmp_path / "ddp.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


def check_ddp_run(tmp_path: Path, client: Client, trials: int, epochs: int) -> None:
    exp = client.get("torch-ddp-digits")
    assert exp.state is ExperimentState.SUCCEEDED, exp.message
    done = client.trials(exp.name)
    assert [t.state for t in done] == [TrialState.SUCCEEDED] * trials, [t.message for t in done]
    obs = client.observations(exp.name)
    for t in done:
        mine = [o for o in obs if o.trial_id == t.id and o.metric == "accuracy"]
        # Both ranks compute; only rank 0 reports, once per epoch.
        assert sorted(o.step for o in mine) == list(range(1, epochs + 1))
        assert 0.0 < t.value <= 1.0  # type: ignore[operator]
        log = (tmp_path / "runs" / exp.name / t.id / "trial.log").read_text()
        assert "torch.distributed.run" in log and "--nproc-per-node 2" in log
        assert "world_size=2 backend=gloo" in log  # really 2 processes, one process group
        # Rank 1's output never reaches the log: each epoch line appears once.
        assert sum(1 for line in log.splitlines() if line.startswith("epoch=")) == epochs


def test_ddp_example_two_processes_observed_from_rank0(tmp_path: Path) -> None:
    f = ddp_experiment(tmp_path, trials=1, epochs=2)
    client = Client(f"sqlite:///{tmp_path / 's.db'}", runs_dir=tmp_path / "runs")
    client.run(f)
    check_ddp_run(tmp_path, client, trials=1, epochs=2)


@pytest.mark.slow
def test_ddp_example_two_trials(tmp_path: Path) -> None:
    f = ddp_experiment(tmp_path, trials=2, epochs=1, parallel=2)
    client = Client(f"sqlite:///{tmp_path / 's.db'}", runs_dir=tmp_path / "runs")
    client.run(f)
    check_ddp_run(tmp_path, client, trials=2, epochs=1)


# -- every rank dies ---------------------------------------------------------------------------
RANK_SCRIPT = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only a kill of the rank's own group ends it
with open(os.path.join(sys.argv[1], "rank%s.pid" % os.environ["RANK"]), "w") as f:
    f.write(str(os.getpid()))
print("rank %s up" % os.environ["RANK"], flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def rank_pids(out: Path, n: int = 2, timeout: float = 60.0) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        files = sorted(out.glob("rank*.pid"))
        if len(files) == n and all(p.read_text() for p in files):
            return [int(p.read_text()) for p in files]
        time.sleep(0.1)
    raise AssertionError(f"ranks did not start: {list(out.iterdir())}")


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def rank_spec(tmp_path: Path, **trial: Any) -> Any:
    (tmp_path / "ranks.py").write_text(RANK_SCRIPT)
    out = tmp_path / "pids"
    out.mkdir()
    doc = {
        "name": "ranks",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 1},
        "trial": {
            "command": ["python", "ranks.py", str(out)],
            "resources": {"processes_per_worker": 2},
            **trial,
        },
    }
    f = tmp_path / "ranks.yaml"
    f.write_text(yaml.safe_dump(doc))
    return f, out


# In the default run (~5 s: torchrun's start): the one proof that a stop kills every rank.
# The timeout variant below stays slow, since it needs a trial timeout long enough for both
# ranks to start first.
def test_cancelled_torchrun_trial_leaves_no_rank_alive(tmp_path: Path) -> None:
    f, out = rank_spec(tmp_path)
    ex = LocalProcessExecutor(load_spec(f), tmp_path / "runs")
    try:
        ex.submit(TrialRun("t", "ranks", 0, {"x": 0.5}))
        pids = rank_pids(out)
        assert all(alive(p) for p in pids)
        ex.cancel("t")  # what a user stop and an early stop do
        events: list[TrialEvent] = []
        end = time.monotonic() + 20
        while not any(e.exit for e in events) and time.monotonic() < end:
            events += ex.poll(0.2)
        assert [e.exit.status for e in events if e.exit] == [ExitStatus.CANCELLED]
        assert wait_gone(pids) == []
    finally:
        ex.close()
        for p in (int(x.read_text()) for x in out.glob("rank*.pid")):
            if alive(p):
                os.kill(p, signal.SIGKILL)


@pytest.mark.slow
def test_timed_out_torchrun_trial_leaves_no_rank_alive(tmp_path: Path) -> None:
    f, out = rank_spec(tmp_path, timeout=20)
    client = Client(f"sqlite:///{tmp_path / 's.db'}", runs_dir=tmp_path / "runs")
    client.run(f)
    (trial,) = client.trials("ranks")
    assert trial.state is TrialState.FAILED and "timeout" in trial.message
    pids = [int(p.read_text()) for p in out.glob("rank*.pid")]
    assert len(pids) == 2  # both ranks had started
    assert wait_gone(pids) == []
    log = (tmp_path / "runs" / "ranks" / trial.id / "trial.log").read_text()
    assert "rank 0 up" in log and "rank 1 up" not in log


@pytest.mark.slow
def test_python_module_form_runs_under_torchrun(tmp_path: Path) -> None:
    pkg = tmp_path / "mytrain"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text(
        "import os, sys\n"
        "import automl\n"
        "automl.report(loss=float(sys.argv[1]) + int(os.environ['RANK']))\n"
        "print('world=' + os.environ['WORLD_SIZE'])\n"
    )
    doc = {
        "name": "module",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 1},
        "metrics": {"collector": "push"},
        "trial": {
            "command": ["python", "-m", "mytrain.main", "${x}"],
            "resources": {"processes_per_worker": 2},
        },
    }
    f = tmp_path / "m.yaml"
    f.write_text(yaml.safe_dump(doc))
    client = Client(f"sqlite:///{tmp_path / 's.db'}", runs_dir=tmp_path / "runs")
    client.run(f)
    (trial,) = client.trials("module")
    assert trial.state is TrialState.SUCCEEDED, trial.message
    # Rank 1 reported loss + 1; only rank 0's value is observed.
    assert [o.value for o in client.observations("module")] == [trial.params["x"]]
