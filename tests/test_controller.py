"""The controller: end reasons (goal, failures, trial count, time, grid), stop requests,
in-process objectives (raise, dict, report, typed values) and the lease."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import automl
from automl import Client
from automl.core import ExperimentState, TrialState
from automl.errors import ExperimentBusyError

pytestmark = pytest.mark.integration


def write_exp(
    tmp_path: Path,
    script: str,
    *,
    name: str,
    parameters: dict[str, Any] | None = None,
    objective: dict[str, Any] | None = None,
    budget: dict[str, Any] | None = None,
    trial: dict[str, Any] | None = None,
    algorithm: Any = "random",
) -> Path:
    (tmp_path / "script.py").write_text(script)
    doc = {
        "name": name,
        "objective": objective or {"metric": "loss", "direction": "minimize"},
        "algorithm": algorithm,
        "seed": 0,
        "parameters": parameters or {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": budget or {"max_trials": 1},
        "trial": {"command": ["python", "script.py", "${x}"], **(trial or {})},
    }
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


def client_for(tmp_path: Path) -> Client:
    return Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for(cond: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# Trial 0 sleeps; trial 1 reaches the goal at once (trials read their number from automl).
NUMBERED = """
import os, sys, time
import automl
n = automl.current_trial().number
with open(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "pid"), "w") as fh:
    fh.write(str(os.getpid()))
open(f"started-{n}", "w").close()  # in the spec's directory, shared by the trials
if n == 1:
    end = time.time() + 20
    while not os.path.exists("started-0") and time.time() < end:  # trial 0 is running
        time.sleep(0.01)
    print("loss=0.01")
else:
    time.sleep(60)
    print("loss=5")
"""


# -- end reasons ----------------------------------------------------------------------------


def test_max_trials_reached(tmp_path: Path) -> None:
    f = write_exp(
        tmp_path,
        'import sys\nprint(f"loss={sys.argv[1]}")\n',
        name="maxt",
        budget={"max_trials": 5, "parallel": 2},
    )
    client = client_for(tmp_path)
    res = client.run(f)
    assert res.experiment.state is ExperimentState.SUCCEEDED
    assert res.reason == "ExperimentMaxTrialsReached"
    trials = client.trials("maxt")
    assert len(trials) == 5 and all(t.state is TrialState.SUCCEEDED for t in trials)
    for t in trials:
        assert t.value == pytest.approx(t.params["x"])
    assert res.best_value == min(t.value for t in trials)  # type: ignore[type-var]
    e = client.get("maxt")
    assert e.controller is None and e.heartbeat_at is None  # the lease is released
    assert e.started_at is not None and e.finished_at is not None


def test_goal_reached_kills_running_trials(tmp_path: Path) -> None:
    f = write_exp(
        tmp_path,
        NUMBERED,
        name="goal",
        objective={"metric": "loss", "direction": "minimize", "goal": 0.1},
        budget={"max_trials": 6, "parallel": 2},
    )
    client = client_for(tmp_path)
    res = client.run(f)
    assert res.experiment.state is ExperimentState.SUCCEEDED
    assert res.reason == "ExperimentGoalReached"
    by_number = {t.number: t for t in client.trials("goal")}
    assert by_number[1].state is TrialState.SUCCEEDED and by_number[1].value == 0.01
    assert by_number[0].state is TrialState.KILLED
    assert set(by_number) == {0, 1}  # nothing new was started once the goal was met
    assert res.best_trial is not None and res.best_trial.number == 1
    pid = int(Path(by_number[0].workdir or "", "pid").read_text())
    assert not alive(pid)


def test_max_failed_trials_fails_the_experiment(tmp_path: Path) -> None:
    f = write_exp(
        tmp_path,
        "import sys\nprint('boom')\nsys.exit(2)\n",
        name="fails",
        budget={"max_trials": 6, "parallel": 1, "max_failed": 2},
    )
    client = client_for(tmp_path)
    res = client.run(f)
    assert res.experiment.state is ExperimentState.FAILED
    assert res.reason == "ExperimentFailed"
    assert "maxFailedTrialCount 2" in res.experiment.message
    trials = client.trials("fails")
    assert len(trials) == 2
    assert all(t.state is TrialState.FAILED and "exit code 2" in t.message for t in trials)


def test_metrics_unavailable_counts_as_failure(tmp_path: Path) -> None:
    f = write_exp(
        tmp_path,
        "print('no metric here')\n",
        name="unavail",
        budget={"max_trials": 4, "max_failed": 1},
    )
    res = client_for(tmp_path).run(f)
    assert res.experiment.state is ExperimentState.FAILED
    assert res.reason == "ExperimentFailed"
    assert list(res.trials["state"]) == ["MetricsUnavailable"]


def test_experiment_timeout(tmp_path: Path) -> None:
    f = write_exp(
        tmp_path,
        "import time\ntime.sleep(60)\nprint('loss=1')\n",
        name="exptmo",
        budget={"max_trials": 4, "parallel": 1, "timeout": 1},
    )
    res = client_for(tmp_path).run(f)
    assert res.experiment.state is ExperimentState.SUCCEEDED
    assert res.reason == "ExperimentTimeoutReached"
    assert list(res.trials["state"]) == ["Killed"]  # killed in its sleep: it never printed
    assert res.trials["value"].isna().all()


def test_grid_search_space_exhausted(tmp_path: Path) -> None:
    f = write_exp(
        tmp_path,
        'import sys\nprint(f"loss={len(sys.argv[1])}")\n',
        name="grid",
        algorithm="grid",
        parameters={"x": ["a", "bb", "ccc"]},
        budget={"max_trials": 10, "parallel": 2},
    )
    client = client_for(tmp_path)
    res = client.run(f)
    assert res.reason == "SearchSpaceExhausted"
    trials = client.trials("grid")
    assert sorted(t.params["x"] for t in trials) == ["a", "bb", "ccc"]
    assert res.best_params == {"x": "a"}


# -- stop -----------------------------------------------------------------------------------


def test_stop_from_another_thread_kills_running_trials(tmp_path: Path) -> None:
    script = """
import os, time
open(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "pid"), "w").write(str(os.getpid()))
time.sleep(60)
print("loss=1")
"""
    f = write_exp(tmp_path, script, name="stopme", budget={"max_trials": 6, "parallel": 2})
    url = f"sqlite:///{tmp_path / 'store.db'}"
    runner = Client(url, runs_dir=tmp_path / "runs")
    runner.create(f)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = runner.resume("stopme")
        except BaseException as exc:  # pragma: no cover - reported below
            box["error"] = exc

    th = threading.Thread(target=run, daemon=True)
    th.start()
    other = Client(url)  # another client, its own connection
    wait_for(
        lambda: (
            sum(t.state is TrialState.RUNNING for t in other.trials("stopme")) == 2
            and all(t.workdir and Path(t.workdir, "pid").exists() for t in other.trials("stopme"))
        ),
        what="two running trials",
    )
    pids = [int(Path(t.workdir or "", "pid").read_text()) for t in other.trials("stopme")]
    e = other.stop("stopme")
    assert e.stop_requested and e.state is ExperimentState.RUNNING  # the live controller stops it
    th.join(120)  # the trials sleep 60 s: only the stop ends them as Killed
    assert not th.is_alive()
    assert "error" not in box, box.get("error")
    exp = other.get("stopme")
    assert exp.state is ExperimentState.STOPPED
    assert exp.reason == "ExperimentStopped"
    trials = other.trials("stopme")
    assert len(trials) == 2
    assert all(t.state is TrialState.KILLED for t in trials)
    assert all(not alive(p) for p in pids)
    assert box["result"].experiment.state is ExperimentState.STOPPED


def test_stop_without_controller(tmp_path: Path) -> None:
    f = write_exp(tmp_path, "print('loss=1')\n", name="idle")
    client = client_for(tmp_path)
    client.create(f)
    e = client.stop("idle")
    assert e.state is ExperimentState.STOPPED
    assert e.reason == "ExperimentStopped"
    assert client.stop("idle").state is ExperimentState.STOPPED  # idempotent


def test_busy_experiment_is_refused(tmp_path: Path) -> None:
    f = write_exp(
        tmp_path,
        "import time\ntime.sleep(60)\n",
        name="busy",
        budget={"max_trials": 2, "parallel": 1},
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first = Client(url, runs_dir=tmp_path / "runs")
    first.create(f)
    th = threading.Thread(target=lambda: first.resume("busy"), daemon=True)
    th.start()
    second = Client(url, runs_dir=tmp_path / "runs2")
    wait_for(lambda: second.trials("busy"), what="a running trial")
    # Same process id, but a different controller: the lease is fresh, so it is refused.
    with pytest.raises(ExperimentBusyError, match="is being run by controller"):
        second.resume("busy")
    with pytest.raises(automl.AutoMLError, match="stop it first"):
        second.delete("busy")
    assert [t.attempt for t in second.trials("busy")] == [1]  # nothing was restarted
    second.stop("busy")
    th.join(30)
    assert not th.is_alive()
    assert second.get("busy").state is ExperimentState.STOPPED


# -- in-process objectives ------------------------------------------------------------------


def test_in_process_objective_that_raises(sqlite_url: str) -> None:
    def objective(x: float) -> float:
        if x > 0.5:
            raise ValueError(f"x too large: {x}")
        return x

    res = automl.tune(
        objective,
        {"x": automl.double(0, 1)},
        max_trials=8,
        seed=3,
        algorithm="random",
        store=sqlite_url,
        name="raises",
    )
    assert res.experiment.state is ExperimentState.SUCCEEDED
    assert res.reason == "ExperimentMaxTrialsReached"
    trials = Client(sqlite_url).trials("raises")
    failed = [t for t in trials if t.state is TrialState.FAILED]
    ok = [t for t in trials if t.state is TrialState.SUCCEEDED]
    assert failed and ok and len(failed) + len(ok) == 8
    for t in failed:
        assert t.params["x"] > 0.5
        assert "ValueError: x too large" in t.message
        assert "Traceback" in t.message
    assert res.best_params["x"] <= 0.5


def test_in_process_dict_and_non_numeric_results(sqlite_url: str) -> None:
    def objective(params: dict[str, Any]) -> Any:
        if params["mode"] == "bad":
            return {"loss": "not a number"}
        if params["mode"] == "text":
            return "oops"
        return {"loss": params["x"] ** 2, "acc": 1 - params["x"], "extra": 3}

    res = automl.tune(
        objective,
        {"x": automl.double(0, 1), "mode": automl.categorical(["ok", "bad", "text"])},
        objective_metric="loss",
        additional_metrics=["acc"],
        algorithm="random",
        max_trials=12,
        seed=0,
        store=sqlite_url,
        name="dicts",
    )
    trials = Client(sqlite_url).trials("dicts")
    modes = {t.params["mode"] for t in trials}
    assert modes == {"ok", "bad", "text"}  # the seeded draw covers every mode
    for t in trials:
        if t.params["mode"] == "ok":
            assert t.state is TrialState.SUCCEEDED
            assert t.value == pytest.approx(t.params["x"] ** 2)
            assert t.metrics["acc"].latest == pytest.approx(1 - t.params["x"])
        else:
            assert t.state is TrialState.FAILED
            assert "TypeError" in t.message
    assert "acc" in res.trials.columns


def test_in_process_report_with_steps(sqlite_url: str) -> None:
    seen: list[Any] = []

    def objective(lr: float) -> None:
        info = automl.current_trial()
        seen.append(info)
        for step in range(3):
            automl.report(step=step, loss=lr / (step + 1))
        with pytest.raises(TypeError):
            automl.report(step=1.5, loss=1.0)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            automl.report(loss="high")  # type: ignore[arg-type]

    res = automl.tune(
        objective,
        {"lr": automl.double(0.1, 1)},
        objective_metric="loss",
        max_trials=2,
        seed=0,
        store=sqlite_url,
        name="reports",
    )
    client = Client(sqlite_url)
    trials = client.trials("reports")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2
    for t in trials:
        assert t.value == pytest.approx(t.params["lr"] / 3)
        obs = [(o.step, o.value) for o in client.observations("reports") if o.trial_id == t.id]
        assert obs == [(s, pytest.approx(t.params["lr"] / (s + 1))) for s in range(3)]
    assert [i.id for i in seen] == [t.id for t in trials]
    assert seen[0].experiment == "reports" and seen[0].params == trials[0].params
    assert automl.current_trial() is None  # unbound after the trial
    assert res.best_value == min(t.value for t in trials)  # type: ignore[type-var]


def test_in_process_typed_values(sqlite_url: str) -> None:
    seen: list[dict[str, Any]] = []

    def objective(n: int, x: float, c: Any, d: float, flag: bool) -> float:
        seen.append({"n": n, "x": x, "c": c, "d": d, "flag": flag})
        return float(n) + x

    automl.tune(
        objective,
        {
            "n": automl.int(1, 10),
            "x": automl.double(-1, 1),
            "c": automl.categorical([1, "two", 3.5]),
            "d": automl.discrete([0.5, 2]),
            "flag": automl.categorical([True, False]),
        },
        max_trials=10,
        parallel_trials=2,
        seed=1,
        algorithm="random",
        store=sqlite_url,
        name="typed",
    )
    assert len(seen) == 10
    for s in seen:
        assert type(s["n"]) is int and 1 <= s["n"] <= 10
        assert type(s["x"]) is float
        assert s["c"] in (1, "two", 3.5)
        assert type(s["c"]) is {1: int, "two": str, 3.5: float}[s["c"]]
        assert s["d"] in (0.5, 2)
        assert type(s["flag"]) is bool
    # The store keeps the same types.
    for t in Client(sqlite_url).trials("typed"):
        assert type(t.params["n"]) is int and type(t.params["flag"]) is bool
        assert type(t.params["x"]) is float


def test_in_process_trial_timeout(sqlite_url: str) -> None:
    def objective(x: float) -> float:
        if x > 0.5:
            end = time.monotonic() + 10
            while not automl.should_stop() and time.monotonic() < end:
                time.sleep(0.01)
        return x

    automl.tune(
        objective,
        {"x": automl.double(0, 1)},
        max_trials=6,
        trial_timeout=0.5,
        seed=3,
        algorithm="random",
        store=sqlite_url,
        name="tmo",
    )
    trials = Client(sqlite_url).trials("tmo")
    slow = [t for t in trials if t.params["x"] > 0.5]
    assert slow and all(t.state is TrialState.FAILED for t in slow)
    assert all("timeout" in t.message for t in slow)
    assert all(t.state is TrialState.SUCCEEDED for t in trials if t.params["x"] <= 0.5)


def test_controller_pid_in_lease(tmp_path: Path) -> None:
    # The lease names this host and process, which is how `resume` tells a dead controller.
    f = write_exp(tmp_path, "import time\ntime.sleep(60)\n", name="lease")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    c = Client(url, runs_dir=tmp_path / "runs")
    c.create(f)
    th = threading.Thread(target=lambda: c.resume("lease"), daemon=True)
    th.start()
    other = Client(url)
    wait_for(lambda: other.trials("lease"), what="a running trial")
    holder = other.get("lease").controller
    assert holder is not None and holder.split(":")[1] == str(os.getpid())
    other.stop("lease")
    th.join(30)
    assert other.get("lease").controller is None


def test_only_one_controller_wins_a_free_lease(tmp_path: Path) -> None:
    from automl._controller import Controller
    from automl.store import Store
    from trials import InProcessExecutor

    f = write_exp(tmp_path, "print('loss=1')\n", name="race")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    admin = Store(url)
    exp = admin.experiments.create(load_spec_file(f))
    stores = [Store(url) for _ in range(4)]
    try:
        for _ in range(10):
            admin.experiments.update(exp.id, controller=None, heartbeat_at=None)
            barrier = threading.Barrier(len(stores))
            winners: list[str] = []

            def claim(
                store: Store, barrier: threading.Barrier = barrier, winners: list[str] = winners
            ) -> None:
                c = Controller(
                    store, store.experiments.get("race"), InProcessExecutor(lambda x: x, "loss")
                )
                barrier.wait()
                try:
                    c._claim()
                except ExperimentBusyError:
                    return
                winners.append(c.controller_id)

            threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert len(winners) == 1, f"{len(winners)} controllers hold the lease"
            assert admin.experiments.get("race").controller == winners[0]
    finally:
        for s in [admin, *stores]:
            s.close()


def load_spec_file(f: Path) -> Any:
    from automl.spec import load_spec

    return load_spec(f)


def test_non_finite_objective_is_not_a_silent_success(sqlite_url: str) -> None:
    def objective(x: float) -> float:
        return float("-inf") if x > 0.5 else x

    res = automl.tune(
        objective,
        {"x": automl.double(0, 1)},
        max_trials=6,
        seed=3,
        algorithm="random",
        goal=-100,
        store=sqlite_url,
        name="inf",
    )
    for t in Client(sqlite_url).trials("inf"):
        assert t.state is not TrialState.SUCCEEDED or t.value is not None, t
    if res.reason == "ExperimentGoalReached":
        assert res.best_trial is not None and res.best_trial.value is not None


def test_stop_right_after_the_claim_is_not_lost(sqlite_url: str) -> None:
    def quick(x: float) -> float:
        return x

    def slow(x: float) -> float:
        time.sleep(0.2)
        return x

    # A long history makes the controller's load (between claim and start) take a while.
    automl.tune(
        quick,
        {"x": automl.double(0, 1)},
        max_trials=800,
        algorithm="random",
        store=sqlite_url,
        name="late-stop",
    )
    runner, other = Client(sqlite_url), Client(sqlite_url)
    box: dict[str, Any] = {}
    th = threading.Thread(
        target=lambda: box.setdefault(
            "res", runner.resume("late-stop", objective=slow, max_trials=805)
        ),
        daemon=True,
    )
    th.start()
    end = time.monotonic() + 20
    while not other.get("late-stop").controller and time.monotonic() < end:
        time.sleep(0.001)
    assert other.stop("late-stop").state is not ExperimentState.STOPPED  # a live controller
    th.join(30)
    assert not th.is_alive()
    res = box["res"]
    assert res.experiment.state is ExperimentState.STOPPED
    assert len(res.trials) < 805


def _create_function_experiment(store: Any, name: str, **fields: Any) -> Any:
    """A stored experiment of an objective function of x in [0, 1], minimizing loss."""
    return Client(store).create(
        automl.ExperimentSpec.model_validate(
            {
                "name": name,
                "objective": {"type": "minimize", "metric": "loss"},
                "parameters": [{"name": "x", "type": "double", "min": 0, "max": 1}],
                "source": "python",
                **fields,
            }
        )
    )


def test_an_algorithm_with_nothing_to_suggest_ends_the_experiment(sqlite_url: str) -> None:
    from automl._controller import Controller
    from automl.core import Suggestion, TrialRecord
    from automl.store import Store
    from search import Suggester
    from trials import InProcessExecutor

    class Empty(Suggester):
        def suggest(self, trial_ids: Any) -> list[Suggestion]:
            return []

        def tell(self, trial: TrialRecord) -> None:
            return None

    store = Store(sqlite_url)
    try:
        exp = _create_function_experiment(store, "empty")
        ex = InProcessExecutor(lambda x: x, "loss")
        end = Controller(store, exp, ex, suggester=Empty()).run()
        assert end.state is ExperimentState.SUCCEEDED
        assert end.reason == "SearchSpaceExhausted"
        assert Client(store).trials("empty") == []
    finally:
        store.close()


def test_a_trial_end_is_stored_before_a_slow_next_suggestion(sqlite_url: str) -> None:
    """A trial's end rides with the next trial's insert only when suggestions are fast: behind a
    slow model the store shows the end while the next suggestion is still being computed."""
    from automl._controller import MERGE_SUGGEST_S, Controller
    from automl.core import Suggestion, TrialRecord
    from automl.store import Store
    from search import Suggester
    from trials import InProcessExecutor

    store = Store(sqlite_url)
    seen_while_suggesting: list[list[TrialState]] = []

    class Slow(Suggester):
        """Takes longer than MERGE_SUGGEST_S, and looks at the store while it suggests."""

        def suggest(self, trial_ids: Any) -> list[Suggestion]:
            time.sleep(2 * MERGE_SUGGEST_S)
            seen_while_suggesting.append([t.state for t in store.trials.list(exp.id)])
            return [Suggestion(params={"x": 0.5}) for _ in trial_ids]

        def tell(self, trial: TrialRecord) -> None:
            return None

    try:
        exp = _create_function_experiment(store, "slow-model", max_trial_count=3)
        ex = InProcessExecutor(lambda x: x, "loss")
        end = Controller(store, exp, ex, suggester=Slow()).run()
        assert end.state is ExperimentState.SUCCEEDED
        # Before the 2nd and 3rd suggestions, every trial so far had its end stored.
        assert seen_while_suggesting[1:] == [
            [TrialState.SUCCEEDED],
            [TrialState.SUCCEEDED, TrialState.SUCCEEDED],
        ]
    finally:
        store.close()
