"""Steering a search by hand (docs/steering.md): enqueue, invalidate and rerun, fork and warm
start, budgets changed while an experiment runs. Real stores, real Optuna, real controllers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import automl
from automl import Client
from automl._steering import warm_history
from automl.cli import app
from automl.core import ExperimentState, TrialState
from automl.errors import NotFoundError, SpecError
from search import create_suggester
from search._optuna import OptunaSuggester, frozen_trials

pytestmark = pytest.mark.integration

SPACE = {"x": automl.double(0.0, 1.0), "k": automl.categorical(["a", "b"]), "n": automl.int(1, 5)}


def objective(x: float, k: str, n: int) -> float:
    return (x - 0.3) ** 2 + (0.0 if k == "a" else 0.5) + 0.01 * n


def tune(url: str, name: str, max_trials: int, **kw: Any) -> automl.TuneResult:
    return automl.tune(
        objective,
        parameters=SPACE,
        algorithm=kw.pop("algorithm", "tpe"),
        seed=0,
        max_trials=max_trials,
        name=name,
        store=url,
        progress=False,
        **kw,
    )


def wait_for(cond: Any, what: str, timeout: float = 60.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def applied(client: Client, exp_id: str) -> bool:
    """Whether the running controller has taken in every change made so far."""
    seq, done = client.store.experiments.steer_status(exp_id)
    return done >= seq


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


# -- enqueue ----------------------------------------------------------------------------------
def test_initial_points_run_first_in_order_and_the_sampler_learns_them(sqlite_url: str) -> None:
    points = [{"x": 0.3, "k": "a", "n": 1}, {"x": "0.9", "k": "b", "n": "5"}]  # strings parsed
    res = tune(sqlite_url, "first", 4, initial_points=points)
    trials = Client(sqlite_url).trials("first")
    assert [dict(t.params) for t in trials[:2]] == [
        {"x": 0.3, "k": "a", "n": 1},
        {"x": 0.9, "k": "b", "n": 5},
    ]
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.enqueued for t in trials[:2]) and not any(t.enqueued for t in trials[2:])
    assert all(t.state is TrialState.SUCCEEDED for t in trials)
    assert res.best_params == {"x": 0.3, "k": "a", "n": 1}


def test_an_enqueued_trial_is_in_optunas_history_with_its_value(sqlite_url: str) -> None:
    tune(sqlite_url, "hist", 3, initial_points=[{"x": 0.5, "k": "b", "n": 2}])
    client = Client(sqlite_url)
    exp = client.get("hist")
    trials = client.trials("hist")
    sug = create_suggester(exp.spec, trials)
    assert isinstance(sug, OptunaSuggester)
    done = [ft for ft in frozen_trials(sug) if ft.params.get("x") == 0.5]
    assert len(done) == 1 and done[0].value == pytest.approx(objective(0.5, "b", 2))
    # Live: a suggester told about an enqueued trial it did not propose learns its outcome.
    live = create_suggester(exp.spec, [])
    assert isinstance(live, OptunaSuggester)
    live.add_pending(trials[0])
    assert frozen_trials(live)[0].params["x"] == 0.5
    live.tell(trials[0])
    assert frozen_trials(live)[0].value == pytest.approx(trials[0].value)


def test_enqueue_refuses_values_outside_the_space_naming_the_parameter(sqlite_url: str) -> None:
    tune(sqlite_url, "bad", 1)
    client = Client(sqlite_url)
    with pytest.raises(SpecError) as exc:
        client.enqueue("bad", {"x": 2.0, "k": "c", "n": 2.5, "zz": 1})
    text = str(exc.value)
    assert "params.x: must be a number in [0, 1]; got 2.0" in text
    assert "params.k: must be one of ['a', 'b']; got 'c'" in text
    assert "params.n: must be an int in [1, 5]; got 2.5" in text
    assert "params.zz: is not a parameter" in text
    assert len(client.trials("bad")) == 1  # nothing stored
    r = cli(
        "enqueue", "bad", "--param", "x=7", "--param", "k=a", "--param", "n=1", "-s", sqlite_url
    )
    assert r.exit_code == 2 and "params.x: must be a number in [0, 1]; got '7'" in r.output
    with pytest.raises(SpecError, match=r"initial_points\[0\]\.n: must be an int in \[1, 5\]"):
        tune(sqlite_url, "bad2", 1, initial_points=[{"x": 0.1, "k": "a", "n": 9}])
    with pytest.raises(NotFoundError):
        client.enqueue("nope", {"x": 0.1})


def test_an_enqueued_trial_waits_for_the_run_and_runs_once(sqlite_url: str) -> None:
    """Enqueued before the experiment runs (and again after it ended): each runs exactly once."""
    tune(sqlite_url, "once", 2)
    r = cli("enqueue", "once", "-p", "x=0.25", "-p", "k=b", "-p", "n=3", "-s", sqlite_url)
    assert r.exit_code == 0, r.output
    client = Client(sqlite_url)
    waiting = [t for t in client.trials("once") if t.state is TrialState.CREATED]
    assert len(waiting) == 1 and waiting[0].number < 0 and waiting[0].enqueued
    client.resume("once", objective=objective, max_trials=4, progress=False)
    trials = client.trials("once")
    runs = [t for t in trials if t.params == {"x": 0.25, "k": "b", "n": 3}]
    assert len(runs) == 1 and runs[0].number == 2 and runs[0].state is TrialState.SUCCEEDED
    assert len(trials) == 4 and all(t.state is TrialState.SUCCEEDED for t in trials)


# -- invalidate and rerun -----------------------------------------------------------------------
def test_invalidate_excludes_a_trial_from_best_and_history_and_undo_restores_it(
    sqlite_url: str,
) -> None:
    tune(sqlite_url, "inv", 6, initial_points=[{"x": 0.3, "k": "a", "n": 1}])
    client = Client(sqlite_url)
    best = client.best_trial("inv")
    assert best is not None and best.number == 0
    r = cli("invalidate", "inv", best.id, "--reason", "node lost its GPU", "-s", sqlite_url)
    assert r.exit_code == 0, r.output
    after = client.best_trial("inv")
    assert after is not None and after.id != best.id
    assert client.result("inv").best_trial is not None
    assert client.result("inv").best_trial.id == after.id  # type: ignore[union-attr]
    stored = {t.id: t for t in client.trials("inv")}
    assert stored[best.id].invalidated and stored[best.id].state is TrialState.SUCCEEDED
    assert stored[best.id].attrs["invalidated"]["reason"] == "node lost its GPU"
    # `automl show`: kept, struck out, with the reason.
    shown = cli("show", "inv", "-s", sqlite_url)
    assert "invalidated: node lost its GPU" in shown.output
    colour = subprocess.run(
        [sys.executable, "-m", "automl", "show", "inv", "-s", sqlite_url],
        capture_output=True,
        text=True,
        env={**os.environ, "FORCE_COLOR": "1"},
        check=True,
    ).stdout
    struck = [line for line in colour.splitlines() if best.id in line]
    assert len(struck) == 1 and "\x1b[2;9m" in struck[0]  # rich's dim + strike
    # A resumed search does not see it (the controller builds its history this way).
    resumed = client.resume("inv", objective=objective, max_trials=7, progress=False)
    assert resumed.best_trial is not None and resumed.best_trial.id != best.id
    # By number, and back.
    assert cli("invalidate", "inv", "0", "--undo", "-s", sqlite_url).exit_code == 0
    restored = client.best_trial("inv")
    assert restored is not None and restored.id == best.id


def test_invalidated_trials_leave_the_suggesters_history(sqlite_url: str) -> None:
    tune(sqlite_url, "hist2", 4)
    client = Client(sqlite_url)
    victim = client.trials("hist2")[1]
    client.invalidate("hist2", victim.id, "bad node")
    # The controller's rule, rebuilt from the store: every trial but the invalidated one.
    exp = client.get("hist2")
    history = [t for t in client.trials("hist2") if not t.invalidated]
    sug = create_suggester(exp.spec, history)
    xs = {ft.params["x"] for ft in frozen_trials(sug)}  # type: ignore[arg-type]
    assert victim.params["x"] not in xs and len(xs) == 3


def test_unknown_trial_or_running_trial_is_refused_with_exit_2(sqlite_url: str) -> None:
    tune(sqlite_url, "unk", 1)
    r = cli("invalidate", "unk", "unk-nothere", "-s", sqlite_url)
    assert r.exit_code == 2 and "has no trial 'unk-nothere'" in r.output
    r = cli("rerun", "unk", "42", "-s", sqlite_url)
    assert r.exit_code == 2 and "has no trial '42'" in r.output
    r = cli("invalidate", "nope", "1", "-s", sqlite_url)
    assert r.exit_code == 2 and "no experiment named 'nope'" in r.output


def test_rerun_runs_a_trials_parameters_again_as_a_new_trial(sqlite_url: str) -> None:
    tune(sqlite_url, "again", 2)
    client = Client(sqlite_url)
    first = client.trials("again")[0]
    r = cli("rerun", "again", first.id, "-s", sqlite_url)
    assert r.exit_code == 0, r.output
    client.resume("again", objective=objective, max_trials=3, progress=False)
    new = client.trials("again")[2]
    assert new.params == first.params and new.attrs["rerun_of"] == first.id
    assert new.state is TrialState.SUCCEEDED and new.value == pytest.approx(first.value)


# -- fork and warm start -----------------------------------------------------------------------
def test_fork_starts_from_the_old_trials_and_suggests_differently(sqlite_url: str) -> None:
    tune(sqlite_url, "src", 12)  # more than TPE's 10 random start-up trials
    client = Client(sqlite_url)
    forked = client.fork("src", "src-fork", max_trials=3)
    assert (forked.kept, forked.total) == (12, 12)
    assert forked.experiment.spec.max_trial_count == 3
    spec = client.get("src-fork").spec
    history = warm_history(client.store, spec)
    assert {t.id for t in history} == {t.id for t in client.trials("src")}
    sug = create_suggester(spec, history)
    assert len(frozen_trials(sug)) == 12  # type: ignore[arg-type]
    warm = client.resume("src-fork", objective=objective, progress=False)
    tune(sqlite_url, "cold", 3)
    warm_first = [t.params for t in client.trials("src-fork")]
    cold_first = [t.params for t in client.trials("cold")]
    assert warm.experiment.state is ExperimentState.SUCCEEDED and len(warm_first) == 3
    assert warm_first != cold_first
    # The cold run with the same seed repeats the source's first suggestions; the fork does not.
    assert cold_first == [t.params for t in client.trials("src")[:3]]


def test_tune_warm_start_and_a_fork_with_a_changed_space(sqlite_url: str, tmp_path: Path) -> None:
    tune(sqlite_url, "base", 6)
    res = tune(sqlite_url, "warmed", 2, warm_start="base")
    client = Client(sqlite_url)
    assert client.get("warmed").spec.warm_start == "base" and len(res.trials) == 2
    old_xs = sorted(t.params["x"] for t in client.trials("base"))  # type: ignore[type-var]
    cut = (old_xs[2] + old_xs[3]) / 2  # half of the old trials fit [0, cut]
    doc = {
        "name": "ignored",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "tpe",
        "parameters": {
            "x": {"type": "double", "min": 0, "max": cut},
            "k": {"type": "categorical", "values": ["a", "b"]},
            "n": {"type": "int", "min": 1, "max": 5},
        },
        "budget": {"max_trials": 2},
        "trial": {"command": ["python", "-c", "print('loss=1')"]},
    }
    f = tmp_path / "narrow.yaml"
    f.write_text(yaml.safe_dump(doc))
    r = cli("fork", "base", "narrow", "--spec", str(f), "--no-run", "-s", sqlite_url)
    assert r.exit_code == 0, r.output
    assert "starts from 3 of 6 finished trials" in r.output
    assert len(warm_history(client.store, client.get("narrow").spec)) == 3
    r = cli("fork", "base", "narrow", "--no-run", "-s", sqlite_url)
    assert r.exit_code == 2 and "already exists" in r.output


# -- budgets while it runs ---------------------------------------------------------------------
def test_budgets_change_while_it_runs_and_lowering_parallelism_kills_nothing(
    sqlite_url: str,
) -> None:
    release = threading.Event()

    def slow(x: float, k: str, n: int) -> float:
        assert release.wait(60), "the test never released the trials"
        return objective(x, k, n)

    box: dict[str, Any] = {}

    def run() -> None:
        box["result"] = automl.tune(
            slow,
            parameters=SPACE,
            algorithm="random",
            seed=0,
            max_trials=10,
            parallel_trials=2,
            name="live",
            store=sqlite_url,
            progress=False,
        )

    client = Client(sqlite_url)  # the store exists before the experiment's thread opens it
    thread = threading.Thread(target=run)
    thread.start()
    try:

        def states() -> list[TrialState]:
            try:
                return [t.state for t in client.trials("live")]
            except NotFoundError:
                return []

        wait_for(lambda: states().count(TrialState.RUNNING) == 2, "two running trials")
        enq = client.enqueue("live", {"x": 0.125, "k": "b", "n": 4})
        r = cli("budget", "live", "--parallel", "3", "-s", sqlite_url)
        assert r.exit_code == 0 and "parallel_trials 3" in r.output, r.output
        # The controller applies both at its next turn: the enqueued trial takes the new slot.
        wait_for(
            lambda: any(
                t.id == enq.id and t.state is TrialState.RUNNING for t in client.trials("live")
            ),
            "the enqueued trial to start in the third slot",
        )
        assert states().count(TrialState.RUNNING) == 3
        e = client.set_budget("live", parallel_trials=1, max_trials=4)
        assert (e.spec.parallel_trial_count, e.spec.max_trial_count) == (1, 4)
        wait_for(lambda: applied(client, e.id), "the controller to apply the new budgets")
        assert states().count(TrialState.RUNNING) == 3  # lowering parallelism killed nothing
        release.set()
    finally:
        release.set()
        thread.join(120)
    trials = Client(sqlite_url).trials("live")
    assert box["result"].experiment.state is ExperimentState.SUCCEEDED
    assert box["result"].experiment.reason == "ExperimentMaxTrialsReached"
    assert len(trials) == 4 and all(t.state is TrialState.SUCCEEDED for t in trials)
    assert [t.params for t in trials if t.id == enq.id] == [{"x": 0.125, "k": "b", "n": 4}]


def test_budget_refuses_bad_values_with_their_option_names(sqlite_url: str) -> None:
    tune(sqlite_url, "bb", 1)
    r = cli("budget", "bb", "--parallel", "0", "-s", sqlite_url)
    assert r.exit_code == 2 and "parallel_trials" in r.output
    r = cli("budget", "bb", "--timeout", "soon", "-s", sqlite_url)
    assert r.exit_code == 2 and "--timeout" in r.output
    r = cli("budget", "bb", "--timeout", "1h", "--max-trials", "9", "--json", "-s", sqlite_url)
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["timeout"] == 3600 and data["max_trials"] == 9


def test_a_running_controller_rebuilds_its_search_without_an_invalidated_trial(
    sqlite_url: str,
) -> None:
    """Grid over three points: invalidating a finished one while the experiment runs frees its
    point, so the rebuilt grid proposes it again (without the rebuild the grid ends at three)."""
    release = threading.Event()
    calls: list[float] = []

    def gated(x: float) -> float:
        calls.append(x)
        if len(calls) > 1:  # the first trial ends at once; the others wait for the test
            assert release.wait(60), "the test never released the trials"
        return x

    box: dict[str, Any] = {}

    def run() -> None:
        box["result"] = automl.tune(
            gated,
            parameters={"x": automl.double(0.0, 1.0, step=0.5)},
            algorithm="grid",
            seed=0,
            max_trials=10,
            parallel_trials=2,
            name="regrid",
            store=sqlite_url,
            progress=False,
        )

    client = Client(sqlite_url)
    thread = threading.Thread(target=run)
    thread.start()
    try:

        def trials() -> list[Any]:
            try:
                return client.trials("regrid")
            except NotFoundError:
                return []

        wait_for(
            lambda: (
                [t.state for t in trials()].count(TrialState.RUNNING) == 2 and len(trials()) == 3
            ),
            "one finished and two running trials",
        )
        first = next(t for t in trials() if t.state is TrialState.SUCCEEDED)
        client.invalidate("regrid", first.id, "ran on a broken node")
        exp_id = client.get("regrid").id
        wait_for(lambda: applied(client, exp_id), "the controller to apply the invalidation")
        release.set()
    finally:
        release.set()
        thread.join(120)
    done = client.trials("regrid")
    assert box["result"].experiment.reason == "SearchSpaceExhausted"
    assert len(done) == 4 and done[3].params == first.params
    assert sorted(float(t.params["x"]) for t in done[:3]) == [0.0, 0.5, 1.0]  # type: ignore[arg-type]
    best = box["result"].best_trial
    assert best is not None and best.id != first.id  # never the invalidated trial


def test_live_max_failed_and_time_budgets(sqlite_url: str) -> None:
    """maxFailedTrialCount and the time budget set while trials run end the experiment."""
    release = threading.Event()

    def failing(x: float) -> float:
        assert release.wait(60), "the test never released the trials"
        raise RuntimeError("diverged")

    def blocked(x: float) -> float:
        release.wait(60)
        return x

    def start(name: str, fn: Any, box: dict[str, Any]) -> threading.Thread:
        def run() -> None:
            box["result"] = automl.tune(
                fn,
                parameters={"x": automl.double(0, 1)},
                algorithm="random",
                seed=0,
                max_trials=10,
                parallel_trials=2,
                name=name,
                store=sqlite_url,
                progress=False,
            )

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    client = Client(sqlite_url)

    def running(name: str) -> int:
        try:
            return [t.state for t in client.trials(name)].count(TrialState.RUNNING)
        except NotFoundError:
            return 0

    failed: dict[str, Any] = {}
    thread = start("fails", failing, failed)
    try:
        wait_for(lambda: running("fails") == 2, "two running trials")
        exp_id = client.set_budget("fails", max_failed_trials=1).id
        wait_for(lambda: applied(client, exp_id), "the controller to apply maxFailedTrialCount")
        release.set()
    finally:
        release.set()
        thread.join(120)
    assert failed["result"].experiment.reason == "ExperimentFailed"
    assert len(client.trials("fails")) == 2  # no trial started after the first failure

    release.clear()
    timed: dict[str, Any] = {}
    thread = start("times", blocked, timed)
    try:
        wait_for(lambda: running("times") == 2, "two running trials")
        r = cli("budget", "times", "--timeout", "0.001s", "-s", sqlite_url)
        assert r.exit_code == 0, r.output
        wait_for(lambda: client.get("times").state.is_terminal, "the time budget to end it")
    finally:
        release.set()
        thread.join(120)
    assert timed["result"].experiment.reason == "ExperimentTimeoutReached"
    assert [t.state for t in client.trials("times")] == [TrialState.KILLED, TrialState.KILLED]


GATED = """
import os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "ledger"), "a") as fh:
    fh.write(f"start {sys.argv[1]}\\n")
while not os.path.exists(os.path.join(here, "go")):
    time.sleep(0.05)
print(f"loss={sys.argv[1]}")
"""


def test_an_enqueued_trial_runs_once_across_a_killed_controller(tmp_path: Path) -> None:
    (tmp_path / "gated.py").write_text(GATED)
    doc = {
        "name": "killed",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "seed": 0,
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 3},
        "trial": {"command": ["python", "gated.py", "${x}"], "workdir": str(tmp_path)},
    }
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    client = Client(url, runs_dir=tmp_path / "runs")
    client.create(f)
    for x in ("0.125", "0.875"):
        assert cli("enqueue", "killed", "-p", f"x={x}", "-s", url).exit_code == 0
    argv = [sys.executable, "-m", "automl", "resume", "killed", "--store", url, "--no-progress"]
    argv += ["--runs-dir", str(tmp_path / "runs")]
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(
            lambda: (
                (tmp_path / "ledger").exists()
                and any(t.state is TrialState.RUNNING for t in client.trials("killed"))
            ),
            "the first enqueued trial to run",
        )
    finally:
        first.send_signal(signal.SIGKILL)  # the controller dies; its trial's process lives on
        first.wait(30)
    (tmp_path / "go").touch()  # the adopted trial may end now, watched or not
    second = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stdout + second.stderr
    trials = client.trials("killed")
    assert [t.params["x"] for t in trials[:2]] == [0.125, 0.875]
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state is TrialState.SUCCEEDED for t in trials)
    ledger = (tmp_path / "ledger").read_text().splitlines()
    assert ledger.count("start 0.125") == 1 and ledger.count("start 0.875") == 1
    assert len(ledger) == 3


def test_algorithms_that_schedule_every_trial_refuse_enqueue_and_fork(
    sqlite_url: str, tmp_path: Path
) -> None:
    doc = {
        "name": "hb",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": {
            "name": "hyperband",
            "settings": {"resource_name": "epochs", "r_l": 3, "eta": 3},
        },
        "parameters": {
            "x": {"type": "double", "min": 0, "max": 1},
            "epochs": {"type": "int", "min": 1, "max": 9},
        },
        "budget": {"parallel": 3},
        "trial": {"command": ["python", "-c", "print('loss=1')"]},
    }
    f = tmp_path / "hb.yaml"
    f.write_text(yaml.safe_dump(doc))
    client = Client(sqlite_url)
    client.create(f)
    with pytest.raises(
        SpecError, match="algorithm: enqueue is not possible with algorithm hyperband"
    ):
        client.enqueue("hb", {"x": 0.5, "epochs": 3})
    r = cli("fork", "hb", "hb2", "--no-run", "-s", sqlite_url)
    assert r.exit_code == 2 and "a warm start (fork) is not possible" in r.output


def test_steering_on_every_backend(store_url: str) -> None:
    """SQLite, PostgreSQL and MariaDB: each change is stored with a bump of the counter."""
    tune(store_url, "every", 2)
    with Client(store_url) as client:  # closed: the fixture drops the database after
        check_every(client)


def check_every(client: Client) -> None:
    exp_id = client.get("every").id
    seq = client.store.experiments.steer_status(exp_id)[0]
    a = client.enqueue("every", {"x": 0.5, "k": "a", "n": 2})
    b = client.enqueue("every", {"x": 0.25, "k": "b", "n": 3})
    assert (a.number, b.number) == (-1, -2)
    first = next(t for t in client.trials("every") if t.number == 0)
    assert client.invalidate("every", first.id, "bad").invalidated
    client.set_budget("every", max_trials=5, timeout=30)
    assert client.store.experiments.steer_status(exp_id)[0] == seq + 4
    f = client.fork("every", "every-2")
    assert (f.kept, f.total) == (1, 1)  # the invalidated trial is left out
    res = client.resume("every", objective=objective, progress=False)
    trials = client.trials("every")
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert [t.params["x"] for t in trials[2:4]] == [0.5, 0.25]
    assert res.best_trial is not None and res.best_trial.id != first.id
