"""Parsing of NAS spaces: Katib's ``nasConfig`` and the native form, checked and expanded.

This module holds the pure parsing behind :meth:`search._nas_space.NasSpace.from_katib` and
:meth:`search._nas_space.NasSpace.from_native`: the graph fields, Katib's ParameterSpec
expansion, the operations loop both forms share (:func:`_raw_operations`) and the crossing of
list-valued parameters into expanded operations (:func:`_expand`). Every problem is collected
and raised at once as a :class:`~automl.errors.SpecError`. :class:`NasSpace` itself stays in
``search._nas_space``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from automl.core import Parameter, ParameterType
from automl.errors import SpecError, SpecIssue
from search._nas_space import OPERATION_TYPES, Operation, _as_int, _value_problems

__all__ = ["ParsedSpace", "parse_katib", "parse_native"]

# (name, expanded values, path of the parameter's name)
_Params = list[tuple[str, list[Any], str]]
#: Reads one operation's parameters: (operation, its type, its path, issues) -> (parameters,
#: the operation's Katib form).
_ParamReader = Callable[
    [Mapping[str, Any], str, str, list[SpecIssue]], tuple[_Params, dict[str, Any]]
]


@dataclass(frozen=True)
class ParsedSpace:
    """The fields of a parsed :class:`~search._nas_space.NasSpace`, in its field order.

    Attributes:
        num_layers: Layers of the network.
        input_sizes: ``(height, width, channels)`` of the input, or empty.
        output_sizes: Output sizes, or empty.
        operations: The expanded operations in Katib's order.
        katib_operations: The operations in Katib's form, one per operation as written.
        operation_paths: For each expanded operation, the field it came from.
    """

    num_layers: int
    input_sizes: tuple[int, ...]
    output_sizes: tuple[int, ...]
    operations: tuple[Operation, ...]
    katib_operations: tuple[Mapping[str, Any], ...]
    operation_paths: tuple[str, ...]


@dataclass
class _RawOp:
    type: str
    path: str
    params: _Params
    katib: dict[str, Any]


def _katib_values(raw: Any, path: str, issues: list[SpecIssue]) -> tuple[str, list[Any]]:
    """Name and expanded values of one Katib ParameterSpec (ENAS's expansion)."""
    if not isinstance(raw, Mapping):
        issues.append(
            SpecIssue(path, f"must be a mapping (name, parameterType, ...); got {raw!r}")
        )
        return "", []
    name = str(raw.get("name") or "")
    ptype = str(raw.get("parameterType") or "")
    space = raw.get("feasibleSpace") or {}
    if not name:
        issues.append(SpecIssue(f"{path}.name", "is required"))
    if not isinstance(space, Mapping):
        issues.append(SpecIssue(f"{path}.feasibleSpace", f"must be a mapping; got {space!r}"))
        return name, []
    if ptype in ("categorical", "discrete"):
        values = space.get("list")
        if not isinstance(values, list) or not values:
            issues.append(
                SpecIssue(
                    f"{path}.feasibleSpace.list", f"must be a non-empty list; got {values!r}"
                )
            )
            return name, []
        return name, [str(v) for v in values]
    if ptype in ("int", "double"):
        try:
            p = Parameter(
                name=name or "p",
                type=ParameterType(ptype),
                min=float(space["min"]),
                max=float(space["max"]),
                step=float(space["step"]) if space.get("step") not in (None, "") else None,
            )
            if p.min is not None and p.max is not None and p.min > p.max:
                raise ValueError
            if ptype == "double" and (p.step is None or p.step <= 0):
                raise ValueError
            grid = p.grid()
        except (KeyError, TypeError, ValueError):
            issues.append(
                SpecIssue(
                    f"{path}.feasibleSpace",
                    f"must give min <= max (and step > 0 for double) for a {ptype} "
                    f"parameter; got {dict(space)!r}",
                )
            )
            return name, []
        return name, [int(v) if ptype == "int" else v for v in grid]
    issues.append(
        SpecIssue(
            f"{path}.parameterType",
            f"must be categorical, discrete, int or double; got {ptype!r}",
        )
    )
    return name, []


def _graph(
    layers: Any,
    inputs: Any,
    outputs: Any,
    paths: tuple[str, str, str],
    issues: list[SpecIssue],
) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    n = 0
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        issues.append(SpecIssue(paths[0], f"must be an integer >= 1; got {layers!r}"))
    else:
        n = layers
    sizes: list[tuple[int, ...]] = []
    for raw, path, what in (
        (inputs, paths[1], "[height, width, channels]"),
        (outputs, paths[2], "[..., classes]"),
    ):
        if raw is None:
            sizes.append(())
            continue
        vals: list[int] = []
        ok = isinstance(raw, list) and bool(raw)
        for v in raw if isinstance(raw, list) else []:
            try:
                vals.append(_as_int(v))
            except (TypeError, ValueError):
                ok = False
        if not ok or any(v < 1 for v in vals):
            issues.append(SpecIssue(path, f"must be a list of integers > 0 {what}; got {raw!r}"))
            vals = []
        elif path == paths[1] and len(vals) != 3:
            issues.append(SpecIssue(path, f"must be {what} for an image network; got {raw!r}"))
            vals = []
        sizes.append(tuple(vals))
    return n, sizes[0], sizes[1]


def _expand(
    raw_ops: Sequence[_RawOp], issues: list[SpecIssue]
) -> tuple[list[Operation], list[int]]:
    """The expanded operations and, for each, the index of the operation it came from."""
    ops: list[Operation] = []
    sources: list[int] = []
    for index, rop in enumerate(raw_ops):
        spec = OPERATION_TYPES.get(rop.type)
        if spec is None:
            continue
        names: list[str] = []
        values: list[list[Any]] = []
        bad = False
        for pname, vals, ppath in rop.params:
            if pname in names:
                issues.append(SpecIssue(ppath, f"must be unique; {pname!r} appears twice"))
                bad = True
                continue
            if pname not in spec:
                valid = list(spec) or "none"
                issues.append(
                    SpecIssue(
                        ppath,
                        f"is not a parameter of {rop.type!r}; got {pname!r}; "
                        f"valid parameters: {valid}",
                    )
                )
                bad = True
                continue
            for v in vals:
                found = _value_problems(rop.type, pname, v, ppath)
                if found:
                    issues.append(SpecIssue(ppath, f"{pname}: {found[0].message}"))
                    bad = True
                    break
            names.append(pname)
            values.append(vals)
        if bad:
            continue
        for combo in itertools.product(*values):
            ops.append(Operation(rop.type, dict(zip(names, combo, strict=True))))
            sources.append(index)
    return ops, sources


def _raw_operations(
    operations: Any,
    path: str,
    type_key: str,
    not_mapping: str,
    read_params: _ParamReader,
    issues: list[SpecIssue],
) -> list[_RawOp]:
    """The operations loop both forms share: shape and type checks, then ``read_params``.

    Args:
        operations: The ``operations`` value as written.
        path: Path of the mapping holding ``operations``.
        type_key: Key naming an operation's type (``operationType`` or ``type``).
        not_mapping: Message start for an operation that is not a mapping.
        read_params: Reads the parameters of an operation whose type is known.
        issues: Problems found are appended here.
    """
    raw_ops: list[_RawOp] = []
    if not isinstance(operations, list) or not operations:
        issues.append(SpecIssue(f"{path}.operations", "must define at least one operation"))
        operations = []
    for i, op in enumerate(operations):
        opath = f"{path}.operations[{i}]"
        if not isinstance(op, Mapping):
            issues.append(SpecIssue(opath, f"{not_mapping}; got {op!r}"))
            continue
        op_type = str(op.get(type_key) or "")
        if op_type not in OPERATION_TYPES:
            issues.append(
                SpecIssue(
                    f"{opath}.{type_key}",
                    f"must be one of {list(OPERATION_TYPES)}; got {op_type!r}",
                )
            )
            continue
        params, katib = read_params(op, op_type, opath, issues)
        raw_ops.append(_RawOp(op_type, opath, params, katib))
    return raw_ops


def _katib_params(
    op: Mapping[str, Any], op_type: str, opath: str, issues: list[SpecIssue]
) -> tuple[_Params, dict[str, Any]]:
    """Parameters of a Katib operation (``parameters[j]`` ParameterSpecs)."""
    params: _Params = []
    raw_params = op.get("parameters") or []
    if not isinstance(raw_params, list):
        issues.append(SpecIssue(f"{opath}.parameters", f"must be a list; got {raw_params!r}"))
        raw_params = []
    for j, rp in enumerate(raw_params):
        ppath = f"{opath}.parameters[{j}]"
        name, values = _katib_values(rp, ppath, issues)
        if name:
            params.append((name, values, f"{ppath}.name"))
    return params, dict(op)


def _native_params(
    op: Mapping[str, Any], op_type: str, opath: str, issues: list[SpecIssue]
) -> tuple[_Params, dict[str, Any]]:
    """Parameters of a native operation (inline values or lists) and its Katib form."""
    params: _Params = []
    kparams: list[dict[str, Any]] = []
    for pname, raw in op.items():
        if pname == "type":
            continue
        values = list(raw) if isinstance(raw, list) else [raw]
        if not values:
            issues.append(SpecIssue(f"{opath}.{pname}", "must not be an empty list"))
            continue
        params.append((str(pname), [str(v) for v in values], f"{opath}.{pname}"))
        kparams.append(
            {
                "name": str(pname),
                "parameterType": "categorical",
                "feasibleSpace": {"list": [str(v) for v in values]},
            }
        )
    katib: dict[str, Any] = {"operationType": op_type}
    if kparams:
        katib["parameters"] = kparams
    return params, katib


def _finish(
    graph: tuple[int, tuple[int, ...], tuple[int, ...]],
    raw_ops: list[_RawOp],
    issues: list[SpecIssue],
) -> ParsedSpace:
    """Expand the operations; raise every problem found, else the parsed space."""
    ops, sources = _expand(raw_ops, issues)
    if issues:
        raise SpecError(issues)
    return ParsedSpace(
        *graph,
        tuple(ops),
        tuple(r.katib for r in raw_ops),
        tuple(r.path for r in (raw_ops[i] for i in sources)),
    )


def parse_katib(nas_config: Mapping[str, Any], path: str = "nas_config") -> ParsedSpace:
    """Parse Katib's ``nasConfig`` (``graphConfig``, ``operations``).

    Args:
        nas_config: The ``nasConfig`` mapping.
        path: Its path, for error messages.

    Returns:
        The space's fields.

    Raises:
        SpecError: Every problem at once.
    """
    issues: list[SpecIssue] = []
    if not isinstance(nas_config, Mapping):
        raise SpecError(f"must be a mapping (graphConfig, operations); got {nas_config!r}", path)
    graph = nas_config.get("graphConfig")
    gpath = f"{path}.graphConfig"
    if not isinstance(graph, Mapping):
        issues.append(SpecIssue(gpath, "is required (numLayers, inputSizes, outputSizes)"))
        graph = {}
    shape = _graph(
        graph.get("numLayers"),
        graph.get("inputSizes"),
        graph.get("outputSizes"),
        (f"{gpath}.numLayers", f"{gpath}.inputSizes", f"{gpath}.outputSizes"),
        issues,
    )
    raw_ops = _raw_operations(
        nas_config.get("operations"),
        path,
        "operationType",
        "must be a mapping",
        _katib_params,
        issues,
    )
    return _finish(shape, raw_ops, issues)


def parse_native(data: Mapping[str, Any], path: str = "nas") -> ParsedSpace:
    """Parse the native form (see :meth:`search._nas_space.NasSpace.from_native`).

    Args:
        data: The native mapping (``layers``, ``input``, ``classes``/``output``, ``operations``).
        path: Its path, for error messages.

    Returns:
        The space's fields.

    Raises:
        SpecError: Every problem at once.
    """
    if not isinstance(data, Mapping):
        raise SpecError(f"must be a mapping (layers, operations, ...); got {data!r}", path)
    issues: list[SpecIssue] = []
    known = {"layers", "input", "classes", "output", "operations"}
    for key in data:
        if key not in known:
            issues.append(
                SpecIssue(f"{path}.{key}", f"is not a NAS field; valid fields: {sorted(known)}")
            )
    output = data.get("output")
    if data.get("classes") is not None:
        if output is not None:
            issues.append(SpecIssue(f"{path}.classes", "give classes or output, not both"))
        output = [data["classes"]]
    shape = _graph(
        data.get("layers"),
        data.get("input"),
        output,
        (f"{path}.layers", f"{path}.input", f"{path}.classes"),
        issues,
    )
    raw_ops = _raw_operations(
        data.get("operations"),
        path,
        "type",
        "must be a mapping with a type",
        _native_params,
        issues,
    )
    return _finish(shape, raw_ops, issues)
