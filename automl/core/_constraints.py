"""Constraints on reported metrics: ``"memory_mb <= 2000"``, ``"latency_ms < 50"``.

The grammar is deliberately tiny and strict: ``METRIC OP NUMBER`` with ``OP`` one of ``<``,
``<=``, ``>``, ``>=``, the metric a name as trials report it and the number finite. A trial is
feasible when every constraint holds for the metric's value (after the metric's strategy, as for
an objective). The kernel module: it imports nothing heavy.
"""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, ConfigDict

from automl.errors import SpecError

__all__ = ["CONSTRAINT_FORM", "Constraint", "parse_constraint"]

#: The accepted form, quoted in every error about a constraint.
CONSTRAINT_FORM = "'METRIC OP NUMBER' with OP one of <, <=, >, >= (e.g. 'memory_mb <= 2000')"

_RE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_./:-]*)\s*(<=|>=|<|>)\s*"
    r"([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*$"
)


class Constraint(BaseModel):
    """One constraint ``metric op bound``.

    Attributes:
        metric: The metric it bounds.
        op: ``<``, ``<=``, ``>`` or ``>=``.
        bound: The finite bound.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    op: str
    bound: float

    @property
    def text(self) -> str:
        """The constraint as written: ``memory_mb <= 2000``."""
        return f"{self.metric} {self.op} {self.bound:g}"

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the constraint."""
        if self.op == "<":
            return value < self.bound
        if self.op == "<=":
            return value <= self.bound
        if self.op == ">":
            return value > self.bound
        return value >= self.bound

    def violation(self, value: float) -> float:
        """Optuna's constraint value: ``<= 0`` when it holds, the amount of violation otherwise.

        A strict bound met with equality is infeasible, so it maps to the smallest positive
        amount rather than 0 (which Optuna reads as feasible).
        """
        raw = value - self.bound if self.op in ("<", "<=") else self.bound - value
        if not self.holds(value) and raw <= 0.0:
            return math.ulp(max(abs(self.bound), 1.0))
        return raw


def parse_constraint(text: object, path: str) -> Constraint:
    """Parse ``"metric op number"``.

    Raises:
        SpecError: ``text`` is not of the accepted form (named by ``path``), or the bound is not
            finite.
    """
    if not isinstance(text, str):
        raise SpecError(f"must be a string of the form {CONSTRAINT_FORM}; got {text!r}", path=path)
    m = _RE.match(text)
    if m is None:
        raise SpecError(f"must be of the form {CONSTRAINT_FORM}; got {text!r}", path=path)
    bound = float(m.group(3))
    if not math.isfinite(bound):
        raise SpecError(f"must have a finite bound; got {text!r}", path=path)
    return Constraint(metric=m.group(1), op=m.group(2), bound=bound)
