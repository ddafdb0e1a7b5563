"""A large synthetic experiment, written through the public store API (benchmarks and tests).

``seed(url, trials, observations)`` stores one experiment called :data:`NAME` with ``trials``
trials that report ``observations`` intermediate values each, the way the controller would
(``ExperimentRepository.create``, ``TrialRepository.add``/``finish``,
``ObservationRepository.append``), so the data can never drift from what the store accepts.

The space has a log-scaled parameter (``lr``), two linear ones and a categorical one; about 90 %
of the trials succeed, 6 % are stopped early (at a step before the last, as the early stopper
would) and 4 % fail. Values are deterministic for a given ``seed``.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from typing import Any

from automl.core import MetricSummary, Observation, TrialRecord, TrialState
from automl.spec import parse_spec
from automl.store import Store

NAME = "bench-dashboard"
METRIC = "loss"
_SPEC = {
    "name": NAME,
    "objective": {"metric": METRIC, "direction": "minimize", "additional_metrics": ["accuracy"]},
    "algorithm": {"name": "random"},
    "parameters": {
        "x": {"type": "double", "min": -10, "max": 10},
        "y": {"type": "double", "min": -10, "max": 10},
        "lr": {"type": "double", "min": 1e-5, "max": 1e-1, "log": True},
        "optimizer": {"type": "categorical", "values": ["adam", "sgd", "rmsprop"]},
    },
    "trial": {"command": ["python", "-c", "print('loss=1')"]},
}


def objective(x: float, y: float, lr: float, optimizer: str) -> float:
    """The final loss of a synthetic trial (lowest near x=1, y=-2, lr=1e-3, adam)."""
    penalty = {"adam": 0.0, "sgd": 0.5, "rmsprop": 0.25}[optimizer]
    return 0.05 * ((x - 1) ** 2 + (y + 2) ** 2) + (math.log10(lr) + 3) ** 2 + penalty


def seed(
    url: str,
    trials: int,
    observations: int,
    *,
    name: str = NAME,
    random_seed: int = 0,
    running: int = 0,
) -> dict[str, Any]:
    """Store one experiment of ``trials`` trials x ``observations`` steps in ``url``.

    Args:
        url: Store URL (created and migrated if new).
        trials: How many trials.
        observations: Intermediate values of ``loss`` per trial (steps 1..observations).
        name: Experiment name.
        random_seed: Seed of the synthetic values.
        running: Leave the last ``running`` trials Running (and the experiment Running).

    Returns:
        ``{"experiment_id", "seconds", "best_value", "best_number", "counts"}``.
    """
    t0 = time.perf_counter()
    spec = parse_spec(json.dumps({**_SPEC, "name": name, "budget": {"max_trials": trials}}))
    store = Store(url)
    try:
        exp = store.experiments.create(spec)
        rng = random.Random(random_seed)
        start = time.time() - trials * 2.0
        store.experiments.update(exp.id, state="Running", started_at=start)
        counts: dict[str, int] = {}
        best: tuple[float, int] | None = None
        chunk = 500
        for first in range(0, trials, chunk):
            batch = range(first, min(first + chunk, trials))
            records = []
            plans = []
            for n in batch:
                p: dict[str, Any] = {
                    "x": rng.uniform(-10, 10),
                    "y": rng.uniform(-10, 10),
                    "lr": 10 ** rng.uniform(-5, -1),
                    "optimizer": rng.choice(["adam", "sgd", "rmsprop"]),
                }
                roll = rng.random()
                live = n >= trials - running
                state = (
                    TrialState.RUNNING
                    if live
                    else TrialState.FAILED
                    if roll < 0.04
                    else TrialState.EARLY_STOPPED
                    if roll < 0.10
                    else TrialState.SUCCEEDED
                )
                t = start + n * 2.0
                tid = f"{name}-{uuid.uuid4().hex[:8]}"
                records.append(
                    TrialRecord(
                        id=tid,
                        experiment_id=exp.id,
                        number=n,
                        params=p,
                        state=TrialState.RUNNING,
                        created_at=t,
                        started_at=t,
                    )
                )
                plans.append((tid, n, p, state, t))
            store.trials.add(records)
            obs: list[Observation] = []
            finishes = []
            for tid, n, p, state, t in plans:
                final = objective(**p)
                steps = observations
                if state is TrialState.EARLY_STOPPED:
                    steps = rng.randint(1, max(1, observations - 1))
                elif state is TrialState.FAILED:
                    steps = rng.randint(0, max(0, observations - 1))
                elif state is TrialState.RUNNING:
                    steps = max(1, observations // 2)
                values = [final * (1 + 4.0 / s) for s in range(1, steps + 1)]
                obs.extend(
                    Observation(tid, METRIC, v, s, t + s * 0.05) for s, v in enumerate(values, 1)
                )
                counts[state.value] = counts.get(state.value, 0) + 1
                if state is TrialState.RUNNING:
                    continue
                summary = (
                    {
                        METRIC: MetricSummary(min(values), max(values), values[-1]),
                        "accuracy": MetricSummary(0.5, 1 / (1 + final), 1 / (1 + final)),
                    }
                    if values
                    else {}
                )
                value = min(values) if values and state is not TrialState.FAILED else None
                better = value is not None and (best is None or value < best[0])
                if state is TrialState.SUCCEEDED and value is not None and better:
                    best = (value, n)
                message = (
                    f"stopped early at step {steps} by medianstop"
                    if state is TrialState.EARLY_STOPPED
                    else "exit code 1"
                    if state is TrialState.FAILED
                    else ""
                )
                finishes.append((tid, state, value, summary, message, t + 1.5))
            store.observations.append(obs)
            for tid, state, value, summary, message, end in finishes:
                store.trials.finish(tid, state, value, summary, message, finished_at=end)
        if not running:
            store.experiments.update(
                exp.id,
                state="Succeeded",
                reason="ExperimentMaxTrialsReached",
                finished_at=start + trials * 2.0,
            )
    finally:
        store.close()
    return {
        "experiment_id": exp.id,
        "seconds": time.perf_counter() - t0,
        "best_value": None if best is None else best[0],
        "best_number": None if best is None else best[1],
        "counts": counts,
    }
