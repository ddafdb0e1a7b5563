"""Stand-in for Katib's ``enas-cnn-cifar10`` trial image, on scikit-learn's digits (offline, CPU).

Same flags as Katib's ``RunTrial.py`` (``--architecture``, ``--nn_config``, ``--num_epochs``,
``--num_gpus``) and the same output: ``Validation-Accuracy=0.xx`` (and the other three metrics)
after every epoch, for the StdOut metrics collector.

The experiment declares ``inputSizes: [32, 32, 3]`` (CIFAR-10); the 8x8 grey digits are resized
(bilinear) to the declared height and width and repeated over the declared channels, so the
network Katib's ENAS suggests is built exactly as declared. ``outputSizes`` must be 10 (digits
have ten classes). The network is built and trained by the ``nas`` package
(``nas.build_model``, ``nas.train_network``: SGD, cosine schedule).

Environment knobs for quick runs: ``NAS_DIGITS_LIMIT`` (use at most this many images),
``NAS_SEED`` (data split and initialisation, default 0).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

import nas
from nas import Architecture, ImageData, NasSpace


def katib_json(raw: str) -> Any:
    """Parse a value as Katib passes it: single quotes, maybe wrapped in literal quotes."""
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return json.loads(text.replace("'", '"'))


def space_for(arch: Architecture, nn_config: dict[str, Any]) -> tuple[NasSpace, Architecture]:
    """A space holding the operations ``nn_config`` embeds, and ``arch`` re-indexed into it."""
    embedding = {int(k): v for k, v in nn_config["embedding"].items()}
    used = sorted(embedding)
    index = {op_id: i for i, op_id in enumerate(used)}
    operations = tuple(
        nas.Operation(embedding[i]["opt_type"], dict(embedding[i]["opt_params"])) for i in used
    )
    space = NasSpace(
        int(nn_config["num_layers"]),
        tuple(int(v) for v in nn_config["input_sizes"]),
        tuple(int(v) for v in nn_config["output_sizes"]),
        operations,
    )
    return space, Architecture(tuple(index[o] for o in arch.ops), arch.skips)


def fit_images(data: ImageData, height: int, width: int, channels: int) -> ImageData:
    """``data`` resized to ``height x width`` and repeated over ``channels`` channels."""

    def fit(ds: TensorDataset) -> TensorDataset:
        x, y = ds.tensors
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
        if x.shape[1] != channels:
            x = x.mean(dim=1, keepdim=True).repeat(1, channels, 1, 1)
        return TensorDataset(x.contiguous(), y)

    return ImageData(
        fit(data.train), fit(data.val), channels, height, width, data.num_classes, data.classes
    )


class EpochLines(io.TextIOBase):
    """Passes the trainer's log to stderr and prints Katib's metric lines for each epoch."""

    _EPOCH = re.compile(r"train loss ([0-9.]+), validation accuracy ([0-9.]+)")

    def __init__(self) -> None:
        super().__init__()
        self._line = ""

    def write(self, s: str) -> int:
        sys.stderr.write(s)
        self._line += s
        *done, self._line = self._line.split("\n")
        for line in done:
            for loss, acc in self._EPOCH.findall(line):
                print(f"Training-Loss={loss}")
                print(f"Validation-Accuracy={acc}", flush=True)
        return len(s)


def main() -> None:
    parser = argparse.ArgumentParser(description="TrainingContainer")
    parser.add_argument("--architecture", type=str, default="", metavar="N")
    parser.add_argument("--nn_config", type=str, default="", metavar="N")
    parser.add_argument("--num_epochs", type=int, default=10, metavar="N")
    parser.add_argument("--num_gpus", type=int, default=1, metavar="N")
    args = parser.parse_args()

    arch = Architecture.from_katib(args.architecture)
    nn_config = katib_json(args.nn_config)
    print(">>> arch received by trial")
    print(json.dumps(arch.to_katib()))
    print(">>> nn_config received by trial")
    print(json.dumps(nn_config))
    print(">>> num_epochs received by trial")
    print(args.num_epochs)

    space, local_arch = space_for(arch, nn_config)
    h, w, c = space.input_sizes
    if space.output_sizes[-1] != 10:
        sys.exit(f"outputSizes must end with 10 (the digits' classes); got {space.output_sizes}")
    limit = os.environ.get("NAS_DIGITS_LIMIT")
    seed = int(os.environ.get("NAS_SEED", "0"))
    data = fit_images(
        nas.load_digits_data(seed=seed, limit=int(limit) if limit else None), h, w, c
    )
    use_gpu = args.num_gpus >= 1 and torch.cuda.is_available()
    device = torch.device("cuda" if use_gpu else "cpu")
    torch.manual_seed(seed)
    model = nas.build_model(space, local_arch)
    print(
        f">>> Model Constructed Successfully ({sum(p.numel() for p in model.parameters())} "
        f"parameters, {device})\n"
    )
    acc = nas.train_network(
        model,
        data,
        epochs=args.num_epochs,
        seed=seed,
        device=device,
        report=False,  # metrics go to stdout, as Katib's trial prints them
        log=EpochLines(),
    )
    import automl

    if automl.current_trial() is not None:  # the architecture as data, kept with the trial
        nas.record_result(model.describe(), validation_accuracy=acc)
        automl.log_outputs(architecture=arch.to_dict())


if __name__ == "__main__":
    main()
