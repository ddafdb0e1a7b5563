"""Katib ``kubeflow.org/v1beta1`` ``Experiment`` documents: every field, defaults and rules.

Every field of Katib's Experiment spec is read into the :class:`~automl.core.ExperimentSpec`:
objective (``metricStrategies`` defaulted per objective type for the objective *and* the additional
metrics, as Katib's defaulting code does), algorithm and settings (the runnable algorithms through
:func:`search.resolve_settings`; ``enas`` and ``darts`` through :mod:`search._nas_settings`),
early stopping, budgets (``parallelTrialCount`` defaults to 3), parameters or ``nasConfig``,
``resumePolicy``, every metrics-collector kind (``None`` is the pre-0.18 name of ``Push``) and the
trial template (``trialSpec`` or ``configMap``, ``primaryPodLabels`` and success/failure
conditions defaulted per kind as Katib does, ``retain``).

Trials that cannot run as a local process are accepted and validated, with
``TrialTemplate.local_blocker`` saying why: Argo Workflows and Tekton PipelineRuns (several pods
passing data), templates kept in a ConfigMap (not readable here), trials that request a device
through a Kubernetes device plugin other than a GPU (an FPGA such as ``xilinx/aws-vu9p-f1``) or
select FPGA nodes, and primary containers without a ``command`` (the image's entrypoint is unknown
here). The primary container's ``command + args`` is still kept in ``TrialTemplate.command`` where
one is found, for display.

``nasConfig`` with an algorithm other than ``enas``/``darts`` (``random``, ``tpe``,
``evolution``...) is accepted as an automl extension, multi-trial NAS (docs/nas.md): the
template may reference ``architecture``, ``nn_config`` and the choices ``layer_{i}_op`` /
``layer_{i}_skip_{j}``, and the graph's sizes are required. Katib cannot run it, so
:func:`automl.spec._export.to_katib` refuses to export it.

Katib's validation rules (the experiment webhook, the suggestion services' setting checks) are
applied on top of the core rules; every problem is reported at once with its Katib field path
(``spec.trialTemplate.trialParameters[1].reference``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from automl.core import (
    AlgorithmSpec,
    CollectorKind,
    Direction,
    EarlyStoppingSpec,
    ExperimentSpec,
    MetricStrategy,
    Objective,
    Parameter,
    ParameterType,
    spec_problems,
)
from automl.errors import SpecError, SpecIssue
from automl.spec._katib_template import _Checker, _metrics_collector, _trial_template
from automl.spec._limits import grid_problems, nas_size_problems
from automl.spec._structure import did_you_mean, validate_structure

__all__ = [
    "DEFAULT_CONDITIONS",
    "DEFAULT_POD_LABELS",
    "KATIB_API_VERSION",
    "find_primary_container",
    "katib_parameter",
    "nas_operations",
    "parse_katib",
    "trial_metadata",
]

from automl.spec._katib_model import (
    DEFAULT_CONDITIONS,
    DEFAULT_POD_LABELS,
    KATIB_API_VERSION,
    KATIB_NAME_MAX,
    KATIB_NAME_RE,
    _Algorithm,
    _budget_annotation,
    _Doc,
    _nas_operations,
    _Objective,
    find_primary_container,
    katib_parameter,
    nas_operations,
    trial_metadata,
)

# Stand-ins for required fields that are missing or invalid, so that the rules still run (the
# problem itself is reported by the structure stage).
_FALLBACKS: dict[str, Any] = {
    "apiVersion": KATIB_API_VERSION,
    "kind": "Experiment",
    "metadata": {"name": "unnamed"},
    "metadata.name": "unnamed",
    "spec": {},
    "spec.objective": {},
    "spec.algorithm": {},
    "spec.trialTemplate": {},
    "spec.parameters.name": "?",
    "spec.trialTemplate.trialParameters.name": "?",
}

_PARAM_FIELDS = {
    "min": "feasibleSpace.min",
    "max": "feasibleSpace.max",
    "step": "feasibleSpace.step",
    "values": "feasibleSpace.list",
    "distribution": "feasibleSpace.distribution",
    "type": "parameterType",
    "name": "name",
}


def _translator(
    primary: str | None,
    param_index: Sequence[int] = (),
    nas_index: Mapping[int, Sequence[int]] | None = None,
) -> Callable[[str], str]:
    """Core paths -> Katib paths.

    ``param_index`` / ``nas_index`` map the position of a built parameter back to its position in
    the document (parameters that could not be built are left out of the spec).
    """
    fixed = {
        "name": "metadata.name",
        "objective": "spec.objective",
        "objective.metric": "spec.objective.objectiveMetricName",
        "objective.type": "spec.objective.type",
        "objective.goal": "spec.objective.goal",
        "objective.additional_metrics": "spec.objective.additionalMetricNames",
        "algorithm.name": "spec.algorithm.algorithmName",
        "algorithm.settings": "spec.algorithm.algorithmSettings",
        "early_stopping": "spec.earlyStopping",
        "early_stopping.name": "spec.earlyStopping.algorithmName",
        "early_stopping.settings": "spec.earlyStopping.algorithmSettings",
        "parallel_trial_count": "spec.parallelTrialCount",
        "max_trial_count": "spec.maxTrialCount",
        "max_failed_trial_count": "spec.maxFailedTrialCount",
        "parameters": "spec.parameters",
        "nas_config": "spec.nasConfig",
        "resume_policy": "spec.resumePolicy",
        "trial_template.command": f"spec.trialTemplate.trialSpec (container {primary!r} command)",
        "trial_template.script": f"spec.trialTemplate.trialSpec (container {primary!r} command)",
        "trial_template": "spec.trialTemplate",
        "metrics_collector": "spec.metricsCollectorSpec",
        "metrics_collector.kind": "spec.metricsCollectorSpec.collector.kind",
        "metrics_collector.path": "spec.metricsCollectorSpec.source.fileSystemPath.path",
        "metrics_collector.format": "spec.metricsCollectorSpec.source.fileSystemPath.format",
        "metrics_collector.filters": "spec.metricsCollectorSpec.source.filter.metricsFormat",
    }

    def translate(path: str) -> str:
        if path in fixed:
            return fixed[path]
        if path.startswith(("spec", "metadata")):
            return path  # already a Katib path
        m = re.match(
            r"^(?:nas_config\.operations\[(\d+)\]\.)?parameters\[(\d+)\]\.(\w+)(.*)$", path
        )
        if m:
            k = int(m.group(2))
            if m.group(1) is not None:
                op = int(m.group(1))
                cols = (nas_index or {}).get(op, ())
                head = f"spec.nasConfig.operations[{op}]."
            else:
                cols = param_index
                head = "spec."
            k = cols[k] if k < len(cols) else k
            fld = _PARAM_FIELDS.get(m.group(3), m.group(3))
            return f"{head}parameters[{k}].{fld}{m.group(4)}"
        m = re.match(r"^nas_config\.(.+)$", path)
        if m:
            return f"spec.nasConfig.{m.group(1)}"
        m = re.match(r"^parameters\[(\d+)\]$", path)
        if m:
            k = int(m.group(1))
            return f"spec.parameters[{param_index[k] if k < len(param_index) else k}]"
        m = re.match(r"^algorithm\.settings\.(.+)$", path)
        if m:
            return f"spec.algorithm.algorithmSettings[name={m.group(1)}]"
        m = re.match(r"^early_stopping\.settings\.(.+)$", path)
        if m:
            return f"spec.earlyStopping.algorithmSettings[name={m.group(1)}]"
        m = re.match(r"^objective\.strategies\.(.+)$", path)
        if m:
            return f"spec.objective.metricStrategies[name={m.group(1)}]"
        m = re.match(r"^trial_template\.trial_parameters(.*)$", path)
        if m:
            return f"spec.trialTemplate.trialParameters{m.group(1)}"
        m = re.match(r"^metrics_collector\.filters(.*)$", path)
        if m:
            return f"spec.metricsCollectorSpec.source.filter.metricsFormat{m.group(1)}"
        return path

    return translate


def _superseded(issue: SpecIssue) -> bool:
    """Core issues that the Katib rules below state more precisely (with Katib's wording)."""
    p = issue.path
    return (
        p in ("name", "parameters", "trial_template.command", "metrics_collector.filters")
        or p.startswith("trial_template.trial_parameters")
        or (p == "metrics_collector.path" and "File collector" in issue.message)
    )


# -- the parser -------------------------------------------------------------------------------


def _objective(obj: _Objective, c: _Checker) -> Objective:
    direction = Direction.MINIMIZE
    if obj.type in ("minimize", "maximize"):
        direction = Direction(obj.type)
    elif obj.type is None:
        c.add("spec.objective.type", "is required (minimize or maximize)")
    else:
        c.add(
            "spec.objective.type",
            f"must be minimize or maximize; got {obj.type!r}"
            + did_you_mean(str(obj.type), ["minimize", "maximize"]),
        )
    metric = obj.objectiveMetricName or ""
    if not metric.strip():
        c.add("spec.objective.objectiveMetricName", f"is required (a metric name); got {metric!r}")
    # Katib's defaulting gives the objective and every additional metric without a strategy the
    # objective type's (min for minimize, max for maximize): Objective.strategy() returns exactly
    # that, so only the strategies as written are stored (and exported back unchanged).
    strategies: dict[str, MetricStrategy] = {}
    for i, ms in enumerate(obj.metricStrategies):
        if str(ms.value) not in ("min", "max", "latest"):
            c.add(
                f"spec.objective.metricStrategies[{i}].value",
                f"must be min, max or latest; got {ms.value!r}",
            )
        else:
            strategies[ms.name] = MetricStrategy(str(ms.value))
    return Objective(
        type=direction,
        metric=metric or "?",
        goal=obj.goal,
        additional_metrics=tuple(obj.additionalMetricNames),
        strategies=strategies,
    )


def _settings(alg: _Algorithm, path: str, c: _Checker) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, s in enumerate(alg.algorithmSettings):
        if not s.name:
            c.add(f"{path}.algorithmSettings[{i}].name", "is required")
            continue
        if s.name in out:
            c.add(
                f"{path}.algorithmSettings[name={s.name}]",
                f"is set twice; got {out[s.name]!r} and {s.value!r}",
            )
        out[s.name] = s.value
    return out


def _grid_size(params: Sequence[Parameter]) -> int | None:
    n = 1
    for p in params:
        if p.type is ParameterType.DOUBLE and p.step is None:
            return None
        if p.is_numeric_range and (p.min is None or p.max is None):
            return None
        try:
            n *= p.grid_size()
        except (SpecError, ValueError, ZeroDivisionError, OverflowError):
            return None
    return n


def _multi_trial_nas_names(nas_config: Mapping[str, Any] | None) -> list[str]:
    """What a multi-trial NAS trial is assigned: ``architecture``, ``nn_config`` and the choices.

    The choices (``layer_{i}_op``, ``layer_{i}_skip_{j}``) are only known for a space that
    parses; a broken ``nasConfig`` is reported on its own fields.
    """
    from search._nas_space import NasSpace

    names = ["architecture", "nn_config"]
    try:
        space = NasSpace.from_katib(nas_config or {}, "nas_config")
    except SpecError:
        return names
    return [*names, *(p.name for p in space.parameters())]


def _multi_trial_size_problems(nas_config: Mapping[str, Any], alg_name: str) -> list[SpecIssue]:
    """Multi-trial NAS trials get ENAS's ``nn_config``, which carries the network's sizes."""
    graph = nas_config.get("graphConfig")
    if not isinstance(graph, Mapping):
        return []  # reported by nas_config_problems
    return [
        SpecIssue(
            f"nas_config.graphConfig.{key}",
            f"is required by multi-trial NAS with {alg_name} (each trial's nn_config carries "
            "the network's sizes, as ENAS's does)",
        )
        for key in ("inputSizes", "outputSizes")
        if graph.get(key) is None
    ]


def _search_parameters(spec: ExperimentSpec) -> Sequence[Parameter]:
    """The parameters the algorithm searches: the architecture's choices for multi-trial NAS."""
    if spec.nas_config is None or spec.parameters:
        return spec.parameters
    from search._nas_space import NasSpace

    try:
        return NasSpace.from_spec(spec).parameters()
    except SpecError:
        return ()


def _algorithm_rules(spec: ExperimentSpec, c: _Checker) -> None:
    """Rules of Katib's suggestion services that the registry does not state."""
    name = spec.algorithm.name
    if name == "grid":
        for issue in grid_problems(spec.parameters, "spec.parameters"):
            c.add(issue.path, issue.message)
    if name == "grid" and spec.max_trial_count is not None:
        params = _search_parameters(spec)
        size = _grid_size(params) if params else None
        if size is not None and spec.max_trial_count > size:
            c.add(
                "spec.maxTrialCount",
                f"must not exceed the number of grid combinations ({size}) for algorithm grid; "
                f"got {spec.max_trial_count}",
            )
    if name == "pbt":
        for key in ("suggestion_trial_dir", "n_population", "truncation_threshold"):
            if key not in spec.algorithm.settings:
                c.add(
                    f"spec.algorithm.algorithmSettings[name={key}]",
                    "is required by pbt (Katib's PBT service rejects an experiment without it)",
                )


def parse_katib(
    data: dict[str, Any],
    base_dir: Path,
    adjust: Callable[[ExperimentSpec], ExperimentSpec] | None = None,
) -> ExperimentSpec:
    """Build an :class:`ExperimentSpec` from a parsed Katib Experiment document.

    Raises:
        SpecError: Every problem found, with Katib field paths
            (``spec.parameters[2].feasibleSpace.max``).
    """
    from search import resolve_settings, resolve_stopper_settings
    from search._nas_settings import NAS_ALGORITHMS, nas_config_problems, resolve_nas_settings

    doc, structure = validate_structure(_Doc, data, _FALLBACKS)
    if doc is None:
        raise SpecError(structure)
    c = _Checker()
    c.issues.extend(structure)  # the rules below are still checked
    if doc.apiVersion != KATIB_API_VERSION:
        c.add("apiVersion", f"must be {KATIB_API_VERSION}; got {doc.apiVersion!r}")
    if doc.kind != "Experiment":
        c.add("kind", f"must be Experiment; got {doc.kind!r}")
    s = doc.spec
    name = doc.metadata.name
    if not KATIB_NAME_RE.match(name) or len(name) > KATIB_NAME_MAX:
        c.add(
            "metadata.name",
            "must match ^[a-z]([-a-z0-9]*[a-z0-9])?$ and be at most "
            f"{KATIB_NAME_MAX} characters (Katib's rule); got {name!r} ({len(name)} characters)",
        )
    objective = _objective(s.objective, c)

    alg_name = s.algorithm.algorithmName or ""
    if not alg_name:
        c.add("spec.algorithm.algorithmName", "is required")
    alg_settings = _settings(s.algorithm, "spec.algorithm", c)
    is_nas = alg_name in NAS_ALGORITHMS

    if s.parameters and s.nasConfig is not None:
        c.add("spec", "must set exactly one of parameters or nasConfig; got both")
    elif not s.parameters and s.nasConfig is None:
        c.add("spec", "must set exactly one of parameters or nasConfig; got neither")
    if is_nas and s.nasConfig is None:
        c.add(
            "spec.nasConfig",
            f"is required by the neural architecture search algorithm {alg_name!r}",
        )
    # nasConfig with a non-NAS algorithm (random, tpe, evolution...) is multi-trial NAS, an
    # automl extension: Katib pairs nasConfig only with enas/darts (docs/katib-compatibility.md).
    # hyperband and pbt cannot search the choices; resolve_settings names them below.
    multi_nas = s.nasConfig is not None and bool(alg_name) and not is_nas

    params: list[Parameter] = []
    param_names: list[str] = []
    param_index: list[int] = []
    for i, raw in enumerate(s.parameters or []):
        param_names.append(raw.name)
        p, found = katib_parameter(raw, f"spec.parameters[{i}]")
        c.issues.extend(found)
        if p is not None:
            params.append(p)
            param_index.append(i)

    nas_config: dict[str, Any] | None = None
    nas_ops: list[tuple[str, list[Parameter]]] = []
    nas_index: dict[int, list[int]] = {}
    if s.nasConfig is not None:
        nas_config = s.nasConfig.model_dump(
            exclude_none=True, exclude_defaults=True, by_alias=True
        )
        too_big = nas_size_problems(nas_config, katib=True, path="spec.nasConfig")
        if too_big:  # everything below grows with these sizes
            raise SpecError([*c.issues, *too_big])
        nas_ops, found, nas_index = _nas_operations(nas_config, "spec.nasConfig")
        c.issues.extend(found)

    if is_nas:
        known: Sequence[str] = NAS_ALGORITHMS[alg_name].assignments
        known_what = f"a value {alg_name} assigns"
    elif multi_nas:
        known = _multi_trial_nas_names(nas_config)
        known_what = f"a value multi-trial NAS with {alg_name} assigns"
    else:
        known, known_what = param_names, "a parameter"
    template = _trial_template(s.trialTemplate, known, known_what, base_dir, c)
    collector = _metrics_collector(s.metricsCollectorSpec, c)
    custom = collector.custom_collector or {}
    if (
        collector.kind is CollectorKind.CUSTOM
        and template.local_blocker is None
        and custom
        and not custom.get("command")
    ):
        # Its image's entrypoint is unknown here: refuse before anything is stored, rather than
        # fail every trial when its collector cannot start.
        template = template.model_copy(
            update={
                "local_blocker": f"the Custom metrics collector container "
                f"{custom.get('name', '')!r} sets no command (it runs its image's entrypoint, "
                "unknown here), so no trial's metrics could be collected locally; it needs "
                "executor: kubernetes"
            }
        )

    resume = s.resumePolicy or "Never"
    if resume not in ("Never", "LongRunning", "FromVolume"):
        c.add("spec.resumePolicy", f"must be Never, LongRunning or FromVolume; got {resume!r}")
        resume = "Never"

    early: EarlyStoppingSpec | None = None
    if s.earlyStopping is not None:
        if not s.earlyStopping.algorithmName:
            c.add("spec.earlyStopping.algorithmName", "is required")
        early = EarlyStoppingSpec(
            name=s.earlyStopping.algorithmName or "",
            settings=_settings(s.earlyStopping, "spec.earlyStopping", c),
        )

    spec = ExperimentSpec(
        name=name,
        objective=objective,
        algorithm=AlgorithmSpec(name=alg_name, settings=alg_settings),
        parameters=tuple(params),
        parallel_trial_count=s.parallelTrialCount if s.parallelTrialCount is not None else 3,
        max_trial_count=s.maxTrialCount,
        max_failed_trial_count=s.maxFailedTrialCount,
        trial_template=template,
        metrics_collector=collector,
        early_stopping=early,
        resume_policy=resume,
        nas_config=nas_config,
        namespace=doc.metadata.namespace,
        timeout=_budget_annotation(doc.metadata),
        source="katib",
    )
    if adjust is not None:
        spec = adjust(spec)

    # Core rules and algorithm settings, in the spec's own paths (translated below).
    core = [i for i in spec_problems(spec) if not _superseded(i)]
    space_issues: list[SpecIssue] = []
    if alg_name:
        try:
            if is_nas:
                resolve_nas_settings(spec)
            else:
                resolve_settings(spec)
        except SpecError as exc:
            core.extend(i for i in exc.issues if not i.path.startswith("nas_config"))
            space_issues = [i for i in exc.issues if i.path.startswith("nas_config")]
    if nas_config is not None:
        found_nas = nas_config_problems(alg_name, nas_config, nas_ops)
        if multi_nas:
            found_nas.extend(_multi_trial_size_problems(nas_config, alg_name))
        # The space's own parse (resolve_settings) adds what Katib's rules do not cover for a
        # non-NAS algorithm (an unknown operationType), once per field.
        reported = {i.path for i in found_nas}
        core.extend([*found_nas, *(i for i in space_issues if i.path not in reported)])
    if early is not None and early.name:
        try:
            resolve_stopper_settings(spec)
        except SpecError as exc:
            core.extend(exc.issues)
    if not is_nas:
        _algorithm_rules(spec, c)

    translate = _translator(template.primary_container_name, param_index, nas_index)
    seen: set[tuple[str, str]] = set()
    unique: list[SpecIssue] = []
    unreadable = {i.path for i in structure}  # their stand-ins' issues would only echo them
    for issue in [*c.issues, *(SpecIssue(translate(i.path), i.message) for i in core)]:
        if issue not in structure and issue.path in unreadable:
            continue
        if (issue.path, issue.message) not in seen:
            seen.add((issue.path, issue.message))
            unique.append(issue)
    if unique:
        raise SpecError(unique)
    return spec
