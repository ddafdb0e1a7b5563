"""Parallel efficiency of the executors, side by side in one run.

32 command trials of a Python script that imports ``--imports`` (default: sklearn and torch,
what real trials pay on every cold start), prints its first line, and sleeps 0.5 s; 8 at a time
(parallelTrialCount 8), random search, the SQLite store:
  (a) local processes, cold: a new interpreter per trial
  (a'') local processes, warm: forked from a server with ``--imports`` preloaded
        (``trial.warm.preload``, trials/_warm.py)
  (a') a ``/bin/sh`` sleep instead of Python: without the interpreter's start-up, what remains
      is automl's own cost
  (b) Ray (RayExecutor on a local cluster started here; the one-off cluster start and the
      start of the job's worker processes and the hub actor are timed and printed, not counted;
      what a fresh worker does before its first trial is counted: "1st wave")
  (b') Ray, warm: the same with ``trial.warm.preload``: each Ray worker keeps a fork server with
      the imports done, and its later trials are forked from it (trials/_ray_warm.py)

Then, locally, where a warm trial's own time goes, one trial at a time (median of 12): the request
to the server's answer and to the script's first line, its last line to its exit status, and that
to the executor seeing its supervisor's exit.

ideal = ceil(32 / 8) * 0.5 s = 2 s; efficiency = ideal / wall. "start s" is the mean time from a
trial's start (as the controller stored it) to its first line, after its imports.

Run: python benchmarks/parallel.py [--trials 32] [--parallel 8] [--sleep 0.5] [--skip-ray]
    [--skip-local] [--imports sklearn,torch] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1 only

import yaml

from automl import Client

TRIAL = """
import sys, time
for name in sys.argv[3].split(","):
    if name:
        __import__(name)
print(f"first_line={time.time()}", flush=True)
time.sleep(float(sys.argv[2]))
print(f"loss={sys.argv[1]}", flush=True)
"""


def spec(
    name: str,
    trials: int,
    parallel: int,
    sleep: float,
    executor: str,
    shell: bool = False,
    script: Path | None = None,
    imports: str = "",
    warm: bool = False,
) -> dict[str, object]:
    code = f"import time; time.sleep({sleep}); print('loss=' + str({{x}}))"
    command = [sys.executable, "-c", code.replace("{x}", "${x}")]
    if script is not None:
        command = [sys.executable, str(script), "${x}", str(sleep), imports or ","]
    if shell:  # no interpreter start: what is left is the executor's own cost (x is $1, not code)
        command = ["/bin/sh", "-c", f'sleep {sleep}; echo "loss=$1"', "sh", "${x}"]
    trial: dict[str, object] = {"command": command}
    if warm:
        trial["warm"] = {"preload": [m for m in imports.split(",") if m]}
    return {
        "name": name,
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "seed": 0,
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": trials, "parallel": parallel},
        "trial": trial,
        "executor": executor,
    }


@dataclass(frozen=True)
class Result:
    wall: float  # client.run, start to return
    done: int  # trials that succeeded
    trial_s: float  # mean trial time, started -> finished as the store saw it
    first_s: float  # the same, of the first wave (``parallel`` trials): fresh workers
    later_s: float  # the same, of the trials after it: warm workers
    gap_s: float  # mean time from a trial's end to the start of the one taking its slot
    edges_s: float  # wall outside the trials: before the first start and after the last end
    start_s: float  # mean time from a trial's stored start to its first line (after imports)


def run(tmp: Path, name: str, doc: dict[str, object], parallel: int) -> Result:
    f = tmp / f"{name}.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    client = Client(f"sqlite:///{tmp / 'store.db'}", runs_dir=tmp / "runs")
    t0 = time.time()
    t = time.perf_counter()
    client.run(f)
    wall = time.perf_counter() - t
    trials = client.trials(name)
    client.close()
    firsts = []
    for tr in trials:
        log = tmp / "runs" / name / tr.id / "trial.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        at = [float(w.split("=", 1)[1]) for w in text.split() if w.startswith("first_line=")]
        if at and tr.started_at:
            firsts.append(at[0] - tr.started_at)
    starts = sorted(tr.started_at or 0.0 for tr in trials)
    ends = sorted(tr.finished_at or 0.0 for tr in trials)
    gaps = [starts[i] - ends[i - parallel] for i in range(parallel, len(starts))]
    spans = [
        (tr.finished_at or 0.0) - (tr.started_at or 0.0)
        for tr in sorted(trials, key=lambda tr: tr.started_at or 0.0)
    ]
    return Result(
        wall,
        sum(1 for tr in trials if tr.state.value == "Succeeded"),
        statistics.mean(spans),
        statistics.mean(spans[:parallel]),
        statistics.mean(spans[parallel:]) if spans[parallel:] else 0.0,
        statistics.mean(gaps) if gaps else 0.0,
        (starts[0] - t0) + (wall - (ends[-1] - t0)),
        statistics.mean(firsts) if firsts else float("nan"),
    )


BREAKDOWN_TRIAL = (
    "import time\nprint('first', time.time(), flush=True)\nprint('last', time.time())\n"
)


def warm_breakdown(preload: list[str], rounds: int, tmp: Path) -> dict[str, float]:
    """Where a warm trial's own time goes, one trial at a time on a warm server (ms, medians).

    ``spawn``: the request to the server's answer; ``start``: the request to the script's first
    line; ``end``: its last line to its ``exit_status``; ``seen``: that file to the moment a
    pidfd tells the executor the supervisor has exited.
    """
    import threading

    from trials._launch import python_command
    from trials._supervise import on_exit
    from trials._warm import WarmPool

    script = tmp / "breakdown.py"
    script.write_text(BREAKDOWN_TRIAL)
    pool = WarmPool(preload, 2)
    rows: list[tuple[float, float, float, float]] = []
    try:
        if not pool._start():
            raise SystemExit(f"warm server did not start: {pool.problem}")
        for i in range(rounds):
            workdir = tmp / f"breakdown-{i}"
            workdir.mkdir()
            seen: list[float] = []
            ended = threading.Event()

            def note(seen: list[float] = seen, ended: threading.Event = ended) -> None:
                seen.append(time.time())
                ended.set()

            t0 = time.time()
            pid = pool.spawn(python_command([sys.executable, str(script)]), {}, workdir, workdir)
            t1 = time.time()
            if pid is None or not on_exit(pid, note):
                note()  # already gone (or no pidfd): seen now
            ended.wait(30)
            words = (workdir / "trial.log").read_text().split()
            first, last = float(words[1]), float(words[3])
            status = os.stat(workdir / "exit_status").st_mtime
            rows.append((t1 - t0, first - t0, status - last, max(0.0, seen[0] - status)))
            time.sleep(0.2)  # one trial at a time: spares refilled, as between waves
    finally:
        pool.close()
    names = ("spawn", "start", "end", "seen")
    return {n: statistics.median(r[k] for r in rows) * 1000 for k, n in enumerate(names)}


def python_start(n: int) -> tuple[float, float]:
    """Seconds to start and end ``python -c pass``: alone, and n at once (wall of the batch)."""
    t = time.perf_counter()
    for _ in range(3):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    alone = (time.perf_counter() - t) / 3
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(n)]
    for p in procs:
        p.wait()
    return alone, time.perf_counter() - t


def start_ray(parallel: int) -> tuple[float, float]:
    import ray

    t = time.perf_counter()
    ray.init(
        num_cpus=parallel,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    started = time.perf_counter() - t

    @ray.remote(num_cpus=1)
    def warm() -> int:
        time.sleep(0.2)
        return os.getpid()

    from trials._ray import _shared_hub

    t = time.perf_counter()
    # the cluster's hub actor (one per cluster, a worker process of its own) first, then the
    # job's worker processes for the trials
    ray.get(_shared_hub(ray).poll.remote("warm-up", 0.0))
    ray.get([warm.remote() for _ in range(parallel)])
    return started, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--sleep", type=float, default=0.5)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-local", action="store_true", help="Ray only (its 'vs local' is 1)")
    ap.add_argument("--imports", default="sklearn,torch", help="modules each trial imports")
    ap.add_argument(
        "--quick", action="store_true", help="8 trials of 0.2 s, 4 at a time, no Ray, json only"
    )
    args = ap.parse_args()
    if args.quick:
        args.trials, args.parallel, args.sleep, args.imports = 8, 4, 0.2, "json"
        args.skip_ray = True
    ideal = math.ceil(args.trials / args.parallel) * args.sleep
    rows: list[tuple[str, Result]] = []
    breakdown = ""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        # one-off imports (optuna, sqlalchemy, the store schema) are not the executor's cost
        run(tmp, "warmup", spec("warmup", 1, 1, 0.0, "local"), 1)
        n, p, s = args.trials, args.parallel, args.sleep
        script = tmp / "trial.py"
        script.write_text(TRIAL)
        imp = args.imports
        if not args.skip_local:
            cold = spec("cold", n, p, s, "local", script=script, imports=imp)
            rows.append(("local, cold python", run(tmp, "cold", cold, p)))
            warm = spec("warm", n, p, s, "local", script=script, imports=imp, warm=True)
            rows.append(("local, warm python", run(tmp, "warm", warm, p)))
            rows.append(
                (
                    "local, /bin/sh trial",
                    run(tmp, "local-sh", spec("local-sh", n, p, s, "local", shell=True), p),
                )
            )
        if not args.skip_ray:
            started, warm = start_ray(p)
            print(
                f"ray: local cluster started in {started:.2f} s, {p} workers and the hub warmed "
                f"in {warm:.2f} s (one-off, not timed below)"
            )
            ray_spec = spec("ray", n, p, s, "ray", script=script, imports=imp)
            rows.append(("ray (local cluster)", run(tmp, "ray", ray_spec, p)))
            # A fresh cluster's workers have no fork servers yet: the first wave starts them.
            ray_warm = spec("ray-warm", n, p, s, "ray", script=script, imports=imp, warm=True)
            rows.append(("ray, warm python", run(tmp, "ray-warm", ray_warm, p)))
            import ray

            ray.shutdown()
        if not args.skip_local:
            preload = [m for m in imp.split(",") if m]
            b = warm_breakdown(preload, 3 if args.quick else 12, tmp)
            breakdown = (
                f"warm trial, one at a time (median ms): request -> server's answer "
                f"{b['spawn']:.1f}, -> first line {b['start']:.1f}; last line -> exit_status "
                f"{b['end']:.1f}; -> supervisor's exit seen {b['seen']:.1f}"
            )
    alone, batch = python_start(args.parallel)
    print(
        f"\n{args.trials} trials x {args.sleep:g} s sleep, {args.parallel} at a time, each "
        f"importing {args.imports or 'nothing'}; ideal {ideal:.2f} s; {os.cpu_count()} CPUs"
    )
    print(
        f"{'executor':<20} {'wall s':>7} {'efficiency':>10} {'warmed':>7} {'vs local':>9} "
        f"{'trial s':>8} "
        f"{'1st wave':>8} {'later':>6} {'gap s':>7} {'edges s':>8} {'start s':>8} {'ok':>4}"
    )
    base = rows[0][1].wall
    for name, r in rows:
        # What the first wave pays once (a warm server's imports, a Ray worker's first fork
        # server) taken out: the efficiency of the trials that follow.
        warmed = ideal / max(r.wall - max(0.0, r.first_s - r.later_s), ideal)
        print(
            f"{name:<20} {r.wall:>7.2f} {ideal / r.wall:>10.0%} {warmed:>7.0%} "
            f"{r.wall / base:>8.2f}x "
            f"{r.trial_s:>8.3f} {r.first_s:>8.3f} {r.later_s:>6.3f} {r.gap_s:>7.3f} "
            f"{r.edges_s:>8.3f} {r.start_s:>8.3f} {r.done:>4}"
        )
    print(
        f"\ntrial s: mean start->end of a {args.sleep:g} s trial as the store saw it (overhead = "
        f"trial s - {args.sleep:g}); 1st wave / later: the same for the first {args.parallel} "
        "trials (Ray: workers that have not run a trial yet) and for the rest; gap s: mean end "
        "-> next start in the same slot (controller latency); edges s: wall before the first "
        "start and after the last end; warmed: the efficiency once the one-off start-up is "
        "paid (wall less what the 1st wave's trials took beyond the later ones: a warm "
        "server's imports, a Ray worker's first fork server)"
    )
    print(
        f"python -c pass: {alone * 1000:.0f} ms alone, {batch * 1000:.0f} ms for "
        f"{args.parallel} at once (process start cost per wave)"
    )
    if breakdown:
        print(breakdown)


if __name__ == "__main__":
    main()
