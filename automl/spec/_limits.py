"""Sizes no experiment can train, refused before any work grows with them.

Validation must stay fast on any input (a spec of up to 1 MB validates in well under a second),
so the few sizes that make the work grow are bounded first: the layers of an architecture space
(its skip connections grow with the square), the operations an architecture space crosses out of
its lists, and the points of a grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from automl.errors import SpecError, SpecIssue

__all__ = [
    "MAX_GRID_POINTS",
    "MAX_NAS_LAYERS",
    "MAX_NAS_OPERATIONS",
    "grid_problems",
    "nas_size_problems",
]

#: The most layers of an architecture space (Katib's examples have 3 to 8; ENAS's paper 12-24).
MAX_NAS_LAYERS = 64
#: The most operations an architecture space may cross out of its value lists.
MAX_NAS_OPERATIONS = 1024
#: The most points a grid search may enumerate.
MAX_GRID_POINTS = 1_000_000


def _count(value: Any) -> int:
    return len(value) if isinstance(value, list) else 1


def _katib_points(space: Any) -> int:
    """How many values a Katib ``feasibleSpace`` gives (at least 1; unreadable counts 1)."""
    if not isinstance(space, Mapping):
        return 1
    if isinstance(space.get("list"), list):
        return max(1, len(space["list"]))
    try:
        lo, hi = float(space["min"]), float(space["max"])
        step = float(space.get("step") or 1)
        n = math.floor((hi - lo) / step) + 1 if step > 0 else 1
    except (KeyError, TypeError, ValueError, OverflowError, ZeroDivisionError):
        return 1
    return n if 1 <= n < 2**62 else 1


def _layers_problem(raw: Any, path: str) -> list[SpecIssue]:
    if isinstance(raw, bool):
        return []
    try:
        n = int(str(raw))
    except ValueError:
        return []  # the space's own rules name a non-integer
    if n > MAX_NAS_LAYERS:
        return [
            SpecIssue(
                path,
                f"must be at most {MAX_NAS_LAYERS} layers (skip connections grow with the "
                f"square of the depth; no trial could train such a network); got {raw!r}",
            )
        ]
    return []


def _operations_problem(counts: Sequence[int], path: str) -> list[SpecIssue]:
    total = 0
    for c in counts:
        total += c
        if total > MAX_NAS_OPERATIONS:
            return [
                SpecIssue(
                    path,
                    f"crosses its value lists into more than {MAX_NAS_OPERATIONS} operations; "
                    "list fewer values",
                )
            ]
    return []


def nas_size_problems(nas: Any, *, katib: bool, path: str) -> list[SpecIssue]:
    """Sizes of an architecture space (native ``nas:`` or Katib ``nasConfig``) over the limits."""
    if not isinstance(nas, Mapping):
        return []
    out: list[SpecIssue] = []
    ops = nas.get("operations")
    ops = ops if isinstance(ops, list) else []
    if katib:
        graph = nas.get("graphConfig")
        if isinstance(graph, Mapping):
            out += _layers_problem(graph.get("numLayers"), f"{path}.graphConfig.numLayers")
        counts = []
        for op in ops:
            params = op.get("parameters") if isinstance(op, Mapping) else None
            n = 1
            for p in params if isinstance(params, list) else []:
                n *= _katib_points(p.get("feasibleSpace") if isinstance(p, Mapping) else None)
                if n > MAX_NAS_OPERATIONS:
                    break
            counts.append(n)
    else:
        out += _layers_problem(nas.get("layers"), f"{path}.layers")
        counts = []
        for op in ops:
            n = 1
            for value in op.values() if isinstance(op, Mapping) else ():
                n *= _count(value)
                if n > MAX_NAS_OPERATIONS:
                    break
            counts.append(n)
    return out + _operations_problem(counts, f"{path}.operations")


def grid_problems(parameters: Sequence[Any], path: str = "parameters") -> list[SpecIssue]:
    """A grid over ``parameters`` (core :class:`~automl.core.Parameter`) with too many points."""
    total = 1
    for p in parameters:
        try:
            total *= max(1, p.grid_size())
        except (ValueError, ArithmeticError, TypeError, SpecError):
            continue  # the parameter's own rules say what is wrong with it
        if total > MAX_GRID_POINTS:
            return [
                SpecIssue(
                    path,
                    f"span more than {MAX_GRID_POINTS:,} grid points; the grid algorithm lists "
                    "every point, so give coarser steps or fewer values",
                )
            ]
    return []
