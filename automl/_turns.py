"""Controller turn latency: how long one turn of the loop takes, as a Prometheus histogram.

A *turn* is one pass of :meth:`automl._controller.Controller._loop` that did something (started
trials or handled their events): the end checks, the suggestions and their inserts, and the
handling of what the executor reported, **not** the time spent waiting in ``poll``. It is the
latency a user sees between a trial's report and the controller acting on it.

Controllers run in worker processes that serve nothing, so each keeps its histogram in memory
and writes it to its experiment's row with its heartbeat (``turn_stats``, migration 0006); the
server's ``/metrics`` sums the rows, so every server of one store reports the same figures.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["BUCKETS", "TurnStats", "merge_turn_stats"]

#: Upper bounds in seconds (Prometheus ``le``); a last, implicit bucket holds the rest (+Inf).
BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class TurnStats:
    """A thread-safe histogram of turn durations (observed on the loop, read by the heartbeat)."""

    def __init__(self, start: Mapping[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0
        self._version = 0
        self._written = 0
        if start:  # a resumed experiment goes on counting (Prometheus counters never go down)
            merged = merge_turn_stats([start])
            self._counts = list(merged["counts"])
            self._sum = float(merged["sum"])

    def observe(self, seconds: float) -> None:
        """Count one turn."""
        i = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            self._counts[i] += 1
            self._sum += seconds
            self._version += 1

    def dumps_if_changed(self) -> str | None:
        """The histogram as JSON if it changed since the last call, else None."""
        with self._lock:
            if self._version == self._written:
                return None
            self._written = self._version
            return json.dumps({"counts": self._counts, "sum": round(self._sum, 6)})

    def snapshot(self) -> dict[str, Any]:
        """Counts per bucket (not cumulative; the last is +Inf), their sum and the total."""
        with self._lock:
            return {"counts": list(self._counts), "sum": self._sum, "count": sum(self._counts)}


def merge_turn_stats(rows: Iterable[Mapping[str, Any] | str | None]) -> dict[str, Any]:
    """Sum stored histograms (JSON text or mappings); other bucket layouts are skipped."""
    counts = [0] * (len(BUCKETS) + 1)
    total = 0.0
    for row in rows:
        if not row:
            continue
        try:
            data = json.loads(row) if isinstance(row, str) else row
            got = [int(c) for c in data["counts"]]
            s = float(data["sum"])
        except (ValueError, TypeError, KeyError):
            continue  # a damaged row must not break /metrics
        if len(got) != len(counts):
            continue
        counts = [a + b for a, b in zip(counts, got, strict=True)]
        total += s
    return {"counts": counts, "sum": total, "count": sum(counts)}
