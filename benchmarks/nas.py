"""Neural architecture search on scikit-learn's digits: what each search finds, at an equal budget.

Part 1, multi-trial NAS. One architecture space (3 layers; 3x3/5x5 convolutions with 16 or 32
filters, a 3x3 separable convolution, max/avg pooling; skip connections), one trial budget.
``enas`` (the LSTM controller), ``evolution`` (regularized evolution), ``tpe`` and ``random`` each
run ``--trials`` trials through ``automl.tune``; a trial trains its architecture for
``--epochs`` epochs and reports its validation accuracy. The best architecture of each search is
then retrained from scratch for ``--retrain-epochs`` epochs with the same seeds (``--seeds``),
so the comparison is of architectures, not of lucky initialisations.

Part 2, DARTS. ``nas.darts_search`` (Katib's one-shot supernet) derives a cell pair; the
derived network and a random cell pair of the same size (same nodes, two edges per node, random
operations and inputs) are retrained with the same seeds.

Reports accuracy (mean and spread over seeds) and wall time per search, and says whether the
gaps between the retrained accuracies are larger than the seeds' spread (twice the standard
error of the difference) or within noise. Everything is seeded (search, initialisation, data
order): the same command gives the same accuracies on the same machine and torch build (float
rounding differs across CPUs and builds, so another machine may rank close results
differently: that is what the spread verdict is for). Everything runs on the CPU here (the
script says which device it used). Torch runs on ``--threads`` threads (1 by default: the
networks are tiny and a shared machine punishes thread hand-offs).

Run: python benchmarks/nas.py [--quick] [--trials 12] [--epochs 2] [--retrain-epochs 6]
     [--seeds 0,1,2] [--darts-epochs 4] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch

import automl
import nas
from nas import Architecture, DartsSettings, Genotype, ImageData, NasSpace

SPACE = NasSpace.from_native(
    {
        "layers": 3,
        "input": [8, 8, 1],
        "classes": 10,
        "operations": [
            {"type": "convolution", "filter_size": [3, 5], "num_filter": [16, 32]},
            {"type": "separable_convolution", "filter_size": 3, "num_filter": 32},
            {"type": "reduction", "reduction_type": ["max_pooling", "avg_pooling"]},
        ],
    }
)

# ENAS with Katib's defaults (learning rate 5e-5, baseline decay 0.999, 50 steps) barely moves in
# a dozen trials; these settings let the controller learn within the budget.
ENAS_SETTINGS = {
    "controller_learning_rate": 0.01,
    "controller_baseline_decay": 0.7,
    "controller_train_steps": 10,
    "controller_hidden_size": 32,
}
ALGORITHMS: dict[str, dict[str, Any]] = {
    "random": {},
    "tpe": {"n_startup_trials": 4},
    "evolution": {"population_size": 4, "sample_size": 2},
    "enas": ENAS_SETTINGS,
}


def search(
    algorithm: str, data: ImageData, trials: int, epochs: int, seed: int, store: str
) -> dict[str, Any]:
    """One multi-trial search; the best architecture and the wall time."""

    def objective(architecture: Architecture, **_: Any) -> float:
        return nas.train_child(
            SPACE, architecture, data, epochs=epochs, seed=0, report=False, log=None
        )

    t0 = time.perf_counter()
    r = automl.tune(
        objective,
        progress=False,
        nas=SPACE,
        algorithm=algorithm,
        algorithm_settings=ALGORITHMS[algorithm],
        objective_metric="Validation-Accuracy",
        direction="maximize",
        max_trials=trials,
        seed=seed,
        store=store,
        name=f"bench-nas-{algorithm}",
    )
    wall = time.perf_counter() - t0
    assert r.best_trial is not None
    best = Architecture.from_dict(r.best_trial.attrs["architecture"])
    return {
        "algorithm": algorithm,
        "wall_s": wall,
        "search_best": r.best_value,
        "architecture": best,
        "trials": len(r.trials),
    }


def retrain(build: Any, data: ImageData, epochs: int, seeds: list[int]) -> list[float]:
    """Validation accuracy of a freshly built network per seed."""
    out = []
    for s in seeds:
        torch.manual_seed(s)
        model = build()
        out.append(nas.train_network(model, data, epochs=epochs, seed=s, report=False, log=None))
    return out


def random_genotype(like: Genotype, primitives: list[str], rng: random.Random) -> Genotype:
    """A random cell pair with ``like``'s shape: same nodes, two edges each, random ops/inputs."""

    def cell(n_nodes: int) -> tuple[tuple[tuple[str, int], ...], ...]:
        return tuple(
            tuple((rng.choice(primitives), src) for src in rng.sample(range(2 + i), 2))
            for i in range(n_nodes)
        )

    return Genotype(
        cell(len(like.normal)), like.normal_concat, cell(len(like.reduce)), like.reduce_concat
    )


def fmt(accs: list[float]) -> str:
    if len(accs) == 1:
        return f"{accs[0]:.4f}"
    return f"{statistics.mean(accs):.4f} ± {statistics.stdev(accs):.4f}"


def gap(a: list[float], b: list[float]) -> dict[str, Any]:
    """Mean of ``a`` minus mean of ``b``, and whether it exceeds twice its standard error."""
    diff = statistics.mean(a) - statistics.mean(b)
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "se": None, "verdict": "one seed: no spread to compare"}
    se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
    verdict = "larger than the seeds' spread" if abs(diff) > 2 * se else "within noise"
    return {"diff": diff, "se": se, "verdict": verdict}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny budget (smoke run, ~minutes)")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per search trial")
    ap.add_argument("--retrain-epochs", type=int, default=6)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--darts-epochs", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None, help="use at most this many images")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--search-seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument(
        "--parts", default="multi,darts", help="which parts to run: multi, darts or both"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.trials, args.epochs, args.retrain_epochs = 6, 1, 2
        args.seeds, args.darts_epochs, args.limit = "0,1", 1, args.limit or 600
    seeds = [int(s) for s in args.seeds.split(",")]
    parts = set(args.parts.split(","))
    if not parts or parts - {"multi", "darts"}:
        ap.error(f"--parts takes multi, darts or multi,darts; got {args.parts!r}")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    device = nas.device_for()
    gpu_note = (
        f"device: {device}"
        if device.type == "cuda"
        else "device: cpu (no GPU this session: every number below is CPU time)"
    )
    print(f"# NAS benchmark on digits — {gpu_note}; torch threads {args.threads}")
    data = nas.load_digits_data(seed=0, limit=args.limit)
    print(
        f"data: {len(data.train)} train / {len(data.val)} validation images "
        f"{data.height}x{data.width}x{data.in_channels}; space: {len(SPACE.operations)} "
        f"operations x {SPACE.num_layers} layers = {SPACE.count():.0f} architectures"
    )
    print(
        f"budget: {args.trials} trials x {args.epochs} epochs per search; best architecture "
        f"retrained {args.retrain_epochs} epochs x seeds {seeds}\n"
    )
    results: dict[str, Any] = {"device": str(device), "multi_trial": [], "darts": {}}
    if "multi" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            store = f"sqlite:///{os.path.join(tmp, 'nas.db')}"
            rows = []
            for alg in ALGORITHMS:
                res = search(alg, data, args.trials, args.epochs, args.search_seed, store)
                arch: Architecture = res["architecture"]
                accs = retrain(
                    lambda a=arch: nas.build_model(SPACE, a), data, args.retrain_epochs, seeds
                )
                names = [SPACE.operation_names[o] for o in arch.ops]
                rows.append((alg, res, accs, names))
                results["multi_trial"].append(
                    {
                        "algorithm": alg,
                        "settings": ALGORITHMS[alg],
                        "wall_s": res["wall_s"],
                        "search_best": res["search_best"],
                        "retrained": accs,
                        "architecture": arch.to_dict(),
                        "operations": names,
                    }
                )
                print(f"  {alg}: done in {res['wall_s']:.1f} s", file=sys.stderr)
        print(
            "| search | wall time (s) | best in search | best retrained (mean ± sd) "
            "| architecture |"
        )
        print("|---|---:|---:|---:|---|")
        for alg, res, accs, names in rows:
            skips = Architecture.from_dict(
                next(r for r in results["multi_trial"] if r["algorithm"] == alg)["architecture"]
            ).skips
            print(
                f"| {alg} | {res['wall_s']:.1f} | {res['search_best']:.4f} | {fmt(accs)} | "
                f"{' > '.join(names)}; skips {[list(s) for s in skips]} |"
            )
        ranked = sorted(rows, key=lambda r: -statistics.mean(r[2]))
        top, last = ranked[0], ranked[-1]
        spread = gap(top[2], last[2])
        results["multi_trial_gap"] = {"best": top[0], "worst": last[0], **spread}
        print(
            f"\nretrained: best {top[0]} - worst {last[0]} = {spread['diff']:+.4f}"
            + (f" (2 SE {2 * spread['se']:.4f})" if spread["se"] is not None else "")
            + f": {spread['verdict']}"
        )
        print(f"\nENAS settings: {ENAS_SETTINGS}\n")

    if "darts" in parts:
        settings = DartsSettings(
            num_epochs=args.darts_epochs, batch_size=64, init_channels=8, num_nodes=3
        )
        t0 = time.perf_counter()
        genotype = nas.darts_search(
            data, settings, num_layers=3, seed=0, report=False, unrolled=True, log=None
        )
        darts_wall = time.perf_counter() - t0
        rng = random.Random(0)
        rand = random_genotype(genotype, list(nas.DEFAULT_SEARCH_SPACE), rng)

        def builder(g: Genotype) -> Any:
            return lambda: nas.build_darts_network(
                g,
                in_channels=data.in_channels,
                num_classes=data.num_classes,
                init_channels=settings.init_channels,
                num_layers=3,
            )

        t1 = time.perf_counter()
        derived = retrain(builder(genotype), data, args.retrain_epochs, seeds)
        t2 = time.perf_counter()
        random_cell = retrain(builder(rand), data, args.retrain_epochs, seeds)
        t3 = time.perf_counter()
        print(
            f"DARTS: {args.darts_epochs} search epochs (second order), 3 cells x "
            f"{settings.num_nodes} nodes, init_channels {settings.init_channels}\n"
        )
        print("| network | search (s) | retrain (s) | retrained accuracy (mean ± sd) | cell |")
        print("|---|---:|---:|---:|---|")
        print(
            f"| DARTS derived | {darts_wall:.1f} | {t2 - t1:.1f} | {fmt(derived)} | {genotype} |"
        )
        print(f"| random cell, same size | - | {t3 - t2:.1f} | {fmt(random_cell)} | {rand} |")
        vs = gap(derived, random_cell)
        print(
            f"\nDARTS derived - random cell = {vs['diff']:+.4f}"
            + (f" (2 SE {2 * vs['se']:.4f})" if vs["se"] is not None else "")
            + f": {vs['verdict']}"
        )
        results["darts"] = {
            "search_s": darts_wall,
            "derived": derived,
            "random": random_cell,
            "genotype": genotype.to_dict(),
            "random_genotype": rand.to_dict(),
            "derived_minus_random": vs,
        }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
