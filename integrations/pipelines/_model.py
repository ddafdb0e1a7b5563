"""The pipeline model: stages, their inputs and outputs, parameters, and the DAG between them.

A :class:`Pipeline` is a name, a list of :class:`Stage` and typed parameters. Each stage declares
``inputs`` (references to upstream outputs, ``stage.output``) and ``outputs`` (artifacts: a file
or directory the stage writes under its run directory; values: small JSON scalars or objects).
Edges come from the inputs alone, so the order stages are written in does not matter; an input
that names nothing, or a cycle, is a :class:`~automl.errors.SpecError` naming
``stages[i].inputs[j]``. The checks themselves live in :mod:`integrations.pipelines._validate`.
"""

from __future__ import annotations

import enum
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.errors import SpecError, SpecIssue

__all__ = [
    "ARTIFACT_KINDS",
    "VALUE_KINDS",
    "Input",
    "Output",
    "Pipeline",
    "Stage",
    "StageKind",
    "stage",
]

# Artifact kinds and their Kubeflow Pipelines artifact class names.
ARTIFACT_KINDS = {
    "artifact": "Artifact",
    "dataset": "Dataset",
    "model": "Model",
    "metrics": "Metrics",
}
# Value kinds (small JSON written to a file) and their KFP v1 component type names.
VALUE_KINDS = {
    "str": "String",
    "int": "Integer",
    "float": "Float",
    "bool": "Boolean",
    "dict": "JsonObject",
    "list": "JsonArray",
}
_PY_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "dict": dict,
    "list": list,
}
STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PLACEHOLDER_RE = re.compile(r"\$\{(params|inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\}")
Scalar = str | int | float | bool


class StageKind(enum.StrEnum):
    """What a stage runs."""

    PYTHON = "python"  # a function: module:qualname
    COMMAND = "command"  # an argv, run without a shell
    TUNE = "tune"  # an automl experiment on the local store
    TRAIN_BEST = "train_best"  # a function of the best parameters that returns a model
    EVALUATE = "evaluate"  # a function of a loaded model that returns metrics
    SERVE = "serve"  # writes a KServe InferenceService manifest for the model


@dataclass(frozen=True)
class Output:
    """One declared output of a stage.

    Attributes:
        name: An identifier, unique within the stage.
        kind: An artifact kind (``artifact``, ``dataset``, ``model``, ``metrics``: a file or
            directory the stage writes at the path it is given) or a value kind (``str``,
            ``int``, ``float``, ``bool``, ``dict``, ``list``: a small JSON value).
    """

    name: str
    kind: str = "artifact"
    suffix: str = ""  # of the local file name (``metrics.json``), for people browsing a run

    @property
    def is_artifact(self) -> bool:
        """Whether the output is a file or directory rather than a value."""
        return self.kind in ARTIFACT_KINDS

    @property
    def kfp_type(self) -> str:
        """The KFP type name (``Dataset``, ``Model``, ``Float``, ``JsonObject``...)."""
        return ARTIFACT_KINDS.get(self.kind) or VALUE_KINDS[self.kind]


@dataclass(frozen=True)
class Input:
    """An input of a stage, resolved: the keyword it arrives as and the output that feeds it.

    Attributes:
        keyword: The name the stage sees (a function keyword, ``${inputs.<keyword>}``).
        stage: The producing stage.
        output: The producing stage's output.
    """

    keyword: str
    stage: str
    output: str


# Outputs the built-in stages always have (a user cannot redeclare them).
BUILTIN_OUTPUTS: dict[StageKind, tuple[Output, ...]] = {
    StageKind.TUNE: (
        Output("best_params", "dict"),
        Output("best_value", "float"),
        Output("experiment", "str"),
        Output("model", "model"),
    ),
    StageKind.TRAIN_BEST: (Output("model", "model"),),
    StageKind.EVALUATE: (Output("metrics", "metrics", ".json"),),
    StageKind.SERVE: (Output("manifest", "artifact", ".yaml"),),
}
TUNE_ARGS = frozenset({"max_trials", "parallel", "name"})
SERVE_ARGS = frozenset({"name", "namespace", "storage_uri", "format"})


def function_path(fn: Callable[..., Any] | str, path: str) -> str:
    """``module:qualname`` of a function a stage subprocess (or container) can import.

    A function of a script run as ``__main__`` is named by the script's file stem: the runner
    puts the pipeline's directory on ``sys.path``, so ``python pipeline.py`` works too.

    Raises:
        SpecError: A lambda, a nested function, or a malformed string.
    """
    if isinstance(fn, str):
        if not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$", fn):
            raise SpecError(f"must be 'module:function'; got {fn!r}", path=path)
        return fn
    module = getattr(fn, "__module__", None) or ""
    qualname = getattr(fn, "__qualname__", "") or ""
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        module = Path(main_file).stem if main_file else ""
    if not module or not qualname or "<" in qualname:
        raise SpecError(
            f"must be a module-level function a subprocess can import; got {fn!r}", path=path
        )
    return f"{module}:{qualname}"


def _outputs(raw: Mapping[str, str] | Iterable[str | Output] | None) -> tuple[Output, ...]:
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        return tuple(Output(str(k), str(v)) for k, v in raw.items())
    return tuple(o if isinstance(o, Output) else Output(str(o)) for o in raw)


def _inputs(raw: Mapping[str, str] | Iterable[str] | None) -> tuple[tuple[str, str], ...]:
    """Input references as ``(keyword, ref)``; a bare list uses the output name as keyword."""
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        return tuple((str(k), str(v)) for k, v in raw.items())
    return tuple((str(r).rpartition(".")[2], str(r)) for r in raw)


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline. Build one with the class methods (or :func:`stage`).

    Attributes:
        name: Lowercase letters, digits, ``-`` and ``_``; unique in the pipeline.
        kind: What it runs.
        function: ``module:qualname`` (python, train_best, evaluate; the tune objective).
        command: Argv of a command stage, with ``${inputs.x}``, ``${outputs.x}``,
            ``${params.x}`` placeholders; it runs without a shell.
        experiment: A tune stage's experiment file (native or Katib), relative to the pipeline.
        spec: A tune stage's inline native experiment document.
        inputs: ``(keyword, ref)`` pairs; ``ref`` is ``stage.output`` (or a bare output name
            that only one stage has).
        outputs: Declared outputs (built-in stages add theirs).
        args: Constant keyword arguments; a string may hold ``${params.x}``.
        description: Free text, shown in the compiled pipeline.
    """

    name: str
    kind: StageKind = StageKind.PYTHON
    function: str | None = None
    command: tuple[str, ...] | None = None
    experiment: str | None = None
    spec: Mapping[str, Any] | None = None
    inputs: tuple[tuple[str, str], ...] = ()
    outputs: tuple[Output, ...] = ()
    args: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def python(
        cls,
        fn: Callable[..., Any] | str,
        *,
        name: str | None = None,
        inputs: Mapping[str, str] | Iterable[str] | None = None,
        outputs: Mapping[str, str] | Iterable[str | Output] | None = None,
        args: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> Stage:
        """A Python function stage.

        The function gets each input (artifacts as :class:`~pathlib.Path`, values typed), the
        path of each artifact output to write, and ``args`` as keyword arguments. It returns
        the value outputs: a dict by name, or the bare value when there is exactly one.
        """
        path = function_path(fn, "function")
        return cls(
            name=name or path.rpartition(":")[2].rpartition(".")[2],
            kind=StageKind.PYTHON,
            function=path,
            inputs=_inputs(inputs),
            outputs=_outputs(outputs),
            args=dict(args or {}),
            description=description or _doc(fn),
        )

    @classmethod
    def cmd(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        inputs: Mapping[str, str] | Iterable[str] | None = None,
        outputs: Mapping[str, str] | Iterable[str | Output] | None = None,
        description: str = "",
    ) -> Stage:
        """A command stage: ``argv`` runs without a shell in the pipeline's directory.

        It writes each output at ``${outputs.<name>}`` (a value output as JSON text).
        """
        return cls(
            name=name,
            kind=StageKind.COMMAND,
            command=tuple(str(a) for a in argv),
            inputs=_inputs(inputs),
            outputs=_outputs(outputs),
            description=description,
        )

    @classmethod
    def tune(
        cls,
        name: str = "tune",
        *,
        experiment: str | Path | None = None,
        spec: Mapping[str, Any] | None = None,
        objective: Callable[..., Any] | str | None = None,
        inputs: Mapping[str, str] | Iterable[str] | None = None,
        max_trials: int | str | None = None,
        parallel: int | str | None = None,
        description: str = "",
    ) -> Stage:
        """The built-in tuning stage: runs an experiment with automl on the local store.

        Give an experiment file or an inline native spec; with ``objective`` (a function of
        the parameters and the stage's inputs) trials run in-process, otherwise the spec's
        command runs per trial (``${inputs.x}`` in it becomes the input's path or value).
        Outputs ``best_params``, ``best_value``, ``experiment`` and ``model`` (the best trial's
        artifact directory, with ``best.json``).
        """
        args: dict[str, Any] = {}
        if max_trials is not None:
            args["max_trials"] = max_trials
        if parallel is not None:
            args["parallel"] = parallel
        return cls(
            name=name,
            kind=StageKind.TUNE,
            function=None if objective is None else function_path(objective, "objective"),
            experiment=None if experiment is None else str(experiment),
            spec=None if spec is None else dict(spec),
            inputs=_inputs(inputs),
            args=args,
            description=description,
        )

    @classmethod
    def train_best(
        cls,
        fn: Callable[..., Any] | str,
        *,
        name: str = "train",
        inputs: Mapping[str, str] | Iterable[str] | None = None,
        args: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> Stage:
        """The built-in training stage: ``fn(**best_params, **other inputs)`` returns a model.

        It needs an input called ``best_params`` (usually ``tune.best_params``); the model is
        saved with :func:`automl.save_model` into the ``model`` output.
        """
        return cls(
            name=name,
            kind=StageKind.TRAIN_BEST,
            function=function_path(fn, "function"),
            inputs=_inputs(inputs),
            args=dict(args or {}),
            description=description or _doc(fn),
        )

    @classmethod
    def evaluate(
        cls,
        fn: Callable[..., Any] | str,
        *,
        name: str = "evaluate",
        inputs: Mapping[str, str] | Iterable[str] | None = None,
        args: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> Stage:
        """The built-in evaluation stage: ``fn(model=<loaded model>, **other inputs)``.

        It needs an input called ``model`` (a model artifact); ``fn`` returns a dict of
        metrics, written to the ``metrics`` output as ``metrics.json``.
        """
        return cls(
            name=name,
            kind=StageKind.EVALUATE,
            function=function_path(fn, "function"),
            inputs=_inputs(inputs),
            args=dict(args or {}),
            description=description or _doc(fn),
        )

    @classmethod
    def serve(
        cls,
        name: str = "serve",
        *,
        inputs: Mapping[str, str] | Iterable[str] | None = None,
        args: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> Stage:
        """The built-in serving stage: writes a KServe ``InferenceService`` for the model.

        It starts nothing (a pipeline run never leaves a server behind); apply the manifest
        with ``kubectl apply -f``. Args: ``name``, ``namespace``, ``storage_uri``, ``format``.
        """
        return cls(
            name=name,
            kind=StageKind.SERVE,
            inputs=_inputs(inputs),
            args=dict(args or {}),
            description=description,
        )

    # -- derived --------------------------------------------------------------------------
    @property
    def all_outputs(self) -> tuple[Output, ...]:
        """Declared outputs plus those the built-in kind always has."""
        return BUILTIN_OUTPUTS.get(self.kind, ()) + self.outputs

    def output(self, name: str) -> Output | None:
        """The output called ``name``, or None."""
        return next((o for o in self.all_outputs if o.name == name), None)

    def param_refs(self) -> set[str]:
        """Names of the pipeline parameters this stage's args, command or spec mention."""
        found: set[str] = set()
        for text in _strings([dict(self.args), list(self.command or ()), self.spec or {}]):
            found.update(
                m.group(2) for m in PLACEHOLDER_RE.finditer(text) if m.group(1) == "params"
            )
        return found

    def definition(self) -> dict[str, Any]:
        """A JSON-able form of the stage (for the run record and the cache key)."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "function": self.function,
            "command": list(self.command) if self.command is not None else None,
            "experiment": self.experiment,
            "spec": self.spec,
            "inputs": [list(p) for p in self.inputs],
            "outputs": {o.name: o.kind for o in self.all_outputs},
            "args": dict(self.args),
        }


def _doc(fn: Callable[..., Any] | str) -> str:
    doc = "" if isinstance(fn, str) else (getattr(fn, "__doc__", None) or "")
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _strings(v)


def stage(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    inputs: Mapping[str, str] | Iterable[str] | None = None,
    outputs: Mapping[str, str] | Iterable[str | Output] | None = None,
    args: Mapping[str, Any] | None = None,
) -> Any:
    """Mark a function as a pipeline stage (``@stage`` or ``@stage(outputs=...)``).

    The function stays callable as before; :class:`Pipeline` accepts it in its stage list.

    Example:
        >>> @stage(outputs={"data": "dataset"})
        ... def prepare(data, test_size=0.25): ...  # doctest: +SKIP
    """

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        f.__automl_stage__ = Stage.python(  # type: ignore[attr-defined]
            f, name=name, inputs=inputs, outputs=outputs, args=args
        )
        return f

    return mark(fn) if fn is not None else mark


def _as_stage(obj: Any, i: int) -> Stage:
    if isinstance(obj, Stage):
        return obj
    marked = getattr(obj, "__automl_stage__", None)
    if isinstance(marked, Stage):
        return marked
    if callable(obj):
        return Stage.python(obj)
    raise SpecError(
        f"must be a Stage or a function marked with @stage; got {obj!r}", path=f"stages[{i}]"
    )


@dataclass(frozen=True)
class Pipeline:
    """A validated DAG of stages with typed parameters.

    Args:
        name: Lowercase letters, digits, ``-`` and ``_``.
        stages: :class:`Stage` objects or functions marked with :func:`stage`, in any order.
        parameters: Pipeline parameters and their defaults (str, int, float or bool); stages
            use them as ``${params.<name>}``; ``automl pipeline run --param`` and Kubeflow
            Pipelines override them.
        description: Free text.
        source: The file the pipeline was loaded from (set by the loader).

    Raises:
        SpecError: Every problem found: bad names, duplicate stages, unknown inputs, cycles,
            outputs redeclared, placeholders naming nothing.
    """

    name: str
    stages: Sequence[Any]
    parameters: Mapping[str, Scalar] = field(default_factory=dict)
    description: str = ""
    source: Path | None = None
    _inputs: dict[str, tuple[Input, ...]] = field(init=False, repr=False, compare=False)
    _order: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        stages = tuple(_as_stage(s, i) for i, s in enumerate(self.stages))
        object.__setattr__(self, "stages", stages)
        object.__setattr__(self, "parameters", dict(self.parameters))
        from integrations.pipelines._validate import check_basics, resolve_inputs

        issues = check_basics(self.name, self.parameters, stages)
        inputs, more = resolve_inputs(stages)
        issues += more
        if issues:
            raise SpecError(issues)
        object.__setattr__(self, "_inputs", inputs)
        object.__setattr__(self, "_order", self._toposort(stages, inputs))

    @staticmethod
    def _toposort(
        stages: tuple[Stage, ...], inputs: dict[str, tuple[Input, ...]]
    ) -> tuple[str, ...]:
        order: list[str] = []
        done: set[str] = set()
        pending = [s.name for s in stages]
        while pending:  # stable: written order among stages that are ready
            ready = [n for n in pending if all(x.stage in done for x in inputs[n])]
            order += ready
            done.update(ready)
            pending = [n for n in pending if n not in done]
        return tuple(order)

    # -- queries --------------------------------------------------------------------------
    @property
    def order(self) -> tuple[str, ...]:
        """Stage names in a topological order (written order among independent stages)."""
        return self._order

    def stage(self, name: str) -> Stage:
        """The stage called ``name``.

        Raises:
            SpecError: No such stage.
        """
        for s in self.stages:
            if s.name == name:
                return s  # type: ignore[no-any-return]
        raise SpecError(f"no stage {name!r}; stages: {', '.join(self.order)}", path="--stage")

    def inputs_of(self, name: str) -> tuple[Input, ...]:
        """The resolved inputs of a stage."""
        return self._inputs[name]

    def upstream(self, name: str) -> set[str]:
        """Every stage ``name`` depends on, directly or not."""
        out: set[str] = set()
        todo = [x.stage for x in self._inputs[name]]
        while todo:
            n = todo.pop()
            if n not in out:
                out.add(n)
                todo += [x.stage for x in self._inputs[n]]
        return out

    def with_params(
        self, overrides: Mapping[str, str], base: Mapping[str, Any] | None = None
    ) -> dict[str, Scalar]:
        """Parameter values with ``name -> text`` overrides coerced to each default's type.

        Args:
            overrides: ``name -> text`` from the command line.
            base: Values to start from instead of the defaults (a resumed run's recorded
                parameters); entries that are not parameters any more, or no longer have
                their default's type, are ignored.

        Raises:
            SpecError: An unknown name or a value of the wrong type (path ``--param``).
        """
        values: dict[str, Scalar] = dict(self.parameters)
        for k, v in (base or {}).items():
            if k in values and type(v) is type(values[k]):
                values[k] = v
        issues: list[SpecIssue] = []
        for k, text in overrides.items():
            if k not in values:
                known = ", ".join(values) or "none"
                issues.append(SpecIssue("--param", f"unknown parameter {k!r} (known: {known})"))
                continue
            try:
                values[k] = coerce(text, type(values[k]).__name__)
            except ValueError:
                issues.append(
                    SpecIssue(
                        "--param",
                        f"{k} must be a {type(values[k]).__name__} like its default "
                        f"{values[k]!r}; got {text!r}",
                    )
                )
        if issues:
            raise SpecError(issues)
        return values


def coerce(text: str, kind: str) -> Any:
    """A value from its text form (a CLI argument or a KFP placeholder), by kind.

    Raises:
        ValueError: The text is not a value of that kind.
    """
    import json

    if kind == "str":
        return text
    if kind == "bool":
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(text)
    if kind == "int":
        f = float(text)
        if not f.is_integer():
            raise ValueError(text)
        return int(f)
    if kind == "float":
        return float(text)
    value = json.loads(text)
    if not isinstance(value, _PY_TYPES[kind]):
        raise ValueError(text)
    return value
