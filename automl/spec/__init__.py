"""Front doors to :class:`~automl.core.ExperimentSpec`: the native YAML form and Katib documents.

Parsing is pure: :func:`parse_spec` reads text and returns a validated spec or raises a
:class:`~automl.errors.SpecError` listing every problem with its field path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from automl.core import ExperimentSpec, validate_spec
from automl.errors import SpecError, SpecIssue
from automl.spec._common import load_yaml, parse_duration
from automl.spec._export import dump_katib, to_katib
from automl.spec._native import parse_native
from automl.spec._overrides import BudgetOverride
from automl.spec._render import RenderedTrial, render_trials, resolved_spec_dict
from automl.spec._yaml import MAX_BYTES

__all__ = [
    "BudgetOverride",
    "RenderedTrial",
    "dump_katib",
    "load_spec",
    "parse_duration",
    "parse_spec",
    "render_trials",
    "resolved_spec_dict",
    "to_katib",
    "validate_spec",
]


def parse_spec(
    text: str,
    *,
    base_dir: str | Path = ".",
    filename: str = "<spec>",
    adjust: Callable[[ExperimentSpec], ExperimentSpec] | None = None,
) -> ExperimentSpec:
    """Parse and validate an experiment document (native or Katib ``kubeflow.org/v1beta1``).

    Args:
        text: YAML (or JSON) text.
        base_dir: Directory relative paths in the spec are resolved against.
        filename: Name used in messages.
        adjust: Applied to the built spec before its rules are checked (a
            :class:`BudgetOverride` from the command line).

    Raises:
        SpecError: Malformed YAML or any broken rule, each with its field path.
    """
    data = load_yaml(text, filename)
    api = data.get("apiVersion")
    base = Path(base_dir)
    if data.get("kind") == "Experiment" or (
        isinstance(api, str) and api.startswith("kubeflow.org")
    ):
        # Katib's models (about 25 ms of imports) load only for a Katib document.
        from automl.spec._katib import KATIB_API_VERSION, parse_katib

        if api != KATIB_API_VERSION:
            raise SpecError(
                [
                    SpecIssue(
                        "apiVersion",
                        f"must be {KATIB_API_VERSION} for a Katib Experiment; got {api!r}",
                    )
                ]
            )
        return parse_katib(data, base, adjust)
    return parse_native(data, base, adjust)


def load_spec(
    path: str | Path, adjust: Callable[[ExperimentSpec], ExperimentSpec] | None = None
) -> ExperimentSpec:
    """Read and parse an experiment file; relative paths in it resolve against its directory.

    ``adjust`` is applied to the built spec before its rules are checked (see :func:`parse_spec`).

    Raises:
        SpecError: The file cannot be read, or the spec is invalid.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise SpecError(
                [
                    SpecIssue(
                        "",
                        f"{str(p)!r} is {size:,} bytes; an experiment file may be at most "
                        f"{MAX_BYTES:,} bytes",
                    )
                ]
            )
        raw = p.read_bytes()
    except OSError as exc:
        raise SpecError([SpecIssue("", f"cannot read {str(p)!r}: {exc.strerror or exc}")]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [
                SpecIssue(
                    "",
                    f"{str(p)!r} is not UTF-8 text: byte {raw[exc.start]:#04x} at offset "
                    f"{exc.start} cannot be decoded (save the file as UTF-8)",
                )
            ]
        ) from None
    return parse_spec(text, base_dir=p.parent.resolve(), filename=str(p), adjust=adjust)
