"""Controller workers: atomic claims, one run per experiment, takeover after SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from automl.core import ExperimentState, TrialState
from automl.spec import parse_spec
from automl.store import Store
from automl.store._queue import QueueRepository
from tests.service.conftest import PY, REPO, Procs, spec_text, wait_for

_CLAIMER = """
import json, os, sys, time
from automl.store import Store
from automl.store._queue import QueueRepository
url, wid, go = sys.argv[1:4]
q = QueueRepository(Store(url))
q.register(wid, 1000)
while not os.path.exists(go):
    time.sleep(0.01)
got = []
while True:
    claims = q.claim(wid, 1, 30)
    if not claims:
        break
    got += [c.name for c in claims]
print(json.dumps(got))
"""


def test_claims_are_atomic(store_url: str, tmp_path: Path) -> None:
    """Two processes race over one queue: every experiment is claimed by exactly one."""
    store = Store(store_url)
    queue = QueueRepository(store)
    names = [f"q{i:02d}" for i in range(30)]
    for i, name in enumerate(names):
        queue.submit(parse_spec(spec_text(name)), priority=i % 3)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    racers = [
        subprocess.Popen(
            [PY, "-c", _CLAIMER, store_url, f"host:{n}:w", str(go)],
            stdout=subprocess.PIPE,
            env=env,
        )
        for n in (1, 2)
    ]
    time.sleep(0.5)
    go.touch()
    got = [json.loads(p.communicate(timeout=120)[0]) for p in racers]
    assert sorted(got[0] + got[1]) == names  # complete, and no experiment twice
    assert not set(got[0]) & set(got[1])
    # Highest priority first within each claimer's share.
    prio = {n: i % 3 for i, n in enumerate(names)}
    for share in got:
        assert [prio[n] for n in share] == sorted((prio[n] for n in share), reverse=True)
    # A fresh lease keeps them: nothing is claimable again.
    assert queue.claim("host:3:w", 100) == []
    store.close()


def _ledger(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_two_workers_run_each_experiment_once(
    store_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    store = Store(store_url)
    queue = QueueRepository(store)
    names = [f"e{i}" for i in range(4)]
    for name in names:
        queue.submit(parse_spec(spec_text(name, trials=2, ledger=ledger)))
    procs.worker(store_url, "--max-experiments", "2")
    procs.worker(store_url, "--max-experiments", "2")

    def done() -> bool:
        return all(store.experiments.get(n).state.is_terminal for n in names)

    wait_for(done, 180, "every experiment to end")
    trials = [t for n in names for t in store.trials.list(store.experiments.get(n).id)]
    assert all(store.experiments.get(n).state is ExperimentState.SUCCEEDED for n in names)
    assert len(trials) == 8 and all(t.state is TrialState.SUCCEEDED for t in trials)
    runs = _ledger(ledger)
    assert sorted(runs) == sorted(t.id for t in trials)
    assert set(runs.values()) == {1}
    assert all(queue.info(store.experiments.get(n).id).takeovers == 0 for n in names)
    store.close()


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_takeover_after_sigkill_adopts_running_trials(
    store_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    store = Store(store_url)
    queue = QueueRepository(store)
    queue.submit(parse_spec(spec_text("survivor", trials=3, parallel=2, sleep=4, ledger=ledger)))
    first = procs.worker(store_url)
    exp = wait_for(lambda: _running(store, "survivor"), 120, "trials to run")
    wait_for(lambda: len(_ledger(ledger)) >= 2, 60, "trials to start")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    killed_at = time.time()
    procs.worker(store_url)
    wait_for(lambda: store.experiments.get("survivor").state.is_terminal, 180, "the takeover")
    final = store.experiments.get("survivor")
    trials = store.trials.list(exp.id)
    assert final.state is ExperimentState.SUCCEEDED, final.message
    assert queue.info(exp.id).takeovers == 1
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 3
    # Adopted, never re-run: every trial started once and kept its first attempt.
    assert set(_ledger(ledger).values()) == {1}, _ledger(ledger)
    assert [t.attempt for t in trials] == [1, 1, 1]
    assert final.started_at is not None and final.finished_at > killed_at
    store.close()


def _running(store: Store, name: str) -> object:
    try:
        exp = store.experiments.get(name)
    except Exception:
        return None
    trials = store.trials.list(exp.id)
    return exp if sum(t.state is TrialState.RUNNING for t in trials) >= 2 else None


def test_worker_on_an_unreachable_store_exits_2_with_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [PY, "-m", "automl", "worker", "--store", "postgresql://nobody@127.0.0.1:9/none"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach store postgresql")


def test_a_lapsed_lease_frees_its_experiments_and_full_workers_take_only_orphans(
    sqlite_url: str,
) -> None:
    from automl.store import _schema as S

    store = Store(sqlite_url)
    queue = QueueRepository(store)
    for name in ("running", "waiting", "other"):
        queue.submit(parse_spec(spec_text(name)))
    queue.register("h:1:dead", 4)
    queue.register("h:2:live", 4)
    got = {c.name for c in queue.claim("h:1:dead", 2, lease_s=30)}
    assert got == {"running", "waiting"}
    store.experiments.update(store.experiments.get("running").id, state=ExperimentState.RUNNING)
    assert queue.claim("h:2:live", 5, lease_s=30, orphans_only=True) == []  # lease is fresh
    with store.begin() as c:  # the dead worker's last renewal was a minute ago
        c.execute(
            S.workers.update()
            .where(S.workers.c.id == "h:1:dead")
            .values(heartbeat_at=time.time() - 60)
        )
    orphans = queue.claim("h:2:live", 5, lease_s=30, orphans_only=True)
    assert [(c.name, c.took_over, c.previous) for c in orphans] == [("running", True, "h:1:dead")]
    rest = {c.name: c.took_over for c in queue.claim("h:2:live", 5, lease_s=30)}
    assert rest == {"waiting": True, "other": False}
    assert queue.info(store.experiments.get("running").id).takeovers == 1
    assert [w.id for w in queue.workers()] == ["h:2:live"]
    store.close()


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_a_stop_sent_while_a_worker_starts_an_experiment_is_kept(
    store_url: str, tmp_path: Path
) -> None:
    """A stop that lands between a worker's claim and its controller's lease still stops it."""
    from automl._runner import run_experiment
    from automl.errors import ExperimentBusyError

    ledger = tmp_path / "ledger"
    store = Store(store_url)
    queue = QueueRepository(store)
    queue.submit(parse_spec(spec_text("racy", trials=2, ledger=ledger)))
    queue.register("host:1:w", 10)
    assert [c.name for c in queue.claim("host:1:w", 1, 30)] == ["racy"]
    exp = store.experiments.get("racy")
    store.experiments.update(exp.id, stop_requested=True)  # what `automl stop` writes first
    job = subprocess.run(
        [
            PY,
            "-m",
            "automl.service._job",
            "racy",
            "--store",
            store_url,
            "--worker",
            "host:1:w",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert job.returncode == 0, job.stderr
    exp = store.experiments.get("racy")
    assert exp.state is ExperimentState.STOPPED and exp.reason == "ExperimentStopped"
    assert store.trials.list(exp.id) == [] and not ledger.exists()  # no trial ran

    # An experiment stopped outright before the worker's controller takes the lease: the
    # worker's claim (keep_stop) refuses it, so it is not run again as a plain resume would.
    queue.submit(parse_spec(spec_text("late", trials=2, ledger=ledger)))
    late = store.experiments.get("late")
    store.experiments.update(late.id, state=ExperimentState.STOPPED, reason="ExperimentStopped")
    with pytest.raises(ExperimentBusyError):
        run_experiment(store, store.experiments.get("late"), runs_dir=tmp_path, keep_stop=True)
    assert store.experiments.get("late").state is ExperimentState.STOPPED
    assert store.trials.list(late.id) == [] and not ledger.exists()
    store.close()


@pytest.mark.timeout(300)
def test_a_worker_runs_its_ray_experiments_on_one_local_cluster(
    procs: Procs, tmp_path: Path
) -> None:
    """Experiments on Ray with no address share the worker's one local cluster (started once,
    on 127.0.0.1, gone with the worker), instead of a cluster start per experiment."""
    import psutil

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    queue = QueueRepository(store)
    names = ["ray-a", "ray-b"]
    for name in names:
        queue.submit(parse_spec(spec_text(name, trials=2, extra="executor: {kind: ray}")))
    worker = procs.worker(url, "--max-experiments", "2")

    def done() -> bool:
        return all(store.experiments.get(n).state.is_terminal for n in names)

    wait_for(done, 240, "both Ray experiments to end")
    trials = [t for n in names for t in store.trials.list(store.experiments.get(n).id)]
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 4, [t.message for t in trials]
    nodes = set()
    for n in names:
        for t in store.trials.list(store.experiments.get(n).id):
            log = (tmp_path / "runs" / n / t.id / "trial.log").read_text()
            nodes |= set(re.findall(r"running on node 127\.0\.0\.1 \((\w+)\)", log))
    assert len(nodes) == 1  # every trial of both experiments ran on the one cluster's node

    def cmdline(p: psutil.Process) -> str:
        try:  # a controller process that just ended may be a zombie until the worker reaps it
            return " ".join(p.cmdline())
        except psutil.Error:
            return ""

    worker_proc = psutil.Process(worker.pid)
    drivers = [p for p in worker_proc.children() if "ray.init(" in cmdline(p)]
    assert len(drivers) == 1  # one cluster for the worker, not one per experiment
    worker.send_signal(signal.SIGTERM)
    out = worker.communicate(timeout=60)[0].decode()
    assert out.count("started a local Ray cluster at 127.0.0.1:") == 1, out
    assert not drivers[0].is_running() or drivers[0].status() == psutil.STATUS_ZOMBIE
    store.close()


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_an_orphan_goes_to_a_worker_on_its_host_first(store_url: str) -> None:
    """Local trials can be adopted only on their own host: a dead worker's experiment waits one
    more lease for a worker there before a worker elsewhere takes it (and reruns its trials)."""
    import sqlalchemy as sa

    from automl.store import _schema as S

    store = Store(store_url)
    queue = QueueRepository(store)
    queue.submit(parse_spec(spec_text("orphan")))
    queue.register("hosta:1:dead", 4)
    assert [c.name for c in queue.claim("hosta:1:dead", 1, 30)] == ["orphan"]
    exp = store.experiments.get("orphan")
    now = time.time()

    def silent_for(seconds: float) -> None:
        """The worker's lease and its controller's heartbeat stopped ``seconds`` ago."""
        with store.begin() as c:
            c.execute(S.workers.update().values(heartbeat_at=now - 100))
            c.execute(
                S.experiments.update()
                .where(S.experiments.c.id == exp.id)
                .values(
                    worker="hosta:1:dead",
                    state="Running",
                    controller="hosta:1:ctl",
                    heartbeat_at=now - seconds,
                )
            )

    silent_for(40)  # past the 30 s lease, within the second one
    queue.register("hostb:2:other", 4)
    assert queue.claim("hostb:2:other", 1, 30) == []  # waits for hosta's workers
    queue.register("hosta:3:same", 4)
    got = queue.claim("hosta:3:same", 1, 30)
    assert [(c.name, c.took_over) for c in got] == [("orphan", True)]

    silent_for(70)  # no worker on hosta took it within two leases: anyone may
    got = queue.claim("hostb:2:other", 1, 30)
    assert [c.name for c in got] == ["orphan"]
    with store.begin() as c:  # the compare-and-swap saw the same rule
        assert c.execute(sa.select(S.experiments.c.worker)).scalar() == "hostb:2:other"
    store.close()
