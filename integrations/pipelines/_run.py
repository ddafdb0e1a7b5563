"""Run a pipeline locally: stages in topological order, each in its own subprocess.

Each stage runs ``python -m automl pipeline stage FILE --stage NAME ...``: the very command a
compiled Kubeflow Pipelines component runs in its container, so a local run exercises it. A
subprocess also isolates stages (a crash, ``sys.exit``, leaked memory or threads stay in it) and
gives each a log file. Artifacts pass as paths under
``<runs_dir>/pipelines/<pipeline>/<run_id>/<stage>/``; values as text on the command line.

The run record ``run.json`` (next to the stage directories) holds each stage's status, times,
outputs, cache key and log, rewritten after every stage. ``resume=True`` continues the latest
run (or ``run_id``) with the parameters that run recorded, unless new ones are given (the
changes are reported): a stage that succeeded before with the same cache key (its definition,
the parameters it uses, the source of its function or experiment file, and a digest of every
input) is not run again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from automl.errors import SpecError, SpecIssue
from integrations.pipelines._execute import read_value
from integrations.pipelines._load import load_pipeline
from integrations.pipelines._model import Output, Pipeline, Stage, StageKind

__all__ = ["PipelineRun", "StageResult", "run_pipeline"]

RECORD = "run.json"


@dataclass(frozen=True)
class StageResult:
    """How one stage of a run went.

    Attributes:
        name: The stage.
        status: ``succeeded``, ``cached`` (skipped by resume), ``failed``, or ``skipped`` (an
            upstream stage failed).
        seconds: Wall time of the stage subprocess (0 when it did not run).
        outputs: Artifact outputs as paths, value outputs as values.
        message: Why it failed or was skipped.
        log: The stage's log file (its stdout and stderr).
        cache_key: Digest of the stage definition and its inputs.
    """

    name: str
    status: str
    seconds: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    log: str = ""
    cache_key: str = ""
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def ok(self) -> bool:
        """Whether its outputs are available (succeeded or cached)."""
        return self.status in ("succeeded", "cached")


@dataclass(frozen=True)
class PipelineRun:
    """A finished local run of a pipeline.

    Attributes:
        pipeline: The pipeline's name.
        run_id: The run (``YYYYmmdd-HHMMSS-xxxx``).
        run_dir: ``<runs_dir>/pipelines/<pipeline>/<run_id>``.
        stages: One result per stage, in the order they were considered.
        params: The parameter values used.
        changed_params: On resume, ``name -> (recorded, now)`` for each parameter whose value
            differs from the resumed run's record (empty otherwise).
    """

    pipeline: str
    run_id: str
    run_dir: Path
    stages: tuple[StageResult, ...]
    params: dict[str, Any]
    changed_params: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every stage succeeded (or was cached)."""
        return all(s.ok for s in self.stages)

    @property
    def record(self) -> Path:
        """The run record (JSON)."""
        return self.run_dir / RECORD

    def stage(self, name: str) -> StageResult:
        """The result of stage ``name``."""
        return next(s for s in self.stages if s.name == name)


def _digest_path(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_file():
        h.update(path.read_bytes())
    elif path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(path).as_posix().encode() + b"\0")
                h.update(p.read_bytes())
    return h.hexdigest()


def _source_digest(pipeline: Pipeline, stage: Stage) -> str:
    """Digest of the code or file a stage runs, so an edit invalidates the cache."""
    h = hashlib.sha256()
    files: list[Path] = []
    if stage.function:
        found = importlib.util.find_spec(stage.function.partition(":")[0])
        if found is not None and found.origin and os.path.isfile(found.origin):
            files.append(Path(found.origin))
    if stage.experiment and pipeline.source is not None:
        exp = Path(stage.experiment)
        files.append(exp if exp.is_absolute() else pipeline.source.parent / exp)
    for f in files:
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


def _cache_key(
    pipeline: Pipeline, stage: Stage, params: Mapping[str, Any], inputs: Mapping[str, str]
) -> str:
    digests = {}
    for x in pipeline.inputs_of(stage.name):
        out = pipeline.stage(x.stage).output(x.output)
        text = inputs[x.keyword]
        digests[x.keyword] = _digest_path(Path(text)) if out and out.is_artifact else text
    blob = json.dumps(
        {
            "stage": stage.definition(),
            "params": {p: params[p] for p in sorted(stage.param_refs())},
            "source": _source_digest(pipeline, stage),
            "inputs": digests,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _output_path(stage_dir: Path, o: Output) -> Path:
    if o.is_artifact:
        return stage_dir / (o.name + o.suffix)
    return stage_dir / "values" / o.name


def _new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _latest_run(root: Path) -> str | None:
    runs = (
        sorted(p.name for p in root.glob("*") if (p / RECORD).is_file()) if root.is_dir() else []
    )
    return runs[-1] if runs else None


def _last_line(log: Path) -> str:
    try:
        lines = [
            ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()
        ]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""


def _preflight(pipeline: Pipeline) -> None:
    """Catch a misspelled module or a missing experiment file before any stage runs.

    Raises:
        SpecError: Each problem, with its field path.
    """
    assert pipeline.source is not None
    issues: list[SpecIssue] = []
    importlib.invalidate_caches()  # a module written since the last import is seen
    for i, stage in enumerate(pipeline.stages):
        if stage.function:
            module = stage.function.partition(":")[0]
            where = "tune.objective" if stage.kind is StageKind.TUNE else stage.kind.value
            try:
                found = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                found = None
            if found is None:
                issues.append(
                    SpecIssue(
                        f"stages[{i}].{where}",
                        f"no module {module!r} next to {pipeline.source.name} or installed",
                    )
                )
        if stage.experiment:
            exp = Path(stage.experiment)
            exp = exp if exp.is_absolute() else pipeline.source.parent / exp
            if not exp.is_file():
                issues.append(
                    SpecIssue(f"stages[{i}].tune.experiment", f"no such file: {str(exp)!r}")
                )
    if issues:
        raise SpecError(issues)


def run_pipeline(
    file: str | Path,
    *,
    store: str = "sqlite:///automl.db",
    runs_dir: str | Path = "automl-runs",
    params: Mapping[str, str] | None = None,
    resume: bool = False,
    run_id: str | None = None,
    on_stage: Callable[[str, StageResult | None], None] | None = None,
    on_params: Callable[[Mapping[str, Any], Mapping[str, tuple[Any, Any]]], None] | None = None,
) -> PipelineRun:
    """Run a pipeline file's stages here, in topological order, one subprocess each.

    A failed stage stops the stages that depend on it (they are ``skipped``); stages that do
    not depend on it still run.

    Args:
        file: The pipeline (YAML or Python).
        store: Store URL for tune stages.
        runs_dir: Root of trial and pipeline run directories.
        params: ``name -> text`` overrides of the pipeline parameters (on resume: of the
            parameters the resumed run recorded).
        resume: Continue ``run_id`` (default: the latest run) with its recorded parameters,
            skipping stages that succeeded with the same cache key.
        run_id: The run to create or resume.
        on_stage: Called with ``(name, None)`` when a stage starts and ``(name, result)`` when
            it ends.
        on_params: Called once before any stage with the parameter values and, on resume,
            ``name -> (recorded, now)`` for those that differ from the resumed run's record.

    Raises:
        SpecError: An invalid pipeline or parameter, or nothing to resume.
    """
    pipeline = load_pipeline(file)
    assert pipeline.source is not None
    pipeline.with_params(params or {})  # bad --param is refused before anything else
    _preflight(pipeline)
    root = Path(runs_dir).absolute() / "pipelines" / pipeline.name
    previous: dict[str, Any] = {}
    recorded: dict[str, Any] | None = None
    if resume:
        run_id = run_id or _latest_run(root)
        if run_id is None or not (root / run_id / RECORD).is_file():
            raise SpecError(
                f"no earlier run of pipeline {pipeline.name!r} under {root} to resume",
                path="--resume",
            )
        before_run = json.loads((root / run_id / RECORD).read_text(encoding="utf-8"))
        previous = before_run["stages"]
        got = before_run.get("params")
        recorded = dict(got) if isinstance(got, dict) else {}
    values = pipeline.with_params(params or {}, base=recorded)
    changed: dict[str, tuple[Any, Any]] = {}
    if recorded is not None:
        base = pipeline.with_params({}, base=recorded)
        changed = {k: (recorded.get(k, base[k]), v) for k, v in values.items() if v != base[k]}
        changed.update(  # a parameter new in the file, or one whose type changed
            (k, (recorded.get(k), base[k]))
            for k in base
            if k not in changed and (k not in recorded or recorded[k] != base[k])
        )
    if on_params:
        on_params(values, changed)
    run_id = run_id or _new_run_id()
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, StageResult] = {}
    record: dict[str, Any] = {
        "pipeline": pipeline.name,
        "run_id": run_id,
        "source": str(pipeline.source),
        "store": store,
        "params": values,
        "changed_params": {k: list(v) for k, v in changed.items()},
        "started_at": time.time(),
        "finished_at": None,
        "status": "running",
        "stages": {},
    }

    def save() -> None:
        record["stages"] = {n: asdict(r) for n, r in results.items()}
        tmp = run_dir / (RECORD + ".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, run_dir / RECORD)

    overrides = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in values.items()}
    try:
        for name in pipeline.order:
            stage = pipeline.stage(name)
            failed_up = [x.stage for x in pipeline.inputs_of(name) if not results[x.stage].ok]
            if failed_up:
                res = StageResult(
                    name, "skipped", message=f"upstream stage {failed_up[0]!r} did not succeed"
                )
                results[name] = res
                save()
                if on_stage:
                    on_stage(name, res)
                continue
            inputs: dict[str, str] = {}
            for x in pipeline.inputs_of(name):
                value = results[x.stage].outputs[x.output]
                out = pipeline.stage(x.stage).output(x.output)
                assert out is not None
                inputs[x.keyword] = (
                    str(value)
                    if out.is_artifact
                    else value
                    if out.kind == "str"
                    else json.dumps(value)
                )
            stage_dir = run_dir / name
            out_paths = {o.name: _output_path(stage_dir, o) for o in stage.all_outputs}
            key = _cache_key(pipeline, stage, values, inputs)
            before = previous.get(name)
            if (
                before
                and before.get("status") in ("succeeded", "cached")
                and before.get("cache_key") == key
                and all(Path(p).exists() for p in out_paths.values())
            ):
                res = StageResult(
                    name,
                    "cached",
                    outputs=before.get("outputs", {}),
                    log=before.get("log", ""),
                    cache_key=key,
                    message="unchanged since it succeeded",
                )
                results[name] = res
                save()
                if on_stage:
                    on_stage(name, res)
                continue
            if on_stage:
                on_stage(name, None)
            res = _run_stage(
                pipeline,
                stage,
                stage_dir,
                out_paths,
                inputs,
                overrides,
                store,
                runs_dir,
                run_id,
                key,
            )
            results[name] = res
            save()
            if on_stage:
                on_stage(name, res)
    except KeyboardInterrupt:  # the record says so; resume continues from here
        record["finished_at"] = time.time()
        record["status"] = "interrupted"
        save()
        raise
    record["finished_at"] = time.time()
    record["status"] = "succeeded" if all(r.ok for r in results.values()) else "failed"
    save()
    return PipelineRun(
        pipeline.name,
        run_id,
        run_dir,
        tuple(results[n] for n in pipeline.order),
        dict(values),
        changed,
    )


def _run_stage(
    pipeline: Pipeline,
    stage: Stage,
    stage_dir: Path,
    out_paths: Mapping[str, Path],
    inputs: Mapping[str, str],
    params: Mapping[str, str],
    store: str,
    runs_dir: str | Path,
    run_id: str,
    key: str,
) -> StageResult:
    assert pipeline.source is not None
    stage_dir.mkdir(parents=True, exist_ok=True)
    for p in out_paths.values():  # a re-run starts from nothing: no stale output passes
        if p.is_dir():
            import shutil

            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    argv = [
        sys.executable,
        "-m",
        "automl",
        "pipeline",
        "stage",
        str(pipeline.source),
        "--stage",
        stage.name,
        "--store",
        store,
        "--runs-dir",
        str(Path(runs_dir).absolute()),
        "--run-id",
        run_id,
    ]
    for k, v in inputs.items():
        argv += ["--input", k, v]
    for k, p in out_paths.items():
        argv += ["--output", k, str(p)]
    for k, v in params.items():
        argv += ["--param", k, v]
    log = stage_dir / "stage.log"
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    started = time.time()
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            code = proc.wait()
        except BaseException:  # Ctrl-C: take the stage (and its trials) down with us
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            raise
    seconds = time.perf_counter() - t0
    common: dict[str, Any] = {
        "seconds": seconds,
        "log": str(log),
        "cache_key": key,
        "started_at": started,
        "finished_at": time.time(),
    }
    if code != 0:
        why = _last_line(log).removeprefix("error: ") or f"exit code {code}"
        for prefix in (f"stage {stage.name!r}: ", f"stage {stage.name!r} "):
            why = why.removeprefix(prefix)  # the summary line names the stage already
        return StageResult(stage.name, "failed", message=why, **common)
    outputs: dict[str, Any] = {}
    for o in stage.all_outputs:
        p = out_paths[o.name]
        if o.is_artifact:
            outputs[o.name] = str(p)
            continue
        try:
            outputs[o.name] = read_value(p, o.kind)
        except (OSError, ValueError) as exc:
            return StageResult(
                stage.name, "failed", message=f"cannot read output {o.name}: {exc}", **common
            )
    return StageResult(stage.name, "succeeded", outputs=outputs, **common)
