"""Ask and tell through the server and on a store: same suggester, budgets and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import automl
from automl.core import ExperimentState, TrialState
from automl.errors import AutoMLError, NotFoundError
from tests.service.conftest import Procs, spec_text, wait_for

STOPPING = "early_stopping: {name: medianstop, settings: {min_trials_required: 2, start_step: 2}}"


@pytest.fixture
def remote(procs: Procs, tmp_path: Path) -> automl.Client:
    url = procs.server(f"sqlite:///{tmp_path / 'service.db'}")
    return automl.Client(server=url)


def _spec(tmp_path: Path, name: str, extra: str = "", trials: int = 3) -> Path:
    f = tmp_path / f"{name}.yaml"
    f.write_text(spec_text(name, trials=trials, extra=extra))
    return f


@pytest.mark.parametrize("where", ["server", "store"])
def test_ask_tell_budgets_and_errors(
    where: str, remote: automl.Client, tmp_path: Path, sqlite_url: str
) -> None:
    c = remote if where == "server" else automl.Client(sqlite_url)
    c.create(_spec(tmp_path, "outside", trials=3))
    t = c.ask("outside")
    assert t.state is TrialState.RUNNING and 0 <= t.params["x"] <= 1
    assert c.get("outside").state is ExperimentState.RUNNING
    with pytest.raises(
        AutoMLError, match=r"already has 1 trial\(s\) out \(parallelTrialCount 1\)"
    ):
        c.ask("outside")  # the pending-trial rule: parallelTrialCount
    assert c.tell(t, step=1, loss=0.5) is False
    assert c.trial("outside", t.id).metrics["loss"].latest == 0.5
    assert c.tell(t, final=True, loss=0.25) is False
    done = c.trial("outside", t.id)
    assert done.state is TrialState.SUCCEEDED and done.value == 0.25
    with pytest.raises(AutoMLError, match=f"trial {t.id} has already ended"):
        c.tell(t, final=True, loss=0.1)
    t2 = c.ask("outside")
    assert t2.params != t.params and t2.number == 1
    c.fail(t2, "the instrument broke")
    failed = c.trial("outside", t2.id)
    assert failed.state is TrialState.FAILED and failed.message == "the instrument broke"
    t3 = c.ask("outside")
    c.tell(t3, final=True, loss=0.75)
    exp = c.get("outside")  # maxTrialCount 3 reached
    assert exp.state is ExperimentState.SUCCEEDED and exp.reason == "ExperimentMaxTrialsReached"
    with pytest.raises(AutoMLError, match="has ended"):
        c.ask("outside")
    assert c.best_trial("outside").id == t.id  # type: ignore[union-attr]
    with pytest.raises(NotFoundError, match="no trial 'outside-nope'"):
        c.trial("outside", "outside-nope")
    with pytest.raises(NotFoundError, match="no experiment named 'nope'"):
        c.ask("nope")


def test_tell_says_when_early_stopping_wants_a_stop(remote: automl.Client, tmp_path: Path) -> None:
    remote.create(_spec(tmp_path, "curves", STOPPING, trials=5))
    for _ in range(2):  # two good curves
        t = remote.ask("curves")
        for step in (1, 2, 3):
            assert remote.tell(t, step=step, loss=0.1) is False
        remote.tell(t, final=True)
    bad = remote.ask("curves")
    assert remote.tell(bad, step=1, loss=0.9) is False  # before start_step
    assert remote.tell(bad, step=2, loss=0.9) is True
    stopped = remote.trial("curves", bad.id)
    assert stopped.state is TrialState.EARLY_STOPPED and "medianstop" in stopped.message


def test_an_asked_trial_never_told_fails_after_its_timeout(
    remote: automl.Client, tmp_path: Path
) -> None:
    remote.create(_spec(tmp_path, "silent", "  timeout: 1"))
    t = remote.ask("silent")
    gone = wait_for(
        lambda: (r := remote.trial("silent", t.id)).state is TrialState.FAILED and r,
        30,
        "the asked trial to time out",
    )
    assert "not told within its trial timeout (1 s)" in gone.message
    t2 = remote.ask("silent")  # its slot is free again
    assert t2.id != t.id
