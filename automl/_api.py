"""The Python API: ``automl.tune`` for notebooks and ``automl.Client`` for everything stored."""

from __future__ import annotations

import builtins
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from automl._controller import Progress
from automl._front import best_trial, with_front_columns
from automl._runner import function_path, preflight
from automl.core import (
    AlgorithmSpec,
    Direction,
    Distribution,
    EarlyStoppingSpec,
    ExecutorKind,
    ExecutorSpec,
    ExperimentRecord,
    ExperimentSpec,
    MetricStrategy,
    Objective,
    Parameter,
    ParameterType,
    ParamValue,
    Resources,
    TrialRecord,
    TrialTemplate,
    searched_space,
)
from automl.errors import NotFoundError, SpecError, SpecIssue
from automl.spec._common import check, pydantic_issues
from automl.spec._objectives import build_objectives
from automl.store import DEFAULT_STORE, Store

if TYPE_CHECKING:
    import pandas as pd

    from automl._client import Client as Client  # the class moved; still importable from here

__all__ = [
    "Progress",
    "TuneResult",
    "categorical",
    "discrete",
    "double",
    "int",
    "tune",
]

_int = builtins.int
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")  # trial.warm


def __getattr__(name: str) -> Any:
    if name == "Client":  # moved to automl._client; kept importable from here
        from automl._client import Client

        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _range(
    kind: ParameterType,
    min: float,
    max: float,
    step: float | None,
    log: bool,
    distribution: str | None,
    when: Mapping[str, Any] | None = None,
    default: ParamValue | None = None,
) -> Parameter:
    if distribution is None:
        distribution = "logUniform" if log else "uniform"
    elif log and distribution not in ("logUniform", "logNormal"):
        raise SpecError(f"log=True contradicts distribution={distribution!r}", path="distribution")
    try:
        dist = Distribution(distribution)
    except ValueError:
        raise SpecError(
            f"must be one of {[d.value for d in Distribution]}; got {distribution!r}",
            path="distribution",
        ) from None
    return _parameter(
        type=kind,
        min=min,
        max=max,
        step=step,
        distribution=dist,
        when=dict(when or {}),
        default=default,
    )


def _parameter(**fields: Any) -> Parameter:
    """A Parameter named later by ``tune``; a malformed ``when`` is a SpecError on ``when``."""
    try:
        return Parameter(name="_", **fields)
    except ValidationError as exc:
        raise SpecError(pydantic_issues(exc)) from None


def int(
    min: _int,
    max: _int,
    *,
    step: _int | None = None,
    log: bool = False,
    distribution: str | None = None,
    when: Mapping[str, Any] | None = None,
    default: _int | None = None,
) -> Parameter:
    """An integer parameter in ``[min, max]``.

    Args:
        min: Lower bound, inclusive.
        max: Upper bound, inclusive.
        step: Grid step (default 1).
        log: Search on a log scale (``distribution="logUniform"``).
        distribution: ``uniform``, ``logUniform``, ``normal`` or ``logNormal``.
        when: Make the parameter conditional: ``{"model": "svm"}`` or
            ``{"model": ["forest", "boosting"]}`` (docs/conditional.md). A trial gets it only
            while every named parameter holds one of the listed values.
        default: Value a command trial's placeholder takes while the parameter is inactive.
    """
    return _range(ParameterType.INT, min, max, step, log, distribution, when, default)


def double(
    min: float,
    max: float,
    *,
    step: float | None = None,
    log: bool = False,
    distribution: str | None = None,
    when: Mapping[str, Any] | None = None,
    default: float | None = None,
) -> Parameter:
    """A real parameter in ``[min, max]``; see :func:`int` for the arguments."""
    return _range(ParameterType.DOUBLE, min, max, step, log, distribution, when, default)


def categorical(
    values: Sequence[ParamValue],
    *,
    when: Mapping[str, Any] | None = None,
    default: ParamValue | None = None,
) -> Parameter:
    """A choice among ``values`` (strings, numbers or booleans, passed through typed).

    ``when`` and ``default`` make it conditional, as for :func:`int`.
    """
    return _parameter(
        type=ParameterType.CATEGORICAL,
        values=tuple(values),
        when=dict(when or {}),
        default=default,
    )


def discrete(
    values: Sequence[float],
    *,
    when: Mapping[str, Any] | None = None,
    default: float | None = None,
) -> Parameter:
    """A choice among numeric ``values``; ``when`` and ``default`` as for :func:`int`."""
    return _parameter(
        type=ParameterType.DISCRETE, values=tuple(values), when=dict(when or {}), default=default
    )


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` (or :meth:`Client.result`) returns.

    Attributes:
        experiment: The stored experiment at the end.
        best_trial: The best succeeded trial, or None.
        trials: One row per trial (a pandas DataFrame).
        store_url: The store it came from (for plots that read observations).
        runs_dir: Where its trials kept their files.
    """

    experiment: ExperimentRecord
    best_trial: TrialRecord | None
    trials: pd.DataFrame
    store_url: str | None = field(default=None, repr=False, compare=False)
    runs_dir: Path | None = field(default=None, repr=False, compare=False)

    @property
    def artifacts(self) -> Path:
        """The best trial's artifact directory.

        Raises:
            NotFoundError: No trial succeeded, or the best one saved nothing.
        """
        if self.best_trial is None:
            raise NotFoundError(f"experiment {self.name!r} has no succeeded trial")
        return _artifacts_of(self.name, self.best_trial, self.runs_dir)

    def best_model(self, model: str = "model") -> Any:
        """The model the best trial saved with :func:`automl.save_model`.

        Raises:
            NotFoundError: No trial succeeded, or the best trial saved no such model.
        """
        from automl._artifacts import load_model

        return load_model(self.artifacts, model)

    def plot_history(self) -> Any:
        """Objective value per trial with the best so far (a Plotly figure)."""
        from automl import plots

        return plots.history(self)

    def plot_parallel_coordinates(self) -> Any:
        """Parameters against the objective value (a Plotly figure)."""
        from automl import plots

        return plots.parallel_coordinates(self)

    def plot_importance(self) -> Any:
        """Parameter importance (a Plotly figure)."""
        from automl import plots

        return plots.importance(self)

    def plot_intermediate_values(self) -> Any:
        """Reported intermediate objective values per trial (a Plotly figure)."""
        from automl import plots

        return plots.intermediate_values(self)

    def _repr_html_(self) -> str:
        from automl.plots import summary_html

        return summary_html(self)

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.experiment.name

    @property
    def best_params(self) -> dict[str, ParamValue]:
        """Parameters of the best trial (empty if none succeeded)."""
        return dict(self.best_trial.params) if self.best_trial else {}

    @property
    def best_value(self) -> float | None:
        """Objective value of the best trial."""
        return self.best_trial.value if self.best_trial else None

    @property
    def best_trials(self) -> pd.DataFrame:
        """The best trials as rows of :attr:`trials`: the Pareto front with several objectives.

        Feasible succeeded trials that no other such trial dominates; with one objective, the
        best trial's row.
        """
        df = self.trials
        if "pareto" in df:
            return df[df["pareto"].astype(bool)].reset_index(drop=True)
        best = self.best_trial
        if best is None or df.empty:
            return df.iloc[0:0]
        return df[df["trial"] == best.id].reset_index(drop=True)

    @property
    def reason(self) -> str:
        """Why the experiment ended."""
        return self.experiment.reason

    def __repr__(self) -> str:
        return (
            f"TuneResult(name={self.name!r}, state={self.experiment.state.value}, "
            f"reason={self.reason!r}, best_value={self.best_value!r}, "
            f"best_params={self.best_params!r}, trials={len(self.trials)})"
        )


def _default_name(objective: Callable[..., Any]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", getattr(objective, "__name__", "tune").lower()).strip("-")
    return f"{base or 'tune'}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _resources_arg(
    value: Mapping[str, Any] | Resources | None, issues: list[SpecIssue]
) -> Resources:
    """``tune(resources_per_trial=...)`` as Resources; problems go to ``issues``."""
    if value is None:
        return Resources()
    if isinstance(value, Resources):
        return value
    if not isinstance(value, Mapping):
        issues.append(
            SpecIssue(
                "resources_per_trial",
                f"must be a dict or automl.core.Resources; got {type(value).__name__}",
            )
        )
        return Resources()
    data = dict(value)
    for key in ("memory", "gpu_memory"):  # a plain number of bytes, as in the YAML
        if isinstance(data.get(key), builtins.int | float) and not isinstance(data[key], bool):
            data[key] = str(data[key])
    try:
        return Resources.model_validate(data)
    except ValidationError as exc:
        issues.extend(pydantic_issues(exc, prefix="resources_per_trial"))
        return Resources()


def _executor_arg(
    value: str | Mapping[str, Any] | ExecutorSpec | None, issues: list[SpecIssue]
) -> ExecutorSpec:
    """``tune(executor=...)`` as an ExecutorSpec; problems go to ``issues``."""
    if value is None:
        return ExecutorSpec()
    if isinstance(value, ExecutorSpec):
        return value
    kinds = ", ".join(repr(k.value) for k in ExecutorKind)
    if not isinstance(value, str | Mapping):
        issues.append(
            SpecIssue("executor", f"must be one of {kinds} or a dict; got {type(value).__name__}")
        )
        return ExecutorSpec()
    data: dict[str, Any] = {"kind": value} if isinstance(value, str) else dict(value)
    if data.get("kind", "local") not in [k.value for k in ExecutorKind]:
        issues.append(SpecIssue("executor", f"must be one of {kinds}; got {data.get('kind')!r}"))
        return ExecutorSpec()
    try:
        return ExecutorSpec.model_validate(data)
    except ValidationError as exc:
        issues.extend(pydantic_issues(exc, prefix="executor"))
        return ExecutorSpec()


def tune(
    objective: Callable[..., Any],
    parameters: Mapping[str, Parameter] | None = None,
    *,
    objective_metric: str = "objective",
    direction: str = "minimize",
    algorithm: str = "auto",
    algorithm_settings: Mapping[str, Any] | None = None,
    max_trials: _int | None = None,
    parallel_trials: _int = 1,
    max_failed_trials: _int | None = None,
    timeout: float | None = None,
    trial_timeout: float | None = None,
    goal: float | None = None,
    additional_metrics: Sequence[str] = (),
    metric_strategies: Mapping[str, str] | None = None,
    seed: _int | None = None,
    early_stopping: str | Mapping[str, Any] | None = None,
    name: str | None = None,
    store: str | Store = DEFAULT_STORE,
    resume: bool = False,
    progress: bool | None = None,
    resources_per_trial: Mapping[str, Any] | Resources | None = None,
    executor: str | Mapping[str, Any] | ExecutorSpec | None = None,
    nas: Any = None,
    runs_dir: str | Path = "automl-runs",
    trial_processes: bool = False,
    warm: Sequence[str] | None = None,
    initial_points: Sequence[Mapping[str, Any]] = (),
    warm_start: str | None = None,
    budget: Mapping[str, float] | None = None,
    objectives: Sequence[Mapping[str, Any]] | None = None,
    constraints: Sequence[str] | None = None,
) -> TuneResult:
    """Tune a Python function; every trial lands in the store.

    The objective gets typed values (``int`` as int, ``float`` as float), as keyword arguments
    (``def f(C, kernel)``) or as one dict (``def f(params)``), and returns a number, a dict of
    metrics, or None after reporting with :func:`automl.report`.

    An Optuna-style objective, ``def objective(trial)`` calling ``trial.suggest_float(...)``,
    ``suggest_int`` and ``suggest_categorical``, needs no ``parameters``: it defines the space
    as it runs (define-by-run; ``trial.report``/``trial.should_prune`` are
    :func:`automl.report`/:func:`automl.should_stop`). Each trial stores only the parameters it
    asked for. See docs/conditional.md.

    Args:
        objective: The function to tune.
        parameters: Search space: ``{"C": automl.double(1e-3, 1e3, log=True), ...}``; a
            parameter made with ``when={"model": "svm"}`` exists only under that condition.
            Leave it out to search ``nas`` instead, or for a define-by-run objective.
        objective_metric: Name of the metric to optimize (a plain return value is stored under it).
        direction: ``minimize`` or ``maximize``.
        algorithm: One of ``search.algorithm_names()``; ``auto`` (the default) picks its
            strategy per trial by space, budget and phase (docs/search.md).
        algorithm_settings: Settings of the algorithm (Katib's names).
        max_trials: Trials to run; None runs until another budget ends the experiment.
        parallel_trials: Trials at once (threads).
        max_failed_trials: Failures that fail the experiment.
        timeout: Wall-clock budget in seconds.
        trial_timeout: Per-trial limit in seconds.
        goal: Stop once the objective reaches it.
        objectives: Several objectives instead of ``objective_metric``/``direction``/``goal``:
            ``[{"metric": "accuracy", "direction": "maximize", "goal": 0.98}, {"metric":
            "latency_ms", "direction": "minimize"}]`` (the objective returns a dict of them).
            The best trials are then the Pareto front (``result.best_trials``); the experiment
            ends when one front member reaches every goal. See docs/multi-objective.md.
        constraints: Bounds on reported metrics, ``["memory_mb <= 2000", "latency_ms < 50"]``:
            a trial that breaks one is infeasible, never best, and the algorithm is told.
        additional_metrics: Other metrics to keep.
        metric_strategies: ``{"metric": "min"|"max"|"latest"}``.
        seed: Seed for a reproducible search.
        early_stopping: A rule name (``"medianstop"``, ``"median"``, ``"asha"``...) or
            ``{"name": ..., "settings": {...}}``. The objective reports intermediate values with
            ``automl.report(step=..., metric=...)`` and checks :func:`automl.should_stop` (or
            lets :class:`automl.TrialStopped` propagate).
        name: Experiment name (generated if None).
        store: Store URL or an open :class:`~automl.store.Store`.
        runs_dir: Where trials keep their files (logs, checkpoints, saved models).
        trial_processes: Run each trial in a process of its own (``python -m automl._fnrun``)
            instead of a thread: a trial then outlives a controller that dies, is adopted by
            ``resume`` instead of running again, and is killed with its process group on stop,
            early stopping or timeout. The objective must be importable
            (``module:function``, not defined in ``__main__`` or a notebook).
        warm: Modules to import once and start trials from, warm (``trial.warm.preload``):
            with ``trial_processes=True`` each trial is forked from a server that imported
            them; on Ray each worker imports them once for all its trials. Not for trials in
            threads, which share this process's imports.
        resume: Continue the experiment called ``name`` if it exists (its budgets may be raised).
        progress: Show the live progress display; None (default): on in a notebook or a
            terminal, off when output is piped or redirected.
        resources_per_trial: What each trial needs, as :class:`automl.core.Resources` or a
            dict of its fields: ``cpu``, ``memory`` (``"4Gi"``), ``gpu`` (whole, or a fraction
            such as 0.25 that shares a device), ``gpu_memory``, ``workers``,
            ``processes_per_worker``. Ray and Kubernetes reserve it for each trial. Locally a
            function's trials are threads of this process, so they cannot hold GPUs of their
            own (``gpu`` needs ``executor="ray"``, or a command trial: ``docs/scale-out.md``).
        executor: Where trials run: ``"local"`` (default), ``"ray"``, ``"kubernetes"``, or a
            dict like the YAML ``executor:`` mapping (``{"kind": "ray", "address": "auto"}``).
        nas: An architecture space to search instead of ``parameters``: a
            :class:`search.NasSpace`, its native mapping (``{"layers": 3, "operations":
            [...]}``) or a Katib ``nasConfig`` mapping. With ``enas`` the LSTM controller
            proposes; with ``random``, ``tpe``, ``evolution``... the layer choices
            (``layer_{i}_op``, ``layer_{i}_skip_{j}``) are searched. The objective gets those
            choices, ``nn_config`` (Katib's string) and ``architecture`` decoded as a
            :class:`search.Architecture` (``nas.build_model(space, architecture)`` builds it).
        initial_points: Configurations to run first (``[{"C": 10, "kernel": "rbf"}]``), checked
            against the space; the search learns from them like from its own (docs/steering.md).
        warm_start: Name of an experiment in the store whose finished trials the search starts
            from (those whose values fit this space).
        budget: Resource budgets: ``{"trial_hours": 10, "gpu_hours": 4}`` ends the experiment
            (``BudgetExhausted``) once the summed trial time (times GPUs held) reaches it.

    Returns:
        The result, with ``best_params``, ``best_value`` and ``trials`` (a DataFrame).

    Raises:
        SpecError: Bad arguments, each named.
        AlreadyExistsError: ``name`` exists and ``resume`` is False.
    """
    if not callable(objective):
        raise SpecError(f"must be callable; got {type(objective).__name__}", path="objective")
    issues: list[SpecIssue] = []
    params: list[Parameter] = []
    nas_config = _nas_arg(nas, parameters, issues)
    from automl._define_by_run import is_define_by_run

    # def objective(trial) with no parameters: the objective defines the space as it runs.
    define_by_run = not parameters and nas is None and is_define_by_run(objective)
    for pname, p in (parameters or {}).items():
        if not isinstance(p, Parameter):
            issues.append(
                SpecIssue(
                    f"parameters.{pname}",
                    "must be made with automl.int, "
                    f"automl.double, automl.categorical or automl.discrete; got {p!r}",
                )
            )
            continue
        params.append(p.model_copy(update={"name": pname}))
    if direction not in ("minimize", "maximize"):
        issues.append(
            SpecIssue("direction", f"must be 'minimize' or 'maximize'; got {direction!r}")
        )
    for metric, strat in (metric_strategies or {}).items():
        if strat not in ("min", "max", "latest"):
            issues.append(
                SpecIssue(
                    f"metric_strategies.{metric}", f"must be min, max or latest; got {strat!r}"
                )
            )
    stopping: EarlyStoppingSpec | None = None
    if isinstance(early_stopping, str):
        stopping = EarlyStoppingSpec(name=early_stopping)
    elif isinstance(early_stopping, Mapping):
        extra = set(early_stopping) - {"name", "settings"}
        if "name" not in early_stopping or extra:
            issues.append(
                SpecIssue(
                    "early_stopping",
                    "must be a rule name or {'name': ..., 'settings': "
                    f"{{...}}}}; got {dict(early_stopping)!r}",
                )
            )
        else:
            stopping = EarlyStoppingSpec(
                name=str(early_stopping["name"]),
                settings=dict(early_stopping.get("settings") or {}),
            )
    elif early_stopping is not None:
        issues.append(
            SpecIssue("early_stopping", f"must be a rule name or a dict; got {early_stopping!r}")
        )
    resources = _resources_arg(resources_per_trial, issues)
    executor_spec = _executor_arg(executor, issues)
    if executor_spec.kind is ExecutorKind.LOCAL and resources.gpu > 0:
        issues.append(
            SpecIssue(
                "resources_per_trial.gpu",
                "local function trials are threads of this process and share its GPUs, so "
                f"none can hold its own; got gpu {resources.gpu:g} (use executor='ray', or a "
                "command trial: automl run with trial.resources.gpu)",
            )
        )
    command = None
    if trial_processes:
        fpath = function_path(objective)
        if fpath is None or nas_config is not None:
            issues.append(
                SpecIssue(
                    "trial_processes",
                    "a trial process imports the objective by module path; "
                    + (
                        "architecture search (nas=...) runs in threads only"
                        if fpath is not None
                        else f"{getattr(objective, '__qualname__', objective)!r} is defined in "
                        "__main__, a notebook or a function body: move it into a module"
                    ),
                )
            )
        else:
            command = ("python", "-m", "automl._fnrun", fpath, objective_metric)
            if define_by_run:
                command += ("--define-by-run", *(() if seed is None else (f"--seed={seed}",)))
    if warm is not None:
        bad = [m for m in warm if not isinstance(m, str) or not _MODULE_NAME.match(m)]
        if isinstance(warm, str) or bad:
            issues.append(
                SpecIssue("warm", f"must be a list of module names, like ['torch']; got {warm!r}")
            )
        elif command is None and executor_spec.kind is not ExecutorKind.RAY:
            issues.append(
                SpecIssue(
                    "warm",
                    "trials in threads share this process's imports: warm starts need "
                    "trial_processes=True or executor='ray'",
                )
            )
    for key in budget or {}:
        if key not in ("trial_hours", "gpu_hours"):
            issues.append(
                SpecIssue(f"budget.{key}", "is not a budget: give trial_hours or gpu_hours")
            )
    if objectives is not None and goal is not None:
        issues.append(SpecIssue("goal", "give each objective's goal in objectives instead"))
    if issues:
        raise SpecError(issues)
    first, all_objectives, all_constraints = build_objectives(
        None
        if objectives is not None
        else Objective(
            type=Direction(direction),
            metric=objective_metric,
            goal=goal,
            additional_metrics=tuple(additional_metrics),
            strategies={k: MetricStrategy(v) for k, v in (metric_strategies or {}).items()},
        ),
        objectives,
        constraints,
        objective_path="objective_metric",
    )
    if command is not None:  # a trial process stores a plain return value under the first
        # objective's metric: argument 4 of python -m automl._fnrun PATH METRIC [flags]
        command = (*command[:4], first.metric, *command[5:])
    spec = ExperimentSpec(
        name=name or _default_name(objective),
        objective=first,
        objectives=all_objectives,
        constraints=all_constraints,
        algorithm=AlgorithmSpec(name=algorithm, settings=dict(algorithm_settings or {})),
        parameters=tuple(params),
        parallel_trial_count=parallel_trials,
        max_trial_count=max_trials,
        max_failed_trial_count=max_failed_trials,
        timeout=timeout,
        trial_template=TrialTemplate(
            function=None if command else function_path(objective),
            timeout=trial_timeout,
            resources=resources,
            command=command,
            warm=tuple(warm) if warm is not None else None,
        ),
        executor=executor_spec,
        seed=seed,
        early_stopping=stopping,
        resume_policy="LongRunning",
        nas_config=nas_config,
        define_by_run=define_by_run,
        source="python",
        warm_start=warm_start,
        trial_hours=(budget or {}).get("trial_hours"),
        gpu_hours=(budget or {}).get("gpu_hours"),
    )
    if nas_config is not None:
        objective = _NasObjective(objective)
    paths = {
        "parallel_trial_count": "parallel_trials",
        "max_trial_count": "max_trials",
        "max_failed_trial_count": "max_failed_trials",
        "objective.metric": "objective_metric",
        "algorithm.name": "algorithm",
        "trial_template.timeout": "trial_timeout",
        "trial_template.resources": "resources_per_trial",
        "trial_hours": "budget.trial_hours",
        "gpu_hours": "budget.gpu_hours",
    }

    def translate(path: str) -> str:
        m = re.match(r"^parameters\[(\d+)\](.*)$", path)
        if m and _int(m.group(1)) < len(params):
            return f"parameters.{params[_int(m.group(1))].name}{m.group(2)}"
        if path.startswith("algorithm.settings."):
            return "algorithm_settings." + path.removeprefix("algorithm.settings.")
        if path.startswith("trial_template.resources."):
            return "resources_per_trial." + path.removeprefix("trial_template.resources.")
        return paths.get(path, path)

    check(spec, translate)
    from automl._client import Client

    with Client(store, runs_dir=runs_dir) as client:
        if resume and name is not None:
            try:
                client.get(name)
            except NotFoundError:
                pass
            else:
                return client.resume(
                    name,
                    objective=objective,
                    max_trials=max_trials,
                    parallel_trials=parallel_trials,
                    progress=progress,
                )
        preflight(spec)
        if initial_points:
            from automl._steering import check_params

            for i, point in enumerate(initial_points):  # every point checked before anything
                try:
                    check_params(spec, point)
                except SpecError as exc:
                    raise SpecError(
                        [
                            SpecIssue(
                                f"initial_points[{i}].{x.path.removeprefix('params.')}", x.message
                            )
                            for x in exc.issues
                        ]
                    ) from None
        exp = client.store.experiments.create(spec)
        for point in initial_points:
            client.enqueue(spec.name, point)
        return client._run(exp, objective=None if command else objective, progress=progress)


def _nas_arg(nas: Any, parameters: Any, issues: list[SpecIssue]) -> dict[str, Any] | None:
    """``tune(nas=...)`` as a Katib ``nasConfig`` (None without one); problems go to ``issues``."""
    if nas is None:
        return None
    from search._nas_space import NasSpace

    if parameters:
        issues.append(SpecIssue("nas", "give parameters or nas, not both"))
    try:
        if isinstance(nas, NasSpace):
            return nas.to_katib()
        if isinstance(nas, Mapping) and "graphConfig" in nas:
            return NasSpace.from_katib(nas, "nas").to_katib()
        if isinstance(nas, Mapping):
            return NasSpace.from_native(nas, "nas").to_katib()
    except SpecError as exc:
        issues.extend(exc.issues)
        return None
    issues.append(SpecIssue("nas", f"must be a NasSpace or a mapping; got {type(nas).__name__}"))
    return None


class _NasObjective:
    """Calls an objective with ``architecture`` decoded into a :class:`search.Architecture`."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, params: dict[str, Any]) -> Any:
        from search._nas_space import Architecture
        from trials._inprocess import call_objective

        decoded = dict(params)
        if isinstance(decoded.get("architecture"), str):
            decoded["architecture"] = Architecture.from_katib(decoded["architecture"])
        return call_objective(self.fn, decoded)


def _artifacts_of(name: str, trial: TrialRecord, runs_dir: Path | None) -> Path:
    """A trial's artifact directory as recorded, or where it would be under ``runs_dir``."""
    from automl._artifacts import artifact_dir

    recorded = trial.outputs.get("artifact_dir") if trial.outputs else None
    candidates = [Path(recorded)] if recorded else []
    if runs_dir is not None:
        candidates.append(artifact_dir(runs_dir, name, trial.id))
    for path in candidates:
        if path.is_dir() and any(path.iterdir()):
            return path
    raise NotFoundError(
        f"trial {trial.number} ({trial.id}) of experiment {name!r} saved no artifacts; save a "
        "model from the objective or trial script with automl.save_model(obj), or write files "
        "into automl.current_trial().artifact_dir ($AUTOML_ARTIFACT_DIR)"
    )


def _best(spec: ExperimentSpec, trials: Sequence[TrialRecord]) -> TrialRecord | None:
    # Feasible, not invalidated by hand; with several objectives the front's best on the first.
    return best_trial(spec, trials)


def _dataframe(spec: ExperimentSpec, trials: Sequence[TrialRecord]) -> pd.DataFrame:
    import pandas as pd

    rows = []
    obj = spec.objective
    space = searched_space(spec, trials)
    for t in trials:
        row: dict[str, Any] = {
            "number": t.number,
            "trial": t.id,
            "state": t.state.value,
            "value": t.value,
        }
        for p in space:  # NaN where a parameter is inactive (conditional, define-by-run)
            row[f"params_{p.name}"] = t.params.get(p.name, math.nan)
        for m in obj.metrics:
            s = t.metrics.get(m)
            row[m] = s.pick(obj.strategy(m).value) if s else None
        row.update(
            started=t.started_at,
            finished=t.finished_at,
            duration_s=t.duration,
            attempt=t.attempt,
            message=t.message,
        )
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("started", "finished"):
        if col in df:
            df[col] = pd.to_datetime(df[col], unit="s")
    return with_front_columns(spec, trials, df)
