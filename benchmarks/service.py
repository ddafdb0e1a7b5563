"""The service under load: submissions through REST, workers sharing PostgreSQL, one SIGKILLed.

    python benchmarks/service.py            # 200 experiments x 10 trials of 0.2 s, 3 workers
    python benchmarks/service.py --quick    # 6 x 3 trials of 1 s, lease 10 s, one experiment
                                            # per worker at a time: about a minute

Every experiment is submitted concurrently (16 threads) through ``POST /api/v1/experiments`` of
a real ``automl server``; three ``automl worker`` processes share one PostgreSQL database (a
fresh one, dropped afterwards). Once half the experiments have ended, the worker holding the
most running experiments is SIGKILLed (its controllers die with it; their trial processes go on).
Each trial appends its id to a ledger file when it starts, so a trial started twice shows up.

Reported: submission latency p50/p99, time from the first submission until every experiment
ended, trials run twice (from the ledger), experiments lost (not Succeeded), and the takeover
delay of each experiment the killed worker held (kill -> another worker holds it).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get(
    "AUTOML_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _spec(name: str, trials: int, sleep: float, ledger: Path) -> str:
    return f"""
name: {name}
objective: {{metric: loss, direction: minimize}}
algorithm: random
budget: {{max_trials: {trials}, parallel: 2}}
parameters:
  x: {{type: double, min: 0, max: 1}}
trial:
  command: [sh, -c, 'echo "$AUTOML_TRIAL_NAME" >> {ledger}; sleep {sleep}; echo loss=${{x}}']
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(
    experiments: int,
    trials: int,
    sleep: float,
    workers: int,
    lease: float,
    store: str | None,
    timeout: float,
    max_experiments: int = 4,
) -> dict[str, Any]:
    """Run the benchmark once; the report as a dict."""
    admin = None
    dbname = None
    if store is None:
        dbname = f"automl_bench_{secrets.token_hex(4)}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f"CREATE DATABASE {dbname}"))
        store = sa.make_url(PG_ADMIN).set(database=dbname).render_as_string(hide_password=False)
    work = Path(tempfile.mkdtemp(prefix="automl-bench-service-"))
    ledger = work / "ledger"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = _port()
        url = f"http://127.0.0.1:{port}"
        server_log = (work / "server.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "automl", "server", "--store", store, "--port", str(port)],
                cwd=work,
                env=env,
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )
        )
        end = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                raise SystemExit("the server did not start; see " + str(work / "server.log"))
            time.sleep(0.2)
        worker_procs = []
        for i in range(workers):
            log = (work / f"worker{i}.log").open("wb")
            p = subprocess.Popen(
                [
                    *(sys.executable, "-m", "automl", "worker", "--store", store),
                    *("--max-experiments", str(max_experiments), "--trial-slots", "8"),
                    *("--lease", str(lease)),
                    *("--runs-dir", "runs"),
                ],
                cwd=work,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            procs.append(p)
            worker_procs.append(p)
        engine = sa.create_engine(store)
        end = time.monotonic() + 120
        while True:  # submissions are measured with every worker up (not importing)
            with engine.connect() as c:
                up = c.execute(sa.text("SELECT count(*) FROM automl_workers")).scalar()
            if up == workers:
                break
            if time.monotonic() > end:
                raise SystemExit(f"only {up} of {workers} workers started; see {work}")
            time.sleep(0.2)
        names = [f"bench-{i:03d}" for i in range(experiments)]
        latencies: list[float] = []
        lock = threading.Lock()
        local = threading.local()

        def submit(name: str) -> None:
            http = getattr(local, "http", None)
            if http is None:
                http = local.http = httpx.Client(base_url=url, timeout=60)
            body = _spec(name, trials, sleep, ledger)
            t0 = time.perf_counter()
            r = http.post("/api/v1/experiments", content=body)
            dt = time.perf_counter() - t0
            if r.status_code != 201:
                raise RuntimeError(f"{name}: {r.status_code} {r.text}")
            with lock:
                latencies.append(dt)

        t_start = time.time()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(submit, names))
        t_submitted = time.time()

        def snapshot() -> list[Any]:
            with engine.connect() as c:
                return list(
                    c.execute(sa.text("SELECT name, state, worker FROM automl_experiments")).all()
                )

        def worker_pids() -> dict[str, int]:
            with engine.connect() as c:
                rows = c.execute(sa.text("SELECT id, pid FROM automl_workers")).all()
            return {r[0]: int(r[1]) for r in rows}

        terminal = {"Succeeded", "Failed", "Stopped"}
        killed: dict[str, Any] = {}
        taken: dict[str, float] = {}
        deadline = time.time() + timeout
        while time.time() < deadline:
            rows = snapshot()
            done = sum(r[1] in terminal for r in rows)
            # Before the exit test: the killed worker's experiments can be taken over and
            # finished between two snapshots, the last one included.
            if killed:
                for name, state, worker in rows:
                    if (
                        name in killed["held"]
                        and name not in taken
                        and (worker not in (None, killed["worker"]) or state in terminal)
                    ):
                        taken[name] = time.time() - killed["at"]
            if done == len(names):
                break
            if not killed and done >= len(names) // 2:
                held = Counter(r[2] for r in rows if r[1] not in terminal and r[2])
                pids = worker_pids()
                candidates = [(n, w) for w, n in held.items() if w in pids]
                if candidates:
                    _, victim = max(candidates)
                    os.kill(pids[victim], signal.SIGKILL)
                    killed = {
                        "worker": victim,
                        "at": time.time(),
                        "held": sorted(
                            r[0] for r in rows if r[2] == victim and r[1] not in terminal
                        ),
                    }
            time.sleep(0.2)
        t_end = time.time()
        rows = snapshot()
        states = Counter(r[1] for r in rows)
        runs = Counter(ledger.read_text().split()) if ledger.exists() else Counter()
        with engine.connect() as c:
            stored_trials = int(c.execute(sa.text("SELECT count(*) FROM automl_trials")).scalar())
            takeovers = int(
                c.execute(
                    sa.text("SELECT coalesce(sum(takeovers), 0) FROM automl_experiments")
                ).scalar()
            )
        engine.dispose()
        delays = [taken[n] for n in killed.get("held", []) if n in taken]
        return {
            "experiments": experiments,
            "trials_per_experiment": trials,
            "trial_seconds": sleep,
            "workers": workers,
            "lease_s": lease,
            "max_experiments_per_worker": max_experiments,
            "submit_p50_ms": round(_pct(latencies, 0.5) * 1000, 1),
            "submit_p99_ms": round(_pct(latencies, 0.99) * 1000, 1),
            "submit_all_s": round(t_submitted - t_start, 2),
            "total_s": round(t_end - t_start, 1),
            "states": dict(states),
            "experiments_lost": experiments - states.get("Succeeded", 0),
            "trials_stored": stored_trials,
            "trials_started": sum(runs.values()),
            "trials_run_twice": sum(n - 1 for n in runs.values() if n > 1),
            "killed_worker_held": len(killed.get("held", [])),
            "taken_over": len(delays),
            "takeovers_recorded": takeovers,
            "takeover_delay_max_s": round(max(delays), 1) if delays else None,
            "takeover_delay_median_s": round(statistics.median(delays), 1) if delays else None,
            "workdir": str(work),
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(40)
            except subprocess.TimeoutExpired:
                p.kill()
        if admin is not None:
            with admin.connect() as c:
                c.execute(sa.text(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"))
            admin.dispose()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, run, print the report as a table and as JSON."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="6 experiments x 3 trials of 1 s, lease 10 s"
    )
    ap.add_argument("--experiments", type=int, default=200)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--sleep", type=float, default=0.2)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--lease", type=float, default=30.0)
    ap.add_argument("--max-experiments", type=int, default=4, help="per worker")
    ap.add_argument("--store", default=None, help="store URL (default: a fresh PostgreSQL db)")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--json", dest="as_json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.experiments, args.trials, args.sleep, args.lease = 6, 3, 1.0, 10.0
        args.timeout, args.max_experiments = 300.0, 1  # two waves: the kill lands in the second
    report = run(
        args.experiments,
        args.trials,
        args.sleep,
        args.workers,
        args.lease,
        args.store,
        args.timeout,
        args.max_experiments,
    )
    if args.as_json:
        print(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            print(f"{k:28} {v}")
    return report


if __name__ == "__main__":
    main()
