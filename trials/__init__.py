"""One trial's life: templates, executors and metrics collection."""

from trials._base import Executor, ExitStatus, TrialEvent, TrialExit, TrialRun
from trials._collectors import PathMap
from trials._gpu import (
    Allocation,
    FreeMemory,
    GpuDevice,
    Request,
    ResourceAllocator,
    discover_gpus,
    discover_gpus_live,
    parse_gpus,
    restrict_visible,
)
from trials._inprocess import InProcessExecutor, call_objective
from trials._kubernetes import KubernetesExecutor  # the kubernetes client loads lazily
from trials._launch import PythonCommand, free_port, python_command, torchrun_argv
from trials._local import (
    LocalProcessExecutor,
    check_local_resources,
    local_notice,
    reap_runner,
)
from trials._manifests import ManifestError, render_manifest, validate_manifest
from trials._metrics import (
    DEFAULT_FILTER,
    MetricLine,
    TextMetricParser,
    objective_value,
    parse_json_line,
    parse_report_line,
    summarize,
)
from trials._ray import RayExecutor  # ray loads lazily, in its constructor
from trials._template import format_value, render_command, render_text

__all__ = [
    "DEFAULT_FILTER",
    "Allocation",
    "Executor",
    "ExitStatus",
    "FreeMemory",
    "GpuDevice",
    "InProcessExecutor",
    "KubernetesExecutor",
    "LocalProcessExecutor",
    "ManifestError",
    "MetricLine",
    "PathMap",
    "PythonCommand",
    "RayExecutor",
    "Request",
    "ResourceAllocator",
    "TextMetricParser",
    "TrialEvent",
    "TrialExit",
    "TrialRun",
    "call_objective",
    "check_local_resources",
    "discover_gpus",
    "discover_gpus_live",
    "format_value",
    "free_port",
    "local_notice",
    "objective_value",
    "parse_gpus",
    "parse_json_line",
    "parse_report_line",
    "python_command",
    "reap_runner",
    "render_command",
    "render_manifest",
    "render_text",
    "restrict_visible",
    "summarize",
    "torchrun_argv",
    "validate_manifest",
]
