"""A local stand-in for Katib's ``pytorch-mnist`` trial image (``/opt/pytorch-mnist/mnist.py``).

Same command-line flags as Katib's ``examples/v1beta1/trial-images/pytorch-mnist/mnist.py`` and the
same metric output, so Katib's example Experiments run unchanged with
``--path-map /opt/pytorch-mnist=examples/katib/pytorch-mnist``:

* training progress is logged (to stderr, which the StdOut collector reads, or to ``--log-path``)
  as ``Train Epoch: 1 [0/5752 (0%)]<TAB>loss=2.3012`` every ``--log-interval`` batches;
* after each epoch the test metrics are logged as
  ``{metricName: accuracy, metricValue: 0.9111};{metricName: loss, metricValue: 0.3120}``
  (the File collector's TEXT filter in ``file-metrics-collector.yaml``);
* with ``--logger=hypertune`` the test metrics are also appended to ``--log-path`` (or
  ``$CLOUD_ML_HP_METRIC_FILE``) as cloudml-hypertune JSON lines, values as strings:
  ``{"timestamp": 1700000000.0, "trial": "0", "loss": "0.312", "global_step": "1", ...}``.

The difference: it trains a small CNN on scikit-learn's bundled 8x8 digits (1797 images, no
download) instead of Fashion-MNIST, so a one-epoch trial takes a second or two on a CPU.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

WORLD_SIZE = int(os.environ.get("WORLD_SIZE", 1))
TEST_FRACTION = 0.2
#: One epoch is this many passes over the 1437 training digits (about 5.7k images), so a
#: one-epoch trial, as in Katib's examples, learns enough to tell hyperparameters apart.
PASSES_PER_EPOCH = 4
DIGITS_MEAN, DIGITS_STD = 0.305, 0.382


class Net(nn.Module):
    """One 3x3 convolution and two dense layers for 1x8x8 images."""

    def __init__(self, dropout_rate: float = 0.5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1, padding=1)
        self.fc1 = nn.Linear(4 * 4 * 32, 128)
        self.dropout = nn.Dropout(dropout_rate)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)  # 8x8 -> 4x4
        x = x.view(-1, 4 * 4 * 32)
        x = self.dropout(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits images (N, 1, 8, 8) in [0, 1] and labels, read from scikit-learn's data file.

    Reading the bundled CSV directly skips importing scikit-learn (seconds per trial).
    """
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        csv = Path(loc) / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            with gzip.open(csv, "rt") as fh:
                data = np.loadtxt(fh, delimiter=",", dtype=np.float32)
            x, y = data[:, :-1], data[:, -1].astype(np.int64)
            break
    else:  # pragma: no cover - a scikit-learn with another layout
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    x = (x / 16.0 - DIGITS_MEAN) / DIGITS_STD  # like torchvision.transforms.Normalize
    return x.reshape(-1, 1, 8, 8), y


class HyperTune:
    """Writes metrics as cloudml-hypertune's ``HyperTune`` does (JSON lines, string values)."""

    def __init__(self) -> None:
        self.trial_id = os.environ.get("CLOUD_ML_TRIAL_ID", "0")
        self.path = os.environ.get("CLOUD_ML_HP_METRIC_FILE", "/tmp/hypertune/output.metrics")

    def report_hyperparameter_tuning_metric(
        self, hyperparameter_metric_tag: str, metric_value: float, global_step: int | None = None
    ) -> None:
        body = {
            "timestamp": time.time(),
            "trial": str(self.trial_id),
            hyperparameter_metric_tag or "training/hptuning/metric": str(float(metric_value)),
            "global_step": str(int(global_step) if global_step else 0),
            "checkpoint_path": "",
        }
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(body) + "\n")


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            done, total = batch_idx * len(data), len(train_loader.dataset)
            pct = 100.0 * batch_idx / len(train_loader)
            msg = f"Train Epoch: {epoch} [{done}/{total} ({pct:.0f}%)]\tloss={loss.item():.4f}"
            logging.info(msg)


def test(args, model, device, test_loader, epoch, hpt):
    model.eval()
    test_loss = 0.0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.max(1, keepdim=True)[1]
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)
    test_accuracy = float(correct) / len(test_loader.dataset)

    logging.info(
        f"{{metricName: accuracy, metricValue: {test_accuracy:.4f}}};"
        f"{{metricName: loss, metricValue: {test_loss:.4f}}}\n"
    )

    if args.logger == "hypertune":
        hpt.report_hyperparameter_tuning_metric(
            hyperparameter_metric_tag="loss", metric_value=test_loss, global_step=epoch
        )
        hpt.report_hyperparameter_tuning_metric(
            hyperparameter_metric_tag="accuracy", metric_value=test_accuracy, global_step=epoch
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="PyTorch MNIST Example (local digits stand-in)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        metavar="N",
        help="input batch size for training (default: 64)",
    )
    parser.add_argument(
        "--test-batch-size",
        type=int,
        default=1000,
        metavar="N",
        help="input batch size for testing (default: 1000)",
    )
    parser.add_argument(
        "--epochs", type=int, default=10, metavar="N", help="number of epochs (default: 10)"
    )
    parser.add_argument(
        "--lr", type=float, default=0.01, metavar="LR", help="learning rate (default: 0.01)"
    )
    parser.add_argument(
        "--momentum", type=float, default=0.5, metavar="M", help="SGD momentum (default: 0.5)"
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        metavar="WD",
        help="SGD weight decay (default: 0; Katib's image accepts it and does not apply it)",
    )
    parser.add_argument(
        "--dropout-rate",
        type=float,
        default=0.5,
        metavar="DR",
        help="dropout rate before the last layer (default: 0.5)",
    )
    parser.add_argument(
        "--no-cuda", action="store_true", default=False, help="disables CUDA training"
    )
    parser.add_argument(
        "--seed", type=int, default=1, metavar="S", help="random seed (default: 1)"
    )
    parser.add_argument(
        "--log-interval",
        type=int,
        default=10,
        metavar="N",
        help="how many batches to wait before logging training status",
    )
    parser.add_argument(
        "--log-path",
        type=str,
        default="",
        help="Path to save logs. Print to StdOut if log-path is not set",
    )
    parser.add_argument(
        "--save-model",
        action="store_true",
        default=False,
        help="save the model as mnist_cnn.pt (in $AUTOML_TRIAL_DIR when set)",
    )
    parser.add_argument(
        "--logger",
        type=str,
        choices=["standard", "hypertune"],
        help="Logger",
        default="standard",
    )
    parser.add_argument(
        "--backend",
        type=str,
        choices=["gloo", "nccl", "mpi"],
        default="gloo",
        help="Distributed backend (accepted; this stand-in trains in one process)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    # Katib's time stamp format (%Y-%m-%dT%H:%M:%SZ), here really in UTC.
    # If log_path is empty log to the console, otherwise to the file.
    logging.Formatter.converter = time.gmtime
    fmt = {"format": "%(asctime)s %(levelname)-8s %(message)s", "datefmt": "%Y-%m-%dT%H:%M:%SZ"}
    if args.log_path == "" or args.logger == "hypertune":
        logging.basicConfig(level=logging.DEBUG, **fmt)
    else:
        Path(args.log_path).parent.mkdir(parents=True, exist_ok=True)
        logging.basicConfig(level=logging.DEBUG, filename=args.log_path, **fmt)

    if args.logger == "hypertune" and args.log_path != "":
        os.environ["CLOUD_ML_HP_METRIC_FILE"] = args.log_path
    hpt = HyperTune()

    use_cuda = not args.no_cuda and torch.cuda.is_available()
    if use_cuda:
        print("Using CUDA")
    if WORLD_SIZE > 1:
        print(f"WORLD_SIZE={WORLD_SIZE}: this local stand-in trains in one process")

    if "OMP_NUM_THREADS" not in os.environ:
        # The model is tiny: one thread is as fast, and parallel trials do not fight for cores.
        torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if use_cuda else "cpu")

    x, y = load_digits_arrays()
    order = np.random.default_rng(0).permutation(len(y))  # one fixed split for every trial
    n_test = int(len(y) * TEST_FRACTION)
    test_idx, train_idx = order[:n_test], order[n_test:]
    train_idx = np.tile(train_idx, PASSES_PER_EPOCH)
    train_set = TensorDataset(torch.from_numpy(x[train_idx]), torch.from_numpy(y[train_idx]))
    test_set = TensorDataset(torch.from_numpy(x[test_idx]), torch.from_numpy(y[test_idx]))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=args.test_batch_size, shuffle=False)

    model = Net(args.dropout_rate).to(device)
    optimizer = optim.SGD(
        model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
    )

    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(args, model, device, test_loader, epoch, hpt)

    if args.save_model:
        out = Path(os.environ.get("AUTOML_TRIAL_DIR", ".")) / "mnist_cnn.pt"
        torch.save(model.state_dict(), out)


if __name__ == "__main__":
    main()
