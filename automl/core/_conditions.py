"""Conditional search spaces: a parameter that exists only when others take given values.

A parameter's ``when`` maps parent parameter names to the values under which it is *active*
(``when: {model: svm}``, ``when: {model: [forest, boosting]}``); several parents must all match.
A parent may be conditional itself (nested conditions), so a parameter is active when every
parent is active and holds one of the listed values. An inactive parameter has no value at all:
a trial neither receives it nor stores it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from automl.core._spec import Parameter, ParameterType, ParamValue
from automl.errors import SpecError, SpecIssue

__all__ = [
    "active_names",
    "active_params",
    "condition_problems",
    "has_conditions",
    "ordered",
    "placeholder_problems",
    "value_in",
    "with_defaults",
]


def has_conditions(parameters: Iterable[Parameter]) -> bool:
    """Whether any parameter has a ``when`` condition."""
    return any(p.when for p in parameters)


def value_in(value: ParamValue, choices: Sequence[ParamValue]) -> bool:
    """Whether ``value`` is one of ``choices``.

    Same type and value first (so True is not 1), then the text form (Katib passes every value as
    a string), so a stored or string value matches its typed choice.
    """
    if any(type(c) is type(value) and c == value for c in choices):
        return True
    return any(_text(c) == _text(value) for c in choices)


def _text(v: ParamValue) -> str:
    # How a value reads on a command line or in a Katib document (true, not True).
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def condition_problems(parameters: Sequence[Parameter]) -> list[SpecIssue]:
    """Every rule the parameters' ``when`` conditions break, with ``parameters[i].when.x`` paths.

    A condition must name another parameter that is categorical or discrete, list only values
    that parameter can take, and the conditions must not form a cycle.
    """
    by_name = {p.name: p for p in parameters}
    out: list[SpecIssue] = []
    for i, p in enumerate(parameters):
        path = f"parameters[{i}].when"
        if p.default is not None and not p.when:
            out.append(
                SpecIssue(
                    f"parameters[{i}].default",
                    "is the value a command placeholder takes while the parameter is inactive, "
                    f"so it needs a when condition; got default {p.default!r} without one",
                )
            )
        for parent, values in p.when.items():
            ppath = f"{path}.{parent}"
            if parent == p.name:
                out.append(SpecIssue(ppath, f"a parameter cannot depend on itself ({p.name!r})"))
                continue
            target = by_name.get(parent)
            if target is None:
                out.append(
                    SpecIssue(ppath, f"must name a parameter ({sorted(by_name)}); got {parent!r}")
                )
                continue
            if target.type not in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
                out.append(
                    SpecIssue(
                        ppath,
                        "a condition must be on a categorical or discrete parameter; "
                        f"{parent!r} is {target.type.value}",
                    )
                )
                continue
            if not values:
                out.append(SpecIssue(ppath, "must list at least one value; got []"))
            for v in values:
                if not value_in(v, target.values):
                    out.append(
                        SpecIssue(
                            ppath,
                            f"must be one of the values of {parent!r} {list(target.values)}; "
                            f"got {v!r}",
                        )
                    )
    cycle = _cycle(parameters)
    if cycle:
        i = next(k for k, p in enumerate(parameters) if p.name == cycle[0])
        out.append(
            SpecIssue(
                f"parameters[{i}].when.{cycle[1]}",
                "conditions must not form a cycle; got " + " -> ".join([*cycle, cycle[0]]),
            )
        )
    return out


def _cycle(parameters: Sequence[Parameter]) -> list[str]:
    """One cycle of the ``when`` graph (child -> parent), as a list of names, or []."""
    by_name = {p.name: p for p in parameters}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = 1
        stack.append(name)
        for parent in by_name[name].when:
            if parent == name or parent not in by_name:
                continue  # reported on its own
            if state.get(parent) == 1:
                return stack[stack.index(parent) :]
            if parent not in state:
                found = visit(parent)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return []

    for p in parameters:
        if p.name not in state:
            found = visit(p.name)
            if found:
                return found
    return []


def ordered(parameters: Sequence[Parameter]) -> tuple[Parameter, ...]:
    """The parameters with every parent before its children (stable otherwise).

    Raises:
        SpecError: The conditions form a cycle or name an unknown parameter.
    """
    problems = [i for i in condition_problems(parameters) if ".when." in i.path]
    if problems:
        raise SpecError(problems)
    by_name = {p.name: p for p in parameters}
    done: dict[str, Parameter] = {}

    def place(p: Parameter) -> None:
        if p.name in done:
            return
        for parent in p.when:
            place(by_name[parent])
        done[p.name] = p

    for p in parameters:
        place(p)
    return tuple(done.values())


def active_names(
    parameters: Sequence[Parameter], assignment: Mapping[str, ParamValue]
) -> list[str]:
    """Names of the parameters active under ``assignment``, parents first.

    A parameter is active when it has no condition, or when every parent it names is active and
    ``assignment`` gives that parent one of the listed values. Values of inactive parameters in
    ``assignment`` are ignored.
    """
    active: list[str] = []
    seen: set[str] = set()
    for p in ordered(parameters):
        if all(
            parent in seen and parent in assignment and value_in(assignment[parent], values)
            for parent, values in p.when.items()
        ):
            active.append(p.name)
            seen.add(p.name)
    return active


def active_params(
    parameters: Sequence[Parameter], assignment: Mapping[str, ParamValue]
) -> dict[str, ParamValue]:
    """``assignment`` without the values of parameters that are inactive under it."""
    return {n: assignment[n] for n in active_names(parameters, assignment) if n in assignment}


def with_defaults(
    parameters: Sequence[Parameter], params: Mapping[str, ParamValue]
) -> dict[str, ParamValue]:
    """``params`` plus the ``default`` of every inactive parameter that has one.

    What a command template renders: its placeholders for a parameter that is inactive in this
    trial take the parameter's default (validation requires one). The store keeps ``params``.
    """
    out = dict(params)
    for p in parameters:
        if p.name not in out and p.default is not None:
            out[p.name] = p.default
    return out


def placeholder_problems(
    parameters: Sequence[Parameter], targets: Iterable[str], path: str
) -> list[SpecIssue]:
    """Placeholders of a command for conditional parameters that have no default.

    Args:
        parameters: The space.
        targets: The parameter names the command's placeholders stand for.
        path: Field path of the command, for the issues.
    """
    by_name = {p.name: p for p in parameters}
    out: list[SpecIssue] = []
    for name in dict.fromkeys(targets):
        p = by_name.get(name)
        if p is None or not p.when or p.default is not None:
            continue
        cond = ", ".join(f"{k} in {list(v)}" for k, v in p.when.items())
        out.append(
            SpecIssue(
                path,
                f"uses ${{{name}}}, but {name!r} is inactive unless {cond}, and then the "
                f"placeholder has no value; give the parameter a default (default: ...) to "
                "stand there while it is inactive",
            )
        )
    return out
