"""The validated experiment spec: one frozen object that every front door produces.

The native YAML form, Katib ``Experiment`` documents and :func:`automl.tune` all end up as an
:class:`ExperimentSpec`. Defaults are filled once, here. The spec round-trips through JSON
(:meth:`ExperimentSpec.to_json` / :meth:`ExperimentSpec.from_json`), which is how the store
keeps it.
"""

from __future__ import annotations

import math
import re
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from automl.core._constraints import Constraint
from automl.errors import SpecError, SpecIssue

__all__ = [
    "AlgorithmSpec",
    "CollectorKind",
    "Direction",
    "Distribution",
    "EarlyStoppingSpec",
    "ExecutorKind",
    "ExecutorSpec",
    "ExperimentSpec",
    "MetricStrategy",
    "MetricsCollectorSpec",
    "Objective",
    "ParamValue",
    "Parameter",
    "ParameterType",
    "Resources",
    "TrialParameter",
    "TrialTemplate",
    "parse_quantity",
]

ParamValue = bool | int | float | str

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class ParameterType(str, Enum):
    """Katib's parameter types."""

    INT = "int"
    DOUBLE = "double"
    CATEGORICAL = "categorical"
    DISCRETE = "discrete"


class Distribution(str, Enum):
    """Katib's prior distributions over a numeric range ``[min, max]``.

    ``normal`` is a normal with mean ``(min+max)/2`` and standard deviation ``(max-min)/6``
    (Katib's hyperopt service); ``logNormal`` is the same on the log scale. Both are truncated to
    ``[min, max]``, so every suggestion stays inside the feasible space.
    """

    UNIFORM = "uniform"
    LOG_UNIFORM = "logUniform"
    NORMAL = "normal"
    LOG_NORMAL = "logNormal"


class Direction(str, Enum):
    """Objective direction (Katib's ``objective.type``)."""

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class MetricStrategy(str, Enum):
    """How a trial's many observations of a metric reduce to one value."""

    MIN = "min"
    MAX = "max"
    LATEST = "latest"


class CollectorKind(str, Enum):
    """Where a trial's metrics come from."""

    STDOUT = "StdOut"
    FILE = "File"
    PUSH = "Push"
    TENSORFLOW_EVENT = "TensorFlowEvent"
    PROMETHEUS = "PrometheusMetric"
    CUSTOM = "Custom"


class Parameter(_Frozen):
    """One hyperparameter and its feasible space.

    Attributes:
        name: Parameter name, unique within the experiment.
        type: ``int``, ``double``, ``categorical`` or ``discrete``.
        min: Lower bound (int and double only).
        max: Upper bound (int and double only).
        step: Grid step (int and double only); int defaults to 1.
        values: Feasible values (categorical and discrete only).
        distribution: Prior over ``[min, max]`` (int and double only).
        when: Condition for the parameter to exist: parent parameter name -> the parent's
            values under which it is active (all parents must match); empty: always active.
            See :mod:`automl.core._conditions`.
        default: The value a command template's placeholder takes while the parameter is
            inactive (only for a conditional parameter; never stored, never given to a function).
    """

    name: str
    type: ParameterType
    min: float | None = None
    max: float | None = None
    step: float | None = None
    values: tuple[ParamValue, ...] = ()
    distribution: Distribution = Distribution.UNIFORM
    when: dict[str, tuple[ParamValue, ...]] = Field(default_factory=dict)
    default: ParamValue | None = None

    def __hash__(self) -> int:
        # Frozen, and hashable as before ``when`` (a dict) was added.
        return hash(
            (
                self.name,
                self.type,
                self.min,
                self.max,
                self.step,
                self.values,
                self.distribution,
                tuple(self.when.items()),
                self.default,
            )
        )

    @field_validator("when", mode="before")
    @classmethod
    def _one_value_or_many(cls, raw: Any) -> Any:
        # ``when: {model: svm}`` is ``when: {model: [svm]}``.
        if not isinstance(raw, dict):
            return raw
        out: dict[Any, Any] = {}
        for parent, values in raw.items():
            if isinstance(values, dict):
                raise ValueError(
                    f"{parent}: must be a value or a list of values of {parent!r}; got a mapping "
                    f"{values!r} (a nested condition goes on the parent parameter's own when)"
                )
            out[parent] = tuple(values) if isinstance(values, (list, tuple)) else (values,)
        return out

    def problems(self, path: str) -> list[SpecIssue]:
        """Return every rule this parameter breaks, with field paths under ``path``."""
        out = self._space_problems(path)
        if not out and self.default is not None and not self.feasible(self.default):
            out.append(
                SpecIssue(
                    f"{path}.default",
                    f"must be a value the parameter can take; got {self.default!r}",
                )
            )
        return out

    def feasible(self, value: ParamValue) -> bool:
        """Whether ``value`` lies in this (valid) parameter's space."""
        if not self.is_numeric_range:
            return any(type(v) is type(value) and v == value for v in self.values)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        assert self.min is not None and self.max is not None
        if self.type is ParameterType.INT and float(value) != int(value):
            return False
        return self.min <= value <= self.max

    def _space_problems(self, path: str) -> list[SpecIssue]:
        out: list[SpecIssue] = []
        if not self.name or "{" in self.name or "}" in self.name:
            out.append(
                SpecIssue(f"{path}.name", f"must be non-empty without braces; got {self.name!r}")
            )
        if self.type in (ParameterType.CATEGORICAL, ParameterType.DISCRETE):
            for fld in ("min", "max", "step"):
                if getattr(self, fld) is not None:
                    out.append(
                        SpecIssue(
                            f"{path}.{fld}",
                            f"is not allowed for {self.type.value} "
                            "parameters (use a list of values)",
                        )
                    )
            if not self.values:
                out.append(
                    SpecIssue(
                        f"{path}.values",
                        f"must be a non-empty list for a {self.type.value} parameter; got []",
                    )
                )
            if len(set(map(repr, self.values))) != len(self.values):
                out.append(
                    SpecIssue(
                        f"{path}.values", f"must not repeat a value; got {list(self.values)}"
                    )
                )
            for i, v in enumerate(self.values):
                if isinstance(v, str) and "\x00" in v:
                    out.append(
                        SpecIssue(
                            f"{path}.values[{i}]",
                            "must not contain a NUL character (no argument or environment "
                            f"variable can hold one); got {v!r}",
                        )
                    )
            if self.type is ParameterType.DISCRETE:
                for i, v in enumerate(self.values):
                    if isinstance(v, bool) or not isinstance(v, (int, float)):
                        out.append(
                            SpecIssue(
                                f"{path}.values[{i}]",
                                f"must be a number for a discrete parameter; got {v!r}",
                            )
                        )
            if self.distribution is not Distribution.UNIFORM:
                out.append(
                    SpecIssue(
                        f"{path}.distribution",
                        "applies only to int and double "
                        f"parameters; got {self.distribution.value!r}",
                    )
                )
            return out
        if self.values:
            out.append(
                SpecIssue(
                    f"{path}.values",
                    f"is not allowed for {self.type.value} parameters (use min and max)",
                )
            )
        if self.min is None or self.max is None:
            for fld in ("min", "max"):
                if getattr(self, fld) is None:
                    out.append(
                        SpecIssue(
                            f"{path}.{fld}", f"is required for a {self.type.value} parameter"
                        )
                    )
            return out
        lo, hi = self.min, self.max
        bounds: tuple[tuple[str, float | None], ...] = (
            ("min", lo),
            ("max", hi),
            ("step", self.step),
        )
        for fld, num in bounds:
            if num is not None and not math.isfinite(num):
                out.append(SpecIssue(f"{path}.{fld}", f"must be a finite number; got {num}"))
        if out:
            return out
        if self.type is ParameterType.INT:
            for fld, num in bounds:
                if num is not None and float(num) != int(num):
                    out.append(
                        SpecIssue(
                            f"{path}.{fld}", f"must be an integer for an int parameter; got {num}"
                        )
                    )
                elif num is not None and abs(num) > INT_PARAM_MAX:
                    out.append(
                        SpecIssue(
                            f"{path}.{fld}",
                            f"must be within +-{INT_PARAM_MAX} (2**53: the samplers compute in "
                            f"floats, which hold larger integers inexactly); got {_fmt(num)}",
                        )
                    )
        if hi < lo or (hi == lo and self.type is ParameterType.DOUBLE):
            rule = "greater than or equal to" if self.type is ParameterType.INT else "greater than"
            out.append(
                SpecIssue(f"{path}.max", f"must be {rule} min ({_fmt(lo)}); got {_fmt(hi)}")
            )
            return out
        if self.distribution in (Distribution.LOG_UNIFORM, Distribution.LOG_NORMAL) and lo <= 0:
            out.append(
                SpecIssue(
                    f"{path}.min",
                    f"must be greater than 0 for the "
                    f"{self.distribution.value} distribution; got {_fmt(lo)}",
                )
            )
        if self.step is not None:
            span = hi - lo
            if self.step <= 0:
                out.append(
                    SpecIssue(f"{path}.step", f"must be greater than 0; got {_fmt(self.step)}")
                )
            elif span > 0 and self.step > span:
                out.append(
                    SpecIssue(
                        f"{path}.step",
                        f"must not exceed max - min ({_fmt(span)}); got {_fmt(self.step)}",
                    )
                )
            elif span > 0:
                k = span / self.step
                if abs(k - round(k)) > 1e-9 * max(1.0, k):
                    out.append(
                        SpecIssue(
                            f"{path}.step",
                            f"must divide max - min ({_fmt(span)}) into "
                            f"whole steps; got {_fmt(self.step)}",
                        )
                    )
        return out

    @property
    def is_numeric_range(self) -> bool:
        """Whether the parameter is an int or double range."""
        return self.type in (ParameterType.INT, ParameterType.DOUBLE)

    def grid_size(self) -> int:
        """How many points :meth:`grid` has, computed without listing them.

        Raises:
            SpecError: A double parameter has no step (Katib's rule).
        """
        if not self.is_numeric_range:
            return len(self.values)
        assert self.min is not None and self.max is not None
        if self.type is ParameterType.INT:
            return len(range(int(self.min), int(self.max) + 1, int(self.step or 1)))
        if self.step is None:
            raise SpecError(
                f"must be set for every double parameter when algorithm is grid "
                f"(parameter {self.name!r})",
                path="step",
            )
        return round((self.max - self.min) / self.step) + 1

    def grid(self) -> list[ParamValue]:
        """Enumerate Katib's grid for this parameter.

        Raises:
            SpecError: A double parameter has no step (Katib's rule).
        """
        if not self.is_numeric_range:
            return list(self.values)
        assert self.min is not None and self.max is not None
        if self.type is ParameterType.INT:
            return list(range(int(self.min), int(self.max) + 1, int(self.step or 1)))
        if self.step is None:
            raise SpecError(
                f"must be set for every double parameter when algorithm is grid "
                f"(parameter {self.name!r})",
                path="step",
            )
        n = round((self.max - self.min) / self.step)
        # Computed from the index, not by accumulation, to avoid 0.30000000000000004.
        return [float(f"{self.min + i * self.step:.12g}") for i in range(n + 1)]

    def coerce(self, value: Any) -> ParamValue:
        """Cast a value (possibly a string, as Katib passes it) to this parameter's type."""
        if self.type is ParameterType.INT:
            return round(float(value))
        if self.type is ParameterType.DOUBLE:
            return float(value)
        for v in self.values:  # same type first, so True is not taken for 1
            if type(v) is type(value) and v == value:
                return v
        for v in self.values:  # Katib passes every value as a string
            if str(v) == str(value):
                return v
        raise SpecError(f"{value!r} is not one of {list(self.values)}", path=self.name)


#: The largest magnitude of an int parameter's bounds: 2**53, exact in a float.
INT_PARAM_MAX = 2**53


def _fmt(v: float) -> str:
    return f"{v:g}"


class Objective(_Frozen):
    """What the experiment optimizes.

    Attributes:
        type: ``minimize`` or ``maximize``.
        metric: The objective metric name (Katib's ``objectiveMetricName``).
        goal: Stop when the best value reaches it (``<=`` for minimize, ``>=`` for maximize).
        additional_metrics: Other metrics to collect and store.
        strategies: Per-metric reduction of a trial's observations; defaults to ``min`` for
            minimize and ``max`` for maximize for every metric, as Katib does.
    """

    type: Direction
    metric: str
    goal: float | None = None
    additional_metrics: tuple[str, ...] = ()
    strategies: dict[str, MetricStrategy] = Field(default_factory=dict)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The objective metric followed by the additional ones."""
        return (self.metric, *self.additional_metrics)

    def strategy(self, metric: str) -> MetricStrategy:
        """The reduction used for ``metric``."""
        default = MetricStrategy.MIN if self.type is Direction.MINIMIZE else MetricStrategy.MAX
        return self.strategies.get(metric, default)

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b``."""
        return a < b if self.type is Direction.MINIMIZE else a > b

    def reached(self, value: float) -> bool:
        """Whether ``value`` meets the goal."""
        if self.goal is None:
            return False
        return value <= self.goal if self.type is Direction.MINIMIZE else value >= self.goal


class AlgorithmSpec(_Frozen):
    """A search algorithm and its settings (Katib's ``algorithmName``/``algorithmSettings``)."""

    name: str = "auto"
    settings: dict[str, Any] = Field(default_factory=dict)


class EarlyStoppingSpec(_Frozen):
    """An early-stopping rule (Katib's ``earlyStopping``) and its settings."""

    name: str
    settings: dict[str, Any] = Field(default_factory=dict)


class TrialParameter(_Frozen):
    """Katib's ``trialParameters`` entry: a placeholder name bound to a spec parameter."""

    name: str
    reference: str
    description: str = ""


_QUANTITY_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(Ki|Mi|Gi|Ti|Pi|k|K|M|G|T|P|KB|MB|GB|TB)?$")
_QUANTITY_UNITS = {
    None: 1,
    "k": 10**3,
    "K": 10**3,
    "KB": 10**3,
    "M": 10**6,
    "MB": 10**6,
    "G": 10**9,
    "GB": 10**9,
    "T": 10**12,
    "TB": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}


def parse_quantity(value: str | float, path: str) -> int:
    """Bytes in a memory quantity written the Kubernetes way (``512Mi``, ``4Gi``, ``2G``, ``1e9``).

    Raises:
        SpecError: ``value`` is not a non-negative quantity; names ``path``.
    """
    if isinstance(value, bool):
        raise SpecError(f"must be a memory quantity such as '4Gi'; got {value!r}", path=path)
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise SpecError(f"must be a non-negative memory quantity; got {value!r}", path=path)
        return int(value)
    m = _QUANTITY_RE.match(value.strip())
    if not m:
        raise SpecError(
            f"must be a memory quantity such as '512Mi', '4Gi' or '2G'; got {value!r}", path=path
        )
    return int(float(m.group(1)) * _QUANTITY_UNITS[m.group(2)])


class Resources(_Frozen):
    """What one trial needs.

    Set by native ``trial.resources``, Katib container limits and
    ``automl.tune(resources_per_trial=...)``.

    Attributes:
        cpu: CPU cores per worker (None: no reservation).
        memory: Memory per worker as a Kubernetes quantity (``"4Gi"``), None for none.
        gpu: GPUs per training process; a fraction in (0, 1) shares one device (0.25: four
            trials per GPU); above 1 it must be a whole number. A worker running
            ``processes_per_worker`` processes gets ``gpu * processes_per_worker``.
        gpu_memory: GPU memory a trial needs on its device (``"10Gi"``); with it, trials are
            packed by free device memory as well as by fraction.
        workers: Nodes (Ray placement-group bundles, PyTorchJob replicas) of a distributed trial.
        processes_per_worker: Processes per worker (``torchrun --nproc-per-node``).
    """

    cpu: float | None = None
    memory: str | None = None
    gpu: float = 0.0
    gpu_memory: str | None = None
    workers: int = 1
    processes_per_worker: int = 1

    @property
    def distributed(self) -> bool:
        """Whether a trial runs as more than one process."""
        return self.workers > 1 or self.processes_per_worker > 1

    @property
    def memory_bytes(self) -> int | None:
        """``memory`` in bytes (validated, so it parses)."""
        return None if self.memory is None else parse_quantity(self.memory, "memory")

    @property
    def gpu_memory_bytes(self) -> int | None:
        """``gpu_memory`` in bytes (validated, so it parses)."""
        return None if self.gpu_memory is None else parse_quantity(self.gpu_memory, "gpu_memory")


class ExecutorKind(str, Enum):
    """Where trials run."""

    LOCAL = "local"  # processes (or threads, for a Python function) on this machine
    RAY = "ray"  # tasks/actors on a Ray cluster
    KUBERNETES = "kubernetes"  # Jobs / PyTorchJobs / the Katib trialSpec on a cluster


class ExecutorSpec(_Frozen):
    """Where and how trials are placed (native ``executor:``).

    Attributes:
        kind: ``local``, ``ray`` or ``kubernetes``.
        address: Ray: an existing cluster's address, ``auto``, or None to start a local one.
        namespace: Kubernetes namespace for trial jobs (default: the Katib namespace or
            ``default``).
        kubeconfig: Kubernetes: path of a kube-config file (default: ``$KUBECONFIG``,
            ``~/.kube/config``, then the in-cluster service account).
        context: Kubernetes: kube-config context to use.
        image: Kubernetes: container image for a native command trial (it runs inside it).
        max_retries: Times a trial whose worker, node or pod died (not one that failed by
            itself) is started again.
        max_preemptions: Times one trial may be preempted (killed from outside by SIGTERM, an
            evicted pod) and run again before it counts as failed.
        settings: Executor-specific extras, validated by the executor.
    """

    kind: ExecutorKind = ExecutorKind.LOCAL
    address: str | None = None
    namespace: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    image: str | None = None
    max_retries: int = 0
    max_preemptions: int = 3
    settings: dict[str, Any] = Field(default_factory=dict)


class TrialTemplate(_Frozen):
    """How one trial runs.

    Exactly one of ``command`` (an argv template, run without a shell) or ``function`` (an
    importable ``module:qualname`` of a Python objective) is set.

    Attributes:
        command: Argv template with ``${trialParameters.x}`` (or ``${x}``) placeholders.
        function: Import path of an in-process objective, for experiments made by ``tune``.
        workdir: Directory the command runs in (each trial still gets its own output dir).
        env: Extra environment variables; values may hold placeholders.
        timeout: Per-trial wall-clock limit in seconds.
        trial_parameters: Placeholder bindings (Katib form); the native form binds names directly.
        shell_script_index: Index of the ``sh -c`` script in ``command``, whose placeholders are
            shell-quoted when substituted.
        manifest: The Katib ``trialSpec`` as written, kept for export and Kubernetes.
        primary_container_name: Katib's primary container.
        config_map: Katib's ``configMap`` template source (``configMapName``,
            ``configMapNamespace``, ``templatePath``), when the template lives in a ConfigMap.
        primary_pod_labels: Katib's ``primaryPodLabels``.
        success_condition: Katib's GJSON ``successCondition`` (kept for Kubernetes and export).
        failure_condition: Katib's GJSON ``failureCondition``.
        retain: Katib's ``retain``: keep the trial's job after it ends.
        local_blocker: Why the trial cannot run as a local process (e.g. an Argo Workflow), or
            None when it can.
        path_map: Prefix rewrites for paths that exist only inside the image
            (``/opt/pytorch-mnist`` -> a local directory), applied to argv, env and file paths.
        notebook: A Jupyter notebook that is the trial, run with papermill (parameters go to
            its cell tagged ``parameters``); set instead of ``command``/``function``.
        resources: What each trial needs (CPU, memory, GPUs, distributed workers).
        warm: Modules to preload in a fork server that local ``python script.py`` /
            ``python -m module`` trials are forked from (``trial.warm.preload``); None: every
            trial starts a cold interpreter. See :mod:`trials._warm`.
    """

    command: tuple[str, ...] | None = None
    function: str | None = None
    workdir: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = None
    trial_parameters: tuple[TrialParameter, ...] = ()
    shell_script_index: int | None = None
    manifest: dict[str, Any] | None = None
    primary_container_name: str | None = None
    config_map: dict[str, str] | None = None
    primary_pod_labels: dict[str, str] | None = None
    success_condition: str | None = None
    failure_condition: str | None = None
    retain: bool = False
    local_blocker: str | None = None
    path_map: dict[str, str] = Field(default_factory=dict)
    notebook: str | None = None
    resources: Resources = Field(default_factory=Resources)
    warm: tuple[str, ...] | None = None


class MetricsCollectorSpec(_Frozen):
    """Where metrics come from.

    ``StdOut`` parses the trial's output with Katib's regex (or ``filters``); ``File`` parses a
    file (TEXT with the same regexes, or JSON lines); ``Push`` takes only what the trial reports
    with :func:`automl.report`. ``automl.report`` works with every kind.
    """

    kind: CollectorKind = CollectorKind.STDOUT
    path: str | None = None
    format: str = "TEXT"
    filters: tuple[str, ...] = ()
    path_kind: str | None = None  # Katib's fileSystemPath.kind: File or Directory
    http_get: dict[str, Any] | None = None  # PrometheusMetric: {path, port}
    custom_collector: dict[str, Any] | None = None  # Custom: the collector container spec


class ExperimentSpec(_Frozen):
    """A validated experiment, with every default filled.

    Attributes:
        name: Experiment name (lower-case letters, digits, ``-``, ``_``, ``.``).
        objective: What to optimize.
        algorithm: Search algorithm.
        parameters: The search space.
        parallel_trial_count: Trials running at once.
        max_trial_count: Trials to run in all (all terminal states count, as in Katib).
        max_failed_trial_count: Failed (or MetricsUnavailable) trials that fail the experiment.
        timeout: Wall-clock budget of the experiment in seconds.
        trial_hours: Budget of summed trial run time in hours (``budget.trial_hours``).
        gpu_hours: Budget of summed trial run time times GPUs held, in hours.
        warm_start: The experiment whose finished trials this one's search starts from (a fork).
        trial_template: How a trial runs.
        metrics_collector: Where metrics come from.
        resume_policy: Katib's ``resumePolicy`` (kept for export; any experiment can be resumed).
        seed: Seed of the search algorithm; a seeded experiment is reproducible.
        early_stopping: Rule that stops unpromising trials from their intermediate values.
        nas_config: Katib's ``nasConfig`` (graphConfig, operations) as written, for neural
            architecture search; set instead of ``parameters``.
        define_by_run: The objective defines the space as it runs (``def objective(trial)``
            calling ``trial.suggest_float``...); set instead of ``parameters``. See
            :mod:`automl._define_by_run`.
        namespace: Katib namespace (kept for export).
        executor: Where trials run (local processes, a Ray cluster, Kubernetes).
        source: ``native``, ``katib`` or ``python``: which front door made the spec.
        objectives: Every objective when there are several (the first is ``objective``); empty
            for one objective. See :attr:`all_objectives`.
        constraints: Bounds on reported metrics; a trial that breaks one is infeasible.
    """

    name: str
    objective: Objective
    algorithm: AlgorithmSpec = Field(default_factory=AlgorithmSpec)
    parameters: tuple[Parameter, ...]
    parallel_trial_count: int = 1
    max_trial_count: int | None = None
    max_failed_trial_count: int | None = None
    timeout: float | None = None
    trial_hours: float | None = None
    gpu_hours: float | None = None
    warm_start: str | None = None
    trial_template: TrialTemplate = Field(default_factory=TrialTemplate)
    metrics_collector: MetricsCollectorSpec = Field(default_factory=MetricsCollectorSpec)
    resume_policy: str = "Never"
    seed: int | None = None
    early_stopping: EarlyStoppingSpec | None = None
    nas_config: dict[str, Any] | None = None
    define_by_run: bool = False
    namespace: str | None = None
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    source: str = "native"
    objectives: tuple[Objective, ...] = ()
    constraints: tuple[Constraint, ...] = ()

    @property
    def all_objectives(self) -> tuple[Objective, ...]:
        """Every objective, the first being ``objective`` (one item for a single objective)."""
        return self.objectives or (self.objective,)

    @property
    def multi_objective(self) -> bool:
        """Whether the experiment has more than one objective."""
        return len(self.objectives) > 1

    def to_json(self) -> str:
        """Serialize to the canonical JSON the store keeps."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> ExperimentSpec:
        """Load a spec written by :meth:`to_json`."""
        return cls.model_validate_json(text)

    def parameter(self, name: str) -> Parameter:
        """The parameter called ``name``."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise SpecError(f"no parameter named {name!r}", path="parameters")

    def with_budget(
        self,
        *,
        max_trial_count: int | None = None,
        parallel_trial_count: int | None = None,
        max_failed_trial_count: int | None = None,
        timeout: float | None = None,
    ) -> ExperimentSpec:
        """Return a copy with new budget values (the only fields editable after creation)."""
        update: dict[str, Any] = {}
        if timeout is not None:
            update["timeout"] = timeout
        if max_trial_count is not None:
            update["max_trial_count"] = max_trial_count
        if parallel_trial_count is not None:
            update["parallel_trial_count"] = parallel_trial_count
        if max_failed_trial_count is not None:
            update["max_failed_trial_count"] = max_failed_trial_count
        spec = self.model_copy(update=update)
        from automl.core._validate import validate_spec

        validate_spec(spec)
        return spec
