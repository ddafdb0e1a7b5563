"""The spec front doors: native YAML, Katib ``Experiment`` documents and their error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import automl
import search
from automl.core import (
    AlgorithmSpec,
    CollectorKind,
    Direction,
    Distribution,
    ExperimentSpec,
    MetricStrategy,
    Objective,
    Parameter,
    ParameterType,
)
from automl.errors import SpecError, SpecIssue
from automl.spec import load_spec, parse_duration, parse_spec, validate_spec
from tests.conftest import KATIB_EXAMPLES, REPO

EXAMPLE_DIR = REPO / "examples" / "sklearn-digits"
EXAMPLE = EXAMPLE_DIR / "experiment.yaml"

ACCEPTED = sorted(
    [
        *KATIB_EXAMPLES.glob("hp-tuning/*.yaml"),
        *KATIB_EXAMPLES.glob("metrics-collector/*.yaml"),
        *KATIB_EXAMPLES.glob("resume-experiment/*.yaml"),
        *KATIB_EXAMPLES.glob("kubeflow-training-operator/*.yaml"),
        *KATIB_EXAMPLES.glob("fpga/*.yaml"),
        KATIB_EXAMPLES / "trial-template" / "trial-metadata-substitution.yaml",
        KATIB_EXAMPLES / "early-stopping" / "median-stop.yaml",
    ]
)


def test_every_katib_example_is_covered() -> None:
    # Guards the parametrizations above against an empty or moved examples folder.
    every = sorted(KATIB_EXAMPLES.glob("*/*.yaml"))
    assert len(every) == 20
    assert len(ACCEPTED) == 14 and all(p.exists() for p in ACCEPTED)
    assert len(ACCEPTED) + len(ACCEPTED_ELSEWHERE) == len(every)
    for rel in ACCEPTED_ELSEWHERE:
        load_spec(KATIB_EXAMPLES / rel)  # every example file is accepted as written


# File -> a path that the rejection must name (the unsupported feature).
# Parsed and validated, but their trials need Kubernetes or NAS (tests/test_katib_compat.py).
ACCEPTED_ELSEWHERE = {
    "nas/darts-gpu.yaml",
    "nas/enas-cpu.yaml",
    "argo/argo-workflow.yaml",
    "tekton/pipeline-run.yaml",
    "kubeflow-trainer/trainjob-pytorch.yaml",
    "trial-template/trial-configmap-source.yaml",
}

MINIMAL = """\
name: mini
objective: {metric: loss, direction: minimize}
parameters:
  lr: {type: double, min: 0.001, max: 0.1}
trial:
  command: [python, train.py, "${lr}"]
"""


def _rel(p: Path) -> str:
    return p.relative_to(KATIB_EXAMPLES).as_posix()


def _errors(text: str, base_dir: Path | str = EXAMPLE_DIR) -> tuple[SpecIssue, ...]:
    """The issues parse_spec raises for ``text`` (fails if it parses)."""
    with pytest.raises(SpecError) as info:
        parse_spec(text, base_dir=base_dir)
    issues = info.value.issues
    assert issues, "a SpecError must carry at least one issue"
    return issues


def _issue_at(issues: tuple[SpecIssue, ...], path: str) -> SpecIssue:
    for i in issues:
        if i.path == path:
            return i
    raise AssertionError(f"no issue at {path!r}; got {[(i.path, i.message) for i in issues]}")


def _example_dict() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def _native(mutate: Any) -> str:
    d = _example_dict()
    mutate(d)
    return yaml.safe_dump(d, sort_keys=False)


def _katib_dict(rel: str = "hp-tuning/random.yaml") -> dict[str, Any]:
    return yaml.safe_load((KATIB_EXAMPLES / rel).read_text())


def _katib(mutate: Any, rel: str = "hp-tuning/random.yaml") -> str:
    d = _katib_dict(rel)
    mutate(d)
    return yaml.safe_dump(d, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# Native YAML
# ---------------------------------------------------------------------------------------------


def test_native_full_example() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.source == "native"
    assert spec.name == "sklearn-digits"
    obj = spec.objective
    assert obj.type is Direction.MAXIMIZE
    assert obj.metric == "accuracy"
    assert obj.goal == pytest.approx(0.995)
    assert obj.additional_metrics == ("fit_seconds",)
    assert obj.strategies == {
        "accuracy": MetricStrategy.LATEST,
        "fit_seconds": MetricStrategy.LATEST,
    }
    assert spec.algorithm.name == "tpe"
    assert spec.algorithm.settings == {"n_startup_trials": 8}
    assert spec.seed == 0

    params = {p.name: p for p in spec.parameters}
    assert list(params) == ["C", "gamma", "kernel", "degree"]  # document order is kept
    c = params["C"]
    assert (c.type, c.min, c.max, c.step) == (ParameterType.DOUBLE, 0.01, 1000.0, None)
    assert c.distribution is Distribution.LOG_UNIFORM
    assert params["gamma"].distribution is Distribution.LOG_UNIFORM
    assert params["kernel"].type is ParameterType.CATEGORICAL
    assert params["kernel"].values == ("rbf", "poly", "sigmoid")
    d = params["degree"]
    assert (d.type, d.min, d.max) == (ParameterType.INT, 2, 5)
    assert d.distribution is Distribution.UNIFORM

    assert spec.max_trial_count == 24
    assert spec.parallel_trial_count == 2
    assert spec.max_failed_trial_count == 3
    assert spec.timeout == 15 * 60
    t = spec.trial_template
    assert t.command is not None
    assert t.command[:2] == ("python", "train.py")
    assert "${C}" in t.command and "${degree}" in t.command
    assert t.function is None
    assert Path(t.workdir or "") == EXAMPLE_DIR.resolve()  # relative to the file, not the cwd
    assert t.timeout == 120
    assert spec.metrics_collector.kind is CollectorKind.STDOUT
    assert spec.metrics_collector.format == "TEXT"
    assert spec.resume_policy == "LongRunning"  # native experiments can always be extended


def test_native_example_round_trips_through_json() -> None:
    spec = load_spec(EXAMPLE)
    assert ExperimentSpec.from_json(spec.to_json()) == spec


def test_native_shorthands() -> None:
    text = """\
name: short
objective: {metric: loss, direction: minimize}
algorithm: tpe
parameters:
  lr: {type: double, min: 0.0001, max: 0.1, log: true}
  width: {type: int, min: 8, max: 64, log: true}
  momentum: {type: double, min: 0.1, max: 0.9, log: false}
  opt: [adam, 3, true, 2.5]
budget: {max_trials: 5, timeout: 15m}
trial:
  command: [echo, "${lr}", "${width}", "${momentum}", "${opt}"]
  timeout: 1h30m
"""
    spec = parse_spec(text, base_dir=EXAMPLE_DIR)
    assert spec.algorithm == AlgorithmSpec(name="tpe", settings={})
    p = {x.name: x for x in spec.parameters}
    assert p["lr"].distribution is Distribution.LOG_UNIFORM
    assert p["width"].distribution is Distribution.LOG_UNIFORM
    assert p["width"].type is ParameterType.INT
    assert p["momentum"].distribution is Distribution.UNIFORM
    opt = p["opt"]
    assert opt.type is ParameterType.CATEGORICAL
    assert opt.values == ("adam", 3, True, 2.5)
    assert [type(v) for v in opt.values] == [str, int, bool, float]  # typed, not stringified
    assert spec.timeout == 900.0
    assert spec.trial_template.timeout == 5400.0
    assert spec.max_trial_count == 5
    assert spec.parallel_trial_count == 1  # native default
    # Typed categorical values survive the store's JSON.
    back = ExperimentSpec.from_json(spec.to_json())
    assert [type(v) for v in back.parameter("opt").values] == [str, int, bool, float]


def test_native_algorithm_defaults_to_auto() -> None:
    spec = parse_spec(MINIMAL, base_dir=EXAMPLE_DIR)
    assert spec.algorithm.name == "auto"  # search/_auto.py: the default since 031e6e4
    assert spec.parameters[0].distribution is Distribution.UNIFORM


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("15m", 900.0),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("2h", 7200.0),
        ("90", 90.0),
        (90, 90.0),
        (1.5, 1.5),
        (None, None),
    ],
)
def test_parse_duration(raw: Any, seconds: float | None) -> None:
    assert parse_duration(raw, "budget.timeout") == seconds


@pytest.mark.parametrize("raw", ["soon", "15 minutes", "", "m", "-5m"])
def test_parse_duration_rejects(raw: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_duration(raw, "budget.timeout")
    assert info.value.path == "budget.timeout"
    assert repr(raw) in str(info.value)


def test_native_bad_duration_names_field() -> None:
    issue = _issue_at(_errors(MINIMAL + "budget: {timeout: soon}\n"), "budget.timeout")
    assert "'soon'" in issue.message
    issue = _issue_at(
        _errors(MINIMAL.replace('"${lr}"]', '"${lr}"]\n  timeout: forever')), "trial.timeout"
    )
    assert "'forever'" in issue.message


# ---------------------------------------------------------------------------------------------
# Katib documents that must be accepted
# ---------------------------------------------------------------------------------------------


def test_accepted_examples_are_present() -> None:
    assert len(ACCEPTED) >= 12, ACCEPTED
    assert all(p.is_file() for p in ACCEPTED)


@pytest.mark.parametrize("path", ACCEPTED, ids=_rel)
def test_katib_example_parses(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    s = doc["spec"]
    spec = load_spec(path)

    assert spec.source == "katib"
    assert spec.name == doc["metadata"]["name"]
    assert spec.namespace == doc["metadata"].get("namespace")

    obj = s["objective"]
    assert spec.objective.type.value == obj["type"]
    assert spec.objective.metric == obj["objectiveMetricName"]
    assert spec.objective.goal == pytest.approx(float(obj["goal"]))
    assert spec.objective.additional_metrics == tuple(obj.get("additionalMetricNames", []))
    # metricStrategies: as written, otherwise Katib's default from the objective type.
    written = {m["name"]: m["value"] for m in obj.get("metricStrategies", [])}
    default = "min" if obj["type"] == "minimize" else "max"
    for metric in spec.objective.metrics:
        assert spec.objective.strategy(metric).value == written.get(metric, default)

    assert spec.algorithm.name == s["algorithm"]["algorithmName"]
    assert spec.parallel_trial_count == s.get("parallelTrialCount", 3)
    assert spec.max_trial_count == s.get("maxTrialCount")
    assert spec.max_failed_trial_count == s.get("maxFailedTrialCount")
    assert spec.resume_policy == s.get("resumePolicy", "Never")

    assert [p.name for p in spec.parameters] == [p["name"] for p in s["parameters"]]
    for p, raw in zip(spec.parameters, s["parameters"], strict=True):
        fs = raw["feasibleSpace"]
        assert p.type.value == raw["parameterType"]
        assert p.distribution.value == fs.get("distribution", "uniform")
        if p.is_numeric_range:
            # Katib writes numbers as strings; the spec holds numbers.
            for fld in ("min", "max", "step"):
                got = getattr(p, fld)
                if fld in fs:
                    assert isinstance(got, float), (p.name, fld, got)
                    assert got == pytest.approx(float(fs[fld]))
                else:
                    assert got is None

    t = spec.trial_template
    tps = s["trialTemplate"]["trialParameters"]
    assert [(x.name, x.reference, x.description) for x in t.trial_parameters] == [
        (x["name"], x["reference"], x.get("description", "")) for x in tps
    ]
    assert t.primary_container_name == s["trialTemplate"]["primaryContainerName"]
    assert t.manifest == s["trialTemplate"]["trialSpec"]
    assert t.command and all(isinstance(a, str) for a in t.command)
    assert any("${trialParameters." in a for a in t.command)

    # Settings resolve, the spec survives the store, and the search space works end to end.
    search.resolve_settings(spec)
    assert ExperimentSpec.from_json(spec.to_json()) == spec
    suggester = search.create_suggester(spec)
    for sug in suggester.suggest(["a", "b", "c"]):
        for p in spec.parameters:
            v = sug.params[p.name]
            if p.is_numeric_range:
                assert p.min is not None and p.max is not None
                assert p.min <= v <= p.max
                assert isinstance(v, int if p.type is ParameterType.INT else float)


def test_katib_command_joins_command_and_args() -> None:
    spec = load_spec(KATIB_EXAMPLES / "fpga" / "xgboost-example.yaml")
    assert spec.trial_template.command == (
        "python3",
        "XGBoost/parameter-tuning.py",
        "--name=SVHN",
        "--test-size=0.35",
        "--tree-method=fpga_exact",
        "--max-depth=10",
        "--alpha=${trialParameters.alpha}",
        "--eta=${trialParameters.eta}",
        "--subsample=${trialParameters.subsample}",
    )
    assert spec.parameter("alpha").min == 0.0
    assert spec.objective.additional_metrics == ("time",)
    # maximize with no metricStrategies: every metric defaults to max.
    assert spec.objective.strategy("accuracy") is MetricStrategy.MAX
    assert spec.objective.strategy("time") is MetricStrategy.MAX


def test_katib_mpijob_finds_nested_primary_container() -> None:
    spec = load_spec(KATIB_EXAMPLES / "kubeflow-training-operator" / "mpijob-horovod.yaml")
    cmd = spec.trial_template.command
    assert cmd is not None
    assert cmd[0] == "mpirun"
    assert cmd[-4:] == (
        "--lr",
        "${trialParameters.learningRate}",
        "--num-steps",
        "${trialParameters.numberSteps}",
    )
    steps = spec.parameter("num-steps")
    assert (steps.type, steps.min, steps.max, steps.step) == (ParameterType.INT, 50, 150, 10)
    assert spec.parallel_trial_count == 2


def test_katib_hyperopt_distributions() -> None:
    spec = load_spec(KATIB_EXAMPLES / "hp-tuning" / "hyperopt-distribution.yaml")
    p = {x.name: x for x in spec.parameters}
    assert p["lr"].distribution is Distribution.NORMAL
    assert p["lr"].step == pytest.approx(0.01)
    assert p["momentum"].distribution is Distribution.UNIFORM
    assert p["epochs"].distribution is Distribution.LOG_UNIFORM
    assert p["epochs"].type is ParameterType.INT
    assert (p["epochs"].min, p["epochs"].max) == (1, 3)
    assert p["batch_size"].distribution is Distribution.LOG_NORMAL
    assert (p["batch_size"].min, p["batch_size"].max) == (32, 64)


def test_katib_metric_strategies() -> None:
    spec = load_spec(KATIB_EXAMPLES / "metrics-collector" / "metrics-collection-strategy.yaml")
    assert spec.objective.type is Direction.MINIMIZE
    assert spec.objective.strategy("accuracy") is MetricStrategy.MAX  # written, against default
    assert spec.objective.strategy("loss") is MetricStrategy.MIN


def test_katib_collectors() -> None:
    mc = load_spec(KATIB_EXAMPLES / "metrics-collector" / "file-metrics-collector.yaml")
    c = mc.metrics_collector
    assert c.kind is CollectorKind.FILE
    assert c.path == "/katib/mnist.log"
    assert c.format == "TEXT"
    assert c.filters == (r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}",)

    js = load_spec(
        KATIB_EXAMPLES / "metrics-collector" / "file-metrics-collector-with-json-format.yaml"
    )
    assert js.metrics_collector.kind is CollectorKind.FILE
    assert js.metrics_collector.format == "JSON"
    assert js.metrics_collector.path == "/katib/mnist.json"
    assert js.metrics_collector.filters == ()

    xgb = load_spec(KATIB_EXAMPLES / "kubeflow-training-operator" / "xgboostjob-lightgbm.yaml")
    assert xgb.metrics_collector.kind is CollectorKind.STDOUT
    assert xgb.metrics_collector.filters == (r"(\w+\s\w+)\s:\s((-?\d+)(\.\d+)?)",)
    assert xgb.objective.metric == "valid_1 auc"
    assert xgb.objective.additional_metrics == (
        "valid_1 binary_logloss",
        "training auc",
        "training binary_logloss",
    )


def test_katib_resume_policies() -> None:
    fv = load_spec(KATIB_EXAMPLES / "resume-experiment" / "from-volume-resume.yaml")
    lr = load_spec(KATIB_EXAMPLES / "resume-experiment" / "long-running-resume.yaml")
    assert fv.resume_policy == "FromVolume"
    assert lr.resume_policy == "LongRunning"


def test_katib_trial_metadata_substitution() -> None:
    spec = load_spec(KATIB_EXAMPLES / "trial-template" / "trial-metadata-substitution.yaml")
    refs = {tp.name: tp.reference for tp in spec.trial_template.trial_parameters}
    assert refs["learningRate"] == "lr"
    assert refs["trialName"] == "${trialSpec.Name}"
    assert refs["trialLabelCustom"] == "${trialSpec.Labels[custom-key]}"
    assert refs["trialAnnotationCustom"] == "${trialSpec.Annotations[custom-key]}"
    env = spec.trial_template.env
    assert env["TRIAL_NAME"] == "${trialParameters.trialName}"
    assert env["TRIAL_API_VERSION"] == "${trialParameters.trialAPIVersion}"


def test_katib_defaults_when_absent() -> None:
    def strip(d: dict[str, Any]) -> None:
        d["spec"].pop("parallelTrialCount")
        d["spec"].pop("resumePolicy", None)
        d["spec"]["objective"].pop("metricStrategies", None)
        d["spec"]["objective"]["additionalMetricNames"] = ["accuracy"]
        for p in d["spec"]["parameters"]:
            p["feasibleSpace"].pop("distribution", None)

    spec = parse_spec(_katib(strip), base_dir=KATIB_EXAMPLES)
    assert spec.parallel_trial_count == 3
    assert spec.resume_policy == "Never"
    assert all(p.distribution is Distribution.UNIFORM for p in spec.parameters)
    # minimize: loss and the additional metric are both reduced with min.
    assert spec.objective.strategy("loss") is MetricStrategy.MIN
    assert spec.objective.strategy("accuracy") is MetricStrategy.MIN


def test_katib_strings_become_numbers() -> None:
    def add(d: dict[str, Any]) -> None:
        ps = d["spec"]["parameters"]
        ps.append(
            {
                "name": "layers",
                "parameterType": "int",
                "feasibleSpace": {"min": "2", "max": "8", "step": "2"},
            }
        )
        ps.append(
            {
                "name": "batch",
                "parameterType": "discrete",
                "feasibleSpace": {"list": ["16", "32.5", "-2"]},
            }
        )
        ps.append(
            {
                "name": "opt",
                "parameterType": "categorical",
                "feasibleSpace": {"list": ["3", "adam"]},
            }
        )
        d["spec"]["algorithm"] = {
            "algorithmName": "tpe",
            "algorithmSettings": [
                {"name": "gamma", "value": "0.25"},
                {"name": "n_EI_candidates", "value": "12"},
                {"name": "constant_liar", "value": "false"},
                {"name": "random_state", "value": "7"},
            ],
        }

    spec = parse_spec(_katib(add), base_dir=KATIB_EXAMPLES)
    lr = spec.parameter("lr")
    assert (lr.min, lr.max) == (0.01, 0.05)
    layers = spec.parameter("layers")
    assert (layers.min, layers.max, layers.step) == (2, 8, 2)
    batch = spec.parameter("batch")
    assert batch.values == (16, 32.5, -2)
    assert [type(v) for v in batch.values] == [int, float, int]
    # categorical values stay as written: Katib passes them through as strings.
    assert spec.parameter("opt").values == ("3", "adam")
    settings = search.resolve_settings(spec)
    assert settings["gamma"] == 0.25
    assert settings["n_ei_candidates"] == 12  # alias folded into the canonical name
    assert "n_EI_candidates" not in settings
    assert settings["constant_liar"] is False
    assert settings["random_state"] == 7


# ---------------------------------------------------------------------------------------------
# Katib documents rejected for now: a SpecError with a path, never a traceback
# ---------------------------------------------------------------------------------------------


def test_katib_missing_container_names_it() -> None:
    text = (KATIB_EXAMPLES / "hp-tuning" / "random.yaml").read_text()
    text = text.replace(
        "primaryContainerName: training-container", "primaryContainerName: trainer"
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, base_dir=KATIB_EXAMPLES)
    assert any("'trainer'" in i.message for i in info.value.issues), info.value.issues


# ---------------------------------------------------------------------------------------------
# Bad native documents
# ---------------------------------------------------------------------------------------------


def _set_param(name: str, value: Any) -> Any:
    return lambda d: d["parameters"].__setitem__(name, value)


NATIVE_BAD = [
    pytest.param(
        lambda d: d.__setitem__("foo", 1), "foo", ["not a known field"], id="unknown-field"
    ),
    pytest.param(
        lambda d: d["budget"].__setitem__("paralel", 2),
        "budget.paralel",
        ["not a known field"],
        id="unknown-nested-field",
    ),
    pytest.param(
        _set_param("C", {"type": "double", "min": 10, "max": 1}),
        "parameters.C.max",
        ["greater than min", "10", "got 1"],
        id="min-gt-max",
    ),
    pytest.param(
        _set_param("degree", {"type": "int", "min": 5, "max": 2}),
        "parameters.degree.max",
        ["min (5)", "got 2"],
        id="int-min-gt-max",
    ),
    pytest.param(
        _set_param("kernel", []), "parameters.kernel.values", ["non-empty"], id="empty-list"
    ),
    pytest.param(
        _set_param("kernel", {"type": "categorical", "values": []}),
        "parameters.kernel.values",
        ["non-empty"],
        id="empty-categorical",
    ),
    pytest.param(
        _set_param("degree", {"type": "int", "min": 2, "max": 5, "step": 2}),
        "parameters.degree.step",
        ["divide", "(3)", "got 2"],
        id="step-not-dividing",
    ),
    pytest.param(
        _set_param("lr", {"type": "double", "min": 0, "max": 1, "step": 0.3}),
        "parameters.lr.step",
        ["divide", "0.3"],
        id="double-step-not-dividing",
    ),
    pytest.param(
        _set_param("degree", {"type": "int", "min": 2, "max": 5, "step": 7}),
        "parameters.degree.step",
        ["exceed", "got 7"],
        id="step-gt-range",
    ),
    pytest.param(
        _set_param("C", {"type": "double", "min": 0, "max": 1, "log": True}),
        "parameters.C.min",
        ["greater than 0", "logUniform"],
        id="log-min-zero",
    ),
    pytest.param(
        _set_param(
            "C", {"type": "double", "min": 0.1, "max": 1, "log": True, "distribution": "normal"}
        ),
        "parameters.C.log",
        ["contradicts", "normal"],
        id="log-contradicts-distribution",
    ),
    pytest.param(
        _set_param("n", {"type": "int", "min": 1.5, "max": 4}),
        "parameters.n.min",
        ["integer", "1.5"],
        id="int-fractional-bound",
    ),
    pytest.param(
        _set_param("d", {"type": "discrete", "values": [1, "a"]}),
        "parameters.d.values[1]",
        ["number", "'a'"],
        id="discrete-non-number",
    ),
    pytest.param(
        _set_param("k", ["x", "y", "x"]), "parameters.k.values", ["repeat"], id="repeated-value"
    ),
    pytest.param(
        lambda d: d.__setitem__("algorithm", "foo"),
        "algorithm",
        ["'foo'", *search.algorithm_names()],
        id="unknown-algorithm",
    ),
    pytest.param(
        lambda d: d.__setitem__("algorithm", {"name": "tpe", "settings": {"bogus": 1}}),
        "algorithm.settings.bogus",
        ["'tpe'", "n_startup_trials", "gamma", "n_ei_candidates", "random_state"],
        id="unknown-setting",
    ),
    pytest.param(
        lambda d: d.__setitem__("algorithm", {"name": "tpe", "settings": {"gamma": "abc"}}),
        "algorithm.settings.gamma",
        ["number", "'abc'"],
        id="bad-setting-type",
    ),
    pytest.param(
        lambda d: d.__setitem__("algorithm", {"name": "tpe", "settings": {"gamma": 1.5}}),
        "algorithm.settings.gamma",
        ["(0, 1)", "1.5"],
        id="bad-setting-range",
    ),
    pytest.param(
        lambda d: d.__setitem__("algorithm", {"name": "cmaes", "settings": {"popsize": 1}}),
        "algorithm.settings.popsize",
        ["[2, 100000]", "1"],
        id="bad-cmaes-popsize",
    ),
    pytest.param(
        lambda d: d["budget"].__setitem__("parallel", 30),
        "budget.parallel",
        ["maximum number of trials", "(24)", "got 30"],
        id="parallel-gt-max-trials",
    ),
    pytest.param(
        lambda d: d["budget"].__setitem__("parallel", 0),
        "budget.parallel",
        ["at least 1", "got 0"],
        id="parallel-zero",
    ),
    pytest.param(
        lambda d: d["budget"].__setitem__("max_failed", 30),
        "budget.max_failed",
        ["(24)", "got 30"],
        id="max-failed-gt-max-trials",
    ),
    pytest.param(
        lambda d: d["objective"].__setitem__("additional_metrics", ["accuracy"]),
        "objective.additional_metrics",
        ["objective metric", "'accuracy'"],
        id="additional-contains-objective",
    ),
    pytest.param(
        lambda d: d["objective"].__setitem__("strategies", {"recall": "max"}),
        "objective.strategies.recall",
        ["neither", "accuracy"],
        id="strategy-for-unknown-metric",
    ),
    pytest.param(
        lambda d: d["trial"].__setitem__("command", ["python", "train.py", "${nope}"]),
        "trial.command",
        ["${nope}", "not a parameter", "'C'"],
        id="unknown-placeholder",
    ),
    pytest.param(
        lambda d: d["trial"].__setitem__("command", "python train.py"),
        "trial.command",
        ["list", "'python train.py'"],
        id="command-string",
    ),
    pytest.param(
        lambda d: d["trial"].__setitem__("workdir", "/nonexistent/dir"),
        "trial.workdir",
        ["existing directory", "/nonexistent/dir"],
        id="missing-workdir",
    ),
    pytest.param(
        lambda d: d.__setitem__("metrics", {"filters": ["([a-z]+"]}),
        "metrics.filters[0]",
        ["regex", "'([a-z]+'"],
        id="bad-regex",
    ),
    pytest.param(
        lambda d: d.__setitem__("metrics", {"filters": ["(\\w+)=.*"]}),
        "metrics.filters[0]",
        ["two groups"],
        id="regex-one-group",
    ),
    pytest.param(
        lambda d: d.__setitem__("metrics", {"collector": "file"}),
        "metrics.path",
        ["required"],
        id="file-collector-needs-path",
    ),
    pytest.param(
        lambda d: d.__setitem__("name", "Bad Name"),
        "name",
        ["lower-case", "'Bad Name'"],
        id="bad-name",
    ),
    pytest.param(
        lambda d: d.__setitem__("seed", -1), "seed", ["[0, 4294967295]", "-1"], id="negative-seed"
    ),
    pytest.param(
        lambda d: d["objective"].__setitem__("direction", "up"),
        "objective.direction",
        ["'up'", "minimize", "maximize"],
        id="bad-direction",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "words"), NATIVE_BAD)
def test_native_bad_input(mutate: Any, path: str, words: list[str]) -> None:
    issues = _errors(_native(mutate))
    issue = _issue_at(issues, path)
    for w in words:
        assert w in issue.message, (w, issue)


@pytest.mark.parametrize(
    ("value", "path", "word"),
    [
        (
            {"type": "double", "min": 0.1, "max": 1, "lo": 3},
            "parameters.C.lo",
            "not a known field",
        ),
        ({"type": "float", "min": 0.1, "max": 1}, "parameters.C.type", "'float'"),
    ],
)
def test_native_bad_parameter_field_path(value: dict[str, Any], path: str, word: str) -> None:
    issues = _errors(_native(_set_param("C", value)))
    assert [i.path for i in issues] == [path], issues
    assert word in issues[0].message


def test_native_malformed_yaml_has_line_and_column() -> None:
    text = "name: x\nobjective:\n  metric: m\n   direction: minimize\n"
    issues = _errors(text)
    assert len(issues) == 1
    assert "malformed YAML" in issues[0].message
    assert "line 4" in issues[0].message
    assert "column" in issues[0].message


@pytest.mark.parametrize(
    ("text", "word"),
    [("", "empty"), ("- a\n- b\n", "mapping"), ("just a string\n", "mapping")],
)
def test_not_a_mapping(text: str, word: str) -> None:
    issues = _errors(text)
    assert word in issues[0].message


def test_native_missing_required_fields() -> None:
    issues = _errors("name: x\nparameters: {a: [1, 2]}\n")
    paths = {i.path for i in issues}
    assert {"objective", "trial"} <= paths
    assert all(i.message.startswith("is required") for i in issues if i.path in paths)
    # With several objectives possible, the message says what else would do.
    assert any("objectives" in i.message for i in issues if i.path == "objective")


def test_native_collects_several_issues() -> None:
    def two(d: dict[str, Any]) -> None:
        d["parameters"]["C"] = {"type": "double", "min": 10, "max": 1}
        d["budget"]["parallel"] = 30

    issues = _errors(_native(two))
    assert len(issues) >= 2
    paths = {i.path for i in issues}
    assert {"parameters.C.max", "budget.parallel"} <= paths


def test_load_spec_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Bad Katib documents
# ---------------------------------------------------------------------------------------------


def _fs(i: int, **kw: Any) -> Any:
    return lambda d: d["spec"]["parameters"][i]["feasibleSpace"].update(kw)


def _spec_set(**kw: Any) -> Any:
    return lambda d: d["spec"].update(kw)


KATIB_BAD = [
    pytest.param(_spec_set(foo=1), "spec.foo", ["not a known field"], id="unknown-field"),
    pytest.param(
        _fs(1, foo=1),
        "spec.parameters[1].feasibleSpace.foo",
        ["not a known field"],
        id="unknown-feasible-space-field",
    ),
    pytest.param(
        _fs(1, min="0.9", max="0.5"),
        "spec.parameters[1].feasibleSpace.max",
        ["greater than min", "0.9", "got 0.5"],
        id="min-gt-max",
    ),
    pytest.param(
        _fs(0, min="abc"),
        "spec.parameters[0].feasibleSpace.min",
        ["number", "'abc'"],
        id="min-not-a-number",
    ),
    pytest.param(
        lambda d: d["spec"]["parameters"].append(
            {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": []}}
        ),
        "spec.parameters[2].feasibleSpace.list",
        ["non-empty"],
        id="empty-list",
    ),
    pytest.param(
        _fs(0, step="0.03"),
        "spec.parameters[0].feasibleSpace.step",
        ["divide", "0.03"],
        id="step-not-dividing",
    ),
    pytest.param(
        _fs(0, step="0.5"),
        "spec.parameters[0].feasibleSpace.step",
        ["exceed", "0.5"],
        id="step-gt-range",
    ),
    pytest.param(
        _fs(0, distribution="gauss"),
        "spec.parameters[0].feasibleSpace.distribution",
        ["'gauss'", "logNormal"],
        id="bad-distribution",
    ),
    pytest.param(
        lambda d: d["spec"]["parameters"].append(
            {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1.5", "max": "4"}}
        ),
        "spec.parameters[2].feasibleSpace.min",
        ["integer", "1.5"],
        id="int-fractional-bound",
    ),
    pytest.param(
        lambda d: d["spec"]["algorithm"].update(algorithmName="annealing"),
        "spec.algorithm.algorithmName",
        ["'hyperband'", *search.algorithm_names()],
        id="unknown-algorithm",
    ),
    pytest.param(
        lambda d: d["spec"]["algorithm"].update(
            algorithmSettings=[{"name": "bogus", "value": "1"}]
        ),
        "spec.algorithm.algorithmSettings[name=bogus]",
        ["'random'", "random_state"],
        id="unknown-setting",
    ),
    pytest.param(
        lambda d: d["spec"]["algorithm"].update(
            algorithmName="tpe", algorithmSettings=[{"name": "gamma", "value": "abc"}]
        ),
        "spec.algorithm.algorithmSettings[name=gamma]",
        ["number", "'abc'"],
        id="bad-setting-value",
    ),
    pytest.param(
        lambda d: d["spec"]["algorithm"].update(
            algorithmName="tpe", algorithmSettings=[{"name": "n_startup_trials", "value": "-1"}]
        ),
        "spec.algorithm.algorithmSettings[name=n_startup_trials]",
        [">= 0", "'-1'"],
        id="negative-setting",
    ),
    pytest.param(
        _spec_set(parallelTrialCount=20),
        "spec.parallelTrialCount",
        ["(12)", "got 20"],
        id="parallel-gt-max-trials",
    ),
    pytest.param(
        lambda d: d["metadata"].update(name="Bad_Name"),
        "metadata.name",
        ["^[a-z]([-a-z0-9]*[a-z0-9])?$", "'Bad_Name'"],
        id="name-pattern",
    ),
    pytest.param(
        lambda d: d["metadata"].update(name="1abc"),
        "metadata.name",
        ["'1abc'"],
        id="name-starts-with-digit",
    ),
    pytest.param(
        lambda d: d["metadata"].update(name="a" * 41),
        "metadata.name",
        ["40"],
        id="name-too-long",
    ),
    pytest.param(
        lambda d: d["spec"]["objective"].update(additionalMetricNames=["acc", "loss"]),
        "spec.objective.additionalMetricNames",
        ["objective metric", "'loss'"],
        id="additional-contains-objective",
    ),
    pytest.param(
        lambda d: d["spec"]["objective"].update(
            metricStrategies=[{"name": "loss", "value": "avg"}]
        ),
        "spec.objective.metricStrategies[0].value",
        ["latest", "'avg'"],
        id="bad-metric-strategy",
    ),
    pytest.param(
        lambda d: d["spec"]["trialTemplate"]["trialParameters"][0].update(reference="nope"),
        "spec.trialTemplate.trialParameters[0].reference",
        ["'nope'", "'lr'"],
        id="unknown-reference",
    ),
    pytest.param(
        _spec_set(metricsCollectorSpec={"source": {"filter": {"metricsFormat": ["([a-z]+"]}}}),
        "spec.metricsCollectorSpec.source.filter.metricsFormat[0]",
        ["regex", "'([a-z]+'"],
        id="bad-metrics-format",
    ),
    pytest.param(
        _spec_set(metricsCollectorSpec={"collector": {"kind": "Prometheus"}}),
        "spec.metricsCollectorSpec.collector.kind",
        ["'Prometheus'"],
        id="unsupported-collector",
    ),
    pytest.param(
        lambda d: d.update(apiVersion="kubeflow.org/v1"),
        "apiVersion",
        ["kubeflow.org/v1beta1", "'kubeflow.org/v1'"],
        id="wrong-api-version",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "words"), KATIB_BAD)
def test_katib_bad_input(mutate: Any, path: str, words: list[str]) -> None:
    issues = _errors(_katib(mutate), base_dir=KATIB_EXAMPLES)
    issue = _issue_at(issues, path)
    for w in words:
        assert w in issue.message, (w, issue)


def test_katib_unknown_placeholder() -> None:
    text = (KATIB_EXAMPLES / "hp-tuning" / "random.yaml").read_text()
    text = text.replace("${trialParameters.momentum}", "${trialParameters.nope}")
    issues = _errors(text, base_dir=KATIB_EXAMPLES)
    hits = [i for i in issues if "${trialParameters.nope}" in i.message]
    assert len(hits) == 1, issues
    assert hits[0].path.startswith("spec.trialTemplate")
    assert "'learningRate'" in hits[0].message  # lists the known trial parameters


def test_katib_malformed_yaml_has_line_and_column() -> None:
    text = (KATIB_EXAMPLES / "hp-tuning" / "random.yaml").read_text()
    lines = text.splitlines()
    n = next(i for i, line in enumerate(lines) if "parameterType: double" in line)
    lines[n] = lines[n].replace("double", "[double")
    issues = _errors("\n".join(lines) + "\n", base_dir=KATIB_EXAMPLES)
    assert len(issues) == 1
    msg = issues[0].message
    assert "malformed YAML" in msg
    assert "line " in msg and "column " in msg
    line_no = int(msg.split("line ")[1].split(",")[0])
    assert n + 1 <= line_no <= n + 3  # at or right after the broken line


def test_katib_collects_several_issues() -> None:
    def two(d: dict[str, Any]) -> None:
        d["spec"]["parallelTrialCount"] = 20
        d["spec"]["parameters"][1]["feasibleSpace"].update(min="0.9", max="0.5")

    issues = _errors(_katib(two), base_dir=KATIB_EXAMPLES)
    assert len(issues) >= 2
    assert {"spec.parallelTrialCount", "spec.parameters[1].feasibleSpace.max"} <= {
        i.path for i in issues
    }


# ---------------------------------------------------------------------------------------------
# validate_spec on a built spec
# ---------------------------------------------------------------------------------------------


def _spec(**kw: Any) -> ExperimentSpec:
    base: dict[str, Any] = {
        "name": "built",
        "objective": Objective(type=Direction.MINIMIZE, metric="loss"),
        "parameters": (Parameter(name="x", type=ParameterType.DOUBLE, min=0, max=1),),
        "source": "python",
    }
    base.update(kw)
    return ExperimentSpec(**base)


def test_validate_spec_accepts_valid() -> None:
    spec = _spec()
    assert validate_spec(spec) is spec


def test_validate_spec_collects_every_issue() -> None:
    spec = _spec(
        parameters=(
            Parameter(name="x", type=ParameterType.DOUBLE, min=1, max=0),
            Parameter(name="k", type=ParameterType.CATEGORICAL, values=()),
        ),
        parallel_trial_count=5,
        max_trial_count=2,
        name="Not Valid",
    )
    with pytest.raises(SpecError) as info:
        validate_spec(spec)
    issues = info.value.issues
    assert len(issues) >= 4
    paths = {i.path for i in issues}
    assert {"parameters[0].max", "parameters[1].values", "parallel_trial_count", "name"} <= paths
    # The exception text lists every issue, one per line, as "path: message".
    assert str(info.value).count("\n") == len(issues) - 1
    assert str(info.value).splitlines()[0] == str(issues[0])


def test_with_budget_validates() -> None:
    spec = _spec(max_trial_count=10)
    assert spec.with_budget(max_trial_count=20, parallel_trial_count=4).max_trial_count == 20
    with pytest.raises(SpecError) as info:
        spec.with_budget(parallel_trial_count=11)
    assert info.value.path == "parallel_trial_count"


# ---------------------------------------------------------------------------------------------
# Python helpers (automl.int / double / categorical / discrete)
# ---------------------------------------------------------------------------------------------


def test_python_parameter_helpers() -> None:
    d = automl.double(1e-3, 1.0, log=True)
    assert (d.type, d.distribution) == (ParameterType.DOUBLE, Distribution.LOG_UNIFORM)
    i = automl.int(1, 9, step=2, distribution="normal")
    assert (i.type, i.step, i.distribution) == (ParameterType.INT, 2, Distribution.NORMAL)
    c = automl.categorical(["a", 1, True])
    assert c.values == ("a", 1, True)
    assert automl.discrete([0.1, 1, 10]).type is ParameterType.DISCRETE
    with pytest.raises(SpecError) as info:
        automl.double(0.1, 1.0, log=True, distribution="normal")
    assert info.value.path == "distribution"
    with pytest.raises(SpecError) as info:
        automl.double(0.1, 1.0, distribution="gaussian")
    assert "'gaussian'" in str(info.value)


def test_tune_reports_bad_arguments_by_name(sqlite_url: str) -> None:
    def f(x: float) -> float:
        return x

    with pytest.raises(SpecError) as info:
        automl.tune(
            f,
            {"x": automl.double(5, 1)},
            algorithm="nope",
            max_trials=2,
            parallel_trials=3,
            store=sqlite_url,
        )
    paths = {i.path for i in info.value.issues}
    assert {"parameters.x.max", "algorithm", "parallel_trials"} <= paths
