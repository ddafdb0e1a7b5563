"""``automl worker``: claim queued experiments, run their controllers, renew the lease.

A worker registers in the store and renews its lease (its row's heartbeat) every few seconds.
Each loop it claims at most one experiment (so several workers interleave fairly over the
queue, highest ``priority`` first, then oldest) while it runs fewer than ``max_experiments`` and
has a free trial slot (a full worker still takes over experiments that were Running under a dead
worker: their trials run unwatched until someone adopts them), and runs it in a child process
through the public resume path (:mod:`automl.service._job`). Trial slots are the machine's CPU
count by default; an experiment takes ``parallelTrialCount`` of them when its trials run locally
and none when they run on Ray or Kubernetes. A worker whose lease lapses (SIGKILL, a lost
machine) loses its experiments; the next worker to claim one takes it over.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from automl.core import ExecutorKind, ExperimentState
from automl.errors import AutoMLError, StorageError
from automl.service._job import EXIT_BUSY, EXIT_REQUEUED
from automl.service._raylocal import LocalRayCluster
from automl.store import Store
from automl.store._queue import LEASE_S, QueueRepository, worker_id

__all__ = ["Worker"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


@dataclass
class _Job:
    experiment_id: str
    name: str
    slots: int
    proc: subprocess.Popen[bytes]
    log: Path


class Worker:
    """Claims and runs queued experiments until stopped.

    Args:
        store: Store URL shared with the server and the other workers.
        max_experiments: Experiments run at once.
        trial_slots: Local trial slots (default: the CPU count).
        lease_s: A worker that has not renewed for this long loses its experiments.
        runs_dir: Where trials keep their files.
        poll_s: Pause between looks at an empty queue.
        echo: Where progress lines go.

    Raises:
        StorageError: The store cannot be reached.
    """

    def __init__(
        self,
        store: str,
        *,
        max_experiments: int = 4,
        trial_slots: int | None = None,
        lease_s: float = LEASE_S,
        runs_dir: str | Path = "automl-runs",
        poll_s: float = 0.5,
        echo: object = None,
    ) -> None:
        self.store_url = store
        self.store = Store(store)
        self.queue = QueueRepository(self.store)
        self.id = worker_id()
        self.max_experiments = max_experiments
        self.trial_slots = trial_slots or os.cpu_count() or 1
        self.lease_s = lease_s
        self.runs_dir = Path(runs_dir)
        self.poll_s = poll_s
        self._echo = echo if callable(echo) else (lambda line: print(line, flush=True))
        self._jobs: dict[str, _Job] = {}
        # Experiments on Ray with no address share one local cluster for the worker's life.
        self._ray = LocalRayCluster(_die_with_parent if sys.platform.startswith("linux") else None)
        self._stop = threading.Event()
        self._lost = threading.Event()

    def stop(self) -> None:
        """Ask the loop to end (children are interrupted and their experiments re-queued)."""
        self._stop.set()

    def _renew(self) -> None:
        interval = min(5.0, self.lease_s / 6)
        while not self._stop.wait(interval):
            try:
                if not self.queue.renew(self.id):
                    self._lost.set()  # retired by someone else: stop claiming
            except AutoMLError:
                continue  # a transient database error; the next renewal may succeed

    def run(self) -> int:
        """Claim and run experiments until :meth:`stop` (or SIGTERM/SIGINT); the exit code."""
        self.queue.register(self.id, self.max_experiments)
        self._echo(
            f"automl worker {self.id}: store {self.store.display_url}, "
            f"{self.max_experiments} experiments, {self.trial_slots} trial slots, "
            f"lease {self.lease_s:g} s"
        )
        renew = threading.Thread(target=self._renew, name="automl-worker-lease", daemon=True)
        renew.start()
        try:
            while not self._stop.is_set() and not self._lost.is_set():
                self._reap()
                claimed = False
                try:
                    # A full worker still takes over orphans: their trials run unwatched.
                    claimed = self._claim_one(orphans_only=not self._room())
                except StorageError as exc:
                    self._echo(f"store error while claiming: {exc}")
                if not claimed:
                    self._stop.wait(self.poll_s)
        finally:
            self._shutdown()
        return 0

    def _used_slots(self) -> int:
        return sum(j.slots for j in self._jobs.values())

    def _room(self) -> bool:
        if len(self._jobs) >= self.max_experiments:
            return False
        return not self._jobs or self._used_slots() < self.trial_slots

    def _claim_one(self, orphans_only: bool = False) -> bool:
        claims = self.queue.claim(self.id, 1, self.lease_s, orphans_only=orphans_only)
        for c in claims:
            exp = self.store.experiments.get(c.name)
            local = exp.spec.executor.kind is ExecutorKind.LOCAL
            slots = exp.spec.parallel_trial_count if local else 0
            env = None
            if exp.spec.executor.kind is ExecutorKind.RAY and not exp.spec.executor.address:
                try:
                    started = self._ray.address is None
                    env = self._ray.env()
                    if started:
                        self._echo(f"started a local Ray cluster at {self._ray.address}")
                except AutoMLError as exc:  # the controller says why, in the experiment
                    self._echo(f"{c.name}: {exc}")
            self._start(c.experiment_id, c.name, slots, env)
            what = f"took over {c.name} from {c.previous}" if c.took_over else f"claimed {c.name}"
            self._echo(f"{what} ({exp.state.value}, priority {self.queue.info(exp.id).priority})")
        return bool(claims)

    def _start(
        self, experiment_id: str, name: str, slots: int, env: dict[str, str] | None = None
    ) -> None:
        logs = self.runs_dir / name
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / "controller.log"
        argv = [
            sys.executable,
            "-m",
            "automl.service._job",
            name,
            "--store",
            self.store_url,
            "--worker",
            self.id,
            "--runs-dir",
            str(self.runs_dir),
        ]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env} if env else None,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        self._jobs[experiment_id] = _Job(experiment_id, name, slots, proc, log)

    def _reap(self) -> None:
        for eid, job in list(self._jobs.items()):
            code = job.proc.poll()
            if code is None:
                continue
            del self._jobs[eid]
            self._finished(job, code)

    def _finished(self, job: _Job, code: int) -> None:
        try:
            if code == 0:
                exp = self.store.experiments.get(job.name)
                self._echo(f"{job.name}: {exp.state.value} ({exp.reason})")
                if not exp.state.is_terminal:
                    self.queue.release(self.id, job.experiment_id)
                return
            if code in (EXIT_BUSY, EXIT_REQUEUED):
                self.queue.release(self.id, job.experiment_id)
                self._echo(f"{job.name}: released (exit {code})")
                return
            # The controller process failed: say why where everyone looks, and let go.
            tail = _tail(job.log)
            exp = self.store.experiments.get(job.name)
            if not exp.state.is_terminal:
                self.store.experiments.update(
                    job.experiment_id,
                    state=ExperimentState.FAILED,
                    reason="ControllerFailed",
                    message=f"its controller exited with code {code}: {tail}",
                    finished_at=time.time(),
                    controller=None,
                    heartbeat_at=None,
                )
            self.queue.release(self.id, job.experiment_id)
            self._echo(f"{job.name}: controller exited with code {code}: {tail}")
        except AutoMLError as exc:  # the experiment was deleted meanwhile, or a database blip
            self._echo(f"{job.name}: {exc}")

    def _shutdown(self) -> None:
        for job in self._jobs.values():
            with contextlib.suppress(ProcessLookupError):
                job.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for job in self._jobs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                job.proc.wait(max(0.1, deadline - time.monotonic()))
        self._reap()
        self._ray.stop()
        with contextlib.suppress(AutoMLError):
            self.queue.retire(self.id)
        self.store.close()


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1][:500] if lines else "no output"
