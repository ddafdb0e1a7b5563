"""The subset of GJSON that Katib's success and failure conditions use.

Katib evaluates ``trialTemplate.successCondition`` / ``failureCondition`` with GJSON
(github.com/tidwall/gjson) over the whole job object, and a condition holds when the result is an
object or a non-empty array (``pkg/controller.v1beta1/trial/util/job_util.go``). Katib's
defaults and examples use:

* dotted keys and array indexes: ``status.conditions``, ``status.conditions.0``;
* queries: ``#(key=="value")`` (first match) and ``#(key=="value")#`` (every match), with
  ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` against a JSON string, number, ``true``,
  ``false`` or ``null``; the key may be a dotted path;
* ``#`` (the length of an array), the ``@this`` modifier and the multipath ``[@this]``
  (Argo's ``status.[@this].#(phase=="Succeeded")#``);
* the pipe ``|``, which applies the rest of the path to the whole result, where ``.`` after
  ``#(...)#`` applies it to each match.

Everything else GJSON has (wildcards ``*``/``?``, the ``%`` pattern operators, other modifiers,
``{...}`` multipaths, nested queries, escaped keys) is rejected with :class:`GJSONError`, so a
condition either means what Katib means or fails before any trial starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GJSONError", "Path", "compile_path", "condition_holds"]


class GJSONError(ValueError):
    """A GJSON expression outside the supported subset, or malformed."""


_MISSING: Any = object()
_OPS = ("==", "!=", "<=", ">=", "<", ">")
_QUERY_RE = re.compile(r"^#\((.*)\)(#?)$", re.S)
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True, slots=True)
class _Query:
    key: tuple[str, ...]
    op: str
    value: Any
    all: bool


@dataclass(frozen=True, slots=True)
class _Multi:
    paths: tuple[Path, ...]


_Component = str | _Query | _Multi  # a key, "#", "@this", a query, a multipath


@dataclass(frozen=True, slots=True)
class Path:
    """A compiled expression: pipe-separated segments of dot-separated components."""

    source: str
    segments: tuple[tuple[_Component, ...], ...]

    def get(self, doc: Any) -> Any:
        """The value the expression selects in ``doc``, or :data:`MISSING`."""
        value = doc
        for segment in self.segments:
            value = _walk(value, segment, 0)
            if value is _MISSING:
                return _MISSING
        return value


MISSING = _MISSING


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses, brackets and quoted strings."""
    out: list[str] = []
    depth = 0
    quote = False
    cur: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            cur.append(ch)
            if ch == "\\" and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
            cur.append(ch)
        elif ch in "([{":
            depth += 1
            cur.append(ch)
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise GJSONError(f"unbalanced {ch!r}")
            cur.append(ch)
        elif ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if quote:
        raise GJSONError("unterminated string")
    if depth:
        raise GJSONError("unbalanced brackets")
    out.append("".join(cur))
    return out


def _literal(text: str) -> Any:
    text = text.strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise GJSONError(
            f"query value {text!r} is not a JSON string, number, true, false or null"
        ) from None
    if isinstance(value, (dict, list)):
        raise GJSONError(f"query value {text!r} must be a string, number, true, false or null")
    return value


def _key_path(text: str) -> tuple[str, ...]:
    parts = text.strip().split(".")
    for p in parts:
        if not _KEY_RE.match(p):
            raise GJSONError(f"query key {text.strip()!r} must be a dotted path of plain keys")
    return tuple(parts)


def _component(text: str) -> _Component:
    if not text:
        raise GJSONError("empty path component")
    if text in ("#", "@this"):
        return text
    m = _QUERY_RE.match(text)
    if m:
        body, every = m.group(1), m.group(2) == "#"
        for op in _OPS:
            idx = _find_op(body, op)
            if idx >= 0:
                return _Query(_key_path(body[:idx]), op, _literal(body[idx + len(op) :]), every)
        if "%" in body:
            raise GJSONError("the % and !% pattern operators are not supported")
        raise GJSONError(f"query #({body}) needs one of {', '.join(_OPS)}")
    if text.startswith("[") and text.endswith("]"):
        return _Multi(tuple(compile_path(p) for p in _split(text[1:-1], ",")))
    if text.startswith("{"):
        raise GJSONError("{...} multipaths are not supported")
    if text.startswith("@"):
        raise GJSONError(f"modifier {text!r} is not supported (only @this)")
    if "*" in text or "?" in text:
        raise GJSONError(f"wildcards are not supported ({text!r})")
    if "\\" in text:
        raise GJSONError(f"escaped keys are not supported ({text!r})")
    if text.startswith("#"):
        raise GJSONError(f"unsupported query {text!r}")
    return text


def _find_op(body: str, op: str) -> int:
    """Index of ``op`` in a query body outside strings, or -1 (longest operators first)."""
    quote = False
    i = 0
    while i < len(body):
        ch = body[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
        elif body.startswith(op, i):
            # "<" must not match the first character of "<=" (and so on).
            if len(op) == 1 and body[i + 1 : i + 2] == "=":
                i += 1
                continue
            if op in ("<", ">") and i > 0 and body[i - 1] in "!=<>":
                i += 1
                continue
            return i
        i += 1
    return -1


def compile_path(expression: str) -> Path:
    """Compile a GJSON expression of the supported subset.

    Raises:
        GJSONError: The expression uses GJSON syntax outside the subset, or is malformed.
    """
    if not expression or not expression.strip():
        raise GJSONError("empty expression")
    segments = []
    for seg in _split(expression.strip(), "|"):
        segments.append(tuple(_component(c) for c in _split(seg, ".")))
    return Path(expression, tuple(segments))


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "==":
        return bool((left == right and type(left) is type(right)) or _num_eq(left, right))
    if op == "!=":
        return not ((left == right and type(left) is type(right)) or _num_eq(left, right))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    if not numeric and not (isinstance(left, str) and isinstance(right, str)):
        return False
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _num_eq(a: Any, b: Any) -> bool:
    nums = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return nums and a == b


def _lookup(value: Any, key: tuple[str, ...]) -> Any:
    for k in key:
        value = _step(value, k)
        if value is _MISSING:
            return _MISSING
    return value


def _step(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key, _MISSING)
    if isinstance(value, list) and key.isdigit():
        i = int(key)
        return value[i] if i < len(value) else _MISSING
    return _MISSING


def _walk(value: Any, comps: tuple[_Component, ...], i: int) -> Any:
    while i < len(comps):
        c = comps[i]
        if value is _MISSING:
            return _MISSING
        if isinstance(c, _Query):
            if not isinstance(value, list):
                return _MISSING
            hits = [
                v
                for v in value
                if (left := _lookup(v, c.key)) is not _MISSING and _compare(left, c.op, c.value)
            ]
            if not c.all:
                if not hits:
                    return _MISSING
                value = hits[0]
            else:
                if i + 1 == len(comps):
                    return hits
                # ``.`` after ``#(...)#`` applies the rest of the segment to each match.
                mapped = [_walk(h, comps, i + 1) for h in hits]
                return [m for m in mapped if m is not _MISSING]
        elif isinstance(c, _Multi):
            value = [v for p in c.paths if (v := p.get(value)) is not _MISSING]
        elif c == "@this":
            pass
        elif c == "#":
            if not isinstance(value, list):
                return _MISSING
            value = len(value)
        else:
            value = _step(value, c)
        i += 1
    return value


def condition_holds(path: Path, doc: Any) -> tuple[bool, Mapping[str, Any] | None]:
    """Katib's rule: whether ``path`` selects an object or a non-empty array in ``doc``.

    Returns:
        Whether the condition holds, and the object it selected (the first element of an
        array) so its ``reason`` and ``message`` can be reported; None when not an object.
    """
    value = path.get(doc)
    if isinstance(value, Mapping):
        return True, value
    if isinstance(value, list) and value:
        first = value[0]
        return True, first if isinstance(first, Mapping) else None
    return False, None
