"""One trial's life: templates, executors and metrics collection.

Attributes load lazily (PEP 562): a controller that runs local trials does not import the Ray and
Kubernetes executors, and ``automl run`` starts its first trial sooner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Allocation": "trials._gpu",
    "DEFAULT_FILTER": "trials._metrics",
    "Executor": "trials._base",
    "ExitStatus": "trials._base",
    "FreeMemory": "trials._gpu",
    "GpuDevice": "trials._gpu",
    "InProcessExecutor": "trials._inprocess",
    "KubernetesExecutor": "trials._kubernetes",
    "LocalProcessExecutor": "trials._local",
    "ManifestError": "trials._manifests",
    "MetricLine": "trials._metrics",
    "PathMap": "trials._collectors",
    "PythonCommand": "trials._launch",
    "RayExecutor": "trials._ray",
    "Request": "trials._gpu",
    "ResourceAllocator": "trials._gpu",
    "TextMetricParser": "trials._metrics",
    "TrialEvent": "trials._base",
    "TrialExit": "trials._base",
    "TrialRun": "trials._base",
    "call_objective": "trials._inprocess",
    "check_local_resources": "trials._local",
    "discover_gpus": "trials._gpu",
    "discover_gpus_live": "trials._gpu",
    "format_value": "trials._template",
    "free_port": "trials._launch",
    "local_notice": "trials._local",
    "objective_value": "trials._metrics",
    "parse_gpus": "trials._gpu",
    "parse_json_line": "trials._metrics",
    "parse_report_line": "trials._metrics",
    "python_command": "trials._launch",
    "reap_runner": "trials._local",
    "render_command": "trials._template",
    "render_manifest": "trials._manifests",
    "render_text": "trials._template",
    "restrict_visible": "trials._gpu",
    "summarize": "trials._metrics",
    "torchrun_argv": "trials._launch",
    "validate_manifest": "trials._manifests",
}

if TYPE_CHECKING:
    from trials._base import Executor as Executor
    from trials._base import ExitStatus as ExitStatus
    from trials._base import TrialEvent as TrialEvent
    from trials._base import TrialExit as TrialExit
    from trials._base import TrialRun as TrialRun
    from trials._collectors import PathMap as PathMap
    from trials._gpu import Allocation as Allocation
    from trials._gpu import FreeMemory as FreeMemory
    from trials._gpu import GpuDevice as GpuDevice
    from trials._gpu import Request as Request
    from trials._gpu import ResourceAllocator as ResourceAllocator
    from trials._gpu import discover_gpus as discover_gpus
    from trials._gpu import discover_gpus_live as discover_gpus_live
    from trials._gpu import parse_gpus as parse_gpus
    from trials._gpu import restrict_visible as restrict_visible
    from trials._inprocess import InProcessExecutor as InProcessExecutor
    from trials._inprocess import call_objective as call_objective
    from trials._kubernetes import KubernetesExecutor as KubernetesExecutor
    from trials._launch import PythonCommand as PythonCommand
    from trials._launch import free_port as free_port
    from trials._launch import python_command as python_command
    from trials._launch import torchrun_argv as torchrun_argv
    from trials._local import LocalProcessExecutor as LocalProcessExecutor
    from trials._local import check_local_resources as check_local_resources
    from trials._local import local_notice as local_notice
    from trials._local import reap_runner as reap_runner
    from trials._manifests import ManifestError as ManifestError
    from trials._manifests import render_manifest as render_manifest
    from trials._manifests import validate_manifest as validate_manifest
    from trials._metrics import DEFAULT_FILTER as DEFAULT_FILTER
    from trials._metrics import MetricLine as MetricLine
    from trials._metrics import TextMetricParser as TextMetricParser
    from trials._metrics import objective_value as objective_value
    from trials._metrics import parse_json_line as parse_json_line
    from trials._metrics import parse_report_line as parse_report_line
    from trials._metrics import summarize as summarize
    from trials._ray import RayExecutor as RayExecutor
    from trials._template import format_value as format_value
    from trials._template import render_command as render_command
    from trials._template import render_text as render_text

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trials' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
