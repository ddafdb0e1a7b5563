"""Steering a search by hand: what a warm start (``automl fork``) buys, and how soon a running
controller applies a change.

1. Warm start. On cheap synthetic problems of the sample-efficiency suite, for each seed: a
   source experiment of ``--source`` TPE trials, then ``--new`` more trials either as a cold
   experiment (TPE, another seed: its first 10 trials are TPE's random start-up) or as a fork of
   the source (``Client.fork``, the same budget). Reported: the best value among the new trials
   (mean over seeds; lower is better) and in how many seeds the fork's best beat the cold one's.
2. Steering latency. An in-process experiment whose two trials wait; ``Client.set_budget`` and
   ``Client.enqueue`` are timed to the moment the running controller has taken the change in (the
   experiment's ``steer_applied`` counter reaches the change's ``steer_seq``).

Run: python benchmarks/steering.py [--seeds 5] [--source 30] [--new 10] [--repeats 20] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import automl
from automl.core import TrialState
from benchmarks._problems import Problem, problems

PROBLEMS = ("branin", "hartmann3", "hartmann6", "rosenbrock4")


def _objective(problem: Problem) -> Any:
    def f(params: dict[str, Any]) -> float:
        return float(problem.fn(params))

    return f


def _best(client: automl.Client, name: str) -> float:
    values = [t.value for t in client.trials(name) if t.value is not None]
    return min(values)


def warm_start(
    problem: Problem, seed: int, source: int, new: int, url: str
) -> tuple[float, float]:
    """Best of the ``new`` trials: (cold, fork)."""
    fn = _objective(problem)
    common: dict[str, Any] = {"algorithm": "tpe", "store": url, "progress": False}
    automl.tune(fn, problem.space, max_trials=source, seed=seed, name=f"src{seed}", **common)
    automl.tune(fn, problem.space, max_trials=new, seed=seed + 1000, name=f"cold{seed}", **common)
    with automl.Client(url) as client:
        client.fork(f"src{seed}", f"fork{seed}", max_trials=new)
        client.resume(f"fork{seed}", objective=fn, progress=False)
        return _best(client, f"cold{seed}"), _best(client, f"fork{seed}")


def latency(repeats: int, url: str) -> tuple[list[float], list[float]]:
    """Seconds from a budget change / an enqueue to the running controller applying it."""
    budget_s: list[float] = []
    enqueue_s: list[float] = []
    client = automl.Client(url)
    for i in range(repeats):
        release = threading.Event()

        def wait(x: float, release: threading.Event = release) -> float:
            release.wait(60)
            return x

        name = f"live{i}"
        thread = threading.Thread(
            target=automl.tune,
            args=(wait, {"x": automl.double(0, 1)}),
            kwargs={
                "algorithm": "random",
                "max_trials": 3,
                "parallel_trials": 2,
                "name": name,
                "store": url,
                "progress": False,
            },
        )
        thread.start()
        try:
            _until(lambda n=name: _running(client, n) == 2)
            exp_id = client.get(name).id
            t0 = time.perf_counter()
            client.set_budget(name, max_failed_trials=2 + i % 2)
            _until(lambda e=exp_id: _applied(client, e))
            budget_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            client.enqueue(name, {"x": 0.5})
            _until(lambda e=exp_id: _applied(client, e))
            enqueue_s.append(time.perf_counter() - t0)
        finally:
            release.set()
            thread.join(60)
    return budget_s, enqueue_s


def _until(cond: Any, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("the controller never applied the change")
        time.sleep(0.005)


def _running(client: automl.Client, name: str) -> int:
    try:
        return sum(t.state is TrialState.RUNNING for t in client.trials(name))
    except automl.errors.NotFoundError:
        return 0


def _applied(client: automl.Client, exp_id: str) -> bool:
    seq, done = client.store.experiments.steer_status(exp_id)
    return done >= seq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--source", type=int, default=30)
    ap.add_argument("--new", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="one problem, one seed, few trials")
    args = ap.parse_args()
    names = PROBLEMS
    if args.quick:
        args.seeds, args.source, args.new, args.repeats = 1, 12, 4, 3
        names = ("branin",)
    chosen = [p for p in problems() if p.name in names]
    print(
        f"warm start: best of {args.new} new trials after a {args.source}-trial TPE source, "
        f"{args.seeds} seeds (mean; lower is better)"
    )
    print(f"{'problem':<14}{'cold TPE':>12}{'fork':>12}{'fork wins':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for problem in chosen:
            url = f"sqlite:///{tmp}/{problem.name}.db"
            pairs = [warm_start(problem, s, args.source, args.new, url) for s in range(args.seeds)]
            cold = statistics.mean(c for c, _ in pairs)
            fork = statistics.mean(f for _, f in pairs)
            wins = sum(f < c for c, f in pairs)
            print(f"{problem.name:<14}{cold:>12.4g}{fork:>12.4g}{wins:>8}/{args.seeds}")
        budget_s, enqueue_s = latency(args.repeats, f"sqlite:///{tmp}/latency.db")
    print(f"\nsteering latency over {args.repeats} running experiments (seconds):")
    for what, xs in (("budget change", budget_s), ("enqueue", enqueue_s)):
        print(f"{what:<24} median {statistics.median(xs):.3f}  max {max(xs):.3f}")


if __name__ == "__main__":
    main()
