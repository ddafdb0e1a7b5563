"""Shared pieces of the ``automl`` command line (:mod:`automl.cli` and its section modules).

The consoles, the ``--store`` / ``--json`` option types, the error-to-exit-code wrapper
:func:`_errors`, the client factory :func:`_client` and the ``Exporter`` signature of
``automl export`` formats live here, so the section modules (``_cli_serve``, ``_cli_pipeline``,
``_cli_nas``) need not import :mod:`automl.cli`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from automl.core import ExperimentRecord
from automl.errors import AutoMLError, SpecError

# Piped output is not squeezed into 80 columns: tables stay one row per trial.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

StoreOpt = Annotated[
    str,
    typer.Option(
        "--store",
        "-s",
        envvar="AUTOML_STORE",
        help="Store URL (any SQLAlchemy URL) or SQLite file path.",
    ),
]
ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="automl server URL (http://127.0.0.1:8080) instead of --store; token: AUTOML_TOKEN.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DEFAULT = "sqlite:///automl.db"

# A format of `automl export`: (client, experiment, --output, options) -> the text to print or
# write, or None when it wrote --output itself.
Exporter = Callable[[Any, ExperimentRecord, Path | None, dict[str, Any]], str | None]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except SpecError as exc:
        for issue in exc.issues:
            err.print(f"[red]error:[/red] {escape(str(issue))}", highlight=False)
        raise typer.Exit(2) from None
    except AutoMLError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None


def _client(
    store: str, runs_dir: str = "automl-runs", server: str | None = None, *, read: bool = False
) -> Any:
    """A client of the store or server; ``read=True`` (list, show, best) never creates a store."""
    from automl._client import Client

    if server:
        return Client(server=server, runs_dir=runs_dir)
    return Client(store, runs_dir=runs_dir, create=not read)


def dumps_json(obj: Any) -> str:
    """JSON for ``--json`` output that every parser reads.

    NaN becomes null, and infinities the strings ``"Infinity"`` / ``"-Infinity"``.
    """
    return json.dumps(_finite_json(obj), indent=2, allow_nan=False)


def _finite_json(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {k: _finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_json(v) for v in obj]
    return obj
