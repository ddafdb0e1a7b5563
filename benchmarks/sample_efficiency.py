"""Sample efficiency: how good is the best configuration after 10, 20 and 40 trials?

Runs every optimizer on every problem of ``benchmarks/_problems.py`` (synthetic functions with
continuous, integer and categorical variables, and cross-validated scikit-learn / torch models on
datasets that ship with scikit-learn) for several seeds, one trial at a time, and reports
Bayesmark's normalized score per budget: for a problem and a budget ``n``,

    score = 100 * (random_median(n) - best(n)) / (random_median(n) - best_ever)

where ``best(n)`` is the optimizer's best value after ``n`` trials, ``random_median(n)`` the
median of random search's best after ``n`` trials and ``best_ever`` the best value any run ever
saw on that problem: 100 is the best value ever seen, 0 is what random search typically reaches.
The table gives the mean over problems, averaged over seeds, with the standard error over seeds.
It also records the time each optimizer takes to propose a trial (the objective excluded).

Optimizers: ``auto`` (automl's default, driven through its suggester exactly as the controller
drives it), ``random``, Optuna's ``TPESampler`` and ``GPSampler`` with their defaults, SMAC3's
facade for hyperparameter optimization with its defaults (``scripts/setup.sh bench`` installs it;
its time per trial counts ``ask`` and ``tell``, where it refits its forest) and HEBO. HEBO pins
numpy<1.25 and cannot share the project's environment: it is reported as not run, with why.

Usage::

    python benchmarks/sample_efficiency.py                  # 22 problems, 5 seeds, 40 trials
    python benchmarks/sample_efficiency.py --quick          # 2 problems, 2 seeds, 10 trials (CI)
    python benchmarks/sample_efficiency.py --problems branin,svm-breast-acc --seeds 3

Raw traces (every value and suggestion time of every run) go to ``--out`` (JSON); the problem
list is ``benchmarks/_problems.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _problems import QUICK, Problem, problems

from automl.core import (
    AlgorithmSpec,
    Direction,
    ExperimentSpec,
    Objective,
    TrialRecord,
    TrialState,
)

BUDGETS = (10, 20, 40)
OPTIMIZERS = ("auto", "random", "optuna-tpe", "optuna-gp", "hebo", "smac")
Trace = dict[str, Any]


def _spec(problem: Problem, algorithm: str, seed: int) -> ExperimentSpec:
    params = tuple(p.model_copy(update={"name": n}) for n, p in problem.space.items())
    return ExperimentSpec(
        name="bench",
        objective=Objective(type=Direction.MINIMIZE, metric="loss"),
        algorithm=AlgorithmSpec(name=algorithm),
        parameters=params,
        seed=seed,
    )


def run_automl(problem: Problem, algorithm: str, seed: int, n: int) -> Trace:
    """Drive an automl suggester the way the controller does: suggest, evaluate, tell."""
    import search

    spec = _spec(problem, algorithm, seed)
    suggester = search.create_suggester(spec)
    values: list[float] = []
    times: list[float] = []
    strategies: list[str] = []
    for i in range(n):
        t0 = time.perf_counter()
        (s,) = suggester.suggest([f"t{i}"])
        times.append(time.perf_counter() - t0)
        strategies.append(str(s.attrs.get("strategy", algorithm)))
        value = float(problem.fn(dict(s.params)))
        values.append(value)
        suggester.tell(
            TrialRecord(
                id=f"t{i}",
                experiment_id="bench",
                number=i,
                params=s.params,
                state=TrialState.SUCCEEDED,
                value=value,
            )
        )
    return {"values": values, "suggest_s": times, "strategies": strategies}


def run_optuna(problem: Problem, which: str, seed: int, n: int) -> Trace:
    """Optuna's sampler with its defaults, over the same distributions automl uses."""
    import optuna

    from search._space import SpaceCodec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = _spec(problem, "random", seed).parameters
    codec = SpaceCodec(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler: optuna.samplers.BaseSampler = (
            optuna.samplers.TPESampler(seed=seed)
            if which == "optuna-tpe"
            else optuna.samplers.GPSampler(seed=seed)
        )
        study = optuna.create_study(sampler=sampler)
    values: list[float] = []
    times: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = study.ask(fixed_distributions=codec.distributions)
        times.append(time.perf_counter() - t0)
        value = float(problem.fn(codec.to_external(trial.params)))
        values.append(value)
        study.tell(trial, value)
    return {"values": values, "suggest_s": times}


def run_smac(problem: Problem, seed: int, n: int) -> Trace:
    """SMAC3's facade for hyperparameter optimization (random forest, Sobol initial design,
    interleaved random configurations), with its defaults, through ask and tell."""
    import optuna
    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer
    from smac import HyperparameterOptimizationFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    from search._space import SpaceCodec

    codec = SpaceCodec(_spec(problem, "random", seed).parameters)
    space = ConfigurationSpace(seed=seed)
    for name, d in codec.distributions.items():
        if isinstance(d, optuna.distributions.FloatDistribution):
            space.add(Float(name, (d.low, d.high), log=d.log))
        elif isinstance(d, optuna.distributions.IntDistribution):
            space.add(Integer(name, (d.low, d.high), log=d.log))
        else:
            space.add(Categorical(name, list(d.choices)))
    with tempfile.TemporaryDirectory() as out:
        scenario = Scenario(
            space, deterministic=True, n_trials=n, seed=seed, output_directory=Path(out)
        )
        smac = HyperparameterOptimizationFacade(
            scenario, lambda config, seed=0: 0.0, overwrite=True, logging_level=40
        )
        values: list[float] = []
        times: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            info = smac.ask()
            spent = time.perf_counter() - t0
            value = float(problem.fn(codec.to_external(dict(info.config))))
            values.append(value)
            t0 = time.perf_counter()
            smac.tell(info, TrialValue(cost=value))  # SMAC refits its forest here: its time too
            times.append(spent + time.perf_counter() - t0)
    return {"values": values, "suggest_s": times}


# How each outside baseline installs, and what was seen installing it on the development machine.
_INSTALL = {
    "smac": "scripts/setup.sh bench installs SMAC3 (the bench extra)",
    "hebo": "HEBO 0.3.6 pins numpy<1.25: installed into the project's environment it would "
    "downgrade numpy to 1.24.4, scipy to 1.12.0 and pandas to 2.3.3 under the rest of the stack",
}


def _missing_reason(name: str) -> str | None:
    module = {"hebo": "hebo", "smac": "smac"}[name]
    try:
        __import__(module)
    except Exception as exc:  # ImportError, or a broken install
        return f"{type(exc).__name__}: {exc} ({_INSTALL[name]})"
    return None if name == "smac" else f"{name} imports but has no adapter in this benchmark"


@contextlib.contextmanager
def _one_thread_everywhere() -> Iterator[None]:
    """Every optimizer on one BLAS/OpenMP/torch thread, as automl's GP phase runs.

    On a shared 2-core machine, more threads only wait for each other; the same limit for every
    optimizer keeps the suggestion times comparable.
    """
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def best_so_far(values: Sequence[float]) -> list[float]:
    """Running minimum."""
    out, best = [], math.inf
    for v in values:
        best = min(best, v)
        out.append(best)
    return out


def normalized_scores(
    traces: dict[str, dict[str, dict[int, Trace]]], budgets: Sequence[int]
) -> dict[str, dict[int, list[float]]]:
    """Per optimizer and budget: the mean normalized score over problems, one entry per seed."""
    out: dict[str, dict[int, list[float]]] = {}
    problems_ = sorted({p for per_opt in traces.values() for p in per_opt})
    for prob in problems_:
        runs = {o: traces[o][prob] for o in traces if prob in traces[o]}
        if "random" not in runs:  # scores are relative to random search: none without it
            continue
        best_ever = min(min(t["values"]) for per_seed in runs.values() for t in per_seed.values())
        randoms = [best_so_far(t["values"]) for t in runs["random"].values()]
        for opt, per_seed in runs.items():
            for seed, trace in per_seed.items():
                curve = best_so_far(trace["values"])
                for n in budgets:
                    if n > len(curve):
                        continue
                    med = statistics.median(r[n - 1] for r in randoms)
                    span = med - best_ever
                    score = 100.0 if span <= 0 else 100.0 * (med - curve[n - 1]) / span
                    out.setdefault(opt, {}).setdefault(n, []).append((seed, score))  # type: ignore[arg-type]
    table: dict[str, dict[int, list[float]]] = {}
    for opt, per_n in out.items():
        for n, pairs in per_n.items():
            by_seed: dict[int, list[float]] = {}
            for seed, score in pairs:  # type: ignore[misc]
                by_seed.setdefault(seed, []).append(score)
            table.setdefault(opt, {})[n] = [statistics.mean(v) for v in by_seed.values()]
    return table


def _table(
    traces: dict[str, dict[str, dict[int, Trace]]],
    budgets: Sequence[int],
    optimizers: Sequence[str],
    missing: dict[str, str],
    seeds: int,
    random_seeds: int,
) -> dict[str, Any]:
    """Print the markdown table; return the summary."""
    table = normalized_scores(traces, budgets)
    problems_ = sorted({p for per_opt in traces.values() for p in per_opt})
    summary: dict[str, Any] = {
        "budgets": list(budgets),
        "seeds": seeds,
        "random_seeds": random_seeds,
        "problems": problems_,
        "missing": missing,
        "scores": {},
        "suggest_s": {},
    }
    print(f"\n{len(problems_)} problems, {seeds} seeds, budgets {list(budgets)}")
    header = "| optimizer | " + " | ".join(f"{n} trials" for n in budgets)
    print(header + " | median suggest s (last 10 trials) |")
    print("|" + " --- |" * (len(budgets) + 2))
    for opt in optimizers:
        if opt in missing:
            print(f"| {opt} | not run: {missing[opt]} |")
            continue
        if opt not in traces:
            continue
        cells = []
        for n in budgets:
            if opt not in table:  # no random search in the run: suggestion times only
                cells.append("-")
                continue
            per_seed = table[opt][n]
            mean = statistics.mean(per_seed)
            se = statistics.stdev(per_seed) / math.sqrt(len(per_seed)) if len(per_seed) > 1 else 0
            cells.append(f"{mean:.1f} ± {se:.1f}")
            summary["scores"].setdefault(opt, {})[n] = {"mean": mean, "se": se}
        late = [
            s
            for per_seed in traces[opt].values()
            for t in per_seed.values()
            for s in t["suggest_s"][-10:]
        ]
        med = float(np.median(late))
        summary["suggest_s"][opt] = med
        print(f"| {opt} | " + " | ".join(cells) + f" | {med:.3f} |")
    return summary


def report(paths: Sequence[Path], seeds: int) -> dict[str, Any]:
    """The table of trace files written by earlier runs (merged; problems every optimizer ran)."""
    traces: dict[str, dict[str, dict[int, Trace]]] = {}
    for path in paths:
        data = json.loads(path.read_text())
        for opt, per_prob in data["traces"].items():
            for prob, per_seed in per_prob.items():
                runs = {int(k): v for k, v in per_seed.items()}
                traces.setdefault(opt, {}).setdefault(prob, {}).update(runs)
    done = set.intersection(*(set(per_prob) for per_prob in traces.values()))
    traces = {o: {p: r for p, r in per.items() if p in done} for o, per in traces.items()}
    longest = max(
        len(t["values"]) for per in traces.values() for r in per.values() for t in r.values()
    )
    budgets = [b for b in BUDGETS if b <= longest] or [longest]
    missing = {o: r for o in ("hebo", "smac") if o not in traces and (r := _missing_reason(o))}
    return _table(traces, budgets, [*traces, *missing], missing, seeds, 0)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print the table; return the summary (and write the traces)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 problems, 2 seeds, 10 trials")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--random-seeds", type=int, default=10, help="seeds of random search")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--problems", default="", help="comma-separated names (default: all)")
    ap.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    ap.add_argument("--out", default="benchmarks/results/sample_efficiency.json")
    ap.add_argument(
        "--report",
        default="",
        help="comma-separated trace files of earlier (possibly partial) runs: print their table",
    )
    args = ap.parse_args(argv)
    if args.report:
        return report([Path(p) for p in args.report.split(",")], args.seeds)
    suite = problems()
    if args.quick:
        args.seeds, args.random_seeds, args.trials = 2, 3, 10
        suite = [p for p in suite if p.name in QUICK]
        if args.optimizers == ",".join(OPTIMIZERS):
            args.optimizers = "auto,random,optuna-tpe"
    if args.problems:
        wanted = set(args.problems.split(","))
        suite = [p for p in suite if p.name in wanted]
    optimizers = [o for o in args.optimizers.split(",") if o]
    budgets = [b for b in BUDGETS if b <= args.trials] or [args.trials]
    traces: dict[str, dict[str, dict[int, Trace]]] = {}
    missing = {o: r for o in optimizers if o in ("hebo", "smac") and (r := _missing_reason(o))}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with _one_thread_everywhere():
        for prob in suite:  # problem by problem, traces written after each: a partial run counts
            for opt in optimizers:
                if opt in missing:
                    continue
                n_seeds = max(args.seeds, args.random_seeds) if opt == "random" else args.seeds
                for seed in range(n_seeds):
                    if opt in ("auto", "random"):
                        trace = run_automl(prob, opt, seed, args.trials)
                    elif opt == "smac":
                        trace = run_smac(prob, seed, args.trials)
                    else:
                        trace = run_optuna(prob, opt, seed, args.trials)
                    traces.setdefault(opt, {}).setdefault(prob.name, {})[seed] = trace
                    print(
                        f"{opt:11s} {prob.name:22s} seed {seed}: best {min(trace['values']):.6g}",
                        file=sys.stderr,
                        flush=True,
                    )
            out.write_text(json.dumps({"partial": True, "traces": traces}))
    summary = _table(traces, budgets, optimizers, missing, args.seeds, args.random_seeds)
    summary["elapsed_s"] = time.time() - started
    out.write_text(json.dumps({"summary": summary, "traces": traces}))
    return summary


if __name__ == "__main__":
    main()
