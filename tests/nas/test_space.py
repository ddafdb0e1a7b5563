"""NasSpace: Katib nasConfig and native parsing, expansion, encoding, and bad input."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl.core import ParameterType
from automl.errors import SpecError
from automl.spec import load_spec
from automl.spec._katib_model import nas_operations
from search import Architecture, NasSpace, Operation
from search._nas_settings import enas_nn_config, enas_search_space
from tests.conftest import KATIB_EXAMPLES


def _example(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((KATIB_EXAMPLES / "nas" / name).read_text())
    return dict(doc["spec"]["nasConfig"])


def _paths(exc: pytest.ExceptionInfo[SpecError]) -> list[str]:
    return [i.path for i in exc.value.issues]


def test_katib_enas_example_expands_like_katib() -> None:
    cfg = _example("enas-cpu.yaml")
    space = NasSpace.from_katib(cfg)
    # convolution 3x5x2 + separable 3x5x2x2 + depthwise 3x2x2 + reduction 2x2
    assert len(space.operations) == 30 + 60 + 12 + 4
    assert (space.num_layers, space.input_sizes, space.output_sizes) == (1, (32, 32, 3), (10,))
    ops, _ = nas_operations(cfg)
    assert [op.to_katib(i) for i, op in enumerate(space.operations)] == enas_search_space(ops)
    assert space.operations[0] == Operation(
        "convolution", {"filter_size": "3", "num_filter": "32", "stride": "1"}
    )
    assert space.operations[-1].params == {"reduction_type": "avg_pooling", "pool_size": 3}


def test_nn_config_and_architecture_match_katib_strings() -> None:
    cfg = _example("enas-cpu.yaml")
    space = NasSpace.from_katib(cfg)
    arch = Architecture((5,), ((),))
    ops, _ = nas_operations(cfg)
    katib = enas_nn_config(cfg, ops, arch.to_katib())
    assert json.loads(katib.replace("'", '"')) == json.loads(json.dumps(space.nn_config(arch)))
    assert list(space.nn_config()["embedding"]) == list(range(len(space.operations)))


def test_architecture_katib_form_round_trip() -> None:
    arch = Architecture((3, 0, 7), ((), (1,), (0, 1)))
    assert arch.to_katib() == [[3], [0, 1], [7, 0, 1]]
    assert Architecture.from_katib(arch.to_katib()) == arch
    # what a Katib trial receives on its command line: single quotes, maybe still quoted
    assert Architecture.from_katib('"[[3], [0, 1], [7, 0, 1]]"') == arch
    assert Architecture.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    with pytest.raises(SpecError) as exc:
        Architecture.from_katib([[0], [1]])
    assert exc.value.path == "architecture[1]"
    with pytest.raises(SpecError) as exc:
        Architecture.from_katib("not json")
    assert exc.value.path == "architecture"


def test_encode_decode_round_trip_over_parameters() -> None:
    space = NasSpace.from_katib(_example("enas-cpu.yaml"))
    space4 = NasSpace(4, space.input_sizes, space.output_sizes, space.operations)
    params = space4.parameters()
    names = [p.name for p in params]
    assert names[:4] == ["layer_0_op", "layer_1_op", "layer_1_skip_0", "layer_2_op"]
    assert len(params) == 4 + 6
    assert params[0].type is ParameterType.CATEGORICAL
    assert len(set(params[0].values)) == len(space.operations)
    assert params[2].values == (0, 1)
    rng = random.Random(3)
    for _ in range(20):
        arch = space4.random_architecture(rng)
        enc = space4.encode(arch)
        assert set(enc) == set(names)
        assert all(enc[p.name] in p.values for p in params)
        assert space4.decode(enc) == arch
    with pytest.raises(SpecError) as exc:
        space4.decode({**space4.encode(arch), "layer_2_op": "conv_9x9"})
    assert exc.value.path == "parameters.layer_2_op"


def test_to_katib_round_trips_katib_native_and_python_spaces() -> None:
    for name in ("enas-cpu.yaml", "darts-gpu.yaml"):
        cfg = _example(name)
        space = NasSpace.from_katib(cfg)
        assert space.to_katib()["operations"] == cfg["operations"]
        assert NasSpace.from_katib(space.to_katib()) == space
    native = NasSpace.from_native(
        {
            "layers": 3,
            "input": [8, 8, 1],
            "classes": 10,
            "operations": [
                {"type": "convolution", "filter_size": [3, 5], "num_filter": 16},
                {"type": "reduction", "reduction_type": ["max_pooling", "avg_pooling"]},
                {"type": "skip_connection"},
            ],
        }
    )
    assert native.operation_names == (
        "convolution_3x3_16",
        "convolution_5x5_16",
        "reduction_max",
        "reduction_avg",
        "skip_connection",
    )
    assert NasSpace.from_katib(native.to_katib()) == native
    py = NasSpace(
        2,
        (8, 8, 1),
        (10,),
        (Operation("max_pooling", {"filter_size": 3}), Operation("skip_connection")),
    )
    assert NasSpace.from_katib(py.to_katib()).operations == (
        Operation("max_pooling", {"filter_size": "3"}),
        Operation("skip_connection"),
    )


def test_darts_example_names_are_katib_darts_primitives() -> None:
    space = NasSpace.from_katib(_example("darts-gpu.yaml"))
    assert space.operation_names == (
        "separable_convolution_3x3",
        "dilated_convolution_3x3",
        "dilated_convolution_5x5",
        "avg_pooling_3x3",
        "max_pooling_3x3",
        "skip_connection",
    )
    assert space.input_sizes == ()


def test_bad_katib_config_reports_every_field_at_once() -> None:
    cfg = copy.deepcopy(_example("enas-cpu.yaml"))
    cfg["graphConfig"]["inputSizes"] = [32, 32]
    cfg["operations"][1]["operationType"] = "conv9"
    cfg["operations"][0]["parameters"][2]["name"] = "strides"
    cfg["operations"][3]["parameters"][0]["feasibleSpace"]["list"] = ["median_pooling"]
    with pytest.raises(SpecError) as exc:
        NasSpace.from_katib(cfg)
    assert _paths(exc) == [
        "nas_config.graphConfig.inputSizes",
        "nas_config.operations[1].operationType",
        "nas_config.operations[0].parameters[2].name",
        "nas_config.operations[3].parameters[0].name",
    ]
    text = str(exc.value)
    assert "'conv9'" in text and "'strides'" in text and "'median_pooling'" in text
    assert "valid parameters: ['filter_size', 'num_filter', 'stride']" in text


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (lambda c: c.update(operations=[]), "nas_config.operations", "at least one operation"),
        (lambda c: c.pop("graphConfig"), "nas_config.graphConfig", "is required"),
        (
            lambda c: c["graphConfig"].update(numLayers=0),
            "nas_config.graphConfig.numLayers",
            ">= 1",
        ),
        (
            lambda c: c["operations"][0]["parameters"][0]["feasibleSpace"].update(list=["0"]),
            "nas_config.operations[0].parameters[0].name",
            "filter_size: must be an integer >= 1",
        ),
        (
            lambda c: c["operations"][3]["parameters"][1]["feasibleSpace"].update(min="4"),
            "nas_config.operations[3].parameters[1].feasibleSpace",
            "min <= max",
        ),
        (
            lambda c: c["operations"][0]["parameters"].append(
                {
                    "name": "stride",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["1"]},
                }
            ),
            "nas_config.operations[0].parameters[3].name",
            "appears twice",
        ),
    ],
)
def test_bad_katib_config(change: Any, path: str, words: str) -> None:
    cfg = copy.deepcopy(_example("enas-cpu.yaml"))
    change(cfg)
    with pytest.raises(SpecError) as exc:
        NasSpace.from_katib(cfg)
    assert path in _paths(exc)
    assert words in str(exc.value)


def test_bad_native_config_names_native_fields() -> None:
    with pytest.raises(SpecError) as exc:
        NasSpace.from_native(
            {
                "layers": 2,
                "input": [8, 8],
                "colour": True,
                "operations": [{"type": "convolution", "kernel": 3}, {"type": "pool"}],
            }
        )
    assert _paths(exc) == [
        "nas.colour",
        "nas.input",
        "nas.operations[1].type",
        "nas.operations[0].kernel",
    ]
    with pytest.raises(SpecError) as exc:
        NasSpace.from_native({"layers": 1, "operations": []})
    assert _paths(exc) == ["nas.operations"]


def test_python_operations_are_checked() -> None:
    with pytest.raises(SpecError) as exc:
        Operation("convolution", {"size": 3})
    assert "valid parameters" in str(exc.value)
    with pytest.raises(SpecError):
        Operation("pool")
    with pytest.raises(SpecError) as exc:
        NasSpace(1, (), (), ())
    assert exc.value.path == "operations"
    space = NasSpace(2, (), (), (Operation("skip_connection"),))
    with pytest.raises(SpecError) as exc:
        space.check(Architecture((0, 1), ((), (0,))))
    assert exc.value.path == "architecture[1][0]"
    with pytest.raises(SpecError) as exc:
        space.check(Architecture((0,), ((),)))
    assert "numLayers=2" in str(exc.value)


def test_katib_front_door_rejects_unknown_parameters_and_values(tmp_path: Path) -> None:
    doc = yaml.safe_load((KATIB_EXAMPLES / "nas" / "enas-cpu.yaml").read_text())
    ops = doc["spec"]["nasConfig"]["operations"]
    ops[0]["parameters"][2]["name"] = "strides"
    ops[3]["parameters"][0]["feasibleSpace"]["list"] = ["median_pooling"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert _paths(exc) == [
        "spec.nasConfig.operations[0].parameters[2].name",
        "spec.nasConfig.operations[3].parameters[0].feasibleSpace",
    ]
    assert "valid parameters: ['filter_size', 'num_filter', 'stride']" in str(exc.value)
    assert "'median_pooling'" in str(exc.value)
