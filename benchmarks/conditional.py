"""Conditional spaces: does searching the active parameters only pay off?

Two synthetic "which model, with which settings" problems, each searched with its conditions
(``when``) and flat (every parameter in every trial; the objective ignores the ones its branch does
not use), by the same algorithms and seeds. Reported: the mean best loss after 10, 20 and 40
trials (lower is better; each problem's optimum is 0) and the search's seconds per run.

- ``models``: ``model`` in {svm, forest, knn}; svm has log-scaled ``C`` and ``gamma``, forest
  ``n_estimators`` and ``max_depth``, knn ``k``; a smooth bowl per branch, with floors 0 (forest),
  0.2 (svm) and 0.35 (knn).
- ``nested``: a second level: ``kernel`` in {rbf, poly} exists only for svm, ``gamma`` only for
  rbf and ``degree`` only for poly; the optimum is at svm/poly/degree 3.

The suggesters run on their own (``search.create_suggester``, suggest/tell), without a store or
trial processes: the figures are about the search, not the service.

Usage::

    python benchmarks/conditional.py            # 10 seeds, 40 trials
    python benchmarks/conditional.py --algorithms tpe,random --seeds 40
    python benchmarks/conditional.py --quick    # 1 seed, 12 trials, one problem, no flat auto
                                                # row (what the suite runs)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from automl.core import (
    SUGGESTED_KEY,
    AlgorithmSpec,
    Direction,
    Distribution,
    ExperimentSpec,
    MetricSummary,
    Objective,
    Parameter,
    ParameterType,
    TrialRecord,
    TrialState,
    ordered,
)
from search import create_suggester

LOG = Distribution.LOG_UNIFORM


def _p(name: str, kind: str, when: dict[str, Any] | None = None, **kw: Any) -> Parameter:
    return Parameter(name=name, type=ParameterType(kind), when=when or {}, **kw)


def models_space() -> tuple[Parameter, ...]:
    return (
        _p("model", "categorical", values=("svm", "forest", "knn")),
        _p("C", "double", {"model": "svm"}, min=1e-3, max=1e3, distribution=LOG),
        _p("gamma", "double", {"model": "svm"}, min=1e-4, max=1.0, distribution=LOG),
        _p("n_estimators", "int", {"model": "forest"}, min=10, max=1000, distribution=LOG),
        _p("max_depth", "int", {"model": "forest"}, min=1, max=30),
        _p("k", "int", {"model": "knn"}, min=1, max=50),
    )


def models_loss(p: dict[str, Any]) -> float:
    # A smooth bowl per branch, with different floors: forest 0, svm 0.2, knn 0.35.
    if p["model"] == "svm":
        c, g = math.log10(p["C"]), math.log10(p["gamma"])
        return 0.2 + 0.04 * (c - 1) ** 2 + 0.04 * (g + 2) ** 2
    if p["model"] == "forest":
        n = math.log10(p["n_estimators"])
        return 0.15 * (n - 2.5) ** 2 + 0.002 * (p["max_depth"] - 12) ** 2
    return 0.35 + 0.0005 * (p["k"] - 7) ** 2


def nested_space() -> tuple[Parameter, ...]:
    return (
        _p("model", "categorical", values=("svm", "forest")),
        _p("kernel", "categorical", {"model": "svm"}, values=("rbf", "poly")),
        _p("gamma", "double", {"kernel": "rbf"}, min=1e-4, max=1.0, distribution=LOG),
        _p("degree", "int", {"kernel": "poly"}, min=1, max=8),
        _p("C", "double", {"model": "svm"}, min=1e-3, max=1e3, distribution=LOG),
        _p("n_estimators", "int", {"model": "forest"}, min=10, max=1000, distribution=LOG),
    )


def nested_loss(p: dict[str, Any]) -> float:
    if p["model"] == "forest":
        return 0.4 + 0.1 * (math.log10(p["n_estimators"]) - 2) ** 2
    c = 0.05 * (math.log10(p["C"]) - 0.5) ** 2
    if p["kernel"] == "rbf":
        return 0.25 + c + 0.05 * (math.log10(p["gamma"]) + 1) ** 2
    return min(1.0, 0.1 * (p["degree"] - 3) ** 2 + c)


PROBLEMS: dict[str, tuple[Callable[[], tuple[Parameter, ...]], Callable[..., float]]] = {
    "models": (models_space, models_loss),
    "nested": (nested_space, nested_loss),
}
METHODS = [  # (label, algorithm, conditional)
    ("tpe, conditional", "tpe", True),
    ("tpe, flat", "tpe", False),
    ("auto, conditional", "auto", True),
    ("auto, flat", "auto", False),
    ("random, conditional", "random", True),
    ("tpe, define-by-run", "tpe", "dbr"),  # automl.tune(def objective(trial)), no parameters
    ("optuna tpe, define-by-run", "tpe", "optuna"),  # the same objective in Optuna's own study
]


def _ask(trial: Any, p: Parameter) -> Any:
    """``trial.suggest_*`` for a parameter, on an automl or an Optuna trial."""
    log = p.distribution is LOG
    if p.type is ParameterType.CATEGORICAL:
        return trial.suggest_categorical(p.name, list(p.values))
    assert p.min is not None and p.max is not None
    if p.type is ParameterType.INT:
        return trial.suggest_int(p.name, int(p.min), int(p.max), log=log)
    return trial.suggest_float(p.name, p.min, p.max, log=log)


def _objective(problem: str) -> Callable[[Any], float]:
    """The problem as an Optuna-style objective: it asks for the active parameters only."""
    space_fn, loss_fn = PROBLEMS[problem]
    params = ordered(space_fn())

    def objective(trial: Any) -> float:
        got: dict[str, Any] = {}
        for p in params:
            if all(got.get(k) in v for k, v in p.when.items()):
                got[p.name] = _ask(trial, p)
        return float(loss_fn(got))

    return objective


def run_define_by_run(problem: str, seed: int, n: int, optuna_study: bool) -> list[float]:
    """Best-so-far losses of a define-by-run search: automl's suggester or Optuna's study."""
    objective = _objective(problem)
    losses: list[float] = []
    if optuna_study:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(lambda t: objective(t), n_trials=n)
        losses = [float(t.value) for t in study.trials if t.value is not None]
    else:
        from automl._define_by_run import Trial

        spec = ExperimentSpec(
            name=f"{problem}-{seed}",
            objective=Objective(type=Direction.MINIMIZE, metric="loss"),
            algorithm=AlgorithmSpec(name="tpe", settings={"random_state": seed}),
            parameters=(),
            define_by_run=True,
            source="python",
        )
        suggester = create_suggester(spec)
        for i in range(n):
            (s,) = suggester.suggest([f"t{i}"])
            trial = Trial(s.params, "loss", number=i, seed=seed, record=False)
            loss = objective(trial)
            losses.append(loss)
            # What the controller stores: the params the objective asked for, and their ranges.
            asked = [q.model_dump(mode="json") for q in trial.distributions.values()]
            outputs = {"data": {SUGGESTED_KEY: {"params": trial.params, "space": asked}}}
            suggester.tell(_record(f"t{i}", i, trial.params, loss, outputs))
    return [min(losses[: i + 1]) for i in range(len(losses))]


def _record(trial_id: str, i: int, params: Any, loss: float, outputs: Any = None) -> TrialRecord:
    return TrialRecord(
        id=trial_id,
        experiment_id="b",
        number=i,
        params=params,
        state=TrialState.SUCCEEDED,
        value=loss,
        metrics={"loss": MetricSummary(loss, loss, loss)},
        outputs=outputs or {},
    )


def run(problem: str, algorithm: str, conditional: Any, seed: int, n: int) -> list[float]:
    """Best-so-far losses of one search."""
    if conditional in ("dbr", "optuna"):
        return run_define_by_run(problem, seed, n, optuna_study=conditional == "optuna")
    space_fn, loss_fn = PROBLEMS[problem]
    space = space_fn()
    if not conditional:
        space = tuple(p.model_copy(update={"when": {}}) for p in space)
    spec = ExperimentSpec(
        name=f"{problem}-{seed}",
        objective=Objective(type=Direction.MINIMIZE, metric="loss"),
        algorithm=AlgorithmSpec(name=algorithm, settings={"random_state": seed}),
        parameters=space,
        source="python",
    )
    suggester = create_suggester(spec)
    best: list[float] = []
    for i in range(n):
        (s,) = suggester.suggest([f"t{i}"])
        loss = loss_fn(dict(s.params))
        best.append(min(loss, best[-1]) if best else loss)
        suggester.tell(_record(f"t{i}", i, s.params, loss))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="1 seed, 12 trials, one problem")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument(
        "--algorithms", default="tpe,auto,random", help="comma-separated: tpe, auto, random"
    )
    args = ap.parse_args(argv)
    seeds, n = (1, 12) if args.quick else (args.seeds, args.trials)
    marks = [m for m in (10, 20, 40) if m <= n] or [n]
    with contextlib.suppress(ImportError):  # auto's GP: imported before the clock starts
        import torch  # noqa: F401
    print(f"conditional spaces: mean best loss over {seeds} seeds (optimum 0; lower is better)")
    # Quick: every code path once (auto's GP is the costly one), for the suite.
    problems = list(PROBLEMS)[:1] if args.quick else list(PROBLEMS)
    for problem in problems:
        print(f"\n{problem}")
        print(f"{'method':<27}" + "".join(f"{'@' + str(m):>9}" for m in marks) + f"{'s/run':>8}")
        for label, algorithm, conditional in METHODS:
            if algorithm not in args.algorithms.split(","):
                continue
            if args.quick and (algorithm, conditional) == ("auto", False):
                continue
            runs = []
            t0 = time.perf_counter()
            for seed in range(seeds):
                runs.append(run(problem, algorithm, conditional, seed, n))
            per = (time.perf_counter() - t0) / seeds
            cells = "".join(f"{statistics.fmean(r[m - 1] for r in runs):>9.3f}" for m in marks)
            print(f"{label:<27}{cells}{per:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
