"""``automl serve`` and ``automl export --format kserve`` (integrations.serving).

:func:`register` adds the ``serve`` command to the ``automl`` app and the ``kserve`` format to
its exporters; :mod:`automl.cli` calls it when it is imported.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from automl._cli_common import DEFAULT, Exporter, StoreOpt, _client, _errors, console, err
from automl.core import ExperimentRecord
from automl.errors import SpecError

_MAX_BODY = 10 * 1024 * 1024  # bytes; integrations.serving's default, kept here so --help is cheap


def serve_(
    name: Annotated[str, typer.Argument(help="Experiment (EXP or EXP/TRIAL) to serve.")],
    store: StoreOpt = DEFAULT,
    runs_dir: Annotated[
        str, typer.Option(help="Where trials wrote their artifacts.")
    ] = "automl-runs",
    trial: Annotated[
        int | None, typer.Option(help="Trial number to serve (default: the best trial).")
    ] = None,
    model: Annotated[
        str, typer.Option(help="Saved model name (automl.save_model(obj, name=...)).")
    ] = "model",
    model_name: Annotated[
        str | None, typer.Option(help="Model name in URLs (default: the experiment name).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on (0 picks a free one).")] = 8080,
    canary: Annotated[
        str | None,
        typer.Option(help="OTHER:PCT or OTHER/TRIAL:PCT: a second model taking PCT% of requests."),
    ] = None,
    transformer: Annotated[
        str | None,
        typer.Option(help="module:Class or file.py:Class with preprocess/postprocess hooks."),
    ] = None,
    explainer: Annotated[
        str, typer.Option(help="auto (attributions for scikit-learn models) or none.")
    ] = "auto",
    predict_proba: Annotated[
        bool, typer.Option("--predict-proba", help="Classifiers answer with probabilities.")
    ] = False,
    background: Annotated[
        Path | None, typer.Option(help="Baseline rows (.npy/.csv) for explanations.")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Most instances per request.")] = 1000,
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest request body in bytes.")
    ] = _MAX_BODY,
    seed: Annotated[int | None, typer.Option(help="Seed of the canary traffic split.")] = None,
) -> None:
    """Serve a trial's saved model with KServe's v1 and v2 (Open Inference) protocols."""
    from integrations.serving import build_endpoint
    from integrations.serving import serve as run_server

    def echo(line: str) -> None:
        console.print(line, highlight=False, markup=False)
        sys.stdout.flush()  # a caller reading our pipe sees the URL before the first request

    with _errors():
        if not 0 <= port <= 65535:
            raise SpecError(f"must be in 0-65535; got {port}", path="--port")
        if max_batch < 1:
            raise SpecError(f"must be at least 1; got {max_batch}", path="--max-batch")
        if max_body_bytes < 1:
            raise SpecError(f"must be at least 1; got {max_body_bytes}", path="--max-body-bytes")
        client = _client(store, runs_dir)
        endpoint, sources = build_endpoint(
            client,
            name,
            trial=trial,
            model=model,
            model_name=model_name,
            canary=canary,
            transformer=transformer,
            explainer=explainer,
            predict_proba=predict_proba,
            background=background,
            seed=seed,
        )
        for src, b in zip(sources, endpoint.backends, strict=True):
            share = (
                f" ({endpoint.canary_percent:g}% of requests)"
                if b.variant == "canary"
                else f" ({100 - endpoint.canary_percent:g}% of requests)"
                if endpoint.canary is not None
                else ""
            )
            extra = f", explainer: {b.explainer.method}" if b.explainer is not None else ""
            echo(
                f"{b.variant}: {src.experiment} trial #{src.trial_number} ({src.trial_id}), "
                f"{b.predictor.info.model_class}{share}{extra}"
            )
        if host not in ("127.0.0.1", "localhost", "::1"):
            err.print(
                f"[yellow]warning:[/yellow] binding {escape(host)}: the model is reachable "
                "from the network, without authentication",
                highlight=False,
            )
        # Ctrl-C is how a server ends: a clean exit, not 130. uvicorn may also handle the
        # signal itself and return; either way the server has stopped.
        with contextlib.suppress(KeyboardInterrupt):
            run_server(
                endpoint,
                host=host,
                port=port,
                max_batch=max_batch,
                max_body_bytes=max_body_bytes,
                echo=echo,
            )
        console.print("stopped")


def _export_kserve(
    client: Any, e: ExperimentRecord, output: Path | None, options: dict[str, Any]
) -> str | None:
    from integrations.serving import dump_yaml, inference_service_for

    manifest = inference_service_for(
        client,
        e.name,
        trial=options.get("trial"),
        model=options.get("model") or "model",
        storage_uri=options.get("storage_uri"),
        namespace=options.get("namespace"),
        protocol=options.get("protocol"),
    )
    return dump_yaml(manifest)


def register(app: typer.Typer, exporters: dict[str, Exporter]) -> None:
    """Add ``automl serve`` to ``app`` and the ``kserve`` format to ``automl export``.

    Args:
        app: The ``automl`` Typer app.
        exporters: ``automl export``'s formats by name.
    """
    app.command("serve")(serve_)
    exporters["kserve"] = _export_kserve
