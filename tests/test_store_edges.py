"""Store edges: concurrent creation, unknown schema versions, read-only commands that never
create a store, bad ``--store`` values, and a controller error that leaves a resumable
experiment."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import automl
from automl._controller import Controller
from automl.core import ExperimentState, TrialState
from automl.store import Store
from tests.conftest import MYSQL_ADMIN, PG_ADMIN, _fresh_database
from trials import InProcessExecutor

pytestmark = pytest.mark.integration

AUTOML = [sys.executable, "-m", "automl"]

OPEN = """
import os, sys, time
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
from automl.store import Store
Store(sys.argv[1]).close()
print("opened")
"""


def _open_together(tmp_path: Path, url: str, tag: str) -> list[subprocess.CompletedProcess[str]]:
    """Two processes open ``url`` at the same moment (both wait for one file)."""
    script = tmp_path / "open.py"
    script.write_text(OPEN)
    go = tmp_path / f"go-{tag}"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_two_processes_create_a_new_store_at_once(tmp_path: Path, kind: str) -> None:
    for round_ in range(10 if kind == "sqlite" else 4):  # SQLite's race is the narrow one
        if kind == "sqlite":
            url, engine, name = f"sqlite:///{tmp_path / f'new{round_}.db'}", None, ""
        else:
            url, engine, name = _fresh_database(
                PG_ADMIN if kind == "postgresql" else MYSQL_ADMIN, kind
            )
        try:
            results = _open_together(tmp_path, url, f"{kind}{round_}")
            for r in results:
                assert r.returncode == 0 and r.stdout.strip() == "opened", r.stderr
            store = Store(url)
            assert store.experiments.list() == []
            store.close()
        finally:
            if engine is not None:
                with engine.connect() as c:
                    c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
                engine.dispose()


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUTOML, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def _one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_a_store_of_a_newer_schema_is_one_clear_line(tmp_path: Path, store_url: str) -> None:
    Store(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE automl_alembic_version SET version_num = '9999'"))
    engine.dispose()
    for cmd in (["list"], ["show", "x"], ["resume", "x"]):
        line = _one_line_error(_cli(tmp_path, *cmd, "--store", store_url))
        assert "schema version 9999" in line and "newer automl" in line


@pytest.mark.parametrize("cmd", [["list"], ["show", "exp"], ["best", "exp"]])
def test_read_only_commands_never_create_a_store(tmp_path: Path, cmd: list[str]) -> None:
    missing = tmp_path / "missing.db"
    line = _one_line_error(_cli(tmp_path, *cmd, "--store", str(missing)))
    assert "no automl store" in line
    assert not missing.exists()
    # A SQLite file that is not an automl store gets no tables added.
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as c:
        c.execute("CREATE TABLE notes (x TEXT)")
    line = _one_line_error(_cli(tmp_path, *cmd, "--store", str(foreign)))
    assert "not an automl store" in line
    with sqlite3.connect(foreign) as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["notes"]


def test_read_only_commands_never_add_tables_to_an_empty_database(store_url: str) -> None:
    if store_url.startswith("sqlite"):
        Path(store_url.removeprefix("sqlite:///")).touch()
    res = _cli(Path.cwd(), "list", "--store", store_url)
    assert "no automl store" in _one_line_error(res)
    engine = sa.create_engine(store_url)
    with engine.connect() as c:
        assert sa.inspect(c).get_table_names() == []
    engine.dispose()


@pytest.mark.parametrize("value", ["mystore", "results/experiments", "automl.json"])
def test_a_store_that_is_neither_url_nor_sqlite_path_is_refused(
    tmp_path: Path, value: str
) -> None:
    line = _one_line_error(_cli(tmp_path, "list", "--store", value))
    assert "store" in line and ".db" in line and "postgresql://" in line and repr(value) in line
    assert list(tmp_path.iterdir()) == []


class _BreaksOnce(InProcessExecutor):
    """A real in-process executor whose third poll raises, as a controller bug would."""

    polls = 0

    def poll(self, timeout: float) -> list[Any]:
        _BreaksOnce.polls += 1
        if _BreaksOnce.polls == 3:
            raise RuntimeError("injected controller failure")
        return super().poll(timeout)


def test_a_controller_error_leaves_a_resumable_experiment(sqlite_url: str) -> None:
    def objective(x: float) -> float:
        return x

    res = automl.tune(
        objective,
        {"x": automl.double(0, 1)},
        algorithm="random",
        max_trials=2,
        name="err",
        store=sqlite_url,
    )
    assert len(res.trials) == 2
    store = Store(sqlite_url)
    try:
        _BreaksOnce.polls = 0
        ex = _BreaksOnce(objective, "objective", 1, None)
        with pytest.raises(RuntimeError, match="injected"):
            Controller(store, _extend(store, "err", 12), ex).run()
        exp = store.experiments.get("err")
        assert exp.state is ExperimentState.STOPPED
        assert exp.reason == "ControllerError"
        assert "injected controller failure" in exp.message and "automl resume" in exp.message
        assert exp.controller is None
        from automl._client import Client

        done = Client(store).resume("err", objective=objective)
        assert len(done.trials) == 12
        assert all(t.state is TrialState.SUCCEEDED for t in store.trials.list(exp.id))
    finally:
        store.close()


def _extend(store: Store, name: str, max_trials: int) -> Any:
    exp = store.experiments.get(name)
    spec = exp.spec.model_copy(update={"max_trial_count": max_trials})
    store.experiments.update(exp.id, spec=spec)
    return store.experiments.get(name)
