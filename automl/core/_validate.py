"""Rules every :class:`ExperimentSpec` must satisfy, whichever front door made it.

Paths use the spec's own field names (``parameters[2].max``); the YAML front doors translate them
to
the names the user wrote (``spec.parameters[2].feasibleSpace.max`` for Katib).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable

from automl.core._conditions import condition_problems, placeholder_problems
from automl.core._shell import ARITH, REFUSED, shell_placeholders, shell_script_index
from automl.core._spec import NAME_RE, CollectorKind, ExperimentSpec, Parameter, ParameterType
from automl.errors import SpecError, SpecIssue

__all__ = ["PLACEHOLDER_RE", "spec_problems", "validate_spec"]

#: ``${trialParameters.x}``, ``${trialSpec.Name}`` or the native short form ``${x}``.
PLACEHOLDER_RE = re.compile(r"\$\{([^{}]+)\}")
#: The largest seed: numpy's generators (and so Optuna's samplers) take 0 <= seed < 2**32.
SEED_MAX = 2**32 - 1
#: The most workers, and processes per worker, of one trial.
MAX_PROCESSES = 1024
_METADATA_REFS = re.compile(
    r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Annotations\[[^\]]+\]|Labels\[[^\]]+\])\}$"
)


def spec_problems(spec: ExperimentSpec) -> list[SpecIssue]:
    """Return every rule ``spec`` breaks; an empty list means it is valid."""
    out: list[SpecIssue] = []
    if not NAME_RE.match(spec.name) or len(spec.name) > 63:
        out.append(
            SpecIssue(
                "name",
                "must be 1-63 lower-case letters, digits, '-', '_' or '.', "
                f"starting and ending with a letter or digit; got {spec.name!r}",
            )
        )
    obj = spec.objective
    if not obj.metric.strip():
        out.append(SpecIssue("objective.metric", "must be a non-empty metric name"))
    if obj.metric in obj.additional_metrics:
        out.append(
            SpecIssue(
                "objective.additional_metrics",
                "must not contain the objective metric "
                f"({obj.metric!r}); got {list(obj.additional_metrics)}",
            )
        )
    for name in obj.strategies:
        if name not in obj.metrics:
            out.append(
                SpecIssue(
                    f"objective.strategies.{name}",
                    "names a metric that is neither the "
                    f"objective nor an additional metric; known: {list(obj.metrics)}",
                )
            )
    if not spec.parameters and spec.nas_config is None and not spec.define_by_run:
        out.append(SpecIssue("parameters", "must define at least one parameter"))
    out.extend(_define_by_run_problems(spec))
    seen: set[str] = set()
    for i, p in enumerate(spec.parameters):
        if p.name in seen:
            out.append(
                SpecIssue(f"parameters[{i}].name", f"must be unique; {p.name!r} appears twice")
            )
        seen.add(p.name)
        out.extend(p.problems(f"parameters[{i}]"))
    out.extend(condition_problems(spec.parameters))
    from automl.core._pareto import objective_problems

    out.extend(objective_problems(spec))
    out.extend(_budget_problems(spec))
    out.extend(_template_problems(spec))
    out.extend(_collector_problems(spec))
    out.extend(_resource_problems(spec))
    return out


def _define_by_run_problems(spec: ExperimentSpec) -> list[SpecIssue]:
    if not spec.define_by_run:
        return []
    out: list[SpecIssue] = []
    if spec.parameters:
        out.append(
            SpecIssue(
                "parameters",
                "must be empty when the objective defines its space (def objective(trial)); got "
                f"{[p.name for p in spec.parameters]}",
            )
        )
    if spec.nas_config is not None:
        out.append(SpecIssue("nas", "cannot be searched by a define-by-run objective"))
    t = spec.trial_template
    if t.notebook is not None or (
        t.command is not None and tuple(t.command[1:3]) != ("-m", "automl._fnrun")
    ):
        out.append(
            SpecIssue(
                "trial_template",
                "a define-by-run objective is a Python function (automl.tune); got a command or "
                "notebook trial",
            )
        )
    return out


def _resource_problems(spec: ExperimentSpec) -> list[SpecIssue]:
    from automl.core._spec import ExecutorKind, parse_quantity

    r = spec.trial_template.resources
    path = "trial_template.resources"
    out: list[SpecIssue] = []
    if r.cpu is not None and not r.cpu > 0:
        out.append(SpecIssue(f"{path}.cpu", f"must be greater than 0; got {r.cpu}"))
    if r.gpu < 0:
        out.append(SpecIssue(f"{path}.gpu", f"must be 0 or more; got {r.gpu:g}"))
    elif r.gpu > 1 and r.gpu != int(r.gpu):
        out.append(
            SpecIssue(
                f"{path}.gpu",
                "a fraction shares one device, so above 1 it must be a whole number of GPUs; "
                f"got {r.gpu:g}",
            )
        )
    for name in ("memory", "gpu_memory"):
        value = getattr(r, name)
        if value is not None:
            try:
                parse_quantity(value, f"{path}.{name}")
            except SpecError as exc:
                out.extend(exc.issues)
    if r.gpu_memory is not None and r.gpu <= 0:
        out.append(
            SpecIssue(f"{path}.gpu_memory", "needs gpu > 0 (memory on which device?); got gpu 0")
        )
    for name in ("workers", "processes_per_worker"):
        if not 1 <= getattr(r, name) <= MAX_PROCESSES:
            out.append(
                SpecIssue(
                    f"{path}.{name}",
                    f"must be an integer in [1, {MAX_PROCESSES}]; got {getattr(r, name)}",
                )
            )
    t = spec.trial_template
    if r.distributed and t.command is None and t.manifest is None:
        out.append(
            SpecIssue(
                f"{path}.workers" if r.workers > 1 else f"{path}.processes_per_worker",
                "a distributed trial runs a training command in several processes; this "
                "trial has no command (a Python function or notebook runs in one process)",
            )
        )
    ex = spec.executor
    if ex.max_retries < 0:
        out.append(SpecIssue("executor.max_retries", f"must be 0 or more; got {ex.max_retries}"))
    if ex.max_preemptions < 0:
        out.append(
            SpecIssue("executor.max_preemptions", f"must be 0 or more; got {ex.max_preemptions}")
        )
    if ex.kind is not ExecutorKind.RAY and ex.address is not None:
        out.append(
            SpecIssue("executor.address", f"is a Ray setting; executor kind is {ex.kind.value}")
        )
    if ex.kind is not ExecutorKind.KUBERNETES:
        for name in ("kubeconfig", "context", "image"):
            if getattr(ex, name) is not None:
                out.append(
                    SpecIssue(
                        f"executor.{name}",
                        f"is a Kubernetes setting; executor kind is {ex.kind.value}",
                    )
                )
    return out


def _budget_problems(spec: ExperimentSpec) -> list[SpecIssue]:
    out: list[SpecIssue] = []
    if spec.parallel_trial_count < 1:
        out.append(
            SpecIssue(
                "parallel_trial_count", f"must be at least 1; got {spec.parallel_trial_count}"
            )
        )
    if spec.max_trial_count is not None:
        if spec.max_trial_count < 1:
            out.append(
                SpecIssue("max_trial_count", f"must be at least 1; got {spec.max_trial_count}")
            )
        elif spec.parallel_trial_count > spec.max_trial_count:
            out.append(
                SpecIssue(
                    "parallel_trial_count",
                    "must not exceed the maximum number of trials "
                    f"({spec.max_trial_count}); got {spec.parallel_trial_count}",
                )
            )
    if spec.max_failed_trial_count is not None:
        if spec.max_failed_trial_count < 0:
            out.append(
                SpecIssue(
                    "max_failed_trial_count",
                    f"must be 0 or more; got {spec.max_failed_trial_count}",
                )
            )
        elif (
            spec.max_trial_count is not None and spec.max_failed_trial_count > spec.max_trial_count
        ):
            out.append(
                SpecIssue(
                    "max_failed_trial_count",
                    "must not exceed the maximum number of trials "
                    f"({spec.max_trial_count}); got {spec.max_failed_trial_count}",
                )
            )
    if spec.timeout is not None and spec.timeout <= 0:
        out.append(SpecIssue("timeout", f"must be a positive duration; got {spec.timeout}"))
    for name in ("trial_hours", "gpu_hours"):
        hours = getattr(spec, name)
        if hours is not None and not (math.isfinite(hours) and hours > 0):
            out.append(SpecIssue(name, f"must be a positive number of hours; got {hours}"))
    if spec.trial_template.timeout is not None and spec.trial_template.timeout <= 0:
        out.append(
            SpecIssue(
                "trial_template.timeout",
                f"must be a positive duration; got {spec.trial_template.timeout}",
            )
        )
    if spec.seed is not None and not 0 <= spec.seed <= SEED_MAX:
        out.append(
            SpecIssue(
                "seed",
                f"must be an integer in [0, {SEED_MAX}] (numpy's seeds are 32-bit); "
                f"got {spec.seed}",
            )
        )
    return out


def _template_problems(spec: ExperimentSpec) -> list[SpecIssue]:
    t = spec.trial_template
    out: list[SpecIssue] = []
    kinds = [k for k in ("command", "function", "notebook") if getattr(t, k) is not None]
    if len(kinds) > 1:
        out.append(
            SpecIssue(
                "trial_template",
                f"must set one of command, function or notebook; got {' and '.join(kinds)}",
            )
        )
    if (
        spec.source != "python"
        and t.command is None
        and t.function is None
        and t.notebook is None
        and t.local_blocker is None
    ):
        out.append(SpecIssue("trial_template.command", "is required: the argv each trial runs"))
    if t.command is not None and not t.command:
        out.append(SpecIssue("trial_template.command", "must not be empty"))
    params = {p.name for p in spec.parameters}
    names: set[str] = set()
    for i, tp in enumerate(t.trial_parameters):
        path = f"trial_template.trial_parameters[{i}]"
        if not tp.name or "{" in tp.name or "}" in tp.name:
            out.append(
                SpecIssue(f"{path}.name", f"must be non-empty without braces; got {tp.name!r}")
            )
        if tp.name in names:
            out.append(SpecIssue(f"{path}.name", f"must be unique; {tp.name!r} appears twice"))
        names.add(tp.name)
        nas_only = not spec.parameters and spec.nas_config is not None  # NAS assigns its own
        if not nas_only and tp.reference not in params and not _METADATA_REFS.match(tp.reference):
            out.append(
                SpecIssue(
                    f"{path}.reference",
                    "must name a parameter "
                    f"({sorted(params)}) or trial metadata; got {tp.reference!r}",
                )
            )
    texts = list(t.command or ()) + list(t.env.values())
    used: set[str] = set()
    for text in texts:
        for ref in PLACEHOLDER_RE.findall(text):
            if ref.startswith("trialParameters."):
                key = ref.removeprefix("trialParameters.")
                if key not in names and not (not t.trial_parameters and key in params):
                    out.append(
                        SpecIssue(
                            "trial_template.command",
                            f"uses ${{{ref}}}, which is not a "
                            f"trial parameter (known: {sorted(names or params)})"
                            + _nearest(key, names or params),
                        )
                    )
                used.add(key)
            elif ref.startswith("trialSpec."):
                if not _METADATA_REFS.match("${" + ref + "}"):
                    out.append(
                        SpecIssue(
                            "trial_template.command",
                            f"uses ${{{ref}}}, which is not "
                            "trial metadata (Name, Namespace, Kind, APIVersion, "
                            "Annotations[k], Labels[k])",
                        )
                    )
            elif ref in params and not t.trial_parameters:
                used.add(ref)
            elif not t.trial_parameters:
                out.append(
                    SpecIssue(
                        "trial_template.command",
                        f"uses ${{{ref}}}, which is not a parameter (known: {sorted(params)})"
                        + _nearest(ref, params),
                    )
                )
    out.extend(_shell_problems(spec))
    out.extend(_inactive_problems(spec, texts))
    if t.command is not None and t.trial_parameters and t.local_blocker is None:
        manifest_text = repr(t.manifest) if t.manifest is not None else " ".join(texts)
        for i, tp in enumerate(t.trial_parameters):
            if "${trialParameters." + tp.name + "}" not in manifest_text:
                out.append(
                    SpecIssue(
                        f"trial_template.trial_parameters[{i}]",
                        f"{tp.name!r} is never "
                        "used as ${trialParameters." + tp.name + "} in the template",
                    )
                )
    return out


def _inactive_problems(spec: ExperimentSpec, texts: list[str]) -> list[SpecIssue]:
    """Placeholders for a conditional parameter without a default (nothing to put there)."""
    if not any(p.when for p in spec.parameters):
        return []
    bindings = {tp.name: tp.reference for tp in spec.trial_template.trial_parameters}
    targets = []
    for text in texts:
        for ref in PLACEHOLDER_RE.findall(text):
            key = ref.removeprefix("trialParameters.")
            targets.append(bindings.get(key, key))
    return placeholder_problems(spec.parameters, targets, "trial_template.command")


def _nearest(name: str, known: Iterable[str]) -> str:
    """``"; did you mean ${lr}?"`` for the nearest known name, or ``""``."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean ${{{close[0]}}}?" if close else ""


def _numeric(p: Parameter) -> bool:
    if p.type in (ParameterType.INT, ParameterType.DOUBLE):
        return True
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p.values)


def _shell_problems(spec: ExperimentSpec) -> list[SpecIssue]:
    """Placeholders in a shell script (``sh -c``) that cannot stand there as data.

    Values are passed to the script in environment variables (``automl.core._shell``); after a
    backslash or in a quoted here-document no variable can carry them, and in arithmetic only a
    number is data.
    """
    t = spec.trial_template
    at = shell_script_index(t.command)
    if t.command is None or at is None:
        return []
    params = {p.name: p for p in spec.parameters}
    bindings = {tp.name: tp.reference for tp in t.trial_parameters}
    out: list[SpecIssue] = []
    for use in shell_placeholders(t.command[at]):
        key = use.ref.removeprefix("trialParameters.")
        target = bindings.get(key, key) if use.ref.startswith("trialParameters.") else use.ref
        known = target in params or use.ref.startswith("trialSpec.") or target.startswith("${")
        if not known and not (not spec.parameters and spec.nas_config is not None):
            continue  # the shell's own ${VAR}, or an unknown name reported elsewhere
        where = f"${{{use.ref}}} in the shell script (argument {at} of the command)"
        if use.context in REFUSED:
            out.append(
                SpecIssue(
                    "trial_template.script",
                    f"{where} stands {use.context}: {REFUSED[use.context]}; move it out",
                )
            )
        elif use.context == ARITH and not (target in params and _numeric(params[target])):
            out.append(
                SpecIssue(
                    "trial_template.script",
                    f"{where} stands in shell arithmetic, where the shell evaluates a value's "
                    "text as code; only a numeric parameter may stand there",
                )
            )
    return out


def _collector_problems(spec: ExperimentSpec) -> list[SpecIssue]:
    mc = spec.metrics_collector
    out: list[SpecIssue] = []
    if mc.format not in ("TEXT", "JSON"):
        out.append(
            SpecIssue("metrics_collector.format", f"must be TEXT or JSON; got {mc.format!r}")
        )
    if mc.kind is CollectorKind.FILE and not mc.path:
        out.append(SpecIssue("metrics_collector.path", "is required for the File collector"))
    if mc.format == "JSON" and mc.filters:
        out.append(SpecIssue("metrics_collector.filters", "are not allowed with the JSON format"))
    for i, f in enumerate(mc.filters):
        try:
            rx = re.compile(f)
        except re.error as exc:
            out.append(
                SpecIssue(
                    f"metrics_collector.filters[{i}]", f"is not a valid regex ({exc}); got {f!r}"
                )
            )
            continue
        if rx.groups < 2:
            out.append(
                SpecIssue(
                    f"metrics_collector.filters[{i}]",
                    f"must have two groups (metric name, value); got {f!r}",
                )
            )
    return out


def validate_spec(spec: ExperimentSpec) -> ExperimentSpec:
    """Return ``spec`` if it breaks no rule.

    Raises:
        SpecError: With every problem found.
    """
    problems = spec_problems(spec)
    if problems:
        raise SpecError(problems)
    return spec
