"""Helpers shared by the YAML front doors: YAML loading (:mod:`._yaml`), durations, error paths."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from automl.core import ExperimentSpec, spec_problems
from automl.errors import SpecError, SpecIssue
from automl.spec._limits import grid_problems
from automl.spec._yaml import load_yaml

__all__ = ["check", "existing", "load_yaml", "parse_duration", "pydantic_issues"]

_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*"
    r"(?:(\d+(?:\.\d+)?)\s*s?)?\s*$"
)


def existing(base: Path, raw: str, kind: str) -> Path | None:
    """``raw`` (``~`` expanded, relative to ``base``) resolved, if it is an existing ``kind``.

    ``kind`` is ``"dir"`` or ``"file"``. A path the OS cannot even look up (a NUL byte, a name
    longer than the file system allows) is simply not there: None, never an exception.
    """
    try:
        p = Path(raw).expanduser()
        p = p if p.is_absolute() else (base / p).resolve()
        return p if (p.is_dir() if kind == "dir" else p.is_file()) else None
    except (OSError, ValueError, RuntimeError):
        return None


def parse_duration(value: Any, path: str) -> float | None:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h30m"``; None stays None.

    Raises:
        SpecError: Not a duration.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(str(value))
    if not m or not any(m.groups()):
        raise SpecError(
            [
                SpecIssue(
                    path, f"must be a duration like 90, '90s', '15m' or '1h30m'; got {value!r}"
                )
            ]
        )
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def pydantic_issues(exc: ValidationError, prefix: str = "") -> list[SpecIssue]:
    """Turn pydantic's errors into issues with field paths as the user wrote them."""
    out = []
    for err in exc.errors():
        path = prefix
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif str(part).startswith(("function-", "union[", "constrained")):
                continue
            else:
                path = f"{path}.{part}" if path else str(part)
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "is not a known field"
        elif kind == "missing":
            msg = "is required"
        else:
            msg = f"{err['msg'][0].lower()}{err['msg'][1:]}; got {err.get('input')!r}"
        out.append(SpecIssue(path, msg))
    return out


def check(spec: ExperimentSpec, translate: Any, extra: Sequence[SpecIssue] = ()) -> ExperimentSpec:
    """Validate a built spec (core rules and algorithm settings).

    Every issue found is raised at once, with paths translated to the user's document.
    """
    from search import resolve_settings, resolve_stopper_settings

    issues = list(spec_problems(spec))
    if spec.algorithm.name == "grid":
        issues.extend(grid_problems(spec.parameters))
    try:
        resolve_settings(spec)
    except SpecError as exc:
        issues.extend(exc.issues)
    if spec.early_stopping is not None:
        try:
            resolve_stopper_settings(spec)
        except SpecError as exc:
            issues.extend(exc.issues)
    # ``extra`` holds what the front door found before the spec was built (a field it could not
    # read): the rules' view of the same field (built from a stand-in) is left out.
    unique = list(extra)
    found = {i.path for i in extra}
    seen = {(i.path, i.message) for i in extra}
    for i in issues:
        tr = SpecIssue(translate(i.path), i.message)
        if (tr.path, tr.message) not in seen and tr.path not in found:
            seen.add((tr.path, tr.message))
            unique.append(tr)
    if unique:
        raise SpecError(unique)
    return spec
