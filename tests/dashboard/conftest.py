"""A store seeded with real experiments run by the loop (session-scoped: built once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import automl
from automl.store import Store


def _quadratic(x: float, y: float, kind: str) -> float:
    return (x - 1.0) ** 2 + (y + 0.5) ** 2 + (0.3 if kind == "b" else 0.0)


def _curve(lr: float) -> None:
    """Trials 3 and 5 are bad and wait for the controller to stop them (medianstop)."""
    info = automl.current_trial()
    n = info.number if info is not None else 0
    deadline = time.monotonic() + 1.0
    for epoch in range(1, 7):
        if n in (3, 5):
            automl.report(step=epoch, loss=10.0 + 1.0 / epoch)
            end = min(deadline, time.monotonic() + 0.15)
            while time.monotonic() < end:
                if automl.should_stop():
                    raise automl.TrialStopped
                time.sleep(0.005)
        else:
            automl.report(step=epoch, loss=lr + 1.0 / epoch)
            if automl.should_stop():
                raise automl.TrialStopped
    return None


def _broken(x: float) -> float:
    raise RuntimeError("boom")


@pytest.fixture(scope="session")
def seeded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite store with: quad (succeeded, 3 params), curves (median stop), broken (failed)."""
    path: Path = tmp_path_factory.mktemp("dash") / "dash.db"
    url = f"sqlite:///{path}"
    automl.tune(
        _quadratic,
        {
            "x": automl.double(-3, 3),
            "y": automl.double(-3, 3),
            "kind": automl.categorical(["a", "b"]),
        },
        name="quad",
        max_trials=12,
        seed=1,
        algorithm="random",
        store=url,
    )
    automl.tune(
        _curve,
        {"lr": automl.double(0.01, 0.9, log=True)},
        name="curves",
        objective_metric="loss",
        max_trials=8,
        seed=2,
        algorithm="random",
        early_stopping={"name": "medianstop", "settings": {"min_trials_required": 2}},
        store=url,
    )
    automl.tune(
        _broken,
        {"x": automl.double(0, 1)},
        name="broken",
        max_trials=5,
        max_failed_trials=2,
        store=url,
    )
    yield url


@pytest.fixture()
def empty_url(tmp_path: Path) -> str:
    """A fresh, empty store."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).close()
    return url
