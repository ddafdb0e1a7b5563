"""Early stopping end to end: in-process objectives (``automl.tune``), subprocess trials that
must really die, Katib YAML with ``earlyStopping``, resume with the stopper rebuilt from the
store, and trials that report out-of-order steps, NaN or nothing."""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

import automl
from automl import Client
from automl.core import ExperimentState, Observation, TrialRecord, TrialState
from automl.spec import load_spec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
KATIB_MEDIAN_STOP = (
    REPO / "tests" / "data" / "katib-examples" / "early-stopping" / "median-stop.yaml"
)
SPACE = {"x": automl.double(0, 1)}
EPOCHS = 6
STOPPED_MSG = re.compile(r"stopped early at step (\d+) by (\w+)")


@pytest.fixture(autouse=True)
def _quiet_optuna() -> Iterator[None]:
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


# -- helpers --------------------------------------------------------------------------------


def number() -> int:
    info = automl.current_trial()
    assert info is not None
    return info.number


def await_stop(deadline: float, wait: float = 0.15) -> None:
    """Give the controller a moment (until ``deadline`` at the latest) to stop this trial after
    a report; raise TrialStopped if it does."""
    end = min(deadline, time.monotonic() + wait)
    while time.monotonic() < end:
        if automl.should_stop():
            raise automl.TrialStopped
        time.sleep(0.005)


def epochs_objective(bad: Callable[[int], bool], budget: float = 1.5) -> Callable[[float], None]:
    """Per-epoch losses: 1 + 1/epoch for good trials (a little better with each number),
    10 + 1/epoch for bad ones. A bad trial waits (at most ``budget`` seconds in all) for the
    controller's decision after each report, so a stop is never lost to a race."""

    def objective(x: float) -> None:
        n = number()
        deadline = time.monotonic() + budget
        for epoch in range(1, EPOCHS + 1):
            if bad(n):
                automl.report(step=epoch, loss=10.0 + 1.0 / epoch)
                await_stop(deadline)
            else:
                automl.report(step=epoch, loss=1.0 - 0.01 * n + 1.0 / epoch)
                if automl.should_stop():
                    raise automl.TrialStopped
        return None

    return objective


def by_number(trials: list[TrialRecord]) -> dict[int, TrialRecord]:
    return {t.number: t for t in trials}


def steps_by_trial(obs: list[Observation], metric: str = "loss") -> dict[str, list[int | None]]:
    out: dict[str, list[int | None]] = defaultdict(list)
    for o in obs:
        if o.metric == metric:
            out[o.trial_id].append(o.step)
    return out


def stopped_step(t: TrialRecord) -> int:
    assert t.state is TrialState.EARLY_STOPPED, (t.number, t.state, t.message)
    m = STOPPED_MSG.fullmatch(t.message)
    assert m, t.message
    return int(m.group(1))


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# -- (a) in-process objectives --------------------------------------------------------------


def test_tune_medianstop_stops_bad_trials_and_keeps_every_observation(sqlite_url: str) -> None:
    bad = {3, 5, 7}
    res = automl.tune(
        epochs_objective(lambda n: n in bad),
        SPACE,
        objective_metric="loss",
        algorithm="random",
        seed=0,
        max_trials=8,
        early_stopping="medianstop",  # Katib's defaults: 3 completed trials, start_step 4
        store=sqlite_url,
        name="es-tune",
    )
    assert res.experiment.state is ExperimentState.SUCCEEDED
    assert res.reason == "ExperimentMaxTrialsReached"
    assert "8 trials finished" in res.experiment.message
    client = Client(sqlite_url)
    trials = by_number(client.trials("es-tune"))
    assert sorted(trials) == list(range(8))  # stopped trials count toward max_trials
    for n, t in trials.items():
        if n in bad:
            assert t.message == "stopped early at step 4 by medianstop"
            assert stopped_step(t) == 4
        else:
            assert t.state is TrialState.SUCCEEDED, (n, t.state, t.message)
            assert t.value == pytest.approx(1.0 - 0.01 * n + 1.0 / EPOCHS)
    assert list(res.trials["state"]).count("EarlyStopped") == 3
    assert res.best_trial is not None and res.best_trial.number == 6
    # Every intermediate value is stored with its step, the stopped trials' up to the stop.
    steps = steps_by_trial(client.observations("es-tune"))
    for n, t in trials.items():
        assert steps[t.id] == list(range(1, 5 if n in bad else EPOCHS + 1)), n
    values = {(o.trial_id, o.step): o.value for o in client.observations("es-tune")}
    assert values[(trials[3].id, 4)] == pytest.approx(10.25)
    assert values[(trials[4].id, 2)] == pytest.approx(1.46)


def test_tune_with_a_settings_dict_and_maximize(sqlite_url: str) -> None:
    def objective(x: float) -> None:
        n = number()
        deadline = time.monotonic() + 1.5
        for epoch in range(1, EPOCHS + 1):
            automl.report(step=epoch, accuracy=(0.1 if n == 2 else 0.9) - 0.01 / epoch)
            if n == 2:
                await_stop(deadline)
        return None

    res = automl.tune(
        objective,
        SPACE,
        objective_metric="accuracy",
        direction="maximize",
        max_trials=4,
        seed=0,
        early_stopping={
            "name": "medianstop",
            "settings": {"min_trials_required": 2, "start_step": 2},
        },
        store=sqlite_url,
        name="es-max",
    )
    states = list(res.trials["state"])
    assert states == ["Succeeded", "Succeeded", "EarlyStopped", "Succeeded"]
    assert res.trials["message"][2] == "stopped early at step 2 by medianstop"


IGNORE_LIMIT = 60.0  # only a broken controller that waits for the ignoring call reaches it


def ignoring_objective(
    ignorer: int,
    release: threading.Event,
    seen: list[bool],
    returned: threading.Event,
    overlapped: dict[int, bool] | None = None,
) -> Callable[[float], None]:
    """Trial ``ignorer`` is bad and ignores should_stop: once stopped it keeps training (and
    reporting) until the test releases it, after ``automl.tune`` returned (or IGNORE_LIMIT
    passes), then sets ``returned``. The others are good; those after it record in
    ``overlapped`` whether they ran while the ignoring call was still holding on."""
    holding = threading.Event()

    def objective(x: float) -> None:
        n = number()
        if n != ignorer:
            for epoch in range(1, 6):
                automl.report(step=epoch, loss=1.0 + 1.0 / epoch)
                time.sleep(0.05 if n > ignorer else 0.0)
            if overlapped is not None and n > ignorer:
                overlapped[n] = holding.is_set() and not returned.is_set()
            return None
        for epoch in range(1, 3):
            automl.report(step=epoch, loss=10.0)
        end = time.monotonic() + IGNORE_LIMIT
        while not automl.should_stop() and time.monotonic() < end:  # the decision arrives...
            time.sleep(0.005)
        holding.set()  # ...and is ignored
        epoch = 50
        while not release.is_set() and time.monotonic() < end:
            seen.append(automl.should_stop())
            automl.report(step=epoch, loss=10.0)  # late: must be dropped
            epoch += 1
            time.sleep(0.02)
        returned.set()
        return None

    return objective


def test_stopped_trial_that_ignores_should_stop_is_ended_and_its_late_reports_dropped(
    sqlite_url: str,
) -> None:
    release, returned = threading.Event(), threading.Event()
    seen: list[bool] = []
    try:
        res = automl.tune(
            ignoring_objective(3, release, seen, returned),
            SPACE,
            objective_metric="loss",
            max_trials=6,
            parallel_trials=2,
            seed=0,
            early_stopping={
                "name": "medianstop",
                "settings": {"min_trials_required": 2, "start_step": 2},
            },
            store=sqlite_url,
            name="es-ignore",
        )
        still_running = not returned.is_set()
    finally:
        release.set()
    # The experiment ended while the ignoring call still ran: it is released only now.
    assert still_running
    assert res.reason == "ExperimentMaxTrialsReached"
    trials = by_number(Client(sqlite_url).trials("es-ignore"))
    assert sorted(trials) == list(range(6))
    assert stopped_step(trials[3]) == 2
    assert all(trials[n].state is TrialState.SUCCEEDED for n in (0, 1, 2, 4, 5))
    assert seen and all(seen)  # should_stop was true from its first look
    steps = steps_by_trial(Client(sqlite_url).observations("es-ignore"))
    assert steps[trials[3].id] == [1, 2]  # nothing after the stop reached the store


def test_stopped_trial_that_ignores_should_stop_does_not_block_the_next_trials(
    sqlite_url: str,
) -> None:
    release, returned = threading.Event(), threading.Event()
    seen: list[bool] = []
    overlapped: dict[int, bool] = {}
    try:
        automl.tune(
            ignoring_objective(3, release, seen, returned, overlapped),
            SPACE,
            objective_metric="loss",
            max_trials=6,
            parallel_trials=1,
            seed=0,
            early_stopping={
                "name": "medianstop",
                "settings": {"min_trials_required": 2, "start_step": 2},
            },
            store=sqlite_url,
            name="es-block",
        )
        still_running = not returned.is_set()
    finally:
        release.set()
    # One trial at a time, yet trials 4 and 5 ran (and the experiment ended) while the stopped
    # trial's call was still holding on: the next trials did not wait for it.
    assert overlapped == {4: True, 5: True}
    assert still_running
    assert list(Client(sqlite_url).result("es-block").trials["state"]).count("EarlyStopped") == 1


# -- (b) subprocess trials are really terminated --------------------------------------------

SUBPROCESS_TRIAL = """
import os, signal, subprocess, sys, time
import automl

n = automl.current_trial().number
if n < 2:
    for epoch in range(1, 5):
        print(f"epoch={epoch} loss={1.0 + 1.0 / epoch}", flush=True)
    sys.exit(0)
if n == 2:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only the SIGKILL after the grace ends it
child = subprocess.Popen(["sleep", "60"])  # in the trial's process group (inherits SIG_IGN)
if n == 3:
    def on_term(signum, frame):  # proof that the stop began with SIGTERM
        open("sigterm-3", "w").close()
        os._exit(143)
    signal.signal(signal.SIGTERM, on_term)
with open(f"pids-{n}.tmp", "w") as fh:
    fh.write(f"{os.getpid()} {child.pid}")
os.replace(f"pids-{n}.tmp", f"pids-{n}")
for epoch in range(1, 200):
    if epoch == 2:
        with open(f"decided-{n}", "w") as fh:
            fh.write(repr(time.time()))  # the stop decision follows this report
    print(f"epoch={epoch} loss={10.0 + 1.0 / epoch}", flush=True)
    time.sleep(0.3)
"""


def write_native(tmp_path: Path, script: str, name: str, **extra: Any) -> Path:
    (tmp_path / "train.py").write_text(script)
    doc = {
        "name": name,
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "seed": 0,
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": 4, "parallel": 1},
        "trial": {"command": ["python", "train.py", "${x}"]},
        **extra,
    }
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


def test_subprocess_trial_stopped_by_a_rule_is_killed_with_its_process_group(
    tmp_path: Path,
) -> None:
    f = write_native(
        tmp_path,
        SUBPROCESS_TRIAL,
        "es-proc",
        early_stopping={
            "name": "medianstop",
            "settings": {"min_trials_required": 2, "start_step": 2},
        },
    )
    client = Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")
    box: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: box.setdefault("res", client.run(f)), daemon=True)
    t0 = time.monotonic()
    runner.start()
    gone_at: dict[int, float] = {}
    pids: dict[int, list[int]] = {}

    def look() -> None:
        for n in (2, 3):
            p = tmp_path / f"pids-{n}"
            if n not in pids and p.exists():
                pids[n] = [int(v) for v in p.read_text().split()]
            if n in pids and n not in gone_at and not any(alive(pid) for pid in pids[n]):
                gone_at[n] = time.time()

    try:
        while runner.is_alive() and time.monotonic() - t0 < 30:
            look()
            time.sleep(0.02)
        runner.join(10)
        look()
    finally:  # a failing run must not leave this test's trials behind
        for n, (leader, _child) in pids.items():
            if n not in gone_at and alive(leader):
                with contextlib.suppress(OSError):
                    os.killpg(leader, signal.SIGKILL)
    assert not runner.is_alive()
    res = box["res"]
    assert res.reason == "ExperimentMaxTrialsReached"
    trials = by_number(client.trials("es-proc"))
    assert [trials[n].state for n in range(4)] == [
        TrialState.SUCCEEDED,
        TrialState.SUCCEEDED,
        TrialState.EARLY_STOPPED,
        TrialState.EARLY_STOPPED,
    ]
    assert set(gone_at) == {2, 3}, (gone_at, pids)
    # Trial 3 got the SIGTERM (its handler left a file); trial 2 ignores SIGTERM, so only the
    # SIGKILL that follows the grace period can have ended it. Both died after the decision.
    assert (tmp_path / "sigterm-3").exists()
    steps = steps_by_trial(client.observations("es-proc"))
    for n in (2, 3):
        assert stopped_step(trials[n]) == 2
        assert gone_at[n] > float((tmp_path / f"decided-{n}").read_text())
        for pid in pids[n]:  # the trial's process and its child
            assert not alive(pid)
            if not Path(f"/proc/{pid}").exists():
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)
        # It would have printed 199 epochs; it was stopped after a handful.
        assert 2 <= len(steps[trials[n].id]) < 199, steps[trials[n].id]


# -- (c) Katib YAML -------------------------------------------------------------------------


def test_katib_median_stop_example_parses() -> None:
    spec = load_spec(KATIB_MEDIAN_STOP)
    assert spec.early_stopping is not None
    assert spec.early_stopping.name == "medianstop"
    assert spec.early_stopping.settings == {"min_trials_required": "1", "start_step": "2"}
    assert spec.objective.metric == "loss"


KATIB_TRIAL = """
import argparse, sys, time
import automl

ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float)
ap.add_argument("--momentum", type=float)
ap.parse_args()
n = automl.current_trial().number
for epoch in range(1, 11):
    loss = (1.0 if n < 2 else 10.0) + 1.0 / epoch
    print(f"epoch={epoch} loss={loss}", flush=True)
    if n >= 2:
        time.sleep(0.3)  # 3 s if nobody stops it
"""


def test_katib_yaml_with_early_stopping_runs_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(KATIB_TRIAL)
    doc = yaml.safe_load(KATIB_MEDIAN_STOP.read_text())
    doc["metadata"] = {"name": "katib-es", "namespace": "kubeflow"}
    s = doc["spec"]
    s["parallelTrialCount"] = 1
    s["maxTrialCount"] = 4
    s["objective"].pop("goal")
    s["earlyStopping"]["algorithmSettings"] = [
        {"name": "min_trials_required", "value": "2"},
        {"name": "start_step", "value": "2"},
    ]
    container = s["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [
        "python",
        "train.py",
        "--lr=${trialParameters.learningRate}",
        "--momentum=${trialParameters.momentum}",
    ]
    f = tmp_path / "katib.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    client = Client(f"sqlite:///{tmp_path / 'store.db'}", runs_dir=tmp_path / "runs")
    res = client.run(f)
    assert res.experiment.spec.source == "katib"
    assert res.reason == "ExperimentMaxTrialsReached"
    trials = by_number(client.trials("katib-es"))
    assert trials[0].state is TrialState.SUCCEEDED and trials[1].state is TrialState.SUCCEEDED
    for n in (2, 3):
        assert trials[n].message == "stopped early at step 2 by medianstop"
    steps = steps_by_trial(client.observations("katib-es"))
    assert steps[trials[0].id] == list(range(1, 11))
    for n in (2, 3):  # ended before their 10 epochs
        assert steps[trials[n].id][:2] == [1, 2] and len(steps[trials[n].id]) < 10


# -- (d) resume -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "early_stopping",
    [
        {"name": "medianstop", "settings": {"min_trials_required": 3, "start_step": 2}},
        {"name": "median", "settings": {"n_startup_trials": 3, "n_warmup_steps": 1}},
        pytest.param(
            {"name": "asha", "settings": {"min_resource": 1, "reduction_factor": 2}},
        ),
    ],
    ids=["medianstop", "median", "asha"],
)
def test_resume_rebuilds_the_stopper_from_the_store(
    sqlite_url: str, early_stopping: dict[str, Any]
) -> None:
    bad = {3, 4, 6}
    objective = epochs_objective(lambda n: n in bad, budget=1.0)
    res = automl.tune(
        objective,
        SPACE,
        objective_metric="loss",
        max_trials=4,
        seed=0,
        early_stopping=early_stopping,
        store=sqlite_url,
        name="es-resume",
    )
    assert res.reason == "ExperimentMaxTrialsReached"
    assert list(res.trials["state"]) == ["Succeeded"] * 3 + ["EarlyStopped"]
    client = Client(sqlite_url)
    # Trial 4 is bad and no trial completes before it in the new run: only the stopper rebuilt
    # from the stored trials and observations can stop it.
    res = client.resume("es-resume", objective=objective, max_trials=7)
    assert res.experiment.state is ExperimentState.SUCCEEDED
    assert res.reason == "ExperimentMaxTrialsReached"
    trials = by_number(client.trials("es-resume"))
    assert sorted(trials) == list(range(7))
    for n, t in trials.items():
        if n in bad:
            stopped_step(t)
        else:
            assert t.state is TrialState.SUCCEEDED, (n, t.state, t.message)
    steps = steps_by_trial(client.observations("es-resume"))
    assert steps[trials[5].id] == list(range(1, EPOCHS + 1))


# -- (e) out-of-order steps, NaN, nothing ---------------------------------------------------


def awkward_objective(x: float) -> float | None:
    """0-2 good; 3 reports steps out of order; 4 reports NaN; 5 reports nothing but returns a
    value; 6 reports and returns nothing; 7 reports without steps."""
    n = number()
    deadline = time.monotonic() + 0.5
    if n <= 2:
        for epoch in range(1, EPOCHS + 1):
            automl.report(step=epoch, loss=1.0 + 1.0 / epoch)
        return None
    if n == 3:
        for epoch in (3, 1, 2, 5, 4, 4, 6):
            automl.report(step=epoch, loss=0.9 + 1.0 / epoch)
            if automl.should_stop():
                raise automl.TrialStopped
        return None
    if n == 4:
        for epoch in range(1, EPOCHS + 1):
            automl.report(step=epoch, loss=math.nan)
            await_stop(deadline)
        return math.nan
    if n == 5:
        return 0.5
    if n == 6:
        return None
    for epoch in range(1, EPOCHS + 1):
        automl.report(loss=0.95 + 1.0 / epoch)
        if automl.should_stop():
            raise automl.TrialStopped
    return None


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@pytest.mark.parametrize(
    ("rule", "settings"),
    [
        ("medianstop", {"min_trials_required": 2, "start_step": 2}),
        ("median", {"n_startup_trials": 2}),
        ("asha", {"min_resource": 1, "reduction_factor": 2}),
        ("patient", {"patience": 1}),
        ("wilcoxon", {}),
    ],
)
def test_out_of_order_nan_and_silent_trials_end_normally(
    sqlite_url: str, rule: str, settings: dict[str, Any]
) -> None:
    res = automl.tune(
        awkward_objective,
        SPACE,
        objective_metric="loss",
        max_trials=8,
        seed=0,
        early_stopping={"name": rule, "settings": settings},
        store=sqlite_url,
        name="es-awkward",
    )
    assert res.experiment.state is ExperimentState.SUCCEEDED
    assert res.reason == "ExperimentMaxTrialsReached"
    client = Client(sqlite_url)
    trials = by_number(client.trials("es-awkward"))
    assert sorted(trials) == list(range(8))
    assert all(trials[n].state is TrialState.SUCCEEDED for n in (0, 1, 2))
    assert trials[3].state in (TrialState.SUCCEEDED, TrialState.EARLY_STOPPED)
    nan_trial = trials[4]
    assert nan_trial.state in (TrialState.EARLY_STOPPED, TrialState.FAILED), nan_trial.message
    if rule in ("medianstop", "median", "asha"):  # these treat NaN as divergence
        assert stopped_step(nan_trial) == 1
    assert trials[5].state is TrialState.SUCCEEDED and trials[5].value == 0.5
    assert trials[6].state is TrialState.METRICS_UNAVAILABLE
    assert trials[7].state in (TrialState.SUCCEEDED, TrialState.EARLY_STOPPED)
    steps = steps_by_trial(client.observations("es-awkward"))
    got = steps[trials[3].id]
    assert got and got == [3, 1, 2, 5, 4, 4, 6][: len(got)]  # as reported, in order
    if trials[3].state is TrialState.SUCCEEDED:
        assert len(got) == 7
    assert all(s is None for s in steps[trials[7].id])
    # The stored curves (NaN, out of order, implicit steps, none at all) rebuild a stopper.
    res = client.resume("es-awkward", objective=awkward_objective, max_trials=9)
    assert res.reason == "ExperimentMaxTrialsReached"
    assert len(client.trials("es-awkward")) == 9
