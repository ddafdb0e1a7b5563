"""Errors of the inference server, each with the HTTP status it answers with."""

from __future__ import annotations

from automl.errors import AutoMLError

__all__ = ["InvalidInput", "ModelNotFound", "NotSupported", "PayloadTooLarge", "ServingError"]


class ServingError(AutoMLError):
    """A request the server refuses; ``status`` is the HTTP code of the JSON error reply."""

    status = 500


class InvalidInput(ServingError):
    """A malformed inference request: bad JSON, wrong shape, wrong datatype (KServe: 400)."""

    status = 400


class ModelNotFound(ServingError):
    """The request names a model (or version) this server does not serve (KServe: 404)."""

    status = 404


class PayloadTooLarge(ServingError):
    """The body or the batch is over the server's limit (``--max-body-bytes``/``--max-batch``)."""

    status = 413


class NotSupported(ServingError):
    """The model cannot do what was asked (``:explain`` without an explainer) (HTTP 501)."""

    status = 501
