"""The service queue: experiments waiting for a controller worker, and the workers' leases.

An experiment is *queued* when the service owns running it (``automl submit``, the REST API, the
dashboard's Submit): a worker claims it, runs its controller, and holds it while the worker's
lease (its heartbeat row in ``automl_workers``) is fresh. A worker that stops renewing loses every
experiment it held; the next worker to claim one takes it over through the ordinary resume path.

Claims are atomic: on PostgreSQL and MariaDB the candidate rows are locked with
``SELECT ... FOR UPDATE SKIP LOCKED`` (two workers never even look at the same row), on SQLite an
exclusive file lock next to the database serializes claims on the one host that can open it. The
claiming ``UPDATE`` repeats every condition, so a claim is a compare-and-swap on any backend.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from automl.core import ExperimentSpec, ExperimentState
from automl.store import _schema as S

if TYPE_CHECKING:
    from automl.core import ExperimentRecord
    from automl.store._sql import Store

__all__ = ["LEASE_S", "Claim", "QueueInfo", "QueueRepository", "WorkerInfo"]

LEASE_S = 30.0
_ACTIVE = (ExperimentState.CREATED.value, ExperimentState.RUNNING.value)


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """The queue columns of one experiment.

    Attributes:
        queued: The service runs it (a worker claims it and takes it over if its worker dies).
        priority: Higher runs first; equal priorities run oldest first.
        worker: The worker holding it, if any.
        claimed_at: When that worker claimed it.
        takeovers: How many times a worker took it over from a dead one.
    """

    queued: bool
    priority: int
    worker: str | None
    claimed_at: float | None
    takeovers: int


@dataclass(frozen=True, slots=True)
class Claim:
    """An experiment a worker has just claimed.

    Attributes:
        experiment_id: Its id.
        name: Its name.
        took_over: It was held by a worker whose lease lapsed.
        previous: That worker's id (None for a fresh claim).
    """

    experiment_id: str
    name: str
    took_over: bool
    previous: str | None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A controller worker as registered in the store."""

    id: str
    host: str
    pid: int
    max_experiments: int
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    experiments: int = 0


def worker_id() -> str:
    """A new worker id: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


class QueueRepository:
    """Queued experiments, claims and worker leases over one store."""

    def __init__(self, store: Store) -> None:
        self._s = store

    # -- submitting ------------------------------------------------------------------------
    def submit(self, spec: ExperimentSpec, priority: int = 0) -> ExperimentRecord:
        """Store a new experiment already queued (one transaction).

        Raises:
            AlreadyExistsError: The name is taken.
        """
        return self._s.experiments.create(spec, queued=True, priority=int(priority))

    def enqueue(self, experiment_id: str, priority: int | None = None) -> None:
        """Put an existing experiment (back) in the queue, in state Created, held by nobody."""
        values: dict[str, Any] = {
            "queued": True,
            "state": ExperimentState.CREATED.value,
            "reason": "",
            "message": "",
            "worker": None,
            "claimed_at": None,
            "finished_at": None,
            "stop_requested": False,
        }
        if priority is not None:
            values["priority"] = int(priority)
        with self._s.begin() as c:
            c.execute(
                S.experiments.update().where(S.experiments.c.id == experiment_id).values(**values)
            )

    def info(self, experiment_id: str) -> QueueInfo:
        """The queue columns of an experiment (all defaults if it is gone)."""
        e = S.experiments.c
        with self._s.begin() as c:
            row = c.execute(
                sa.select(e.queued, e.priority, e.worker, e.claimed_at, e.takeovers).where(
                    e.id == experiment_id
                )
            ).first()
        if row is None:
            return QueueInfo(False, 0, None, None, 0)
        return QueueInfo(
            bool(row.queued), int(row.priority or 0), row.worker, row.claimed_at, row.takeovers
        )

    # -- workers ---------------------------------------------------------------------------
    def register(self, worker: str, max_experiments: int) -> None:
        """Record a worker and start its lease."""
        host, _, rest = worker.partition(":")
        now = time.time()
        with self._s.begin() as c:
            c.execute(
                S.workers.insert().values(
                    id=worker,
                    host=host,
                    pid=int(rest.partition(":")[0] or 0),
                    max_experiments=max_experiments,
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def renew(self, worker: str) -> bool:
        """Renew a worker's lease; False if the worker row is gone or retired."""
        w = S.workers.c
        with self._s.begin() as c:
            res = c.execute(
                S.workers.update()
                .where(w.id == worker, w.stopped_at.is_(None))
                .values(heartbeat_at=time.time())
            )
        return bool(res.rowcount)

    def retire(self, worker: str) -> None:
        """A worker leaves: its lease ends and the experiments it still holds are free."""
        with self._s.begin() as c:
            c.execute(
                S.workers.update().where(S.workers.c.id == worker).values(stopped_at=time.time())
            )
            c.execute(
                S.experiments.update()
                .where(S.experiments.c.worker == worker)
                .values(worker=None, claimed_at=None)
            )

    def workers(self, lease_s: float = LEASE_S) -> list[WorkerInfo]:
        """Workers whose lease is fresh, with how many experiments each holds."""
        w, e = S.workers.c, S.experiments.c
        held = (
            sa.select(sa.func.count())
            .where(e.worker == w.id, e.state.in_(_ACTIVE))
            .scalar_subquery()
        )
        with self._s.begin() as c:
            rows = c.execute(
                sa.select(S.workers, held.label("held"))
                .where(w.stopped_at.is_(None), w.heartbeat_at >= time.time() - lease_s)
                .order_by(w.started_at)
            ).all()
        return [
            WorkerInfo(
                r.id,
                r.host,
                r.pid,
                r.max_experiments,
                r.started_at,
                r.heartbeat_at,
                r.stopped_at,
                int(r.held or 0),
            )
            for r in rows
        ]

    # -- claiming --------------------------------------------------------------------------
    def _claimable(
        self, now: float, lease_s: float, worker: str, orphans_only: bool = False
    ) -> Any:
        """Queued, not finished, no live worker holds it, and no live controller runs it.

        An orphan of a dead worker goes to a worker on the same host first: only there can its
        local trials be adopted (on another host they run again). A worker elsewhere takes it
        once its controller has been silent for a second lease.
        """
        e, w = S.experiments.c, S.workers.c
        stale = now - lease_s
        live_workers = sa.select(w.id).where(w.stopped_at.is_(None), w.heartbeat_at >= stale)
        states = (ExperimentState.RUNNING.value,) if orphans_only else _ACTIVE
        host = worker.split(":", 1)[0]
        return sa.and_(
            e.queued.is_(True),
            e.state.in_(states),
            sa.or_(e.worker.is_(None), e.worker.not_in(live_workers)),
            sa.or_(e.controller.is_(None), e.heartbeat_at.is_(None), e.heartbeat_at < stale),
            sa.or_(
                e.worker.is_(None),
                sa.func.substr(e.worker, 1, len(host) + 1) == f"{host}:",
                e.heartbeat_at.is_(None),
                e.heartbeat_at < now - 2 * lease_s,
            ),
        )

    def claim(
        self,
        worker: str,
        limit: int = 1,
        lease_s: float = LEASE_S,
        *,
        orphans_only: bool = False,
    ) -> list[Claim]:
        """Atomically take up to ``limit`` claimable experiments, highest priority first.

        Each claimed experiment is held by exactly one worker: row locks (``FOR UPDATE SKIP
        LOCKED``) on PostgreSQL and MariaDB, a file lock on SQLite, and a compare-and-swap
        ``UPDATE`` everywhere. ``orphans_only`` takes only experiments that were Running under
        a worker or controller that is gone (their trials run unwatched until someone adopts).
        """
        if limit <= 0:
            return []
        e = S.experiments.c
        now = time.time()
        sqlite = self._s.url.get_backend_name() == "sqlite"
        claims: list[Claim] = []
        with self._host_lock() if sqlite else contextlib.nullcontext(), self._s.begin() as c:
            query = (
                sa.select(e.id, e.name, e.worker)
                .where(self._claimable(now, lease_s, worker, orphans_only))
                .order_by(e.priority.desc(), e.created_at, e.id)
                .limit(limit)
            )
            if not sqlite:
                query = query.with_for_update(skip_locked=True, of=S.experiments)
            for row in c.execute(query).all():
                if self._take(c, row.id, row.worker, worker, now, lease_s):
                    claims.append(Claim(row.id, row.name, row.worker is not None, row.worker))
        return claims

    def _take(
        self,
        c: Connection,
        experiment_id: str,
        previous: str | None,
        worker: str,
        now: float,
        lease_s: float,
    ) -> bool:
        e = S.experiments.c
        res = c.execute(
            S.experiments.update()
            .where(e.id == experiment_id, self._claimable(now, lease_s, worker))
            .values(
                worker=worker,
                claimed_at=now,
                takeovers=e.takeovers + (1 if previous is not None else 0),
            )
        )
        return bool(res.rowcount)

    @contextlib.contextmanager
    def _host_lock(self) -> Iterator[None]:
        """SQLite: an exclusive lock on ``<database>.queue.lock`` (one host shares the file)."""
        database = self._s.url.database
        if not database or database == ":memory:" or os.name != "posix":
            yield
            return
        import fcntl

        path = Path(database).expanduser().resolve().with_name(Path(database).name + ".queue.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def holds(self, worker: str, experiment_id: str) -> bool:
        """Whether ``worker`` holds the experiment now."""
        e = S.experiments.c
        with self._s.begin() as c:
            held = c.execute(sa.select(e.worker).where(e.id == experiment_id)).scalar()
        return held == worker

    def release(self, worker: str, experiment_id: str) -> None:
        """Let go of an experiment (it stays queued if it has not ended)."""
        e = S.experiments.c
        with self._s.begin() as c:
            c.execute(
                S.experiments.update()
                .where(e.id == experiment_id, e.worker == worker)
                .values(worker=None, claimed_at=None)
            )

    # -- reading for /metrics ----------------------------------------------------------------
    def depth(self) -> int:
        """Queued experiments that no worker holds yet."""
        e = S.experiments.c
        with self._s.begin() as c:
            return int(
                c.execute(
                    sa.select(sa.func.count()).where(
                        e.queued.is_(True),
                        e.state == ExperimentState.CREATED.value,
                        e.worker.is_(None),
                    )
                ).scalar()
                or 0
            )

    def experiment_states(self) -> dict[str, int]:
        """Experiments by state."""
        e = S.experiments.c
        with self._s.begin() as c:
            rows = c.execute(sa.select(e.state, sa.func.count()).group_by(e.state)).all()
        return {r[0]: int(r[1]) for r in rows}

    def trial_states(self) -> dict[str, int]:
        """Trials by state, over every experiment."""
        t = S.trials.c
        with self._s.begin() as c:
            rows = c.execute(sa.select(t.state, sa.func.count()).group_by(t.state)).all()
        return {r[0]: int(r[1]) for r in rows}

    def takeovers(self) -> int:
        """Lease takeovers over every experiment."""
        e = S.experiments.c
        with self._s.begin() as c:
            return int(c.execute(sa.select(sa.func.sum(e.takeovers))).scalar() or 0)

    def turn_stats(self) -> dict[str, Any]:
        """Every controller's turn-latency histogram, summed (automl._turns)."""
        from automl._turns import merge_turn_stats

        e = S.experiments.c
        with self._s.begin() as c:
            rows = c.execute(sa.select(e.turn_stats).where(e.turn_stats.is_not(None))).scalars()
            return merge_turn_stats(list(rows))
