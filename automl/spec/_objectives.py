"""``objectives:`` and ``constraints:`` as the native YAML and :func:`automl.tune` write them.

Both front doors end here, so a list of objectives means the same thing wherever it is written:
the first objective becomes the spec's ``objective`` (single-objective code paths read only it),
the full list is kept in ``objectives`` when it has more than one item, and every objective and
constraint metric is collected (added to the first objective's ``additional_metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from automl.core import Constraint, Direction, MetricStrategy, Objective, parse_constraint
from automl.errors import SpecError, SpecIssue

__all__ = ["build_objectives"]

_ITEM_KEYS = ("metric", "direction", "goal", "strategy")


def _item(raw: Any, path: str, issues: list[SpecIssue]) -> tuple[Objective, str | None] | None:
    """One ``{metric, direction, goal, strategy}`` item, or None after recording its problems."""
    if not isinstance(raw, Mapping):
        issues.append(
            SpecIssue(path, f"must be a mapping {{metric, direction, goal}}; got {raw!r}")
        )
        return None
    bad = False
    for key in raw:
        if key not in _ITEM_KEYS:
            issues.append(SpecIssue(f"{path}.{key}", f"is not a field; known: {list(_ITEM_KEYS)}"))
            bad = True
    metric = raw.get("metric")
    if not isinstance(metric, str) or not metric.strip():
        issues.append(SpecIssue(f"{path}.metric", f"must be a metric name; got {metric!r}"))
        bad = True
    direction = raw.get("direction")
    if direction not in ("minimize", "maximize"):
        issues.append(
            SpecIssue(f"{path}.direction", f"must be 'minimize' or 'maximize'; got {direction!r}")
        )
        bad = True
    goal = raw.get("goal")
    if goal is not None and (isinstance(goal, bool) or not isinstance(goal, int | float)):
        issues.append(SpecIssue(f"{path}.goal", f"must be a number; got {goal!r}"))
        bad = True
    strategy = raw.get("strategy")
    if strategy is not None and strategy not in ("min", "max", "latest"):
        issues.append(
            SpecIssue(f"{path}.strategy", f"must be min, max or latest; got {strategy!r}")
        )
        bad = True
    if bad:
        return None
    assert isinstance(metric, str) and isinstance(direction, str)
    obj = Objective(
        type=Direction(direction), metric=metric, goal=None if goal is None else float(goal)
    )
    return obj, strategy


def build_objectives(
    objective: Objective | None,
    objectives: Sequence[Any] | None,
    constraints: Sequence[Any] | None,
    *,
    objective_path: str = "objective",
    objectives_path: str = "objectives",
    constraints_path: str = "constraints",
) -> tuple[Objective, tuple[Objective, ...], tuple[Constraint, ...]]:
    """The spec's ``objective``, ``objectives`` and ``constraints`` from what was written.

    Args:
        objective: The single objective, if written that way.
        objectives: The list of ``{metric, direction, goal, strategy}`` items, if written.
        constraints: Constraint strings (``"memory_mb <= 2000"``).
        objective_path: Field path of the single objective, for errors.
        objectives_path: Field path of the list.
        constraints_path: Field path of the constraints.

    Raises:
        SpecError: Every problem, with its field path (``objectives[1].direction``,
            ``constraints[0]``...).
    """
    issues: list[SpecIssue] = []
    items: list[tuple[Objective, str | None]] = []
    if objectives is not None:
        if objective is not None:
            issues.append(
                SpecIssue(objectives_path, f"give {objective_path} or {objectives_path}, not both")
            )
        if isinstance(objectives, str | bytes | Mapping) or not isinstance(objectives, Sequence):
            issues.append(
                SpecIssue(
                    objectives_path,
                    f"must be a list of {{metric, direction, goal}} mappings; got {objectives!r}",
                )
            )
        elif not objectives:
            issues.append(SpecIssue(objectives_path, "must list at least one objective; got []"))
        else:
            for i, raw in enumerate(objectives):
                found = _item(raw, f"{objectives_path}[{i}]", issues)
                if found is not None:
                    items.append(found)
    cons: list[Constraint] = []
    if constraints is not None:
        if isinstance(constraints, str) or not isinstance(constraints, Sequence):
            issues.append(
                SpecIssue(
                    constraints_path,
                    f"must be a list of strings such as 'memory_mb <= 2000'; got {constraints!r}",
                )
            )
        else:
            for i, raw in enumerate(constraints):
                try:
                    cons.append(parse_constraint(raw, f"{constraints_path}[{i}]"))
                except SpecError as exc:
                    issues.extend(exc.issues)
    if issues:
        raise SpecError(issues)
    if objective is None and not items:
        raise SpecError(
            f"is required (or {objectives_path}: a list of {{metric, direction}})",
            path=objective_path,
        )
    rest: tuple[Objective, ...] = ()
    if objective is not None:
        first = objective
    else:
        # Each objective's metric reduces by its own direction unless a strategy is given
        # (the spec's default follows the first objective's direction).
        strategies: dict[str, MetricStrategy] = {}
        for k, (o, given) in enumerate(items):
            if given is not None:
                strategies[o.metric] = MetricStrategy(given)
            elif k > 0:
                down = o.type is Direction.MINIMIZE
                strategies[o.metric] = MetricStrategy.MIN if down else MetricStrategy.MAX
        first = items[0][0].model_copy(update={"strategies": strategies})
        rest = tuple(o for o, _ in items[1:])
    extra = [o.metric for o in rest] + [c.metric for c in cons]
    additional = list(first.additional_metrics)
    for m in extra:
        if m != first.metric and m not in additional:
            additional.append(m)
    first = first.model_copy(update={"additional_metrics": tuple(additional)})
    return first, ((first, *rest) if rest else ()), tuple(cons)
