"""The dashboard through a real ``automl server`` with tokens (``automl dashboard --server``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from automl.store import Store
from dashboard.queries import Queries
from dashboard.remote import RemoteError, RemoteQueries
from tests.dashboard.conftest import APP, run_app
from tests.service.conftest import Procs, spec_text

RO = "r" * 20
RW = "w" * 20


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, seeded_url: str) -> Iterator[tuple[str, str]]:
    """``(server URL, store URL)``: one server per module, on a copy of the seeded store."""
    d = tmp_path_factory.mktemp("remote")
    shutil.copy(seeded_url.removeprefix("sqlite:///"), d / "dash.db")
    store = f"sqlite:///{d / 'dash.db'}"
    (d / "tokens").write_text(f"{RO} ro\n{RW} rw\n")
    procs = Procs(d)
    try:
        yield procs.server(store, "--tokens", str(d / "tokens")), store
    finally:
        procs.stop_all()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AUTOML_READ_ONLY", "AUTOML_ALLOW_REMOTE_ACTIONS", "AUTOML_STORE"):
        monkeypatch.delenv(var, raising=False)


def _app(monkeypatch: pytest.MonkeyPatch, server: str, token: str, **qp: str) -> AppTest:
    monkeypatch.setenv("AUTOML_SERVER", server)
    monkeypatch.setenv("AUTOML_TOKEN", token)
    return run_app(**qp)


def test_remote_queries_answer_like_the_store(served: tuple[str, str]) -> None:
    server, store = served
    local, remote = Queries(Store(store)), RemoteQueries(server, RO)
    assert remote.experiments_summary() == local.experiments_summary()
    quad, curves = local.experiment("quad"), local.experiment("curves")
    assert quad is not None and curves is not None
    assert remote.experiment("quad") == quad and remote.experiment("nope") is None
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("best_trial", (quad.id, quad.direction)),
        ("trials_page", (quad.id, ["Succeeded"], "value", True, 2, 5, None)),
        ("history", (quad.id,)),
        ("params_values", (quad.id, ("Succeeded", "EarlyStopped"))),
        ("changed_since", (quad.id, 0.0)),
        ("metric_names", (curves.id,)),
        ("curves", (curves.id, "loss")),
        ("step_band", (curves.id, "loss")),
        ("last_points", (curves.id, "loss")),
        ("curves_for", (curves.id, "loss", {1, 2}, None)),
        ("trials", (quad.id,)),
        ("lineage", (quad.id,)),
    ]
    for method, args in calls:
        assert getattr(remote, method)(*args) == getattr(local, method)(*args), method
    tid = local.trials_page(curves.id).rows[0]["id"]
    assert remote.trial(tid) == local.trial(tid) and remote.trial("nope") is None
    assert remote.trial_observations(tid) == local.trial_observations(tid)
    with pytest.raises(RemoteError, match=r"refused the token \(401\).*AUTOML_TOKEN"):
        RemoteQueries(server, "x" * 20).experiments_summary()


def test_app_in_server_mode_with_a_read_only_token(
    monkeypatch: pytest.MonkeyPatch, served: tuple[str, str]
) -> None:
    server, _ = served
    at = _app(monkeypatch, server, RO)
    assert at.title[0].value == "Experiments"
    assert {"quad", "curves", "broken"} <= set(at.dataframe[0].value["name"])
    assert any(server in c.value for c in at.caption)
    at = _app(monkeypatch, server, RO, experiment="quad")
    assert at.title[0].value == "Experiment quad" and not at.error


def test_app_with_a_wrong_token_shows_one_error_line(
    monkeypatch: pytest.MonkeyPatch, served: tuple[str, str]
) -> None:
    at = _app(monkeypatch, served[0], "x" * 20)
    assert len(at.error) == 1
    assert "401" in at.error[0].value and "AUTOML_TOKEN" in at.error[0].value


def test_unreachable_server_and_both_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, "http://127.0.0.1:9", RO)
    assert len(at.error) == 1 and "Cannot reach the server" in at.error[0].value
    monkeypatch.setattr(
        "sys.argv", ["app.py", "--store", "sqlite:///x.db", "--server", "http://h"]
    )
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception and "--store or --server" in at.error[0].value


def test_submit_from_the_app_goes_through_the_server(
    monkeypatch: pytest.MonkeyPatch, served: tuple[str, str]
) -> None:
    server, store = served
    at = _app(monkeypatch, server, RO, page="steer")
    at.text_area(key="spec_text").input(spec_text("via-ro")).run()
    at.button(key="submit").click().run()
    assert not at.exception
    assert any("403" in e.value and "read-only" in e.value for e in at.error)
    at = _app(monkeypatch, server, RW, page="steer")
    at.text_area(key="spec_text").input(spec_text("via-rw")).run()
    at.button(key="submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    names = {e.name for e in Queries(Store(store)).experiments_summary()}
    assert "via-rw" in names and "via-ro" not in names


def test_cli_passes_the_server_and_keeps_the_token_off_the_command_line() -> None:
    import subprocess
    import sys

    from automl import _dashboard

    p = _dashboard.plan("sqlite:///x.db", server="http://127.0.0.1:8080", port=8501)
    tail = p.command[p.command.index("--") :]
    assert tail == ["--", "--server", "http://127.0.0.1:8080"]
    out = subprocess.run(
        [sys.executable, "-m", "automl", "dashboard", "--store", "a.db", "--server", "http://h"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "--store or --server" in out.stderr, out.stderr


def test_curves_without_steps_are_numbered_as_the_store_numbers_them(
    served: tuple[str, str],
) -> None:
    """An observation without a step is numbered after the points the dashboard already holds,
    on an incremental refresh too (the server never sees those points)."""
    from automl.core import Observation

    server, url = served
    store = Store(url)
    local, remote = Queries(store), RemoteQueries(server, RO)
    exp = local.experiment("curves")
    assert exp is not None
    tid = local.trials_page(exp.id).rows[0]["id"]
    store.observations.append([Observation(tid, "nostep", 1.0), Observation(tid, "nostep", 2.0)])
    a, b = local.curves(exp.id, "nostep"), remote.curves(exp.id, "nostep")
    assert a == b
    store.observations.append([Observation(tid, "nostep", 3.0)])
    a = local.curves(exp.id, "nostep", a.last_id, a)
    b = remote.curves(exp.id, "nostep", b.last_id, b)
    assert a == b
    assert [steps for steps, _ in a.points.values()] == [[1.0, 2.0, 3.0]]
