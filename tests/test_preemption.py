"""Preemption is not failure: a trial killed from outside by SIGTERM ends Preempted, runs again
with the same parameters as a new trial, and resumes from its checkpoint (AUTOML_CHECKPOINT_DIR).
Real `automl run` processes, real trial subprocesses, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl import Client
from automl.core import ExperimentState, TrialState

pytestmark = pytest.mark.integration

# Six steps of work; after each, the step reached is written to the checkpoint. The first run
# waits after step 3 for the test's SIGTERM; a rerun starts from the checkpoint it finds.
TRAINER = """
import os, sys, time
ckpt = os.environ["AUTOML_CHECKPOINT_DIR"]
os.makedirs(ckpt, exist_ok=True)
state = os.path.join(ckpt, "step")
start = int(open(state).read()) if os.path.exists(state) else 0
trial = os.environ["AUTOML_TRIAL_NAME"]
here = os.path.dirname(os.path.abspath(__file__))

def log(msg):
    with open(os.path.join(here, "ledger"), "a") as fh:
        fh.write(f"{trial} {msg}\\n")

log(f"start {start}")
x = float(sys.argv[1])
for step in range(start, 6):
    tmp = state + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(str(step + 1))
    os.replace(tmp, state)
    log(f"step {step + 1}")
    if step + 1 == 3 and start == 0:
        with open(os.path.join(here, "checkpointed"), "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(120)  # the test sends SIGTERM here
print(f"loss={x + 1.0}", flush=True)
"""


def experiment(tmp_path: Path, name: str, **executor: Any) -> Path:
    (tmp_path / "trainer.py").write_text(TRAINER)
    doc = {
        "name": name,
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "seed": 0,
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 1, "max_failed": 1},
        "trial": {"command": ["python", "trainer.py", "${x}"], "workdir": str(tmp_path)},
        "executor": {"kind": "local", **executor},
    }
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


def run_and_preempt(tmp_path: Path, url: str, file: Path, rc: int = 0) -> None:
    """`automl run` the file; SIGTERM the trial process once it has checkpointed step 3."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "automl",
            "run",
            str(file),
            "--store",
            url,
            "--no-progress",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        marker = tmp_path / "checkpointed"
        end = time.monotonic() + 120
        while not (marker.exists() and marker.read_text()):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < end, "the trial never checkpointed step 3"
            time.sleep(0.05)
        os.kill(int(marker.read_text()), signal.SIGTERM)  # from outside: a spot VM going away
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == rc, out


def test_a_sigtermed_trial_is_preempted_and_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    run_and_preempt(tmp_path, url, experiment(tmp_path, "spot"))
    client = Client(url)
    exp = client.get("spot")
    trials = client.trials("spot")
    assert exp.state is ExperimentState.SUCCEEDED, exp.message
    assert exp.reason == "ExperimentMaxTrialsReached"  # the preempted trial does not count
    assert [t.state for t in trials] == [TrialState.PREEMPTED, TrialState.SUCCEEDED]
    assert [t.number for t in trials] == [0, 1]
    first, second = trials
    assert "SIGTERM" in first.message
    assert second.params == first.params
    assert second.attrs["resumes"] == first.id and second.attrs["preemptions"] == 1
    # maxFailedTrialCount 1 was not reached: a preemption is not a failure.
    # The trial's own ledger: the rerun started from the checkpoint at step 3.
    ledger = (tmp_path / "ledger").read_text().splitlines()
    assert ledger == [
        f"{first.id} start 0",
        f"{first.id} step 1",
        f"{first.id} step 2",
        f"{first.id} step 3",
        f"{second.id} start 3",
        f"{second.id} step 4",
        f"{second.id} step 5",
        f"{second.id} step 6",
    ]
    assert second.value == pytest.approx(float(first.params["x"]) + 1.0)  # type: ignore[arg-type]
    # `automl show` names the state.
    shown = subprocess.run(
        [sys.executable, "-m", "automl", "show", "spot", "--store", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Preempted" in shown


def test_preemptions_past_max_preemptions_fail_the_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    run_and_preempt(tmp_path, url, experiment(tmp_path, "fragile", max_preemptions=0), rc=1)
    client = Client(url)
    trials = client.trials("fragile")
    assert [t.state for t in trials] == [TrialState.FAILED]
    assert "preempted 1 times (executor.max_preemptions is 0)" in trials[0].message
    assert client.get("fragile").state is ExperimentState.FAILED  # max_failed 1


def test_max_preemptions_must_not_be_negative(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "automl",
            "validate",
            str(experiment(tmp_path, "neg", max_preemptions=-1)),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "executor.max_preemptions: must be 0 or more; got -1" in r.stdout + r.stderr


def test_an_evicted_kubernetes_pod_counts_as_preempted() -> None:
    """The Kubernetes executor reads the Job's failure condition; an eviction is a preemption."""
    from trials._k8s_watch import evicted

    assert evicted(
        {
            "reason": "PodFailurePolicy",
            "message": "Pod default/t-0 has condition DisruptionTarget matching FailJob rule",
        }
    )
    assert evicted({"reason": "Evicted", "message": "The node was low on resource: memory."})
    assert evicted(
        {"reason": "BackoffLimitExceeded", "message": "pod preempted by a higher-priority pod"}
    )
    assert not evicted(
        {
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
        }
    )
    assert not evicted(None)
