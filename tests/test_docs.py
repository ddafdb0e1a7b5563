"""The docs name only what exists: every ``automl`` command and flag, every file they run.

Cheap checks over README.md and docs/*.md (no command is run): each ``automl <command>
[subcommand] ... --flag`` in a code span or block names a real command and one of its options;
a bare ``--flag`` in README.md names an option of some command (elsewhere bare flags belong to
scripts and trainers too); and every file a documented ``automl run`` or ``automl validate``
takes exists in the repository.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from automl.cli import app
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_SPAN = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)


# Typer builds on its own copy of click: commands and groups are told apart by their shape.
@functools.cache
def _root() -> Any:
    cmd = typer.main.get_command(app)
    assert _is_group(cmd)
    return cmd


def _is_group(cmd: Any) -> bool:
    return isinstance(getattr(cmd, "commands", None), dict)


def _options(cmd: Any) -> set[str]:
    out = {"--help"}
    for p in cmd.params:
        if getattr(p, "param_type_name", "") == "option":
            out.update(o for o in [*p.opts, *p.secondary_opts] if o.startswith("--"))
    return out


def _all_options(group: Any) -> set[str]:
    out: set[str] = set()
    for cmd in group.commands.values():
        out |= _all_options(cmd) if _is_group(cmd) else _options(cmd)
    return out


def _snippets(path: Path) -> list[str]:
    """Code spans and the lines of code blocks, with shell continuations joined."""
    text = path.read_text()
    out: list[str] = []
    for block in _FENCE.findall(text):
        out.extend(block.replace("\\\n", " ").splitlines())
    out.extend(_SPAN.findall(_FENCE.sub("", text)))
    return out


def _invocations(snippet: str) -> list[list[str]]:
    """The words after each ``automl`` (or ``.venv/bin/automl``) in a snippet, to ``|``/``#``."""
    words = snippet.split()
    out = []
    for i, w in enumerate(words):
        after_import = i > 0 and words[i - 1] in ("from", "import", "install")
        if (w == "automl" or w.endswith("/automl")) and not after_import:
            rest = []
            for x in words[i + 1 :]:
                if x in ("|", "&&", ";", "#") or x.startswith("#"):
                    break
                rest.append(x)
            if rest:
                out.append(rest)
    return out


def _resolve(group: Any, words: list[str]) -> tuple[Any, list[str]] | None:
    """The command the words name and the words after it; None when the first is not a command."""
    cmd = group
    rest = list(words)
    while _is_group(cmd) and rest and rest[0] in cmd.commands:
        cmd = cmd.commands[rest.pop(0)]
    return None if cmd is group else (cmd, rest)


def _cases() -> list[tuple[str, str]]:
    return [
        (f"{path.relative_to(REPO)}", snippet)
        for path in DOCS
        for snippet in _snippets(path)
        if "automl" in snippet or "--" in snippet
    ]


def test_the_docs_name_commands() -> None:
    assert any(_invocations(s) for _, s in _cases())  # the check below checks something


@pytest.mark.parametrize(("doc", "snippet"), _cases())
def test_every_documented_command_and_flag_exists(doc: str, snippet: str) -> None:
    root = _root()
    invocations = _invocations(snippet)
    for words in invocations:
        if words[0].startswith("-") or not re.match(r"^[a-z][a-z-]*$", words[0]):
            continue  # `automl` as a package name (pip install 'automl[ray]'), not the CLI
        found = _resolve(root, words)
        assert found is not None, f"{doc}: `automl {words[0]}` is not a command ({snippet!r})"
        cmd, rest = found
        known = _options(cmd)
        for w in rest:
            if w.startswith("--"):
                flag = w.split("=", 1)[0]
                assert flag in known, (
                    f"{doc}: {flag} is not an option of that command: {snippet!r}"
                )
    if not invocations and snippet.startswith("--") and doc == "README.md":
        flag = snippet.split()[0].split("=", 1)[0]
        assert flag in _all_options(root), f"{doc}: {flag} is no command's option"


def _documented_files() -> list[tuple[str, str]]:
    out = []
    for path in DOCS:
        for snippet in _snippets(path):
            for words in _invocations(snippet):
                if words[0] in ("run", "validate") and len(words) > 1:
                    target = words[1]
                    if re.match(r"^[\w./-]+\.(ya?ml|py)$", target) and "/" in target:
                        out.append((f"{path.relative_to(REPO)}", target))
    return out


@pytest.mark.parametrize(("doc", "target"), _documented_files())
def test_every_documented_experiment_file_exists(doc: str, target: str) -> None:
    assert (REPO / target).is_file(), f"{doc} runs {target}, which does not exist"
