"""Stand-in for Katib's ``darts-cnn-cifar10`` trial image, on scikit-learn's digits (offline, CPU).

Same flags as Katib's ``run_trial.py`` (``--algorithm-settings``, ``--search-space``,
``--num-layers``, each the JSON-ish string Katib's DARTS suggestion assigns) and the same final
line, ``Best-Genotype=Genotype(...)`` (spaces removed). The search itself is ``nas.darts_search``
(Katib's supernet and bilevel optimisation) on the 8x8 digits, split in two halves as Katib
splits CIFAR-10's training set.

Katib's objective metric here is the string ``Best-Genotype``. automl keeps numbers as metric
values, so this script reports the best validation accuracy of the supernet under that name
(``automl.report``) and keeps the derived network's description with the trial
(``nas.record_result``: the genotype as edges and the sizes that rebuild it). Retrain it with
the module ``automl export NAME --format torch`` writes (see README.md).

Environment knobs for quick runs: ``NAS_DIGITS_LIMIT`` (use at most this many images),
``NAS_SEED`` (default 2, Katib's seed), ``NAS_FIRST_ORDER=1`` (first-order architecture
gradient, about 3x cheaper than Katib's second-order one).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from typing import Any

import nas


def katib_json(raw: str) -> Any:
    """Parse a value as Katib passes it: single quotes, maybe wrapped in literal quotes."""
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return json.loads(text.replace("'", '"'))


class Accuracies(io.TextIOBase):
    """Passes the search's log to stdout and keeps each epoch's validation accuracy."""

    _VALID = re.compile(r"Valid: \[(\d+)/\d+\] accuracy ([0-9.]+)")

    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []

    def write(self, s: str) -> int:
        sys.stdout.write(s)
        self.values += [float(v) for _, v in self._VALID.findall(s)]
        return len(s)


def main() -> None:
    parser = argparse.ArgumentParser(description="TrainingContainer")
    parser.add_argument("--algorithm-settings", type=str, default="", help="algorithm settings")
    parser.add_argument("--search-space", type=str, default="", help="search space")
    parser.add_argument("--num-layers", type=str, default="", help="number of layers")
    args = parser.parse_args()

    raw_settings = katib_json(args.algorithm_settings)
    print(">>> Algorithm settings")
    for key, value in raw_settings.items():
        print(f"{key}\t{value}")
    settings = nas.DartsSettings.from_settings(
        {k: v for k, v in raw_settings.items() if v is not None}
    )
    search_space = [str(s) for s in katib_json(args.search_space)]
    num_layers = int(katib_json(args.num_layers) if args.num_layers.strip("\"'") else 3)
    print(f"Number of layers {num_layers}\n")

    limit = os.environ.get("NAS_DIGITS_LIMIT")
    seed = int(os.environ.get("NAS_SEED", "2"))
    data = nas.load_digits_data(seed=seed, val_fraction=0.5, limit=int(limit) if limit else None)
    log = Accuracies()
    genotype = nas.darts_search(
        data,
        settings,
        search_space=search_space,
        num_layers=num_layers,
        seed=seed,
        report=False,  # the objective is reported once, below
        unrolled=os.environ.get("NAS_FIRST_ORDER") != "1",
        log=log,
    )
    best = max(log.values) if log.values else 0.0
    print(f"Final best Prec@1 = {best:.4%}")
    print("\nBest-Genotype={}".format(str(genotype).replace(" ", "")), flush=True)

    import automl

    if automl.current_trial() is not None:
        automl.report(**{"Best-Genotype": best})
        # The derived network's description (outputs.json["nas"]): automl show / export read it.
        nas.record_result(
            {
                "kind": "darts",
                "genotype": genotype.to_dict(),
                "in_channels": data.in_channels,
                "num_classes": data.num_classes,
                "init_channels": settings.init_channels,
                "num_layers": num_layers,
                "stem_multiplier": settings.stem_multiplier,
            },
            genotype_str=str(genotype),
            best_accuracy=best,
            search_space=search_space,
        )


if __name__ == "__main__":
    main()
