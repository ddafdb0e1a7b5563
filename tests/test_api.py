"""The Python API: automl.tune, TuneResult and the Client (wait, stop, resume, delete)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pandas as pd
import pytest

import automl
from automl import Client
from automl.core import ExperimentState, TrialState
from automl.errors import AlreadyExistsError, NotFoundError, SpecError


def quadratic(x: float, n: int) -> float:
    """Importable, so a resumed experiment can find it without being handed it."""
    return (x - 0.25) ** 2 + n / 10


SPACE = {"x": automl.double(-1, 1), "n": automl.int(0, 3)}


def test_tune_result_and_dataframe(sqlite_url: str) -> None:
    res = automl.tune(
        quadratic, SPACE, max_trials=6, seed=0, algorithm="random", store=sqlite_url, name="df"
    )
    assert isinstance(res, automl.TuneResult)
    assert res.name == "df"
    assert res.experiment.state is ExperimentState.SUCCEEDED
    df = res.trials
    assert isinstance(df, pd.DataFrame)
    assert len(df) == 6
    for col in (
        "number",
        "trial",
        "state",
        "value",
        "params_x",
        "params_n",
        "objective",
        "started",
        "finished",
        "duration_s",
        "attempt",
        "message",
    ):
        assert col in df.columns, col
    assert list(df["number"]) == list(range(6))
    assert set(df["state"]) == {"Succeeded"}
    assert df["params_n"].map(type).eq(int).all()
    for _, row in df.iterrows():
        assert row["value"] == pytest.approx(quadratic(row["params_x"], row["params_n"]))
    assert pd.api.types.is_datetime64_any_dtype(df["started"])
    assert res.best_value == df["value"].min()
    best_row = df.loc[df["value"].idxmin()]
    assert res.best_params == {"x": best_row["params_x"], "n": best_row["params_n"]}
    assert res.best_trial is not None and res.best_trial.id == best_row["trial"]
    assert "best_value" in repr(res)
    assert function_path_of(res) == "tests.test_api:quadratic"


def function_path_of(res: automl.TuneResult) -> str | None:
    return res.experiment.spec.trial_template.function


def test_tune_maximize_goal_and_seed_reproducible(sqlite_url: str) -> None:
    a = automl.tune(
        lambda x: x,
        {"x": automl.double(0, 1)},
        direction="maximize",
        max_trials=5,
        seed=11,
        algorithm="random",
        store=sqlite_url,
        name="s1",
    )
    b = automl.tune(
        lambda x: x,
        {"x": automl.double(0, 1)},
        direction="maximize",
        max_trials=5,
        seed=11,
        algorithm="random",
        store=sqlite_url,
        name="s2",
    )
    assert list(a.trials["params_x"]) == list(b.trials["params_x"])  # seeded: same draws
    assert a.best_value == max(a.trials["value"])
    g = automl.tune(
        lambda x: x,
        {"x": automl.double(0, 1)},
        direction="maximize",
        goal=0.0,
        max_trials=5,
        seed=1,
        store=sqlite_url,
        name="goal",
    )
    assert g.reason == "ExperimentGoalReached"
    assert len(g.trials) == 1


def test_tune_name_clash_and_bad_arguments(sqlite_url: str) -> None:
    automl.tune(quadratic, SPACE, max_trials=1, store=sqlite_url, name="clash")
    with pytest.raises(AlreadyExistsError, match="clash"):
        automl.tune(quadratic, SPACE, max_trials=1, store=sqlite_url, name="clash")

    with pytest.raises(SpecError) as info:
        automl.tune(
            quadratic,
            {"x": 3, "n": automl.int(0, 1)},
            direction="up",  # type: ignore[dict-item]
            metric_strategies={"objective": "avg"},
            store=sqlite_url,
        )
    paths = {i.path for i in info.value.issues}
    assert paths == {"parameters.x", "direction", "metric_strategies.objective"}

    with pytest.raises(SpecError) as info:
        automl.tune(
            quadratic,
            {"x": automl.double(1, 0), "n": automl.int(0, 1)},
            max_trials=2,
            parallel_trials=3,
            store=sqlite_url,
        )
    paths = {i.path for i in info.value.issues}
    assert "parameters.x.max" in paths and "parallel_trials" in paths
    with pytest.raises(SpecError, match="objective"):
        automl.tune(42, SPACE, store=sqlite_url)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="distribution"):
        automl.double(0.1, 1, log=True, distribution="normal")
    # Nothing was stored for the rejected calls.
    assert [e.name for e in Client(sqlite_url).list()] == ["clash"]


def test_client_wait_with_timeout(sqlite_url: str) -> None:
    client = Client(sqlite_url)
    done = automl.tune(quadratic, SPACE, max_trials=2, store=sqlite_url, name="done")
    # A finished experiment is answered at the first look: no timeout left, no poll taken.
    assert client.wait("done", timeout=0, poll=3600).state is done.experiment.state

    spec = done.experiment.spec.model_copy(update={"name": "pending"})
    client.create(spec)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"'pending' is still Created after 0\.3 s"):
        client.wait("pending", timeout=0.3, poll=0.05)
    assert time.monotonic() - t0 >= 0.3  # it waited out its timeout (a lower bound: no flake)

    # wait returns once another thread finishes the experiment.
    def slow(x: float) -> float:
        time.sleep(0.1)
        return x

    th = threading.Thread(
        target=lambda: automl.tune(
            slow, {"x": automl.double(0, 1)}, max_trials=4, store=sqlite_url, name="bg"
        ),
        daemon=True,
    )
    th.start()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            client.get("bg")
            break
        except NotFoundError:
            time.sleep(0.02)
    exp = client.wait("bg", timeout=20, poll=0.05)
    assert exp.state is ExperimentState.SUCCEEDED
    assert len(client.trials("bg")) == 4
    th.join(10)
    with pytest.raises(NotFoundError):
        client.wait("missing", timeout=1)


def test_client_resume_raises_budget_and_continues_numbering(sqlite_url: str) -> None:
    first = automl.tune(
        quadratic, SPACE, max_trials=5, seed=2, algorithm="tpe", store=sqlite_url, name="grow"
    )
    client = Client(sqlite_url)
    before = {t.id: t for t in client.trials("grow")}
    res = client.resume("grow", objective=quadratic, max_trials=8)
    assert res.experiment.state is ExperimentState.SUCCEEDED
    assert res.reason == "ExperimentMaxTrialsReached"
    trials = client.trials("grow")
    assert [t.number for t in trials] == list(range(8))
    assert len({t.id for t in trials}) == 8
    for t in trials[:5]:
        old = before[t.id]
        assert (t.params, t.value, t.finished_at) == (old.params, old.value, old.finished_at)
    assert client.get("grow").spec.max_trial_count == 8
    assert res.best_value <= first.best_value  # type: ignore[operator]

    # The objective is importable, so a later resume can find it by itself.
    res = client.resume("grow", max_trials=10)
    assert len(res.trials) == 10
    assert list(res.trials["number"]) == list(range(10))

    with pytest.raises(SpecError) as info:
        client.resume("grow", max_trials=0)
    assert info.value.path == "max_trials"
    assert client.get("grow").spec.max_trial_count == 10


def test_resume_needs_objective_for_unimportable_function(sqlite_url: str) -> None:
    def local(x: float) -> float:
        return x

    automl.tune(local, {"x": automl.double(0, 1)}, max_trials=2, store=sqlite_url, name="loc")
    client = Client(sqlite_url)
    with pytest.raises(SpecError, match="cannot be imported") as info:
        client.resume("loc", max_trials=3)
    assert info.value.path == "trial_template.function"
    res = client.resume("loc", objective=local)
    assert len(res.trials) == 3


def test_tune_resume_true_continues(sqlite_url: str) -> None:
    calls: list[dict[str, Any]] = []

    def objective(x: float, n: int) -> float:
        calls.append({"x": x, "n": n})
        return quadratic(x, n)

    a = automl.tune(
        objective, SPACE, max_trials=3, seed=5, store=sqlite_url, name="again", resume=True
    )  # nothing to resume yet: a new experiment
    assert len(a.trials) == 3
    b = automl.tune(
        objective, SPACE, max_trials=6, seed=5, store=sqlite_url, name="again", resume=True
    )
    assert len(calls) == 6  # only three more trials ran
    assert list(b.trials["number"]) == list(range(6))
    assert list(b.trials["trial"][:3]) == list(a.trials["trial"])
    assert b.experiment.state is ExperimentState.SUCCEEDED
    params = {(c["x"], c["n"]) for c in calls}
    assert len(params) == 6  # the resumed search did not replay its draws


def test_client_stop_delete_and_observations(sqlite_url: str) -> None:
    def objective(x: float) -> None:
        for step in range(3):
            automl.report(step=step, objective=x + step)

    automl.tune(objective, {"x": automl.double(0, 1)}, max_trials=2, store=sqlite_url, name="obs")
    client = Client(sqlite_url)
    obs = client.observations("obs")
    assert len(obs) == 6
    assert sorted({o.step for o in obs}) == [0, 1, 2]
    assert client.stop("obs").state is ExperimentState.SUCCEEDED  # finished: unchanged
    client.delete("obs")
    with pytest.raises(NotFoundError):
        client.get("obs")
    with pytest.raises(NotFoundError):
        client.delete("obs")
    assert client.list() == []


def test_stop_in_process_experiment_from_another_thread(sqlite_url: str) -> None:
    started = threading.Event()
    saw_stop: list[bool] = []

    def objective(x: float) -> float:
        started.set()
        end = time.monotonic() + 60  # a limit for a broken stop only
        while not automl.should_stop() and time.monotonic() < end:
            time.sleep(0.01)
        saw_stop.append(automl.should_stop())
        return x

    box: dict[str, Any] = {}
    th = threading.Thread(
        target=lambda: box.setdefault(
            "res",
            automl.tune(
                objective,
                {"x": automl.double(0, 1)},
                max_trials=5,
                parallel_trials=2,
                store=sqlite_url,
                name="stop-inproc",
            ),
        ),
        daemon=True,
    )
    th.start()
    assert started.wait(10)
    Client(sqlite_url).stop("stop-inproc")
    th.join(120)
    assert not th.is_alive()
    assert saw_stop and all(saw_stop)  # every running trial left its loop because of the stop
    res = box["res"]
    assert res.experiment.state is ExperimentState.STOPPED
    assert res.reason == "ExperimentStopped"
    states = {TrialState(s) for s in res.trials["state"]}
    assert states == {TrialState.KILLED}


def test_stopped_experiment_can_be_resumed(sqlite_url: str) -> None:
    client = Client(sqlite_url)
    first = automl.tune(quadratic, SPACE, max_trials=2, store=sqlite_url, name="later")
    spec = first.experiment.spec.model_copy(update={"name": "paused", "max_trial_count": 3})
    client.create(spec)
    assert client.stop("paused").state is ExperimentState.STOPPED
    res = client.resume("paused")  # quadratic is importable
    assert res.experiment.state is ExperimentState.SUCCEEDED
    assert res.reason == "ExperimentMaxTrialsReached"
    assert len(res.trials) == 3
    assert client.get("paused").stop_requested is False


def test_should_stop_turns_true_in_inline_mode(sqlite_url: str) -> None:
    started = threading.Event()
    saw_stop: list[bool] = []

    def objective(x: float) -> float:
        started.set()
        end = time.monotonic() + 60  # a limit for a broken stop only
        while not automl.should_stop() and time.monotonic() < end:
            time.sleep(0.01)
        saw_stop.append(automl.should_stop())
        return x

    box: dict[str, Any] = {}
    th = threading.Thread(
        target=lambda: box.setdefault(
            "res",
            automl.tune(
                objective,
                {"x": automl.double(0, 1)},
                max_trials=3,
                store=sqlite_url,
                name="inline-stop",
            ),
        ),
        daemon=True,
    )
    th.start()
    assert started.wait(10)
    Client(sqlite_url).stop("inline-stop")
    th.join(120)
    assert box["res"].experiment.state is ExperimentState.STOPPED
    assert saw_stop == [True]  # the trial left its loop because should_stop turned true
    assert list(box["res"].trials["state"]) == ["Killed"]
