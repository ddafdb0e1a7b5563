"""One trial's life: templates, executors and metrics collection."""

from trials._base import Executor, ExitStatus, TrialEvent, TrialExit, TrialRun
from trials._collectors import PathMap
from trials._inprocess import InProcessExecutor, call_objective
from trials._local import LocalProcessExecutor, local_notice, reap_runner
from trials._metrics import (
    DEFAULT_FILTER,
    MetricLine,
    TextMetricParser,
    objective_value,
    parse_json_line,
    parse_report_line,
    summarize,
)
from trials._template import format_value, render_command, render_text

__all__ = [
    "DEFAULT_FILTER",
    "Executor",
    "ExitStatus",
    "InProcessExecutor",
    "LocalProcessExecutor",
    "MetricLine",
    "PathMap",
    "TextMetricParser",
    "TrialEvent",
    "TrialExit",
    "TrialRun",
    "call_objective",
    "format_value",
    "local_notice",
    "objective_value",
    "parse_json_line",
    "parse_report_line",
    "reap_runner",
    "render_command",
    "render_text",
    "summarize",
]
