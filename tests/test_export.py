"""Katib export: every spec becomes a ``kubeflow.org/v1beta1`` Experiment that parses back.

Equality used by the round trips:

* Katib file -> spec -> Katib YAML -> spec: the two specs' ``model_dump()`` are equal with **no
  field excluded**. Both parses go through the same front door with the same ``base_dir`` (the
  example's folder), so even the front-door-specific fields (``source``, the resolved
  ``trial_template.workdir``) must agree.
* Katib file -> spec -> Katib dict: the exported document equals the original file once both
  are put in canonical form (Katib's defaults filled, numbers compared as numbers). This catches
  a Katib field that the parser drops, which the spec-level round trip cannot see (both sides
  lose it alike).
* Native spec -> Katib YAML -> spec: ``model_dump()`` equal except for the fields each front door
  fills its own way, each compared for meaning instead (see ``NATIVE_EXCLUDE``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl.core import (
    AlgorithmSpec,
    CollectorKind,
    Direction,
    ExperimentSpec,
    MetricsCollectorSpec,
    Objective,
    Parameter,
    ParameterType,
    TrialTemplate,
)
from automl.errors import SpecError
from automl.spec import load_spec, parse_spec
from automl.spec._export import (
    DEFAULT_IMAGE,
    PRIMARY_CONTAINER,
    TIMEOUT_ANNOTATION,
    dump_katib,
    to_katib,
)
from automl.spec._katib import DEFAULT_CONDITIONS, DEFAULT_POD_LABELS
from search import resolve_settings
from tests.conftest import KATIB_EXAMPLES, REPO
from trials import render_command

NATIVE_EXAMPLE = REPO / "examples" / "sklearn-digits" / "experiment.yaml"


ALL_KATIB = sorted(KATIB_EXAMPLES.glob("*/*.yaml"))


def _rel(p: Path) -> str:
    return p.relative_to(KATIB_EXAMPLES).as_posix()


def _cases() -> list[Any]:
    return [pytest.param(p, id=_rel(p)) for p in ALL_KATIB]


def test_all_twenty_katib_examples_are_covered() -> None:
    assert len(ALL_KATIB) == 20
    assert len({_rel(p) for p in ALL_KATIB}) == 20  # no duplicates


# ---------------------------------------------------------------------------------------------
# Katib -> spec -> Katib -> spec
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _cases())
def test_katib_example_round_trips(path: Path) -> None:
    spec = load_spec(path)
    text = dump_katib(spec)
    back = parse_spec(text, base_dir=path.parent.resolve(), filename=f"export of {path.name}")
    assert back.model_dump() == spec.model_dump()
    assert to_katib(back) == to_katib(spec)  # and exporting again is a fixed point


def _num(v: Any) -> float:
    return float(v)


def _canonical(doc: dict[str, Any]) -> dict[str, Any]:
    """A Katib Experiment with Katib's defaults filled and numbers as numbers, for comparison."""
    meta = doc["metadata"]
    s = dict(doc["spec"])
    out: dict[str, Any] = {
        "apiVersion": doc["apiVersion"],
        "kind": doc["kind"],
        "metadata": {k: meta[k] for k in ("name", "namespace") if meta.get(k)},
    }
    obj = dict(s.pop("objective"))
    obj["goal"] = None if obj.get("goal") is None else float(obj["goal"])
    obj["additionalMetricNames"] = list(obj.get("additionalMetricNames") or [])
    obj["metricStrategies"] = {m["name"]: m["value"] for m in obj.get("metricStrategies") or []}
    spec: dict[str, Any] = {"objective": obj}
    for key in ("algorithm", "earlyStopping"):
        if key in s:
            a = s.pop(key)
            spec[key] = {
                "algorithmName": a["algorithmName"],
                "algorithmSettings": {
                    x["name"]: x.get("value") for x in a.get("algorithmSettings") or []
                },
            }
    spec["parallelTrialCount"] = s.pop("parallelTrialCount", 3)
    spec["maxTrialCount"] = s.pop("maxTrialCount", None)
    spec["maxFailedTrialCount"] = s.pop("maxFailedTrialCount", None)
    spec["resumePolicy"] = s.pop("resumePolicy", "Never")
    params = []
    for p in s.pop("parameters", None) or []:
        fs = dict(p["feasibleSpace"])
        for k in ("min", "max", "step"):
            if k in fs:
                fs[k] = _num(fs[k])
        if "list" in fs:
            fs["list"] = [str(v) for v in fs["list"]]
        if fs.get("distribution", "uniform") == "uniform":
            fs.pop("distribution", None)
        params.append({"name": p["name"], "parameterType": p["parameterType"], "fs": fs})
    spec["parameters"] = params
    spec["nasConfig"] = s.pop("nasConfig", None)
    mcs = s.pop("metricsCollectorSpec", None) or {}
    source = dict(mcs.get("source") or {})
    if "fileSystemPath" in source:
        fsp = dict(source["fileSystemPath"])
        if fsp.get("format") == "TEXT":
            del fsp["format"]
        source["fileSystemPath"] = fsp
    spec["metricsCollectorSpec"] = {
        "source": source,
        "collector": {"kind": "StdOut", **(mcs.get("collector") or {})},
    }
    tt = dict(s.pop("trialTemplate"))
    tt["retain"] = bool(tt.get("retain", False))
    tt["trialParameters"] = [
        {k: v for k, v in tp.items() if k != "description" or v}
        for tp in tt.get("trialParameters") or []
    ]
    kind = (tt.get("trialSpec") or {}).get("kind", "")
    if kind in DEFAULT_CONDITIONS:  # Katib's defaults per trial kind
        tt.setdefault("successCondition", DEFAULT_CONDITIONS[kind][0])
        tt.setdefault("failureCondition", DEFAULT_CONDITIONS[kind][1])
    if kind in DEFAULT_POD_LABELS and not tt.get("primaryPodLabels"):
        tt["primaryPodLabels"] = DEFAULT_POD_LABELS[kind]
    spec["trialTemplate"] = tt
    assert not s, f"canonical form misses Katib fields {sorted(s)}"
    out["spec"] = spec
    return out


@pytest.mark.parametrize("path", _cases())
def test_katib_example_export_reproduces_the_file(path: Path) -> None:
    original = yaml.safe_load(path.read_text())
    exported = to_katib(load_spec(path))
    assert _canonical(exported) == _canonical(original)


def test_katib_trial_spec_is_the_manifest_as_written() -> None:
    path = KATIB_EXAMPLES / "kubeflow-training-operator" / "pytorchjob-mnist.yaml"
    original = yaml.safe_load(path.read_text())
    doc = to_katib(load_spec(path))
    tt = doc["spec"]["trialTemplate"]
    assert tt["trialSpec"] == original["spec"]["trialTemplate"]["trialSpec"]
    assert tt["trialParameters"] == original["spec"]["trialTemplate"]["trialParameters"]
    assert tt["primaryContainerName"] == "pytorch"
    assert doc["metadata"] == {"name": "pytorchjob-mnist", "namespace": "kubeflow"}


def test_katib_string_forms_are_kept() -> None:
    doc = to_katib(load_spec(KATIB_EXAMPLES / "hp-tuning" / "hyperopt-distribution.yaml"))
    params = {p["name"]: p["feasibleSpace"] for p in doc["spec"]["parameters"]}
    assert params["lr"] == {"min": "0.01", "max": "0.05", "step": "0.01", "distribution": "normal"}
    assert params["momentum"] == {"min": "0.001", "max": "1"}  # uniform is Katib's default
    assert params["epochs"] == {"min": "1", "max": "3", "distribution": "logUniform"}
    stop = to_katib(load_spec(KATIB_EXAMPLES / "early-stopping" / "median-stop.yaml"))
    assert stop["spec"]["earlyStopping"] == {
        "algorithmName": "medianstop",
        "algorithmSettings": [
            {"name": "min_trials_required", "value": "1"},
            {"name": "start_step", "value": "2"},
        ],
    }


# ---------------------------------------------------------------------------------------------
# Katib fields the examples do not all show (set on the spec directly)
# ---------------------------------------------------------------------------------------------


def _katib_spec() -> ExperimentSpec:
    return load_spec(KATIB_EXAMPLES / "hp-tuning" / "random.yaml")


def test_trial_template_katib_fields() -> None:
    spec = _katib_spec()
    t = spec.trial_template.model_copy(
        update={
            "retain": True,
            "primary_pod_labels": {"katib.kubeflow.org/model-training": "true"},
            "success_condition": 'status.[@this].#(phase=="Succeeded")#',
            "failure_condition": 'status.[@this].#(phase=="Failed")#',
            "local_blocker": "an Argo Workflow",
            "path_map": {"/opt/pytorch-mnist": "/tmp/x"},
        }
    )
    tt = to_katib(spec.model_copy(update={"trial_template": t}))["spec"]["trialTemplate"]
    assert list(tt) == [
        "retain",
        "primaryContainerName",
        "primaryPodLabels",
        "successCondition",
        "failureCondition",
        "trialParameters",
        "trialSpec",
    ]
    assert tt["retain"] is True
    assert tt["primaryPodLabels"] == {"katib.kubeflow.org/model-training": "true"}
    assert tt["successCondition"] == 'status.[@this].#(phase=="Succeeded")#'
    # automl-only fields never reach the document
    text = dump_katib(spec.model_copy(update={"trial_template": t}))
    assert "/tmp/x" not in text and "Argo" not in text and "workdir" not in text


def test_config_map_template() -> None:
    spec = _katib_spec()
    t = spec.trial_template.model_copy(
        update={
            "manifest": None,
            "command": None,
            "config_map": {
                "configMapName": "trial-templates",
                "configMapNamespace": "kubeflow",
                "templatePath": "defaultTrialTemplate.yaml",
            },
        }
    )
    tt = to_katib(spec.model_copy(update={"trial_template": t}))["spec"]["trialTemplate"]
    assert "trialSpec" not in tt
    assert tt["configMap"] == {
        "configMapName": "trial-templates",
        "configMapNamespace": "kubeflow",
        "templatePath": "defaultTrialTemplate.yaml",
    }


def test_nas_config_replaces_parameters() -> None:
    nas = {
        "graphConfig": {"numLayers": 3},
        "operations": [{"operationType": "skip_connection"}],
    }
    spec = _katib_spec().model_copy(
        update={"parameters": (), "nas_config": nas, "algorithm": AlgorithmSpec(name="enas")}
    )
    body = to_katib(spec)["spec"]
    assert "parameters" not in body
    assert body["nasConfig"] == nas
    assert body["nasConfig"] is not nas  # a copy: editing the document leaves the spec alone


@pytest.mark.parametrize(
    ("collector", "expected"),
    [
        (MetricsCollectorSpec(), None),
        (MetricsCollectorSpec(kind=CollectorKind.PUSH), {"collector": {"kind": "Push"}}),
        (
            MetricsCollectorSpec(
                kind=CollectorKind.TENSORFLOW_EVENT, path="/tb", path_kind="Directory"
            ),
            {
                "source": {"fileSystemPath": {"path": "/tb", "kind": "Directory"}},
                "collector": {"kind": "TensorFlowEvent"},
            },
        ),
        (
            MetricsCollectorSpec(
                kind=CollectorKind.PROMETHEUS, http_get={"path": "/metrics", "port": 8080}
            ),
            {
                "source": {"httpGet": {"path": "/metrics", "port": 8080}},
                "collector": {"kind": "PrometheusMetric"},
            },
        ),
        (
            MetricsCollectorSpec(
                kind=CollectorKind.CUSTOM,
                custom_collector={"name": "c", "image": "img"},
                path="/m.json",
                path_kind="File",
                format="JSON",
            ),
            {
                "source": {
                    "fileSystemPath": {"path": "/m.json", "kind": "File", "format": "JSON"}
                },
                "collector": {"kind": "Custom", "customCollector": {"name": "c", "image": "img"}},
            },
        ),
        (
            MetricsCollectorSpec(filters=(r"(\w+)=(\S+)",)),
            {
                "source": {"filter": {"metricsFormat": [r"(\w+)=(\S+)"]}},
                "collector": {"kind": "StdOut"},
            },
        ),
    ],
    ids=["stdout-default", "push", "tfevent", "prometheus", "custom", "stdout-filter"],
)
def test_metrics_collector(collector: MetricsCollectorSpec, expected: Any) -> None:
    body = to_katib(_katib_spec().model_copy(update={"metrics_collector": collector}))["spec"]
    assert body.get("metricsCollectorSpec") == expected


def test_command_cannot_replace_a_katib_template() -> None:
    with pytest.raises(SpecError) as info:
        to_katib(_katib_spec(), command=["python", "x.py"])
    assert info.value.path == "trial_template.command"


# ---------------------------------------------------------------------------------------------
# Native -> Katib -> spec
# ---------------------------------------------------------------------------------------------

# Fields each front door fills its own way, each compared for meaning in the test instead:
#   source: which front door made the spec (native vs katib).
#   seed, algorithm.settings: the seed is exported as Katib's random_state setting, and Katib
#     writes settings as strings ("8"); compared through resolve_settings (typed, defaults
#     filled, random_state from seed).
#   trial_template.command / trial_parameters / manifest / primary_container_name /
#     shell_script_index: the native ${x} argv becomes a Job with ${trialParameters.x}
#     placeholders; compared by rendering both commands for the same assignment.
#   timeout, trial_template.timeout: exported as the automl.io/timeout-seconds annotation and the
#     Job's activeDeadlineSeconds, read back by the Katib parser (own test).
NATIVE_EXCLUDE: dict[str, Any] = {
    "source": True,
    "seed": True,
    "timeout": True,
    "algorithm": {"settings"},
    "trial_template": {
        "command",
        "trial_parameters",
        "manifest",
        "primary_container_name",
        "shell_script_index",
        "timeout",
        "success_condition",
        "failure_condition",
        "primary_pod_labels",
    },
}


def _render(spec: ExperimentSpec, params: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    meta = {"Name": "exp-abc123", "Namespace": "default", "Kind": "Job", "APIVersion": "batch/v1"}
    return render_command(spec.trial_template, params, meta)


def _assert_same_meaning(spec: ExperimentSpec, back: ExperimentSpec) -> None:
    assert back.source == "katib"
    assert back.model_dump(exclude=NATIVE_EXCLUDE) == spec.model_dump(exclude=NATIVE_EXCLUDE)
    assert resolve_settings(back) == resolve_settings(spec)
    for pick in (0, -1):  # the first and last value of every parameter
        params: dict[str, Any] = {}
        for p in spec.parameters:
            if p.is_numeric_range:
                assert p.min is not None and p.max is not None
                v = p.min if pick == 0 else p.max
                params[p.name] = int(v) if p.type is ParameterType.INT else v
            else:
                params[p.name] = p.values[pick]
        assert _render(back, params) == _render(spec, params)


def test_native_example_exports_and_parses_back() -> None:
    spec = load_spec(NATIVE_EXAMPLE)
    text = dump_katib(spec)
    back = parse_spec(text, base_dir=NATIVE_EXAMPLE.parent.resolve(), filename="export")
    _assert_same_meaning(spec, back)
    # the parts the brief names, spelled out
    assert back.objective == spec.objective
    assert back.algorithm.name == "tpe"
    assert back.parameters == spec.parameters
    assert (back.max_trial_count, back.parallel_trial_count, back.max_failed_trial_count) == (
        24,
        2,
        3,
    )
    assert back.trial_template.command == (
        "python",
        "train.py",
        "--C",
        "${trialParameters.C}",
        "--gamma",
        "${trialParameters.gamma}",
        "--kernel",
        "${trialParameters.kernel}",
        "--degree",
        "${trialParameters.degree}",
    )
    assert [(tp.name, tp.reference) for tp in back.trial_template.trial_parameters] == [
        ("C", "C"),
        ("gamma", "gamma"),
        ("kernel", "kernel"),
        ("degree", "degree"),
    ]


def test_native_example_document() -> None:
    spec = load_spec(NATIVE_EXAMPLE)
    doc = to_katib(spec)
    assert doc["apiVersion"] == "kubeflow.org/v1beta1" and doc["kind"] == "Experiment"
    assert doc["metadata"] == {
        "name": "sklearn-digits",
        "annotations": {TIMEOUT_ANNOTATION: "900"},
    }
    body = doc["spec"]
    assert body["objective"] == {
        "type": "maximize",
        "goal": 0.995,
        "objectiveMetricName": "accuracy",
        "additionalMetricNames": ["fit_seconds"],
        "metricStrategies": [
            {"name": "accuracy", "value": "latest"},
            {"name": "fit_seconds", "value": "latest"},
        ],
    }
    assert body["algorithm"] == {
        "algorithmName": "tpe",
        "algorithmSettings": [
            {"name": "n_startup_trials", "value": "8"},
            {"name": "random_state", "value": "0"},  # the native seed
        ],
    }
    assert body["parallelTrialCount"] == 2 and body["maxTrialCount"] == 24
    assert "metricsCollectorSpec" not in body  # plain StdOut is Katib's default
    params = {p["name"]: p for p in body["parameters"]}
    assert params["C"]["feasibleSpace"] == {
        "min": "0.01",
        "max": "1000",
        "distribution": "logUniform",
    }
    assert params["degree"]["feasibleSpace"] == {"min": "2", "max": "5"}
    assert params["kernel"]["feasibleSpace"] == {"list": ["rbf", "poly", "sigmoid"]}
    tt = body["trialTemplate"]
    assert tt["primaryContainerName"] == PRIMARY_CONTAINER
    job = tt["trialSpec"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["spec"]["activeDeadlineSeconds"] == 120
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["name"] == PRIMARY_CONTAINER and container["image"] == DEFAULT_IMAGE
    assert container["workingDir"] == str(NATIVE_EXAMPLE.parent.resolve())
    assert "${trialParameters.kernel}" in container["command"]
    assert to_katib(spec, image="ghcr.io/me/svm:1")["spec"]["trialTemplate"]["trialSpec"]["spec"][
        "template"
    ]["spec"]["containers"][0]["image"] == ("ghcr.io/me/svm:1")


def test_native_timeouts_parse_back() -> None:
    spec = load_spec(NATIVE_EXAMPLE)
    back = parse_spec(dump_katib(spec), base_dir=NATIVE_EXAMPLE.parent.resolve())
    assert back.trial_template.timeout == spec.trial_template.timeout == 120
    assert back.timeout == spec.timeout == 900


NATIVE = """\
name: {name}
objective: {{metric: loss, direction: minimize}}
algorithm: random
parameters:
  lr: {{type: double, min: 0.00001, max: 0.1, step: 0.00001}}
  layers: {{type: int, min: 1, max: 10, step: 3}}
  batch: {{type: discrete, values: [16, 2.5, 0.00001]}}
  flag: [true, false]
  unused: {{type: double, min: 0.1, max: 0.9, distribution: normal}}
budget: {{max_trials: 5}}
trial:
  command: [python, train.py, "--lr=${{lr}}", "--layers", "${{trialParameters.layers}}",
            "--batch=${{batch}}", "--flag=${{flag}}", "--run=${{trialSpec.Name}}"]
  env: {{BATCH: "${{batch}}", FIXED: "1"}}
  timeout: 90.5
metrics:
  collector: file
  path: out/metrics.log
"""


def _native(tmp_path: Path, name: str = "mini") -> ExperimentSpec:
    (tmp_path / "train.py").write_text("print('loss=1')\n")
    return parse_spec(NATIVE.format(name=name), base_dir=tmp_path)


def test_native_placeholders_numbers_and_collector(tmp_path: Path) -> None:
    spec = _native(tmp_path)
    doc = to_katib(spec)
    body = doc["spec"]
    assert "annotations" not in doc["metadata"]  # no experiment time budget
    assert body["parallelTrialCount"] == 1  # native default, written since Katib's is 3
    fs = {p["name"]: p["feasibleSpace"] for p in body["parameters"]}
    assert fs["lr"] == {"min": "1e-05", "max": "0.1", "step": "1e-05"}
    assert fs["layers"] == {"min": "1", "max": "10", "step": "3"}
    assert fs["batch"] == {"list": ["16", "2.5", "1e-05"]}
    assert fs["flag"] == {"list": ["true", "false"]}
    assert fs["unused"] == {"min": "0.1", "max": "0.9", "distribution": "normal"}
    assert body["algorithm"] == {"algorithmName": "random"}

    tt = body["trialTemplate"]
    bindings = {tp["name"]: tp["reference"] for tp in tt["trialParameters"]}
    assert bindings == {
        "lr": "lr",
        "layers": "layers",
        "batch": "batch",
        "flag": "flag",
        "unused": "unused",
        "trialName": "${trialSpec.Name}",
    }
    job = tt["trialSpec"]["spec"]
    assert job["activeDeadlineSeconds"] == 91  # whole seconds, rounded up
    (container,) = job["template"]["spec"]["containers"]
    assert container["command"] == [
        "python",
        "train.py",
        "--lr=${trialParameters.lr}",
        "--layers",
        "${trialParameters.layers}",
        "--batch=${trialParameters.batch}",
        "--flag=${trialParameters.flag}",
        "--run=${trialParameters.trialName}",
    ]
    assert container["env"] == [
        {"name": "BATCH", "value": "${trialParameters.batch}"},
        {"name": "FIXED", "value": "1"},
        # Katib wants every trial parameter in the template
        {"name": "AUTOML_PARAM_unused", "value": "${trialParameters.unused}"},
    ]
    assert body["metricsCollectorSpec"] == {
        "source": {"fileSystemPath": {"path": f"{tmp_path.resolve()}/out/metrics.log"}},
        "collector": {"kind": "File"},
    }

    back = parse_spec(dump_katib(spec), base_dir=tmp_path)
    # also compared for meaning below: the env (placeholders in Katib form, plus the unused
    # parameter), the parameters (flag's values become strings) and the collector path (absolute)
    exclude = {
        **NATIVE_EXCLUDE,
        "parameters": True,
        "metrics_collector": {"path"},
        "trial_template": {*NATIVE_EXCLUDE["trial_template"], "env"},
    }
    assert back.model_dump(exclude=exclude) == spec.model_dump(exclude=exclude)
    for p in spec.parameters:
        assert back.parameter(p.name).model_dump() == p.model_dump() or p.name == "flag"
    # Katib lists are strings: a boolean categorical comes back as "true"/"false", which a
    # trial receives exactly as it did before
    assert back.parameter("flag").values == ("true", "false")
    for flag_before, flag_after in ((True, "true"), (False, "false")):
        params = {"lr": 0.001, "layers": 4, "batch": 2.5, "unused": 0.5}
        assert (
            _render(back, {**params, "flag": flag_after})[0]
            == _render(spec, {**params, "flag": flag_before})[0]
        )
    argv, env = _render(
        back, {"lr": 0.001, "layers": 4, "batch": 16, "flag": "true", "unused": 0.5}
    )
    assert argv[-1] == "--run=exp-abc123"
    assert env == {"BATCH": "16", "FIXED": "1", "AUTOML_PARAM_unused": "0.5"}


def test_python_spec_needs_a_command(tmp_path: Path) -> None:
    spec = ExperimentSpec(
        name="quadratic",
        objective=Objective(type=Direction.MINIMIZE, metric="objective"),
        algorithm=AlgorithmSpec(name="tpe"),
        parameters=(Parameter(name="x", type=ParameterType.DOUBLE, min=-10, max=10),),
        trial_template=TrialTemplate(function="mypkg.train:objective", timeout=60),
        seed=7,
        timeout=30.5,
        source="python",
    )
    with pytest.raises(SpecError) as info:
        to_katib(spec)
    assert info.value.path == "trial_template.function"
    assert "mypkg.train:objective" in str(info.value) and "command" in str(info.value)
    with pytest.raises(SpecError):
        dump_katib(spec.model_copy(update={"trial_template": TrialTemplate()}))
    with pytest.raises(SpecError) as bad:
        to_katib(spec, command="python run.py")  # a str is a Sequence[str], but not an argv
    assert bad.value.path == "command"

    text = dump_katib(spec, command=["python", "run.py", "--x", "${x}"], namespace="team")
    doc = yaml.safe_load(text)
    assert doc["metadata"] == {
        "name": "quadratic",
        "namespace": "team",
        "annotations": {TIMEOUT_ANNOTATION: "30.5"},
    }
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["command"] == ["python", "run.py", "--x", "${trialParameters.x}"]
    assert "workingDir" not in container
    back = parse_spec(text, base_dir=tmp_path)
    assert back.parameters == spec.parameters and back.namespace == "team"
    assert resolve_settings(back)["random_state"] == 7
    assert _render(back, {"x": 1.5})[0] == ["python", "run.py", "--x", "1.5"]


def test_name_katib_rejects(tmp_path: Path) -> None:
    spec = _native(tmp_path, name="my_exp.v2")
    with pytest.raises(SpecError) as info:
        to_katib(spec)
    assert info.value.path == "name" and "name=" in str(info.value)
    assert to_katib(spec, name="my-exp-v2")["metadata"]["name"] == "my-exp-v2"


# ---------------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------------


def test_dump_is_valid_block_yaml() -> None:
    spec = load_spec(NATIVE_EXAMPLE)
    text = dump_katib(spec)
    doc = yaml.safe_load(text)
    assert list(doc) == ["apiVersion", "kind", "metadata", "spec"]
    assert doc == to_katib(spec)
    assert list(doc["spec"]) == [
        "objective",
        "algorithm",
        "parallelTrialCount",
        "maxTrialCount",
        "maxFailedTrialCount",
        "resumePolicy",
        "parameters",
        "trialTemplate",
    ]
    # block style: no flow collections, no anchors
    assert not re.search(r": [{[]|^\s*- [{[]|&id", text, re.MULTILINE)
    assert "\n    - name: C\n" in text  # lists indented as in Katib's examples
    # numbers Katib reads as strings stay strings after loading
    c = doc["spec"]["parameters"][0]["feasibleSpace"]
    assert c["min"] == "0.01" and isinstance(c["min"], str)
    assert doc["metadata"]["annotations"][TIMEOUT_ANNOTATION] == "900"


def test_multiline_strings_are_literal_blocks() -> None:
    spec = _katib_spec()
    manifest = dict(spec.trial_template.manifest or {})
    manifest["metadata"] = {"annotations": {"note": "line one\nline two\n"}}
    t = spec.trial_template.model_copy(update={"manifest": manifest})
    text = dump_katib(spec.model_copy(update={"trial_template": t}))
    assert "note: |\n" in text
    loaded = yaml.safe_load(text)["spec"]["trialTemplate"]["trialSpec"]
    assert loaded["metadata"]["annotations"]["note"] == "line one\nline two\n"


def test_document_shares_nothing_with_the_spec() -> None:
    spec = _katib_spec()
    before = spec.model_dump()
    doc = to_katib(spec)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["restartPolicy"] = "X"
    doc["spec"]["trialTemplate"]["trialSpec"]["kind"] = "Changed"
    assert spec.model_dump() == before
