"""What a NAS trial found, as data and as display rows (``automl show``, the dashboard).

:func:`found_architecture` reads a trial's architecture: the layer-wise one (ENAS and
multi-trial NAS: ``attrs["architecture"]``, else the ``architecture`` assignment) or the DARTS
genotype (``outputs.json["nas"]`` written by ``nas.record_result``, else the ``Best-Genotype=``
line of the trial's log). :func:`architecture_rows` turns it into rows to print or tabulate:
one per layer (operation by name, inputs) or one per DARTS node (its two edges).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automl.core import ExperimentSpec, TrialRecord

__all__ = ["architecture_rows", "darts_state", "found_architecture", "logged_genotype"]


def found_architecture(spec: ExperimentSpec, trial: TrialRecord) -> dict[str, Any] | None:
    """What a NAS trial found, as data, or None.

    Returns:
        ``{"kind": "layers", "architecture": {"ops", "skips"}}`` for ENAS and multi-trial NAS,
        ``{"kind": "darts", "genotype": {...}, ...}`` for DARTS; None for other experiments or a
        trial that left nothing readable.
    """
    if spec.nas_config is None:
        return None
    data = (trial.outputs or {}).get("data") or {}
    described = data.get("nas") if isinstance(data, dict) else None  # nas.record_result
    if isinstance(described, dict) and described.get("kind") == "darts":
        return dict(described)
    genotype = logged_genotype(trial.workdir)
    if genotype is not None:
        return {"kind": "darts", "genotype": genotype}
    arch = _layer_architecture(trial)
    return None if arch is None else {"kind": "layers", "architecture": arch}


def _layer_architecture(trial: TrialRecord) -> dict[str, Any] | None:
    """The layer-wise architecture a trial trained: its attribute, else its assignment.

    The same reading as ``search._enas.trial_architecture``, without importing torch (the
    dashboard and ``automl show`` need no torch to display an architecture).
    """
    from search._nas_space import Architecture

    data = trial.attrs.get("architecture")
    try:
        if isinstance(data, Mapping):
            return Architecture.from_dict(data).to_dict()
        raw = trial.params.get("architecture")
        if isinstance(raw, str):
            return Architecture.from_katib(raw).to_dict()
    except Exception:  # a malformed stored value: nothing to show
        return None
    return None


def logged_genotype(workdir: str | None) -> dict[str, Any] | None:
    """The ``Best-Genotype=...`` line a Katib DARTS trial prints, read from its log."""
    if not workdir:
        return None
    log = Path(workdir) / "trial.log"
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if "Genotype(" in ln]
    except OSError:
        return None
    best = [ln for ln in lines if ln.startswith("Best-Genotype=")] or lines
    if not best:
        return None
    try:
        from nas import Genotype

        return Genotype.parse(best[-1]).to_dict()
    except Exception:  # torch missing or an unreadable line: nothing to show
        return None


def darts_state(src: int) -> str:
    """A DARTS edge's input: the two previous cells' outputs, then the cell's own nodes."""
    return "c_{k-2}" if src == 0 else "c_{k-1}" if src == 1 else f"node {src - 2}"


def architecture_rows(spec: ExperimentSpec, found: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Display rows of :func:`found_architecture`'s result.

    Layer-wise: ``{"layer", "operation", "inputs"}`` per layer, the operation by its readable
    name (``convolution_3x3_16``) and the inputs as ``input`` / ``layer j`` (the previous layer
    plus the skip connections). DARTS: ``{"cell", "node", "edges"}`` per node of the normal and
    reduction cells, each edge as ``op <- state``.
    """
    if found.get("kind") == "darts":
        g = found.get("genotype") or {}
        return [
            {
                "cell": cell,
                "node": i,
                "edges": ", ".join(f"{op} <- {darts_state(int(src))}" for op, src in node),
            }
            for cell in ("normal", "reduce")
            for i, node in enumerate(g.get(cell) or [])
        ]
    from search._nas_space import Architecture, NasSpace

    names = NasSpace.from_spec(spec).operation_names
    arch = Architecture.from_dict(found["architecture"])
    rows: list[dict[str, Any]] = []
    for i, (op, skips) in enumerate(zip(arch.ops, arch.skips, strict=True)):
        # Node 0 is the network input, node j > 0 the output of layer j - 1 (docs/nas.md).
        extra = [("input" if j == 0 else f"layer {j - 1}") for j, b in enumerate(skips) if b]
        main = "input" if i == 0 else f"layer {i - 1}"
        label = names[op] if op < len(names) else f"#{op}"
        rows.append({"layer": i, "operation": label, "inputs": ", ".join([main, *extra])})
    return rows
