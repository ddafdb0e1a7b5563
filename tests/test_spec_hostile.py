"""Hostile spec input: one line per problem and exit 2, never a traceback, in bounded time.

Each case is a file a fuzzer or a careless edit produced (issue: hardening). Timings are not
asserted as figures; what is bounded is the work (sizes over a limit are refused before anything
grows with them), and the CLI cases prove the exit code and that no traceback reaches the user.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl.errors import SpecError, SpecIssue
from automl.spec import load_spec, parse_spec
from automl.spec._limits import MAX_GRID_POINTS, MAX_NAS_LAYERS
from automl.spec._yaml import MAX_BYTES, MAX_DEPTH, MAX_NODES
from tests.conftest import KATIB_EXAMPLES, REPO

DIGITS = REPO / "examples" / "sklearn-digits"
NAS = REPO / "examples" / "nas-digits"


def _doc(path: Path) -> dict[str, Any]:
    d: dict[str, Any] = yaml.safe_load(path.read_text())
    return d


def _issues(text: str, base: Path = DIGITS) -> list[SpecIssue]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, base_dir=base)
    return list(info.value.issues)


def _validate(tmp_path: Path, data: bytes | str) -> subprocess.CompletedProcess[str]:
    f = tmp_path / "exp.yaml"
    f.write_bytes(data if isinstance(data, bytes) else data.encode())
    return subprocess.run(
        [sys.executable, "-m", "automl", "validate", str(f)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    p = _validate(tmp_path, (DIGITS / "experiment.yaml").read_bytes() + b"\n# caf\xe9\n")
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    assert "not UTF-8" in p.stdout + p.stderr and "0xe9" in p.stdout + p.stderr


def test_deep_nesting_is_refused_with_its_limit(tmp_path: Path) -> None:
    p = _validate(tmp_path, "name: x\nobjective: " + "[" * 100_000)
    assert p.returncode == 2 and "Traceback" not in p.stderr + p.stdout, p.stderr
    issues = _issues("a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5))
    assert any(f"more than {MAX_DEPTH} levels" in i.message for i in issues), issues


def test_alias_expansion_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    (issue,) = _issues("\n".join(lines))
    assert f"more than {MAX_NODES:,} values" in issue.message


def test_a_value_that_contains_itself_is_refused() -> None:
    (issue,) = _issues("a: &x [1, *x]\n")
    assert "cannot contain itself" in issue.message and issue.path == "a[1]"


def test_an_oversized_document_is_refused() -> None:
    (issue,) = _issues("name: x\n# " + "y" * MAX_BYTES)
    assert f"at most {MAX_BYTES:,} bytes" in issue.message


def test_duplicate_keys_name_both_places() -> None:
    text = (DIGITS / "experiment.yaml").read_text()
    d = _doc(DIGITS / "experiment.yaml")
    name = next(iter(d["parameters"]))
    first = text.index(f"  {name}:")
    line = text[:first].count("\n") + 1
    dup = text[:first] + f"  {name}: [1, 2]\n" + text[first:]
    issues = _issues(dup)
    (issue,) = [i for i in issues if i.path == f"parameters.{name}"]
    assert "set twice" in issue.message
    assert f"line {line}," in issue.message and f"line {line + 1}," in issue.message


def test_duplicate_katib_keys_are_refused() -> None:
    text = (KATIB_EXAMPLES / "hp-tuning" / "random.yaml").read_text()
    text = text.replace("  maxTrialCount: 12\n", "  maxTrialCount: 12\n  maxTrialCount: 3\n")
    issues = _issues(text)
    assert [i.path for i in issues] == ["spec.maxTrialCount"]


def test_a_notebook_name_longer_than_the_file_system_allows(tmp_path: Path) -> None:
    d = _doc(DIGITS / "experiment.yaml")
    d["trial"] = {"notebook": "n" * 300 + ".ipynb"}
    p = _validate(tmp_path, yaml.safe_dump(d))
    assert p.returncode == 2 and "Traceback" not in p.stderr + p.stdout, p.stderr
    assert "trial.notebook: must be an existing notebook file" in p.stdout + p.stderr


@pytest.mark.parametrize("layers", [MAX_NAS_LAYERS + 1, 400, 10_000])
def test_architecture_spaces_too_large_to_train_are_refused_at_once(layers: int) -> None:
    d = _doc(NAS / "experiment.yaml")
    d["nas"]["layers"] = layers
    issues = _issues(yaml.safe_dump(d), NAS)
    (issue,) = [i for i in issues if i.path == "nas.layers"]
    assert f"at most {MAX_NAS_LAYERS} layers" in issue.message and str(layers) in issue.message


def test_katib_architecture_spaces_too_large_are_refused() -> None:
    d = _doc(KATIB_EXAMPLES / "nas" / "enas-cpu.yaml")
    d["spec"]["nasConfig"]["graphConfig"]["numLayers"] = 5000
    d["spec"]["nasConfig"]["operations"][0]["parameters"][0]["feasibleSpace"] = {
        "min": "1",
        "max": "100000",
        "step": "1",
    }
    paths = {i.path for i in _issues(yaml.safe_dump(d))}
    assert {"spec.nasConfig.graphConfig.numLayers", "spec.nasConfig.operations"} <= paths


def test_a_grid_too_large_to_list_is_refused() -> None:
    d = _doc(DIGITS / "experiment.yaml")
    d["algorithm"] = "grid"
    d["parameters"] = {"a": {"type": "int", "min": 0, "max": 10**9}, "b": [1, 2]}
    issues = _issues(yaml.safe_dump(d))
    assert any(f"{MAX_GRID_POINTS:,} grid points" in i.message for i in issues), issues


def test_every_problem_is_reported_in_one_pass_with_suggestions() -> None:
    d = _doc(DIGITS / "experiment.yaml")
    d["objective"]["direction"] = "minimise"
    d["budgett"] = d.pop("budget")
    name = next(iter(d["parameters"]))
    d["parameters"][name] = {"type": "double", "min": 1, "max": 0.1}
    d["trial"]["command"] = [*d["trial"]["command"], "--extra=${lrr}"]
    d["parameters"]["lr"] = [1, 2]
    d["trial"]["command"].append("--lr=${lr}")
    by_path = {i.path: i.message for i in _issues(yaml.safe_dump(d))}
    assert "did you mean 'minimize'?" in by_path["objective.direction"]
    assert "did you mean 'budget'?" in by_path["budgett"]
    assert "must be greater than min" in by_path[f"parameters.{name}.max"]
    assert (
        "${lrr}" in by_path["trial.command"] and "did you mean ${lr}?" in by_path["trial.command"]
    )


def test_katib_structure_and_rules_in_one_pass() -> None:
    d = _doc(KATIB_EXAMPLES / "hp-tuning" / "random.yaml")
    d["spec"]["maxTrialCountt"] = 3
    d["spec"]["objective"]["type"] = "minimise"
    d["spec"]["parameters"][0]["feasibleSpace"] = {"min": "1", "max": "0.1"}
    by_path = {i.path: i.message for i in _issues(yaml.safe_dump(d))}
    assert "did you mean 'maxTrialCount'?" in by_path["spec.maxTrialCountt"]
    assert "did you mean 'minimize'?" in by_path["spec.objective.type"]
    assert "must be greater than min" in by_path["spec.parameters[0].feasibleSpace.max"]


# -- seeds and integer settings in range (what the samplers accept) -----------------------------
@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda d: d.__setitem__("seed", 2**32), "seed", ["[0, 4294967295]"]),
        (
            lambda d: d.__setitem__(
                "algorithm", {"name": "random", "settings": {"random_state": 2**32}}
            ),
            "algorithm.settings.random_state",
            ["[0, 4294967295]"],
        ),
        (
            lambda d: d.__setitem__("algorithm", {"name": "tpe", "settings": {"seed": 2**40}}),
            "algorithm.settings.seed",
            ["[0, 4294967295]"],
        ),
        (
            lambda d: d.__setitem__(
                "algorithm", {"name": "tpe", "settings": {"n_ei_candidates": 2**64}}
            ),
            "algorithm.settings.n_ei_candidates",
            ["[1, 100000]"],
        ),
        (
            lambda d: d.__setitem__(
                "algorithm", {"name": "tpe", "settings": {"n_startup_trials": 2**64}}
            ),
            "algorithm.settings.n_startup_trials",
            ["at most 2147483647"],
        ),
        (
            lambda d: d.__setitem__(
                "early_stopping", {"name": "medianstop", "settings": {"start_step": 2**70}}
            ),
            "early_stopping.settings.start_step",
            ["at most 2147483647"],
        ),
        (
            lambda d: d["parameters"].__setitem__("big", {"type": "int", "min": 0, "max": 2**60}),
            "parameters.big.max",
            ["2**53"],
        ),
    ],
)
def test_seeds_and_integer_settings_out_of_range_are_refused(
    mutate: Any, path: str, words: list[str]
) -> None:
    d = _doc(DIGITS / "experiment.yaml")
    mutate(d)
    issues = _issues(yaml.safe_dump(d))
    (issue,) = [i for i in issues if i.path == path]
    for w in words:
        assert w in issue.message, issue


def test_a_large_seed_is_refused_before_run_stores_anything(tmp_path: Path) -> None:
    d = _doc(DIGITS / "experiment.yaml")
    d["seed"] = 2**32
    d["trial"]["workdir"] = str(DIGITS)
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(d))
    for cmd in (["validate", str(f)], ["run", str(f), "--no-progress"]):
        p = subprocess.run(
            [sys.executable, "-m", "automl", *cmd],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 2, (cmd, p.stdout, p.stderr)
        assert "Traceback" not in p.stdout + p.stderr
        assert "seed: must be an integer in [0, 4294967295]" in p.stdout + p.stderr
    assert not (tmp_path / "automl.db").exists()


def test_the_largest_seed_runs() -> None:
    spec = load_spec(DIGITS / "experiment.yaml").model_copy(update={"seed": 2**32 - 1})
    from automl.spec import render_trials

    assert len(render_trials(spec, 2)) == 2


def test_a_megabyte_of_values_is_refused_before_it_is_built() -> None:
    d = _doc(DIGITS / "experiment.yaml")
    d["parameters"]["big"] = {"type": "categorical", "values": list(range(MAX_NODES))}
    text = yaml.safe_dump(d)
    assert len(text) < MAX_BYTES
    (issue,) = _issues(text)
    assert f"more than {MAX_NODES:,} values" in issue.message
