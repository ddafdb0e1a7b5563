"""One NAS trial: build the architecture it is given and train it on the digits.

``--architecture`` and ``--nn_config`` are Katib's ENAS strings (automl gives them to every NAS
trial, whatever the algorithm); the network is built by ``nas.build_model`` and trained by
``nas.train_network``, which reports ``Validation-Accuracy`` per epoch to automl.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import automl
import nas
from nas import Architecture, NasSpace


def space_for(arch: Architecture, nn_config: dict[str, Any]) -> tuple[NasSpace, Architecture]:
    """A space of the operations ``nn_config`` embeds, and ``arch`` re-indexed into it."""
    embedding = {int(k): v for k, v in nn_config["embedding"].items()}
    used = sorted(embedding)
    ops = tuple(nas.Operation(embedding[i]["opt_type"], embedding[i]["opt_params"]) for i in used)
    space = NasSpace(
        int(nn_config["num_layers"]),
        tuple(nn_config["input_sizes"]),
        tuple(nn_config["output_sizes"]),
        ops,
    )
    index = {op_id: i for i, op_id in enumerate(used)}
    return space, Architecture(tuple(index[o] for o in arch.ops), arch.skips)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--architecture", required=True)
    parser.add_argument("--nn_config", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    arch = Architecture.from_katib(args.architecture)
    space, local = space_for(arch, json.loads(args.nn_config.replace("'", '"')))
    data = nas.load_digits_data(seed=args.seed)
    acc = nas.train_child(space, local, data, epochs=args.epochs, seed=args.seed)
    print(f"Validation-Accuracy={acc:.4f}")
    if automl.current_trial() is not None:
        automl.log_outputs(architecture=arch.to_dict(), validation_accuracy=acc)


if __name__ == "__main__":
    main()
