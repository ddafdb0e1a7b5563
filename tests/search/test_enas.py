"""The ENAS controller: sampling, REINFORCE update, Katib's assignment formats, persistence."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
import torch

from automl.core import (
    AlgorithmSpec,
    Direction,
    ExperimentSpec,
    Objective,
    Suggestion,
    TrialRecord,
    TrialState,
)
from automl.errors import SpecError
from search import Architecture, NasSpace, create_suggester
from search._enas import EnasController, EnasSettings, EnasSuggester, one_thread

NAS_CONFIG: dict[str, Any] = {
    "graphConfig": {"numLayers": 4, "inputSizes": [8, 8, 1], "outputSizes": [10]},
    "operations": [
        {
            "operationType": "convolution",
            "parameters": [
                {
                    "name": "filter_size",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["3", "5"]},
                },
                {
                    "name": "num_filter",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["8"]},
                },
            ],
        },
        {
            "operationType": "reduction",
            "parameters": [
                {
                    "name": "reduction_type",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["max_pooling", "avg_pooling"]},
                },
                {
                    "name": "pool_size",
                    "parameterType": "int",
                    "feasibleSpace": {"min": "2", "max": "2", "step": "1"},
                },
            ],
        },
    ],
}


def make_spec(
    seed: int | None = 3,
    direction: Direction = Direction.MAXIMIZE,
    nas_config: Mapping[str, Any] | None = NAS_CONFIG,
    **settings: Any,
) -> ExperimentSpec:
    return ExperimentSpec(
        name="enas-t",
        objective=Objective(type=direction, metric="Validation-Accuracy"),
        algorithm=AlgorithmSpec(name="enas", settings=settings),
        parameters=(),
        nas_config=dict(nas_config) if nas_config is not None else None,
        seed=seed,
        source="python",
    )


def record(
    i: int, s: Suggestion, value: float | None, state: TrialState | None = None
) -> TrialRecord:
    return TrialRecord(
        id=f"t{i}",
        experiment_id="enas-t",
        number=i,
        params=s.params,
        state=state or TrialState.SUCCEEDED,
        value=value,
        attrs=s.attrs,
        finished_at=float(i),
    )


def test_samples_are_valid_architectures_in_katibs_format() -> None:
    spec = make_spec()
    s = create_suggester(spec)
    assert isinstance(s, EnasSuggester)
    space = NasSpace.from_spec(spec)
    assert len(space.operations) == 4
    sugs = s.suggest([f"t{i}" for i in range(20)])
    assert len(sugs) == 20
    for sug in sugs:
        assert set(sug.params) == {"architecture", "nn_config"}
        arc = json.loads(str(sug.params["architecture"]))
        assert [len(layer) for layer in arc] == [1, 2, 3, 4]  # op id + one skip per earlier layer
        assert all(0 <= layer[0] < 4 for layer in arc)
        assert all(bit in (0, 1) for layer in arc for bit in layer[1:])
        arch = Architecture.from_katib(str(sug.params["architecture"]))
        assert sug.attrs["architecture"] == arch.to_dict()  # kept as data with the trial
        cfg = json.loads(str(sug.params["nn_config"]).replace("'", '"'))  # Katib's quotes
        assert cfg["num_layers"] == 4 and cfg["input_sizes"] == [8, 8, 1]
        assert cfg["output_sizes"] == [10]
        assert set(cfg["embedding"]) == {str(op) for op in arch.ops}
        for k, op in cfg["embedding"].items():
            assert op["opt_id"] == int(k) and op["opt_type"] in ("convolution", "reduction")
    # An untrained controller (weights in +-0.01) samples close to uniformly.
    ops = [op for sug in sugs for op in json.loads(str(sug.params["architecture"]))]
    assert len({layer[0] for layer in ops}) == 4


def test_seeded_sampling_is_reproducible() -> None:
    a = create_suggester(make_spec(seed=5)).suggest(["a", "b", "c"])
    b = create_suggester(make_spec(seed=5)).suggest(["a", "b", "c"])
    c = create_suggester(make_spec(seed=6)).suggest(["a", "b", "c"])
    assert [x.params for x in a] == [x.params for x in b]
    assert [x.params for x in a] != [x.params for x in c]


def test_probability_sums_to_one_over_the_space() -> None:
    ctrl = EnasController(2, 3, EnasSettings(controller_hidden_size=8), seed=0)
    total = 0.0
    for o0 in range(3):
        for o1 in range(3):
            for bit in (0, 1):
                total += ctrl.probability(Architecture((o0, o1), ((), (bit,))))
    assert total == pytest.approx(1.0, abs=1e-5)


def _op0_share(s: EnasSuggester, n: int = 200) -> float:
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad(), one_thread():
        archs = [s.controller(generator=gen).arch for _ in range(n)]
    return sum(op == 0 for a in archs for op in a.ops) / (n * s.space.num_layers)


def _train_on_toy_reward(s: EnasSuggester, rounds: int, direction: Direction) -> None:
    n = 0
    for _ in range(rounds):
        for sug in s.suggest([f"t{n + k}" for k in range(4)]):
            arch = Architecture.from_dict(sug.attrs["architecture"])
            share = sum(op == 0 for op in arch.ops) / arch.num_layers  # reward: use op 0
            value = share if direction is Direction.MAXIMIZE else 1.0 - share
            s.tell(record(n, sug, value))
            n += 1


@pytest.mark.parametrize("direction", [Direction.MAXIMIZE, Direction.MINIMIZE])
def test_reward_update_moves_probability_to_the_rewarded_choice(direction: Direction) -> None:
    s = create_suggester(
        make_spec(
            direction=direction,
            controller_learning_rate=0.08,
            controller_baseline_decay=0.5,
            controller_train_steps=5,
            controller_hidden_size=16,
        )
    )
    assert isinstance(s, EnasSuggester)
    before = _op0_share(s)
    target = Architecture((0, 0, 0, 0), ((), (0,), (0, 0), (0, 0, 0)))
    p_before = s.controller.probability(target)
    _train_on_toy_reward(s, 8, direction)
    after = _op0_share(s)
    assert 0.15 < before < 0.35  # about 1/4 before
    if direction is Direction.MAXIMIZE:
        assert after > 0.6 and s.controller.probability(target) > 5 * p_before
    else:  # minimizing 1 - share is maximizing share: same direction of learning
        assert after > 0.6
    assert s.train_steps == 5 * 7  # one update of 5 steps per batch of new rewards
    assert len(s.state()["learned"]) == 28


def test_failed_trials_teach_nothing() -> None:
    s = create_suggester(make_spec(controller_train_steps=3))
    assert isinstance(s, EnasSuggester)
    sugs = s.suggest(["t0", "t1"])
    s.tell(record(0, sugs[0], None, TrialState.FAILED))
    s.tell(record(1, sugs[1], 0.5, TrialState.KILLED))
    s.suggest(["t2"])
    assert s.train_steps == 0 and s.state()["learned"] == []


def test_state_round_trip_and_resume_reproduce_the_next_sample() -> None:
    spec = make_spec(
        controller_learning_rate=0.01, controller_train_steps=4, controller_hidden_size=16
    )
    a = create_suggester(spec)
    assert isinstance(a, EnasSuggester)
    history: list[TrialRecord] = []
    saved: Mapping[str, Any] = {}
    for r in range(3):
        sugs = a.suggest([f"t{2 * r}", f"t{2 * r + 1}"])
        saved = json.loads(json.dumps(a.state()))  # what the controller stores (JSON)
        for k, sug in enumerate(sugs):
            rec = record(2 * r + k, sug, 0.1 * (2 * r + k))
            history.append(rec)
            a.tell(rec)
    assert len(saved["controller"]) < 200_000  # weights + Adam state, compressed
    # The state was saved at the last suggest; two trials finished after it. A restarted
    # suggester reloads the controller and learns from those two before sampling.
    b = create_suggester(spec, history, saved)
    assert isinstance(b, EnasSuggester)
    assert b.baseline == saved["baseline"] and b.train_steps == saved["train_steps"]
    nxt_a = a.suggest(["t6", "t7"])
    nxt_b = b.suggest(["t6", "t7"])
    assert [x.params for x in nxt_a] == [x.params for x in nxt_b]
    assert a.state()["learned"] == b.state()["learned"]
    for pa, pb in zip(a.controller.parameters(), b.controller.parameters(), strict=True):
        assert torch.equal(pa, pb)
    # Without the state, the controller would start untrained: a different policy.
    c = create_suggester(spec, history, None)
    assert isinstance(c, EnasSuggester)
    pa0 = next(a.controller.parameters())
    assert not torch.equal(pa0, next(c.controller.parameters()))


def test_bad_specs_are_named_before_any_trial() -> None:
    with pytest.raises(SpecError) as err:
        create_suggester(make_spec(nas_config=None))
    assert err.value.issues[0].path == "nas_config"
    with pytest.raises(SpecError) as err:
        create_suggester(make_spec(controller_temperature="hot"))
    assert err.value.issues[0].path == "algorithm.settings.controller_temperature"
    bad = json.loads(json.dumps(NAS_CONFIG))
    bad["operations"][0]["operationType"] = "teleport"
    with pytest.raises(SpecError) as err:
        create_suggester(make_spec(nas_config=bad))
    assert err.value.issues[0].path == "nas_config.operations[0].operationType"
    assert "'teleport'" in err.value.issues[0].message
