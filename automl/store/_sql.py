"""The durable store: SQLAlchemy 2 Core over SQLite, PostgreSQL or MySQL/MariaDB.

Every write is its own committed transaction, so a controller killed at any moment loses nothing
it had stored. SQLite runs in WAL mode with ``synchronous=NORMAL`` (committed data survives a
process crash; readers never block the controller) and a busy timeout.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from automl.core import (
    ExperimentRecord,
    ExperimentSpec,
    ExperimentState,
)
from automl.errors import AlreadyExistsError, NotFoundError, SpecError, StorageError
from automl.store import _schema as S
from automl.store._driver import Batch
from automl.store._trials import (
    ObservationRepository,
    TrialRepository,
    driver_for,
    dumps,
)

__all__ = [
    "DEFAULT_STORE",
    "ExperimentRepository",
    "Store",
    "normalize_url",
]

DEFAULT_STORE = "sqlite:///automl.db"
_DRIVERS = {
    "postgresql": ("postgresql+psycopg", "psycopg", "postgres"),
    "postgres": ("postgresql+psycopg", "psycopg", "postgres"),
    "mysql": ("mysql+pymysql", "pymysql", "mysql"),
    "mariadb": ("mariadb+pymysql", "pymysql", "mysql"),
}


_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x6175746F  # the advisory lock that serialises schema migrations ("auto")


def _revisions() -> set[str]:
    """The schema versions this automl knows (its migration files)."""
    return {p.name.split("_", 1)[0] for p in (_MIGRATIONS / "versions").glob("[0-9]*_*.py")}


def normalize_url(url: str) -> URL:
    """Parse a store URL; a bare file path means SQLite, and plain dialects get a driver.

    Raises:
        SpecError: The URL cannot be parsed.
    """
    text = url.strip()
    if "://" not in text:
        if not text.lower().endswith(_SQLITE_SUFFIXES):
            raise SpecError(
                "must be a database URL (sqlite:///path/automl.db, postgresql://user@host/db, "
                "mysql://user@host/db) or a SQLite file path ending in "
                f"{', '.join(_SQLITE_SUFFIXES)}; got {url!r}",
                path="store",
            )
        text = f"sqlite:///{text}"
    try:
        u = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise SpecError(f"is not a valid SQLAlchemy URL; got {url!r}", path="store") from exc
    if u.drivername in _DRIVERS:
        u = u.set(drivername=_DRIVERS[u.drivername][0])
    return u


class Store:
    """Opens a store URL, migrates its schema and gives access to the repositories.

    Args:
        url: Any SQLAlchemy URL (``sqlite:///automl.db``, ``postgresql://u@host/db``,
            ``mysql://root@127.0.0.1/test``) or a path to a SQLite file.
        create: Create the store (its file and tables) when there is none. Readers pass False:
            they never create a database, nor add tables to one that is not an automl store.
        pool_size: Connections kept open to a database server (``automl server`` keeps 20).

    Raises:
        StorageError: The database cannot be reached or migrated, it holds a schema version
            this automl does not know (a newer automl wrote it), or (``create=False``) there
            is no automl store there.
    """

    def __init__(
        self, url: str = DEFAULT_STORE, *, create: bool = True, pool_size: int = 5
    ) -> None:
        self.url = normalize_url(url)
        self.display_url = self.url.render_as_string(hide_password=True)
        self._create = create
        self._pool_size = pool_size  # connections kept open (a server's threads need more)
        self.engine = self._connect()
        self.driver = driver_for(self.engine)
        self.experiments = ExperimentRepository(self)
        self.trials = TrialRepository(self)
        self.observations = ObservationRepository(self)

    def _connect(self) -> Engine:
        u = self.url
        kwargs: dict[str, Any] = {}
        if u.get_backend_name() == "sqlite":
            if u.database and u.database != ":memory:":
                parent = Path(u.database).expanduser().resolve().parent
                if not parent.is_dir():
                    raise StorageError(
                        f"cannot open store {self.display_url}: directory {parent} does not exist"
                    )
                if not self._create and not Path(u.database).expanduser().exists():
                    raise StorageError(
                        f"no automl store at {self.display_url}: the file does not exist "
                        "(give --store, or run an experiment first)"
                    )
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_recycle=3600, pool_size=self._pool_size)
            kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            engine = sa.create_engine(u, **kwargs)
        except NoSuchModuleError as exc:
            raise StorageError(
                f"store {self.display_url}: unknown database dialect {u.drivername!r} "
                "(use sqlite, postgresql or mysql)"
            ) from exc
        except ModuleNotFoundError as exc:
            extra = _DRIVERS.get(u.get_backend_name(), ("", "", u.get_backend_name()))[2]
            raise StorageError(
                f"store {self.display_url} needs the database driver "
                f"{exc.name!r}: pip install 'automl[{extra}]'"
            ) from exc
        if u.get_backend_name() == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        try:
            self._migrate(engine)
        except SQLAlchemyError as exc:
            engine.dispose()
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StorageError(f"cannot reach store {self.display_url}: {reason}") from exc
        return engine

    @staticmethod
    def _version(conn: Connection) -> tuple[str | None, bool]:
        """The stored schema version (None: no automl tables), and whether other tables exist."""
        insp = sa.inspect(conn)
        if insp.has_table("automl_alembic_version"):
            row = conn.execute(sa.text("SELECT version_num FROM automl_alembic_version"))
            return row.scalar(), True
        return None, bool(insp.get_table_names())

    def _check_version(self, current: str | None, others: bool) -> bool:
        """Whether the schema must be upgraded; raises on a store this automl cannot use."""
        if current == S.HEAD:
            return False
        if current is not None and current not in _revisions():
            raise StorageError(
                f"store {self.display_url} has schema version {current}, which this automl "
                f"(schema {S.HEAD}) does not know: a newer automl wrote it; upgrade automl"
            )
        if current is None and not self._create:
            what = "is not an automl store (it has no automl tables)" if others else "is empty"
            raise StorageError(f"no automl store at {self.display_url}: the database {what}")
        return True

    def _migrate(self, engine: Engine) -> None:
        with engine.connect() as conn:
            if not self._check_version(*self._version(conn)):
                return
        # Two processes opening a new store at once: one migrates, the other waits, then finds
        # the schema current (re-checked under the lock).
        try:
            with self._migration_lock(engine) as conn:
                current, others = self._version(conn)
                if not self._check_version(current, others):
                    return
                if current is None:
                    _create_current(conn)
                else:
                    _upgrade(conn)
        except SQLAlchemyError:
            # SQLite has no lock to wait on: the other process created the tables first.
            # Wait until its migration is complete, then use the store as it left it.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(0.05)
                with contextlib.suppress(SQLAlchemyError), engine.connect() as conn:
                    if self._version(conn)[0] == S.HEAD:
                        return
            raise

    @contextlib.contextmanager
    def _migration_lock(self, engine: Engine) -> Iterator[Connection]:
        """A transaction that holds the store's migration lock (PostgreSQL, MySQL/MariaDB).

        SQLite gets none: a lock file descriptor closed in this process would drop SQLite's own
        POSIX locks on the file; a migration that lost the race waits instead (see _migrate).
        """
        backend = self.url.get_backend_name()
        if backend == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
                yield conn
        elif backend in ("mysql", "mariadb"):
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT GET_LOCK('automl_migrate', 120)"))
                conn.commit()  # the lock is the session's: it outlives this transaction
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.execute(sa.text("SELECT RELEASE_LOCK('automl_migrate')"))
                    conn.commit()
        else:
            with engine.begin() as conn:
                yield conn

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A committed-or-rolled-back transaction; database errors become StorageError."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise self._failed(exc) from exc

    def write(self, batches: Sequence[Batch]) -> None:
        """The per-trial statements in one transaction (see automl.store._driver).

        Errors are those of :meth:`begin`: IntegrityError as it is, the rest as StorageError.
        """
        try:
            self.driver.run(batches)
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: SQLAlchemyError) -> StorageError:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return StorageError(f"store {self.display_url}: {reason}")

    def close(self) -> None:
        """Release connections."""
        self.driver.close()
        self.engine.dispose()


def _create_current(conn: Connection) -> None:
    """A new store: the current tables in one go, stamped with the head revision.

    Replaying every migration costs a new store about 60 ms (0003 copies a table on SQLite);
    the result is the same schema (tests/test_store_schema.py). ``checkfirst=False``: a
    process that lost the race to create the store fails here and waits (see _migrate).
    """
    S.metadata.create_all(conn, checkfirst=False)
    S.version.create(conn, checkfirst=False)
    conn.execute(S.version.insert().values(version_num=S.HEAD))


def _upgrade(conn: Connection) -> None:
    """Bring an older store up to date with Alembic's migrations."""
    from alembic import command  # imported only when the schema must change
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    import sqlite3

    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    # Switching a new file to WAL needs it alone, and SQLite answers "locked" at once (no busy
    # wait) while another process is creating the same store: retry for a while.
    deadline = time.monotonic() + 30
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class ExperimentRepository:
    """Experiments: create, read, list, update, delete."""

    def __init__(self, store: Store) -> None:
        self._s = store

    def create(self, spec: ExperimentSpec, **columns: Any) -> ExperimentRecord:
        """Store a new experiment in state Created (``columns``: more columns, e.g. queue ones).

        Raises:
            AlreadyExistsError: The name is taken.
        """
        now = time.time()
        row = {
            "id": uuid.uuid4().hex,
            "name": spec.name,
            "spec": spec.to_json(),
            "state": ExperimentState.CREATED.value,
            "reason": "",
            "message": "",
            "created_at": now,
            "stop_requested": False,
            "sampler_state": "{}",
            **columns,
        }
        try:
            with self._s.begin() as c:
                c.execute(S.experiments.insert().values(**row))
        except IntegrityError as exc:
            raise AlreadyExistsError(
                f"experiment {spec.name!r} already exists in {self._s.display_url}; resume it "
                f"(automl resume {spec.name}), delete it, or choose another name"
            ) from exc
        return self.get(spec.name)

    def get(self, name: str) -> ExperimentRecord:
        """The experiment called ``name``.

        Raises:
            NotFoundError: No such experiment.
        """
        with self._s.begin() as c:
            row = c.execute(sa.select(S.experiments).where(S.experiments.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no experiment named {name!r} in {self._s.display_url}")
        return _experiment(row._mapping)

    def list(self) -> list[ExperimentRecord]:
        """Every experiment, oldest first."""
        with self._s.begin() as c:
            rows = c.execute(sa.select(S.experiments).order_by(S.experiments.c.created_at)).all()
        return [_experiment(r._mapping) for r in rows]

    def update(self, experiment_id: str, **fields: Any) -> None:
        """Set columns of an experiment.

        ``spec`` may be an ExperimentSpec, ``state`` an enum, ``sampler_state`` a mapping.
        """
        values: dict[str, Any] = {}
        for k, v in fields.items():
            if isinstance(v, ExperimentSpec):
                v = v.to_json()
            elif k == "sampler_state":
                v = dumps(dict(v))
            elif hasattr(v, "value") and k in ("state",):
                v = v.value
            values[k] = v
        with self._s.begin() as c:
            c.execute(
                S.experiments.update().where(S.experiments.c.id == experiment_id).values(**values)
            )

    def claim(
        self,
        experiment_id: str,
        controller: str,
        observed: str | None,
        stale_before: float,
        *,
        keep_stop: bool = False,
    ) -> bool:
        """Take the controller lease by compare-and-swap; True if this call won it.

        It succeeds only if the lease is still held by ``observed`` (None: free) and, when held,
        its heartbeat is older than ``stale_before``. Taking the lease marks the experiment Running
        and clears any earlier stop request in the same statement (an explicit resume), so a stop
        asked for after this point is never lost. ``keep_stop`` keeps an earlier request: a
        worker taking a queued experiment must not erase a stop sent while it was starting.
        """
        now = time.time()
        e = S.experiments.c
        held = (
            e.controller.is_(None)
            if observed is None
            else sa.and_(
                e.controller == observed,
                sa.or_(e.heartbeat_at.is_(None), e.heartbeat_at < stale_before),
            )
        )
        with self._s.begin() as c:
            res = c.execute(
                S.experiments.update()
                .where(e.id == experiment_id)
                .where(sa.or_(held, e.controller == controller))
                .where(
                    e.state.in_((ExperimentState.CREATED.value, ExperimentState.RUNNING.value))
                    if keep_stop  # an experiment stopped meanwhile stays stopped
                    else sa.true()
                )
                .values(
                    controller=controller,
                    heartbeat_at=now,
                    state=ExperimentState.RUNNING.value,
                    **({} if keep_stop else {"stop_requested": False}),
                )
            )
        return bool(res.rowcount)

    def turn_stats(self, experiment_id: str) -> dict[str, Any] | None:
        """The experiment's stored turn-latency histogram (automl._turns), if any."""
        e = S.experiments.c
        with self._s.begin() as c:
            text = c.execute(sa.select(e.turn_stats).where(e.id == experiment_id)).scalar()
        try:
            value = json.loads(text) if text else None
        except ValueError:
            return None  # a damaged histogram starts again rather than stop the controller
        return value if isinstance(value, dict) else None

    def stop_requested(self, experiment_id: str) -> bool:
        """Whether a stop was asked for (a cheap check the controller makes twice a second)."""
        e = S.experiments.c
        with self._s.begin() as c:
            return bool(
                c.execute(sa.select(e.stop_requested).where(e.id == experiment_id)).scalar()
            )

    def watch(self, experiment_id: str) -> tuple[bool, int]:
        """Whether a stop was asked for, and the steering counter (one cheap read per turn)."""
        e = S.experiments.c
        with self._s.begin() as c:
            row = c.execute(
                sa.select(e.stop_requested, e.steer_seq).where(e.id == experiment_id)
            ).first()
        return (bool(row[0]), int(row[1] or 0)) if row is not None else (False, 0)

    def steer_status(self, experiment_id: str) -> tuple[int, int]:
        """The steering counter, and the value of it the running controller has applied."""
        e = S.experiments.c
        with self._s.begin() as c:
            row = c.execute(
                sa.select(e.steer_seq, e.steer_applied).where(e.id == experiment_id)
            ).first()
        return (int(row[0] or 0), int(row[1] or 0)) if row is not None else (0, 0)

    def steered(self, experiment_id: str, conn: Connection | None = None) -> None:
        """Bump the steering counter: the running controller re-reads budgets and trials."""
        e = S.experiments.c
        stmt = (
            S.experiments.update().where(e.id == experiment_id).values(steer_seq=e.steer_seq + 1)
        )
        if conn is not None:
            conn.execute(stmt)
            return
        with self._s.begin() as c:
            c.execute(stmt)

    def delete(self, name: str) -> None:
        """Delete an experiment with its trials and observations.

        Raises:
            NotFoundError: No such experiment.
        """
        exp = self.get(name)
        t, o = S.trials, S.observations
        with self._s.begin() as c:
            ids = sa.select(t.c.id).where(t.c.experiment_id == exp.id)
            c.execute(o.delete().where(o.c.trial_id.in_(ids)))
            c.execute(t.delete().where(t.c.experiment_id == exp.id))
            c.execute(S.experiments.delete().where(S.experiments.c.id == exp.id))


def _experiment(m: Any) -> ExperimentRecord:
    return ExperimentRecord(
        id=m["id"],
        name=m["name"],
        spec=ExperimentSpec.from_json(m["spec"]),
        state=ExperimentState(m["state"]),
        reason=m["reason"] or "",
        message=m["message"] or "",
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        stop_requested=bool(m["stop_requested"]),
        controller=m["controller"],
        heartbeat_at=m["heartbeat_at"],
        sampler_state=json.loads(m["sampler_state"] or "{}"),
    )
