"""The FastAPI app: KServe's v1 protocol and the Open Inference Protocol (v2) on one model.

Routes (as KServe's model server has them):

=======  ==============================================  =======================================
GET      ``/v1/models``                                   ``{"models": [name]}``
GET      ``/v1/models/<name>``                            ``{"name", "ready"}``
POST     ``/v1/models/<name>:predict``                    ``{"instances"}`` -> ``{"predictions"}``
POST     ``/v1/models/<name>:explain``                    ``{"instances"}`` -> ``{"explanations"}``
GET      ``/v2/health/live``, ``/v2/health/ready``        ``{"live"}``, ``{"ready"}``
GET      ``/v2``                                          server metadata
GET      ``/v2/models``                                   ``{"models": [name]}``
GET      ``/v2/models/<name>[/versions/<v>]``             model metadata (tensors, versions)
GET      ``/v2/models/<name>[/versions/<v>]/ready``       ``{"name", "ready"}``
POST     ``/v2/models/<name>[/versions/<v>]/infer``       inference request -> response
=======  ==============================================  =======================================

A canary endpoint serves two models under one name and picks one per request at random with
the declared weight (KServe's ``canaryTrafficPercent``); ``/versions/<trial id>`` addresses one
of them directly. Every reply says which model answered: the ``x-automl-model`` header (the
trial id), ``x-automl-variant`` (``default`` or ``canary``), and ``model_name`` /
``model_version`` in the body. Errors are ``{"error": "..."}`` with a 4xx status for bad
requests (400 malformed or refused by the model's input checks, 404 unknown model, 413 too
large) and 500 when the model itself fails; the server keeps serving either way. ``/infer``
also takes and gives the binary tensor extension (see ``_codec.py``).
"""

import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from automl.errors import AutoMLError
from integrations.serving._codec import (
    BINARY_HEADER,
    decode_binary_request,
    decode_v1,
    decode_v2,
    encode_binary_reply,
    encode_v2_outputs,
    parse_json,
    to_jsonable,
    v2_datatype,
    wants_binary_outputs,
)
from integrations.serving._errors import (
    InvalidInput,
    ModelNotFound,
    NotSupported,
    PayloadTooLarge,
    ServingError,
)
from integrations.serving._explain import Explainer
from integrations.serving._model import Predictor, SklearnPredictor

__all__ = ["Backend", "Endpoint", "create_app"]

MAX_BATCH = 1000
MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Backend:
    """One model behind the endpoint.

    Attributes:
        predictor: The loaded model.
        explainer: Its explainer, or None.
        variant: ``default`` or ``canary``.
    """

    predictor: Predictor
    explainer: Explainer | None = None
    variant: str = "default"

    @property
    def version(self) -> str:
        """The model version (trial id)."""
        return self.predictor.info.version


class Endpoint:
    """A served model name: a predictor, an optional canary, transformer and explainers.

    Args:
        name: The model name in URLs.
        default: The main model.
        canary: A second model that gets ``canary_percent`` of the requests.
        canary_percent: Share of requests for the canary, 0-100.
        transformer: An object with ``preprocess``/``postprocess`` hooks.
        seed: Seed of the per-request traffic split (reproducible splits in tests).

    Raises:
        AutoMLError: A canary percent out of range, or two versions with the same id.
    """

    def __init__(
        self,
        name: str,
        default: Backend,
        canary: Backend | None = None,
        canary_percent: float = 0.0,
        transformer: Any = None,
        seed: int | None = None,
    ) -> None:
        if canary is not None and not 0 <= canary_percent <= 100:
            raise AutoMLError(f"canary percent must be in [0, 100]; got {canary_percent}")
        if canary is not None and canary.version == default.version:
            raise AutoMLError(
                f"the canary is the same model as the default ({default.version}); "
                "pick another trial or experiment"
            )
        self.name = name
        self.default = default
        self.canary = canary
        self.canary_percent = float(canary_percent) if canary is not None else 0.0
        self.transformer = transformer
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def backends(self) -> list[Backend]:
        """The default model, then the canary if any."""
        return [self.default] + ([self.canary] if self.canary is not None else [])

    def pick(self, version: str | None = None) -> Backend:
        """The model for one request: the named version, or a weighted random draw.

        Raises:
            ModelNotFound: No model has that version.
        """
        if version is not None:
            for b in self.backends:
                if b.version == version:
                    return b
            raise ModelNotFound(
                f"Model with name {self.name} and version {version} does not exist; versions: "
                f"{[b.version for b in self.backends]}"
            )
        if self.canary is None:
            return self.default
        with self._lock:
            draw = self._rng.random() * 100
        return self.canary if draw < self.canary_percent else self.default


def _output_datatype(p: Predictor) -> tuple[str, list[int]]:
    if isinstance(p, SklearnPredictor):
        classes = getattr(p.model, "classes_", None)
        if p.predict_proba:
            return "FP64", [-1, len(classes) if classes is not None else -1]
        if classes is not None:
            import numpy as np

            return v2_datatype(np.asarray(classes)), [-1]
        return "FP64", [-1]
    return "FP32", [-1, -1]


def model_metadata(endpoint: Endpoint, backend: Backend | None = None) -> dict[str, Any]:
    """The v2 model metadata reply for the endpoint (or one of its versions)."""
    b = backend or endpoint.default
    shape = b.predictor.instance_shape()
    datatype, out_shape = _output_datatype(b.predictor)
    return {
        "name": endpoint.name,
        "versions": [x.version for x in ([b] if backend else endpoint.backends)],
        "platform": b.predictor.info.platform,
        "inputs": [
            {
                "name": "input-0",
                "datatype": b.predictor.input_datatype,
                "shape": [-1, *(shape if shape is not None else [-1])],
            }
        ],
        "outputs": [{"name": "output-0", "datatype": datatype, "shape": out_shape}],
    }


def create_app(
    endpoint: Endpoint,
    *,
    max_batch: int = MAX_BATCH,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Any:
    """Build the FastAPI app serving ``endpoint``.

    Args:
        endpoint: What to serve.
        max_batch: Most instances per request (more: 413).
        max_body_bytes: Largest request body (larger: 413).

    Returns:
        A ``fastapi.FastAPI`` app (run it with uvicorn, or :func:`serve`).
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, Response
        from starlette.concurrency import run_in_threadpool
        from starlette.exceptions import HTTPException
    except ImportError as exc:  # pragma: no cover - the serve extra
        raise ImportError(
            "automl serve needs fastapi and uvicorn: pip install 'automl[serve]'"
        ) from exc
    import automl

    app = FastAPI(title=f"automl serve: {endpoint.name}", docs_url=None, redoc_url=None)
    name = endpoint.name

    def error(status: int, message: str) -> Any:
        return JSONResponse(status_code=status, content={"error": message})

    @app.exception_handler(ServingError)
    async def _serving_error(_: Any, exc: ServingError) -> Any:
        return error(exc.status, str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(_: Any, exc: HTTPException) -> Any:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Any, exc: Exception) -> Any:  # the documented body, even for a bug
        return error(500, f"internal error: {type(exc).__name__}: {exc}")

    def check_name(model_name: str) -> None:
        if model_name != name:
            raise ModelNotFound(f"Model with name {model_name} does not exist.")

    async def read_json(request: Request, binary: bool = False) -> Any:
        """The request's JSON body (or, with ``binary``, a binary-extension body as JSON)."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            raise PayloadTooLarge(
                f"request body is {int(length)} bytes; this server takes at most "
                f"{max_body_bytes} (--max-body-bytes)"
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                raise PayloadTooLarge(
                    f"request body is over {max_body_bytes} bytes (--max-body-bytes)"
                )
        if not body:
            raise InvalidInput("request body is empty; send a JSON object")
        header = request.headers.get(BINARY_HEADER)
        if binary and header is not None:
            return decode_binary_request(body, header)
        return parse_json(body)

    async def hook(which: str, value: Any) -> Any:
        fn: Callable[[Any], Any] | None = getattr(endpoint.transformer, which, None)
        if not callable(fn):
            return value
        try:
            return await run_in_threadpool(fn, value)
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidInput(
                f"transformer {which} rejected the request: {type(exc).__name__}: {exc}"
            ) from None
        except Exception as exc:
            raise ServingError(
                f"transformer {which} failed: {type(exc).__name__}: {exc}"
            ) from None

    async def run_model(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await run_in_threadpool(fn, *args)
        except ServingError:
            raise
        except ValueError as exc:
            # scikit-learn's way to refuse an input (check_array: "Input X contains
            # infinity" when a scaler overflows on 1e308); an unfitted model is our fault.
            if type(exc).__name__ == "NotFittedError":
                raise ServingError(f"model failed: {type(exc).__name__}: {exc}") from None
            raise InvalidInput(
                f"model {name!r} refused the input: {type(exc).__name__}: {exc}"
            ) from None
        except Exception as exc:
            raise ServingError(f"model failed: {type(exc).__name__}: {exc}") from None

    def reply(content: Any, backend: Backend) -> Any:
        if isinstance(content, dict):
            content["model_name"] = name
            content["model_version"] = backend.version
        return JSONResponse(
            content=content,
            headers={"x-automl-model": backend.version, "x-automl-variant": backend.variant},
        )

    # -- KServe v1 ----------------------------------------------------------------------------
    @app.get("/")
    async def root() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/v1/models")
    async def v1_models() -> dict[str, list[str]]:
        return {"models": [name]}

    @app.get("/v1/models/{model_name}")
    async def v1_ready(model_name: str) -> dict[str, Any]:
        check_name(model_name)
        return {"name": name, "ready": True}

    @app.post("/v1/models/{model_name}:predict")
    async def v1_predict(model_name: str, request: Request) -> Any:
        check_name(model_name)
        payload = await hook("preprocess", await read_json(request))
        backend = endpoint.pick()
        x = decode_v1(payload, backend.predictor, max_batch)
        result = await run_model(backend.predictor.predict, x)
        content = await hook("postprocess", {"predictions": to_jsonable(result)})
        return reply(content, backend)

    @app.post("/v1/models/{model_name}:explain")
    async def v1_explain(model_name: str, request: Request) -> Any:
        check_name(model_name)
        payload = await hook("preprocess", await read_json(request))
        backend = endpoint.pick()
        if backend.explainer is None:
            raise NotSupported(
                f"model {name!r} ({backend.version}) has no explainer: explanations need a "
                "scikit-learn model and the server started with --explainer auto"
            )
        x = decode_v1(payload, backend.predictor, max_batch)
        explanations = await run_model(backend.explainer.explain, x)
        return reply(
            {
                "explanations": explanations,
                "method": backend.explainer.method,
                "baseline": backend.explainer.baseline_source,
            },
            backend,
        )

    # -- Open Inference Protocol (v2) ---------------------------------------------------------
    @app.get("/v2/health/live")
    async def v2_live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def v2_server_ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2")
    async def v2_metadata() -> dict[str, Any]:
        return {
            "name": "automl",
            "version": automl.__version__,
            "extensions": ["binary_tensor_data"],
        }

    @app.get("/v2/models")
    async def v2_models() -> dict[str, list[str]]:
        return {"models": [name]}

    @app.get("/v2/models/{model_name}")
    async def v2_model(model_name: str) -> dict[str, Any]:
        check_name(model_name)
        return model_metadata(endpoint)

    @app.get("/v2/models/{model_name}/versions/{model_version}")
    async def v2_model_version(model_name: str, model_version: str) -> dict[str, Any]:
        check_name(model_name)
        return model_metadata(endpoint, endpoint.pick(model_version))

    @app.get("/v2/models/{model_name}/ready")
    async def v2_ready(model_name: str) -> dict[str, Any]:
        check_name(model_name)
        return {"name": name, "ready": True}

    @app.get("/v2/models/{model_name}/versions/{model_version}/ready")
    async def v2_version_ready(model_name: str, model_version: str) -> dict[str, Any]:
        check_name(model_name)
        endpoint.pick(model_version)
        return {"name": name, "ready": True}

    async def infer(request: Request, version: str | None) -> Any:
        payload = await hook("preprocess", await read_json(request, binary=True))
        backend = endpoint.pick(version)
        x, _ = decode_v2(payload, backend.predictor, max_batch)
        requested = payload.get("outputs")
        if isinstance(requested, list):
            unknown = [o.get("name") if isinstance(o, dict) else o for o in requested]
            unknown = [n for n in unknown if n != "output-0"]
            if unknown:
                raise InvalidInput(
                    f"outputs names {unknown[0]!r}; model {name!r} has one output, output-0"
                )
        result = await run_model(backend.predictor.predict, x)
        request_id = payload.get("id") if isinstance(payload, dict) else None
        content = {
            "model_name": name,
            "model_version": backend.version,
            "id": request_id or str(uuid.uuid4()),
            "parameters": {"variant": backend.variant},
            "outputs": encode_v2_outputs(result),
        }
        content = await hook("postprocess", content)
        if not (wants_binary_outputs(payload) and isinstance(content, dict)):
            return reply(content, backend)
        content["model_name"] = name
        content["model_version"] = backend.version
        try:
            raw, header = encode_binary_reply(content)
        except (TypeError, ValueError, KeyError) as exc:  # a postprocess hook's odd outputs
            raise ServingError(f"cannot encode binary outputs: {exc}") from None
        return Response(
            content=raw,
            media_type="application/octet-stream",
            headers={
                BINARY_HEADER: str(header),
                "x-automl-model": backend.version,
                "x-automl-variant": backend.variant,
            },
        )

    @app.post("/v2/models/{model_name}/infer")
    async def v2_infer(model_name: str, request: Request) -> Any:
        check_name(model_name)
        return await infer(request, None)

    @app.post("/v2/models/{model_name}/versions/{model_version}/infer")
    async def v2_version_infer(model_name: str, model_version: str, request: Request) -> Any:
        check_name(model_name)
        return await infer(request, model_version)

    return app
