"""Reading untrusted YAML: bounded in size, depth and alias expansion, without duplicate keys.

PyYAML's loader keeps the last of two equal keys, recurses once per nesting level (a file of
100,000 ``[`` ends in a ``RecursionError``) and expands aliases into shared objects that the
code walking them visits once per reference (a "billion laughs" document). :func:`load_yaml`
first reads the event stream (libyaml's parser where installed; cheap, no objects built) and
refuses, with the field path and line of each problem:

- a document larger than :data:`MAX_BYTES`;
- nesting deeper than :data:`MAX_DEPTH`;
- more than :data:`MAX_NODES` values once every alias is expanded;
- a key given twice in one mapping (both places are named);

and only then builds the objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    DocumentStartEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from automl.errors import SpecError, SpecIssue

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "load_yaml"]

#: The largest document read (an experiment file is a few KiB; Katib's largest example is 8 KiB).
MAX_BYTES = 1 << 20
#: The deepest nesting of mappings and lists.
MAX_DEPTH = 64
#: The most values (scalars, mappings, lists) a document may hold, aliases expanded.
MAX_NODES = 20_000

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = Resolver()


def _where(event: Any) -> str:
    mark = getattr(event, "start_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"


def _key_text(event: ScalarEvent) -> tuple[str, str]:
    """A mapping key as YAML compares it: resolved tag and value (``1`` and ``'1'`` differ)."""
    tag = event.tag or _RESOLVER.resolve(ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
    return (str(tag), event.value)


@dataclass
class _Frame:
    """An open mapping or list while the event stream is read."""

    path: str
    is_map: bool
    anchor: str | None
    size: int = 1  # this collection plus everything in it, aliases expanded
    index: int = 0  # next list index
    key: str | None = None  # a mapping's pending key (its value comes next)
    expect_key: bool = True
    keys: dict[tuple[str, str], str] = field(default_factory=dict)  # key -> where first seen


class _Reader:
    def __init__(self) -> None:
        self.issues: list[SpecIssue] = []
        self.stack: list[_Frame] = []
        self.anchors: dict[str, int] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0

    def _child_path(self, event: NodeEvent) -> str | None:
        """The path of the node ``event`` starts; None for a mapping key."""
        if not self.stack:
            return ""
        top = self.stack[-1]
        if top.is_map:
            if top.expect_key:
                if isinstance(event, ScalarEvent) and event.value != "<<":
                    key = _key_text(event)
                    here = _where(event)
                    path = f"{top.path}.{event.value}" if top.path else event.value
                    if key in top.keys:
                        self.issues.append(
                            SpecIssue(
                                path,
                                f"is set twice ({top.keys[key]} and {here}); YAML would keep "
                                "only the last, so remove one",
                            )
                        )
                    else:
                        top.keys[key] = here
                    top.key = str(event.value)
                else:
                    top.key = "?"
                top.expect_key = False
                return None
            top.expect_key = True
            return f"{top.path}.{top.key}" if top.path else str(top.key)
        path = f"{top.path}[{top.index}]"
        top.index += 1
        return path

    def _add(self, n: int) -> None:
        self.nodes += n
        if self.stack:
            self.stack[-1].size += n
        if self.nodes > MAX_NODES:
            raise SpecError(
                [
                    SpecIssue(
                        "",
                        f"holds more than {MAX_NODES:,} values (aliases expanded); an experiment "
                        "file is far smaller",
                    )
                ]
            )

    def feed(self, event: Any) -> None:
        if isinstance(event, DocumentStartEvent):
            self.stack.clear()
            return
        if isinstance(event, CollectionEndEvent):
            done = self.stack.pop()
            if done.anchor:
                self.anchors[done.anchor] = done.size
                self.open_anchors.discard(done.anchor)
            if self.stack:
                self.stack[-1].size += done.size
            return
        if not isinstance(event, NodeEvent):
            return
        path = self._child_path(event)
        if isinstance(event, AliasEvent):
            if event.anchor in self.open_anchors:
                raise SpecError(
                    [
                        SpecIssue(
                            path or "",
                            f"refers to its own container (*{event.anchor} inside "
                            f"&{event.anchor}, {_where(event)}): a value cannot contain itself",
                        )
                    ]
                )
            self._add(self.anchors.get(event.anchor or "", 1))
        elif isinstance(event, ScalarEvent):
            self._add(1)
            if event.anchor:
                self.anchors[event.anchor] = 1
        elif isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            self.nodes += 1
            if self.nodes > MAX_NODES:
                self._add(0)
            if len(self.stack) >= MAX_DEPTH:
                raise SpecError(
                    [
                        SpecIssue(
                            path or "",
                            f"is nested more than {MAX_DEPTH} levels deep ({_where(event)})",
                        )
                    ]
                )
            if event.anchor:
                self.open_anchors.add(event.anchor)
            self.stack.append(
                _Frame(
                    path=path if path is not None else f"{self.stack[-1].path}.<key>",
                    is_map=isinstance(event, MappingStartEvent),
                    anchor=event.anchor,
                )
            )


def _malformed(exc: yaml.YAMLError) -> SpecError:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
    problem = getattr(exc, "problem", None) or str(exc)
    return SpecError([SpecIssue("", f"malformed YAML at {where}: {problem}")])


def load_yaml(text: str, filename: str = "<spec>") -> Any:
    """The first non-empty YAML document of ``text``, read within the limits above.

    Raises:
        SpecError: Malformed YAML (with its line and column), a document over a limit, or keys
            given twice (every one, with its path and both places).
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise SpecError(
            [
                SpecIssue(
                    "",
                    f"is {size:,} bytes; an experiment file may be at most {MAX_BYTES:,} bytes",
                )
            ]
        )
    reader = _Reader()
    try:
        for event in yaml.parse(text, Loader=_Loader):
            reader.feed(event)
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        raise _malformed(exc) from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops nesting before this
        raise SpecError([SpecIssue("", f"is nested too deeply (at most {MAX_DEPTH})")]) from None
    if reader.issues:
        raise SpecError(reader.issues)
    if not docs:
        raise SpecError([SpecIssue("", "the document is empty")])
    if not isinstance(docs[0], dict):
        raise SpecError(
            [
                SpecIssue(
                    "",
                    f"must be a mapping at the top level; got {type(docs[0]).__name__}",
                )
            ]
        )
    return docs[0]
