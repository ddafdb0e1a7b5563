r"""Placeholders inside shell scripts: where they stand, and how to substitute them as data.

A Katib template such as ``[sh, -c, "python train.py --lr=${trialParameters.lr}"]`` is a shell
script with placeholders in it. Pasting a value into the script's text (Katib's way) makes the
value code: ``$(touch FILE)`` runs, and a quote in the value ends the quoting around it. Here a
value never enters the script's text. It travels in an environment variable (``AUTOML_P_lr``)
and the placeholder becomes a reference to that variable, quoted for where it stands:

=================  ==================  ==========================================
placeholder in     example             becomes
=================  ==================  ==========================================
plain text         ``--lr=${lr}``      ``--lr="${AUTOML_P_lr}"``
double quotes      ``"lr=${lr}"``      ``"lr=${AUTOML_P_lr}"``
single quotes      ``'lr=${lr}'``      ``'lr='"${AUTOML_P_lr}"''``
``$'...'``         ``$'lr=${lr}'``     ``$'lr='"${AUTOML_P_lr}"$''``
a here-document    ``<<EOF``           ``${AUTOML_P_lr}``
arithmetic         ``$((${n} * 2))``   the number itself (only numbers may stand there)
=================  ==================  ==========================================

so the script receives exactly the value, which the shell never parses. Three places cannot hold
a value as data and are refused when the spec is validated: after a backslash (``\${x}``), in a
here-document with a quoted delimiter (``<<'EOF'``, where the shell expands nothing), and a value
that is not a number in arithmetic (``$((...))``, ``((...))``, or ``[[ ... -eq ... ]]``, where
bash evaluates a variable's text as an expression, command substitutions included).

:func:`shell_script_index` finds the script in an argv: ``sh -c``, ``sh -ec``, ``bash -lc``,
``bash -o pipefail -c``, ``/usr/bin/env sh -c``, ``busybox sh -c`` and the other shells in
:data:`SHELLS`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "SHELLS",
    "ShellUse",
    "render_shell_script",
    "shell_placeholders",
    "shell_script_index",
]

#: Shells whose ``-c`` argument is a script.
SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "yash", "busybox"})
_PLACEHOLDER = re.compile(r"\$\{([^{}]+)\}")  # automl.core._validate.PLACEHOLDER_RE
_OPTION_WITH_ARG = {"-o", "+o", "-O", "+O", "--rcfile", "--init-file"}
_WORD_BREAK = frozenset(" \t\n;&|()")
_ARITH_TEST = re.compile(r"\s-(eq|ne|lt|le|gt|ge)\s")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

# Contexts a placeholder can stand in.
PLAIN, DOUBLE, SINGLE, ANSI, HEREDOC, ARITH, ESCAPED, QUOTED_HEREDOC = (
    "plain",
    "double quotes",
    "single quotes",
    "$'...' quotes",
    "a here-document",
    "arithmetic",
    "after a backslash",
    "a here-document with a quoted delimiter",
)
#: Contexts that cannot carry a value as data (see the module docstring).
REFUSED = {
    ESCAPED: "the backslash would quote the substituted text's first character",
    QUOTED_HEREDOC: "the shell expands nothing there, so the value cannot be passed as data",
}


def shell_script_index(argv: Sequence[str] | None) -> int | None:
    """The index of the script in a shell invocation ``argv``, or None if it is not one.

    ``env`` (with its options and ``NAME=value`` words) and ``busybox`` may come first; the
    shell's options may be clustered (``-ec``, ``-lc``) and may take an argument (``-o
    pipefail``); the script is the first operand after them when ``c`` is among the options.
    """
    if not argv:
        return None
    i = 0
    if os.path.basename(argv[0]) == "env":
        i = 1
        while i < len(argv) and (argv[i].startswith("-") or "=" in argv[i]):
            if argv[i] in ("-S", "--split-string") or argv[i].startswith("--split-string="):
                return None
            i += 2 if argv[i] in ("-u", "--unset", "-C", "--chdir") else 1
    if i < len(argv) and os.path.basename(argv[i]) == "busybox":
        i += 1
    if i >= len(argv) or os.path.basename(argv[i]) not in SHELLS - {"busybox"}:
        return None
    j = i + 1
    has_c = False
    while j < len(argv):
        a = argv[j]
        if a == "--":
            j += 1
            break
        if a in _OPTION_WITH_ARG:
            j += 2
            continue
        if a.startswith("--"):
            j += 1
            continue
        if len(a) > 1 and a[0] in "-+":
            if a[0] == "-" and "c" in a[1:]:
                has_c = True
            j += 2 if ("o" in a[1:] or "O" in a[1:]) else 1
            continue
        break
    return j if has_c and j < len(argv) else None


@dataclass(frozen=True)
class ShellUse:
    """One placeholder in a shell script: its text, span and quoting context."""

    ref: str  # the placeholder's inner text: ``lr``, ``trialParameters.lr``, ``trialSpec.Name``
    start: int
    end: int
    context: str


@dataclass
class _Frame:
    kind: str  # plain, cmd ($( or `), double, single, ansi, brace, arith, test, heredoc, qheredoc
    depth: int = 0  # open parentheses in $( ... ) and $(( ... )); -1 marks a backtick frame
    outer: str = "plain"  # brace: "double" inside double quotes or a here-document, else "plain"


_SIMPLE = {
    "single": SINGLE,
    "ansi": ANSI,
    "heredoc": HEREDOC,
    "qheredoc": QUOTED_HEREDOC,
    "arith": ARITH,
    "test": ARITH,
}


def _context(stack: list[_Frame]) -> str:
    top = stack[-1]
    if top.kind in _SIMPLE:
        return _SIMPLE[top.kind]
    if top.kind == "double" or (top.kind == "brace" and top.outer == "double"):
        for frame in reversed(stack[:-1]):  # "${x}" inside $(( )) is still arithmetic
            if frame.kind in ("arith", "test"):
                return ARITH
            if frame.kind in ("cmd", "plain"):
                break
        return DOUBLE
    return PLAIN


def _heredoc_word(script: str, i: int) -> tuple[str, bool, bool, int]:
    """The delimiter after ``<<`` at ``i``: (word, quoted, strip tabs, index after it)."""
    j = i + 2
    strip = j < len(script) and script[j] == "-"
    j += 1 if strip else 0
    while j < len(script) and script[j] in " \t":
        j += 1
    word: list[str] = []
    quoted = False
    quote: str | None = None
    while j < len(script):
        ch = script[j]
        if quote:
            if ch == quote:
                quote = None
            else:
                word.append(ch)
        elif ch in "'\"":
            quote, quoted = ch, True
        elif ch == "\\" and j + 1 < len(script):
            quoted = True
            j += 1
            word.append(script[j])
        elif ch in " \t\n;&|<>()":
            break
        else:
            word.append(ch)
        j += 1
    return "".join(word), quoted, strip, j


def _scan(script: str, start: int, end: int, stack: list[_Frame], uses: list[ShellUse]) -> None:
    """Walk ``script[start:end]``, recording every placeholder with its context."""
    pending: list[tuple[str, bool, bool]] = []
    i = start
    while i < end:
        top = stack[-1]
        kind = top.kind
        c = script[i]
        if c == "$":
            m = _PLACEHOLDER.match(script, i, end)
            if m:
                uses.append(ShellUse(m.group(1), i, m.end(), _context(stack)))
                i = m.end()
                continue
        if kind == "qheredoc":
            i += 1
            continue
        if kind in ("single", "ansi"):
            if c == "\\" and kind == "ansi":
                i += 2
                continue
            if c == "'":
                stack.pop()
            i += 1
            continue
        if c == "\\":
            m = _PLACEHOLDER.match(script, i + 1, end)
            if m:
                uses.append(ShellUse(m.group(1), i + 1, m.end(), ESCAPED))
                i = m.end()
            else:
                i += 2
            continue
        if script.startswith("$((", i):
            stack.append(_Frame("arith"))
            i += 3
            continue
        if script.startswith("$(", i):
            stack.append(_Frame("cmd"))
            i += 2
            continue
        if script.startswith("${", i):
            inside_text = kind in ("double", "heredoc") or (
                kind == "brace" and top.outer == "double"
            )
            stack.append(_Frame("brace", outer="double" if inside_text else "plain"))
            i += 2
            continue
        if c == "`":
            if kind == "cmd" and top.depth == -1:
                stack.pop()
            else:
                stack.append(_Frame("cmd", depth=-1))
            i += 1
            continue
        if kind == "brace":
            if c == "}":
                stack.pop()
            elif c == '"':
                stack.append(_Frame("double"))
            elif c == "'" and top.outer == "plain":
                stack.append(_Frame("single"))
            i += 1
            continue
        if kind in ("double", "heredoc"):
            if c == '"' and kind == "double":
                stack.pop()
            i += 1
            continue
        if kind == "arith":
            if c == "(":
                top.depth += 1
            elif c == ")":
                if top.depth > 0:
                    top.depth -= 1
                else:
                    stack.pop()
                    i += 2 if script.startswith("))", i) else 1
                    continue
            elif c == '"':
                stack.append(_Frame("double"))
            i += 1
            continue
        if kind == "test" and script.startswith("]]", i):
            stack.pop()
            i += 2
            continue
        # Plain text: the top level, $( ... ), ` ... `, [[ ... ]].
        word_start = i == start or script[i - 1] in _WORD_BREAK
        if c == "'":
            stack.append(_Frame("single"))
        elif c == '"':
            stack.append(_Frame("double"))
        elif script.startswith("$'", i):
            stack.append(_Frame("ansi"))
            i += 2
            continue
        elif kind == "test":
            pass
        elif word_start and script.startswith("((", i):
            stack.append(_Frame("arith"))
            i += 2
            continue
        elif word_start and script.startswith("[[", i):
            close = script.find("]]", i, end)
            if _ARITH_TEST.search(script, i, close if close >= 0 else end):
                stack.append(_Frame("test"))
                i += 2
                continue
        elif word_start and c == "#":
            nl = script.find("\n", i, end)
            i = end if nl < 0 else nl
            continue
        elif kind == "cmd" and top.depth >= 0 and c == "(":
            top.depth += 1
        elif kind == "cmd" and top.depth >= 0 and c == ")":
            if top.depth == 0:
                stack.pop()
            else:
                top.depth -= 1
        elif script.startswith("<<", i) and not script.startswith("<<<", i):
            word, quoted, strip, after = _heredoc_word(script, i)
            if word:
                pending.append((word, quoted, strip))
            i = after
            continue
        elif c == "\n" and pending:
            i = _heredoc_bodies(script, i + 1, end, pending, uses)
            pending = []
            continue
        i += 1


def _heredoc_bodies(
    script: str, i: int, end: int, pending: list[tuple[str, bool, bool]], uses: list[ShellUse]
) -> int:
    """Scan the bodies of the here-documents opened on the line that just ended."""
    for word, quoted, strip in pending:
        body_start = i
        body_end = end
        while i < end:
            nl = script.find("\n", i, end)
            line_end = end if nl < 0 else nl
            line = script[i:line_end]
            if (line.lstrip("\t") if strip else line) == word:
                body_end = i
                i = line_end + 1 if nl >= 0 else end
                break
            i = line_end + 1 if nl >= 0 else end
        else:
            body_end = end
        _scan(script, body_start, body_end, [_Frame("qheredoc" if quoted else "heredoc")], uses)
    return i


def shell_placeholders(script: str) -> list[ShellUse]:
    """Every ``${...}`` placeholder in a shell script, with the quoting context it stands in."""
    uses: list[ShellUse] = []
    _scan(script, 0, len(script), [_Frame("plain")], uses)
    return uses


def _variable(ref: str, taken: dict[str, str]) -> str:
    """A stable environment variable name per placeholder (``trialParameters.lr`` -> ...lr)."""
    if ref in taken:
        return taken[ref]
    base = "AUTOML_P_" + re.sub(r"\W", "_", ref.removeprefix("trialParameters."), flags=re.ASCII)
    name, n = base, 1
    while name in taken.values():
        n += 1
        name = f"{base}_{n}"
    taken[ref] = name
    return name


def render_shell_script(
    script: str, value_of: Callable[[str], str | None]
) -> tuple[str, dict[str, str]]:
    """The script with every known placeholder a quoted variable reference, and the variables.

    Args:
        script: The shell script (the argument after ``-c``).
        value_of: The value of a placeholder's inner text, or None for text that is not a
            placeholder here (``${HOME}`` stays the shell's own).

    Returns:
        The script to run and the environment variables that carry the values.

    Raises:
        ValueError: A placeholder stands where a value cannot be data (see :data:`REFUSED`), or
            a value in arithmetic is not a number.
    """
    out: list[str] = []
    env: dict[str, str] = {}
    taken: dict[str, str] = {}
    pos = 0
    for use in shell_placeholders(script):
        value = value_of(use.ref)
        if value is None:
            continue
        if use.context in REFUSED:
            raise ValueError(
                f"${{{use.ref}}} stands {use.context} in a shell script: {REFUSED[use.context]}"
            )
        out.append(script[pos : use.start])
        pos = use.end
        if use.context == ARITH:
            if not _NUMBER.match(value):
                raise ValueError(
                    f"${{{use.ref}}} stands in shell arithmetic, where only a number may stand "
                    f"(the shell evaluates text there as code); got {value!r}"
                )
            out.append(value)
            continue
        var = _variable(use.ref, taken)
        env[var] = value
        out.append(
            {
                PLAIN: f'"${{{var}}}"',
                DOUBLE: f"${{{var}}}",
                HEREDOC: f"${{{var}}}",
                SINGLE: f"'\"${{{var}}}\"'",
                ANSI: f"'\"${{{var}}}\"$'",
            }[use.context]
        )
    out.append(script[pos:])
    return "".join(out), env
