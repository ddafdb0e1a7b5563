"""Durability: a controller killed with SIGKILL mid-run is replaced by ``automl resume``, which
keeps every finished trial, adopts the trials the dead controller left running (they finish
once, never run again), runs again only a trial whose fate cannot be known, and continues the
seeded search without replaying its draws. ``benchmarks/exactly_once.py`` (and
``tests/test_exactly_once.py``) kill controllers at random moments and count executions."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl.core import ExperimentState, TrialState
from automl.store import Store

pytestmark = pytest.mark.integration

AUTOML = [sys.executable, "-m", "automl"]

# Trials sleep for as long as sleep.txt (next to the spec, their working directory) says, so a
# test can make the first run's trials long and the resumed ones short.
TRIAL = """
import os, sys, time
x = float(sys.argv[1].split("=", 1)[1])
y = int(sys.argv[2].split("=", 1)[1])
with open("ledger", "a") as fh:
    fh.write(f"start {sys.argv[1]} {os.getpid()}\\n")
if os.path.exists("hold"):  # trials that outlive their controller until the test lets them go
    while not (os.path.exists("go") and open("go").read() in ("", sys.argv[1])):
        time.sleep(0.02)
time.sleep(float(open("sleep.txt").read()))
print(f"epoch=1 loss={(x - 0.2) ** 2 + y / 100}", flush=True)
with open("ledger", "a") as fh:
    fh.write(f"done {sys.argv[1]} {os.getpid()}\\n")
"""


def ledger(tmp_path: Path, what: str) -> list[tuple[str, int]]:
    path = tmp_path / "ledger"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(p[1], int(p[2])) for p in (line.split() for line in lines) if p[0] == what]


def write_exp(
    tmp_path: Path,
    name: str,
    *,
    max_trials: int,
    parallel: int,
    sleep: float,
    algorithm: str = "random",
) -> Path:
    (tmp_path / "trial.py").write_text(TRIAL)
    (tmp_path / "sleep.txt").write_text(str(sleep))
    doc = {
        "name": name,
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": algorithm,
        "seed": 7,
        "parameters": {
            "x": {"type": "double", "min": -1, "max": 1},
            "y": {"type": "int", "min": 0, "max": 1000},
        },
        "budget": {"max_trials": max_trials, "parallel": parallel},
        "trial": {"command": ["python", "trial.py", "--x=${x}", "--y=${y}"]},
    }
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


def start_run(tmp_path: Path, f: Path, url: str) -> subprocess.Popen[bytes]:
    """Start ``automl run`` as its own process (output in run.out)."""
    with open(tmp_path / "run.out", "wb") as out:  # the child keeps its own copy of the fd
        return subprocess.Popen(
            [
                *AUTOML,
                "run",
                str(f),
                "--store",
                url,
                "--no-progress",
                "--runs-dir",
                str(tmp_path / "runs"),
            ],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(cond: Any, proc: subprocess.Popen[bytes], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        if proc.poll() is not None:
            raise AssertionError(f"controller exited ({proc.returncode}) before {what}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def wait_until(cond: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if v := cond():
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.mark.timeout(120)
def test_sigkill_then_resume(tmp_path: Path) -> None:
    name = "durable"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    f = write_exp(tmp_path, name, max_trials=12, parallel=2, sleep=0.4)
    proc = start_run(tmp_path, f, url)
    store = Store(url)
    try:
        exp = wait_for(
            lambda: next((e for e in store.experiments.list() if e.name == name), None),
            proc,
            30,
            "the experiment",
        )

        def ready() -> bool:
            ts = store.trials.list(exp.id)
            return sum(t.state is TrialState.SUCCEEDED for t in ts) >= 4 and any(
                t.state.is_active for t in ts
            )

        wait_for(ready, proc, 60, "4 succeeded trials")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL

        before = {t.id: t for t in store.trials.list(exp.id)}
        runners = store.trials.runners(exp.id)
        e = store.experiments.get(name)
        assert e.state is ExperimentState.RUNNING  # nobody recorded an end
        assert e.controller is not None  # the dead controller's lease is still there
        succeeded = {i: t for i, t in before.items() if t.state is TrialState.SUCCEEDED}
        interrupted = {i: t for i, t in before.items() if t.state.is_active}
        assert len(succeeded) >= 4
        assert interrupted, "the kill landed between trials; nothing was interrupted"
        orphan_pids = [r["pid"] for r in runners.values() if r.get("pid")]

        t0 = time.monotonic()
        res = subprocess.run(
            [
                *AUTOML,
                "resume",
                name,
                "--store",
                url,
                "--no-progress",
                "--runs-dir",
                str(tmp_path / "runs"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert "Traceback" not in res.stderr
        assert time.monotonic() - t0 < 60

        e = store.experiments.get(name)
        assert e.state is ExperimentState.SUCCEEDED
        assert e.reason == "ExperimentMaxTrialsReached"
        assert e.controller is None
        after = store.trials.list(exp.id)
        ids = [t.id for t in after]
        assert len(ids) == len(set(ids)), "a trial id appears twice"
        assert len(after) == 12
        assert all(not t.state.is_active for t in after)
        assert sorted(t.number for t in after) == list(range(12))
        by_id = {t.id: t for t in after}

        # Finished trials are kept as they were.
        for i, old in succeeded.items():
            new = by_id[i]
            assert new.state is TrialState.SUCCEEDED
            assert (new.params, new.value, new.finished_at, new.number, new.attempt) == (
                old.params,
                old.value,
                old.finished_at,
                old.number,
                old.attempt,
            )
        # Interrupted trials were adopted: same id, same parameters, the first attempt's result.
        for i, old in interrupted.items():
            new = by_id[i]
            assert new.state is TrialState.SUCCEEDED, new.message
            assert new.params == old.params
            assert new.attempt == 1
            assert new.number == old.number
            assert new.value == pytest.approx((new.params["x"] - 0.2) ** 2 + new.params["y"] / 100)
            assert Path(new.workdir or "", "trial.log").exists()
        assert all(t.attempt == 1 for t in after)
        # Every trial ran to its end exactly once, by the trials' own ledger.
        done = [x for x, _ in ledger(tmp_path, "done")]
        assert sorted(done) == sorted(set(done)) and len(done) == 12
        assert len(ledger(tmp_path, "start")) == 12
        # The seeded sampler continued instead of replaying its draws.
        params = [json.dumps(t.params, sort_keys=True) for t in after]
        assert len(set(params)) == len(params), "two trials share parameters"
        # One observation per finished attempt: the lost attempts' partial data is gone.
        for t in after:
            obs = store.observations.list(t.id)
            assert [(o.metric, o.step) for o in obs] == [("loss", 1)]
        # Nothing the dead controller started still runs: resume followed them to their end.
        assert [p for p in orphan_pids if alive(p)] == []
    finally:
        kill_group(proc)
        store.close()


@pytest.mark.timeout(90)
def test_resume_while_controller_alive_is_refused_then_stop(tmp_path: Path) -> None:
    name = "alive"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    f = write_exp(tmp_path, name, max_trials=6, parallel=1, sleep=30)
    proc = start_run(tmp_path, f, url)
    store = Store(url)
    try:

        def running() -> bool:
            es = [e for e in store.experiments.list() if e.name == name]
            return bool(es) and any(r.get("pid") for r in store.trials.runners(es[0].id).values())

        wait_for(running, proc, 30, "a running trial")
        exp = store.experiments.get(name)
        before = store.trials.list(exp.id)

        res = subprocess.run(
            [
                *AUTOML,
                "resume",
                name,
                "--store",
                url,
                "--no-progress",
                "--runs-dir",
                str(tmp_path / "runs2"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 2, res.stdout + res.stderr
        assert "Traceback" not in res.stderr
        assert "is being run by controller" in res.stderr
        assert f"automl stop {name}" in res.stderr
        assert proc.poll() is None  # the live controller was not disturbed
        assert store.trials.list(exp.id) == before
        assert store.experiments.get(name).controller == exp.controller

        # `delete` is refused too while it runs.
        res = subprocess.run(
            [*AUTOML, "delete", name, "--yes", "--store", url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 2 and "stop it first" in res.stderr

        res = subprocess.run(
            [*AUTOML, "stop", name, "--store", url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        assert "stop requested" in res.stdout
        assert proc.wait(30) == 0
        e = store.experiments.get(name)
        assert e.state is ExperimentState.STOPPED and e.reason == "ExperimentStopped"
        assert [t.state for t in store.trials.list(exp.id)] == [TrialState.KILLED]
    finally:
        kill_group(proc)
        store.close()


@pytest.mark.timeout(240)
def test_ctrl_c_then_resume(tmp_path: Path) -> None:
    name = "ctrlc"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    # Trials of the first run sleep long; the resumed ones are quick.
    f = write_exp(tmp_path, name, max_trials=4, parallel=2, sleep=30)
    proc = subprocess.Popen(
        [
            *AUTOML,
            "run",
            str(f),
            "--store",
            url,
            "--no-progress",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    store = Store(url)
    try:

        def two_running() -> bool:
            es = [e for e in store.experiments.list() if e.name == name]
            if not es:
                return False
            ts = store.trials.list(es[0].id)
            runners = store.trials.runners(es[0].id)
            return sum(bool(r.get("pid")) for r in runners.values()) == 2 and len(ts) == 2

        wait_for(two_running, proc, 30, "two running trials")
        exp = store.experiments.get(name)
        before = {t.id: t for t in store.trials.list(exp.id)}
        pids = [r["pid"] for r in store.trials.runners(exp.id).values()]
        os.kill(proc.pid, signal.SIGINT)
        # A generous bound for a loaded CI machine: the interrupt kills two trials (SIGTERM,
        # then SIGKILL after the grace period) and stores them for a new attempt.
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 130, err
        assert b"automl resume ctrlc" in err
        assert b"Traceback" not in err
        e = store.experiments.get(name)
        assert e.state is ExperimentState.STOPPED and e.reason == "Interrupted"
        assert e.controller is None
        mid = store.trials.list(exp.id)
        assert {t.id for t in mid} == set(before)
        assert all(t.state is TrialState.CREATED for t in mid)  # queued to run again
        assert not any(alive(p) for p in pids), "Ctrl-C left trial processes running"

        (tmp_path / "sleep.txt").write_text("0.2")
        res = subprocess.run(
            [
                *AUTOML,
                "resume",
                name,
                "--store",
                url,
                "--no-progress",
                "--json",
                "--runs-dir",
                str(tmp_path / "runs"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["state"] == "Succeeded" and out["reason"] == "ExperimentMaxTrialsReached"
        assert out["trials"] == {"Succeeded": 4}
        after = {t.id: t for t in store.trials.list(exp.id)}
        for i, old in before.items():
            assert after[i].params == old.params
            assert after[i].state is TrialState.SUCCEEDED
    finally:
        kill_group(proc)
        store.close()


def _orphaned_run(tmp_path: Path, name: str, url: str, store: Store) -> tuple[Any, list[int]]:
    """Start a run whose trials wait for a ``go`` file, SIGKILL its controller once two trials
    run, and return the experiment and the pids of the trial supervisors it left behind."""
    f = write_exp(tmp_path, name, max_trials=4, parallel=2, sleep=0.1)
    (tmp_path / "hold").touch()
    proc = start_run(tmp_path, f, url)
    try:

        def two_started() -> bool:
            es = [e for e in store.experiments.list() if e.name == name]
            return (
                bool(es)
                and sum(bool(r.get("pid")) for r in store.trials.runners(es[0].id).values()) == 2
            )

        wait_for(two_started, proc, 30, "two started trials")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        kill_group(proc)
    exp = store.experiments.get(name)
    pids = [r["pid"] for r in store.trials.runners(exp.id).values()]
    assert len(pids) == 2 and all(alive(p) for p in pids)  # orphans, in their own sessions
    end = time.monotonic() + 60
    while len(ledger(tmp_path, "start")) < 2 and time.monotonic() < end:
        time.sleep(0.02)  # the orphans start their Python without a controller
    assert len(ledger(tmp_path, "start")) == 2
    return exp, pids


def _kill_pids(pids: list[int]) -> None:
    for p in pids:
        if alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p, signal.SIGKILL)


def _resume(tmp_path: Path, name: str, url: str) -> subprocess.Popen[bytes]:
    with open(tmp_path / "resume.out", "wb") as out:
        return subprocess.Popen(
            [*AUTOML, "resume", name, "--store", url, "--no-progress", "--runs-dir", "runs"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _lost_run(
    tmp_path: Path, name: str, url: str, store: Store
) -> tuple[Any, list[int], list[str]]:
    """A dead controller's two running trials, killed with their supervisors (no exit status)."""
    exp, pids = _orphaned_run(tmp_path, name, url, store)
    _kill_pids(pids)  # supervisor and trial die together: no exit status is written
    wait_until(lambda: not any(alive(p) for p in pids), 30, "the killed trials' exit")
    lost = sorted(t.id for t in store.trials.list(exp.id) if t.state.is_active)
    assert len(lost) == 2
    return exp, pids, lost


@pytest.mark.timeout(120)
def test_resume_adopts_trials_of_the_dead_controller(tmp_path: Path) -> None:
    name = "orphans"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    pids: list[int] = []
    proc = None
    try:
        exp, pids = _orphaned_run(tmp_path, name, url, store)
        orphans = {x: pid for x, pid in ledger(tmp_path, "start")}
        assert len(orphans) == 2
        proc = _resume(tmp_path, name, url)
        # The new controller holds the lease while the orphans still wait: they were adopted.
        wait_for(
            lambda: (c := store.experiments.get(name).controller) and str(proc.pid) in c,
            proc,
            60,
            "the resumed controller's lease",
        )
        assert all(alive(p) for p in pids)
        (tmp_path / "go").touch()
        assert proc.wait(90) == 0, (tmp_path / "resume.out").read_text()
        trials = store.trials.list(exp.id)
        assert len(trials) == 4 and all(t.state is TrialState.SUCCEEDED for t in trials)
        assert [t.attempt for t in trials] == [1, 1, 1, 1]
        # The orphans themselves finished (same processes); nothing ran twice.
        done = dict(ledger(tmp_path, "done"))
        assert {x: done[x] for x in orphans} == orphans
        assert len(ledger(tmp_path, "start")) == 4 and len(done) == 4
        assert [p for p in pids if alive(p)] == []
    finally:
        if proc is not None:
            kill_group(proc)
        _kill_pids(pids)
        store.close()


@pytest.mark.timeout(120)
def test_resume_reruns_a_trial_whose_fate_is_unknown_keeping_its_log(tmp_path: Path) -> None:
    name = "lost"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    pids: list[int] = []
    try:
        exp, pids, lost = _lost_run(tmp_path, name, url, store)
        (tmp_path / "go").touch()
        proc = _resume(tmp_path, name, url)
        assert proc.wait(90) == 0, (tmp_path / "resume.out").read_text()
        trials = {t.id: t for t in store.trials.list(exp.id)}
        assert all(t.state is TrialState.SUCCEEDED for t in trials.values())
        for i in lost:
            assert trials[i].attempt == 2
            kept = tmp_path / "runs" / name / f"{i}.attempt1" / "trial.log"
            assert kept.exists() and "$ " in kept.read_text()
        assert len(ledger(tmp_path, "done")) == 4
    finally:
        _kill_pids(pids)
        store.close()


@pytest.mark.timeout(120)
def test_resume_runs_a_trial_stored_but_never_started_as_its_first_attempt(
    tmp_path: Path,
) -> None:
    """A controller killed after storing a trial and before starting its supervisor leaves it
    Running with no runner and no directory: nothing of it ran, so it is not a re-run."""
    name = "unstarted"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    pids: list[int] = []
    try:
        exp, pids, (unstarted, other) = _lost_run(tmp_path, name, url, store)
        # What the kill leaves for one of them when it lands before the supervisor starts.
        store.trials.update(unstarted, runner={})
        shutil.rmtree(tmp_path / "runs" / name / unstarted)
        (tmp_path / "go").touch()
        proc = _resume(tmp_path, name, url)
        assert proc.wait(90) == 0, (tmp_path / "resume.out").read_text()
        trials = {t.id: t for t in store.trials.list(exp.id)}
        assert all(t.state is TrialState.SUCCEEDED for t in trials.values())
        assert trials[unstarted].attempt == 1
        assert not (tmp_path / "runs" / name / f"{unstarted}.attempt1").exists()
        assert trials[other].attempt == 2  # it had started: its fate was unknown
    finally:
        _kill_pids(pids)
        store.close()


@pytest.mark.timeout(120)
def test_stop_after_controller_died_keeps_what_finished(tmp_path: Path) -> None:
    """``automl stop`` with no live controller records a trial that finished meanwhile as it
    finished (not Killed), and kills the one still running."""
    name = "stopkeeps"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    pids: list[int] = []
    try:
        exp, pids = _orphaned_run(tmp_path, name, url, store)
        first = ledger(tmp_path, "start")[0][0]
        (tmp_path / "go").write_text(first)  # only this trial may finish
        wait_until(lambda: ledger(tmp_path, "done"), 60, "the released trial's end")
        res = subprocess.run(
            [*AUTOML, "stop", name, "--store", url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        assert store.experiments.get(name).state is ExperimentState.STOPPED
        states = sorted(t.state.value for t in store.trials.list(exp.id))
        assert states == ["Killed", "Succeeded"]
        assert [p for p in pids if alive(p)] == []
    finally:
        _kill_pids(pids)
        store.close()


@pytest.mark.timeout(90)
def test_stop_after_controller_died_ends_its_trials(tmp_path: Path) -> None:
    name = "stopdead"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    pids: list[int] = []
    try:
        exp, pids = _orphaned_run(tmp_path, name, url, store)
        res = subprocess.run(
            [*AUTOML, "stop", name, "--store", url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        assert store.experiments.get(name).state is ExperimentState.STOPPED
        assert [t.state for t in store.trials.list(exp.id) if t.state.is_active] == []
        time.sleep(1)
        assert [p for p in pids if alive(p)] == []
    finally:
        _kill_pids(pids)
        store.close()


ADOPTED = """
import os, sys, time
kind = sys.argv[1]
while not os.path.exists("report"):  # the first line comes once its controller is dead
    time.sleep(0.02)
print(f"epoch=1 loss={100 if kind == 'bad' else 0.1}", flush=True)
time.sleep(300)  # the early stopper or the trial timeout ends it
"""


@pytest.mark.timeout(180)
def test_adopted_trials_are_early_stopped_and_timed_out(tmp_path: Path) -> None:
    """Early stopping and the trial timeout act on trials a dead controller left running: the
    stopper sees the adopted trial's metrics, and the timeout counts from its real start."""
    (tmp_path / "trial.py").write_text(ADOPTED)
    doc = {
        "name": "adopted",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "grid",
        "parameters": {"kind": {"type": "categorical", "values": ["bad", "slow"]}},
        "budget": {"max_trials": 2, "parallel": 2, "max_failed": 2},
        "early_stopping": {"name": "threshold", "settings": {"upper": 10}},
        "trial": {"command": ["python", "trial.py", "${kind}"], "timeout": 20},
    }
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    proc = start_run(tmp_path, f, url)
    store = Store(url)
    pids: list[int] = []
    try:

        def both_started() -> bool:
            es = [e for e in store.experiments.list() if e.name == "adopted"]
            rs = store.trials.runners(es[0].id).values() if es else []
            return sum(bool(r.get("pid")) for r in rs) == 2

        wait_for(both_started, proc, 60, "two started trials")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        exp = store.experiments.get("adopted")
        pids = [r["pid"] for r in store.trials.runners(exp.id).values()]
        started = min(t.started_at or 0 for t in store.trials.list(exp.id))
        (tmp_path / "report").touch()
        res = subprocess.run(
            [*AUTOML, "resume", "adopted", "--store", url, "--no-progress", "--runs-dir", "runs"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        trials = {t.params["kind"]: t for t in store.trials.list(exp.id)}
        assert trials["bad"].state is TrialState.EARLY_STOPPED, trials["bad"].message
        assert trials["bad"].attempt == 1
        slow = trials["slow"]
        assert slow.state is TrialState.FAILED and "trial timeout (20 s)" in slow.message
        assert slow.attempt == 1
        # The timeout counted from the trial's start under the dead controller, not from resume.
        assert slow.finished_at is not None and slow.finished_at - started < 20 + 15
        assert [p for p in pids if alive(p)] == []
    finally:
        kill_group(proc)
        _kill_pids(pids)
        store.close()
