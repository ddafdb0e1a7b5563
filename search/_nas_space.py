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
``nas`` package builds and trains them. Parsing ``nasConfig`` and the native form lives in
:mod:`search._nas_parse`; :meth:`NasSpace.from_katib` and :meth:`NasSpace.from_native` call it.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from automl.core import ExperimentSpec, Parameter, ParameterType, ParamValue
from automl.errors import SpecError, SpecIssue

if TYPE_CHECKING:
    from search._nas_parse import ParsedSpace

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
        from search._nas_parse import _graph

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
        from search._nas_parse import parse_katib

        return cls._from_parsed(parse_katib(nas_config, path))

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
        from search._nas_parse import parse_native

        return cls._from_parsed(parse_native(data, path))

    @classmethod
    def _from_parsed(cls, p: ParsedSpace) -> NasSpace:
        return cls(
            p.num_layers,
            p.input_sizes,
            p.output_sizes,
            p.operations,
            p.katib_operations,
            p.operation_paths,
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
