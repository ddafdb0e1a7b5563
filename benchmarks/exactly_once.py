"""Exactly-once trials under controller kills: SIGKILL the controller at random moments, resume,
and count from a ledger the trials write themselves how often each parameter set completed.

Each experiment runs short trials (0.05-0.6 s) in parallel; the controller (``automl run``, then
``automl resume``, or a Python driver calling ``automl.tune(..., trial_processes=True)``) is
SIGKILLed ``--kills`` times at random moments, with a random pause before the next resume so
that some trials end while no controller runs. A final resume runs to the end. Counted:

- runs: experiments; kills: SIGKILLs that landed on a live controller;
- lost: stored trials with no completed execution in the ledger, or experiments not Succeeded;
- twice: parameter sets whose execution completed more than once;
- tracebacks: resumes that printed a Python traceback.

Usage::

    python benchmarks/exactly_once.py                      # 20 experiments x 2 kills, SQLite
    python benchmarks/exactly_once.py --store postgresql+psycopg://postgres@127.0.0.1/test
    python benchmarks/exactly_once.py --kind function --experiments 5
    python benchmarks/exactly_once.py --quick              # 1 experiment, what the suite runs
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

AUTOML = [sys.executable, "-m", "automl"]

TRIAL = """
import os, random, sys, time
x = sys.argv[1]
fd = os.open(os.environ["LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
os.write(fd, f"start {x} {os.getpid()}\\n".encode())
time.sleep(random.uniform(0.05, 0.6))
print(f"epoch=1 loss={float(x) ** 2}", flush=True)
os.write(fd, f"done {x}\\n".encode())
"""

OBJECTIVE = """
import os, random, time


def objective(x):
    fd = os.open(os.environ["LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"start {x!r} {os.getpid()}\\n".encode())
    time.sleep(random.uniform(0.05, 0.6))
    os.write(fd, f"done {x!r}\\n".encode())
    return x * x
"""

DRIVER = """
import sys
import automl
from eo_objective import objective

automl.tune(objective, {"x": automl.double(-1, 1)}, objective_metric="loss", algorithm="random",
            max_trials=int(sys.argv[3]), parallel_trials=3, seed=3, name=sys.argv[1],
            store=sys.argv[2], resume=True, runs_dir="runs", trial_processes=True)
"""


@dataclass
class Outcome:
    """What one experiment's rounds of kills and resumes did."""

    name: str
    kills: int = 0
    lost: int = 0
    twice: int = 0
    tracebacks: int = 0
    state: str = ""
    trials: int = 0
    notes: list[str] = field(default_factory=list)


def _ledger(path: Path) -> tuple[collections.Counter[str], collections.Counter[str]]:
    starts: collections.Counter[str] = collections.Counter()
    dones: collections.Counter[str] = collections.Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                (starts if parts[0] == "start" else dones)[parts[1]] += 1
    return starts, dones


def _controller(kind: str, work: Path, name: str, url: str, trials: int, first: bool) -> list[str]:
    if kind == "function":
        return [sys.executable, str(work / "driver.py"), name, url, str(trials)]
    if first:
        return [*AUTOML, "run", str(work / f"{name}.yaml"), "--store", url, "--no-progress",
                "--runs-dir", "runs"]  # fmt: skip
    return [*AUTOML, "resume", name, "--store", url, "--no-progress", "--runs-dir", "runs"]


def _done_count(ledger: Path) -> int:
    return sum(_ledger(ledger)[1].values())


def run_one(
    work: Path,
    name: str,
    url: str,
    *,
    kind: str,
    trials: int,
    kills: int,
    rng: random.Random,
    ray_address: str | None = None,
) -> Outcome:
    """One experiment: ``kills`` SIGKILLs of its controller at random moments, then to the end."""
    out = Outcome(name)
    ledger = work / f"{name}.ledger"
    doc = {
        "name": name,
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "seed": 3,
        "parameters": {"x": {"type": "double", "min": -1, "max": 1}},
        "budget": {"max_trials": trials, "parallel": 3},
        "trial": {"command": ["python", "trial.py", "${x}"], "env": {"LEDGER": str(ledger)}},
    }
    if ray_address:  # trials on an existing Ray cluster: the cluster's hub owns them
        doc["executor"] = {"kind": "ray", "address": ray_address}
    (work / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, "LEDGER": str(ledger), "PYTHONPATH": str(work)}
    for round_ in range(kills + 1):
        log = work / f"{name}.{round_}.out"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                _controller(kind, work, name, url, trials, round_ == 0),
                cwd=work,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if round_ < kills:
            # Kill once this round has seen a trial end (or started one), after a random delay.
            seen = _done_count(ledger)
            deadline = time.monotonic() + 120
            while (
                proc.poll() is None and _done_count(ledger) <= seen and time.monotonic() < deadline
            ):
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.8))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)  # the controller alone: trials run on
                out.kills += 1
            proc.wait(30)
            time.sleep(rng.uniform(0.0, 0.5))  # some trials end while no controller runs
        else:
            try:
                proc.wait(300)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out.notes.append("the final resume did not finish in 300 s")
        text = log.read_text(errors="replace")
        if "Traceback" in text:
            out.tracebacks += 1
            out.notes.append(text[-2000:])
    from automl.store import Store

    store = Store(url)
    try:
        exp = store.experiments.get(name)
        out.state = exp.state.value
        stored = store.trials.list(exp.id)
    finally:
        store.close()
    out.trials = len(stored)
    _, dones = _ledger(ledger)
    keys = {repr(t.params["x"]) if kind == "function" else _cli_key(t.params["x"]) for t in stored}
    out.twice = sum(1 for n in dones.values() if n > 1)
    out.lost = sum(1 for k in keys if dones[k] == 0) + (out.state != "Succeeded")
    out.lost += sum(1 for t in stored if t.state.value != "Succeeded")
    if len(stored) != trials:
        out.notes.append(f"{len(stored)} trials stored, {trials} expected")
        out.lost += abs(trials - len(stored))
    return out


def _cli_key(x: object) -> str:
    from trials import format_value

    return format_value(x)  # type: ignore[arg-type]


def run(
    url_base: str, *, kind: str, experiments: int, kills: int, trials: int, seed: int = 0
) -> list[Outcome]:
    """Run ``experiments`` experiments in a fresh directory; their outcomes."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="automl-eo-") as tmp:
        work = Path(tmp)
        (work / "trial.py").write_text(TRIAL)
        (work / "eo_objective.py").write_text(OBJECTIVE)
        (work / "driver.py").write_text(DRIVER)
        url = url_base or f"sqlite:///{work / 'store.db'}"
        tag = uuid.uuid4().hex[:6]  # a shared store may hold an earlier run's experiments
        return [
            run_one(
                work, f"eo-{kind}-{tag}-{i}", url, kind=kind, trials=trials, kills=kills, rng=rng
            )
            for i in range(experiments)
        ]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--store", default="", help="store URL (default: a fresh SQLite file)")
    ap.add_argument("--kind", choices=["command", "function"], default="command")
    ap.add_argument("--experiments", type=int, default=20)
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--quick", action="store_true", help="1 experiment of 9 trials, 2 kills")
    a = ap.parse_args()
    if a.quick:
        a.experiments, a.trials = 1, 9
    t0 = time.monotonic()
    outs = run(a.store, kind=a.kind, experiments=a.experiments, kills=a.kills, trials=a.trials)
    summary = {
        "store": a.store.split("@")[-1] if a.store else "sqlite",
        "kind": a.kind,
        "runs": len(outs),
        "kills": sum(o.kills for o in outs),
        "trials": sum(o.trials for o in outs),
        "lost": sum(o.lost for o in outs),
        "run twice": sum(o.twice for o in outs),
        "tracebacks": sum(o.tracebacks for o in outs),
        "not Succeeded": sum(o.state != "Succeeded" for o in outs),
        "seconds": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(summary))
    for o in outs:
        for n in o.notes:
            print(f"{o.name}: {n}", file=sys.stderr)


if __name__ == "__main__":
    main()
