"""A local stand-in for Katib's ``tf-mnist-with-summaries`` trial image.

Katib's TFJob example (``kubeflow-training-operator/tfjob-mnist-with-summaries.yaml``) runs
``python /opt/tf-mnist-with-summaries/mnist.py --epochs=1 --learning-rate=... --batch-size=...
--log-path=/mnist-with-summaries-logs`` and reads, with the TensorFlowEvent collector, the
scalar summaries its TensorFlow script writes to ``<log-path>/test`` (``accuracy``, ``loss``;
the training ones go to ``<log-path>/train``). This script takes the same flags and writes the
same TensorFlow event files with ``torch.utils.tensorboard`` (``pip install tensorboard``), from
a small dense network trained on scikit-learn's bundled 8x8 digits (offline, a few seconds).

Run by automl, a trial's collector directory is its own (``AUTOML_METRICS_PATH``, which stands
for ``<log-path>/test`` as each Katib pod has its own ``/mnist-with-summaries-logs``): the
summaries go there and to its sibling ``train``, so parallel trials never share event files
and nothing is written at ``/mnist-with-summaries-logs`` on the host.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.tensorboard import SummaryWriter


def log_dirs(log_path: str) -> tuple[Path, Path]:
    """Where the train and test summaries go (see the module docstring)."""
    given = os.environ.get("AUTOML_METRICS_PATH")
    test = Path(given) if given else Path(log_path) / "test"
    return test.parent / "train", test


def main() -> None:
    p = argparse.ArgumentParser(description="MNIST with summaries (local stand-in)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--log-path", default="/tmp/mnist-with-summaries-logs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=args.seed)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    xe, ye = torch.from_numpy(x_te), torch.from_numpy(y_te)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    train_dir, test_dir = log_dirs(args.log_path)
    train_writer, test_writer = SummaryWriter(str(train_dir)), SummaryWriter(str(test_dir))
    passes = 10  # an "epoch" is ten passes over the 1437 training digits
    for epoch in range(1, args.epochs + 1):
        model.train()
        for _ in range(passes):
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), args.batch_size):
                idx = perm[i : i + args.batch_size]
                opt.zero_grad()
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
        train_writer.add_scalar("loss", loss.item(), epoch)
        model.eval()
        with torch.no_grad():
            out = model(xe)
            test_loss = loss_fn(out, ye).item()
            accuracy = (out.argmax(1) == ye).float().mean().item()
        test_writer.add_scalar("accuracy", accuracy, epoch)
        test_writer.add_scalar("loss", test_loss, epoch)
        print(f"Epoch {epoch}: loss {test_loss:.4f}, accuracy {accuracy:.4f}", flush=True)
    train_writer.close()
    test_writer.close()


if __name__ == "__main__":
    main()
