"""Exactly-once trials: the controller is SIGKILLed at random moments (trials keep running, some
end while no controller runs), resumed each time, and the trials' own ledger counts how often
each parameter set completed: every stored trial exactly once, none twice, none lost.

The same harness is ``benchmarks/exactly_once.py`` (20 experiments x 2 kills for the figures);
the suite runs a few experiments of it on SQLite and PostgreSQL, for command trials and for
function trials in processes (``automl.tune(..., trial_processes=True)``).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from benchmarks import exactly_once as eo
from benchmarks.exactly_once import run_one

pytestmark = pytest.mark.integration


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "trial.py").write_text(eo.TRIAL)
    (tmp_path / "eo_objective.py").write_text(eo.OBJECTIVE)
    (tmp_path / "driver.py").write_text(eo.DRIVER)
    return tmp_path


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", ["command", "function"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_at_random_moments_runs_every_trial_exactly_once(
    work: Path, kind: str, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{work / 'store.db'}"
    else:
        from tests.conftest import PG_ADMIN, _fresh_database

        url, engine, name = _fresh_database(PG_ADMIN, "postgresql")
        request.addfinalizer(lambda: _drop(engine, name))
    rng = random.Random(f"{kind}-{backend}")
    outcomes = [
        run_one(work, f"eo-{i}", url, kind=kind, trials=9, kills=3, rng=rng) for i in range(1)
    ]
    for o in outcomes:
        assert o.kills >= 1, o  # at least one kill landed on a live controller
        assert o.state == "Succeeded", o
        assert o.trials == 9, o
        assert (o.lost, o.twice, o.tracebacks) == (0, 0, 0), o


def _drop(engine: object, name: str) -> None:
    import sqlalchemy as sa

    assert isinstance(engine, sa.Engine)
    with engine.connect() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    engine.dispose()
