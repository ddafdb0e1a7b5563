"""Data loading and child training: reports per epoch inside a trial, honours stop requests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from automl._report import TrialInfo, bind, unbind
from automl.errors import SpecError
from nas import (
    ImageData,
    device_for,
    load_digits_data,
    load_image_data,
    train_child,
)
from search import Architecture, NasSpace, Operation

torch.set_num_threads(1)

SPACE = NasSpace(
    2,
    (8, 8, 1),
    (10,),
    (
        Operation("convolution", {"filter_size": 3, "num_filter": 16}),
        Operation("max_pooling", {"filter_size": 3}),
    ),
)
ARCH = Architecture((0, 0), ((), (1,)))


@contextmanager
def in_trial(stop_after: int | None = None) -> Iterator[list[tuple[int | None, dict[str, float]]]]:
    """Run the body as an in-process trial, collecting its reports (the real binding)."""
    reports: list[tuple[int | None, dict[str, float]]] = []

    def reporter(step: int | None, metrics: Mapping[str, float]) -> None:
        reports.append((step, dict(metrics)))

    def should_stop() -> bool:
        return stop_after is not None and len(reports) >= stop_after

    token = bind(TrialInfo("t-1", "exp", 0), reporter, should_stop)
    try:
        yield reports
    finally:
        unbind(token)


def digits_arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` digits as uint8 ``N x 8 x 8`` images and labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images[:n] * 255 / 16).astype(np.uint8), bunch.target[:n]


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_digits_data(limit=300, seed=1)


def test_digits_data_is_stratified_and_standardised(digits: ImageData) -> None:
    assert (digits.in_channels, digits.height, digits.width, digits.num_classes) == (1, 8, 8, 10)
    assert digits.input_sizes == (8, 8, 1)
    assert len(digits.train) + len(digits.val) == 300
    assert len(digits.val) == 60
    ytr = digits.train.tensors[1].numpy()
    yva = digits.val.tensors[1].numpy()
    assert set(ytr) == set(yva) == set(range(10))
    x = digits.train.tensors[0]
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 0.05
    again = load_digits_data(limit=300, seed=1)
    assert torch.equal(again.val.tensors[0], digits.val.tensors[0])
    with pytest.raises(SpecError) as exc:
        load_digits_data(val_fraction=1.5)
    assert exc.value.path == "data.val_fraction"


def test_child_trains_one_epoch_and_reports(digits: ImageData) -> None:
    with in_trial() as reports:
        acc = train_child(SPACE, ARCH, digits, epochs=1, log=None)
    assert reports == [(1, {"Validation-Accuracy": acc})]
    assert 0.0 <= acc <= 1.0


def test_child_learns_above_chance_and_stops_when_asked(digits: ImageData) -> None:
    acc = train_child(SPACE, ARCH, digits, epochs=4, batch_size=16, report=False, log=None)
    assert acc > 0.4  # chance is 0.1
    with in_trial(stop_after=2) as reports:
        train_child(SPACE, ARCH, digits, epochs=6, batch_size=16, log=None)
    assert [step for step, _ in reports] == [1, 2]


def test_child_rejects_sizes_that_do_not_fit_before_training(digits: ImageData) -> None:
    space = NasSpace(2, (32, 32, 3), (10,), SPACE.operations)
    with in_trial() as reports, pytest.raises(SpecError) as exc:
        train_child(space, ARCH, digits, epochs=1, log=None)
    assert exc.value.path == "nas_config.graphConfig.inputSizes"
    assert reports == []


def test_npz_and_npy_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 6, 5, 3), dtype=np.uint8)  # N H W C
    y = np.array(["cat", "dog"] * 20)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_image_data(tmp_path / "d.npz", val_fraction=0.25)
    assert (data.in_channels, data.height, data.width, data.num_classes) == (3, 6, 5, 2)
    assert data.classes == ("cat", "dog")
    assert (len(data.train), len(data.val)) == (30, 10)
    np.savez(
        tmp_path / "split.npz",
        x_train=x[:30].transpose(0, 3, 1, 2),  # N C H W
        y_train=np.arange(30) % 3,
        x_test=x[30:].transpose(0, 3, 1, 2),
        y_test=np.arange(10) % 3,
    )
    split = load_image_data(tmp_path / "split.npz")
    assert (len(split.train), len(split.val), split.num_classes) == (30, 10, 3)
    assert split.height == 6
    (tmp_path / "arr").mkdir()
    np.save(tmp_path / "arr" / "x.npy", x[:, :, :, 0])  # N H W
    np.save(tmp_path / "arr" / "y.npy", np.arange(40) % 4)
    arr = load_image_data(tmp_path / "arr", limit=20)
    assert (arr.in_channels, arr.num_classes, len(arr.train) + len(arr.val)) == (1, 4, 20)
    np.savez(tmp_path / "bad.npz", images=x)
    with pytest.raises(SpecError) as exc:
        load_image_data(tmp_path / "bad.npz")
    assert exc.value.path == "data.path" and "x and y" in str(exc.value)
    with pytest.raises(SpecError):
        load_image_data(tmp_path / "missing.npz")


def test_image_folders(tmp_path: Path, digits: ImageData) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for cls in ("a", "b", "c"):
            d = tmp_path / "tree" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, size=(10, 12, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")
    data = load_image_data(tmp_path / "tree")
    assert (data.in_channels, data.height, data.width) == (3, 10, 12)
    assert (len(data.train), len(data.val), data.classes) == (18, 6, ("a", "b", "c"))
    small = load_image_data(tmp_path / "tree" / "train", size=(8, 8), grayscale=True)
    assert (small.in_channels, small.height, small.width) == (1, 8, 8)
    # trains end to end on folder data, sizes from the data
    space = NasSpace(1, small.input_sizes, (small.num_classes,), SPACE.operations)
    acc = train_child(space, Architecture((0,), ((),)), small, epochs=1, report=False, log=None)
    assert 0.0 <= acc <= 1.0
    odd = tmp_path / "odd" / "x"
    odd.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(odd / "1.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(odd / "2.png")
    with pytest.raises(SpecError) as exc:
        load_image_data(tmp_path / "odd")
    assert "size=(height, width)" in str(exc.value)


def test_device_for() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert device_for().type == expected
    assert device_for("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(SpecError) as exc:
            device_for("cuda")
        assert exc.value.path == "device"


def test_child_in_a_subprocess_trial_reports_through_the_report_file(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from automl._report import REPORT_FILE_ENV, TRIAL_ENV
    from tests.conftest import REPO

    script = (
        "import torch; torch.set_num_threads(1)\n"
        "from nas import load_image_data, train_child\n"
        "from search import Architecture, NasSpace\n"
        "space = NasSpace.from_native({'layers': 1, 'input': [8, 8, 1], 'classes': 10,\n"
        "    'operations': [{'type': 'convolution', 'num_filter': 8}]})\n"
        f"data = load_image_data({str(tmp_path / 'd.npz')!r})\n"
        "train_child(space, Architecture((0,), ((),)), data, epochs=2)\n"
    )
    x, y = digits_arrays(100)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    env = {
        **os.environ,
        REPORT_FILE_ENV: str(tmp_path / "reports.jsonl"),
        TRIAL_ENV: json.dumps({"id": "t-7", "experiment": "e", "number": 7, "params": {}}),
        "AUTOML_ARTIFACT_DIR": str(tmp_path / "artifacts"),
    }
    subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, check=True, timeout=120)
    lines = [json.loads(x) for x in (tmp_path / "reports.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    assert all("Validation-Accuracy" in x["metrics"] for x in lines)
    stored = json.loads((tmp_path / "artifacts" / "outputs.json").read_text())["nas"]
    assert stored["architecture"] == [[0]]
    assert stored["validation_accuracy"] == lines[-1]["metrics"]["Validation-Accuracy"]
