"""One claimed experiment, run by a worker's child process through the public resume path.

``python -m automl.service._job --store URL --worker ID NAME`` does what ``automl resume NAME``
does (:meth:`automl.Client.prepare_resume`, then :func:`automl._runner.run_experiment`), so a
takeover gets whatever the resume path does with the trials a dead controller left behind. The
worker starts it with ``PR_SET_PDEATHSIG``: the child dies with its worker, as on a lost machine.

Exit codes: 0 the experiment ended (or is no longer this worker's), 3 another live controller
runs it, 4 interrupted (SIGTERM: it went back to the queue), 1 the controller failed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

EXIT_BUSY = 3
EXIT_REQUEUED = 4


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run one experiment for a worker; see the module docstring for the exit codes."""
    parser = argparse.ArgumentParser(prog="automl-job")
    parser.add_argument("name")
    parser.add_argument("--store", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--runs-dir", default="automl-runs")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)

    from automl._client import Client
    from automl._runner import run_experiment
    from automl.errors import ExperimentBusyError
    from automl.store._queue import QueueRepository

    client = Client(args.store, runs_dir=args.runs_dir)
    store = client.store
    queue = QueueRepository(store)
    exp = client.get(args.name)
    if not queue.holds(args.worker, exp.id) or exp.state.is_terminal:
        return 0  # stopped or taken by someone else between the claim and this start
    try:
        exp = client.prepare_resume(args.name)
        # keep_stop: a stop sent after the claim, before the controller's lease, still stops it.
        run_experiment(store, exp, runs_dir=args.runs_dir, keep_stop=True)
    except ExperimentBusyError as exc:
        if client.get(args.name).state.is_terminal:
            return 0  # stopped between the claim and the controller's lease: nothing to run
        print(f"automl worker: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except KeyboardInterrupt:
        # The controller killed its trials and marked the experiment interrupted: queue it again.
        queue.enqueue(exp.id)
        store.experiments.update(
            exp.id, message=f"interrupted by its worker's shutdown at {time.ctime()}; re-queued"
        )
        return EXIT_REQUEUED
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
