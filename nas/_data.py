"""Small offline image data for NAS trials.

* :func:`load_digits_data`: scikit-learn's 8x8 digits (1,797 images, 10 classes, bundled with
  scikit-learn, so no download).
* :func:`load_image_data`: data the user has on disk: an ``.npz`` file (``x``/``y``, or
  ``x_train``/``y_train`` with ``x_test``/``y_test`` or ``x_val``/``y_val``), a directory with
  ``x.npy`` and ``y.npy``, or a class-per-folder image tree (torchvision's ``ImageFolder``
  layout, optionally split into ``train/`` and ``val/`` or ``test/``), read with Pillow.

Images are scaled to [0, 1] (``uint8`` by 255) and standardised per channel with the training
split's mean and deviation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from automl.errors import SpecError

__all__ = ["IMAGE_SUFFIXES", "ImageData", "load_digits_data", "load_image_data"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageData:
    """Train and validation images (``N x C x H x W`` float tensors) with integer labels.

    Attributes:
        train: Training split.
        val: Validation split.
        in_channels: Channels per image.
        height: Image height.
        width: Image width.
        num_classes: Number of classes (labels are ``0 .. num_classes - 1``).
        classes: Class names, in label order.
    """

    train: TensorDataset
    val: TensorDataset
    in_channels: int
    height: int
    width: int
    num_classes: int
    classes: tuple[str, ...] = ()

    @property
    def input_sizes(self) -> tuple[int, int, int]:
        """Katib's ``inputSizes`` for this data: ``(height, width, channels)``."""
        return (self.height, self.width, self.in_channels)


def _split(
    n: int, labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified shuffled split of ``range(n)``: every class keeps its share in both parts."""
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = round(len(idx) * val_fraction)
        if len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        val.append(idx[:k])
        train.append(idx[k:])
    tr, va = np.concatenate(train), np.concatenate(val)
    rng.shuffle(tr)
    rng.shuffle(va)
    return tr, va


def _limit(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` samples, stratified, shuffled with ``seed``."""
    n = len(labels)
    if limit is None or limit >= n:
        return np.arange(n)
    if limit < 1:
        raise SpecError(f"must be >= 1; got {limit}", path="data.limit")
    keep, _ = _split(n, labels, 1.0 - limit / n, seed)
    return np.sort(keep[:limit])


def _finish(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    classes: Sequence[str],
) -> ImageData:
    scale = 255.0 if x_train.dtype == np.uint8 else 1.0
    xt = x_train.astype(np.float32) / scale
    xv = x_val.astype(np.float32) / scale
    mean = xt.mean(axis=(0, 2, 3), keepdims=True)
    std = xt.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    xt, xv = (xt - mean) / std, (xv - mean) / std
    _, c, h, w = xt.shape
    return ImageData(
        train=TensorDataset(torch.from_numpy(xt), torch.from_numpy(y_train.astype(np.int64))),
        val=TensorDataset(torch.from_numpy(xv), torch.from_numpy(y_val.astype(np.int64))),
        in_channels=int(c),
        height=int(h),
        width=int(w),
        num_classes=len(classes),
        classes=tuple(classes),
    )


def _check_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise SpecError(f"must be in (0, 1); got {val_fraction!r}", path="data.val_fraction")


def load_digits_data(
    *, seed: int = 0, val_fraction: float = 0.2, limit: int | None = None
) -> ImageData:
    """scikit-learn's 8x8 digits as ``1 x 8 x 8`` images, split stratified.

    Args:
        seed: Shuffling seed.
        val_fraction: Share of the (limited) samples held out for validation.
        limit: Use at most this many samples in total (stratified), for quick runs.
    """
    from sklearn.datasets import load_digits

    _check_fraction(val_fraction)
    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    keep = _limit(y, limit, seed)
    x, y = x[keep], y[keep]
    tr, va = _split(len(y), y, val_fraction, seed)
    return _finish(x[tr], y[tr], x[va], y[va], [str(i) for i in range(10)])


def _to_nchw(x: np.ndarray, path: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None, :, :]
    if x.ndim != 4:
        raise SpecError(
            f"images must be N x H x W, N x H x W x C or N x C x H x W; got shape {x.shape}",
            path=path,
        )
    channel_like = (1, 3, 4)
    if x.shape[1] in channel_like and x.shape[3] not in channel_like:
        return x
    return np.transpose(x, (0, 3, 1, 2))


def _labels(*ys: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    names = sorted({str(v) for y in ys for v in y.tolist()}, key=_natural)
    index = {n: i for i, n in enumerate(names)}
    return [np.array([index[str(v)] for v in y.tolist()], dtype=np.int64) for y in ys], names


def _natural(s: str) -> tuple[int, float | str]:
    try:
        return (0, float(s))
    except ValueError:
        return (1, s)


def _npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read {str(path)!r}: {exc}", path="data.path") from None


def _pick(arrays: dict[str, np.ndarray], *names: str) -> np.ndarray | None:
    for n in names:
        if n in arrays:
            return arrays[n]
    return None


def _read_images(
    folders: Sequence[tuple[Path, str]], size: tuple[int, int] | None, grayscale: bool | None
) -> tuple[np.ndarray, list[str]]:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow ships with the environment
        raise SpecError(
            "needs Pillow to read image folders (pip install pillow); or use an .npz file",
            path="data.path",
        ) from None
    files = [
        (f, label)
        for folder, label in folders
        for f in sorted(folder.rglob("*"))
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise SpecError(
            f"holds no images ({', '.join(IMAGE_SUFFIXES)}) under its class folders",
            path="data.path",
        )
    images: list[Any] = []
    for f, _ in files:
        try:
            images.append(Image.open(f))
        except OSError as exc:
            raise SpecError(f"cannot read image {str(f)!r}: {exc}", path="data.path") from None
    if grayscale is None:
        grayscale = all(im.mode in ("L", "1", "I", "I;16") for im in images)
    mode = "L" if grayscale else "RGB"
    arrays: list[np.ndarray] = []
    for (f, _), im in zip(files, images, strict=True):
        im = im.convert(mode)
        if size is not None:
            im = im.resize((size[1], size[0]))
        a = np.asarray(im, dtype=np.uint8)
        if arrays and a.shape != arrays[0].shape:
            raise SpecError(
                f"images differ in size ({str(f)!r} is {a.shape[:2]}, the first "
                f"{arrays[0].shape[:2]}); pass size=(height, width) to resize them",
                path="data.path",
            )
        arrays.append(a)
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else np.transpose(x, (0, 3, 1, 2))
    return x, [label for _, label in files]


def _class_dirs(root: Path) -> list[tuple[Path, str]]:
    return [
        (d, d.name) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")
    ]


def load_image_data(
    path: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    limit: int | None = None,
    size: tuple[int, int] | None = None,
    grayscale: bool | None = None,
) -> ImageData:
    """Load images from disk (``.npz``, ``x.npy``/``y.npy`` or class folders).

    Args:
        path: An ``.npz`` file, a directory with ``x.npy`` and ``y.npy``, or a directory with
            one sub-directory of images per class (or ``train/`` and ``val/``/``test/`` each
            holding class folders).
        seed: Shuffling seed.
        val_fraction: Share held out for validation when the data has no split of its own.
        limit: Use at most this many samples (of each split, stratified).
        size: Resize folder images to ``(height, width)``.
        grayscale: Read folder images as one channel (default: when they all are).

    Raises:
        SpecError: Missing file, unreadable or inconsistent data (``data.path``).
    """
    _check_fraction(val_fraction)
    p = Path(path)
    if not p.exists():
        raise SpecError(f"does not exist: {str(p)!r}", path="data.path")
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    if p.is_file():
        if p.suffix != ".npz":
            raise SpecError(
                f"must be an .npz file or a directory; got {str(p)!r}", path="data.path"
            )
        arrays = _npz(p)
        x = _pick(arrays, "x", "X", "images", "x_train")
        y = _pick(arrays, "y", "Y", "labels", "y_train")
        x_val = _pick(arrays, "x_val", "x_test")
        y_val = _pick(arrays, "y_val", "y_test")
        if x is None or y is None:
            raise SpecError(
                f"needs arrays x and y (or x_train and y_train); has {sorted(arrays)}",
                path="data.path",
            )
    elif (p / "x.npy").is_file() and (p / "y.npy").is_file():
        x = np.load(p / "x.npy", allow_pickle=False)
        y = np.load(p / "y.npy", allow_pickle=False)
    else:
        split = next((p / s for s in ("val", "test") if (p / s).is_dir()), None)
        if (p / "train").is_dir() and split is not None:
            x, yl = _read_images(_class_dirs(p / "train"), size, grayscale)
            shape = (int(x.shape[2]), int(x.shape[3]))
            x_val, yvl = _read_images(_class_dirs(split), size or shape, x.shape[1] == 1)
            y, y_val = np.array(yl), np.array(yvl)
        else:
            dirs = _class_dirs(p)
            if not dirs:
                raise SpecError(
                    "must hold x.npy and y.npy, or one folder of images per class",
                    path="data.path",
                )
            x, yl = _read_images(dirs, size, grayscale)
            y = np.array(yl)
    x = _to_nchw(np.asarray(x), "data.path")
    if len(x) != len(y):
        raise SpecError(f"has {len(x)} images but {len(y)} labels", path="data.path")
    if x_val is not None and y_val is not None:
        x_val = _to_nchw(np.asarray(x_val), "data.path")
        if x_val.shape[1:] != x.shape[1:] or len(x_val) != len(y_val):
            raise SpecError(
                f"validation images {x_val.shape} do not match training images {x.shape}",
                path="data.path",
            )
        (yt, yv), names = _labels(y, y_val)
        kt, kv = _limit(yt, limit, seed), _limit(yv, limit, seed)
        return _finish(x[kt], yt[kt], x_val[kv], yv[kv], names)
    (yt,), names = _labels(y)
    keep = _limit(yt, limit, seed)
    x, yt = x[keep], yt[keep]
    tr, va = _split(len(yt), yt, val_fraction, seed)
    return _finish(x[tr], yt[tr], x[va], yt[va], names)
