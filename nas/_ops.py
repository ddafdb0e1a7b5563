"""Torch layers for the NAS operation types.

Two families:

* :func:`make_layer` builds one layer of the layer-wise (ENAS-style) network from an expanded
  :class:`search.Operation`, as Katib's ENAS trial (``op_library.py``, Keras) does: convolutions
  are ReLU - conv (``same`` padding) - batch norm; ``reduction`` is a ``valid`` pooling that
  becomes the identity on a 1-pixel-wide input; pooling and skip keep the channels.
* :data:`DARTS_OPS` are the cell edges of Katib's DARTS trial (``operations.py``): every edge
  keeps its channel count and halves the spatial size when its stride is 2.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from automl.errors import SpecError
from search._nas_space import Operation

__all__ = [
    "DARTS_OPS",
    "DartsPrimitive",
    "FactorizedReduce",
    "LayerShape",
    "make_darts_op",
    "make_layer",
    "parse_darts_primitive",
]


def _same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's ``same`` padding (before, after) for one dimension."""
    eff = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


class SamePadConv(nn.Module):
    """A convolution with TensorFlow's ``same`` padding for any kernel, stride and dilation."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.conv = nn.Conv2d(
            c_in, c_out, kernel, stride, 0, dilation=dilation, groups=groups, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0, h1 = _same_pad(x.shape[2], self.kernel, self.stride, self.dilation)
        w0, w1 = _same_pad(x.shape[3], self.kernel, self.stride, self.dilation)
        return self.conv(F.pad(x, (w0, w1, h0, h1)))  # type: ignore[no-any-return]


class SamePool(nn.Module):
    """Max or average pooling with ``same`` padding; the average ignores the padding."""

    def __init__(self, kind: str, kernel: int, stride: int) -> None:
        super().__init__()
        self.kind, self.kernel, self.stride = kind, kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0, h1 = _same_pad(x.shape[2], self.kernel, self.stride)
        w0, w1 = _same_pad(x.shape[3], self.kernel, self.stride)
        pad = (w0, w1, h0, h1)
        if self.kind == "max":
            return F.max_pool2d(F.pad(x, pad, value=-math.inf), self.kernel, self.stride)
        total = F.avg_pool2d(F.pad(x, pad), self.kernel, self.stride)
        ones = F.pad(torch.ones_like(x[:1, :1]), pad)
        count = F.avg_pool2d(ones, self.kernel, self.stride)
        return total / count


class ValidPool(nn.Module):
    """Katib's ``reduction``: ``valid`` pooling, the identity on a 1-pixel-wide input."""

    def __init__(self, kind: str, pool: int, stride: int) -> None:
        super().__init__()
        self.kind, self.pool, self.stride = kind, pool, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] == 1 or x.shape[3] == 1:
            return x
        if self.kind == "max_pooling":
            return F.max_pool2d(x, self.pool, self.stride)
        return F.avg_pool2d(x, self.pool, self.stride)


class LayerShape:
    """Channels, height and width of a feature map (no batch)."""

    __slots__ = ("c", "h", "w")

    def __init__(self, c: int, h: int, w: int) -> None:
        self.c, self.h, self.w = c, h, w

    def __repr__(self) -> str:
        return f"{self.c}x{self.h}x{self.w}"


def make_layer(op: Operation, shape: LayerShape) -> tuple[nn.Module, LayerShape]:
    """One layer of the layer-wise network for ``op`` on an input of ``shape``.

    Returns:
        The module and its output shape.

    Raises:
        SpecError: The operation cannot apply to that input (a pooling window larger than the
            feature map); the path is ``operation`` and the message names both sizes.
    """
    t = op.type
    c, h, w = shape.c, shape.h, shape.w
    if t == "skip_connection":
        return nn.Identity(), LayerShape(c, h, w)
    if t == "reduction":
        kind = str(op.value("reduction_type"))
        pool = op.int_value("pool_size")
        stride_v = op.value("stride")
        stride = pool if stride_v is None else int(stride_v)
        if h == 1 or w == 1:
            return ValidPool(kind, pool, stride), LayerShape(c, h, w)
        if h < pool or w < pool:
            raise SpecError(
                f"{op.name} needs an input of at least {pool}x{pool}; got {h}x{w}",
                path="operation.pool_size",
            )
        out_h, out_w = (h - pool) // stride + 1, (w - pool) // stride + 1
        return ValidPool(kind, pool, stride), LayerShape(c, out_h, out_w)
    k = op.int_value("filter_size")
    s = op.int_value("stride")
    out_h, out_w = math.ceil(h / s), math.ceil(w / s)
    if t in ("avg_pooling", "max_pooling"):
        return SamePool(t.removesuffix("_pooling"), k, s), LayerShape(c, out_h, out_w)
    layers: list[nn.Module] = [nn.ReLU()]
    if t == "convolution":
        out_c = op.int_value("num_filter")
        layers.append(SamePadConv(c, out_c, k, s))
    elif t == "dilated_convolution":
        out_c = op.int_value("num_filter")
        layers.append(SamePadConv(c, out_c, k, s, dilation=op.int_value("dilation")))
    elif t == "separable_convolution":
        mult = op.int_value("depth_multiplier")
        out_c = op.int_value("num_filter")
        layers.append(SamePadConv(c, c * mult, k, s, groups=c))
        layers.append(nn.Conv2d(c * mult, out_c, 1, bias=False))
    elif t == "depthwise_convolution":
        out_c = c * op.int_value("depth_multiplier")
        layers.append(SamePadConv(c, out_c, k, s, groups=c))
    else:  # pragma: no cover - Operation rejects unknown types
        raise SpecError(f"unknown operation type {t!r}", path="operation.type")
    layers.append(nn.BatchNorm2d(out_c))
    return nn.Sequential(*layers), LayerShape(out_c, out_h, out_w)


# -- DARTS cell edges (Katib's operations.py) ---------------------------------------------


class Zero(nn.Module):
    """The ``none`` edge: zeros, strided like the other edges."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x * 0.0
        return x[:, :, :: self.stride, :: self.stride] * 0.0


class PoolBN(nn.Module):
    """Pooling (padding k//2) then batch norm."""

    def __init__(self, kind: str, channels: int, kernel: int, stride: int, affine: bool) -> None:
        super().__init__()
        pool: nn.Module
        if kind == "avg":
            pool = nn.AvgPool2d(kernel, stride, kernel // 2, count_include_pad=False)
        else:
            pool = nn.MaxPool2d(kernel, stride, kernel // 2)
        self.net = nn.Sequential(pool, nn.BatchNorm2d(channels, affine=affine))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class FactorizedReduce(nn.Module):
    """Halve the spatial size with two offset strided 1x1 convolutions."""

    def __init__(self, c_in: int, c_out: int, affine: bool = False) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        a = self.conv1(x)
        b = self.conv2(x[:, :, 1:, 1:])
        if b.shape[2:] != a.shape[2:]:  # odd sizes: the shifted view is one pixel short
            b = F.pad(b, (0, a.shape[3] - b.shape[3], 0, a.shape[2] - b.shape[2]))
        return self.bn(torch.cat([a, b], dim=1))  # type: ignore[no-any-return]


class StdConv(nn.Module):
    """ReLU - conv - batch norm."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = False
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class DilConv(nn.Module):
    """ReLU - (dilated) depthwise conv - pointwise conv - batch norm."""

    def __init__(
        self, channels: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(
                channels,
                channels,
                kernel,
                stride,
                padding,
                dilation=dilation,
                groups=channels,
                bias=False,
            ),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class SepConv(nn.Module):
    """Two stacked depthwise-separable convolutions (the first strided)."""

    def __init__(
        self, channels: int, kernel: int, stride: int, padding: int, affine: bool
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            DilConv(channels, kernel, stride, padding, 1, affine),
            DilConv(channels, kernel, 1, padding, 1, affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class DartsPrimitive:
    """A parsed DARTS primitive name: ``<type>_<k>x<k>``, ``skip_connection`` or ``none``."""

    __slots__ = ("kernel", "name", "type")

    def __init__(self, name: str, type_: str, kernel: int) -> None:
        self.name, self.type, self.kernel = name, type_, kernel


DARTS_OPS = (
    "separable_convolution",
    "dilated_convolution",
    "avg_pooling",
    "max_pooling",
    "skip_connection",
)
_PRIM_RE = re.compile(r"^([a-z_]+?)_(\d+)x(\d+)$")


def parse_darts_primitive(name: str, path: str = "search_space") -> DartsPrimitive:
    """Parse a Katib DARTS primitive (``separable_convolution_3x3``, ``skip_connection``...).

    Raises:
        SpecError: Unknown operation, a non-square or even kernel.
    """
    if name in ("skip_connection", "none"):
        return DartsPrimitive(name, name, 1)
    m = _PRIM_RE.match(name)
    if not m or m.group(1) not in DARTS_OPS or m.group(1) == "skip_connection":
        raise SpecError(
            f"must be <operation>_<k>x<k> with an operation in {list(DARTS_OPS[:-1])}, or "
            f"skip_connection; got {name!r}",
            path=path,
        )
    k, k2 = int(m.group(2)), int(m.group(3))
    if k != k2 or k % 2 == 0 or k < 1:
        raise SpecError(f"needs an odd square kernel (3x3, 5x5...); got {name!r}", path=path)
    return DartsPrimitive(name, m.group(1), k)


def make_darts_op(name: str, channels: int, stride: int, affine: bool = False) -> nn.Module:
    """The DARTS edge ``name`` on ``channels`` channels with ``stride`` (1 or 2)."""
    p = parse_darts_primitive(name)
    k = p.kernel
    builders: dict[str, Callable[[], nn.Module]] = {
        "none": lambda: Zero(stride),
        "skip_connection": lambda: (
            nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine)
        ),
        "avg_pooling": lambda: PoolBN("avg", channels, k, stride, affine),
        "max_pooling": lambda: PoolBN("max", channels, k, stride, affine),
        "separable_convolution": lambda: SepConv(channels, k, stride, k // 2, affine),
        # dilation 2: a 3x3 kernel sees 5x5, a 5x5 one 9x9 (Katib's padding k - 1)
        "dilated_convolution": lambda: DilConv(channels, k, stride, k - 1, 2, affine),
    }
    return builders[p.type]()
