"""Data-parallel training of a small MLP on scikit-learn's 8x8 digits, one process per rank.

Run by torchrun (automl does it for a trial with ``processes_per_worker: 2``)::

    python -m torch.distributed.run --nproc-per-node 2 train.py --lr 0.05 --epochs 5

Each rank trains on its shard of the data (DistributedSampler); DistributedDataParallel averages
the gradients, so every rank holds the same model. Rank 0 evaluates it after each epoch and
reports ``accuracy`` to automl (``automl.report`` and a stdout line ``epoch=N accuracy=...``).
Gloo runs on CPU; NCCL when CUDA is available (local rank ``i`` uses visible device ``i``).
Without torchrun it trains as a single process.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import automl


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    distributed = "RANK" in os.environ
    cuda = torch.cuda.is_available()
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.manual_seed(args.seed)  # the same initial weights on every rank

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x / 16.0, y, test_size=0.25, random_state=0, stratify=y
    )
    train = TensorDataset(
        torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train, dtype=torch.long)
    )
    sampler = DistributedSampler(train, world, rank, shuffle=True, seed=args.seed)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler)
    test_x = torch.tensor(x_test, dtype=torch.float32, device=device)
    test_y = torch.tensor(y_test, dtype=torch.long, device=device)

    model: nn.Module = nn.Sequential(
        nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10)
    ).to(device)
    if distributed:
        model = DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    loss_fn = nn.CrossEntropyLoss()
    if rank == 0:
        print(f"world_size={world} backend={'nccl' if cuda else 'gloo'}", flush=True)

    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)
        model.train()
        started = time.perf_counter()
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb.to(device)), yb.to(device))
            loss.backward()  # DDP all-reduces the gradients here
            opt.step()
        if rank == 0:
            model.eval()
            with torch.no_grad():
                accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
            automl.report(step=epoch, accuracy=accuracy)
            print(
                f"epoch={epoch} accuracy={accuracy:.4f} loss={loss.item():.4f} "
                f"epoch_seconds={time.perf_counter() - started:.3f}",
                flush=True,
            )
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
