"""Trial artifacts: models and structured outputs a trial keeps, and how to get them back.

Every trial has an artifact directory ``<runs_dir>/<experiment>/<trial_id>/artifacts/``. A
subprocess trial finds it in ``AUTOML_ARTIFACT_DIR``; an in-process trial in
``automl.current_trial().artifact_dir``. :func:`save_model` writes a model and a ``<name>.json``
that says how to load it; :func:`log_outputs` merges structured data into ``outputs.json``; any
other file a trial writes there is kept too. When a trial ends the controller records what the
directory holds in the store (:func:`collect_outputs`), so :meth:`automl.Client.artifacts` and
:func:`load_model` can find it later.

Model formats:

* ``sklearn``: any estimator with ``fit`` and ``get_params`` (scikit-learn and look-alikes),
  written with ``joblib.dump`` to ``<name>.joblib``.
* ``torch``: an ``nn.Module``, written with ``torch.save(module)`` to ``<name>.pt`` (the whole
  module, pickled: loading it needs ``weights_only=False`` and the module's class importable) and
  its ``state_dict()`` to ``<name>.state_dict.pt`` (plain tensors, loadable with
  ``weights_only=True`` into a freshly built module). A module that cannot be pickled (a class
  defined inside a function) keeps only the state dict. TorchScript is not used: many modules
  do not script, and a pickled module round-trips every module that pickles.
* ``pickle``: anything else that pickles, to ``<name>.pkl``.

Loading a pickled artifact runs code from it: load only artifacts you trust (your own runs).

This module imports nothing heavy at import time: joblib, torch and numpy load when used.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automl.errors import AutoMLError, NotFoundError

__all__ = [
    "ARTIFACT_DIR_ENV",
    "MAX_FILES",
    "artifact_dir",
    "collect_outputs",
    "load_model",
    "log_outputs",
    "save_model",
]

ARTIFACT_DIR_ENV = "AUTOML_ARTIFACT_DIR"
OUTPUTS_FILE = "outputs.json"
MAX_FILES = 200  # files listed in the store per trial; the directory itself holds everything
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def artifact_dir(runs_dir: str | Path, experiment: str, trial_id: str) -> Path:
    """Where a trial's artifacts live: ``<runs_dir>/<experiment>/<trial_id>/artifacts``."""
    return Path(artifact_path(runs_dir, experiment, trial_id))


def artifact_path(runs_dir: str | Path, experiment: str, trial_id: str) -> str:
    """:func:`artifact_dir` as a string: the loop's form (pathlib costs ~80 µs a trial)."""
    return os.path.join(runs_dir, experiment, trial_id, "artifacts")


def _trial_dir(directory: str | Path | None, what: str) -> Path:
    if directory is not None:
        return Path(directory)
    from automl._report import current_trial

    info = current_trial()
    found = info.artifact_dir if info is not None else None
    found = found or os.environ.get(ARTIFACT_DIR_ENV)
    if not found:
        raise AutoMLError(
            f"automl.{what}() was called outside a trial, so there is no artifact directory; "
            f"call it inside an objective or trial script, or pass directory=..."
        )
    return Path(found)


def _versions(*names: str) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return out


def _joblib() -> Any:
    import joblib  # type: ignore[import-untyped]  # no type information

    return joblib


def _class_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_torch_module(obj: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")  # a torch module implies torch is already imported
    return torch is not None and isinstance(obj, torch.nn.Module)


def _is_estimator(obj: Any) -> bool:
    return callable(getattr(obj, "fit", None)) and callable(getattr(obj, "get_params", None))


def _shape_of(example: Any) -> list[int] | None:
    shape = getattr(example, "shape", None)
    if shape is None:
        return None
    try:
        return [int(d) for d in shape]
    except (TypeError, ValueError):
        return None


def save_model(
    obj: Any,
    name: str = "model",
    *,
    directory: str | Path | None = None,
    input_example: Any = None,
) -> Path:
    """Save a trained model into the current trial's artifact directory.

    Writes the model file and ``<name>.json`` (format, file, class, Python and library
    versions, ``n_features_in_`` / ``feature_names`` / input shape when known). The controller
    records it in the store when the trial ends, so ``Client.load_model`` finds it.

    Args:
        obj: A scikit-learn estimator, a ``torch.nn.Module`` or any picklable object.
        name: File stem; letters, digits, ``_``, ``.`` and ``-``.
        directory: Save here instead of the trial's artifact directory (needed outside a trial).
        input_example: A sample input (array or tensor); its shape and dtype are recorded.

    Returns:
        The path of the saved model file.

    Raises:
        AutoMLError: Called outside a trial without ``directory``, a bad ``name``, or an object
            that cannot be saved.

    Example:
        >>> automl.save_model(clf)  # doctest: +SKIP
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise AutoMLError(
            f"automl.save_model: name must be 1-128 letters, digits, '_', '.' or '-' "
            f"(not starting with '.' or '-'); got {name!r}"
        )
    out = _trial_dir(directory, "save_model")
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "name": name,
        "class": _class_name(obj),
        "python": platform.python_version(),
        "saved_at": time.time(),
    }
    if _is_torch_module(obj):
        import torch

        meta["format"] = "torch"
        meta["versions"] = _versions("torch", "numpy")
        state_file = f"{name}.state_dict.pt"
        torch.save(obj.state_dict(), out / state_file)
        meta["state_dict"] = state_file
        try:
            torch.save(obj, out / f"{name}.pt")
            meta["file"] = f"{name}.pt"
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            (out / f"{name}.pt").unlink(missing_ok=True)
            meta["file"] = state_file
            meta["note"] = f"only the state dict was saved: the module does not pickle ({exc})"
        first = next((m for m in obj.modules() if hasattr(m, "in_features")), None)
        if first is not None:
            meta["n_features_in_"] = int(first.in_features)
    elif _is_estimator(obj):
        joblib = _joblib()
        meta["format"] = "sklearn"
        meta["versions"] = _versions("scikit-learn", "numpy", "joblib")
        meta["file"] = f"{name}.joblib"
        try:
            joblib.dump(obj, out / meta["file"])
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise AutoMLError(f"automl.save_model: cannot save {meta['class']}: {exc}") from exc
    else:
        meta["format"] = "pickle"
        meta["versions"] = {}
        meta["file"] = f"{name}.pkl"
        try:
            with open(out / meta["file"], "wb") as fh:
                pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            (out / meta["file"]).unlink(missing_ok=True)
            raise AutoMLError(f"automl.save_model: cannot pickle {meta['class']}: {exc}") from exc
    n_in = getattr(obj, "n_features_in_", None)
    if isinstance(n_in, int):
        meta["n_features_in_"] = n_in
    names = getattr(obj, "feature_names_in_", None)
    if names is not None:
        meta["feature_names"] = [str(n) for n in names]
    if input_example is not None:
        meta["input_shape"] = _shape_of(input_example)
        dtype = getattr(input_example, "dtype", None)
        if dtype is not None:
            meta["input_dtype"] = str(dtype)
    _write_json(out / f"{name}.json", meta)
    return out / str(meta["file"])


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)  # readers (the controller) never see a half-written file


def log_outputs(*, directory: str | Path | None = None, **data: Any) -> Path:
    """Merge JSON-able structured data into the trial's ``outputs.json``.

    Later calls update earlier keys. The controller stores the merged content with the trial.

    Args:
        directory: Write here instead of the trial's artifact directory.
        **data: Keys and JSON-able values (e.g. ``architecture={...}``).

    Returns:
        The path of ``outputs.json``.

    Raises:
        AutoMLError: Outside a trial without ``directory``, or a value that is not JSON-able.
    """
    out = _trial_dir(directory, "log_outputs")
    out.mkdir(parents=True, exist_ok=True)
    path = out / OUTPUTS_FILE
    current: dict[str, Any] = {}
    if path.exists():
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            current = {}
    current.update(data)
    try:
        text = json.dumps(current, indent=2, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise AutoMLError(f"automl.log_outputs: values must be JSON-serializable: {exc}") from exc
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def collect_outputs(directory: str | Path) -> dict[str, Any] | None:
    """What a trial's artifact directory holds, for the store; None if it is missing or empty.

    One ``os.scandir`` of the top level (sub-directories are listed by name, not walked) plus a
    read of each ``<name>.json`` model record and ``outputs.json``: no hashing, so it costs next
    to nothing per trial.

    Returns:
        ``{"artifact_dir", "models": {name: meta}, "files": [...], "data": {...}}``.
    """
    root = os.path.abspath(directory)
    try:
        with os.scandir(root) as it:
            entries = sorted(
                (e.name + ("/" if e.is_dir() else "") for e in it if not e.name.endswith(".tmp")),
            )
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not entries:
        return None
    names = set(entries)
    models: dict[str, Any] = {}
    data: Any = {}
    for entry in entries:
        if not entry.endswith(".json"):
            continue
        stem = entry[: -len(".json")]
        if entry == OUTPUTS_FILE:
            try:
                data = json.loads(Path(root, entry).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            continue
        try:
            meta = json.loads(Path(root, entry).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("format") and meta.get("file") in names:
            models[stem] = meta
    return {
        "artifact_dir": root,
        "models": models,
        "files": entries[:MAX_FILES],
        "data": data,
    }


def _meta_path(source: str | Path, model: str) -> Path:
    path = Path(source)
    if path.is_dir():
        meta = path / f"{model}.json"
        if not meta.is_file():
            saved = sorted(
                p.stem for p in path.glob("*.json") if p.name != OUTPUTS_FILE and p.is_file()
            )
            raise NotFoundError(
                f"no model {model!r} in {path} (saved models: {', '.join(saved) or 'none'}); "
                "a trial saves one with automl.save_model(obj)"
            )
        return meta
    if path.suffix == ".json" and path.is_file():
        return path
    raise NotFoundError(f"{path} is neither an artifact directory nor a model .json file")


def load_model(source: str | Path, model: str = "model") -> Any:
    """Load a model saved with :func:`save_model`.

    Args:
        source: A trial's artifact directory, or a model's ``.json`` file.
        model: The model's name within an artifact directory.

    Returns:
        The model object (an estimator, an ``nn.Module``, or whatever was pickled). A torch
        model saved as a state dict only comes back as that state dict.

    Raises:
        NotFoundError: No such model.
        AutoMLError: The record names an unknown format or its library is not installed.
    """
    meta_path = _meta_path(source, model)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    fmt, file = meta.get("format"), meta.get("file")
    target = meta_path.parent / str(file)
    if not target.is_file():
        raise NotFoundError(f"model file {target} named by {meta_path} is missing")
    if fmt == "sklearn":
        return _joblib().load(target)
    if fmt == "torch":
        try:
            import torch
        except ImportError as exc:
            raise AutoMLError(f"loading {target} needs torch: pip install torch") from exc
        # weights_only=False: a whole pickled module is not "weights only" (see module docs).
        return torch.load(target, weights_only=file == meta.get("state_dict"))
    if fmt == "pickle":
        with open(target, "rb") as fh:
            return pickle.load(fh)
    raise AutoMLError(f"{meta_path}: unknown model format {fmt!r}")
