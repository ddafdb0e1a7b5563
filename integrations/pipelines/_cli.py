"""What the ``automl pipeline`` commands print: per-stage progress, the summary table."""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from automl.errors import AutoMLError, SpecError, SpecIssue
from integrations.pipelines._run import PipelineRun, StageResult, run_pipeline

__all__ = ["parse_pairs", "print_compiled", "run_with_progress", "stage_command"]

_STYLE = {"succeeded": "green", "cached": "cyan", "failed": "red", "skipped": "yellow"}


def parse_pairs(items: Sequence[str] | None, option: str) -> dict[str, str]:
    """``["k=v", ...]`` as a dict.

    Raises:
        SpecError: An item without ``=`` (path: the option).
    """
    out: dict[str, str] = {}
    for item in items or ():
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise SpecError(f"must be NAME=VALUE; got {item!r}", path=option)
        out[k] = v
    return out


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def run_with_progress(
    console: Console,
    file: Path,
    *,
    store: str,
    runs_dir: str,
    params: Mapping[str, str],
    resume: bool,
    run_id: str | None,
    as_json: bool,
) -> PipelineRun:
    """Run a pipeline, printing one line per stage and a summary table (or JSON at the end)."""
    status: Any = None

    def on_stage(name: str, res: StageResult | None) -> None:
        nonlocal status
        if as_json:
            return
        if res is None:
            status = console.status(f"[bold]{escape(name)}[/bold] running…")
            status.start()
            return
        if status is not None:
            status.stop()
            status = None
        style = _STYLE.get(res.status, "white")
        extra = f" {res.seconds:.1f}s" if res.status in ("succeeded", "failed") else ""
        msg = f" — {escape(res.message)}" if res.message and res.status != "succeeded" else ""
        console.print(
            f"[{style}]{res.status:>9}[/{style}] [bold]{escape(name)}[/bold]{extra}{msg}",
            highlight=False,
        )

    def on_params(values: Mapping[str, Any], changed: Mapping[str, tuple[Any, Any]]) -> None:
        if as_json or not resume:
            return
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items()) or "none"
        console.print(f"resuming with the recorded parameters: {escape(shown)}", highlight=False)
        for k, (old, new) in changed.items():
            what = (
                f"{json.dumps(old)} -> {json.dumps(new)}"
                if old is not None
                else f"not in the record, now {json.dumps(new)}"
            )
            console.print(
                f"[yellow]  changed[/yellow] {escape(k)}: {escape(what)} (stages that use it "
                "run again)",
                highlight=False,
            )
        if not changed:
            console.print("  no parameter changed", highlight=False)

    try:
        run = run_pipeline(
            file,
            store=store,
            runs_dir=runs_dir,
            params=params,
            resume=resume,
            run_id=run_id,
            on_stage=on_stage,
            on_params=on_params,
        )
    finally:
        if status is not None:
            status.stop()
    if as_json:
        print(run.record.read_text(encoding="utf-8"))
        return run
    table = Table(title=f"pipeline {run.pipeline} run {run.run_id}", header_style="bold")
    for col in ("stage", "status", "seconds", "outputs"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for s in run.stages:
        style = _STYLE.get(s.status, "white")
        outs = "\n".join(
            f"{k}: {_short(Path(v).name if isinstance(v, str) and '/' in v else v)}"
            for k, v in s.outputs.items()
        )
        table.add_row(
            escape(s.name),
            f"[{style}]{s.status}[/{style}]",
            f"{s.seconds:.1f}" if s.seconds else "-",
            escape(outs),
        )
    console.print(table)
    console.print(f"record: {run.record}", highlight=False)
    return run


def failure_lines(run: PipelineRun) -> list[str]:
    """One line per failed stage: what failed, why, and where its log is."""
    return [
        f"stage {s.name!r} failed: {s.message} (log: {s.log})"
        for s in run.stages
        if s.status == "failed"
    ]


def stage_command(
    file: Path, stage: str, extra: Sequence[str], options: Mapping[str, str]
) -> None:
    """``automl pipeline stage``: run one stage in this process.

    ``extra`` holds ``--input K V``, ``--output K PATH``, ``--param K V`` and
    ``--input-uri K URI`` triples.

    Raises:
        SpecError: Bad arguments or pipeline.
        AutoMLError: The stage failed (printed as one line after its traceback, for the log).
    """
    from integrations.pipelines._execute import StageError, execute_stage
    from integrations.pipelines._load import load_pipeline

    groups: dict[str, dict[str, str]] = {
        "--input": {},
        "--input-uri": {},
        "--output": {},
        "--param": {},
    }
    i = 0
    while i < len(extra):
        flag = extra[i]
        if flag not in groups or i + 2 >= len(extra):
            raise SpecError(
                [
                    SpecIssue(
                        flag,
                        "expected --input K V, --output K PATH, --param K V or --input-uri K URI",
                    )
                ]
            )
        groups[flag][extra[i + 1]] = extra[i + 2]
        i += 3
    pipeline = load_pipeline(file)
    try:
        execute_stage(
            pipeline,
            stage,
            inputs=groups["--input"],
            outputs=groups["--output"],
            params=groups["--param"],
            store=options["store"],
            runs_dir=options["runs_dir"],
            run_id=options["run_id"],
            input_uris=groups["--input-uri"],
        )
    except (SpecError, StageError):
        raise
    except AutoMLError as exc:
        raise StageError(f"stage {stage!r}: {exc}") from exc
    except Exception as exc:  # user code: the traceback goes to the stage log, one line after
        traceback.print_exc()
        raise StageError(f"stage {stage!r} raised {type(exc).__name__}: {exc}") from None


def print_compiled(console: Console, summary: Mapping[str, Any], out: Path) -> None:
    """What ``automl pipeline compile`` prints: the tasks, parameters and image."""
    console.print(
        f"compiled pipeline [bold]{escape(summary['name'])}[/bold] to {escape(str(out))}: "
        f"{len(summary['tasks'])} tasks ({escape(', '.join(summary['tasks']))}), "
        f"parameters {escape(json.dumps(summary['parameters'], default=str))}, "
        f"image {escape(', '.join(summary['images']))}",
        highlight=False,
    )
