"""The service commands: ``automl server``, ``automl worker``, ``automl submit``.

Also the remote halves of ``automl run --server`` and ``automl resume --server``: the experiment
goes to the server's queue, a worker runs it, and the command follows it to its end.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from automl._cli_common import (
    DEFAULT,
    JsonOpt,
    ServerOpt,
    StoreOpt,
    _client,
    _errors,
    console,
    dumps_json,
    err,
)
from automl.errors import AutoMLError, SpecError

__all__ = ["register", "resume_remote", "run_remote"]

LeaseOpt = Annotated[
    float,
    typer.Option(
        help="Seconds without renewal after which a worker's experiments are taken over."
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``server``, ``worker`` and ``submit`` to the ``automl`` command."""
    app.command()(server)
    app.command()(worker)
    app.command()(submit)


def server(
    store: StoreOpt = DEFAULT,
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind; anything but loopback needs --tokens (or AUTOML_TOKENS)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8080,
    tokens: Annotated[
        Path | None,
        typer.Option(
            "--tokens",
            help="File of bearer tokens, one 'TOKEN [ro|rw]' per line (default ro); "
            "or AUTOML_TOKENS='tok1:rw,tok2'.",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Also start this many controller workers on the same store.")
    ] = 0,
    max_experiments: Annotated[
        int, typer.Option(help="Experiments each started worker runs at once.")
    ] = 4,
    runs_dir: Annotated[
        str, typer.Option(help="Where trials write logs and outputs.")
    ] = "automl-runs",
    lease: LeaseOpt = 30.0,
    max_body: Annotated[int, typer.Option(help="Largest request body in bytes.")] = 1 << 20,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs); optionally with local workers."""
    from automl.service._auth import is_loopback, load_tokens

    with _errors():
        accepted = load_tokens(tokens)
        if accepted is None and not is_loopback(host):
            raise SpecError(
                f"binding {host} exposes the service beyond this machine; configure bearer "
                "tokens with --tokens FILE or AUTOML_TOKENS (write access runs commands on the "
                "workers' machines)",
                path="--host",
            )
        try:
            import uvicorn

            from automl.service._app import create_app
        except ModuleNotFoundError as exc:
            raise AutoMLError(
                f"automl server needs {exc.name}: pip install 'automl[serve]'"
            ) from None
        app = create_app(store, tokens=accepted, max_body=max_body, runs_dir=runs_dir)
    children: list[subprocess.Popen[bytes]] = []
    for _ in range(workers):
        argv = [sys.executable, "-m", "automl", "worker", "--store", store]
        argv += ["--max-experiments", str(max_experiments), "--runs-dir", runs_dir]
        argv += ["--lease", str(lease)]
        children.append(subprocess.Popen(argv))
    auth = "bearer tokens" if accepted else "no authentication (loopback only)"
    err.print(
        f"automl server on http://{host}:{port} (docs /docs), store {escape(store)}, {auth}"
        + (f", {workers} workers" if workers else ""),
        highlight=False,
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(35)


def worker(
    store: StoreOpt = DEFAULT,
    max_experiments: Annotated[int, typer.Option(help="Experiments run at once.")] = 4,
    trial_slots: Annotated[
        int | None,
        typer.Option(help="Local trial slots shared by the experiments (default: CPU count)."),
    ] = None,
    runs_dir: Annotated[
        str, typer.Option(help="Where trials write logs and outputs.")
    ] = "automl-runs",
    lease: LeaseOpt = 30.0,
) -> None:
    """Run queued experiments: claim, run their controllers, take over from dead workers."""
    from automl.service._worker import Worker

    with _errors():
        if max_experiments < 1:
            raise SpecError(f"must be at least 1; got {max_experiments}", path="--max-experiments")
        if lease < 10:
            raise SpecError(
                f"must be at least 10 s (controllers beat every 5 s); got {lease:g}",
                path="--lease",
            )
        w = Worker(
            store,
            max_experiments=max_experiments,
            trial_slots=trial_slots,
            lease_s=lease,
            runs_dir=runs_dir,
            echo=lambda line: err.print(line, highlight=False, markup=False),
        )

    def _stop(signum: int, frame: object) -> None:
        w.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    raise typer.Exit(w.run())


def submit(
    file: Annotated[Path, typer.Argument(help="Experiment YAML/JSON (native or Katib).")],
    server: ServerOpt = None,
    store: StoreOpt = DEFAULT,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Queue an experiment for the workers and return at once with its name and state."""
    with _errors():
        try:
            e = _client(store, server=server).submit(file, priority=priority)
        except SpecError as exc:  # as `automl validate` prints them
            _invalid(file, exc)
            raise typer.Exit(2) from None
    if as_json:
        print(json.dumps({"name": e.name, "state": e.state.value, "priority": priority}))
    else:
        console.print(f"{e.name}: {e.state.value} (queued)", highlight=False)


def _invalid(file: Path, exc: SpecError) -> None:
    for issue in exc.issues:
        err.print(f"[red]{escape(str(file))}[/red]: {escape(str(issue))}", highlight=False)


def run_remote(server: str, spec: Any, progress: bool, as_json: bool) -> None:
    """``automl run --server``: queue the resolved spec, then follow it to its end."""
    with _errors():
        client = _client(DEFAULT, server=server)
        e = client.submit(spec)
    if not as_json:
        console.print(
            f"experiment [bold]{e.name}[/bold]: queued on {escape(server)}", highlight=False
        )
    _follow(client, e.name, as_json)


def resume_remote(server: str, name: str, budgets: dict[str, int | None], as_json: bool) -> None:
    """``automl resume --server``: queue the experiment again, then follow it to its end."""
    with _errors():
        client = _client(DEFAULT, server=server)
        client.requeue(name, **budgets)
    _follow(client, name, as_json)


def _follow(client: Any, name: str, as_json: bool) -> None:
    from automl._api import _best
    from automl.cli import _exp_json, _summary
    from automl.core import ExperimentState

    try:
        with _errors():
            while not client.get(name).state.is_terminal:
                time.sleep(1.0)
            e = client.get(name)
            trials = client.trials(name)
    except KeyboardInterrupt:
        err.print(f"{name} goes on on the server; follow it with: automl show {name} --server ...")
        raise typer.Exit(130) from None
    best = _best(e.spec, trials)
    if as_json:
        print(dumps_json(_exp_json(e, trials, best)))
    else:
        _summary(e, trials, best)
    if e.state is ExperimentState.FAILED:
        raise typer.Exit(1)
