"""Controller turn latency (automl._turns): what the heartbeat stores and /metrics sums."""

from __future__ import annotations

import json

import automl
from automl._turns import BUCKETS, TurnStats, merge_turn_stats
from automl.store import Store
from automl.store._queue import QueueRepository


def test_histogram_counts_each_turn_in_its_bucket_and_writes_only_changes() -> None:
    t = TurnStats()
    assert t.dumps_if_changed() is None  # nothing observed: the heartbeat writes nothing
    t.observe(0.0001)
    t.observe(0.003)
    t.observe(99.0)  # beyond the last bound: +Inf
    stored = json.loads(t.dumps_if_changed() or "")
    assert stored["counts"][0] == 1 and stored["counts"][BUCKETS.index(0.005)] == 1
    assert stored["counts"][-1] == 1 and sum(stored["counts"]) == 3
    assert t.dumps_if_changed() is None
    # A resumed controller starts from what was stored and goes on counting.
    again = TurnStats(stored)
    again.observe(0.003)
    assert again.snapshot()["count"] == 4


def test_merge_sums_rows_and_skips_damaged_ones() -> None:
    a = TurnStats()
    a.observe(0.002)
    b = TurnStats()
    b.observe(0.02)
    b.observe(0.02)
    merged = merge_turn_stats(
        [a.dumps_if_changed(), b.dumps_if_changed(), None, "not json", '{"counts": [1]}']
    )
    assert merged["count"] == 3 and abs(merged["sum"] - 0.042) < 1e-9


def test_a_controller_stores_its_turns_and_a_resume_adds_to_them(sqlite_url: str) -> None:
    space = {"x": automl.double(0, 1)}
    automl.tune(lambda x: x, space, max_trials=3, store=sqlite_url, name="turns", progress=False)
    store = Store(sqlite_url)
    first = QueueRepository(store).turn_stats()["count"]
    assert first >= 3  # at least one turn per trial
    automl.tune(
        lambda x: x,
        space,
        max_trials=5,
        store=sqlite_url,
        name="turns",
        progress=False,
        resume=True,
    )
    assert QueueRepository(store).turn_stats()["count"] >= first + 2
    store.close()
