"""The native experiment YAML: short, readable, and one-to-one with :class:`ExperimentSpec`.

See ``docs/spec.md`` for the full reference and an annotated example.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from automl.core import (
    AlgorithmSpec,
    CollectorKind,
    Direction,
    Distribution,
    EarlyStoppingSpec,
    ExecutorKind,
    ExecutorSpec,
    ExperimentSpec,
    MetricsCollectorSpec,
    MetricStrategy,
    Objective,
    Parameter,
    ParameterType,
    Resources,
    TrialParameter,
    TrialTemplate,
)
from automl.errors import SpecError, SpecIssue
from automl.spec._common import check, existing, parse_duration, pydantic_issues
from automl.spec._limits import nas_size_problems
from automl.spec._objectives import build_objectives
from automl.spec._structure import validate_structure

__all__ = ["parse_native"]

Scalar = bool | int | float | str


_MODULE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Objective(_M):
    metric: str
    direction: Literal["minimize", "maximize"]
    goal: float | None = None
    additional_metrics: list[str] = Field(default_factory=list)
    strategies: dict[str, Literal["min", "max", "latest"]] = Field(default_factory=dict)


class _Algorithm(_M):
    name: str
    settings: dict[str, Any] = Field(default_factory=dict)


class _EarlyStopping(_M):
    name: str
    settings: dict[str, Any] = Field(default_factory=dict)


class _Parameter(_M):
    type: Literal["int", "double", "categorical", "discrete"]
    min: float | None = None
    max: float | None = None
    step: float | None = None
    values: list[Scalar] | None = None
    distribution: Literal["uniform", "logUniform", "normal", "logNormal"] | None = None
    log: bool | None = None
    when: dict[str, Any] = Field(default_factory=dict)  # checked by Parameter and the rules
    default: Scalar | None = None


_SCALARS: TypeAdapter[list[Scalar]] = TypeAdapter(list[Scalar])


class _Budget(_M):
    max_trials: int | None = None
    parallel: int = 1
    max_failed: int | None = None
    timeout: float | str | None = None
    trial_hours: float | None = None
    gpu_hours: float | None = None


class _Resources(_M):
    cpu: float | None = None
    memory: str | int | None = None
    gpu: float = 0.0
    gpu_memory: str | int | None = None
    workers: int = 1
    processes_per_worker: int = 1


class _Warm(_M):
    # Dotted module names only: the fork server imports them, nothing else.
    preload: list[Annotated[str, StringConstraints(pattern=_MODULE)]] = Field(max_length=64)


class _Trial(_M):
    command: list[Scalar] | str | None = None
    notebook: str | None = None
    warm: _Warm | None = None
    workdir: str | None = None
    env: dict[str, Scalar] = Field(default_factory=dict)
    timeout: float | str | None = None
    resources: _Resources = Field(default_factory=_Resources)


class _Executor(_M):
    kind: Literal["local", "ray", "kubernetes"] = "local"
    address: str | None = None
    namespace: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    image: str | None = None
    max_retries: int = 0
    max_preemptions: int = 3
    settings: dict[str, Any] = Field(default_factory=dict)


class _Metrics(_M):
    collector: Literal["stdout", "file", "push", "StdOut", "File", "Push"] = "stdout"
    path: str | None = None
    format: Literal["text", "json", "TEXT", "JSON"] = "text"
    filters: list[str] = Field(default_factory=list)


class _Doc(_M):
    apiVersion: Literal["automl/v1"] | None = None
    name: str
    description: str = ""
    objective: _Objective | None = None
    objectives: list[Any] | None = None  # several objectives; each item checked alone
    constraints: list[Any] | None = None  # "metric op number" strings
    algorithm: str | _Algorithm = "auto"
    seed: int | None = None
    early_stopping: str | _EarlyStopping | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)  # each entry validated alone
    nas: dict[str, Any] | None = None  # an architecture space (docs/nas.md), instead of parameters
    budget: _Budget = Field(default_factory=_Budget)
    trial: _Trial
    metrics: _Metrics = Field(default_factory=_Metrics)
    executor: Literal["local", "ray", "kubernetes"] | _Executor = "local"


# Stand-ins for required fields that are missing or invalid, so that the rules still run (the
# problem itself is reported by the structure stage).
_FALLBACKS: dict[str, Any] = {
    "name": "unnamed",
    "objective": {"metric": "?", "direction": "minimize"},
    "objective.metric": "?",
    "objective.direction": "minimize",
    "algorithm.name": "random",
    "early_stopping.name": "medianstop",
    "trial": {},
}

_COLLECTORS = {
    "stdout": CollectorKind.STDOUT,
    "file": CollectorKind.FILE,
    "push": CollectorKind.PUSH,
}


def _parameter(name: str, raw: _Parameter | list[Scalar]) -> Parameter:
    if isinstance(raw, list):
        return Parameter(name=name, type=ParameterType.CATEGORICAL, values=tuple(raw))
    dist = raw.distribution
    if raw.log is not None:
        if dist is not None and (dist in ("logUniform", "logNormal")) != raw.log:
            raise SpecError(
                f"log: {raw.log} contradicts distribution: {dist}", path=f"parameters.{name}.log"
            )
        if dist is None:
            dist = "logUniform" if raw.log else "uniform"
    return Parameter(
        name=name,
        type=ParameterType(raw.type),
        min=raw.min,
        max=raw.max,
        step=raw.step,
        values=tuple(raw.values or ()),
        distribution=Distribution(dist or "uniform"),
        when=raw.when,
        default=raw.default,
    )


def _nas(
    doc: _Doc, algo: AlgorithmSpec, issues: list[SpecIssue]
) -> tuple[dict[str, Any] | None, list[str]]:
    """The ``nas:`` section as Katib's ``nasConfig``, and the names a trial gets.

    ENAS and multi-trial NAS trials get ``architecture``, ``nn_config`` and the layer choices
    (``layer_{i}_op``, ``layer_{i}_skip_{j}``); DARTS trials Katib's three assignments.
    """
    if doc.nas is None:
        return None, []
    from search._nas_settings import NAS_ALGORITHMS
    from search._nas_space import NasSpace

    if doc.parameters:
        issues.append(SpecIssue("nas", "give parameters or nas, not both"))
    too_big = nas_size_problems(doc.nas, katib=False, path="nas")
    if too_big:
        issues.extend(too_big)
        return None, []
    try:
        space = NasSpace.from_native(doc.nas, "nas")
    except SpecError as exc:
        issues.extend(exc.issues)
        return None, []
    info = NAS_ALGORITHMS.get(algo.name)
    if info is not None:
        return space.to_katib(), list(info.assignments)
    return space.to_katib(), ["architecture", "nn_config", *(p.name for p in space.parameters())]


def _bind_nas(
    command: tuple[str, ...] | None, env: dict[str, str], names: list[str]
) -> tuple[tuple[str, ...] | None, dict[str, str], tuple[TrialParameter, ...]]:
    """Bind the NAS values a command uses as Katib trial parameters.

    ``${architecture}`` becomes ``${trialParameters.architecture}`` (bound to the value of the
    same name), so the template is checked and exported as Katib writes it.
    """
    pattern = re.compile(r"\$\{(" + "|".join(re.escape(n) for n in names) + r")\}")

    def bind(text: str) -> str:
        return pattern.sub(lambda m: "${trialParameters." + m.group(1) + "}", text)

    new_command = None if command is None else tuple(bind(a) for a in command)
    new_env = {k: bind(v) for k, v in env.items()}
    text = " ".join([*(new_command or ()), *new_env.values()])
    used = [n for n in names if "${trialParameters." + n + "}" in text]
    return new_command, new_env, tuple(TrialParameter(name=n, reference=n) for n in used)


def _translator(doc: _Doc) -> Any:
    names = list(doc.parameters)
    fixed = {
        "name": "name",
        "objective.type": "objective.direction",
        "parallel_trial_count": "budget.parallel",
        "max_trial_count": "budget.max_trials",
        "max_failed_trial_count": "budget.max_failed",
        "timeout": "budget.timeout",
        "trial_hours": "budget.trial_hours",
        "gpu_hours": "budget.gpu_hours",
        "algorithm.name": "algorithm",
        "trial_template.script": "trial.command",
    }

    def translate(path: str) -> str:
        if path in fixed:
            return fixed[path]
        m = re.match(r"^parameters\[(\d+)\](.*)$", path)
        if m:
            i = int(m.group(1))
            return f"parameters.{names[i]}{m.group(2)}" if i < len(names) else path
        for a, b in (
            ("trial_template.", "trial."),
            ("metrics_collector.kind", "metrics.collector"),
            ("metrics_collector.", "metrics."),
        ):
            if path.startswith(a):
                return b + path[len(a) :]
        if path == "trial_template":
            return "trial"
        return path

    return translate


def parse_native(
    data: dict[str, Any],
    base_dir: Path,
    adjust: Callable[[ExperimentSpec], ExperimentSpec] | None = None,
) -> ExperimentSpec:
    """Build an :class:`ExperimentSpec` from a parsed native YAML document.

    Raises:
        SpecError: Every problem found, with field paths as written in the document.
    """
    doc, structure = validate_structure(_Doc, data, _FALLBACKS)
    if doc is None:
        raise SpecError(structure)
    issues: list[SpecIssue] = list(structure)  # the rules below are still checked
    params: list[Parameter] = []
    unreadable: list[str] = []  # parameters reported above; the rules must not call them unknown
    for name, raw in doc.parameters.items():
        try:
            entry: _Parameter | list[Scalar] = (
                _SCALARS.validate_python(raw)
                if isinstance(raw, list)
                else _Parameter.model_validate(raw)
            )
            params.append(_parameter(name, entry))
        except ValidationError as exc:
            unreadable.append(name)
            issues.extend(pydantic_issues(exc, prefix=f"parameters.{name}"))
        except SpecError as exc:
            unreadable.append(name)
            issues.extend(exc.issues)
    algo = (
        AlgorithmSpec(name=doc.algorithm)
        if isinstance(doc.algorithm, str)
        else AlgorithmSpec(name=doc.algorithm.name, settings=doc.algorithm.settings)
    )
    timeout = trial_timeout = None
    try:
        timeout = parse_duration(doc.budget.timeout, "budget.timeout")
    except SpecError as exc:
        issues.extend(exc.issues)
    try:
        trial_timeout = parse_duration(doc.trial.timeout, "trial.timeout")
    except SpecError as exc:
        issues.extend(exc.issues)
    command: tuple[str, ...] | None = None
    if doc.trial.command is None:
        if doc.trial.notebook is None:
            issues.append(
                SpecIssue(
                    "trial.command", "is required (or trial.notebook): the argv each trial runs"
                )
            )
    elif isinstance(doc.trial.command, str):
        issues.append(
            SpecIssue(
                "trial.command",
                "must be a list of arguments (it runs without a "
                f"shell); got the string {doc.trial.command!r}",
            )
        )
    else:
        command = tuple(str(a) for a in doc.trial.command)
    found_dir = existing(base_dir, doc.trial.workdir or ".", "dir")
    if found_dir is None:
        issues.append(
            SpecIssue(
                "trial.workdir",
                f"must be an existing directory; got {doc.trial.workdir!r} (relative to "
                f"{str(base_dir)!r})",
            )
        )
    workdir = found_dir or base_dir.resolve()
    notebook = None
    if doc.trial.notebook is not None:
        nb = existing(workdir, doc.trial.notebook, "file")
        if nb is None:
            issues.append(
                SpecIssue(
                    "trial.notebook",
                    f"must be an existing notebook file; got {doc.trial.notebook!r} (relative "
                    f"to {str(workdir)!r})",
                )
            )
        else:  # a parameters cell, a Python kernel (trials/_notebook.py)
            import warnings

            from trials._notebook import validate_notebook

            try:
                for note in validate_notebook(nb, [p.name for p in params]):
                    warnings.warn(note, UserWarning, stacklevel=2)
            except SpecError as exc:
                issues.extend(exc.issues)
            notebook = str(nb)
    res = doc.trial.resources
    executor = _Executor(kind=doc.executor) if isinstance(doc.executor, str) else doc.executor
    nas_config, nas_names = _nas(doc, algo, issues)
    env = {k: str(v) for k, v in doc.trial.env.items()}
    nas_bindings: tuple[TrialParameter, ...] = ()
    if nas_names:
        command, env, nas_bindings = _bind_nas(command, env, nas_names)
    single = (
        None
        if doc.objective is None
        else Objective(
            type=Direction(doc.objective.direction),
            metric=doc.objective.metric,
            goal=doc.objective.goal,
            additional_metrics=tuple(doc.objective.additional_metrics),
            strategies={k: MetricStrategy(v) for k, v in doc.objective.strategies.items()},
        )
    )
    try:
        objective, objectives, constraints = build_objectives(
            single, doc.objectives, doc.constraints
        )
    except SpecError as exc:
        issues.extend(exc.issues)
        objective = single or Objective(type=Direction.MINIMIZE, metric="?")
        objectives, constraints = (), ()
    spec = ExperimentSpec(
        name=doc.name,
        objective=objective,
        objectives=objectives,
        constraints=constraints,
        algorithm=algo,
        parameters=tuple(params),
        parallel_trial_count=doc.budget.parallel,
        max_trial_count=doc.budget.max_trials,
        max_failed_trial_count=doc.budget.max_failed,
        timeout=timeout,
        trial_hours=doc.budget.trial_hours,
        gpu_hours=doc.budget.gpu_hours,
        trial_template=TrialTemplate(
            command=command,
            workdir=str(workdir),
            env=env,
            timeout=trial_timeout,
            notebook=notebook,
            warm=tuple(doc.trial.warm.preload) if doc.trial.warm is not None else None,
            trial_parameters=nas_bindings,
            resources=Resources(
                cpu=res.cpu,
                memory=None if res.memory is None else str(res.memory),
                gpu=res.gpu,
                gpu_memory=None if res.gpu_memory is None else str(res.gpu_memory),
                workers=res.workers,
                processes_per_worker=res.processes_per_worker,
            ),
        ),
        metrics_collector=MetricsCollectorSpec(
            kind=_COLLECTORS[doc.metrics.collector.lower()],
            path=doc.metrics.path,
            format=doc.metrics.format.upper(),
            filters=tuple(doc.metrics.filters),
        ),
        seed=doc.seed,
        early_stopping=(
            None
            if doc.early_stopping is None
            else EarlyStoppingSpec(name=doc.early_stopping)
            if isinstance(doc.early_stopping, str)
            else EarlyStoppingSpec(
                name=doc.early_stopping.name, settings=doc.early_stopping.settings
            )
        ),
        resume_policy="LongRunning",
        nas_config=nas_config,
        executor=ExecutorSpec(
            kind=ExecutorKind(executor.kind),
            address=executor.address,
            namespace=executor.namespace,
            kubeconfig=executor.kubeconfig,
            context=executor.context,
            image=executor.image,
            max_retries=executor.max_retries,
            max_preemptions=executor.max_preemptions,
            settings=executor.settings,
        ),
        source="native",
    )
    if adjust is not None:
        spec = adjust(spec)
    try:
        return check(spec, _translator(doc), issues)
    except SpecError as exc:
        echoes = tuple(f"uses ${{{n}}}, which is not a parameter" for n in unreadable)
        raise SpecError([i for i in exc.issues if not i.message.startswith(echoes)]) from None
