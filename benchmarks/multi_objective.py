"""Several objectives: the hypervolume each algorithm reaches after 50 and 100 trials.

Problems (all minimized; written here, since optunahub is not available offline):

* ``zdt1``, ``zdt2``, ``zdt3``: Zitzler, Deb and Thiele's two-objective functions on ``[0, 1]^n``
  with ``n = 10`` variables (the usual 30 makes a Gaussian process over 100 trials slow on the
  shared 2-core machine these figures come from). Fronts: convex, concave, disconnected.
* ``dtlz2``: Deb et al.'s three-objective sphere, ``n = 12`` (``k = 10``).
* ``mlp-digits``: a real problem: an MLP on scikit-learn's digits (hidden units of two layers,
  L2 penalty, learning rate), objectives validation error and parameter count (log10).

Hypervolume is measured against a fixed reference point per problem (printed in the table
header, also in docs/multi-objective.md), over the trials run so far; larger is better.

Algorithms: automl's ``auto``, ``nsga2``, ``nsga3``, ``motpe`` and ``random``, driven through
their suggesters exactly as the controller drives them (suggest, evaluate, tell), against
Optuna's ``NSGAIISampler`` with its default settings (``optuna-nsga2``).

Usage::

    python benchmarks/multi_objective.py             # 5 problems, 5 seeds, 100 trials
    python benchmarks/multi_objective.py --quick     # 2 problems, 1 seed, 12 trials (CI)

Raw traces go to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from automl.core import (
    AlgorithmSpec,
    Direction,
    ExperimentSpec,
    MetricSummary,
    Objective,
    Parameter,
    ParameterType,
    TrialRecord,
    TrialState,
)

ALGORITHMS = ("auto", "nsga2", "nsga3", "motpe", "random", "optuna-nsga2")
BUDGETS = (50, 100)


@dataclass(frozen=True)
class Problem:
    """A minimization problem with several objectives."""

    name: str
    space: dict[str, Parameter]
    fn: Callable[[dict[str, Any]], list[float]]
    reference: tuple[float, ...]
    metrics: tuple[str, ...]


def _unit(n: int) -> dict[str, Parameter]:
    return {
        f"x{i}": Parameter(name=f"x{i}", type=ParameterType.DOUBLE, min=0.0, max=1.0)
        for i in range(n)
    }


def _xs(p: dict[str, Any], n: int) -> np.ndarray:
    return np.array([float(p[f"x{i}"]) for i in range(n)])


def zdt(kind: int, n: int = 10) -> Problem:
    """ZDT1 (convex front), ZDT2 (concave) or ZDT3 (disconnected) on ``[0, 1]^n``."""

    def fn(p: dict[str, Any]) -> list[float]:
        x = _xs(p, n)
        f1 = float(x[0])
        g = 1.0 + 9.0 * float(x[1:].sum()) / (n - 1)
        if kind == 1:
            h = 1.0 - math.sqrt(f1 / g)
        elif kind == 2:
            h = 1.0 - (f1 / g) ** 2
        else:
            h = 1.0 - math.sqrt(f1 / g) - (f1 / g) * math.sin(10 * math.pi * f1)
        return [f1, g * h]

    return Problem(f"zdt{kind}", _unit(n), fn, (1.1, 11.0), ("f1", "f2"))


def dtlz2(n: int = 12, m: int = 3) -> Problem:
    """DTLZ2 with ``m`` objectives: its front is the unit sphere's positive orthant."""

    def fn(p: dict[str, Any]) -> list[float]:
        x = _xs(p, n)
        g = float(((x[m - 1 :] - 0.5) ** 2).sum())
        out = []
        for i in range(m):
            f = 1.0 + g
            for xj in x[: m - 1 - i]:
                f *= math.cos(xj * math.pi / 2)
            if i > 0:
                f *= math.sin(x[m - 1 - i] * math.pi / 2)
            out.append(f)
        return out

    return Problem("dtlz2", _unit(n), fn, (2.5, 2.5, 2.5), ("f1", "f2", "f3"))


def mlp_digits() -> Problem:
    """An MLP on digits: validation error against log10(parameter count)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    xtr, xva, ytr, yva = train_test_split(X, y, train_size=800, test_size=400, random_state=0)

    def fn(p: dict[str, Any]) -> list[float]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        h1, h2 = int(p["units1"]), int(p["units2"])
        layers = (h1,) if h2 == 0 else (h1, h2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = MLPClassifier(
                hidden_layer_sizes=layers,
                alpha=float(p["alpha"]),
                learning_rate_init=float(p["lr"]),
                max_iter=40,
                random_state=0,
            ).fit(xtr, ytr)
        sizes = [64, *layers, 10]
        count = sum(a * b + b for a, b in itertools.pairwise(sizes))
        return [1.0 - float(clf.score(xva, yva)), math.log10(count)]

    space = {
        "units1": Parameter(name="units1", type=ParameterType.INT, min=2, max=128),
        "units2": Parameter(name="units2", type=ParameterType.INT, min=0, max=64),
        "alpha": Parameter(
            name="alpha", type=ParameterType.DOUBLE, min=1e-6, max=1e-1, distribution="logUniform"
        ),
        "lr": Parameter(
            name="lr", type=ParameterType.DOUBLE, min=1e-4, max=1e-1, distribution="logUniform"
        ),
    }
    return Problem("mlp-digits", space, fn, (1.0, 4.5), ("error", "log10_params"))


def problems() -> list[Problem]:
    """Every problem of the benchmark."""
    return [zdt(1), zdt(2), zdt(3), dtlz2(), mlp_digits()]


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Hypervolume dominated by ``points`` (minimized) up to ``reference``."""
    from optuna._hypervolume import compute_hypervolume

    ref = np.asarray(reference, dtype=float)
    pts = np.asarray([p for p in points if all(a < r for a, r in zip(p, ref, strict=True))])
    if len(pts) == 0:
        return 0.0
    return float(compute_hypervolume(pts, ref))


def _spec(problem: Problem, algorithm: str, seed: int) -> ExperimentSpec:
    objs = tuple(Objective(type=Direction.MINIMIZE, metric=m) for m in problem.metrics)
    return ExperimentSpec(
        name="bench",
        objective=objs[0],
        objectives=objs,
        algorithm=AlgorithmSpec(name=algorithm),
        parameters=tuple(p.model_copy(update={"name": n}) for n, p in problem.space.items()),
        seed=seed,
    )


def run_automl(problem: Problem, algorithm: str, seed: int, n: int) -> dict[str, Any]:
    """Drive an automl suggester the way the controller does: suggest, evaluate, tell."""
    import search

    spec = _spec(problem, algorithm, seed)
    suggester = search.create_suggester(spec)
    values: list[list[float]] = []
    times: list[float] = []
    strategies: list[str] = []
    for i in range(n):
        t0 = time.perf_counter()
        (s,) = suggester.suggest([f"t{i}"])
        times.append(time.perf_counter() - t0)
        strategies.append(str(s.attrs.get("strategy", algorithm)))
        vec = problem.fn(dict(s.params))
        values.append(vec)
        suggester.tell(
            TrialRecord(
                id=f"t{i}",
                experiment_id="bench",
                number=i,
                params=s.params,
                state=TrialState.SUCCEEDED,
                value=vec[0],
                metrics={
                    m: MetricSummary(v, v, v) for m, v in zip(problem.metrics, vec, strict=True)
                },
                attrs={"values": vec},
            )
        )
    return {"values": values, "suggest_s": times, "strategies": strategies}


def run_optuna_nsga2(problem: Problem, seed: int, n: int) -> dict[str, Any]:
    """Optuna's NSGA-II with its default settings, over the same distributions."""
    import optuna

    from search._space import SpaceCodec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    codec = SpaceCodec(_spec(problem, "random", seed).parameters)
    study = optuna.create_study(
        directions=["minimize"] * len(problem.metrics),
        sampler=optuna.samplers.NSGAIISampler(seed=seed),
    )
    values: list[list[float]] = []
    times: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask(fixed_distributions=codec.distributions)
        times.append(time.perf_counter() - t0)
        vec = problem.fn(codec.to_external(trial.params))
        values.append(vec)
        study.tell(trial, vec)
    return {"values": values, "suggest_s": times}


def table(
    traces: dict[str, dict[str, dict[int, dict[str, Any]]]],
    suite: Sequence[Problem],
    algorithms: Sequence[str],
    budgets: Sequence[int],
) -> dict[str, Any]:
    """Mean hypervolume (standard error over seeds) per problem, algorithm and budget."""
    summary: dict[str, Any] = {}
    for b in budgets:
        print(f"\nhypervolume after {b} trials (mean +- standard error over seeds)")
        print(f"{'problem (reference)':32s}" + "".join(f"{a:>18s}" for a in algorithms))
        for prob in suite:
            ref = ",".join(f"{r:g}" for r in prob.reference)
            row = f"{prob.name + ' (' + ref + ')':32s}"
            for a in algorithms:
                runs = traces.get(a, {}).get(prob.name, {})
                hvs = [
                    hypervolume(t["values"][:b], prob.reference)
                    for t in runs.values()
                    if len(t["values"]) >= b
                ]
                if not hvs:
                    row += f"{'-':>18s}"
                    continue
                mean = statistics.fmean(hvs)
                se = statistics.stdev(hvs) / math.sqrt(len(hvs)) if len(hvs) > 1 else 0.0
                summary.setdefault(str(b), {}).setdefault(prob.name, {})[a] = [mean, se]
                row += f"{mean:>11.4g} +-{se:<5.2g}"
            print(row)
    print("\nmean suggestion time (s)")
    for a in algorithms:
        ts = [
            statistics.fmean(t["suggest_s"])
            for runs in traces.get(a, {}).values()
            for t in runs.values()
        ]
        if ts:
            print(f"  {a:14s} {statistics.fmean(ts):.4f}")
            summary.setdefault("suggest_s", {})[a] = statistics.fmean(ts)
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write the traces."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 problems, 1 seed, 12 trials")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--problems", default="", help="comma-separated names (default: all)")
    ap.add_argument("--algorithms", default=",".join(ALGORITHMS))
    ap.add_argument("--out", default="benchmarks/results/multi_objective.json")
    ap.add_argument("--report", default="", help="print the table of an earlier trace file")
    args = ap.parse_args(argv)
    suite = problems() if not args.quick else [zdt(1, n=4), dtlz2(n=5)]
    budgets: list[int] = list(BUDGETS)
    if args.quick:
        args.seeds, args.trials, budgets = 1, 12, [6, 12]
    if args.problems:
        wanted = set(args.problems.split(","))
        suite = [p for p in suite if p.name in wanted]
    algorithms = [a for a in args.algorithms.split(",") if a]
    if args.report:
        data = json.loads(Path(args.report).read_text())
        return table(data["traces"], suite, algorithms, budgets)
    traces: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from threadpoolctl import threadpool_limits

    started = time.time()
    with threadpool_limits(1):
        for prob in suite:
            for a in algorithms:
                for seed in range(args.seeds):
                    t0 = time.time()
                    if a == "optuna-nsga2":
                        trace = run_optuna_nsga2(prob, seed, args.trials)
                    else:
                        trace = run_automl(prob, a, seed, args.trials)
                    traces.setdefault(a, {}).setdefault(prob.name, {})[seed] = trace
                    hv = hypervolume(trace["values"], prob.reference)
                    print(
                        f"{a:13s} {prob.name:11s} seed {seed}: hv {hv:.4g} "
                        f"({time.time() - t0:.0f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
            if not args.quick:  # traces after each problem: a partial run still counts
                out.write_text(json.dumps({"partial": True, "traces": traces}))
    summary = table(traces, suite, algorithms, [b for b in budgets if b <= args.trials])
    summary["elapsed_s"] = time.time() - started
    if not args.quick:
        out.write_text(json.dumps({"summary": summary, "traces": traces}))
    return summary


if __name__ == "__main__":
    main()
