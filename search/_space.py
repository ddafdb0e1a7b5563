"""Map Katib parameters onto Optuna distributions and back.

Uniform and log-uniform ranges map onto Optuna's own distributions. Optuna has no normal or
log-normal prior and no stepped log scale, so those parameters are searched over an internal
``u`` in ``[0, 1]`` and warped: ``normal`` through the inverse CDF of a normal with mean
``(min+max)/2`` and standard deviation ``(max-min)/6`` truncated to ``[min, max]`` (Katib's
hyperopt meaning), ``logNormal`` the same on the log scale, then rounded to ``step``. Every sampler
therefore
draws from the prior the spec asked for, and model-based samplers model the warped coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from automl.core import Distribution, Parameter, ParameterType, ParamValue

__all__ = ["ParamCodec", "SpaceCodec", "index_of"]

_STD = NormalDist()
_TAIL = 3.0  # sigma = (max - min) / 6: the range spans +-3 standard deviations.
_A, _B = _STD.cdf(-_TAIL), _STD.cdf(_TAIL)


@dataclass(frozen=True)
class ParamCodec:
    """Converts one parameter between its typed value and Optuna's internal value."""

    param: Parameter
    distribution: BaseDistribution
    warped: bool
    choices: tuple[ParamValue, ...] = ()  # categorical codecs: Optuna sees indices into these

    def to_external(self, internal: Any) -> ParamValue:
        """Typed parameter value for an internal Optuna value."""
        p = self.param
        if self.choices:
            return self.choices[int(internal)]
        if not self.warped:
            if p.type is ParameterType.INT:
                return int(internal)
            if p.type is ParameterType.DOUBLE:
                v = float(internal)
                return float(f"{v:.12g}") if p.step is not None else v
            return internal  # type: ignore[no-any-return]
        assert p.min is not None and p.max is not None
        u = min(max(float(internal), 0.0), 1.0)
        log = p.distribution in (Distribution.LOG_UNIFORM, Distribution.LOG_NORMAL)
        lo, hi = (math.log(p.min), math.log(p.max)) if log else (p.min, p.max)
        if p.distribution in (Distribution.NORMAL, Distribution.LOG_NORMAL):
            mu, sigma = (lo + hi) / 2, (hi - lo) / (2 * _TAIL)
            z = _STD.inv_cdf(min(max(_A + u * (_B - _A), 1e-12), 1 - 1e-12))
            x = mu + sigma * z
        else:
            x = lo + u * (hi - lo)
        x = math.exp(x) if log else x
        return self._snap(x)

    def _snap(self, x: float) -> ParamValue:
        p = self.param
        assert p.min is not None and p.max is not None
        x = min(max(x, p.min), p.max)
        step = p.step if p.step is not None else (1.0 if p.type is ParameterType.INT else None)
        if step is not None:
            x = p.min + round((x - p.min) / step) * step
            x = min(max(x, p.min), p.max)
        if p.type is ParameterType.INT:
            return round(x)
        return float(f"{x:.12g}")

    def to_internal(self, value: ParamValue) -> Any:
        """Internal Optuna value for a typed parameter value (used to rebuild from the store)."""
        p = self.param
        if self.choices:
            return index_of(self.choices, value)
        if not self.warped:
            return value
        assert p.min is not None and p.max is not None
        x = float(value)
        log = p.distribution in (Distribution.LOG_UNIFORM, Distribution.LOG_NORMAL)
        lo, hi = (math.log(p.min), math.log(p.max)) if log else (p.min, p.max)
        x = math.log(x) if log else x
        if hi == lo:
            return 0.5
        if p.distribution in (Distribution.NORMAL, Distribution.LOG_NORMAL):
            mu, sigma = (lo + hi) / 2, (hi - lo) / (2 * _TAIL)
            u = (_STD.cdf((x - mu) / sigma) - _A) / (_B - _A)
        else:
            u = (x - lo) / (hi - lo)
        return min(max(u, 0.0), 1.0)


def index_of(choices: tuple[ParamValue, ...], value: ParamValue) -> int:
    """Index of ``value`` among ``choices``.

    Same type and value first (so True is not 1), then the text form (Katib passes strings),
    then the nearest number (float noise).
    """
    for i, c in enumerate(choices):
        if type(c) is type(value) and c == value:
            return i
    for i, c in enumerate(choices):
        if str(c) == str(value):
            return i
    numeric = [
        (abs(float(c) - float(value)), i)
        for i, c in enumerate(choices)
        if isinstance(c, (int, float))
        and not isinstance(c, bool)
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ]
    if numeric and min(numeric)[0] <= 1e-9 * max(1.0, abs(float(value))):
        return min(numeric)[1]
    raise ValueError(f"{value!r} is not one of {list(choices)}")


def _codec(p: Parameter, grid: bool) -> ParamCodec:
    if grid or p.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
        # Optuna compares choices with ==, so 1 and True would collide; it gets indices instead.
        values = tuple(p.grid() if grid else p.values)
        return ParamCodec(p, CategoricalDistribution(range(len(values))), False, values)
    assert p.min is not None and p.max is not None
    d = p.distribution
    if p.type is ParameterType.INT:
        step = int(p.step or 1)
        if d is Distribution.UNIFORM:
            return ParamCodec(p, IntDistribution(int(p.min), int(p.max), step=step), warped=False)
        if d is Distribution.LOG_UNIFORM and step == 1:
            return ParamCodec(p, IntDistribution(int(p.min), int(p.max), log=True), warped=False)
    else:
        if d is Distribution.UNIFORM:
            return ParamCodec(p, FloatDistribution(p.min, p.max, step=p.step), warped=False)
        if d is Distribution.LOG_UNIFORM and p.step is None:
            return ParamCodec(p, FloatDistribution(p.min, p.max, log=True), warped=False)
    return ParamCodec(p, FloatDistribution(0.0, 1.0), warped=True)


class SpaceCodec:
    """Codecs for a whole search space.

    Args:
        parameters: The spec's parameters.
        grid: Map every parameter onto its Katib grid (for the grid algorithm).
    """

    def __init__(self, parameters: tuple[Parameter, ...], *, grid: bool = False) -> None:
        self.codecs = {p.name: _codec(p, grid) for p in parameters}
        self.distributions: dict[str, BaseDistribution] = {
            n: c.distribution for n, c in self.codecs.items()
        }

    def to_external(self, internal: Mapping[str, Any]) -> dict[str, ParamValue]:
        """Typed values for Optuna's internal values."""
        return {n: self.codecs[n].to_external(v) for n, v in internal.items() if n in self.codecs}

    def to_internal(self, params: Mapping[str, ParamValue]) -> dict[str, Any]:
        """Optuna's internal values for typed values."""
        return {n: self.codecs[n].to_internal(v) for n, v in params.items() if n in self.codecs}
