"""The durable store on SQLite, PostgreSQL and MariaDB: experiments, trials, observations,
leases, and a whole tuning run read back through a fresh client."""

from __future__ import annotations

import math
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

import automl
from automl import Client
from automl.core import (
    ExperimentSpec,
    ExperimentState,
    MetricSummary,
    Observation,
    TrialRecord,
    TrialState,
)
from automl.errors import AlreadyExistsError, NotFoundError, StorageError
from automl.spec import parse_spec
from automl.store import Store, normalize_url

pytestmark = pytest.mark.integration

UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/x"
UNREACHABLE_MYSQL = "mysql+pymysql://root@127.0.0.1:1/x"


def _spec(tmp_path: Path, name: str = "exp-a", max_trials: int = 4) -> ExperimentSpec:
    text = f"""
name: {name}
objective: {{metric: loss, direction: minimize}}
algorithm: random
parameters:
  lr: {{type: double, min: 0.001, max: 0.1, log: true}}
  layers: {{type: int, min: 1, max: 4}}
  act: [relu, tanh]
budget: {{max_trials: {max_trials}, parallel: 2}}
trial:
  command: [python, train.py, "--lr=${{lr}}", "--layers=${{layers}}", "--act=${{act}}"]
"""
    return parse_spec(text, base_dir=tmp_path)


def _trial(exp_id: str, number: int, params: dict, state: TrialState = TrialState.RUNNING):
    now = time.time()
    return TrialRecord(
        id=f"t-{uuid.uuid4().hex[:10]}",
        experiment_id=exp_id,
        number=number,
        params=params,
        state=state,
        created_at=now,
        started_at=now,
        attrs={"k": [1, 2]},
    )


# -- experiments ----------------------------------------------------------------------------


def test_experiment_create_get_list_delete(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    try:
        a = store.experiments.create(_spec(tmp_path, "exp-a"))
        b = store.experiments.create(_spec(tmp_path, "exp-b"))
        assert a.state is ExperimentState.CREATED
        assert a.reason == "" and a.message == ""
        assert a.started_at is None and a.finished_at is None
        assert a.controller is None and a.stop_requested is False
        assert a.spec == _spec(tmp_path, "exp-a")  # the spec round-trips through the store
        got = store.experiments.get("exp-a")
        assert got.id == a.id
        assert got.created_at == a.created_at
        assert [e.name for e in store.experiments.list()] == ["exp-a", "exp-b"]

        store.experiments.update(
            b.id,
            state=ExperimentState.SUCCEEDED,
            reason="ExperimentMaxTrialsReached",
            message="done",
            sampler_state={"i": 3},
        )
        b2 = store.experiments.get("exp-b")
        assert b2.state is ExperimentState.SUCCEEDED
        assert b2.reason == "ExperimentMaxTrialsReached"
        assert b2.sampler_state == {"i": 3}

        store.experiments.delete("exp-a")
        with pytest.raises(NotFoundError, match="exp-a"):
            store.experiments.get("exp-a")
        with pytest.raises(NotFoundError):
            store.experiments.delete("exp-a")
        assert [e.name for e in store.experiments.list()] == ["exp-b"]
    finally:
        store.close()


def test_duplicate_name_already_exists(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    try:
        store.experiments.create(_spec(tmp_path, "dup"))
        with pytest.raises(AlreadyExistsError, match="'dup' already exists"):
            store.experiments.create(_spec(tmp_path, "dup"))
        # Nothing half-written: still exactly one experiment, and the store still works.
        assert [e.name for e in store.experiments.list()] == ["dup"]
        store.experiments.create(_spec(tmp_path, "dup-2"))
    finally:
        store.close()


def test_reopen_existing_store_keeps_data(store_url: str, tmp_path: Path) -> None:
    s1 = Store(store_url)
    s1.experiments.create(_spec(tmp_path, "persist"))
    s1.close()
    s2 = Store(store_url)  # schema already at head: no migration, data still there
    try:
        assert s2.experiments.get("persist").name == "persist"
    finally:
        s2.close()


# -- trials and observations ----------------------------------------------------------------


def test_trials_add_finish_observations(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    try:
        exp = store.experiments.create(_spec(tmp_path))
        params = {"lr": 0.012345678901234567, "layers": 3, "act": "tanh", "flag": True}
        t0 = _trial(exp.id, 0, params)
        t1 = _trial(exp.id, 1, {"lr": 0.05, "layers": 1, "act": "relu", "flag": False})
        store.trials.add([t0, t1], sampler_state={"seen": 2})
        assert store.experiments.get(exp.name).sampler_state == {"seen": 2}

        listed = store.trials.list(exp.id)
        assert [t.id for t in listed] == [t0.id, t1.id]
        p = listed[0].params
        assert p == params
        assert type(p["layers"]) is int and type(p["lr"]) is float and p["flag"] is True
        assert listed[0].state is TrialState.RUNNING
        assert listed[0].attrs == {"k": [1, 2]}

        store.trials.update(t0.id, runner={"pid": 123, "workdir": "/tmp/w"})
        assert store.trials.runners(exp.id)[t0.id]["pid"] == 123
        assert store.trials.list(exp.id)[0].workdir == "/tmp/w"

        obs = [
            Observation(t0.id, "loss", 0.5, 1, time.time()),
            Observation(t0.id, "loss", 0.25, 2, time.time()),
        ]
        store.observations.append(obs)
        finished_at = time.time()
        value = 0.1234567890123456789
        store.trials.finish(
            t0.id,
            TrialState.SUCCEEDED,
            value,
            {"loss": MetricSummary(value, 0.5, value)},
            "",
            observations=[Observation(t0.id, "loss", value, 3, time.time())],
            finished_at=finished_at,
        )
        store.trials.finish(t1.id, TrialState.FAILED, None, {}, "x" * 30000)

        done = {t.id: t for t in store.trials.list(exp.id)}
        s = done[t0.id]
        assert s.state is TrialState.SUCCEEDED
        assert s.value == value  # full double precision on every backend
        assert s.finished_at == finished_at
        assert s.metrics == {"loss": MetricSummary(value, 0.5, value)}
        assert s.duration is not None and s.duration >= 0
        f = done[t1.id]
        assert f.state is TrialState.FAILED
        assert f.value is None
        assert len(f.message) == 20000  # messages are capped

        steps = [(o.metric, o.step, o.value) for o in store.observations.list(t0.id)]
        assert steps == [("loss", 1, 0.5), ("loss", 2, 0.25), ("loss", 3, value)]
        assert len(store.observations.for_experiment(exp.id)) == 3
        # Only active trials have runner details.
        assert store.trials.runners(exp.id) == {}
    finally:
        store.close()


def test_non_finite_values_are_stored_as_null(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    try:
        exp = store.experiments.create(_spec(tmp_path))
        t = _trial(exp.id, 0, {"lr": 0.01, "layers": 1, "act": "relu"})
        store.trials.add([t])
        store.observations.append([Observation(t.id, "loss", float("nan"), None, 1.0)])
        store.trials.finish(
            t.id, TrialState.SUCCEEDED, float("inf"), {"loss": MetricSummary(1, 2, 2)}, ""
        )
        (o,) = store.observations.list(t.id)
        assert math.isnan(o.value) and o.step is None
        assert store.trials.list(exp.id)[0].value is None
    finally:
        store.close()


def test_trial_number_unique_per_experiment(store_url: str, tmp_path: Path) -> None:
    from sqlalchemy.exc import IntegrityError

    store = Store(store_url)
    try:
        exp = store.experiments.create(_spec(tmp_path))
        store.trials.add([_trial(exp.id, 0, {"lr": 0.01, "layers": 1, "act": "relu"})])
        with pytest.raises(IntegrityError):
            store.trials.add([_trial(exp.id, 0, {"lr": 0.02, "layers": 1, "act": "relu"})])
        assert len(store.trials.list(exp.id)) == 1
    finally:
        store.close()


def test_a_refused_write_keeps_nothing_of_its_transaction(store_url: str, tmp_path: Path) -> None:
    """The loop's writes (automl.store._driver) are all-or-nothing, with SQLAlchemy's errors."""
    from sqlalchemy.exc import IntegrityError

    from automl.store import TrialEnd

    store = Store(store_url)
    try:
        exp = store.experiments.create(_spec(tmp_path))
        t0 = _trial(exp.id, 0, {"lr": 0.01, "layers": 1, "act": "relu"})
        store.trials.add([t0])
        end = TrialEnd(
            t0.id,
            TrialState.SUCCEEDED,
            0.5,
            {"loss": MetricSummary(0.5, 0.5, 0.5)},
            "",
            (Observation(t0.id, "loss", 0.5, 1, 1.0),),
            2.0,
        )
        clash = _trial(exp.id, 0, {"lr": 0.02, "layers": 1, "act": "relu"})  # number 0 again
        with pytest.raises(IntegrityError):
            store.trials.add([clash], sampler_state={"n": 1}, ends=[end])
        # Neither the end nor its observation nor the sampler state was kept...
        (t,) = store.trials.list(exp.id)
        assert t.state is TrialState.RUNNING and t.value is None
        assert store.observations.list(t0.id) == []
        assert store.experiments.get(exp.name).sampler_state == {}
        # ...and the same end goes through with the next trial.
        store.trials.add([_trial(exp.id, 1, {"lr": 0.03, "layers": 2, "act": "relu"})], ends=[end])
        assert [x.state for x in store.trials.list(exp.id)] == [
            TrialState.SUCCEEDED,
            TrialState.RUNNING,
        ]
        assert [o.value for o in store.observations.list(t0.id)] == [0.5]
    finally:
        store.close()


@pytest.mark.parametrize("store_url", ["postgresql", "mariadb"], indirect=True)
def test_the_loop_writes_on_after_the_server_drops_its_connections(
    store_url: str, tmp_path: Path
) -> None:
    """A database server restarted (its sessions killed) costs the controller nothing: the pool
    replaces the dead connections before the next trial's start is written."""
    store = Store(store_url)
    try:
        exp = store.experiments.create(_spec(tmp_path))
        store.trials.add([_trial(exp.id, 0, {"lr": 0.01, "layers": 1, "act": "relu"})])
        url = sa.engine.make_url(store_url)
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            if url.get_backend_name() == "postgresql":
                c.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": url.database},
                )
            else:
                own = c.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
                ids = c.execute(
                    sa.text("SELECT id FROM information_schema.processlist WHERE db = :db"),
                    {"db": url.database},
                ).scalars()
                for pid in [i for i in ids if i != own]:
                    c.execute(sa.text(f"KILL {int(pid)}"))
        admin.dispose()
        store.trials.add([_trial(exp.id, 1, {"lr": 0.02, "layers": 1, "act": "relu"})])
        assert [t.number for t in store.trials.list(exp.id)] == [0, 1]
    finally:
        store.close()


def test_restart_and_delete_cascade(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    try:
        exp = store.experiments.create(_spec(tmp_path))
        other = store.experiments.create(_spec(tmp_path, "other"))
        t = _trial(exp.id, 0, {"lr": 0.01, "layers": 2, "act": "relu"})
        keep = _trial(other.id, 0, {"lr": 0.02, "layers": 2, "act": "relu"})
        store.trials.add([t])
        store.trials.add([keep])
        store.trials.update(t.id, runner={"pid": 1})
        store.observations.append([Observation(t.id, "loss", 0.3, 1, 1.0)])
        store.observations.append([Observation(keep.id, "loss", 0.4, 1, 1.0)])

        store.trials.restart(t.id, 2)
        (r,) = store.trials.list(exp.id)
        assert r.state is TrialState.CREATED and r.attempt == 2
        assert r.params == t.params and r.started_at is None and r.value is None
        assert store.observations.list(t.id) == []  # the lost attempt's partial data is gone
        assert store.trials.runners(exp.id) == {t.id: {}}

        store.observations.append([Observation(t.id, "loss", 0.3, 1, 1.0)])
        store.experiments.delete(exp.name)
        assert store.trials.list(exp.id) == []
        assert store.observations.list(t.id) == []
        # The other experiment is untouched.
        assert len(store.trials.list(other.id)) == 1
        assert len(store.observations.list(keep.id)) == 1
    finally:
        store.close()


def test_claim_lease(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    try:
        exp = store.experiments.create(_spec(tmp_path))
        now = time.time()
        assert store.experiments.claim(exp.id, "host:1:a", None, now - 30)  # free lease
        assert store.experiments.claim(exp.id, "host:1:a", "host:1:a", now - 30)  # re-entrant
        # Taken while it looked free: the compare-and-swap fails.
        assert not store.experiments.claim(exp.id, "host:3:c", None, time.time() + 1)
        fresh = time.time() - 30
        assert not store.experiments.claim(exp.id, "host:2:b", "host:1:a", fresh)  # fresh lease
        assert store.experiments.get(exp.name).controller == "host:1:a"
        # Once the heartbeat is older than the stale mark, another controller may take over.
        assert store.experiments.claim(exp.id, "host:2:b", "host:1:a", time.time() + 1)
        assert store.experiments.get(exp.name).controller == "host:2:b"
        store.experiments.update(exp.id, stop_requested=True)
        assert store.experiments.stop_requested(exp.id)
    finally:
        store.close()


# -- a whole run per backend ----------------------------------------------------------------


def _quadratic(x: float, n: int, kind: str) -> float:
    return (x - 0.3) ** 2 + n * 0.01 + (0.0 if kind == "a" else 0.5)


def test_tune_run_readable_through_new_client(store_url: str) -> None:
    # An open Store is passed (and closed here); tune(store=<url>) is covered by
    # test_tune_closes_the_store_it_opened.
    writer = Store(store_url)
    try:
        res = _tune_10(writer)
    finally:
        writer.close()
    assert res.experiment.state is ExperimentState.SUCCEEDED
    assert res.reason == "ExperimentMaxTrialsReached"

    client = Client(store_url)
    try:
        (exp,) = client.list()
        assert exp.name == "per-backend" and exp.state is ExperimentState.SUCCEEDED
        assert exp.controller is None and exp.finished_at is not None
        trials = client.trials("per-backend")
        assert len(trials) == 10
        assert [t.number for t in trials] == list(range(10))
        assert len({t.id for t in trials}) == 10
        assert all(t.state is TrialState.SUCCEEDED for t in trials)
        for t in trials:
            assert type(t.params["n"]) is int and type(t.params["x"]) is float
            assert t.value == _quadratic(**t.params)  # exact, no precision lost
            assert t.metrics["objective"].latest == t.value
        best = client.best_trial("per-backend")
        assert best is not None
        assert best.value == min(t.value for t in trials)  # type: ignore[type-var]
        assert res.best_value == best.value
        obs = client.observations("per-backend")
        assert len(obs) == 10 and {o.metric for o in obs} == {"objective"}
        df = client.result("per-backend").trials
        assert len(df) == 10 and set(df["state"]) == {"Succeeded"}
    finally:
        client.store.close()


def _tune_10(store: str | Store) -> automl.TuneResult:
    return automl.tune(
        _quadratic,
        {
            "x": automl.double(-1, 1),
            "n": automl.int(0, 5),
            "kind": automl.categorical(["a", "b"]),
        },
        max_trials=10,
        parallel_trials=2,
        algorithm="tpe",
        seed=1,
        name="per-backend",
        store=store,
    )


_LEAK_SCRIPT = """
import gc, sys
import sqlalchemy as sa
import automl

def objective(x):
    return x * x

automl.tune(objective, {"x": automl.double(0, 1)}, max_trials=2, store=sys.argv[1], name="leak")
gc.collect()
admin = sa.create_engine(sys.argv[2], isolation_level="AUTOCOMMIT")
with admin.connect() as c:
    n = c.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                  {"d": sa.engine.make_url(sys.argv[1]).database}).scalar()
print(f"SESSIONS={n}")
"""


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_tune_closes_the_store_it_opened(store_url: str) -> None:
    # Run in a fresh interpreter: the first run in a process is the one that imports optuna,
    # whose deferred ImportError traceback pins that stack (and so the Store) for good; only
    # closing the store releases its connection.
    from tests.conftest import PG_ADMIN

    database = sa.engine.make_url(store_url).database
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _LEAK_SCRIPT, store_url, PG_ADMIN],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "SESSIONS=0" in proc.stdout, proc.stdout
    finally:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:  # whatever happened, let the fixture drop the database
            c.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid()"
                ),
                {"d": database},
            )
        admin.dispose()


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [UNREACHABLE_PG, UNREACHABLE_MYSQL])
def test_unreachable_store_is_a_clear_storage_error(url: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(StorageError) as info:
        Store(url)
    msg = str(info.value)
    assert msg.startswith("cannot reach store ")
    assert "127.0.0.1:1" in msg
    assert "\n" not in msg  # one line, not a driver dump
    assert time.monotonic() - t0 < 15


def test_sqlite_store_in_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        Store(f"sqlite:///{tmp_path / 'nope' / 'x.db'}")


def test_store_url_forms(tmp_path: Path) -> None:
    assert normalize_url(str(tmp_path / "a.db")).drivername == "sqlite"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("mysql://u@h/db").drivername == "mysql+pymysql"
    with pytest.raises(automl.SpecError, match="store"):
        normalize_url("://x")
    # A bare path is a SQLite file.
    store = Store(str(tmp_path / "bare.db"))
    store.close()
    assert (tmp_path / "bare.db").exists()


def test_bad_port_is_a_spec_error() -> None:
    with pytest.raises(automl.SpecError, match="store"):
        normalize_url("postgresql://u@h:notaport/db")


@pytest.mark.parametrize("url", [UNREACHABLE_PG, UNREACHABLE_MYSQL])
def test_cli_unreachable_store_exit_2_without_traceback(url: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "automl", "list", "--store", url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "cannot reach store" in proc.stderr
    assert "127.0.0.1:1" in proc.stderr
