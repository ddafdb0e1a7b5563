"""build_model: every operation type builds and runs at the declared sizes; bad sizes fail."""

from __future__ import annotations

import random

import pytest
import torch

from automl.errors import SpecError
from nas import build_model, check_space
from search import Architecture, NasSpace, Operation
from search._nas_space import OPERATION_TYPES

torch.set_num_threads(1)

# One operation per type, with non-default parameters where the type has them.
EVERY_OP = {
    "convolution": {"filter_size": 5, "num_filter": 12, "stride": 2},
    "separable_convolution": {"filter_size": 3, "num_filter": 10, "depth_multiplier": 2},
    "depthwise_convolution": {"filter_size": 3, "stride": 2, "depth_multiplier": 2},
    "dilated_convolution": {"filter_size": 3, "num_filter": 8, "dilation": 2},
    "reduction": {"reduction_type": "avg_pooling", "pool_size": 2},
    "avg_pooling": {"filter_size": 3, "stride": 2},
    "max_pooling": {"filter_size": 2, "stride": 1},
    "skip_connection": {},
}


def test_every_operation_type_is_covered() -> None:
    assert set(EVERY_OP) == set(OPERATION_TYPES)


@pytest.mark.parametrize("op_type", sorted(EVERY_OP))
@pytest.mark.parametrize("sizes", [(8, 8, 1), (32, 32, 3)], ids=["digits", "cifar"])
def test_every_operation_builds_and_runs(op_type: str, sizes: tuple[int, int, int]) -> None:
    op = Operation(op_type, EVERY_OP[op_type])
    # layer 1 skips from the input, so the op also sees a concatenation of two nodes
    space = NasSpace(2, sizes, (10,), (op, Operation("skip_connection")))
    for arch in (Architecture((0,), ((),)), Architecture((0, 0), ((), (1,)))):
        sp = NasSpace(arch.num_layers, sizes, (10,), space.operations)
        model = build_model(sp, arch)
        h, w, c = sizes
        x = torch.randn(4, c, h, w)
        out = model(x)
        assert out.shape == (4, 10)
        # shape bookkeeping agrees with the tensors: run layer by layer
        expected = model.shapes[1]
        feat = model.layers[0](x)
        assert tuple(feat.shape[1:]) == (expected.c, expected.h, expected.w)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)


def test_katib_semantics_of_channels_and_sizes() -> None:
    ops = (
        Operation("convolution", {"filter_size": 3, "num_filter": 16, "stride": 2}),
        Operation("depthwise_convolution", {"depth_multiplier": 2}),
        Operation("reduction", {"reduction_type": "max_pooling", "pool_size": 2}),
    )
    space = NasSpace(3, (32, 32, 3), (10,), ops)
    model = build_model(space, Architecture((0, 1, 2), ((), (0,), (0, 0))))
    assert [(s.c, s.h, s.w) for s in model.shapes] == [
        (3, 32, 32),
        (16, 16, 16),  # same padding, stride 2
        (32, 16, 16),  # depthwise multiplies channels
        (32, 8, 8),  # valid pooling, stride = pool size
    ]
    # skip from the input into layer 2: the 32x32 input is concatenated with the 16x16 map,
    # which is zero-padded up to 32x32 (Katib's concat)
    model = build_model(space, Architecture((0, 1, 2), ((), (0,), (1, 0))))
    assert [(s.c, s.h, s.w) for s in model.shapes][3] == (35, 16, 16)


def test_reduction_on_one_pixel_is_identity_and_too_small_is_spec_error() -> None:
    red = Operation("reduction", {"pool_size": 2})
    space = NasSpace(4, (8, 8, 1), (10,), (red,))
    model = build_model(space, Architecture((0,) * 4, tuple((0,) * i for i in range(4))))
    assert [(s.h, s.w) for s in model.shapes] == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    big = NasSpace(2, (8, 8, 1), (10,), (Operation("reduction", {"pool_size": 3}),))
    with pytest.raises(SpecError) as exc:
        build_model(big, Architecture((0, 0), ((), (0,))))
    assert exc.value.path == "architecture[1][0]"
    assert "at least 3x3; got 2x2" in str(exc.value)


def test_sizes_must_fit_the_data() -> None:
    space = NasSpace(1, (32, 32, 3), (10,), (Operation("skip_connection"),))
    arch = Architecture((0,), ((),))
    with pytest.raises(SpecError) as exc:
        build_model(space, arch, in_channels=1)
    assert exc.value.path == "nas_config.graphConfig.inputSizes"
    assert "[32, 32, 1]" in str(exc.value)
    with pytest.raises(SpecError) as exc:
        build_model(space, arch, num_classes=2)
    assert exc.value.path == "nas_config.graphConfig.outputSizes"
    bare = NasSpace(1, (), (), (Operation("skip_connection"),))
    with pytest.raises(SpecError) as exc:
        build_model(bare, arch, num_classes=2)
    assert exc.value.path == "nas_config.graphConfig.inputSizes"
    model = build_model(bare, arch, in_channels=2, height=5, width=7, num_classes=3)
    assert model(torch.zeros(2, 2, 5, 7)).shape == (2, 3)
    with pytest.raises(SpecError) as exc:
        build_model(space, Architecture((1,), ((),)))
    assert exc.value.path == "architecture[0][0]"


def test_random_architectures_build_and_run() -> None:
    space = NasSpace.from_native(
        {
            "layers": 5,
            "input": [8, 8, 1],
            "classes": 10,
            "operations": [
                {"type": "convolution", "filter_size": [3, 5], "num_filter": 8, "stride": [1, 2]},
                {"type": "separable_convolution", "num_filter": 8},
                {"type": "depthwise_convolution"},
                {"type": "dilated_convolution", "num_filter": 8},
                {"type": "reduction", "reduction_type": ["max_pooling", "avg_pooling"]},
                {"type": "avg_pooling"},
                {"type": "max_pooling", "stride": 2},
                {"type": "skip_connection"},
            ],
        }
    )
    rng = random.Random(0)
    x = torch.randn(3, 1, 8, 8)
    for _ in range(25):
        arch = space.random_architecture(rng)
        model = build_model(space, arch)
        assert model(x).shape == (3, 10)
        described = model.describe()
        rebuilt = build_model(
            NasSpace.from_katib(described["nas_config"]),
            Architecture.from_katib(described["architecture"]),
        )
        rebuilt.load_state_dict(model.state_dict())
        model.eval()
        rebuilt.eval()
        assert torch.equal(model(x), rebuilt(x))


def test_check_space_names_the_operation_field_before_training() -> None:
    cfg = {
        "graphConfig": {"numLayers": 2, "inputSizes": [8, 8, 1], "outputSizes": [10]},
        "operations": [
            {
                "operationType": "convolution",
                "parameters": [
                    {
                        "name": "filter_size",
                        "parameterType": "categorical",
                        "feasibleSpace": {"list": ["3", "5"]},
                    },
                ],
            },
            {
                "operationType": "reduction",
                "parameters": [
                    {
                        "name": "pool_size",
                        "parameterType": "int",
                        "feasibleSpace": {"min": "8", "max": "9", "step": "1"},
                    },
                ],
            },
        ],
    }
    space = NasSpace.from_katib(cfg)
    with pytest.raises(SpecError) as exc:
        check_space(space)
    assert [i.path for i in exc.value.issues] == ["nas_config.operations[1]"]
    assert "reduction_9x9: " in str(exc.value) and "got 8x8" in str(exc.value)
    cfg["operations"].pop()
    fine = NasSpace.from_katib(cfg)
    check_space(fine, in_channels=1, height=8, width=8, num_classes=10)
    with pytest.raises(SpecError) as exc:
        check_space(fine, in_channels=3, height=32, width=32)
    assert exc.value.path == "nas_config.graphConfig.inputSizes"
    assert "[32, 32, 3]" in str(exc.value)
    with pytest.raises(SpecError) as exc:
        check_space(fine, num_classes=2)
    assert exc.value.path == "nas_config.graphConfig.outputSizes"
