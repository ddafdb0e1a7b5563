"""A trained child stores its architecture with the trial; it rebuilds and exports as source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from automl._report import TrialInfo, bind, unbind
from automl.errors import SpecError
from nas import (
    OUTPUT_KEY,
    Genotype,
    NasNetwork,
    export_source,
    load_digits_data,
    rebuild_model,
    record_result,
    train_child,
)
from search import Architecture, NasSpace, Operation

torch.set_num_threads(1)


def test_child_result_is_stored_rebuilt_and_exported(tmp_path: Path) -> None:
    data = load_digits_data(limit=120)
    space = NasSpace.from_native(
        {
            "layers": 3,
            "input": [8, 8, 1],
            "classes": 10,
            "operations": [
                {"type": "convolution", "filter_size": [3, 5], "num_filter": 8},
                {"type": "reduction"},
            ],
        }
    )
    arch = Architecture((1, 2, 0), ((), (1,), (0, 1)))
    token = bind(TrialInfo("t", "e", 0, artifact_dir=str(tmp_path)), lambda s, m: None, bool)
    try:
        acc = train_child(space, arch, data, epochs=1, log=None)
    finally:
        unbind(token)
    stored = json.loads((tmp_path / "outputs.json").read_text())[OUTPUT_KEY]
    assert stored["kind"] == "enas"
    assert stored["architecture"] == [[1], [2, 1], [0, 0, 1]]
    assert stored["validation_accuracy"] == acc
    assert NasSpace.from_katib(stored["nas_config"]) == space
    model = rebuild_model(stored)
    assert isinstance(model, NasNetwork) and model.architecture == arch

    namespace: dict[str, Any] = {}
    exec(compile(export_source(stored), "exported.py", "exec"), namespace)
    built = namespace["build"]()
    assert namespace["ARCHITECTURE"] == "[[1], [2, 1], [0, 0, 1]]"
    built.load_state_dict(model.state_dict())
    built.eval()
    model.eval()
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(built(x), model(x))


def test_darts_description_exports_and_bad_descriptions_fail() -> None:
    g = Genotype(((("skip_connection", 0), ("max_pooling_3x3", 1)),), (2,), (), ())
    desc = {"kind": "darts", "genotype": g.to_dict(), "in_channels": 3, "num_classes": 4}
    desc |= {"init_channels": 4, "num_layers": 1, "stem_multiplier": 1}
    namespace: dict[str, Any] = {}
    exec(compile(export_source(desc), "exported.py", "exec"), namespace)
    assert namespace["GENOTYPE"] == str(g)
    assert namespace["build"]()(torch.randn(2, 3, 16, 16)).shape == (2, 4)
    with pytest.raises(SpecError) as exc:
        rebuild_model({"kind": "nasnet"})
    assert exc.value.path == "nas.kind"
    with pytest.raises(SpecError) as exc:
        export_source({"kind": "darts", "in_channels": 1})
    assert "'genotype'" in str(exc.value)
    # outside a trial nothing is stored, and nothing fails
    assert record_result(desc) is False
    space = NasSpace(1, (8, 8, 1), (10,), (Operation("skip_connection"),))
    assert record_result({"kind": "enas", "nas_config": space.to_katib()}) is False
