"""automl as a service: the REST server, controller workers, and the client's HTTP transport.

``automl server`` serves :func:`create_app`; ``automl worker`` runs :class:`Worker`;
``automl.Client(server=...)`` talks to a server through :mod:`automl.service._remote`.
See docs/service.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Worker", "create_app"]


def __getattr__(name: str) -> Any:  # FastAPI and uvicorn load only when used
    if name == "create_app":
        from automl.service._app import create_app

        return create_app
    if name == "Worker":
        from automl.service._worker import Worker

        return Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
