"""Predictors: a saved trial model behind one ``predict(array) -> array`` call.

A model directory is a trial's artifact directory as :func:`automl.save_model` writes it: the
model file plus ``<name>.json`` (format, file, class, ``n_features_in_``, ``feature_names``,
input shape). scikit-learn models (and pickled objects with ``predict``) answer with
``predict``, or ``predict_proba`` when the server runs with ``predict_proba`` on, as KServe's
sklearnserver does with ``PREDICT_PROBA=true``. torch modules get a float32 tensor and answer
with their output tensor.

The request codecs (KServe v1 instances, Open Inference Protocol v2 tensors, the binary
tensor extension) are in ``_codec.py``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl.errors import AutoMLError, NotFoundError
from integrations.serving._errors import InvalidInput

__all__ = ["ModelInfo", "Predictor", "SklearnPredictor", "TorchPredictor", "load_predictor"]


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
