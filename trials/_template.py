"""Trial templates: ``${trialParameters.x}`` substitution into argv, without a shell.

Each argv element is substituted on its own, so a value such as ``; rm -rf ~`` stays one argument
and runs nothing. Where a Katib template runs a script through ``sh -c``, values substituted into
that script are shell-quoted, so they are still data.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from automl.core import PLACEHOLDER_RE, ParamValue, TrialTemplate

__all__ = ["format_value", "render_command", "render_text"]


def format_value(value: ParamValue) -> str:
    """The text form of a parameter value on a command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def render_text(
    text: str,
    template: TrialTemplate,
    params: Mapping[str, ParamValue],
    metadata: Mapping[str, str],
    *,
    quote: bool = False,
) -> str:
    """Substitute every placeholder in ``text``.

    Args:
        text: A template string.
        template: The trial template (for its trialParameters bindings).
        params: Typed parameter values.
        metadata: ``Name``, ``Namespace``, ``Kind``, ``APIVersion`` values for ``${trialSpec.*}``.
        quote: Shell-quote substituted values (for ``sh -c`` scripts).
    """
    bindings = {tp.name: tp.reference for tp in template.trial_parameters}

    def sub(m: object) -> str:
        ref: str = m.group(1)  # type: ignore[attr-defined]
        if ref.startswith("trialParameters."):
            key = ref.removeprefix("trialParameters.")
            target = bindings.get(key, key)
            if target.startswith("${trialSpec."):
                return render_text(target, template, params, metadata, quote=quote)
            raw = format_value(params[target])
        elif ref.startswith("trialSpec."):
            key = ref.removeprefix("trialSpec.")
            raw = metadata.get(key, "")
        elif ref in params:
            raw = format_value(params[ref])
        else:
            return m.group(0)  # type: ignore[attr-defined,no-any-return]
        return shlex.quote(raw) if quote else raw

    return PLACEHOLDER_RE.sub(sub, text)


def render_command(
    template: TrialTemplate, params: Mapping[str, ParamValue], metadata: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment of one trial.

    Raises:
        ValueError: The template has no command.
    """
    if template.command is None:
        raise ValueError("trial template has no command")
    argv = [
        render_text(arg, template, params, metadata, quote=i == template.shell_script_index)
        for i, arg in enumerate(template.command)
    ]
    env = {k: render_text(v, template, params, metadata) for k, v in template.env.items()}
    return argv, env
