"""The controller's per-trial writes as the driver's own SQL, on a pooled DBAPI connection.

SQLAlchemy Core spends about 60 µs of Python per statement (cache key, execution context,
result object) before the driver sees it, and more when the loop's sampler has just evicted
it from the CPU's caches. A trial's start and end are three statements, so that was most of
the store's cost per trial. Here each statement is compiled by SQLAlchemy once per dialect
(the same SQL Core would send, binds and casts included) and run through the driver's cursor;
errors come back as SQLAlchemy's own exceptions, so callers see no difference.

On SQLite the statements run on one connection kept for them (taking one from the pool and
resetting it on return cost more than the statements): its writers take turns on a lock, as
SQLite's one writer at a time would have them do anyway. On PostgreSQL and MySQL each
transaction takes a connection from the pool, which pings it first, so a database server that
was restarted costs the controller nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

__all__ = ["Batch", "DriverSQL"]

#: A statement's key (see :meth:`DriverSQL.compile`) and the rows to run it with.
Batch = tuple[object, Sequence[Mapping[str, Any]]]


class _Compiled:
    __slots__ = ("order", "sql")

    def __init__(self, sql: str, order: tuple[str, ...] | None) -> None:
        self.sql = sql
        self.order = order  # bind names in position order; None: the driver takes dicts


class DriverSQL:
    """Runs fixed statements in one transaction with the driver's cursor.

    Args:
        engine: The store's engine (its pool, dialect and connect-time settings are used).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect
        self._statements: dict[object, tuple[sa.Insert | sa.Update, tuple[str, ...]]] = {}
        self._compiled: dict[object, _Compiled] = {}
        self._pin = engine.dialect.name == "sqlite"
        self._lock = threading.Lock()
        self._pinned: PoolProxiedConnection | None = None

    def compile(self, key: object, stmt: sa.Insert | sa.Update, keys: Sequence[str]) -> None:
        """Register ``stmt`` under ``key``, binding ``keys``; compiled when first run."""
        self._statements[key] = (stmt, tuple(keys))

    def _compile(self, key: object) -> _Compiled:
        stmt, keys = self._statements[key]
        if isinstance(stmt, sa.Insert):
            stmt = stmt.inline()  # no RETURNING of the generated key
        c = stmt.compile(dialect=self._dialect, column_keys=list(keys))
        order = tuple(c.positiontup) if c.positional and c.positiontup is not None else None
        self._compiled[key] = out = _Compiled(str(c), order)
        return out

    def run(self, batches: Sequence[Batch]) -> None:
        """Run each ``(key, rows)`` in one committed-or-rolled-back transaction.

        Each is the statement compiled under ``key``, executed once per row.

        Raises:
            sqlalchemy.exc.DBAPIError: As SQLAlchemy's own subclass (IntegrityError,
                OperationalError...); a lost connection is dropped from the pool.
        """
        if not self._pin:
            raw = self._engine.raw_connection()
            try:
                self._run_on(raw, batches)
            finally:
                raw.close()
            return
        with self._lock:
            if self._pinned is None or not self._pinned.is_valid:
                self._pinned = self._engine.raw_connection()
            self._run_on(self._pinned, batches)

    def close(self) -> None:
        """Give the kept connection back to the pool (before the engine is disposed)."""
        with self._lock:
            if self._pinned is not None:
                with contextlib.suppress(Exception):
                    self._pinned.close()
                self._pinned = None

    def _run_on(self, raw: PoolProxiedConnection, batches: Sequence[Batch]) -> None:
        cursor = raw.cursor()
        sql: str = "COMMIT"  # what failed, for the error
        params: Any = None
        try:
            for key, rows in batches:
                if not rows:
                    continue
                c = self._compiled.get(key) or self._compile(key)
                order = c.order
                sql = c.sql
                if len(rows) == 1:
                    params = tuple([rows[0][k] for k in order]) if order else rows[0]
                    cursor.execute(sql, params)
                else:
                    params = [tuple([r[k] for k in order]) for r in rows] if order else list(rows)
                    cursor.executemany(sql, params)
            sql, params = "COMMIT", None
            cursor.close()
            raw.commit()
        except self._dialect.loaded_dbapi.Error as exc:
            with contextlib.suppress(Exception):
                raw.rollback()
            if self._dialect.is_disconnect(exc, raw.dbapi_connection, cursor):
                raw.invalidate(exc)
            raise DBAPIError.instance(
                sql,
                params,
                exc,
                self._dialect.loaded_dbapi.Error,
                dialect=self._dialect,
                connection_invalidated=not raw.is_valid,
            ) from exc
        except BaseException:
            with contextlib.suppress(Exception):
                raw.rollback()
            raise
