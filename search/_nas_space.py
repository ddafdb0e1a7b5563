"""Neural-architecture spaces: Katib's ``nasConfig`` (or a native form) as typed values.

A :class:`NasSpace` holds the graph (``numLayers``, ``inputSizes``, ``outputSizes``) and the
operations expanded as Katib's ENAS suggestion expands them: every list-valued parameter of an
operation is crossed with the others (``filter_size [3, 5] x num_filter [16, 32]`` gives four
operations), in Katib's order, and each expanded operation is addressed by its index.

An :class:`Architecture` is what Katib's ENAS hands a trial: one operation index per layer and,
for layer ``i``, ``i`` skip bits. As in Katib's ``ModelConstructor``, skip bit ``j`` of layer
``i`` connects *node* ``j`` to layer ``i``'s input, where node 0 is the network input and node
``j > 0`` is the output of layer ``j - 1``; the previous node (``i``) is always connected.

This module is pure Python (no torch): the search side samples and encodes architectures, the
``nas`` package builds and trains them.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from automl.core import ExperimentSpec, Parameter, ParameterType, ParamValue
from automl.errors import SpecError, SpecIssue

__all__ = [
    "OPERATION_TYPES",
    "REDUCTION_TYPES",
    "Architecture",
    "NasSpace",
    "Operation",
    "OperationParam",
]

REDUCTION_TYPES = ("max_pooling", "avg_pooling")


@dataclass(frozen=True)
class OperationParam:
    """One parameter an operation type takes: Katib's default and whether it is a size."""

    default: int | str | None
    choices: tuple[str, ...] = ()  # for a parameter naming a kind (reduction_type)
    minimum: int = 1
    doc: str = ""


def _p(default: int | None, doc: str, minimum: int = 1) -> OperationParam:
    return OperationParam(default, (), minimum, doc)


_FILTER = _p(3, "kernel side (odd sizes keep the spatial size at stride 1)")
_NUM_FILTER = _p(64, "output channels")
_STRIDE = _p(1, "stride (2 halves the spatial size)")
_MULT = _p(1, "depthwise channel multiplier")

#: Operation types, their parameters and defaults. The ENAS four (``convolution``,
#: ``separable_convolution``, ``depthwise_convolution``, ``reduction``) take Katib's ENAS
#: trial's parameters and defaults (``op_library.py``); the DARTS ones (``dilated_convolution``,
#: ``avg_pooling``, ``max_pooling``, ``skip_connection``) take ``filter_size`` as Katib's DARTS
#: does, plus the channels and stride a layer-wise network needs.
OPERATION_TYPES: Mapping[str, Mapping[str, OperationParam]] = {
    "convolution": {"filter_size": _FILTER, "num_filter": _NUM_FILTER, "stride": _STRIDE},
    "separable_convolution": {
        "filter_size": _FILTER,
        "num_filter": _NUM_FILTER,
        "stride": _STRIDE,
        "depth_multiplier": _MULT,
    },
    "depthwise_convolution": {
        "filter_size": _FILTER,
        "stride": _STRIDE,
        "depth_multiplier": _MULT,
    },
    "dilated_convolution": {
        "filter_size": _FILTER,
        "num_filter": _NUM_FILTER,
        "stride": _STRIDE,
        "dilation": _p(2, "spacing between kernel taps"),
    },
    "reduction": {
        "reduction_type": OperationParam("max_pooling", REDUCTION_TYPES, doc="pooling kind"),
        "pool_size": _p(2, "pooling window side"),
        "stride": _p(None, "stride (defaults to pool_size, as Keras does)"),
    },
    "avg_pooling": {"filter_size": _FILTER, "stride": _STRIDE},
    "max_pooling": {"filter_size": _FILTER, "stride": _STRIDE},
    "skip_connection": {},
}

# Short tags for operation names: filter sizes read "3x3", others carry a letter.
_TAGS = {"stride": "s", "depth_multiplier": "m", "dilation": "d"}


def _katib_json(raw: str) -> Any:
    """Parse a JSON value as Katib writes it: maybe quoted, maybe with single quotes."""
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return json.loads(text.replace("'", '"'))


@dataclass(frozen=True)
class Operation:
    """One expanded operation: a Katib ``operationType`` with one value per parameter.

    Values are kept as Katib's ENAS suggestion passes them (a categorical value stays a string,
    an int range gives ints) so that :meth:`to_katib` matches Katib's ``nn_config`` embedding;
    :meth:`value` reads one typed, with the type's default when absent.

    Raises:
        SpecError: Unknown type, unknown parameter or a value that breaks the parameter's rule.
    """

    type: str
    params: Mapping[str, int | float | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        issues = _operation_problems(self.type, self.params, "operation")
        if issues:
            raise SpecError(issues)

    def __hash__(self) -> int:
        return hash((self.type, tuple(sorted((k, str(v)) for k, v in self.params.items()))))

    def value(self, name: str) -> int | str | None:
        """Parameter ``name`` typed (int, or the choice string), else the type's default."""
        spec = OPERATION_TYPES[self.type][name]
        if name not in self.params:
            return spec.default
        raw = self.params[name]
        return str(raw) if spec.choices else _as_int(raw)

    def int_value(self, name: str) -> int:
        """Integer parameter ``name`` (with the type's default)."""
        v = self.value(name)
        if not isinstance(v, int):
            raise SpecError(f"has no integer value for {name!r}", path=f"operation.{name}")
        return v

    @property
    def name(self) -> str:
        """A stable readable id, e.g. ``convolution_3x3_32`` or ``max_pooling_3x3_s2``."""
        parts = [self.type]
        for pname in OPERATION_TYPES[self.type]:
            if pname not in self.params:
                continue
            v = self.value(pname)
            if pname in ("filter_size", "pool_size"):
                parts.append(f"{v}x{v}")
            elif pname == "reduction_type":
                parts.append(str(v).removesuffix("_pooling"))
            elif pname in _TAGS:
                parts.append(f"{_TAGS[pname]}{v}")
            else:
                parts.append(str(v))
        return "_".join(parts)

    def to_katib(self, index: int) -> dict[str, Any]:
        """Katib's embedding entry: ``{"opt_id", "opt_type", "opt_params"}``."""
        return {"opt_id": index, "opt_type": self.type, "opt_params": dict(self.params)}


def _as_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(raw)
    if isinstance(raw, int):
        return raw
    f = float(raw)
    if not f.is_integer():
        raise ValueError(raw)
    return int(f)


def _operation_problems(op_type: str, params: Mapping[str, Any], path: str) -> list[SpecIssue]:
    spec = OPERATION_TYPES.get(op_type)
    if spec is None:
        return [
            SpecIssue(
                f"{path}.operationType",
                f"must be one of {list(OPERATION_TYPES)}; got {op_type!r}",
            )
        ]
    out: list[SpecIssue] = []
    for pname, raw in params.items():
        out.extend(_value_problems(op_type, pname, raw, f"{path}.{pname}"))
    return out


def _value_problems(op_type: str, pname: str, raw: Any, path: str) -> list[SpecIssue]:
    spec = OPERATION_TYPES[op_type].get(pname)
    if spec is None:
        valid = list(OPERATION_TYPES[op_type]) or "none"
        return [SpecIssue(path, f"is not a parameter of {op_type!r}; valid parameters: {valid}")]
    if spec.choices:
        if str(raw) not in spec.choices:
            return [SpecIssue(path, f"must be one of {list(spec.choices)}; got {raw!r}")]
        return []
    try:
        v = _as_int(raw)
    except (TypeError, ValueError):
        return [SpecIssue(path, f"must be an integer >= {spec.minimum}; got {raw!r}")]
    if v < spec.minimum:
        return [SpecIssue(path, f"must be an integer >= {spec.minimum}; got {raw!r}")]
    return []


@dataclass(frozen=True)
class Architecture:
    """A layer-wise architecture: an operation index per layer and skip bits.

    Attributes:
        ops: Operation index (into :attr:`NasSpace.operations`) per layer.
        skips: ``skips[i]`` has ``i`` bits; bit ``j`` feeds node ``j`` (0 = network input,
            ``j > 0`` = output of layer ``j - 1``) into layer ``i`` besides node ``i``.
    """

    ops: tuple[int, ...]
    skips: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(self.skips):
            raise SpecError(
                f"has {len(self.ops)} operations but {len(self.skips)} skip lists",
                path="architecture",
            )
        for i, (op, skip) in enumerate(zip(self.ops, self.skips, strict=True)):
            if isinstance(op, bool) or not isinstance(op, int) or op < 0:
                raise SpecError(
                    f"must be an operation index >= 0; got {op!r}", path=f"architecture[{i}][0]"
                )
            if len(skip) != i or any(b not in (0, 1) or isinstance(b, bool) for b in skip):
                raise SpecError(
                    f"layer {i} needs {i} skip bits (0 or 1); got {list(skip)}",
                    path=f"architecture[{i}]",
                )

    @property
    def num_layers(self) -> int:
        """Number of layers."""
        return len(self.ops)

    def to_katib(self) -> list[list[int]]:
        """Katib's form: ``[[op0], [op1, s10], [op2, s20, s21], ...]``."""
        return [[op, *skip] for op, skip in zip(self.ops, self.skips, strict=True)]

    @classmethod
    def from_katib(cls, data: Sequence[Sequence[int]] | str) -> Architecture:
        """Read Katib's form, as a list or as the JSON string a trial receives.

        Raises:
            SpecError: Not a list of layers ``[op, skip...]`` with ``i`` skips at layer ``i``.
        """
        if isinstance(data, str):
            try:
                data = _katib_json(data)
            except ValueError:
                raise SpecError(
                    f"must be JSON like [[0], [1, 0]]; got {data!r}", path="architecture"
                ) from None
        if not isinstance(data, Sequence) or isinstance(data, str):
            raise SpecError(f"must be a list of layers; got {data!r}", path="architecture")
        ops: list[int] = []
        skips: list[tuple[int, ...]] = []
        for i, layer in enumerate(data):
            if not isinstance(layer, Sequence) or isinstance(layer, str) or not layer:
                raise SpecError(
                    f"must be a list [op, skips...]; got {layer!r}", path=f"architecture[{i}]"
                )
            ops.append(layer[0])
            skips.append(tuple(layer[1:]))
        return cls(tuple(ops), tuple(skips))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"ops": [...], "skips": [[...], ...]}``."""
        return {"ops": list(self.ops), "skips": [list(s) for s in self.skips]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Architecture:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(tuple(d["ops"]), tuple(tuple(s) for s in d["skips"]))
        except (KeyError, TypeError):
            raise SpecError(
                f"must be a mapping with 'ops' and 'skips'; got {d!r}", path="architecture"
            ) from None

    def __str__(self) -> str:
        return json.dumps(self.to_katib())


# -- parsing ------------------------------------------------------------------------------


@dataclass
class _RawOp:
    type: str
    path: str
    # (name, expanded values, path of the parameter's name)
    params: list[tuple[str, list[Any], str]]
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


@dataclass(frozen=True)
class NasSpace:
    """An architecture space: the graph and the expanded operations.

    Attributes:
        num_layers: Layers of the network.
        input_sizes: ``(height, width, channels)`` of the input (Katib's channels-last order),
            or empty when the data decide (DARTS).
        output_sizes: Output sizes; the last is the number of classes. Empty when the data
            decide.
        operations: The expanded operations in Katib's order; an architecture indexes them.
        katib_operations: The ``operations`` as written (for export); empty when built in
            Python, in which case :meth:`to_katib` writes one operation per expanded one.
        operation_paths: For each expanded operation, the field it came from (error paths).
    """

    num_layers: int
    input_sizes: tuple[int, ...]
    output_sizes: tuple[int, ...]
    operations: tuple[Operation, ...]
    katib_operations: tuple[Mapping[str, Any], ...] = field(
        default=(), compare=False, repr=False, hash=False
    )
    operation_paths: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def operation_path(self, index: int) -> str:
        """The field an expanded operation came from (``nas_config.operations[2]``...)."""
        if index < len(self.operation_paths):
            return self.operation_paths[index]
        return f"operations[{index}]"

    def __post_init__(self) -> None:
        issues: list[SpecIssue] = []
        _graph(
            self.num_layers,
            list(self.input_sizes) if self.input_sizes else None,
            list(self.output_sizes) if self.output_sizes else None,
            ("num_layers", "input_sizes", "output_sizes"),
            issues,
        )
        if not self.operations:
            issues.append(SpecIssue("operations", "must define at least one operation"))
        if issues:
            raise SpecError(issues)

    # -- constructors --

    @classmethod
    def from_katib(cls, nas_config: Mapping[str, Any], path: str = "nas_config") -> NasSpace:
        """Read Katib's ``nasConfig`` (``graphConfig``, ``operations``).

        Raises:
            SpecError: Every problem at once, with paths such as
                ``nas_config.operations[2].operationType`` or
                ``nas_config.operations[0].parameters[1].name``.
        """
        issues: list[SpecIssue] = []
        if not isinstance(nas_config, Mapping):
            raise SpecError(
                f"must be a mapping (graphConfig, operations); got {nas_config!r}", path
            )
        graph = nas_config.get("graphConfig")
        gpath = f"{path}.graphConfig"
        if not isinstance(graph, Mapping):
            issues.append(SpecIssue(gpath, "is required (numLayers, inputSizes, outputSizes)"))
            graph = {}
        layers, inputs, outputs = _graph(
            graph.get("numLayers"),
            graph.get("inputSizes"),
            graph.get("outputSizes"),
            (f"{gpath}.numLayers", f"{gpath}.inputSizes", f"{gpath}.outputSizes"),
            issues,
        )
        raw_ops: list[_RawOp] = []
        operations = nas_config.get("operations")
        if not isinstance(operations, list) or not operations:
            issues.append(SpecIssue(f"{path}.operations", "must define at least one operation"))
            operations = []
        for i, op in enumerate(operations):
            opath = f"{path}.operations[{i}]"
            if not isinstance(op, Mapping):
                issues.append(SpecIssue(opath, f"must be a mapping; got {op!r}"))
                continue
            op_type = str(op.get("operationType") or "")
            if op_type not in OPERATION_TYPES:
                issues.append(
                    SpecIssue(
                        f"{opath}.operationType",
                        f"must be one of {list(OPERATION_TYPES)}; got {op_type!r}",
                    )
                )
                continue
            params: list[tuple[str, list[Any], str]] = []
            raw_params = op.get("parameters") or []
            if not isinstance(raw_params, list):
                issues.append(
                    SpecIssue(f"{opath}.parameters", f"must be a list; got {raw_params!r}")
                )
                raw_params = []
            for j, rp in enumerate(raw_params):
                ppath = f"{opath}.parameters[{j}]"
                name, values = _katib_values(rp, ppath, issues)
                if name:
                    params.append((name, values, f"{ppath}.name"))
            raw_ops.append(_RawOp(op_type, opath, params, dict(op)))
        ops, sources = _expand(raw_ops, issues)
        if issues:
            raise SpecError(issues)
        return cls(
            layers,
            inputs,
            outputs,
            tuple(ops),
            tuple(r.katib for r in raw_ops),
            tuple(r.path for r in (raw_ops[i] for i in sources)),
        )

    @classmethod
    def from_native(cls, data: Mapping[str, Any], path: str = "nas") -> NasSpace:
        """Read the native form.

        Example::

            layers: 4
            input: [8, 8, 1]        # height, width, channels (optional)
            classes: 10             # or output: [10] (optional)
            operations:
              - {type: convolution, filter_size: [3, 5], num_filter: 16}
              - {type: reduction, reduction_type: [max_pooling, avg_pooling]}
              - {type: skip_connection}

        A parameter's value is one value or a list of values (crossed as Katib does).

        Raises:
            SpecError: Every problem at once, with paths such as ``nas.operations[1].pool``.
        """
        if not isinstance(data, Mapping):
            raise SpecError(f"must be a mapping (layers, operations, ...); got {data!r}", path)
        issues: list[SpecIssue] = []
        known = {"layers", "input", "classes", "output", "operations"}
        for key in data:
            if key not in known:
                issues.append(
                    SpecIssue(
                        f"{path}.{key}", f"is not a NAS field; valid fields: {sorted(known)}"
                    )
                )
        output = data.get("output")
        if data.get("classes") is not None:
            if output is not None:
                issues.append(SpecIssue(f"{path}.classes", "give classes or output, not both"))
            output = [data["classes"]]
        layers, inputs, outputs = _graph(
            data.get("layers"),
            data.get("input"),
            output,
            (f"{path}.layers", f"{path}.input", f"{path}.classes"),
            issues,
        )
        raw_ops: list[_RawOp] = []
        operations = data.get("operations")
        if not isinstance(operations, list) or not operations:
            issues.append(SpecIssue(f"{path}.operations", "must define at least one operation"))
            operations = []
        for i, op in enumerate(operations):
            opath = f"{path}.operations[{i}]"
            if not isinstance(op, Mapping):
                issues.append(SpecIssue(opath, f"must be a mapping with a type; got {op!r}"))
                continue
            op_type = str(op.get("type") or "")
            if op_type not in OPERATION_TYPES:
                issues.append(
                    SpecIssue(
                        f"{opath}.type", f"must be one of {list(OPERATION_TYPES)}; got {op_type!r}"
                    )
                )
                continue
            params: list[tuple[str, list[Any], str]] = []
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
            raw_ops.append(_RawOp(op_type, opath, params, katib))
        ops, sources = _expand(raw_ops, issues)
        if issues:
            raise SpecError(issues)
        return cls(
            layers,
            inputs,
            outputs,
            tuple(ops),
            tuple(r.katib for r in raw_ops),
            tuple(r.path for r in (raw_ops[i] for i in sources)),
        )

    @classmethod
    def from_spec(cls, spec: ExperimentSpec) -> NasSpace:
        """The space of an experiment spec's ``nas_config``.

        Raises:
            SpecError: The spec has no ``nas_config`` or it breaks a rule.
        """
        if spec.nas_config is None:
            raise SpecError("is required for a neural-architecture search", path="nas_config")
        return cls.from_katib(spec.nas_config, "nas_config")

    # -- Katib forms --

    def to_katib(self) -> dict[str, Any]:
        """Katib's ``nasConfig`` for this space (the operations as written when known)."""
        graph: dict[str, Any] = {"numLayers": self.num_layers}
        if self.input_sizes:
            graph["inputSizes"] = list(self.input_sizes)
        if self.output_sizes:
            graph["outputSizes"] = list(self.output_sizes)
        if self.katib_operations:
            ops = json.loads(json.dumps(list(self.katib_operations)))
        else:
            ops = []
            for op in self.operations:
                entry: dict[str, Any] = {"operationType": op.type}
                if op.params:
                    entry["parameters"] = [
                        {
                            "name": k,
                            "parameterType": "categorical",
                            "feasibleSpace": {"list": [str(v)]},
                        }
                        for k, v in op.params.items()
                    ]
                ops.append(entry)
        return {"graphConfig": graph, "operations": ops}

    def nn_config(self, arch: Architecture | None = None) -> dict[str, Any]:
        """Katib's ``nn_config`` payload.

        Args:
            arch: When given, the embedding holds only the operations it uses (as Katib's ENAS
                suggestion sends it); else every operation.
        """
        used = sorted(set(arch.ops)) if arch is not None else range(len(self.operations))
        return {
            "num_layers": self.num_layers,
            "input_sizes": list(self.input_sizes),
            "output_sizes": list(self.output_sizes),
            "embedding": {i: self.operations[i].to_katib(i) for i in used},
        }

    @property
    def operation_names(self) -> tuple[str, ...]:
        """Unique readable names of the operations (an index suffix breaks a tie)."""
        names = [op.name for op in self.operations]
        seen: dict[str, int] = {}
        for n in names:
            seen[n] = seen.get(n, 0) + 1
        return tuple(n if seen[n] == 1 else f"{n}#{i}" for i, n in enumerate(names))

    # -- multi-trial encoding --

    def parameters(self) -> tuple[Parameter, ...]:
        """Categorical choices encoding an architecture for a multi-trial search.

        ``layer_{i}_op`` takes an operation name; ``layer_{i}_skip_{j}`` (``j < i``) takes 0 or 1.
        """
        names = self.operation_names
        out: list[Parameter] = []
        for i in range(self.num_layers):
            out.append(
                Parameter(name=f"layer_{i}_op", type=ParameterType.CATEGORICAL, values=names)
            )
            for j in range(i):
                out.append(
                    Parameter(
                        name=f"layer_{i}_skip_{j}", type=ParameterType.CATEGORICAL, values=(0, 1)
                    )
                )
        return tuple(out)

    def decode(self, params: Mapping[str, ParamValue]) -> Architecture:
        """The architecture that :meth:`parameters`' values describe.

        Raises:
            SpecError: A value is missing or not one of the parameter's values.
        """
        index = {n: i for i, n in enumerate(self.operation_names)}
        ops: list[int] = []
        skips: list[tuple[int, ...]] = []
        for i in range(self.num_layers):
            key = f"layer_{i}_op"
            name = params.get(key)
            if not isinstance(name, str) or name not in index:
                raise SpecError(
                    f"must be one of the space's operations; got {name!r}",
                    path=f"parameters.{key}",
                )
            ops.append(index[name])
            bits: list[int] = []
            for j in range(i):
                skey = f"layer_{i}_skip_{j}"
                raw = params.get(skey)
                if raw is None or isinstance(raw, bool) or str(raw) not in ("0", "1"):
                    raise SpecError(f"must be 0 or 1; got {raw!r}", path=f"parameters.{skey}")
                bits.append(int(str(raw)))
            skips.append(tuple(bits))
        return Architecture(tuple(ops), tuple(skips))

    def encode(self, arch: Architecture) -> dict[str, ParamValue]:
        """Inverse of :meth:`decode`."""
        self.check(arch)
        names = self.operation_names
        out: dict[str, ParamValue] = {}
        for i, (op, skip) in enumerate(zip(arch.ops, arch.skips, strict=True)):
            out[f"layer_{i}_op"] = names[op]
            for j, bit in enumerate(skip):
                out[f"layer_{i}_skip_{j}"] = bit
        return out

    def random_architecture(self, rng: random.Random) -> Architecture:
        """A uniformly random architecture."""
        n = len(self.operations)
        return Architecture(
            tuple(rng.randrange(n) for _ in range(self.num_layers)),
            tuple(tuple(rng.randrange(2) for _ in range(i)) for i in range(self.num_layers)),
        )

    def check(self, arch: Architecture, path: str = "architecture") -> None:
        """Check that ``arch`` fits this space (layer count, operation indices).

        Raises:
            SpecError: It does not.
        """
        if arch.num_layers != self.num_layers:
            raise SpecError(
                f"has {arch.num_layers} layers; the space has numLayers={self.num_layers}", path
            )
        for i, op in enumerate(arch.ops):
            if op >= len(self.operations):
                raise SpecError(
                    f"operation index must be < {len(self.operations)}; got {op}",
                    path=f"{path}[{i}][0]",
                )

    def count(self) -> float:
        """Number of distinct architectures (may be huge; a float then)."""
        skips = self.num_layers * (self.num_layers - 1) // 2
        return float(len(self.operations)) ** self.num_layers * math.pow(2.0, skips)
