"""Trial templates: ``${trialParameters.x}`` substitution into argv, without a shell.

Each argv element is substituted on its own, so a value such as ``; rm -rf ~`` stays one argument
and runs nothing. Where the command runs a shell script (``sh -c``, ``bash -lc``, ``/usr/bin/env
sh -c`` ...: :func:`automl.core.shell_script_index`), a value never enters the script's text: it
is passed in an environment variable and the placeholder becomes a quoted reference to it
(:func:`automl.core.render_shell_script`), so the script receives exactly the value.
"""

from __future__ import annotations

from collections.abc import Mapping

from automl.core import (
    PLACEHOLDER_RE,
    ParamValue,
    TrialTemplate,
    render_shell_script,
    shell_script_index,
)

__all__ = ["format_value", "render_command", "render_script", "render_text"]


def format_value(value: ParamValue) -> str:
    """The text form of a parameter value on a command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _value_of(
    ref: str,
    template: TrialTemplate,
    params: Mapping[str, ParamValue],
    metadata: Mapping[str, str],
) -> str | None:
    """The text a placeholder's inner text stands for, or None when it is not a placeholder."""
    if ref.startswith("trialParameters."):
        key = ref.removeprefix("trialParameters.")
        target = {tp.name: tp.reference for tp in template.trial_parameters}.get(key, key)
        if target.startswith("${trialSpec."):
            return render_text(target, template, params, metadata)
        return format_value(params[target]) if target in params else None
    if ref.startswith("trialSpec."):
        return metadata.get(ref.removeprefix("trialSpec."), "")
    if ref in params:
        return format_value(params[ref])
    return None


def render_text(
    text: str,
    template: TrialTemplate,
    params: Mapping[str, ParamValue],
    metadata: Mapping[str, str],
) -> str:
    """Substitute every placeholder in ``text`` (an argv element, an env value, a path).

    Args:
        text: A template string.
        template: The trial template (for its trialParameters bindings).
        params: Typed parameter values.
        metadata: ``Name``, ``Namespace``, ``Kind``, ``APIVersion`` values for ``${trialSpec.*}``.
    """

    def sub(m: object) -> str:
        raw = _value_of(m.group(1), template, params, metadata)  # type: ignore[attr-defined]
        return m.group(0) if raw is None else raw  # type: ignore[attr-defined]

    return PLACEHOLDER_RE.sub(sub, text)


def render_script(
    script: str,
    template: TrialTemplate,
    params: Mapping[str, ParamValue],
    metadata: Mapping[str, str],
) -> tuple[str, dict[str, str]]:
    """A shell script's placeholders as quoted variable references, and the variables' values.

    Raises:
        ValueError: A placeholder stands where a shell cannot take a value as data (the spec's
            validation refuses such templates first).
    """
    return render_shell_script(script, lambda ref: _value_of(ref, template, params, metadata))


def render_command(
    template: TrialTemplate, params: Mapping[str, ParamValue], metadata: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment of one trial.

    Raises:
        ValueError: The template has no command, or its shell script cannot take a value as data.
    """
    if template.command is None:
        raise ValueError("trial template has no command")
    script_at = shell_script_index(template.command)
    argv: list[str] = []
    values: dict[str, str] = {}
    for i, arg in enumerate(template.command):
        if i == script_at:
            script, values = render_script(arg, template, params, metadata)
            argv.append(script)
        else:
            argv.append(render_text(arg, template, params, metadata))
    env = {k: render_text(v, template, params, metadata) for k, v in template.env.items()}
    env.update(values)
    return argv, env
