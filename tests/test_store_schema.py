"""A new store's tables are created in one go: they must be what the migrations build.

``Store`` creates a new, empty database from ``automl/store/_schema.py`` and stamps it with the
head revision, instead of replaying every Alembic migration. These tests build one database each
way on every backend and compare what the database itself reports, and check that a store made
either way is used and upgraded alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from automl.store import Store
from automl.store import _schema as S
from automl.store._sql import _upgrade, normalize_url
from tests.conftest import empty_database


def _migrate_from_scratch(url: str) -> None:
    """What every store got before: Alembic's migrations, one after another."""
    engine = sa.create_engine(normalize_url(url))
    try:
        with engine.begin() as conn:
            _upgrade(conn)
    finally:
        engine.dispose()


def _described(url: str) -> dict[str, Any]:
    """Tables, columns, keys, indexes and the version, as the database reports them."""
    engine = sa.create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            out: dict[str, Any] = {}
            for table in sorted(t for t in insp.get_table_names() if t.startswith("automl_")):
                out[table] = {
                    "columns": {
                        c["name"]: (
                            type(c["type"]).__name__,
                            getattr(c["type"], "length", None),
                            c["nullable"],
                            c.get("default") is not None,
                        )
                        for c in insp.get_columns(table)
                    },
                    "pk": sorted(insp.get_pk_constraint(table)["constrained_columns"]),
                    "fks": sorted(
                        (tuple(f["constrained_columns"]), f["referred_table"])
                        for f in insp.get_foreign_keys(table)
                    ),
                    "indexes": sorted(
                        (tuple(i["column_names"]), bool(i["unique"]))
                        for i in insp.get_indexes(table)
                        # MariaDB indexes every foreign key by itself: not part of the schema.
                        if not (i["name"] and i["name"].startswith(("experiment_id", "trial_id")))
                    ),
                    "uniques": sorted(
                        (c["name"], tuple(c["column_names"]))
                        for c in insp.get_unique_constraints(table)
                    ),
                }
            out["version"] = conn.execute(
                sa.text("SELECT version_num FROM automl_alembic_version")
            ).scalar()
            return out
    finally:
        engine.dispose()


def test_a_new_store_has_the_schema_the_migrations_build(
    store_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    kind = request.node.callspec.params["store_url"]
    Store(store_url).close()  # a new, empty database: created in one go
    with empty_database(kind, tmp_path / "migrated.db") as migrated:
        _migrate_from_scratch(migrated)
        built, created = _described(migrated), _described(store_url)
    assert created["version"] == S.HEAD
    assert (
        set(created)
        == set(built)
        == {*(t.name for t in S.metadata.sorted_tables), S.version.name, "version"}
    )
    for table in built:
        assert created[table] == built[table], table


def test_a_store_created_in_one_go_is_upgraded_by_the_migrations_after_it(
    sqlite_url: str,
) -> None:
    """The stamp is Alembic's own: a later migration finds the revision it starts from."""
    Store(sqlite_url).close()
    engine = sa.create_engine(normalize_url(sqlite_url))
    try:
        with engine.begin() as conn:
            _upgrade(conn)  # already at head: Alembic accepts the stamp and changes nothing
            rows = conn.execute(sa.text("SELECT version_num FROM automl_alembic_version")).all()
    finally:
        engine.dispose()
    assert rows == [(S.HEAD,)]


def test_a_store_created_in_one_go_fills_the_server_defaults(sqlite_url: str) -> None:
    """Columns that older rows got from the migrations' defaults get them in a new store too."""
    Store(sqlite_url).close()
    engine = sa.create_engine(normalize_url(sqlite_url))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO automl_experiments (id, name, spec, state, reason, message, "
                    "created_at, stop_requested, sampler_state) "
                    "VALUES ('x', 'x', '{}', 'Created', '', '', 0, 0, '{}')"
                )
            )
            row = conn.execute(
                sa.text(
                    "SELECT queued, priority, takeovers, steer_seq, steer_applied "
                    "FROM automl_experiments"
                )
            ).one()
    finally:
        engine.dispose()
    assert tuple(row) == (0, 0, 0, 0, 0)
