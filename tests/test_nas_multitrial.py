"""Multi-trial NAS through ``automl.tune``: random, tpe, grid, evolution and enas over an
architecture space, with early stopping, with a cheap objective (no training)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import automl
from automl import Client
from automl.core import TrialState
from automl.errors import SpecError
from automl.spec import load_spec
from automl.spec._render import render_trials
from search import Architecture, NasSpace
from tests.conftest import REPO

# Six operations, three layers: 6^3 * 2^3 = 1728 architectures.
NAS: dict[str, Any] = {
    "layers": 3,
    "input": [8, 8, 1],
    "classes": 10,
    "operations": [
        {"type": "convolution", "filter_size": [3, 5], "num_filter": [8, 16]},
        {"type": "reduction", "reduction_type": ["max_pooling", "avg_pooling"]},
    ],
}
SPACE = NasSpace.from_native(NAS)
BEST_OP = SPACE.operation_names.index("convolution_5x5_16")


def arch_score(arch: Architecture) -> float:
    """A made-up accuracy: wide 5x5 convolutions and skip connections are good."""
    ops = sum(op == BEST_OP for op in arch.ops) / arch.num_layers
    skips = sum(b for s in arch.skips for b in s) / 3
    return 0.5 * ops + 0.3 * skips + 0.2 * (arch.ops[0] == BEST_OP)


SEEN: list[dict[str, Any]] = []
_LOCK = threading.Lock()


def objective(architecture: Architecture, nn_config: str, **choices: Any) -> float:
    with _LOCK:
        SEEN.append({"architecture": architecture, "nn_config": nn_config, **choices})
    return arch_score(architecture)


@pytest.mark.parametrize("algorithm", ["random", "tpe", "evolution", "regularized-evolution"])
def test_algorithms_search_an_architecture_space(algorithm: str, sqlite_url: str) -> None:
    SEEN.clear()
    settings = {"population_size": 6, "sample_size": 3} if "evolution" in algorithm else {}
    r = automl.tune(
        objective,
        nas=NAS,
        algorithm=algorithm,
        algorithm_settings=settings,
        direction="maximize",
        max_trials=24,
        seed=0,
        store=sqlite_url,
        name=f"nas-{algorithm}",
    )
    assert len(r.trials) == 24 and set(r.trials["state"]) == {"Succeeded"}
    # The objective got the decoded architecture, Katib's nn_config and the layer choices.
    for call in SEEN:
        arch = call["architecture"]
        assert isinstance(arch, Architecture) and arch.num_layers == 3
        assert SPACE.decode(call) == arch
        cfg = json.loads(call["nn_config"].replace("'", '"'))
        assert set(cfg["embedding"]) == {str(op) for op in arch.ops}
    # Stored: the choices, Katib's assignments as strings and the architecture as data.
    for t in Client(sqlite_url).trials(f"nas-{algorithm}"):
        arch = Architecture.from_dict(t.attrs["architecture"])
        assert Architecture.from_katib(str(t.params["architecture"])) == arch
        assert SPACE.decode(t.params) == arch
        assert t.value == pytest.approx(arch_score(arch))
    assert r.best_value is not None and r.best_value > 0.5
    if "evolution" in algorithm:
        parents = [
            t.attrs["evolution"]["parent"] for t in Client(sqlite_url).trials(f"nas-{algorithm}")
        ]
        assert parents[:6] == [None] * 6 and all(p is not None for p in parents[6:])


def test_grid_enumerates_a_tiny_architecture_space(sqlite_url: str) -> None:
    tiny = {"layers": 2, "operations": [{"type": "convolution", "filter_size": [3, 5]}]}
    r = automl.tune(
        objective,
        nas=tiny,
        algorithm="grid",
        direction="maximize",
        store=sqlite_url,
        name="nas-grid",
    )
    assert r.reason == "SearchSpaceExhausted"
    archs = {str(t.params["architecture"]) for t in Client(sqlite_url).trials("nas-grid")}
    assert len(archs) == 2 * 2 * 2  # 2 ops per layer, one skip bit


def poor(arch: Architecture) -> bool:
    """Architectures that start by pooling the 8x8 input are poor here."""
    return SPACE.operations[arch.ops[0]].type == "reduction"


def staged(architecture: Architecture, **_: Any) -> None:
    """Reports per epoch; poor architectures plateau low (and wait to be stopped).

    Good ones report the top value until their last epoch: the median rule stops a trial below
    the others' median, which an ordinary good trial can be, and the test is about the poor.
    """
    final = 0.01 if poor(architecture) else 0.5 + 0.5 * arch_score(architecture)
    for epoch in range(1, 5):
        good = 1.0 if epoch < 4 else final
        automl.report(step=epoch, accuracy=final if poor(architecture) else good)
        if poor(architecture) and epoch >= 2:  # give the stopper (start_step 2) time to decide
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not automl.should_stop():
                time.sleep(0.005)
        if automl.should_stop():
            raise automl.TrialStopped


def test_evolution_with_medianstop_stops_poor_architectures(sqlite_url: str) -> None:
    r = automl.tune(
        staged,
        nas=SPACE,
        algorithm="evolution",
        algorithm_settings={"population_size": 6, "sample_size": 2},
        objective_metric="accuracy",
        direction="maximize",
        early_stopping={
            "name": "medianstop",
            "settings": {"min_trials_required": 2, "start_step": 2},
        },
        max_trials=14,
        seed=3,
        store=sqlite_url,
        name="nas-es",
    )
    trials = Client(sqlite_url).trials("nas-es")
    assert len(trials) == 14
    archs = {t.id: Architecture.from_dict(t.attrs["architecture"]) for t in trials}
    stopped = [t for t in trials if t.state is TrialState.EARLY_STOPPED]
    assert stopped, [(t.state, t.value) for t in trials]
    assert all(poor(archs[t.id]) for t in stopped)
    good = [t for t in trials if not poor(archs[t.id])]
    assert all(t.state is TrialState.SUCCEEDED for t in good)
    assert r.best_value is not None and r.best_value > 0.5


def test_enas_through_tune_learns_and_resumes_from_the_store(sqlite_url: str) -> None:
    settings = {
        "controller_learning_rate": 0.05,
        "controller_baseline_decay": 0.5,
        "controller_train_steps": 3,
        "controller_hidden_size": 16,
    }
    r = automl.tune(
        objective,
        nas=NAS,
        algorithm="enas",
        algorithm_settings=settings,
        direction="maximize",
        max_trials=6,
        parallel_trials=2,
        seed=1,
        store=sqlite_url,
        name="nas-enas",
    )
    assert len(r.trials) == 6
    client = Client(sqlite_url)
    state = client.get("nas-enas").sampler_state
    assert state["controller"] and state["train_steps"] > 0
    learned = list(state["learned"])
    assert learned and set(learned) <= {t.id for t in client.trials("nas-enas")}
    # Resume with a larger budget: the controller is reloaded from the store and goes on.
    r2 = automl.tune(
        objective,
        nas=NAS,
        algorithm="enas",
        algorithm_settings=settings,
        direction="maximize",
        max_trials=10,
        parallel_trials=2,
        seed=1,
        store=sqlite_url,
        name="nas-enas",
        resume=True,
    )
    assert len(r2.trials) == 10
    after = client.get("nas-enas").sampler_state
    assert after["train_steps"] > state["train_steps"]
    assert after["learned"][: len(learned)] == learned  # continued, not restarted
    assert len(after["learned"]) >= 8


def test_bad_nas_arguments_are_named() -> None:
    with pytest.raises(SpecError) as err:
        automl.tune(objective, nas={"layers": 0, "operations": []}, store="sqlite://")
    paths = {i.path for i in err.value.issues}
    assert {"nas.layers", "nas.operations"} <= paths
    with pytest.raises(SpecError) as err:
        automl.tune(objective, {"x": automl.int(1, 2)}, nas=NAS, store="sqlite://")
    assert any(i.path == "nas" and "not both" in i.message for i in err.value.issues)
    with pytest.raises(SpecError) as err:
        automl.tune(objective, nas=NAS, algorithm="hyperband", store="sqlite://")
    assert any("cannot search an architecture space" in i.message for i in err.value.issues)


def test_native_nas_section_parses_binds_and_renders() -> None:
    spec = load_spec(REPO / "examples" / "nas-digits" / "experiment.yaml")
    assert spec.algorithm.name == "evolution" and not spec.parameters
    space = NasSpace.from_spec(spec)
    assert space.num_layers == 3 and space.input_sizes == (8, 8, 1)
    # ${architecture} / ${nn_config} are bound as Katib trial parameters.
    refs = {tp.name: tp.reference for tp in spec.trial_template.trial_parameters}
    assert refs == {"architecture": "architecture", "nn_config": "nn_config"}
    for r in render_trials(spec, 3):
        assert r.argv is not None
        arch_arg = next(a for a in r.argv if a.startswith("--architecture="))
        arch = Architecture.from_katib(arch_arg.removeprefix("--architecture="))
        assert space.decode(r.params) == arch
        assert "${" not in " ".join(r.argv)


def _native(tmp_path: Path, **changes: Any) -> Path:
    doc = yaml.safe_load((REPO / "examples" / "nas-digits" / "experiment.yaml").read_text())
    doc.update(changes)
    doc["trial"]["workdir"] = str(REPO / "examples" / "nas-digits")
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"nas": {"layers": 0, "operations": [{"type": "convolution"}]}}, "nas.layers", ">= 1"),
        (
            {"nas": {"layers": 2, "operations": [{"type": "teleport"}]}},
            "nas.operations[0].type",
            "'teleport'",
        ),
        ({"parameters": {"lr": [0.1, 0.2]}}, "nas", "not both"),
        ({"algorithm": "hyperband"}, "algorithm", "cannot search an architecture space"),
        (
            {"algorithm": {"name": "enas", "settings": {"controller_skip_target": 2}}},
            "algorithm.settings.controller_skip_target",
            "(0, 1]",
        ),
    ],
)
def test_native_nas_errors_name_the_field(
    tmp_path: Path, changes: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(_native(tmp_path, **changes))
    issue = next((i for i in err.value.issues if i.path == path), None)
    assert issue is not None, err.value.issues
    assert words in issue.message


def test_darts_suggests_one_trial_with_katibs_assignments() -> None:
    from automl.core import TrialRecord
    from search import create_suggester
    from search._nas_multitrial import DartsSuggester

    spec = load_spec(REPO / "tests" / "data" / "katib-examples" / "nas" / "darts-gpu.yaml")
    s = create_suggester(spec)
    assert isinstance(s, DartsSuggester) and not s.exhausted
    (sug,) = s.suggest(["a", "b", "c"])  # one trial, whatever the free slots
    assert s.exhausted and s.suggest(["d"]) == []
    assert sug.params["num-layers"] == "3"
    assert sug.params["search-space"] == (
        "['separable_convolution_3x3', 'dilated_convolution_3x3', 'dilated_convolution_5x5', "
        "'avg_pooling_3x3', 'max_pooling_3x3', 'skip_connection']"
    )
    settings = json.loads(str(sug.params["algorithm-settings"]).replace("'", '"'))
    assert settings["num_epochs"] == "3" and settings["init_channels"] == 16  # Katib's defaults
    done = TrialRecord("a", "darts-gpu", 0, sug.params, TrialState.SUCCEEDED, value=0.5)
    assert create_suggester(spec, [done]).exhausted  # resumed: the search trial ran already
