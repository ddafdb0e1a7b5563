"""Katib's neural-architecture-search algorithms (``enas``, ``darts``): settings and search spaces.

The suggesters live in :mod:`search._enas` (the LSTM controller) and
:mod:`search._nas_multitrial` (DARTS's one search trial, and architecture spaces for the other
algorithms); this module holds what is validated before any of them runs.

Names, defaults and rules are Katib's (``pkg/suggestion/v1beta1/nas/enas/AlgorithmSettings.py``,
``pkg/suggestion/v1beta1/nas/darts/service.py`` and ``nas/common/validation.py``):

* ENAS: an int setting must be ``>=`` its lower bound; a float setting must lie in
  ``(low, high]``; ``controller_temperature``, ``controller_tanh_const``,
  ``controller_entropy_weight`` and ``controller_skip_weight`` may be ``"None"`` (no limit).
  ``graphConfig`` needs ``numLayers``, ``inputSizes`` and ``outputSizes``.
* DARTS: ``num_epochs > 0``; learning rates, weight decays, ``w_momentum`` and ``w_grad_clip``
  ``>= 0``; ``batch_size >= 1`` or ``"None"``; ``num_workers >= 0``; ``init_channels``,
  ``print_step``, ``num_nodes``, ``stem_multiplier >= 1``. Katib's DARTS service ignores an
  unknown setting; here it is an error, as for every other algorithm (a misspelt setting would
  otherwise be dropped without a word).

Operation parameters also follow the builder's rules (:data:`search._nas_space.OPERATION_TYPES`):
a parameter the operation type does not take, or a value it cannot take (a filter size of 0, a
``reduction_type`` other than ``max_pooling``/``avg_pooling``), is an error naming the field.

Paths use the spec's own names (``algorithm.settings.<name>``, ``nas_config.operations[0]...``);
the Katib front door translates them to the document's
(``spec.algorithm.algorithmSettings[name=x]``).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from automl.core import ExperimentSpec, Parameter, ParameterType
from automl.errors import SpecError, SpecIssue

__all__ = [
    "NAS_ALGORITHMS",
    "NasAlgorithmInfo",
    "NasSetting",
    "darts_assignments",
    "enas_nn_config",
    "enas_search_space",
    "nas_algorithm_names",
    "nas_config_problems",
    "resolve_nas_settings",
]


@dataclass(frozen=True)
class NasSetting:
    """One NAS algorithm setting: its type, Katib's default and rule."""

    kind: str  # "int" or "float"
    default: Any
    rule: str
    check: Callable[[float], bool] = field(default=lambda v: True)
    allow_none: bool = False

    def parse(self, raw: Any, path: str) -> Any:
        """Coerce ``raw`` (Katib writes strings) and check the rule; ``"None"`` where allowed."""
        if self.allow_none and str(raw) == "None":
            return None
        rule = f'{self.rule} or "None"' if self.allow_none else self.rule
        try:
            if isinstance(raw, bool):
                raise ValueError
            value: Any = int(str(raw)) if self.kind == "int" else float(raw)
            if self.kind == "float" and math.isnan(value):
                raise ValueError
        except (TypeError, ValueError):
            raise SpecError([SpecIssue(path, f"must be {rule}; got {raw!r}")]) from None
        if not self.check(value) or (self.kind == "int" and abs(value) > 2**31 - 1):
            raise SpecError(
                [SpecIssue(path, f"must be {rule} and at most 2147483647; got {raw!r}")]
            )
        return value


def _int_min(low: int) -> NasSetting:
    return NasSetting("int", None, f"an integer >= {low}", lambda v: v >= low)


def _float_range(low: float, high: float | None, allow_none: bool = False) -> NasSetting:
    if high is None:
        return NasSetting("float", None, f"a number > {low:g}", lambda v: v > low, allow_none)
    return NasSetting(
        "float",
        None,
        f"a number in ({low:g}, {high:g}]",
        lambda v: low < v <= high,
        allow_none,
    )


def _with_default(s: NasSetting, default: Any) -> NasSetting:
    return NasSetting(s.kind, default, s.rule, s.check, s.allow_none)


@dataclass(frozen=True)
class NasAlgorithmInfo:
    """A Katib NAS algorithm: its settings, operation types and the assignments it returns."""

    description: str
    settings: Mapping[str, NasSetting]
    operation_types: tuple[str, ...]
    assignments: tuple[str, ...]
    needs_sizes: bool
    parameterless_operations: tuple[str, ...] = ()


_ENAS_SETTINGS: dict[str, NasSetting] = {
    "controller_hidden_size": _with_default(_int_min(1), 64),
    "controller_temperature": _with_default(_float_range(0, None, True), 5.0),
    "controller_tanh_const": _with_default(_float_range(0, None, True), 2.25),
    "controller_entropy_weight": _with_default(_float_range(0, None, True), 1e-5),
    "controller_baseline_decay": _with_default(_float_range(0, 1), 0.999),
    "controller_learning_rate": _with_default(_float_range(0, 1), 5e-5),
    "controller_skip_target": _with_default(_float_range(0, 1), 0.4),
    "controller_skip_weight": _with_default(_float_range(0, None, True), 0.8),
    "controller_train_steps": _with_default(_int_min(1), 50),
    "controller_log_every_steps": _with_default(_int_min(1), 10),
}


def _nonneg(default: float) -> NasSetting:
    return NasSetting("float", default, "a number >= 0", lambda v: v >= 0)


_DARTS_SETTINGS: dict[str, NasSetting] = {
    "num_epochs": NasSetting("int", 50, "an integer > 0", lambda v: v > 0),
    "w_lr": _nonneg(0.025),
    "w_lr_min": _nonneg(0.001),
    "w_momentum": _nonneg(0.9),
    "w_weight_decay": _nonneg(3e-4),
    "w_grad_clip": _nonneg(5.0),
    "alpha_lr": _nonneg(3e-4),
    "alpha_weight_decay": _nonneg(1e-3),
    "batch_size": NasSetting("int", 128, "an integer >= 1", lambda v: v >= 1, allow_none=True),
    "num_workers": NasSetting("int", 4, "an integer >= 0", lambda v: v >= 0),
    "init_channels": _with_default(_int_min(1), 16),
    "print_step": _with_default(_int_min(1), 50),
    "num_nodes": _with_default(_int_min(1), 4),
    "stem_multiplier": _with_default(_int_min(1), 3),
}

NAS_ALGORITHMS: dict[str, NasAlgorithmInfo] = {
    "enas": NasAlgorithmInfo(
        "Katib's ENAS: an RL controller samples a layer-wise architecture (operation id and "
        "skip connections per layer).",
        _ENAS_SETTINGS,
        ("convolution", "separable_convolution", "depthwise_convolution", "reduction"),
        ("architecture", "nn_config"),
        needs_sizes=True,
    ),
    "darts": NasAlgorithmInfo(
        "Katib's DARTS: one trial runs the differentiable search over the given operations.",
        _DARTS_SETTINGS,
        (
            "separable_convolution",
            "dilated_convolution",
            "avg_pooling",
            "max_pooling",
            "skip_connection",
        ),
        ("algorithm-settings", "search-space", "num-layers"),
        needs_sizes=False,
        parameterless_operations=("skip_connection",),
    ),
}


def nas_algorithm_names() -> list[str]:
    """Names of Katib's NAS algorithms (validated, not runnable here)."""
    return sorted(NAS_ALGORITHMS)


def resolve_nas_settings(spec: ExperimentSpec) -> dict[str, Any]:
    """Validate a NAS spec's algorithm settings and return them typed, with Katib's defaults.

    ``"None"`` (where Katib allows it) becomes None.

    Raises:
        SpecError: Unknown NAS algorithm, unknown setting or a value that breaks Katib's rule.
    """
    name = spec.algorithm.name
    info = NAS_ALGORITHMS.get(name)
    if info is None:
        raise SpecError(
            [
                SpecIssue(
                    "algorithm.name",
                    f"must be one of the NAS algorithms {nas_algorithm_names()}; got {name!r}",
                )
            ]
        )
    issues: list[SpecIssue] = []
    out: dict[str, Any] = {k: s.default for k, s in info.settings.items()}
    for key, raw in spec.algorithm.settings.items():
        path = f"algorithm.settings.{key}"
        setting = info.settings.get(key)
        if setting is None:
            issues.append(
                SpecIssue(
                    path,
                    f"is not a setting of {name!r}; valid settings: {sorted(info.settings)}",
                )
            )
            continue
        try:
            out[key] = setting.parse(raw, path)
        except SpecError as exc:
            issues.extend(exc.issues)
    if issues:
        raise SpecError(issues)
    return out


def _int_list(raw: Any) -> list[int] | None:
    if not isinstance(raw, list):
        return None
    out = []
    for v in raw:
        if isinstance(v, bool):
            return None
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            return None
        if out[-1] <= 0:
            return None
    return out


def nas_config_problems(
    algorithm: str,
    nas_config: Mapping[str, Any],
    operations: Sequence[tuple[str, Sequence[Parameter]]],
) -> list[SpecIssue]:
    """Katib's ``nasConfig`` rules for ``algorithm``, with ``nas_config.*`` paths.

    Args:
        algorithm: ``enas`` or ``darts`` (other names get only the generic rules).
        nas_config: The ``nasConfig`` as written (``graphConfig`` is read from it).
        operations: ``(operationType, parameters)`` per operation, parameters already parsed.
    """
    info = NAS_ALGORITHMS.get(algorithm)
    out: list[SpecIssue] = []
    graph = nas_config.get("graphConfig")
    gpath = "nas_config.graphConfig"
    if not isinstance(graph, Mapping):
        out.append(SpecIssue(gpath, "is required (numLayers, inputSizes, outputSizes)"))
        graph = {}
    layers = graph.get("numLayers")
    if layers is None:
        out.append(SpecIssue(f"{gpath}.numLayers", "is required"))
    elif isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        out.append(SpecIssue(f"{gpath}.numLayers", f"must be an integer >= 1; got {layers!r}"))
    for key in ("inputSizes", "outputSizes"):
        raw = graph.get(key)
        if raw is None:
            if info is not None and info.needs_sizes:
                out.append(SpecIssue(f"{gpath}.{key}", f"is required by {algorithm}"))
        elif not raw or _int_list(raw) is None:
            out.append(
                SpecIssue(
                    f"{gpath}.{key}", f"must be a non-empty list of integers > 0; got {raw!r}"
                )
            )
    if not operations:
        out.append(SpecIssue("nas_config.operations", "must define at least one operation"))
    for i, (op_type, params) in enumerate(operations):
        path = f"nas_config.operations[{i}]"
        if not op_type:
            out.append(SpecIssue(f"{path}.operationType", "is required"))
        elif info is not None and op_type not in info.operation_types:
            out.append(
                SpecIssue(
                    f"{path}.operationType",
                    f"must be one of {algorithm}'s operations {list(info.operation_types)}; "
                    f"got {op_type!r}",
                )
            )
        parameterless = info is not None and op_type in info.parameterless_operations
        if not params and not parameterless:
            out.append(
                SpecIssue(
                    f"{path}.parameters",
                    f"must define at least one parameter for operation {op_type!r}",
                )
            )
        seen: set[str] = set()
        for j, p in enumerate(params):
            ppath = f"{path}.parameters[{j}]"
            if p.name in seen:
                out.append(SpecIssue(f"{ppath}.name", f"must be unique; {p.name!r} appears twice"))
            seen.add(p.name)
            out.extend(p.problems(ppath))
            out.extend(_operation_parameter_problems(op_type, p, ppath))
            if p.type is ParameterType.DOUBLE and (p.step is None or p.step <= 0):
                out.append(
                    SpecIssue(
                        f"{ppath}.step",
                        "must be set and > 0 for a double parameter of a NAS operation "
                        f"(Katib's rule); got {p.step!r}",
                    )
                )
            if algorithm == "enas":
                if p.type is ParameterType.INT and p.step is None:
                    out.append(
                        SpecIssue(
                            f"{ppath}.step",
                            "is required for an int parameter of an ENAS operation "
                            "(ENAS enumerates range(min, max + 1, step))",
                        )
                    )
                if p.type is ParameterType.DISCRETE:
                    out.append(
                        SpecIssue(
                            f"{ppath}.parameterType",
                            "must be categorical, int or double for an ENAS operation; "
                            "got 'discrete'",
                        )
                    )
        if (
            algorithm == "darts"
            and params
            and params[0].type not in (ParameterType.CATEGORICAL, ParameterType.DISCRETE)
        ):
            out.append(
                SpecIssue(
                    f"{path}.parameters[0].parameterType",
                    "must be categorical for DARTS (its list holds the filter sizes); "
                    f"got {params[0].type.value!r}",
                )
            )
    return out


def _operation_parameter_problems(op_type: str, p: Parameter, path: str) -> list[SpecIssue]:
    """The builder's rules (:data:`search._nas_space.OPERATION_TYPES`) for one parameter.

    An unknown name, or a value the operation cannot take (a filter size of 0, a reduction
    type other than max or average pooling), is reported here, before any trial starts.
    """
    from search._nas_space import OPERATION_TYPES, _value_problems

    known = OPERATION_TYPES.get(op_type)
    if known is None or not p.name:
        return []
    if p.name not in known:
        valid = list(known) or "none"
        return [
            SpecIssue(
                f"{path}.name",
                f"is not a parameter of {op_type!r}; got {p.name!r}; valid parameters: {valid}",
            )
        ]
    if p.type is ParameterType.DOUBLE and (p.step is None or p.step <= 0):
        return []  # reported above; its grid cannot be enumerated
    try:
        values = p.grid()
    except SpecError:
        return []
    for v in values:
        found = _value_problems(op_type, p.name, v, path)
        if found:
            return [SpecIssue(f"{path}.feasibleSpace", f"{p.name}: {found[0].message}")]
    return []


# -- assignments, as Katib's services build them --------------------------------------------


def _katib_str(obj: Any) -> str:
    """``json.dumps`` with double quotes turned into single ones, as Katib's NAS services do."""
    return json.dumps(obj).replace('"', "'")


def enas_search_space(
    operations: Sequence[tuple[str, Sequence[Parameter]]],
) -> list[dict[str, Any]]:
    """ENAS's expanded operations: one entry per combination of each operation's parameters.

    Each entry is ``{opt_id, opt_type, opt_params}`` as Katib's ``SearchSpace`` builds it.
    """
    space: list[dict[str, Any]] = []
    for op_type, params in operations:
        names = [p.name for p in params]
        values: list[list[Any]] = []
        for p in params:
            if p.type is ParameterType.INT:
                assert p.min is not None and p.max is not None
                values.append(list(range(int(p.min), int(p.max) + 1, int(p.step or 1))))
            elif p.type is ParameterType.DOUBLE:
                values.append(p.grid())
            else:
                values.append([str(v) for v in p.values])
        for combo in itertools.product(*values):
            space.append(
                {
                    "opt_id": len(space),
                    "opt_type": op_type,
                    "opt_params": dict(zip(names, combo, strict=True)),
                }
            )
    return space


def enas_nn_config(
    nas_config: Mapping[str, Any],
    operations: Sequence[tuple[str, Sequence[Parameter]]],
    architecture: Sequence[Sequence[int]],
) -> str:
    """ENAS's ``nn_config`` assignment for ``architecture`` (Katib's string form)."""
    graph = nas_config.get("graphConfig") or {}
    space = enas_search_space(operations)
    embedding: dict[int, Any] = {}
    for layer in architecture:
        embedding[layer[0]] = space[layer[0]]
    cfg = {
        "num_layers": graph.get("numLayers"),
        "input_sizes": graph.get("inputSizes"),
        "output_sizes": graph.get("outputSizes"),
        "embedding": embedding,
    }
    return _katib_str(cfg)


def darts_assignments(
    spec: ExperimentSpec, operations: Sequence[tuple[str, Sequence[Parameter]]]
) -> dict[str, str]:
    """The assignments Katib's DARTS service returns (the same for every trial).

    ``algorithm-settings`` holds the defaults updated with the settings as written (strings, as
    Katib passes them; ``"None"`` becomes null), ``search-space`` the operations expanded by
    filter size, ``num-layers`` the graph's layer count.
    """
    info = NAS_ALGORITHMS["darts"]
    settings: dict[str, Any] = {k: s.default for k, s in info.settings.items()}
    for k, v in spec.algorithm.settings.items():
        settings[k] = None if v == "None" else v
    space: list[str] = []
    for op_type, params in operations:
        if op_type in info.parameterless_operations:
            space.append(op_type)
        elif params:
            for size in params[0].values:
                space.append(f"{op_type}_{size}x{size}")
    graph = (spec.nas_config or {}).get("graphConfig") or {}
    return {
        "algorithm-settings": _katib_str(settings),
        "search-space": _katib_str(space),
        "num-layers": str(graph.get("numLayers")),
    }
