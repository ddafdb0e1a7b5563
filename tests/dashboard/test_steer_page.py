"""The steer page's actions on one experiment (budgets, enqueue, invalidate, rerun, fork), with
AppTest on a copy of the seeded store; each action is checked in the store it changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import automl
from automl.core import TrialState

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def _steer(
    monkeypatch: pytest.MonkeyPatch, seeded_url: str, tmp_path: Path
) -> tuple[AppTest, str]:
    monkeypatch.delenv("AUTOML_READ_ONLY", raising=False)
    db = tmp_path / "copy.db"
    shutil.copy(seeded_url.removeprefix("sqlite:///"), db)
    url = f"sqlite:///{db}"
    monkeypatch.setenv("AUTOML_STORE", url)
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["page"] = "steer"
    at.query_params["experiment"] = "quad"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at, url


def test_budgets_and_enqueue(
    monkeypatch: pytest.MonkeyPatch, seeded_url: str, tmp_path: Path
) -> None:
    at, url = _steer(monkeypatch, seeded_url, tmp_path)
    at.number_input(key="budget").set_value(20)
    at.number_input(key="parallel").set_value(3)
    at.text_input(key="timeout").set_value("1h").run()
    at.button(key="raise").click().run()
    spec = automl.Client(url).get("quad").spec
    assert (spec.max_trial_count, spec.parallel_trial_count, spec.timeout) == (20, 3, 3600)
    # Out of the space: refused with the parameter's range, nothing stored.
    at.text_input(key="enq_x").set_value("9")
    at.text_input(key="enq_y").set_value("0")
    at.text_input(key="enq_kind").set_value("c").run()
    at.button(key="enqueue").click().run()
    errors = [e.value for e in at.error]
    assert "params.x: must be a number in [-3, 3]; got '9'" in errors
    assert "params.kind: must be one of ['a', 'b']; got 'c'" in errors
    assert all(t.state is not TrialState.CREATED for t in automl.Client(url).trials("quad"))
    at.text_input(key="enq_x").set_value("0.5")
    at.text_input(key="enq_kind").set_value("b").run()
    at.button(key="enqueue").click().run()
    waiting = [t for t in automl.Client(url).trials("quad") if t.state is TrialState.CREATED]
    assert [dict(t.params) for t in waiting] == [{"x": 0.5, "y": 0.0, "kind": "b"}]


def test_invalidate_rerun_and_fork(
    monkeypatch: pytest.MonkeyPatch, seeded_url: str, tmp_path: Path
) -> None:
    at, url = _steer(monkeypatch, seeded_url, tmp_path)
    client = automl.Client(url)
    best = client.best_trial("quad")
    assert best is not None
    label = next(o for o in at.selectbox(key="inv_trial").options if best.id in o)
    at.selectbox(key="inv_trial").select(label)
    at.text_input(key="inv_reason").set_value("bad node").run()
    at.button(key="invalidate").click().run()
    assert client.trial("quad", best.id).attrs["invalidated"]["reason"] == "bad node"
    new_best = client.best_trial("quad")
    assert new_best is not None and new_best.id != best.id
    # The experiment page strikes it out and says why.
    page = AppTest.from_file(APP, default_timeout=30)
    page.query_params["experiment"] = "quad"
    page.run()
    table = next(
        d.value for d in page.dataframe if "invalidated" in getattr(d.value, "columns", [])
    )
    assert list(table.loc[table["id"] == best.id, "invalidated"]) == ["bad node"]
    at.run()  # the next render of the steer page says why
    assert "invalidated: bad node" in [c.value for c in at.caption]
    at.button(key="revalidate").click().run()
    assert not client.trial("quad", best.id).invalidated
    at.button(key="rerun").click().run()
    again = [t for t in client.trials("quad") if t.attrs.get("rerun_of") == best.id]
    assert len(again) == 1 and again[0].params == best.params
    at.text_input(key="fork_name").set_value("quad-fork")
    at.number_input(key="fork_max").set_value(5).run()
    at.button(key="fork").click().run()
    fork = client.get("quad-fork")
    assert fork.spec.warm_start == "quad" and fork.spec.max_trial_count == 5
    assert any("starts from 12 of 12 finished trials" in s.value for s in at.success)


def test_history_leaves_an_invalidated_trial_out_of_the_best_line(
    seeded_url: str, tmp_path: Path
) -> None:
    from automl.store import Store
    from dashboard.queries import Queries

    db = tmp_path / "copy.db"
    shutil.copy(seeded_url.removeprefix("sqlite:///"), db)
    url = f"sqlite:///{db}"
    client = automl.Client(url)
    best = client.best_trial("quad")
    assert best is not None
    client.invalidate("quad", best.id, "bad node")
    q = Queries(Store(url))
    exp_id = client.get("quad").id
    states = {n: s for n, _, s, _ in q.history(exp_id)}
    assert states[best.number] == "Invalidated"
    assert list(states.values()).count("Succeeded") == 11
    top = q.best_trial(exp_id, "minimize")
    assert top is not None and top["id"] != best.id
