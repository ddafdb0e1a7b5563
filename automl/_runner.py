"""Glue between a stored experiment and the controller: pick the executor, run, resume."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from automl._controller import Controller, Progress
from automl.core import ExecutorKind, ExperimentRecord, ExperimentSpec
from automl.errors import SpecError
from automl.store import Store
from trials import Executor, InProcessExecutor, LocalProcessExecutor, reap_runner

__all__ = ["function_path", "make_executor", "preflight", "reap_any", "run_experiment"]


def function_path(fn: Callable[..., Any]) -> str | None:
    """``module:qualname`` of a function that a later process could import, else None."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def _import(path: str) -> Callable[..., Any]:
    module, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise SpecError(
            f"cannot import the objective {path!r}: {exc}", path="trial_template.function"
        ) from exc
    if not callable(obj):
        raise SpecError(f"{path!r} is not callable", path="trial_template.function")
    return obj  # type: ignore[no-any-return]


def make_executor(
    spec: ExperimentSpec,
    objective: Callable[..., Any] | None = None,
    runs_dir: str | Path = "automl-runs",
) -> Executor:
    """The executor a spec needs.

    ``executor: ray`` and ``executor: kubernetes`` place trials on a cluster (their backends are
    imported only here); locally, a command runs as processes and a function on threads.

    Raises:
        SpecError: A Python experiment whose objective is neither given nor importable, or a
            cluster that cannot be reached (named by its field).
    """
    t = spec.trial_template
    kind = spec.executor.kind
    if spec.define_by_run and objective is not None:
        from automl._define_by_run import DefineByRunObjective

        if not isinstance(objective, DefineByRunObjective):
            objective = DefineByRunObjective(objective, spec.objective.metric, spec.seed)
    if kind is ExecutorKind.RAY:
        from trials._ray import RayExecutor

        return RayExecutor(spec, Path(runs_dir), objective=objective)
    if kind is ExecutorKind.KUBERNETES:
        from trials._kubernetes import KubernetesExecutor

        return KubernetesExecutor(spec, Path(runs_dir))
    if t.notebook is not None and objective is None:
        # A notebook trial is a process running papermill: checked here, before any trial.
        from trials._notebook import notebook_command, validate_notebook

        validate_notebook(
            t.notebook, [p.name for p in spec.parameters], field="trial_template.notebook"
        )
        command = notebook_command(t.notebook)
        template = t.model_copy(update={"command": command, "notebook": None})
        return LocalProcessExecutor(
            spec.model_copy(update={"trial_template": template}), Path(runs_dir).absolute()
        )
    if t.command is not None and (objective is None or _is_function_process(t.command)):
        # Absolute: a trial runs in its workdir, and its AUTOML_* paths must still point here.
        return LocalProcessExecutor(spec, Path(runs_dir).absolute())
    if objective is None:
        if t.function is None:
            raise SpecError(
                f"experiment {spec.name!r} runs a Python function that was defined in a notebook "
                "or "
                "script and cannot be imported; resume it from Python: "
                f"automl.Client(store).resume({spec.name!r}, objective=fn)",
                path="trial_template.function",
            )
        objective = _import(t.function)
    return InProcessExecutor(
        objective,
        spec.objective.metric,
        spec.parallel_trial_count,
        t.timeout,
        inline=False if spec.early_stopping is not None else None,
        runs_dir=runs_dir,
    )


def _is_function_process(command: tuple[str, ...]) -> bool:
    """Whether a command runs a Python objective per trial (``tune(trial_processes=True)``)."""
    return tuple(command[1:3]) == ("-m", "automl._fnrun")


def local_problem(spec: ExperimentSpec) -> str | None:
    """Why this spec cannot run here, or None.

    A trial kind that needs Kubernetes. (Katib's NAS algorithms run here: ``enas`` with its
    torch controller, ``darts`` as its one search trial; see docs/nas.md.)
    """
    if spec.trial_template.local_blocker and spec.executor.kind is ExecutorKind.LOCAL:
        return (
            f"{spec.trial_template.local_blocker}; this trial kind cannot run as a local process"
        )
    return None


def reap_any(spec: ExperimentSpec, runner: Mapping[str, Any], runs_dir: Path) -> None:
    """Stop a trial left behind by a dead controller, wherever it ran.

    ``runner`` is what the executor reported when the trial started: a Kubernetes job, a Ray
    task, or a local process group.
    """
    if isinstance(runner.get("kubernetes"), Mapping):
        from trials._kubernetes import reap_kubernetes

        reap_kubernetes(spec, runner, runs_dir)
        return
    if isinstance(runner.get("ray"), Mapping):
        from trials._ray import reap_ray

        reap_ray(spec, runner)
        return
    reap_runner(runner)


def preflight(spec: ExperimentSpec, runs_dir: str | Path = "automl-runs") -> None:
    """Check that ``spec`` can run here before anything is stored or started.

    Raises:
        SpecError: A trial kind that cannot run locally, resources this machine can never
            give (more GPUs or GPU memory than it has), or a cluster that cannot be reached,
            named by field.
    """
    problem = local_problem(spec)
    if problem:
        raise SpecError(problem, path="executor")
    kind = spec.executor.kind
    if kind is ExecutorKind.LOCAL and spec.trial_template.command is not None:
        from trials import check_local_resources

        check_local_resources(spec)
    elif kind is ExecutorKind.KUBERNETES:
        # Checks the spec offline, then one bounded /version call: cheap enough to do twice.
        from trials._kubernetes import KubernetesExecutor

        KubernetesExecutor(spec, Path(runs_dir)).close()


def run_experiment(
    store: Store,
    experiment: ExperimentRecord,
    *,
    objective: Callable[..., Any] | None = None,
    runs_dir: str | Path = "automl-runs",
    on_progress: Callable[[Progress], None] | None = None,
    keep_stop: bool = False,
) -> ExperimentRecord:
    """Run (or continue) an experiment in this process until it ends.

    ``keep_stop``: honour a stop request stored before this controller took the lease (a
    worker starting a queued experiment) instead of clearing it (an explicit resume).

    Raises:
        SpecError: The experiment cannot run here (see :func:`local_problem`).
    """
    problem = local_problem(experiment.spec)
    if problem:
        raise SpecError(problem, path="executor")
    executor = make_executor(experiment.spec, objective, runs_dir)
    return Controller(
        store,
        experiment,
        executor,
        on_progress=on_progress,
        runs_dir=runs_dir,
        keep_stop=keep_stop,
    ).run()
