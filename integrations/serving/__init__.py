"""Serving a trial's model: KServe's v1 and Open Inference (v2) protocols, KServe manifests.

``automl serve NAME`` loads the best trial's saved model (:func:`automl.save_model`) and serves
it over HTTP with FastAPI/uvicorn, as KServe's model server would: a predictor, an optional
transformer (``preprocess``/``postprocess`` hooks), an optional explainer (per-feature
attributions for scikit-learn models) and an optional canary that takes a share of the traffic.
``automl export NAME --format kserve`` writes the InferenceService for the same model.

Everything here imports fastapi/uvicorn lazily; ``pip install 'automl[serve]'`` provides them.
See ``docs/serving.md``.
"""

from __future__ import annotations

from integrations.serving._app import Backend, Endpoint, create_app, model_metadata
from integrations.serving._errors import (
    InvalidInput,
    ModelNotFound,
    NotSupported,
    PayloadTooLarge,
    ServingError,
)
from integrations.serving._explain import Explainer, load_background, make_explainer
from integrations.serving._kserve import (
    dump_yaml,
    inference_service,
    inference_service_for,
    isvc_name,
    validate_inference_service,
)
from integrations.serving._model import (
    ModelInfo,
    Predictor,
    SklearnPredictor,
    TorchPredictor,
    load_predictor,
)
from integrations.serving._server import (
    BackgroundServer,
    ModelSource,
    build_endpoint,
    parse_canary,
    resolve_model,
    serve,
)
from integrations.serving._transform import load_transformer

__all__ = [
    "Backend",
    "BackgroundServer",
    "Endpoint",
    "Explainer",
    "InvalidInput",
    "ModelInfo",
    "ModelNotFound",
    "ModelSource",
    "NotSupported",
    "PayloadTooLarge",
    "Predictor",
    "ServingError",
    "SklearnPredictor",
    "TorchPredictor",
    "build_endpoint",
    "create_app",
    "dump_yaml",
    "inference_service",
    "inference_service_for",
    "isvc_name",
    "load_background",
    "load_predictor",
    "load_transformer",
    "make_explainer",
    "model_metadata",
    "parse_canary",
    "resolve_model",
    "serve",
    "validate_inference_service",
]
