"""Values substituted into shell scripts stay data, in every form and quoting context.

Each form of shell invocation (``sh -c``, ``sh -ec``, ``bash -lc``, ``/usr/bin/env sh -c``,
``bash -o pipefail -c``; native argv and Katib ``command`` + ``args``) runs a script that writes
the value it received to a file, with the placeholder bare, in double quotes and in single
quotes. Every hostile value must arrive exactly as written, and none may run anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl.core import (
    ExperimentSpec,
    render_shell_script,
    shell_placeholders,
    shell_script_index,
)
from automl.errors import SpecError
from automl.spec import parse_spec
from tests.conftest import KATIB_EXAMPLES
from trials import render_command
from trials._base import TrialRun
from trials._manifests import render_manifest

FORMS = [
    ["sh", "-c"],
    ["sh", "-ec"],
    ["bash", "-lc"],
    ["/usr/bin/env", "sh", "-c"],
    ["bash", "-o", "pipefail", "-c"],
]
# The placeholder bare, in double quotes, in single quotes, inside a word, in a here-document;
# "{p}" stands for one placeholder per value, the values separated by RS (\x1e) in the output.
RS = "\x1e"
CONTEXTS = {
    "bare": "printf '%s\\036' {p} > \"$OUT\"",
    "double": 'printf "%s\\036" {p} > "$OUT"',
    "single": "printf '%s\\036' {p} > \"$OUT\"",
    "in-a-word": "printf '%s\\036' {p} > \"$OUT\"",
    "heredoc": 'cat > "$OUT" <<EOF\n{p}\nEOF',
}
WRAP = {
    "bare": "{}",
    "double": '"{}"',
    "single": "'{}'",
    "in-a-word": "pre-{}-post",
    "heredoc": "{}" + RS,
}


def hostile(marker: Path) -> list[str]:
    return [
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"; touch {marker}",
        f"'; touch {marker}; '",
        f'"; touch {marker}; "',
        f"a\nb\ntouch {marker}",
        f"$'\\x41' \\ $HOME * ${{IFS}} {marker}",
        "  two  spaces  ",
        "-n",
        "",
    ]


def script_for(context: str, refs: list[str]) -> str:
    joiner = "" if context == "heredoc" else " "
    return CONTEXTS[context].format(p=joiner.join(WRAP[context].format(r) for r in refs))


def expected(context: str, values: list[str]) -> list[str]:
    return [f"pre-{v}-post" if context == "in-a-word" else v for v in values]


def native(tmp_path: Path, command: list[str], values: list[str]) -> ExperimentSpec:
    doc = {
        "name": "shell",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "grid",
        "parameters": {
            f"v{i}": {"type": "categorical", "values": [v]} for i, v in enumerate(values)
        },
        "budget": {"max_trials": 1, "parallel": 1},
        "trial": {"command": command},
    }
    return parse_spec(yaml.safe_dump(doc), base_dir=tmp_path)


def run_script(argv: list[str], env: dict[str, str], out: Path) -> list[str]:
    """Run the rendered command; the values its script received, in order."""
    assert shutil.which(argv[0]) or Path(argv[0]).exists()
    p = subprocess.run(
        argv,
        env={**os.environ, **env, "OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    if text.endswith(RS + "\n"):  # a here-document's last line
        text = text[:-1]
    assert text.endswith(RS), repr(text)
    return text[:-1].split(RS)


@pytest.mark.parametrize("form", FORMS, ids=[" ".join(f) for f in FORMS])
@pytest.mark.parametrize("context", list(CONTEXTS))
def test_native_shell_forms_pass_every_hostile_value_as_data(
    tmp_path: Path, form: list[str], context: str
) -> None:
    marker = tmp_path / "PWNED"
    values = hostile(marker)
    refs = [f"${{v{i}}}" for i in range(len(values))]
    spec = native(tmp_path, [*form, script_for(context, refs)], values)
    assert shell_script_index(spec.trial_template.command) == len(form)
    params = {f"v{i}": v for i, v in enumerate(values)}
    argv, env = render_command(spec.trial_template, params, {})
    assert marker.name not in argv[len(form)]  # no value is in the script's text
    got = run_script(argv, env, tmp_path / "out")
    assert not marker.exists(), (form, context)
    assert got == expected(context, values), (form, context)


def katib_doc(command: list[str], args: list[str], values: list[str]) -> str:
    doc = yaml.safe_load((KATIB_EXAMPLES / "hp-tuning" / "random.yaml").read_text())
    spec = doc["spec"]
    spec["algorithm"] = {"algorithmName": "grid"}
    spec["maxTrialCount"] = spec["maxFailedTrialCount"] = 1
    spec["parallelTrialCount"] = 1
    spec["parameters"] = [
        {"name": f"v{i}", "parameterType": "categorical", "feasibleSpace": {"list": [v]}}
        for i, v in enumerate(values)
    ]
    tt = spec["trialTemplate"]
    tt["trialParameters"] = [{"name": f"p{i}", "reference": f"v{i}"} for i in range(len(values))]
    container = tt["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = command
    container["args"] = args
    return yaml.safe_dump(doc)


@pytest.mark.parametrize("form", FORMS, ids=[" ".join(f) for f in FORMS])
@pytest.mark.parametrize("context", ["bare", "double", "single"])
def test_katib_command_and_args_pass_every_hostile_value_as_data(
    tmp_path: Path, form: list[str], context: str
) -> None:
    marker = tmp_path / "PWNED"
    values = hostile(marker)
    refs = [f"${{trialParameters.p{i}}}" for i in range(len(values))]
    spec = parse_spec(katib_doc(form, [script_for(context, refs)], values), base_dir=tmp_path)
    assert spec.trial_template.local_blocker is None
    params = {f"v{i}": v for i, v in enumerate(values)}
    argv, env = render_command(spec.trial_template, params, {"Name": "t"})
    got = run_script(argv, env, tmp_path / "out")
    assert not marker.exists(), (form, context)
    assert got == values, (form, context)


def test_kubernetes_manifest_passes_shell_values_in_the_environment(tmp_path: Path) -> None:
    values = hostile(tmp_path / "PWNED")[:1]
    spec = parse_spec(
        katib_doc(["sh", "-c"], ["printf '%s' \"${trialParameters.p0}\""], values),
        base_dir=tmp_path,
    )
    run = TrialRun(trial_id="shell-abc", experiment="shell", number=0, params={"v0": values[0]})
    manifest = render_manifest(spec, run, "default")
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["printf '%s' \"${AUTOML_P_p0}\""]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AUTOML_P_p0"] == values[0]


def test_the_shell_own_variables_and_unknown_names_are_left_alone() -> None:
    script, env = render_shell_script(
        'echo "$HOME ${HOME} ${x}" ${PATH:-${x}}', lambda ref: "v" if ref == "x" else None
    )
    assert script == 'echo "$HOME ${HOME} ${AUTOML_P_x}" ${PATH:-"${AUTOML_P_x}"}'
    assert env == {"AUTOML_P_x": "v"}


@pytest.mark.parametrize(
    ("script", "context"),
    [
        ("echo ${x}", "plain"),
        ('echo "a ${x} b"', "double quotes"),
        ("echo 'a ${x} b'", "single quotes"),
        ("echo $'a ${x}'", "$'...' quotes"),
        ('echo "$(echo ${x})"', "plain"),
        ("echo `echo ${x}`", "plain"),
        ("# it's a comment\necho ${x}", "plain"),
        ("cat <<EOF\n${x}\nEOF\necho ${x}", "a here-document"),
        ("cat <<'EOF'\n${x}\nEOF", "a here-document with a quoted delimiter"),
        ("echo \\${x}", "after a backslash"),
        ("echo $((${x} + 1))", "arithmetic"),
        ("(( ${x} > 1 ))", "arithmetic"),
        ('[[ "${x}" -eq 1 ]]', "arithmetic"),
        ('[[ "${x}" == a ]]', "double quotes"),
    ],
)
def test_the_quoting_context_of_each_placeholder(script: str, context: str) -> None:
    assert shell_placeholders(script)[0].context == context


@pytest.mark.parametrize(
    ("argv", "index"),
    [
        (["sh", "-c", "s"], 2),
        (["/bin/bash", "-lc", "s", "name"], 2),
        (["/usr/bin/env", "sh", "-c", "s"], 3),
        (["env", "-i", "A=1", "bash", "-e", "-c", "s"], 6),
        (["busybox", "sh", "-c", "s"], 3),
        (["bash", "-o", "pipefail", "-ec", "s"], 4),
        (["bash", "--norc", "-c", "--", "s"], 4),
        (["sh", "script.sh", "-c"], None),
        (["python", "-c", "s"], None),
        (["sh", "-c"], None),
    ],
)
def test_shell_script_index_finds_the_script(argv: list[str], index: int | None) -> None:
    assert shell_script_index(argv) == index


def test_numbers_in_arithmetic_run(tmp_path: Path) -> None:
    doc: dict[str, Any] = {
        "name": "arith",
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": {"n": {"type": "int", "min": 1, "max": 5}},
        "trial": {"command": ["sh", "-c", 'printf %s "$((${n} * 2))" > "$OUT"']},
    }
    spec = parse_spec(yaml.safe_dump(doc), base_dir=tmp_path)
    argv, env = render_command(spec.trial_template, {"n": 4}, {})
    assert argv[2] == 'printf %s "$((4 * 2))" > "$OUT"'
    subprocess.run(argv, env={**os.environ, **env, "OUT": str(tmp_path / "out")}, check=True)
    assert (tmp_path / "out").read_text() == "8"


@pytest.mark.parametrize(
    ("script", "words"),
    [
        ("echo \\${v}", ["after a backslash"]),
        ("cat <<'EOF'\n${v}\nEOF", ["quoted delimiter", "expands nothing"]),
        ("echo $((${v} + 1))", ["arithmetic", "numeric parameter"]),
        ('[[ "${v}" -gt 1 ]] && echo big', ["arithmetic"]),
    ],
)
def test_places_that_cannot_hold_a_value_are_refused_at_validation(
    tmp_path: Path, script: str, words: list[str]
) -> None:
    with pytest.raises(SpecError) as info:
        native(tmp_path, ["bash", "-c", script.replace("${v}", "${v0}")], ["a"])
    (issue,) = [i for i in info.value.issues if i.path == "trial.command"]
    for w in words:
        assert w in issue.message, issue
    assert "${v0}" in issue.message


def test_katib_refusal_names_the_container(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(
            katib_doc(["sh", "-c"], ["echo \\${trialParameters.p0}"], ["a"]),
            base_dir=tmp_path,
        )
    (issue,) = [i for i in info.value.issues if "after a backslash" in i.message]
    assert issue.path == "spec.trialTemplate.trialSpec (container 'training-container' command)"


def test_a_nul_in_a_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        native(tmp_path, ["sh", "-c", "echo ${v0}"], ["a\x00b"])
    assert any(
        i.path == "parameters.v0.values[0]" and "NUL" in i.message for i in info.value.issues
    )
