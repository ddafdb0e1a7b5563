"""Training loops: a built network on :class:`ImageData`, reporting to the current trial."""

from __future__ import annotations

import sys
from typing import TextIO

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from automl.errors import SpecError
from nas._data import ImageData
from nas._model import build_model
from search._nas_space import Architecture, NasSpace

__all__ = ["METRIC", "accuracy", "device_for", "train_child", "train_network"]

#: The metric Katib's NAS examples report.
METRIC = "Validation-Accuracy"


def device_for(prefer: str | None = None) -> torch.device:
    """The device to train on: ``prefer`` if given, else CUDA when visible, else the CPU.

    Raises:
        SpecError: ``prefer`` names CUDA but none is visible, or is not a device name.
    """
    if prefer:
        try:
            dev = torch.device(prefer)
        except RuntimeError:
            raise SpecError(f"is not a torch device; got {prefer!r}", path="device") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise SpecError("asks for CUDA but no GPU is visible", path="device")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def loader(
    ds: TensorDataset, batch_size: int | None, shuffle: bool, seed: int, drop_last: bool = False
) -> DataLoader[tuple[torch.Tensor, ...]]:
    """A single-process loader (the tensors are in memory), seeded when shuffling."""
    g = torch.Generator()
    g.manual_seed(seed)
    n = len(ds)
    bs = n if batch_size is None else max(1, min(batch_size, n))
    return DataLoader(ds, batch_size=bs, shuffle=shuffle, generator=g, drop_last=drop_last)


@torch.no_grad()
def accuracy(
    model: nn.Module, ds: TensorDataset, device: torch.device, batch_size: int = 256
) -> float:
    """Top-1 accuracy of ``model`` on ``ds`` (eval mode; the mode is restored)."""
    was = model.training
    model.eval()
    correct = total = 0
    for x, y in loader(ds, batch_size, False, 0):
        out = model(x.to(device))
        correct += int((out.argmax(1) == y.to(device)).sum())
        total += len(y)
    model.train(was)
    return correct / max(total, 1)


def _in_trial() -> bool:
    from automl._report import current_trial

    return current_trial() is not None


def report_epoch(epoch: int, acc: float, report: bool, **extra: float) -> bool:
    """Report one epoch to the current trial (when inside one); True when asked to stop."""
    if not report or not _in_trial():
        return False
    from automl._report import report as automl_report
    from automl._report import should_stop

    automl_report(step=epoch, **{METRIC: acc}, **extra)
    return should_stop()


def train_network(
    model: nn.Module,
    data: ImageData,
    *,
    epochs: int,
    lr: float = 0.1,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | str | None = None,
    report: bool = True,
    momentum: float = 0.9,
    weight_decay: float = 3e-4,
    grad_clip: float | None = 5.0,
    log: TextIO | None = sys.stderr,
) -> float:
    """Train ``model`` with SGD (cosine learning rate) and return the last validation accuracy.

    Inside a trial each epoch is reported as ``Validation-Accuracy`` at ``step=epoch`` (from 1)
    and the loop ends early when the controller asks the trial to stop.

    Raises:
        SpecError: ``epochs`` or ``batch_size`` below 1, or ``lr`` not positive.
    """
    if epochs < 1:
        raise SpecError(f"must be >= 1; got {epochs}", path="epochs")
    if batch_size < 1:
        raise SpecError(f"must be >= 1; got {batch_size}", path="batch_size")
    if not lr > 0:
        raise SpecError(f"must be > 0; got {lr}", path="lr")
    dev = device if isinstance(device, torch.device) else device_for(device)
    torch.manual_seed(seed)
    model.to(dev)
    opt = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    loss_fn = nn.CrossEntropyLoss()
    acc = 0.0
    # drop_last avoids a 1-sample batch, which batch norm cannot train on
    drop = len(data.train) > batch_size
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        batches = 0
        for x, y in loader(data.train, batch_size, True, seed + epoch, drop_last=drop):
            x, y = x.to(dev), y.to(dev)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            total += float(loss.detach())
            batches += 1
        sched.step()
        acc = accuracy(model, data.val, dev)
        if log is not None:
            print(
                f"epoch {epoch}/{epochs}: train loss {total / max(batches, 1):.4f}, "
                f"validation accuracy {acc:.4f}",
                file=log,
            )
        if report_epoch(epoch, acc, report):
            break
    return acc


def train_child(
    space: NasSpace,
    arch: Architecture,
    data: ImageData,
    *,
    epochs: int,
    lr: float = 0.1,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | str | None = None,
    report: bool = True,
    log: TextIO | None = sys.stderr,
) -> float:
    """Build ``arch`` for ``data`` and train it; return the last validation accuracy.

    The space's ``inputSizes`` and ``outputSizes`` must fit the data (checked before any
    training). Reports each epoch to the current trial, as :func:`train_network` does, and
    stores the built architecture with the trial (``outputs.json["nas"]``, see
    :func:`nas.record_result`).

    Raises:
        SpecError: The sizes do not fit the data or the architecture does not build.
    """
    torch.manual_seed(seed)
    model = build_model(
        space,
        arch,
        in_channels=data.in_channels,
        num_classes=data.num_classes,
        height=data.height,
        width=data.width,
    )
    acc = train_network(
        model,
        data,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        device=device,
        report=report,
        log=log,
    )
    if report:
        from nas._export import record_result

        record_result(model.describe(), validation_accuracy=acc)
    return acc
