"""The layer-wise (ENAS-style) network: architecture -> torch module.

A torch port of Katib's ENAS trial (``ModelConstructor.py``): node 0 is the input; layer ``i``
reads node ``i`` plus every node ``j < i`` whose skip bit is set (zero-padded to the largest
spatial size and concatenated on channels) and its output is node ``i + 1``; the head is global
average pooling, dropout 0.4 and a linear layer (logits; Katib's softmax is in the loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from automl.errors import SpecError, SpecIssue
from nas._ops import LayerShape, make_layer
from search._nas_space import Architecture, NasSpace

__all__ = ["NasNetwork", "build_model", "check_space", "concat_padded", "input_shape"]


def concat_padded(inputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Zero-pad feature maps to the largest height and width (centred) and concatenate."""
    if len(inputs) == 1:
        return inputs[0]
    h = max(t.shape[2] for t in inputs)
    w = max(t.shape[3] for t in inputs)
    out = []
    for t in inputs:
        dh, dw = h - t.shape[2], w - t.shape[3]
        if dh or dw:
            t = F.pad(t, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        out.append(t)
    return torch.cat(out, dim=1)


class NasNetwork(nn.Module):
    """A built architecture. ``space`` and ``architecture`` are kept to rebuild or export it."""

    def __init__(
        self,
        space: NasSpace,
        arch: Architecture,
        in_shape: LayerShape,
        num_classes: int,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        self.space, self.architecture = space, arch
        self.in_channels, self.height, self.width = in_shape.c, in_shape.h, in_shape.w
        self.num_classes = num_classes
        shapes = [in_shape]
        self.layers = nn.ModuleList()
        for i, (op_index, skip) in enumerate(zip(arch.ops, arch.skips, strict=True)):
            sources = [shapes[i]] + [shapes[j] for j, bit in enumerate(skip) if bit]
            merged = LayerShape(
                sum(s.c for s in sources), max(s.h for s in sources), max(s.w for s in sources)
            )
            op = space.operations[op_index]
            try:
                module, out = make_layer(op, merged)
            except SpecError as exc:
                raise SpecError(
                    [
                        SpecIssue(f"architecture[{i}][0]", f"layer {i}: {x.message}")
                        for x in exc.issues
                    ]
                ) from None
            self.layers.append(module)
            shapes.append(out)
        self.shapes = tuple(shapes)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(shapes[-1].c, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for i, layer in enumerate(self.layers):
            skip = self.architecture.skips[i]
            inputs = [nodes[i]] + [nodes[j] for j, bit in enumerate(skip) if bit]
            nodes.append(layer(concat_padded(inputs)))
        return self.head(nodes[-1])  # type: ignore[no-any-return]

    def describe(self) -> dict[str, Any]:
        """What rebuilds this network: the space (Katib nasConfig), architecture and sizes."""
        return {
            "kind": "enas",
            "nas_config": self.space.to_katib(),
            "architecture": self.architecture.to_katib(),
            "in_channels": self.in_channels,
            "height": self.height,
            "width": self.width,
            "num_classes": self.num_classes,
        }


def input_shape(
    space: NasSpace,
    in_channels: int | None = None,
    height: int | None = None,
    width: int | None = None,
) -> LayerShape:
    """The input shape: the space's ``inputSizes`` ``[h, w, c]``, checked against what is given.

    Raises:
        SpecError: Sizes that contradict the space's (``nas_config.graphConfig.inputSizes``),
            or no sizes at all.
    """
    given = (height, width, in_channels)
    path = "nas_config.graphConfig.inputSizes"
    if space.input_sizes:
        declared = space.input_sizes
        if any(g is not None and g != d for g, d in zip(given, declared, strict=True)):
            got = [g if g is not None else d for g, d in zip(given, declared, strict=True)]
            raise SpecError(
                f"must fit the data [height, width, channels] = {got}; got {list(declared)}",
                path=path,
            )
        return LayerShape(declared[2], declared[0], declared[1])
    if in_channels is None or height is None or width is None:
        raise SpecError(
            "is required, or the data's channels, height and width must be given", path=path
        )
    return LayerShape(in_channels, height, width)


def build_model(
    space: NasSpace,
    arch: Architecture,
    *,
    in_channels: int | None = None,
    num_classes: int | None = None,
    height: int | None = None,
    width: int | None = None,
) -> NasNetwork:
    """Build the layer-wise network for ``arch`` in ``space``.

    Sizes come from the space's ``inputSizes``/``outputSizes``; those given here must agree
    with them (or stand in for them when the space has none). A forward pass on a zero input
    at those sizes checks that the network runs.

    Raises:
        SpecError: The architecture does not fit the space, the sizes disagree or are missing,
            or a layer cannot apply to its input (paths ``architecture[i][0]``,
            ``nas_config.graphConfig.*``).
    """
    space.check(arch)
    shape = input_shape(space, in_channels, height, width)
    if space.output_sizes:
        declared = space.output_sizes[-1]
        if num_classes is not None and num_classes != declared:
            raise SpecError(
                f"must end with the data's number of classes {num_classes}; "
                f"got {list(space.output_sizes)}",
                path="nas_config.graphConfig.outputSizes",
            )
        num_classes = declared
    if num_classes is None or num_classes < 1:
        raise SpecError(
            "is required, or the data's number of classes must be given",
            path="nas_config.graphConfig.outputSizes",
        )
    model = NasNetwork(space, arch, shape, num_classes)
    model.eval()
    with torch.no_grad():
        try:
            out = model(torch.zeros(1, shape.c, shape.h, shape.w))
        except RuntimeError as exc:  # a size the shape bookkeeping missed
            raise SpecError(f"does not build: {exc}", path="architecture") from None
    if tuple(out.shape) != (1, num_classes):
        raise SpecError(f"gives outputs of shape {tuple(out.shape)}", path="architecture")
    model.train()
    return model


def check_space(
    space: NasSpace,
    *,
    in_channels: int | None = None,
    num_classes: int | None = None,
    height: int | None = None,
    width: int | None = None,
) -> None:
    """Check, before any training, that a space fits the data and each operation builds.

    Every operation is built as a one-layer network at the input size, so an operation that
    cannot apply to the input (a pooling window larger than the image) is named by its field.
    Deeper layers see smaller maps; an architecture that shrinks a map below a window fails in
    :func:`build_model`, still before training.

    Raises:
        SpecError: Sizes that do not fit the data (``nas_config.graphConfig.*``) or operations
            that do not build (``nas_config.operations[i]``), every problem at once.
    """
    shape = input_shape(space, in_channels, height, width)
    if space.output_sizes and num_classes is not None and num_classes != space.output_sizes[-1]:
        raise SpecError(
            f"must end with the data's number of classes {num_classes}; "
            f"got {list(space.output_sizes)}",
            path="nas_config.graphConfig.outputSizes",
        )
    issues: list[SpecIssue] = []
    for i, op in enumerate(space.operations):
        try:
            make_layer(op, shape)
        except SpecError as exc:
            issues.extend(
                SpecIssue(space.operation_path(i), f"{op.name}: {x.message}") for x in exc.issues
            )
    if issues:
        raise SpecError(issues)
