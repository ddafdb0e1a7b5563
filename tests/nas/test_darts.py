"""DARTS: settings, genotype format, a short search that derives a genotype, and its rebuild."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from automl._report import TrialInfo, bind, unbind
from automl.errors import SpecError
from nas import (
    OUTPUT_KEY,
    DartsNetwork,
    DartsSettings,
    Genotype,
    ImageData,
    SearchNetwork,
    build_darts_network,
    darts_search,
    darts_search_space,
    load_digits_data,
    rebuild_model,
    train_network,
)
from nas._darts import reduction_cells
from search import NasSpace
from tests.nas.test_space import _example

torch.set_num_threads(1)

# A genotype as Katib's trial prints it (run_trial.py removes the spaces).
KATIB_LINE = (
    "Best-Genotype=Genotype(normal=[[('max_pooling_3x3',0),('skip_connection',1)],"
    "[('separable_convolution_3x3',2),('dilated_convolution_5x5',0)]],normal_concat=range(2,4),"
    "reduce=[[('avg_pooling_3x3',1),('max_pooling_3x3',0)],[('skip_connection',2),"
    "('dilated_convolution_3x3',1)]],reduce_concat=range(2,4))"
)


def test_settings_katib_names_defaults_and_errors() -> None:
    s = DartsSettings.from_settings({})
    assert s.to_dict() == {
        "num_epochs": 50,
        "w_lr": 0.025,
        "w_lr_min": 0.001,
        "w_momentum": 0.9,
        "w_weight_decay": 3e-4,
        "w_grad_clip": 5.0,
        "alpha_lr": 3e-4,
        "alpha_weight_decay": 1e-3,
        "batch_size": 128,
        "num_workers": 4,
        "init_channels": 16,
        "print_step": 50,
        "num_nodes": 4,
        "stem_multiplier": 3,
    }
    s = DartsSettings.from_settings({"num_epochs": "3", "w_lr": "0.1", "batch_size": "None"})
    assert (s.num_epochs, s.w_lr, s.batch_size) == (3, 0.1, None)
    with pytest.raises(SpecError) as exc:
        DartsSettings.from_settings({"num_epochs": "0", "w_lrr": "1", "alpha_lr": "-1"})
    assert [i.path for i in exc.value.issues] == [
        "algorithm.settings.num_epochs",
        "algorithm.settings.w_lrr",
        "algorithm.settings.alpha_lr",
    ]


def test_genotype_reads_and_writes_katibs_format() -> None:
    g = Genotype.parse(KATIB_LINE)
    assert g.normal[1] == (("separable_convolution_3x3", 2), ("dilated_convolution_5x5", 0))
    assert g.normal_concat == (2, 3) and g.reduce_concat == (2, 3)
    assert "Best-Genotype=" + str(g).replace(" ", "") == KATIB_LINE
    assert str(g).startswith("Genotype(normal=[[('max_pooling_3x3', 0), ('skip_connection', 1)]")
    assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    with pytest.raises(SpecError) as exc:
        Genotype(((("conv_7x7", 0),),), (2,), (), ())
    assert exc.value.path == "genotype.normal[0][0]"
    with pytest.raises(SpecError) as exc:
        Genotype(((("skip_connection", 2),),), (2,), (), ())
    assert "input state must be in [0, 2)" in str(exc.value)
    with pytest.raises(SpecError):
        Genotype.parse("Genotype(normal=oops)")


def test_search_space_from_katib_example_matches_katib_assignment() -> None:
    space = NasSpace.from_katib(_example("darts-gpu.yaml"))
    assert darts_search_space(space) == [
        "separable_convolution_3x3",
        "dilated_convolution_3x3",
        "dilated_convolution_5x5",
        "avg_pooling_3x3",
        "max_pooling_3x3",
        "skip_connection",
    ]
    enas = NasSpace.from_katib(_example("enas-cpu.yaml"))
    with pytest.raises(SpecError) as exc:
        darts_search_space(enas)
    assert exc.value.path == "nas_config.operations[0].operationType"


def test_supernet_layout_follows_katib() -> None:
    assert reduction_cells(1) == [False]
    assert reduction_cells(2) == [False, True]
    assert reduction_cells(3) == [False, True, True]
    assert reduction_cells(8) == [False, False, True, False, False, True, False, False]
    net = SearchNetwork(
        ["max_pooling_3x3", "skip_connection"],
        in_channels=1,
        num_classes=10,
        init_channels=4,
        num_layers=3,
        num_nodes=2,
        stem_multiplier=1,
    )
    assert [tuple(a.shape) for a in net.alpha_normal] == [(2, 3), (3, 3)]  # + 'none'
    assert len(net.alphas()) == 4
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.fixture(scope="module")
def tiny() -> ImageData:
    return load_digits_data(limit=160, seed=0)


@pytest.mark.filterwarnings("error::UserWarning")  # nothing reaches the user's terminal
def test_darts_search_derives_a_genotype_that_rebuilds_and_trains(
    tiny: ImageData, tmp_path: Path
) -> None:
    settings = DartsSettings.from_settings(
        {
            "num_epochs": "2",
            "batch_size": "32",
            "init_channels": "4",
            "num_nodes": "2",
            "stem_multiplier": "1",
        }
    )
    prims = [
        "separable_convolution_3x3",
        "dilated_convolution_3x3",
        "max_pooling_3x3",
        "skip_connection",
    ]
    reports: list[tuple[int | None, dict[str, float]]] = []

    def reporter(step: int | None, metrics: Mapping[str, float]) -> None:
        reports.append((step, dict(metrics)))

    info = TrialInfo("t-1", "exp", 0, artifact_dir=str(tmp_path))
    token = bind(info, reporter, lambda: False)
    try:
        log = io.StringIO()
        genotype = darts_search(tiny, settings, search_space=prims, num_layers=2, log=log)
    finally:
        unbind(token)
    assert "Train: [1/2] step 0 loss " in log.getvalue()  # the loss line printed, no warning
    assert [step for step, _ in reports] == [1, 2]
    assert all(0.0 <= m["Validation-Accuracy"] <= 1.0 for _, m in reports)
    assert len(genotype.normal) == len(genotype.reduce) == 2
    for gene in (genotype.normal, genotype.reduce):
        for i, node in enumerate(gene):
            assert len(node) == 2
            for op, src in node:
                assert op in prims and 0 <= src < 2 + i
    assert Genotype.parse(str(genotype).replace(" ", "")) == genotype
    # stored with the trial as structured data, in Katib's string form too
    stored = json.loads((tmp_path / "outputs.json").read_text())[OUTPUT_KEY]
    assert stored["kind"] == "darts" and stored["search_space"] == prims
    assert Genotype.from_dict(stored["genotype"]) == genotype
    assert stored["genotype_str"] == str(genotype)
    assert stored["validation_accuracy"] == max(m["Validation-Accuracy"] for _, m in reports)
    assert isinstance(rebuild_model(stored), DartsNetwork)
    net = build_darts_network(
        genotype, in_channels=1, num_classes=10, init_channels=4, num_layers=2
    )
    assert net(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    acc = train_network(
        net, tiny, epochs=4, lr=0.05, batch_size=16, seed=0, device=None, report=False, log=None
    )
    assert acc > 0.4  # the retrained network learns (chance is 0.1)
    rebuilt = build_darts_network(
        Genotype.from_dict(net.describe()["genotype"]),
        in_channels=1,
        num_classes=10,
        init_channels=4,
        num_layers=2,
    )
    rebuilt.load_state_dict(net.state_dict())


def test_darts_bad_input_before_training(tiny: ImageData) -> None:
    settings = DartsSettings(num_epochs=1)
    with pytest.raises(SpecError) as exc:
        darts_search(tiny, settings, search_space=["convolution_3x3"], log=None)
    assert exc.value.path == "search_space[0]"
    with pytest.raises(SpecError) as exc:
        darts_search(tiny, settings, search_space=["max_pooling_4x4"], log=None)
    assert "odd square kernel" in str(exc.value)
    one_cell = Genotype(((("skip_connection", 0), ("max_pooling_3x3", 1)),), (2,), (), ())
    with pytest.raises(SpecError) as exc:
        build_darts_network(one_cell, in_channels=1, num_classes=10, num_layers=3)
    assert exc.value.path == "genotype.reduce"
    net = build_darts_network(
        one_cell, in_channels=1, num_classes=10, init_channels=4, num_layers=1
    )
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
