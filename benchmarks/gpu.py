"""The GPU checks of the scale-out and NAS issues, as one prepared script for a GPU machine.

1. 8 trials of a small torch CNN on one GPU: 4 at a time at ``gpu: 0.25`` (packed onto one
   device) against 1 at a time at ``gpu: 1``; trials per minute for each.
2. One 2-process torchrun trial (examples/torch-ddp, 2 epochs; gloo on the CPU, since two NCCL
   ranks cannot share the one device).
3. DARTS epochs per second on the GPU against the CPU (the same tiny search).
4. Warm against cold starts of the same 8 CNN trials (4 at a time at ``gpu: 0.25``): a new
   interpreter per trial, against ``trial.warm.preload: [torch, sklearn]`` (trials forked from a
   server with the imports done; CUDA is initialised in each trial, never in the server). For
   each: trials per minute, and the mean time from a trial's start to its first report (its
   imports, CUDA's initialisation and one epoch).

Run on the GPU machine: ``python benchmarks/gpu.py`` (prints a table; ``--json FILE`` too).
``python benchmarks/gpu.py --simulate`` runs the same flow here on the CPU with simulated devices
(``AUTOML_GPUS``), to check the script itself; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRAINER = textwrap.dedent(
    """
    import sys, time
    import torch
    from torch import nn
    from sklearn.datasets import load_digits
    import automl

    lr, epochs, width = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    x = nn.functional.interpolate(x, size=32).to(device)  # 32x32 so the GPU has work to do
    y = torch.tensor(y).to(device)
    model = nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * 64, 10),
    ).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    n = len(x) * 4 // 5
    for epoch in range(epochs):
        for i in range(0, n, 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
        with torch.no_grad():
            acc = (model(x[n:]).argmax(1) == y[n:]).float().mean().item()
        automl.report(step=epoch + 1, accuracy=acc)
    print(f"device={device} visible={torch.cuda.device_count()}")
    """
)


def cnn_experiment(
    tmp: Path, name: str, gpu: float, parallel: int, epochs: int, warm: bool = False
) -> tuple[float, float]:
    """Run 8 CNN trials; return trials per minute and the mean seconds to a first report."""
    import yaml

    from automl import Client

    (tmp / "cnn.py").write_text(TRAINER)
    doc = {
        "name": name,
        "objective": {"metric": "accuracy", "direction": "maximize"},
        "algorithm": "random",
        "seed": 0,
        "parameters": {
            "lr": {"type": "double", "min": 0.01, "max": 0.1, "log": True},
            "width": {"type": "categorical", "values": [32, 64]},
        },
        "budget": {"max_trials": 8, "parallel": parallel},
        "trial": {
            "command": ["python", "cnn.py", "${lr}", str(epochs), "${width}"],
            "workdir": str(tmp),
            "resources": {"gpu": gpu},
            **({"warm": {"preload": ["torch", "sklearn"]}} if warm else {}),
        },
        "metrics": {"collector": "push"},
    }
    f = tmp / f"{name}.yaml"
    f.write_text(yaml.safe_dump(doc))
    with Client(f"sqlite:///{tmp / 'gpu.db'}", runs_dir=tmp / "runs") as client:
        t = time.perf_counter()
        client.run(f)
        wall = time.perf_counter() - t
        done = [tr for tr in client.trials(name) if tr.state.value == "Succeeded"]
        if len(done) != 8:
            raise SystemExit(f"{name}: only {len(done)} of 8 trials succeeded ({tmp / 'runs'})")
        seen: dict[str, float] = {}
        for o in client.observations(name):
            seen[o.trial_id] = min(o.time, seen.get(o.trial_id, o.time))
        first = [seen[tr.id] - (tr.started_at or 0.0) for tr in done]
    return 8 / wall * 60, sum(first) / len(first)


def torchrun_trial(tmp: Path) -> float:
    """One 2-process DDP trial of examples/torch-ddp; returns its wall seconds."""
    import yaml

    from automl import Client

    doc = yaml.safe_load((ROOT / "examples" / "torch-ddp" / "experiment.yaml").read_text())
    doc["name"] = "gpu-check-ddp"
    doc["budget"] = {"max_trials": 1, "parallel": 1}
    doc["trial"]["command"] = [
        "2" if a == "5" else a
        for a in doc["trial"]["command"]  # 2 epochs, not 5
    ]
    doc["trial"]["workdir"] = str(ROOT / "examples" / "torch-ddp")
    # Two NCCL ranks cannot share the one device: this trial trains on the CPU with gloo.
    doc["trial"]["env"] = {"CUDA_VISIBLE_DEVICES": ""}
    f = tmp / "ddp.yaml"
    f.write_text(yaml.safe_dump(doc))
    with Client(f"sqlite:///{tmp / 'gpu.db'}", runs_dir=tmp / "runs") as client:
        t = time.perf_counter()
        client.run(f)
        wall = time.perf_counter() - t
        (trial,) = client.trials("gpu-check-ddp")
    if trial.state.value != "Succeeded":
        raise SystemExit(f"torchrun trial ended {trial.state.value}: {trial.message}")
    return wall


def darts_epochs_per_second(device: str, epochs: int) -> float:
    import torch

    from nas import DartsSettings, darts_search, load_digits_data

    data = load_digits_data(seed=0, limit=600)
    settings = DartsSettings.from_settings(
        {"num_epochs": str(epochs), "batch_size": "64", "init_channels": "8", "num_nodes": "3"}
    )
    torch.manual_seed(0)
    t = time.perf_counter()
    darts_search(data, settings, num_layers=3, device=device, report=False, log=None)
    return epochs / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulate", action="store_true", help="CPU run with simulated devices")
    ap.add_argument("--epochs", type=int, default=5, help="epochs per CNN trial")
    ap.add_argument("--darts-epochs", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    if args.simulate:
        os.environ["AUTOML_GPUS"] = "1x80Gi"
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible; use --simulate to check the script on a CPU")
    out: dict[str, Any] = {
        "device": "simulated" if args.simulate else torch.cuda.get_device_name(0),
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rate, first = cnn_experiment(tmp, "quarter", 0.25, 4, args.epochs)
        out["cnn_trials_per_min_4_at_0.25"], out["cnn_first_report_s_cold"] = rate, first
        out["cnn_trials_per_min_1_at_1"] = cnn_experiment(tmp, "whole", 1, 1, args.epochs)[0]
        rate, first = cnn_experiment(tmp, "warm", 0.25, 4, args.epochs, warm=True)
        out["cnn_trials_per_min_warm"], out["cnn_first_report_s_warm"] = rate, first
        out["torchrun_2proc_trial_s"] = torchrun_trial(tmp)
    gpu = "cpu" if args.simulate else "cuda"
    out["darts_epochs_per_s_gpu"] = darts_epochs_per_second(gpu, args.darts_epochs)
    out["darts_epochs_per_s_cpu"] = darts_epochs_per_second("cpu", args.darts_epochs)
    for k, v in out.items():
        print(f"{k:<32} {v:.3f}" if isinstance(v, float) else f"{k:<32} {v}")
    speedup = out["cnn_trials_per_min_4_at_0.25"] / out["cnn_trials_per_min_1_at_1"]
    print(f"{'packing speed-up (4 x 0.25 / 1 x 1)':<32} {speedup:.2f}x")
    warm = out["cnn_trials_per_min_warm"] / out["cnn_trials_per_min_4_at_0.25"]
    print(f"{'warm start speed-up (4 x 0.25)':<32} {warm:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
