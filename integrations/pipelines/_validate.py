"""Validation of a pipeline: names, stages, input references and the DAG's cycles.

:class:`~integrations.pipelines._model.Pipeline` calls :func:`check_basics` and
:func:`resolve_inputs` when it is built; every problem found is returned as a
:class:`~automl.errors.SpecIssue` (with a path such as ``stages[i].inputs[j]``) and the pipeline
raises them together. The data model (stages, outputs, inputs) stays in ``_model``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.errors import SpecIssue
from integrations.pipelines._model import (
    ARTIFACT_KINDS,
    BUILTIN_OUTPUTS,
    IDENT_RE,
    PLACEHOLDER_RE,
    SERVE_ARGS,
    STAGE_NAME_RE,
    TUNE_ARGS,
    VALUE_KINDS,
    Input,
    Stage,
    StageKind,
    _strings,
)

__all__ = ["check_basics", "resolve_inputs"]


def check_basics(
    name: str, parameters: Mapping[str, Any], stages: tuple[Stage, ...]
) -> list[SpecIssue]:
    """Problems with the pipeline's name, parameters and each stage on its own.

    Args:
        name: The pipeline's name.
        parameters: Its parameters and their defaults.
        stages: Its stages.

    Returns:
        Every problem found (empty when none).
    """
    out: list[SpecIssue] = []
    if not isinstance(name, str) or not STAGE_NAME_RE.match(name):
        out.append(
            SpecIssue(
                "name",
                "must be 1-41 lowercase letters, digits, '-' or '_', starting with a "
                f"letter; got {name!r}",
            )
        )
    for pname, value in parameters.items():
        if not IDENT_RE.match(pname):
            out.append(SpecIssue(f"parameters.{pname}", "must be an identifier"))
        if not isinstance(value, str | int | float | bool):
            out.append(
                SpecIssue(
                    f"parameters.{pname}",
                    f"default must be a string, number or boolean; got {value!r}",
                )
            )
    if not stages:
        out.append(SpecIssue("stages", "must list at least one stage"))
    seen: set[str] = set()
    for i, s in enumerate(stages):
        p = f"stages[{i}]"
        if not STAGE_NAME_RE.match(s.name):
            out.append(
                SpecIssue(
                    f"{p}.name",
                    "must be 1-41 lowercase letters, digits, '-' or '_', starting with a "
                    f"letter; got {s.name!r}",
                )
            )
        if s.name.replace("_", "-") in seen:
            out.append(SpecIssue(f"{p}.name", f"must be unique; {s.name!r} appears twice"))
        seen.add(s.name.replace("_", "-"))
        out += _check_stage(s, p, parameters)
    return out


def resolve_inputs(
    stages: tuple[Stage, ...],
) -> tuple[dict[str, tuple[Input, ...]], list[SpecIssue]]:
    """Resolve each stage's input references to producing outputs; check the DAG.

    Args:
        stages: The pipeline's stages.

    Returns:
        The resolved inputs by stage name, and every problem found (unknown stages or
        outputs, clashing keywords, missing built-in inputs, then a cycle).
    """
    by_name = {s.name: s for s in stages}
    producers: dict[str, list[str]] = {}
    for s in stages:
        for o in s.all_outputs:
            producers.setdefault(o.name, []).append(s.name)
    issues: list[SpecIssue] = []
    resolved: dict[str, tuple[Input, ...]] = {}
    for i, s in enumerate(stages):
        mine: list[Input] = []
        keywords: set[str] = set()
        for j, (keyword, ref) in enumerate(s.inputs):
            p = f"stages[{i}].inputs[{j}]"
            src, dot, out = ref.rpartition(".")
            if not dot:
                owners = producers.get(ref, [])
                if len(owners) != 1:
                    why = "no stage has" if not owners else f"{len(owners)} stages have"
                    issues.append(
                        SpecIssue(
                            p,
                            f"{why} an output called {ref!r}; write it as 'stage.output'",
                        )
                    )
                    continue
                src, out = owners[0], ref
            if src not in by_name:
                issues.append(SpecIssue(p, f"names an unknown stage {src!r} (in {ref!r})"))
                continue
            if src == s.name:
                issues.append(SpecIssue(p, f"a stage cannot read its own output ({ref!r})"))
                continue
            if by_name[src].output(out) is None:
                have = ", ".join(o.name for o in by_name[src].all_outputs) or "none"
                issues.append(
                    SpecIssue(p, f"stage {src!r} has no output {out!r} (it has: {have})")
                )
                continue
            if not IDENT_RE.match(keyword) or keyword in keywords:
                issues.append(SpecIssue(p, f"keyword {keyword!r} must be a unique identifier"))
                continue
            keywords.add(keyword)
            mine.append(Input(keyword, src, out))
        clash = keywords & ({o.name for o in s.all_outputs} | set(s.args))
        if clash:
            issues.append(
                SpecIssue(
                    f"stages[{i}].inputs",
                    f"names {sorted(clash)} are used by both inputs and outputs/args",
                )
            )
        issues += _check_needs(s, i, mine, by_name)
        resolved[s.name] = tuple(mine)
    if not issues:
        issues += _cycle_issues(stages, resolved)
    return resolved, issues


def _check_stage(s: Stage, p: str, params: Mapping[str, Any]) -> list[SpecIssue]:
    out: list[SpecIssue] = []
    builtin = {o.name for o in BUILTIN_OUTPUTS.get(s.kind, ())}
    names: set[str] = set()
    for k, o in enumerate(s.outputs):
        if not IDENT_RE.match(o.name) or o.name in names:
            out.append(
                SpecIssue(f"{p}.outputs[{k}]", f"must be a unique identifier; got {o.name!r}")
            )
        if o.name in builtin:
            out.append(
                SpecIssue(f"{p}.outputs.{o.name}", f"is a built-in output of a {s.kind} stage")
            )
        if o.kind not in ARTIFACT_KINDS and o.kind not in VALUE_KINDS:
            kinds = ", ".join([*ARTIFACT_KINDS, *VALUE_KINDS])
            out.append(
                SpecIssue(f"{p}.outputs.{o.name}", f"kind must be one of {kinds}; got {o.kind!r}")
            )
        names.add(o.name)
    if s.kind in BUILTIN_OUTPUTS and s.outputs:
        out.append(SpecIssue(f"{p}.outputs", f"a {s.kind} stage has fixed outputs"))
    if s.kind in (StageKind.PYTHON, StageKind.TRAIN_BEST, StageKind.EVALUATE) and not s.function:
        out.append(SpecIssue(f"{p}.function", f"a {s.kind} stage needs 'module:function'"))
    if s.kind is StageKind.COMMAND:
        if not s.command:
            out.append(SpecIssue(f"{p}.command", "must be a non-empty list of arguments"))
        if s.args:
            out.append(SpecIssue(f"{p}.args", "a command stage takes its arguments in command"))
    if s.kind is StageKind.TUNE:
        if (s.experiment is None) == (s.spec is None):
            out.append(SpecIssue(f"{p}.tune", "needs exactly one of experiment (a file) or spec"))
        extra = set(s.args) - TUNE_ARGS
        if extra:
            out.append(
                SpecIssue(
                    f"{p}.args", f"unknown {sorted(extra)}; a tune stage takes {sorted(TUNE_ARGS)}"
                )
            )
    if s.kind is StageKind.SERVE:
        extra = set(s.args) - SERVE_ARGS
        if extra:
            out.append(
                SpecIssue(
                    f"{p}.args",
                    f"unknown {sorted(extra)}; a serve stage takes {sorted(SERVE_ARGS)}",
                )
            )
    for arg in s.args:
        if not IDENT_RE.match(str(arg)):
            out.append(SpecIssue(f"{p}.args.{arg}", "must be an identifier"))
    kw = {k for k, _ in s.inputs}
    outs = {o.name for o in s.all_outputs}
    for field_name, value in (
        ("args", dict(s.args)),
        ("command", list(s.command or ())),
        ("tune.spec", s.spec or {}),
    ):
        for text in _strings(value):
            for m in PLACEHOLDER_RE.finditer(text):
                group, name = m.group(1), m.group(2)
                known = params if group == "params" else kw if group == "inputs" else outs
                if group == "outputs" and field_name != "command":
                    known = set()
                if name not in known:
                    out.append(
                        SpecIssue(
                            f"{p}.{field_name}",
                            f"{m.group(0)} names no {group[:-1]} of this "
                            f"{'pipeline' if group == 'params' else 'stage'}",
                        )
                    )
    return out


def _check_needs(
    s: Stage, i: int, mine: list[Input], by_name: Mapping[str, Stage]
) -> list[SpecIssue]:
    """Built-in stages need particular inputs."""
    kinds = {x.keyword: by_name[x.stage].output(x.output) for x in mine}
    p = f"stages[{i}].inputs"
    if s.kind is StageKind.TRAIN_BEST:
        o = kinds.get("best_params")
        if o is None or o.kind != "dict":
            return [SpecIssue(p, "a train_best stage needs a dict input called best_params")]
    if s.kind in (StageKind.EVALUATE, StageKind.SERVE):
        o = kinds.get("model")
        if o is None or o.kind != "model":
            return [SpecIssue(p, f"a {s.kind} stage needs a model artifact input called model")]
    return []


def _cycle_issues(
    stages: tuple[Stage, ...], inputs: dict[str, tuple[Input, ...]]
) -> list[SpecIssue]:
    index = {s.name: i for i, s in enumerate(stages)}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(n: str) -> list[SpecIssue]:
        state[n] = 1
        stack.append(n)
        for x in inputs[n]:
            if state.get(x.stage) == 1:
                return [_cycle_issue(stack[stack.index(x.stage) :], stages, inputs, index)]
            if x.stage not in state:
                found = visit(x.stage)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return []

    for s in stages:
        if s.name not in state:
            found = visit(s.name)
            if found:
                return found
    return []


def _cycle_issue(
    loop: list[str],
    stages: tuple[Stage, ...],
    inputs: dict[str, tuple[Input, ...]],
    index: Mapping[str, int],
) -> SpecIssue:
    """Name the cycle's input in the first-written stage; show the loop as data flows."""
    # loop[k] reads an output of loop[k + 1] (and the last reads loop[0]).
    p = min(range(len(loop)), key=lambda k: index[loop[k]])
    first, producer = loop[p], loop[(p + 1) % len(loop)]
    j = next(j for j, x in enumerate(inputs[first]) if x.stage == producer)
    flow = [loop[(p - k) % len(loop)] for k in range(len(loop) + 1)]
    ref = stages[index[first]].inputs[j][1]
    return SpecIssue(
        f"stages[{index[first]}].inputs[{j}]",
        f"{ref!r} closes a cycle: {' -> '.join(flow)} (arrows: where data flows)",
    )
