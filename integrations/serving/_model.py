"""Predictors: a saved trial model behind one ``predict(array) -> array`` call.

A model directory is a trial's artifact directory as :func:`automl.save_model` writes it: the
model file plus ``<name>.json`` (format, file, class, ``n_features_in_``, ``feature_names``,
input shape). scikit-learn models (and pickled objects with ``predict``) answer with
``predict``, or ``predict_proba`` when the server runs with ``predict_proba`` on, as KServe's
sklearnserver does with ``PREDICT_PROBA=true``. torch modules get a float32 tensor and answer
with their output tensor.

This module also holds the request codecs: KServe v1 ``{"instances": [...]}`` and Open
Inference Protocol v2 input tensors, checked against the model's input (shape, datatype,
numbers only) before the model sees them.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl.errors import AutoMLError, NotFoundError
from integrations.serving._errors import InvalidInput, PayloadTooLarge

__all__ = [
    "NUMPY_TO_V2",
    "V2_TO_NUMPY",
    "ModelInfo",
    "Predictor",
    "SklearnPredictor",
    "TorchPredictor",
    "decode_v1",
    "decode_v2",
    "encode_v2_outputs",
    "load_predictor",
    "to_jsonable",
    "v2_datatype",
]

# Open Inference Protocol tensor datatypes this server accepts as model input.
V2_TO_NUMPY: dict[str, type[np.generic]] = {
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
# Defined by the protocol, refused here: models take numbers (BOOL/BYTES are not features).
_V2_KNOWN = {*V2_TO_NUMPY, "BOOL", "BYTES"}
NUMPY_TO_V2: dict[str, str] = {np.dtype(t).str[1:]: k for k, t in V2_TO_NUMPY.items()}


def v2_datatype(arr: np.ndarray) -> str:
    """The Open Inference Protocol datatype of an array (``BYTES`` for strings/objects)."""
    if arr.dtype == np.bool_:
        return "BOOL"
    if arr.dtype.kind in "iuf":
        return NUMPY_TO_V2.get(arr.dtype.str[1:], "FP64")
    return "BYTES"


@dataclass(frozen=True)
class ModelInfo:
    """What the server knows about one served model.

    Attributes:
        name: The served model name (the URL's ``<name>``).
        version: Its version: the trial id it came from (``model_version`` in replies).
        format: ``sklearn``, ``pickle`` or ``torch`` (from the model's ``.json``).
        model_class: The model's class, ``module.Qualname``.
        artifact_dir: The directory it was loaded from.
        model_file: The model file within it.
        n_features: Features per instance (``n_features_in_``), if known.
        feature_names: Feature names, if the model was fitted on named columns.
        input_shape: Per-instance input shape (torch models), if known.
        experiment: The experiment it came from, if any.
        trial_number: The trial's number in its experiment, if any.
    """

    name: str
    version: str
    format: str
    model_class: str
    artifact_dir: str
    model_file: str
    n_features: int | None = None
    feature_names: tuple[str, ...] | None = None
    input_shape: tuple[int, ...] | None = None
    experiment: str | None = None
    trial_number: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def platform(self) -> str:
        """The v2 metadata ``platform`` string."""
        return "pytorch" if self.format == "torch" else "sklearn"


class Predictor(ABC):
    """A loaded model: validates inputs and predicts.

    Subclasses implement :meth:`predict`; :meth:`check` refuses inputs of the wrong shape
    with an :class:`InvalidInput` that names the expected and the received shape.
    """

    input_datatype = "FP64"

    def __init__(self, model: Any, info: ModelInfo) -> None:
        self.model = model
        self.info = info

    def instance_shape(self) -> tuple[int, ...] | None:
        """Shape of one instance (without the batch axis), if known."""
        if self.info.input_shape is not None:
            return self.info.input_shape
        if self.info.n_features is not None:
            return (self.info.n_features,)
        return None

    def check(self, x: np.ndarray, where: str) -> None:
        """Refuse a batch whose instance shape is not the model's.

        Args:
            x: The batch, instances along axis 0.
            where: Request field to name in the error (``instances``, ``inputs[0]``).
        """
        want = self.instance_shape()
        if x.ndim < 2:
            raise InvalidInput(
                f"{where} must be a batch of instances (shape [N, ...]); got shape "
                f"{list(x.shape)}"
                + (f"; this model expects [N, {', '.join(map(str, want))}]" if want else "")
            )
        if x.shape[0] == 0:
            raise InvalidInput(f"{where} holds no instances")
        if want is not None and tuple(x.shape[1:]) != want:
            feat = " (n_features_in_)" if self.info.input_shape is None else ""
            raise InvalidInput(
                f"{where}: each instance has shape {list(x.shape[1:])}; model "
                f"{self.info.name!r} expects {list(want)}{feat}"
            )

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predict a batch (instances along axis 0)."""


class SklearnPredictor(Predictor):
    """A scikit-learn estimator (or any object with ``predict``).

    Args:
        model: The estimator.
        info: Its description.
        predict_proba: Answer with ``predict_proba`` when the model has it (KServe's
            ``PREDICT_PROBA``).
    """

    def __init__(self, model: Any, info: ModelInfo, predict_proba: bool = False) -> None:
        super().__init__(model, info)
        self.predict_proba = predict_proba and callable(getattr(model, "predict_proba", None))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``predict`` (or ``predict_proba``) of the estimator, as an array."""
        fn = self.model.predict_proba if self.predict_proba else self.model.predict
        return np.asarray(fn(self._frame(x)))

    def _frame(self, x: np.ndarray) -> Any:
        # A model fitted on a DataFrame warns (and may misorder) on bare arrays.
        if self.info.feature_names and hasattr(self.model, "feature_names_in_"):
            import pandas as pd

            return pd.DataFrame(x, columns=list(self.info.feature_names))
        return x


class TorchPredictor(Predictor):
    """A ``torch.nn.Module``: a float32 batch in, its output tensor out."""

    input_datatype = "FP32"

    def __init__(self, model: Any, info: ModelInfo) -> None:
        super().__init__(model, info)
        model.eval()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The module's output for a float32 batch."""
        import torch

        with torch.no_grad():
            out = self.model(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return np.asarray(out.detach().cpu().numpy())


def _read_meta(artifact_dir: Path, model: str) -> dict[str, Any]:
    meta_path = artifact_dir / f"{model}.json"
    if not artifact_dir.is_dir():
        raise NotFoundError(f"artifact directory {artifact_dir} does not exist")
    if not meta_path.is_file():
        saved = sorted(
            p.stem for p in artifact_dir.glob("*.json") if p.name != "outputs.json" and p.is_file()
        )
        raise NotFoundError(
            f"no saved model {model!r} in {artifact_dir} (saved models: "
            f"{', '.join(saved) or 'none'}); a trial saves one with automl.save_model(obj)"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AutoMLError(f"cannot read model record {meta_path}: {exc}") from exc
    if not isinstance(meta, dict) or not meta.get("format") or not meta.get("file"):
        raise AutoMLError(f"{meta_path} is not a model record (needs 'format' and 'file')")
    return meta


def load_predictor(
    artifact_dir: str | Path,
    model: str = "model",
    *,
    name: str,
    version: str,
    predict_proba: bool = False,
    experiment: str | None = None,
    trial_number: int | None = None,
) -> Predictor:
    """Load a saved model and wrap it for serving.

    Args:
        artifact_dir: The trial's artifact directory.
        model: The model's name in it (``automl.save_model(obj, name=...)``).
        name: The name to serve it under.
        version: Its version (the trial id).
        predict_proba: scikit-learn classifiers answer with probabilities.
        experiment: The experiment it came from (for metadata).
        trial_number: The trial's number (for metadata).

    Returns:
        A :class:`SklearnPredictor` or :class:`TorchPredictor`.

    Raises:
        NotFoundError: No such directory or model record.
        AutoMLError: The model cannot be loaded or served (e.g. a torch state dict only).
    """
    from automl._artifacts import load_model

    root = Path(artifact_dir)
    meta = _read_meta(root, model)
    fmt = str(meta["format"])
    try:
        obj = load_model(root, model)
    except AutoMLError:
        raise
    except Exception as exc:  # unpickling runs foreign code: any error is a load failure
        raise AutoMLError(
            f"cannot load model {model!r} from {root}: {type(exc).__name__}: {exc}"
        ) from None
    n_in = meta.get("n_features_in_")
    names = meta.get("feature_names")
    shape = meta.get("input_shape")
    info = ModelInfo(
        name=name,
        version=version,
        format=fmt,
        model_class=str(meta.get("class", type(obj).__name__)),
        artifact_dir=str(root.absolute()),
        model_file=str(meta["file"]),
        n_features=int(n_in) if isinstance(n_in, int) else None,
        feature_names=tuple(str(n) for n in names) if isinstance(names, list) else None,
        input_shape=(
            tuple(int(d) for d in shape[1:])
            if fmt == "torch" and isinstance(shape, list) and len(shape) > 1
            else None
        ),
        experiment=experiment,
        trial_number=trial_number,
        meta=meta,
    )
    if fmt == "torch":
        if isinstance(obj, Mapping):
            raise AutoMLError(
                f"model {model!r} in {root} was saved as a state dict only (its module does "
                "not pickle), so there is no module to serve; define the module class at the "
                "top level of an importable file and save it again"
            )
        return TorchPredictor(obj, info)
    if not callable(getattr(obj, "predict", None)):
        raise AutoMLError(
            f"model {model!r} in {root} ({info.model_class}) has no predict() method; "
            "only scikit-learn-style models and torch modules can be served"
        )
    return SklearnPredictor(obj, info, predict_proba=predict_proba)


# -- request decoding ------------------------------------------------------------------------
def _numbers(value: Any, where: str, integers: bool = False) -> None:
    """Refuse anything but (nested lists of) numbers; names the first offending element."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(item))))
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise InvalidInput(f"{path} must be a number; got {json.dumps(item)[:60]}")
        elif integers and not isinstance(item, int):
            raise InvalidInput(f"{path} must be an integer for this datatype; got {item!r}")
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(f"{path} must be a finite number; got {item!r}")


def _array(value: Any, where: str, dtype: Any = np.float64) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInput(f"{where} is ragged: every instance must have the same shape") from None


def decode_v1(body: Any, predictor: Predictor, max_batch: int) -> np.ndarray:
    """The batch of a KServe v1 request ``{"instances": [...]}`` (or ``{"inputs": [...]}``).

    Instances are lists of numbers, or objects keyed by feature name when the model knows its
    feature names.

    Raises:
        InvalidInput: Missing/empty instances, non-numbers, wrong shape; names the field.
        PayloadTooLarge: More instances than ``max_batch``.
    """
    if not isinstance(body, dict):
        raise InvalidInput(
            f'request body must be a JSON object {{"instances": [...]}}; got {type(body).__name__}'
        )
    key = "instances" if "instances" in body else "inputs" if "inputs" in body else None
    if key is None:
        raise InvalidInput('request body must have "instances": a list of instances')
    instances = body[key]
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(f'"{key}" must be a non-empty list of instances')
    if len(instances) > max_batch:
        raise PayloadTooLarge(
            f'"{key}" holds {len(instances)} instances; this server takes at most {max_batch} '
            "per request (--max-batch)"
        )
    if all(isinstance(i, dict) for i in instances):
        instances = _by_name(instances, predictor, key)
    _numbers(instances, key)
    x = _array(instances, key)
    predictor.check(x, key)
    return x


def _by_name(instances: list[Any], predictor: Predictor, key: str) -> list[list[Any]]:
    names = predictor.info.feature_names
    if not names:
        raise InvalidInput(
            f"{key} are objects, but model {predictor.info.name!r} was not fitted on named "
            "features; send each instance as a list of numbers"
        )
    rows = []
    for i, inst in enumerate(instances):
        missing = [n for n in names if n not in inst]
        extra = sorted(set(inst) - set(names))
        if missing or extra:
            raise InvalidInput(
                f"{key}[{i}] "
                + (f"lacks features {missing}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"has unknown features {extra}" if extra else "")
                + f"; the model's features are {list(names)}"
            )
        rows.append([inst[n] for n in names])
    return rows


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise InvalidInput(f"{where} must be a list of non-negative integers; got {value!r}")
    return list(value)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(d, list) for d in data):
        return data
    out: list[Any] = []
    for d in data:
        out.extend(_flatten(d))
    return out


def decode_v2(body: Any, predictor: Predictor, max_batch: int) -> tuple[np.ndarray, str]:
    """The batch of an Open Inference Protocol v2 request, and the name of its input.

    The request has one input tensor ``{"name", "shape", "datatype", "data"}`` whose data
    (flat in row-major order, or nested) holds ``prod(shape)`` numbers of its datatype.

    Raises:
        InvalidInput: A missing field, an unknown or non-numeric datatype, data that does not
            fill the shape, the wrong instance shape; names the field.
        PayloadTooLarge: A batch (``shape[0]``) over ``max_batch``.
    """
    if not isinstance(body, dict):
        raise InvalidInput(
            'request body must be a JSON object {"inputs": [...]}; got ' + type(body).__name__
        )
    if "id" in body and not isinstance(body["id"], str):
        raise InvalidInput(f"id must be a string; got {body['id']!r}")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput('request body must have "inputs": a non-empty list of tensors')
    if len(inputs) != 1:
        raise InvalidInput(
            f"inputs holds {len(inputs)} tensors; model {predictor.info.name!r} takes one "
            "input tensor of shape [N, features]"
        )
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise InvalidInput("inputs[0] must be an object {name, shape, datatype, data}")
    for fld in ("name", "shape", "datatype", "data"):
        if fld not in tensor:
            raise InvalidInput(f"inputs[0].{fld} is required")
    name = tensor["name"]
    if not isinstance(name, str):
        raise InvalidInput(f"inputs[0].name must be a string; got {name!r}")
    shape = _shape(tensor["shape"], "inputs[0].shape")
    datatype = tensor["datatype"]
    if datatype not in _V2_KNOWN:
        raise InvalidInput(
            f"inputs[0].datatype must be one of {sorted(_V2_KNOWN)}; got {datatype!r}"
        )
    if datatype not in V2_TO_NUMPY:
        raise InvalidInput(
            f"inputs[0].datatype {datatype} is not supported by model "
            f"{predictor.info.name!r}: it takes numbers (FP32, FP64, INT64, ...)"
        )
    if shape and shape[0] > max_batch:
        raise PayloadTooLarge(
            f"inputs[0].shape[0] is {shape[0]} instances; this server takes at most "
            f"{max_batch} per request (--max-batch)"
        )
    flat = _flatten(tensor["data"])
    count = math.prod(shape) if shape else 1
    if len(flat) != count:
        raise InvalidInput(f"inputs[0].data holds {len(flat)} values; shape {shape} needs {count}")
    _numbers(flat, "inputs[0].data", integers=datatype[0] in "IU")
    x = _array(flat, "inputs[0].data", V2_TO_NUMPY[datatype]).reshape(shape)
    predictor.check(x, "inputs[0]")
    return x, name


def encode_v2_outputs(result: np.ndarray, name: str = "output-0") -> list[dict[str, Any]]:
    """An Open Inference Protocol output tensor (row-major flat data), as KServe writes it."""
    arr = np.asarray(result)
    datatype = v2_datatype(arr)
    data = arr.reshape(-1).tolist() if datatype != "BYTES" else [str(v) for v in arr.reshape(-1)]
    return [{"name": name, "shape": list(arr.shape), "datatype": datatype, "data": data}]


def to_jsonable(result: Any) -> Any:
    """A prediction array as JSON values (numpy scalars and string labels included)."""
    arr = np.asarray(result)
    if arr.dtype.kind in "biuf":
        return arr.tolist()
    return np.vectorize(str, otypes=[object])(arr).tolist() if arr.size else []
