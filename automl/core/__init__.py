"""The dependency-free kernel: the spec and the value objects every package shares.

``automl.core`` imports nothing from the rest of automl, nor from Optuna, SQLAlchemy or any
executor backend, so ``search``, ``trials`` and ``nas`` can build on it without importing upward.
"""

from automl.core._constraints import Constraint, parse_constraint
from automl.core._shell import (
    ShellUse,
    render_shell_script,
    shell_placeholders,
    shell_script_index,
)
from automl.core._spec import (
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
    ParamValue,
    Resources,
    TrialParameter,
    TrialTemplate,
    parse_quantity,
)
from automl.core._trial import (
    EndReason,
    ExperimentRecord,
    ExperimentState,
    MetricSummary,
    Observation,
    Suggestion,
    TrialRecord,
    TrialState,
)
from automl.core._validate import PLACEHOLDER_RE, spec_problems, validate_spec

__all__ = [
    "PLACEHOLDER_RE",
    "AlgorithmSpec",
    "CollectorKind",
    "Constraint",
    "Direction",
    "Distribution",
    "EarlyStoppingSpec",
    "EndReason",
    "ExecutorKind",
    "ExecutorSpec",
    "ExperimentRecord",
    "ExperimentSpec",
    "ExperimentState",
    "MetricStrategy",
    "MetricSummary",
    "MetricsCollectorSpec",
    "Objective",
    "Observation",
    "ParamValue",
    "Parameter",
    "ParameterType",
    "Resources",
    "ShellUse",
    "Suggestion",
    "TrialParameter",
    "TrialRecord",
    "TrialState",
    "TrialTemplate",
    "parse_constraint",
    "parse_quantity",
    "render_shell_script",
    "shell_placeholders",
    "shell_script_index",
    "spec_problems",
    "validate_spec",
]
