"""Transformers: user pre- and post-processing hooks around the predictor.

A transformer is a class with ``preprocess(payload) -> payload`` and/or
``postprocess(result) -> result``, both on the request/response JSON as dicts (KServe's
``kserve.Model.preprocess``/``postprocess``, without the headers argument). ``--transformer``
names it as ``package.module:Class`` or ``path/to/file.py:Class`` (``path/to/file.py`` alone
means its class ``Transformer``); it is built with no arguments once, at start.

In KServe a transformer is a separate ``transformer`` container that receives the request,
calls the predictor over HTTP and returns the post-processed answer; here the same two hooks
run in the serving process, around the predictor call, so a request costs no extra hop.
``preprocess`` runs before ``:predict``, ``/infer`` and ``:explain``; ``postprocess`` after
``:predict`` and ``/infer`` (an explanation is returned as the explainer made it).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from automl.errors import SpecError

__all__ = ["load_transformer"]


def _module(ref: str) -> Any:
    path = Path(ref)
    if ref.endswith(".py") or path.is_file():
        if not path.is_file():
            raise SpecError(f"no such file: {ref!r}", path="--transformer")
        name = f"automl_transformer_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise SpecError(f"cannot import {ref!r} as Python", path="--transformer")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise SpecError(
                f"importing {ref!r} failed: {type(exc).__name__}: {exc}", path="--transformer"
            ) from None
        return module
    try:
        return importlib.import_module(ref)
    except ImportError as exc:
        raise SpecError(f"cannot import module {ref!r}: {exc}", path="--transformer") from None
    except Exception as exc:
        raise SpecError(
            f"importing {ref!r} failed: {type(exc).__name__}: {exc}", path="--transformer"
        ) from None


def load_transformer(ref: str | Any) -> Any:
    """Build the transformer named by ``ref`` (or return ``ref`` if it is one already).

    Args:
        ref: ``package.module:Class``, ``path/to/file.py:Class``, ``path/to/file.py``
            (class ``Transformer``), or an object with ``preprocess``/``postprocess``.

    Returns:
        The transformer instance.

    Raises:
        SpecError: Not importable, no such class, or a class with neither hook (path
            ``--transformer``).
    """
    if not isinstance(ref, str):
        obj = ref
    else:
        mod_ref, sep, attr = ref.rpartition(":")
        if not sep or (len(mod_ref) == 1 and mod_ref.isalpha()):  # no ":", or "C:\\..."
            mod_ref, attr = ref, "Transformer"
        if not mod_ref or not attr.isidentifier():
            raise SpecError(
                f"must be module:Class or path/to/file.py:Class; got {ref!r}",
                path="--transformer",
            )
        module = _module(mod_ref)
        cls = getattr(module, attr, None)
        if cls is None:
            raise SpecError(f"{mod_ref!r} has no attribute {attr!r}", path="--transformer")
        try:
            obj = cls() if isinstance(cls, type) else cls
        except Exception as exc:
            raise SpecError(
                f"building {ref!r} failed: {type(exc).__name__}: {exc}", path="--transformer"
            ) from None
    hooks = [h for h in ("preprocess", "postprocess") if callable(getattr(obj, h, None))]
    if not hooks:
        raise SpecError(
            f"{type(obj).__name__} has neither preprocess(payload) nor postprocess(result)",
            path="--transformer",
        )
    return obj
