"""Metrics collection: Katib's text filters, JSON lines, pushed reports, and metric strategies."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from automl.core import MetricsCollectorSpec, MetricSummary, Objective

__all__ = [
    "DEFAULT_FILTER",
    "STEP_NAMES",
    "MetricLine",
    "TextMetricParser",
    "parse_json_line",
    "parse_report_line",
    "summarize",
]

#: Katib's default StdOut/File TEXT filter: ``loss=0.3``, ``accuracy=.98``, ``Score=-7.53e-05``.
DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
#: Names whose whole-number value on a metrics line is the step the metrics belong to.
STEP_NAMES = ("step", "epoch", "iteration", "global_step")
_STEP_NAMES = STEP_NAMES


@dataclass(frozen=True, slots=True)
class MetricLine:
    """Metric values found on one line, with the step they belong to if the line names one."""

    values: Mapping[str, float]
    step: int | None


def _to_float(raw: object) -> float | None:
    try:
        v = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v


class TextMetricParser:
    """Parses ``name=value`` lines with Katib's regex filters.

    Only the metrics the experiment asked for are kept (Katib skips other names). A ``step``,
    ``epoch`` or ``iteration`` value on the same line becomes the observation's step.

    Args:
        metrics: Metric names to keep.
        filters: Regexes with two groups (name, value); Katib's default when empty.
    """

    def __init__(self, metrics: Iterable[str], filters: Sequence[str] = ()) -> None:
        self.metrics = frozenset(metrics)
        self.patterns = [re.compile(f) for f in (filters or (DEFAULT_FILTER,))]

    def parse(self, line: str) -> MetricLine | None:
        """Metric values on ``line``, or None when it holds none of the wanted metrics."""
        if not any(m in line for m in self.metrics):
            return None
        found: dict[str, float] = {}
        step: int | None = None
        for rx in self.patterns:
            for m in rx.finditer(line):
                name, raw = m.group(1), m.group(2)
                value = _to_float(raw)
                if value is None:
                    continue
                if name in self.metrics:
                    found[name] = value
                elif name.lower() in _STEP_NAMES and value.is_integer():
                    step = _whole(raw, value)
        return MetricLine(found, step) if found else None


def _whole(raw: str, value: float) -> int:
    """A whole-number step as written (``99999999999999999999`` is not rounded by a float)."""
    try:
        return int(raw)
    except ValueError:
        return int(value)  # 1e3, 3.0


def _json_step(obj: Mapping[str, object]) -> int | None:
    for k in _STEP_NAMES:
        raw = obj.get(k)
        if isinstance(raw, bool):
            continue
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str):
            v = _to_float(raw)
            if v is not None and math.isfinite(v) and v.is_integer():
                return int(v)
    return None


def parse_json_line(line: str, metrics: Iterable[str]) -> MetricLine | None:
    """Parse one JSON-lines record (Katib's JSON format; numbers or numeric strings).

    The step is a whole-number ``step``, ``epoch``, ``iteration`` or ``global_step`` field,
    a number or a numeric string (cloudml-hypertune writes ``"global_step": "1"``); other
    fields (``timestamp``, ``trial``) are ignored.
    """
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    found = {m: v for m in metrics if m in obj and (v := _to_float(obj[m])) is not None}
    return MetricLine(found, _json_step(obj)) if found else None


def parse_report_line(line: str) -> MetricLine | None:
    """Parse a line written by :func:`automl.report` in a subprocess trial."""
    try:
        obj = json.loads(line)
        values = {str(k): float(v) for k, v in obj["metrics"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    step = obj.get("step")
    return MetricLine(values, step if isinstance(step, int) else None)


def parser_for(spec: MetricsCollectorSpec, objective: Objective) -> TextMetricParser:
    """The text parser a collector spec asks for."""
    return TextMetricParser(objective.metrics, spec.filters)


def summarize(
    summaries: Mapping[str, MetricSummary], values: Mapping[str, float]
) -> dict[str, MetricSummary]:
    """Fold new metric values into per-metric ``{min, max, latest}`` summaries."""
    out = dict(summaries)
    for name, v in values.items():
        if math.isnan(v):
            continue
        prev = out.get(name)
        out[name] = prev.add(v) if prev is not None else MetricSummary(v, v, v)
    return out


def objective_value(objective: Objective, summaries: Mapping[str, MetricSummary]) -> float | None:
    """The trial's objective value under its metric strategy, or None if never observed."""
    s = summaries.get(objective.metric)
    if s is None:
        return None
    return s.pick(objective.strategy(objective.metric).value)
