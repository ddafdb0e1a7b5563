"""Shared fixtures: real SQLite, PostgreSQL and MariaDB stores, each test on a fresh database.

PostgreSQL and MariaDB are the real servers this machine runs on 127.0.0.1 (``.ci/run`` starts
them when they are down). Override their admin URLs with ``AUTOML_TEST_PG_URL`` and
``AUTOML_TEST_MYSQL_URL``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN = os.environ.get(
    "AUTOML_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_ADMIN = os.environ.get("AUTOML_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
BACKENDS = ["sqlite", "postgresql", "mariadb"]
REPO = Path(__file__).resolve().parent.parent
# Real Katib Experiment files (Apache-2.0, unchanged copies of kubeflow/katib examples/v1beta1).
KATIB_EXAMPLES = REPO / "tests" / "data" / "katib-examples"

warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")

# A shell runs a background job (``.ci/run &``) with SIGINT ignored, and an ignored signal stays
# ignored across exec: the ``automl`` processes the tests Ctrl-C would not see it. Tests that
# send SIGINT test the user's Ctrl-C, so give the processes they start the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _fresh_database(admin_url: str, kind: str) -> tuple[str, sa.Engine, str]:
    name = f"automl_t_{secrets.token_hex(4)}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.engine.make_url(admin_url).set(database=name)
    return url.render_as_string(hide_password=False), engine, name


@contextlib.contextmanager
def empty_database(kind: str, sqlite_file: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file, or a new PostgreSQL/MariaDB database."""
    if kind == "sqlite":
        yield f"sqlite:///{sqlite_file}"
        return
    admin = PG_ADMIN if kind == "postgresql" else MYSQL_ADMIN
    try:
        url, engine, name = _fresh_database(admin, kind)
    except sa.exc.OperationalError as exc:  # pragma: no cover - CI starts the servers
        pytest.fail(f"{kind} at {admin} is not reachable ({exc.orig}); start it (see .ci/run)")
    try:
        yield url
    finally:
        from automl.store import Store  # noqa: F401 - make sure engines are disposed first

        with engine.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store on each backend: a SQLite file, PostgreSQL and MariaDB."""
    with empty_database(request.param, tmp_path / "automl.db") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite store file."""
    return f"sqlite:///{tmp_path / 'automl.db'}"
