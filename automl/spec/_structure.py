"""The structure stage of a front door, lenient so that the rules stage still runs.

pydantic stops at the first model that does not fit. To report every problem of a document in one
pass, :func:`validate_structure` records each structural problem (an unknown key, a value of the
wrong type, a value outside a set of literals, a missing field) with its path, removes or
replaces the offending value and validates again, until the document fits; the caller then
builds the spec and applies the rules, whose issues join these. An unknown key is reported with
the nearest known name ("did you mean `budget`?").
"""

from __future__ import annotations

import copy
import difflib
import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from automl.errors import SpecIssue

__all__ = ["did_you_mean", "validate_structure"]

M = TypeVar("M", bound=BaseModel)
_LITERAL = re.compile(r"'([^']*)'")
_ROUNDS = 8


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """``"; did you mean 'budget'?"`` for the nearest of ``known``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models_in(arg))
    return out


def _known_fields(model: type[BaseModel], keys: Sequence[str | int]) -> list[str]:
    """The field names of the model found at ``keys`` under ``model`` (empty if not a model)."""
    models = [model]
    for key in keys:
        if isinstance(key, int):
            continue  # an item of a list: list[Model] already gave the item's model
        models = [
            found
            for m in models
            if (field := m.model_fields.get(key)) is not None
            for found in _models_in(field.annotation)
        ]
        if not models:
            return []
    return sorted({name for m in models for name in m.model_fields})


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none", "is-instance"})


def _is_tag(part: Any) -> bool:
    """A loc part that names a union branch or validator, not a key (``str``, ``_Algorithm``)."""
    if not isinstance(part, str):
        return False
    return (
        part in _TYPE_TAGS
        or "[" in part
        or part.startswith(("function-", "constrained", "_"))
        or part[:1].isupper()
    )


def _data_path(data: Any, loc: Sequence[Any]) -> tuple[list[str | int], bool]:
    """``loc`` without pydantic's union and validator tags: the keys into ``data``.

    The flag says whether a tag was skipped (the error belongs to one branch of a union).
    """
    keys: list[str | int] = []
    node = data
    tagged = False
    for part in loc:
        found = (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)) or (
            isinstance(node, Mapping) and part in node
        )
        if found:
            keys.append(part)
            node = node[part]
        elif _is_tag(part) or not isinstance(node, (Mapping, list)):
            tagged = True
        else:
            keys.append(part)  # a missing key
            node = None
    return keys, tagged


def _path(prefix: str, keys: Sequence[str | int]) -> str:
    path = prefix
    for k in keys:
        path = f"{path}[{k}]" if isinstance(k, int) else (f"{path}.{k}" if path else str(k))
    return path


def _set(data: Any, keys: Sequence[str | int], value: Any) -> bool:
    node = data
    for k in keys[:-1]:
        try:
            node = node[k]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, dict):
        node[keys[-1]] = value
        return True
    return False


def _delete(data: Any, keys: Sequence[str | int]) -> bool:
    node = data
    for k in keys[:-1]:
        try:
            node = node[k]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, dict) and keys and keys[-1] in node:
        del node[keys[-1]]
        return True
    return False


def validate_structure(
    model: type[M],
    data: Mapping[str, Any],
    fallbacks: Mapping[str, Any],
    prefix: str = "",
) -> tuple[M | None, list[SpecIssue]]:
    """Validate ``data`` against ``model``, reporting every structural problem.

    Args:
        model: The pydantic model of the document.
        data: The parsed document (not modified).
        fallbacks: Stand-in values for required fields (dotted paths without list indices, e.g.
            ``objective.direction``), used only so that the rules can still be checked.
        prefix: Path prefix for the issues.

    Returns:
        The model (built from the repaired document when there were problems) or None when it
        could not be repaired, and the structural issues found.
    """
    work: Any = copy.deepcopy(dict(data))
    issues: list[SpecIssue] = []
    seen: set[str] = set()
    for _ in range(_ROUNDS):
        try:
            return model.model_validate(work), issues
        except ValidationError as exc:
            errors = exc.errors()
        located = [(err, *_data_path(work, err["loc"])) for err in errors]
        # A value that fits no branch of a union: keep the errors of the branch that matches the
        # value's shape (a mapping's unknown key, not "should be a valid string").
        branches = {tuple(k) for err, k, tagged in located if tagged and err["type"] != "missing"}
        progressed = False
        for err, keys, tagged in located:
            kind = err["type"]
            path = _path(prefix, keys)
            if tagged and kind.endswith("_type") and any(len(b) > len(keys) for b in branches):
                continue
            if kind == "extra_forbidden":
                known = _known_fields(model, keys[:-1])
                msg = "is not a known field" + did_you_mean(str(keys[-1]), known)
                progressed |= _delete(work, keys)
            elif kind == "missing":
                msg = "is required"
                dotted = ".".join(str(k) for k in keys if not isinstance(k, int))
                if dotted in fallbacks:
                    progressed |= _set(work, keys, copy.deepcopy(fallbacks[dotted]))
            else:
                msg = f"{err['msg'][0].lower()}{err['msg'][1:]}; got {err.get('input')!r}"
                expected = (err.get("ctx") or {}).get("expected")
                options = _LITERAL.findall(str(expected)) if kind == "literal_error" else []
                if options and isinstance(err.get("input"), str):
                    msg += did_you_mean(err["input"], options)
                dotted = ".".join(str(k) for k in keys if not isinstance(k, int))
                if options:
                    progressed |= _set(work, keys, options[0])
                elif dotted in fallbacks:
                    progressed |= _set(work, keys, copy.deepcopy(fallbacks[dotted]))
                else:
                    progressed |= _delete(work, keys)
            if path + msg not in seen:
                seen.add(path + msg)
                issues.append(SpecIssue(path, msg))
        if not progressed:
            return None, issues
    return None, issues
