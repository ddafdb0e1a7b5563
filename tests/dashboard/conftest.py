"""A store seeded with real experiments run by the loop (session-scoped: built once)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _fit_and_save(C: float) -> float:
    """A real scikit-learn model, saved into the trial's artifact directory."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.random.RandomState(0).rand(40, 3)
    y = (x[:, 0] > 0.5).astype(int)
    model = LogisticRegression(C=C).fit(x, y)
    automl.save_model(model, "clf", input_example=x[:2])
    return float(model.score(x, y))


def _architecture_score(architecture: Any, **choices: Any) -> float:
    """A cheap NAS objective: prefers later operations and more skips (no training)."""
    return float(sum(architecture.ops) + sum(map(sum, architecture.skips)))


def _darts_search(**assignments: str) -> float:
    """Katib's one DARTS trial, tiny: the search stores the genotype (nas.record_result)."""
    import nas

    settings = nas.DartsSettings.from_settings(
        {"num_epochs": "1", "init_channels": "4", "num_nodes": "2", "batch_size": "32"}
    )
    space = json.loads(assignments["search-space"].replace("'", '"'))
    data = nas.load_digits_data(limit=80, val_fraction=0.5)
    nas.darts_search(data, settings, search_space=space, num_layers=1, unrolled=False, log=None)
    return 0.5


@pytest.fixture(scope="session")
def outputs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite store with: saved (each trial saves a model), nas-tiny (multi-trial NAS over a
    3-layer space, random), darts-tiny (one DARTS search trial)."""
    from search import NasSpace

    root = tmp_path_factory.mktemp("dash-outputs")
    url = f"sqlite:///{root / 'outputs.db'}"
    runs = str(root / "runs")
    automl.tune(
        _fit_and_save,
        {"C": automl.double(0.1, 10, log=True)},
        name="saved",
        direction="maximize",
        max_trials=3,
        seed=0,
        algorithm="random",
        store=url,
        runs_dir=runs,
    )
    space = NasSpace.from_native(
        {
            "layers": 3,
            "input": [8, 8, 1],
            "classes": 10,
            "operations": [
                {"type": "convolution", "filter_size": [3, 5], "num_filter": [16]},
                {"type": "reduction", "reduction_type": ["max_pooling"], "pool_size": [2]},
            ],
        }
    )
    automl.tune(
        _architecture_score,
        nas=space,
        name="nas-tiny",
        algorithm="random",
        direction="maximize",
        max_trials=4,
        seed=0,
        store=url,
        runs_dir=runs,
    )
    darts = NasSpace.from_native(
        {
            "layers": 1,
            "operations": [
                {"type": "max_pooling", "filter_size": [3]},
                {"type": "skip_connection"},
            ],
        }
    )
    automl.tune(
        _darts_search,
        nas=darts,
        name="darts-tiny",
        algorithm="darts",
        direction="maximize",
        max_trials=1,
        store=url,
        runs_dir=runs,
    )
    yield url


APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def run_app(**query_params: str) -> Any:
    """The dashboard run once under Streamlit's AppTest (configured by the environment), checked
    to have raised nothing."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=30)
    for k, v in query_params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at
