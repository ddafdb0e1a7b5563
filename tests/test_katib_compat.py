"""Katib v1beta1 compatibility of the spec layer: every field, defaults, rules and rendering.

Covers the 20 real Katib example files, one test per Katib validation rule (field path, rule and
value in the message), ``${trialSpec.*}`` substitution, per-kind defaults, every metrics
collector, ``nasConfig`` and the ENAS/DARTS settings, and three Katib files written here that use
fields the examples do not (TFJob, XGBoostJob, Custom/PrometheusMetric/TensorFlowEvent collectors).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl.core import CollectorKind, ExperimentSpec, MetricStrategy, validate_spec
from automl.errors import SpecError, SpecIssue
from automl.spec import load_spec, parse_spec
from automl.spec._katib import DEFAULT_CONDITIONS, DEFAULT_POD_LABELS, trial_metadata
from automl.spec._render import RenderedTrial, render_trials, resolved_spec_dict
from search._nas_settings import NAS_ALGORITHMS, resolve_nas_settings
from tests.conftest import KATIB_EXAMPLES
from trials import render_command

EXAMPLES = sorted(KATIB_EXAMPLES.glob("*/*.yaml"))

# Every example file is accepted. Katib's webhook would refuse the Tekton one (it never writes
# ${trialParameters.learningRate} in its trialSpec: "parameter name: learningRate in
# spec.trialParameters not found in spec.trialTemplate"); automl accepts it as written because
# such trials cannot run locally anyway (BLOCKED below; docs/katib-compatibility.md).

# Example files whose trials cannot run as a local process: file -> words of the reason.
BLOCKED = {
    "argo/argo-workflow.yaml": ["Argo Workflow", "executor: kubernetes"],
    "tekton/pipeline-run.yaml": ["Tekton PipelineRun", "executor: kubernetes"],
    "fpga/xgboost-example.yaml": ["'xilinx/aws-vu9p-f1'", "FPGA", "executor: kubernetes"],
    "trial-template/trial-configmap-source.yaml": [
        "ConfigMap",
        "kubeflow/trial-templates",
        "executor: kubernetes",
    ],
    "kubeflow-training-operator/mpijob-horovod.yaml": ["MPIJob", "mpirun", "executor: kubernetes"],
    "kubeflow-training-operator/xgboostjob-lightgbm.yaml": [
        "'xgboost'",
        "args but no command",
        "executor: kubernetes",
    ],
}

TRIAL_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def _rel(p: Path) -> str:
    return p.relative_to(KATIB_EXAMPLES).as_posix()


def _issues(text: str, base_dir: Path = KATIB_EXAMPLES) -> tuple[SpecIssue, ...]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, base_dir=base_dir)
    assert info.value.issues
    return info.value.issues


def _issue_at(issues: tuple[SpecIssue, ...], path: str) -> SpecIssue:
    for i in issues:
        if i.path == path:
            return i
    raise AssertionError(f"no issue at {path!r}; got {[str(i) for i in issues]}")


def _doc(rel: str = "hp-tuning/random.yaml") -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((KATIB_EXAMPLES / rel).read_text())
    return doc


def _text(mutate: Callable[[dict[str, Any]], Any], rel: str = "hp-tuning/random.yaml") -> str:
    d = _doc(rel)
    mutate(d)
    return yaml.safe_dump(d, sort_keys=False)


def _no_placeholders(trials: list[RenderedTrial]) -> None:
    blob = json.dumps([[t.argv, dict(t.env), t.manifest] for t in trials])
    assert "${trialParameters." not in blob
    assert "${trialSpec." not in blob


# ---------------------------------------------------------------------------------------------
# The 20 example files
# ---------------------------------------------------------------------------------------------


def test_twenty_examples() -> None:
    assert len(EXAMPLES) == 20
    rels = {_rel(p) for p in EXAMPLES}
    assert set(BLOCKED) <= rels


@pytest.mark.parametrize("path", EXAMPLES, ids=_rel)
def test_example_parses_validates_and_renders(path: Path) -> None:
    rel = _rel(path)
    spec = load_spec(path)
    doc = yaml.safe_load(path.read_text())
    assert spec.source == "katib" and spec.name == doc["metadata"]["name"]
    if spec.nas_config is None:
        validate_spec(spec)  # NAS: see test_nas_spec_passes_the_core_rules
    assert ExperimentSpec.from_json(spec.to_json()) == spec
    t = spec.trial_template

    # local_blocker exactly for the trials that cannot run as a local process
    if rel in BLOCKED:
        assert t.local_blocker is not None, rel
        for w in BLOCKED[rel]:
            assert w in t.local_blocker, (w, t.local_blocker)
    else:
        assert t.local_blocker is None, (rel, t.local_blocker)
        assert t.command and any("${trialParameters." in a for a in t.command)

    # NAS examples keep nasConfig and no parameters
    if "nasConfig" in doc["spec"]:
        assert spec.nas_config is not None and not spec.parameters
        assert spec.algorithm.name in NAS_ALGORITHMS

    trials = render_trials(spec, 2)
    assert len(trials) == 2
    _no_placeholders(trials)
    names = [r.name for r in trials]
    assert len(set(names)) == 2
    for r in trials:
        assert re.fullmatch(rf"{re.escape(spec.name)}-[{TRIAL_NAME_CHARS}]{{8}}", r.name)
        if "trialSpec" in doc["spec"]["trialTemplate"]:
            assert r.manifest is not None
            assert r.manifest["metadata"]["name"] == r.name
            assert r.manifest["metadata"]["namespace"] == doc["metadata"].get(
                "namespace", "default"
            )
            assert r.manifest["kind"] == doc["spec"]["trialTemplate"]["trialSpec"]["kind"]
        else:
            assert r.manifest is None and r.argv is None
        if t.command is not None:
            assert r.argv is not None and len(r.argv) == len(t.command)
        for p in spec.parameters:
            assert p.name in r.params
    json.dumps(resolved_spec_dict(spec))


def test_tekton_as_katib_writes_it_runs_on_kubernetes_only() -> None:
    # The example with its learning rate wired the way Katib substitutes it.
    def fix(d: dict[str, Any]) -> None:
        run = d["spec"]["trialTemplate"]["trialSpec"]["spec"]
        run["params"][0] = {"name": "lr", "value": "${trialParameters.learningRate}"}
        step = run["pipelineSpec"]["tasks"][1]["taskSpec"]["steps"][0]
        step["command"][-1] = "--lr=$(params.lr)"

    spec = parse_spec(_text(fix, "tekton/pipeline-run.yaml"), base_dir=KATIB_EXAMPLES)
    t = spec.trial_template
    assert t.local_blocker is not None and "Tekton PipelineRun" in t.local_blocker
    assert t.command is not None and t.command[-1] == "--lr=$(params.lr)"  # step-model-training
    assert t.primary_pod_labels == {"tekton.dev/pipelineTask": "model-training"}
    (r,) = render_trials(spec, 1)
    assert r.manifest is not None
    lr = r.manifest["spec"]["params"][0]["value"]
    assert float(lr) == r.params["lr"]
    _no_placeholders([r])


def test_argo_primary_container_is_the_labelled_template() -> None:
    spec = load_spec(KATIB_EXAMPLES / "argo" / "argo-workflow.yaml")
    t = spec.trial_template
    assert t.command is not None and t.command[:2] == ("python3", "/opt/pytorch-mnist/mnist.py")
    assert t.primary_pod_labels == {"katib.kubeflow.org/model-training": "true"}
    assert t.success_condition == 'status.[@this].#(phase=="Succeeded")#'
    assert t.retain is True
    (r,) = render_trials(spec, 1)
    assert r.manifest is not None
    args = r.manifest["spec"]["templates"][2]["container"]["command"]
    assert f"--lr={r.params['lr']!r}" in args
    assert "--epochs={{inputs.parameters.epochs}}" in args  # Argo's own syntax stays


def test_trainjob_and_configmap_examples() -> None:
    tj = load_spec(KATIB_EXAMPLES / "kubeflow-trainer" / "trainjob-pytorch.yaml")
    assert tj.trial_template.command is not None
    assert tj.trial_template.command[:2] == ("python3", "/opt/pytorch-mnist/mnist.py")
    assert tj.trial_template.resources.workers == 2  # trainer.numNodes: two processes locally
    cm = load_spec(KATIB_EXAMPLES / "trial-template" / "trial-configmap-source.yaml")
    assert cm.trial_template.config_map == {
        "configMapName": "trial-templates",
        "configMapNamespace": "kubeflow",
        "templatePath": "defaultTrialTemplate.yaml",
    }
    assert cm.trial_template.command is None and cm.trial_template.manifest is None


# ---------------------------------------------------------------------------------------------
# Katib's validation rules: one test each (path, rule and value in the message)
# ---------------------------------------------------------------------------------------------


def _spec_set(**kw: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["spec"].update(kw)


def _fs(i: int, **kw: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["spec"]["parameters"][i]["feasibleSpace"].update(kw)


def _tp(i: int, **kw: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["spec"]["trialTemplate"]["trialParameters"][i].update(kw)


def _tt(**kw: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["spec"]["trialTemplate"].update(kw)


def _ts(mutate: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    return lambda d: mutate(d["spec"]["trialTemplate"]["trialSpec"])


def _mcs(mcs: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return _spec_set(metricsCollectorSpec=mcs)


def _pop(d: dict[str, Any], *keys: str) -> None:
    for k in keys[:-1]:
        d = d[k]
    d.pop(keys[-1])


def _alg(name: str, **settings: str) -> Callable[[dict[str, Any]], None]:
    return _spec_set(
        algorithm={
            "algorithmName": name,
            "algorithmSettings": [{"name": k, "value": v} for k, v in settings.items()],
        }
    )


def _add_param(p: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["spec"]["parameters"].append(p)


def _container(d: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return c


RULES = [
    # metadata and objective
    pytest.param(
        lambda d: d["metadata"].update(name="Bad.Name"),
        "metadata.name",
        ["^[a-z]([-a-z0-9]*[a-z0-9])?$", "'Bad.Name'"],
        id="name-pattern",
    ),
    pytest.param(
        lambda d: d["metadata"].update(name="a" * 41),
        "metadata.name",
        ["at most 40", "41 characters"],
        id="name-length",
    ),
    pytest.param(
        lambda d: d["spec"]["objective"].update(type="maximise"),
        "spec.objective.type",
        ["minimize or maximize", "'maximise'"],
        id="objective-type",
    ),
    pytest.param(
        lambda d: _pop(d, "spec", "objective", "type"),
        "spec.objective.type",
        ["required"],
        id="objective-type-missing",
    ),
    pytest.param(
        lambda d: d["spec"]["objective"].update(objectiveMetricName=""),
        "spec.objective.objectiveMetricName",
        ["required", "''"],
        id="objective-metric-missing",
    ),
    pytest.param(
        lambda d: d["spec"]["objective"].update(additionalMetricNames=["acc", "loss"]),
        "spec.objective.additionalMetricNames",
        ["objective metric", "'loss'", "['acc', 'loss']"],
        id="additional-contains-objective",
    ),
    pytest.param(
        lambda d: d["spec"]["objective"].update(
            metricStrategies=[{"name": "loss", "value": "mean"}]
        ),
        "spec.objective.metricStrategies[0].value",
        ["min, max or latest", "'mean'"],
        id="metric-strategy-value",
    ),
    pytest.param(
        lambda d: d["spec"]["algorithm"].update(algorithmName=""),
        "spec.algorithm.algorithmName",
        ["required"],
        id="algorithm-missing",
    ),
    pytest.param(
        lambda d: d["spec"]["algorithm"].update(algorithmName="annealing"),
        "spec.algorithm.algorithmName",
        ["'annealing'", "'random'"],
        id="algorithm-unknown",
    ),
    # parameters xor nasConfig
    pytest.param(
        _spec_set(nasConfig=_doc("nas/enas-cpu.yaml")["spec"]["nasConfig"]),
        "spec",
        ["exactly one of parameters or nasConfig", "both"],
        id="parameters-and-nasconfig",
    ),
    pytest.param(
        lambda d: _pop(d, "spec", "parameters"),
        "spec",
        ["exactly one of parameters or nasConfig", "neither"],
        id="neither-parameters-nor-nasconfig",
    ),
    # budgets
    pytest.param(
        _spec_set(parallelTrialCount=0),
        "spec.parallelTrialCount",
        ["at least 1", "got 0"],
        id="parallel-zero",
    ),
    pytest.param(
        _spec_set(parallelTrialCount=13),
        "spec.parallelTrialCount",
        ["must not exceed", "(12)", "got 13"],
        id="parallel-gt-max",
    ),
    pytest.param(
        _spec_set(maxTrialCount=0, parallelTrialCount=1, maxFailedTrialCount=0),
        "spec.maxTrialCount",
        ["at least 1", "got 0"],
        id="max-trials-zero",
    ),
    pytest.param(
        _spec_set(maxFailedTrialCount=-1),
        "spec.maxFailedTrialCount",
        ["0 or more", "got -1"],
        id="max-failed-negative",
    ),
    pytest.param(
        _spec_set(maxFailedTrialCount=13),
        "spec.maxFailedTrialCount",
        ["must not exceed", "(12)", "got 13"],
        id="max-failed-gt-max",
    ),
    # parameters
    pytest.param(
        lambda d: d["spec"]["parameters"][0].update(parameterType="float"),
        "spec.parameters[0].parameterType",
        ["int, double, categorical or discrete", "'float'"],
        id="parameter-type",
    ),
    pytest.param(
        _fs(0, list=["0.1", "0.2"]),
        "spec.parameters[0].feasibleSpace.list",
        ["not allowed for double", "['0.1', '0.2']"],
        id="list-for-double",
    ),
    pytest.param(
        _add_param(
            {
                "name": "opt",
                "parameterType": "categorical",
                "feasibleSpace": {"list": ["sgd"], "min": "1"},
            }
        ),
        "spec.parameters[2].feasibleSpace.min",
        ["not allowed for categorical", "'1'"],
        id="min-for-categorical",
    ),
    pytest.param(
        _add_param({"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1"}}),
        "spec.parameters[2].feasibleSpace.max",
        ["required", "int"],
        id="int-without-max",
    ),
    pytest.param(
        _add_param({"name": "n", "parameterType": "int", "feasibleSpace": {}}),
        "spec.parameters[2].feasibleSpace",
        ["required"],
        id="empty-feasible-space",
    ),
    pytest.param(
        _add_param({"name": "opt", "parameterType": "discrete", "feasibleSpace": {"list": []}}),
        "spec.parameters[2].feasibleSpace.list",
        ["non-empty"],
        id="empty-list",
    ),
    pytest.param(
        _fs(1, min="0.9", max="0.5"),
        "spec.parameters[1].feasibleSpace.max",
        ["greater than min", "0.9", "got 0.5"],
        id="min-gt-max",
    ),
    pytest.param(
        _fs(0, distribution="gaussian"),
        "spec.parameters[0].feasibleSpace.distribution",
        ["logNormal", "'gaussian'"],
        id="distribution",
    ),
    # trialParameters
    pytest.param(
        _tp(1, name=""),
        "spec.trialTemplate.trialParameters[1].name",
        ["required"],
        id="trial-parameter-name-missing",
    ),
    pytest.param(
        _tp(1, reference=""),
        "spec.trialTemplate.trialParameters[1].reference",
        ["required"],
        id="trial-parameter-reference-missing",
    ),
    pytest.param(
        _tp(1, name="mo{m}"),
        "spec.trialTemplate.trialParameters[1].name",
        ["'{' or '}'", "'mo{m}'"],
        id="trial-parameter-braces",
    ),
    pytest.param(
        _tp(1, name="learningRate"),
        "spec.trialTemplate.trialParameters[1].name",
        ["unique", "'learningRate'"],
        id="trial-parameter-duplicate-name",
    ),
    pytest.param(
        _tp(1, reference="lr"),
        "spec.trialTemplate.trialParameters[1].reference",
        ["unique", "'lr'"],
        id="trial-parameter-duplicate-reference",
    ),
    pytest.param(
        _tp(1, reference="momentun"),
        "spec.trialTemplate.trialParameters[1].reference",
        ["must name a parameter", "['lr', 'momentum']", "${trialSpec.Name}", "'momentun'"],
        id="trial-parameter-bad-reference",
    ),
    pytest.param(
        _tp(1, reference="${trialSpec.Uid}"),
        "spec.trialTemplate.trialParameters[1].reference",
        ["trial metadata", "'${trialSpec.Uid}'"],
        id="trial-parameter-bad-metadata-reference",
    ),
    pytest.param(
        lambda d: d["spec"]["trialTemplate"]["trialParameters"].append(
            {"name": "unused", "reference": "${trialSpec.Name}"}
        ),
        "spec.trialTemplate.trialParameters[2].name",
        ["'unused'", "never used", "${trialParameters.unused}"],
        id="trial-parameter-unused",
    ),
    pytest.param(
        _ts(
            lambda m: _container({"spec": {"trialTemplate": {"trialSpec": m}}})["command"].append(
                "--x=${trialParameters.batchSize}"
            )
        ),
        "spec.trialTemplate.trialSpec",
        ["${trialParameters.batchSize}", "not in trialParameters", "'learningRate'"],
        id="placeholder-without-trial-parameter",
    ),
    pytest.param(
        _ts(
            lambda m: _container({"spec": {"trialTemplate": {"trialSpec": m}}})["command"].append(
                "--x=${trialSpec.Uid}"
            )
        ),
        "spec.trialTemplate.trialSpec",
        ["${trialSpec.Uid}", "not trial metadata"],
        id="placeholder-bad-metadata",
    ),
    pytest.param(
        _tt(trialParameters=None),
        "spec.trialTemplate.trialParameters",
        ["required"],
        id="trial-parameters-missing",
    ),
    # template
    pytest.param(
        _ts(lambda m: m.pop("apiVersion")),
        "spec.trialTemplate.trialSpec.apiVersion",
        ["required"],
        id="template-api-version",
    ),
    pytest.param(
        _ts(lambda m: m.pop("kind")),
        "spec.trialTemplate.trialSpec.kind",
        ["required"],
        id="template-kind",
    ),
    pytest.param(
        _ts(lambda m: m.update(metadata={"name": "fixed"})),
        "spec.trialTemplate.trialSpec.metadata.name",
        ["must not be set", "'fixed'"],
        id="template-metadata-name",
    ),
    pytest.param(
        _ts(lambda m: m.update(metadata={"namespace": "team-a"})),
        "spec.trialTemplate.trialSpec.metadata.namespace",
        ["must not be set", "'team-a'"],
        id="template-metadata-namespace",
    ),
    pytest.param(
        _tt(configMap={"configMapName": "t", "configMapNamespace": "k", "templatePath": "p"}),
        "spec.trialTemplate",
        ["exactly one of trialSpec or configMap", "both"],
        id="trial-spec-and-configmap",
    ),
    pytest.param(
        _tt(trialSpec=None),
        "spec.trialTemplate",
        ["exactly one of trialSpec or configMap", "neither"],
        id="neither-trial-spec-nor-configmap",
    ),
    pytest.param(
        _tt(
            trialSpec=None,
            configMap={"configMapName": "t", "configMapNamespace": "k"},
            successCondition="a",
            failureCondition="b",
        ),
        "spec.trialTemplate.configMap.templatePath",
        ["required", "None"],
        id="configmap-template-path",
    ),
    pytest.param(
        _tt(primaryContainerName=""),
        "spec.trialTemplate.primaryContainerName",
        ["required"],
        id="primary-container-name",
    ),
    pytest.param(
        _tt(primaryContainerName="trainer"),
        "spec.trialTemplate.trialSpec",
        ["no container named 'trainer'"],
        id="primary-container-missing",
    ),
    pytest.param(
        _ts(lambda m: m.update(apiVersion="ray.io/v1", kind="RayJob")),
        "spec.trialTemplate.successCondition",
        ["required for kind 'RayJob'", "TrainJob"],
        id="conditions-required-for-other-kinds",
    ),
    # metrics collector
    pytest.param(
        _mcs({"collector": {"kind": "Prometheus"}}),
        "spec.metricsCollectorSpec.collector.kind",
        ["PrometheusMetric", "'Prometheus'"],
        id="collector-kind",
    ),
    pytest.param(
        _mcs({"source": {"filter": {"metricsFormat": ["([a-z]+"]}}}),
        "spec.metricsCollectorSpec.source.filter.metricsFormat[0]",
        ["regex", "'([a-z]+'"],
        id="filter-does-not-compile",
    ),
    pytest.param(
        _mcs({"source": {"filter": {"metricsFormat": ["loss=([0-9.]+)"]}}}),
        "spec.metricsCollectorSpec.source.filter.metricsFormat[0]",
        ["two groups", "'loss=([0-9.]+)'"],
        id="filter-one-group",
    ),
    pytest.param(
        _mcs(
            {
                "collector": {"kind": "File"},
                "source": {
                    "fileSystemPath": {"path": "/m.json", "kind": "File", "format": "JSON"},
                    "filter": {"metricsFormat": ["(\\w+)=(\\d+)"]},
                },
            }
        ),
        "spec.metricsCollectorSpec.source.filter",
        ["must not be set", "JSON", "['(\\\\w+)=(\\\\d+)']"],
        id="filter-with-json",
    ),
    pytest.param(
        _mcs(
            {
                "collector": {"kind": "File"},
                "source": {"fileSystemPath": {"path": "/m.log", "kind": "Directory"}},
            }
        ),
        "spec.metricsCollectorSpec.source.fileSystemPath.kind",
        ["must be File", "'Directory'"],
        id="file-kind-directory",
    ),
    pytest.param(
        _mcs({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "m.log"}}}),
        "spec.metricsCollectorSpec.source.fileSystemPath.path",
        ["absolute", "'m.log'"],
        id="file-relative-path",
    ),
    pytest.param(
        _mcs(
            {
                "collector": {"kind": "File"},
                "source": {"fileSystemPath": {"path": "/m.log", "format": "CSV"}},
            }
        ),
        "spec.metricsCollectorSpec.source.fileSystemPath.format",
        ["TEXT or JSON", "'CSV'"],
        id="file-format",
    ),
    pytest.param(
        _mcs(
            {
                "collector": {"kind": "TensorFlowEvent"},
                "source": {"fileSystemPath": {"path": "/tb", "format": "TEXT"}},
            }
        ),
        "spec.metricsCollectorSpec.source.fileSystemPath.format",
        ["must be empty", "TensorFlowEvent", "'TEXT'"],
        id="tfevent-format",
    ),
    pytest.param(
        _mcs(
            {
                "collector": {"kind": "TensorFlowEvent"},
                "source": {"fileSystemPath": {"path": "/tb/ev.0", "kind": "File"}},
            }
        ),
        "spec.metricsCollectorSpec.source.fileSystemPath.kind",
        ["must be Directory", "'File'"],
        id="tfevent-kind-file",
    ),
    pytest.param(
        _mcs({"collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"port": "http"}}}),
        "spec.metricsCollectorSpec.source.httpGet.port",
        ["positive integer", "'http'"],
        id="prometheus-port",
    ),
    pytest.param(
        _mcs({"collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"path": "m"}}}),
        "spec.metricsCollectorSpec.source.httpGet.path",
        ["start with '/'", "'m'"],
        id="prometheus-path",
    ),
    pytest.param(
        _mcs({"collector": {"kind": "Custom"}}),
        "spec.metricsCollectorSpec.collector.customCollector",
        ["required", "Custom"],
        id="custom-without-collector",
    ),
    pytest.param(
        _mcs(
            {
                "collector": {"kind": "Custom", "customCollector": {"name": "c", "image": "i"}},
                "source": {"fileSystemPath": {"path": "/out", "kind": "Socket"}},
            }
        ),
        "spec.metricsCollectorSpec.source.fileSystemPath.kind",
        ["File or Directory", "'Socket'"],
        id="custom-path-kind",
    ),
    pytest.param(
        _spec_set(resumePolicy="Always"),
        "spec.resumePolicy",
        ["Never, LongRunning or FromVolume", "'Always'"],
        id="resume-policy",
    ),
    # algorithm-specific rules
    pytest.param(
        _alg("grid"),
        "spec.parameters[0].feasibleSpace.step",
        ["double parameter", "grid"],
        id="grid-double-without-step",
    ),
    pytest.param(
        lambda d: (
            _alg("grid")(d),
            _fs(0, step="0.01")(d),
            _fs(1, step="0.2")(d),
            d["spec"].update(maxTrialCount=20, parallelTrialCount=2),
        ),
        "spec.maxTrialCount",
        ["grid combinations (15)", "got 20"],
        id="grid-max-trials-gt-combinations",
    ),
    pytest.param(
        lambda d: (_alg("cmaes")(d), d["spec"]["parameters"].pop()),
        "spec.parameters",
        ["cmaes needs at least 2", "got 1"],
        id="cmaes-two-numeric-parameters",
    ),
    pytest.param(
        _alg("hyperband", r_l="9", resource_name="epochs"),
        "spec.algorithm.algorithmSettings[name=resource_name]",
        ["must name a parameter", "'epochs'"],
        id="hyperband-resource-parameter",
    ),
    pytest.param(
        _alg("hyperband", resource_name="lr"),
        "spec.algorithm.algorithmSettings[name=r_l]",
        ["required by hyperband"],
        id="hyperband-r-l-required",
    ),
    pytest.param(
        _alg("hyperband", r_l="9", resource_name="lr"),
        "spec.parallelTrialCount",
        ["eta^floor(log(r_l)/log(eta)) = 9", "got 3"],
        id="hyperband-parallelism",
    ),
    pytest.param(
        _alg("pbt", suggestion_trial_dir="/tmp/x", truncation_threshold="0.2"),
        "spec.algorithm.algorithmSettings[name=n_population]",
        ["required by pbt"],
        id="pbt-required-settings",
    ),
    pytest.param(
        _alg("tpe", gamma="1.5"),
        "spec.algorithm.algorithmSettings[name=gamma]",
        ["(0, 1)", "'1.5'"],
        id="algorithm-setting-value",
    ),
    # early stopping
    pytest.param(
        _spec_set(
            earlyStopping={
                "algorithmName": "medianstop",
                "algorithmSettings": [{"name": "start_step", "value": "0"}],
            }
        ),
        "spec.earlyStopping.algorithmSettings[name=start_step]",
        [">= 1", "'0'"],
        id="early-stopping-setting",
    ),
    pytest.param(
        _spec_set(
            earlyStopping={
                "algorithmName": "medianstop",
                "algorithmSettings": [{"name": "min_trials", "value": "3"}],
            }
        ),
        "spec.earlyStopping.algorithmSettings[name=min_trials]",
        ["not a setting of 'medianstop'", "min_trials_required"],
        id="early-stopping-unknown-setting",
    ),
    pytest.param(
        _spec_set(earlyStopping={"algorithmName": "meanstop"}),
        "spec.earlyStopping.algorithmName",
        ["'meanstop'", "medianstop"],
        id="early-stopping-unknown-rule",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "words"), RULES)
def test_katib_rule(mutate: Callable[[dict[str, Any]], Any], path: str, words: list[str]) -> None:
    issue = _issue_at(_issues(_text(mutate)), path)
    for w in words:
        assert w in issue.message, (w, str(issue))


def test_several_problems_are_reported_together() -> None:
    def many(d: dict[str, Any]) -> None:
        d["metadata"]["name"] = "Bad"
        d["spec"]["objective"]["type"] = "up"
        d["spec"]["parallelTrialCount"] = 20
        d["spec"]["parameters"][1]["feasibleSpace"].update(min="0.9", max="0.5")
        d["spec"]["trialTemplate"]["trialParameters"][1]["reference"] = "nope"
        d["spec"]["resumePolicy"] = "Sometimes"

    paths = {i.path for i in _issues(_text(many))}
    assert {
        "metadata.name",
        "spec.objective.type",
        "spec.parallelTrialCount",
        "spec.parameters[1].feasibleSpace.max",
        "spec.trialTemplate.trialParameters[1].reference",
        "spec.resumePolicy",
    } <= paths


def test_parameter_paths_survive_a_parameter_that_cannot_be_built() -> None:
    def two(d: dict[str, Any]) -> None:
        d["spec"]["parameters"][0]["parameterType"] = "real"
        d["spec"]["parameters"][1]["feasibleSpace"].update(min="0.9", max="0.5")

    issues = _issues(_text(two))
    _issue_at(issues, "spec.parameters[0].parameterType")
    _issue_at(issues, "spec.parameters[1].feasibleSpace.max")  # not shifted to [0]


def test_no_core_duplicate_of_a_katib_rule() -> None:
    text = (KATIB_EXAMPLES / "hp-tuning" / "random.yaml").read_text()
    text = text.replace("${trialParameters.momentum}", "${trialParameters.nope}")
    issues = _issues(text)
    assert len([i for i in issues if "${trialParameters.nope}" in i.message]) == 1
    unused = [i for i in issues if i.path == "spec.trialTemplate.trialParameters[1].name"]
    assert len(unused) == 1 and "'momentum'" in unused[0].message


# ---------------------------------------------------------------------------------------------
# Substitution
# ---------------------------------------------------------------------------------------------

META_TRIAL = {
    "apiVersion": "kubeflow.org/v1beta1",
    "kind": "Experiment",
    "metadata": {"name": "meta", "namespace": "team-a"},
    "spec": {
        "objective": {"type": "maximize", "objectiveMetricName": "acc"},
        "algorithm": {"algorithmName": "random"},
        "parameters": [
            {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "1"}}
        ],
        "trialTemplate": {
            "primaryContainerName": "main",
            "trialParameters": [
                {"name": "lr", "reference": "lr"},
                {"name": "n", "reference": "${trialSpec.Name}"},
                {"name": "ns", "reference": "${trialSpec.Namespace}"},
                {"name": "k", "reference": "${trialSpec.Kind}"},
                {"name": "av", "reference": "${trialSpec.APIVersion}"},
                {"name": "lab", "reference": "${trialSpec.Labels[team]}"},
                {"name": "ann", "reference": "${trialSpec.Annotations[owner]}"},
            ],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"labels": {"team": "vision"}, "annotations": {"owner": "ada"}},
                "spec": {
                    "template": {
                        "metadata": {"labels": {"trial": "${trialParameters.n}"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "python:3.12",
                                    "command": [
                                        "python",
                                        "t.py",
                                        "--lr=${trialParameters.lr}",
                                        "--name=${trialParameters.n}",
                                        "--ns=${trialParameters.ns}",
                                    ],
                                    "env": [
                                        {"name": "KIND", "value": "${trialParameters.k}"},
                                        {"name": "API", "value": "${trialParameters.av}"},
                                        {"name": "TEAM", "value": "${trialParameters.lab}"},
                                        {"name": "OWNER", "value": "${trialParameters.ann}"},
                                        {"name": "DIRECT", "value": "${trialSpec.Name}"},
                                    ],
                                }
                            ],
                            "restartPolicy": "Never",
                        },
                    }
                },
            },
        },
    },
}


def test_trial_spec_substitution_forms() -> None:
    spec = parse_spec(yaml.safe_dump(META_TRIAL))
    (r,) = render_trials(spec, 1)
    assert r.name.startswith("meta-")
    assert r.argv is not None
    assert r.argv[2:] == [f"--lr={r.params['lr']!r}", f"--name={r.name}", "--ns=team-a"]
    assert dict(r.env) == {
        "KIND": "Job",
        "API": "batch/v1",
        "TEAM": "vision",
        "OWNER": "ada",
        "DIRECT": r.name,
    }
    m = r.manifest
    assert m is not None
    assert m["metadata"] == {
        "labels": {"team": "vision"},
        "annotations": {"owner": "ada"},
        "name": r.name,
        "namespace": "team-a",
    }
    assert m["spec"]["template"]["metadata"]["labels"] == {"trial": r.name}
    env = {e["name"]: e["value"] for e in m["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == dict(r.env)


def test_trial_metadata_feeds_render_command_with_labels_and_annotations() -> None:
    spec = parse_spec(yaml.safe_dump(META_TRIAL))
    meta = trial_metadata(spec.trial_template.manifest, "meta-abc", "team-a")
    assert meta["Labels[team]"] == "vision" and meta["Annotations[owner]"] == "ada"
    _, env = render_command(spec.trial_template, {"lr": 0.5}, meta)
    assert env["TEAM"] == "vision" and env["OWNER"] == "ada" and env["DIRECT"] == "meta-abc"


def test_metadata_substitution_example_env() -> None:
    spec = load_spec(KATIB_EXAMPLES / "trial-template" / "trial-metadata-substitution.yaml")
    (r,) = render_trials(spec, 1)
    assert r.env["TRIAL_NAME"] == r.name
    assert r.env["TRIAL_NAMESPACE"] == "kubeflow"
    assert r.env["TRIAL_KIND"] == "Job"
    assert r.env["TRIAL_API_VERSION"] == "batch/v1"
    assert r.env["TRIAL_LABEL_CUSTOM"] == "custom-label"
    assert r.env["TRIAL_ANNOTATION_CUSTOM"] == "custom-annotation"


def test_sh_c_values_stay_quoted_in_argv() -> None:
    def shell(d: dict[str, Any]) -> None:
        c = _container(d)
        c["command"] = ["sh", "-c"]
        c["args"] = [
            "python3 t.py --lr=${trialParameters.learningRate} "
            "--momentum=${trialParameters.momentum}"
        ]

    spec = parse_spec(_text(shell))
    assert spec.trial_template.shell_script_index == 2
    (r,) = render_trials(spec, 1)
    assert r.argv is not None and r.argv[:2] == ["sh", "-c"]
    # The value travels in the environment; the script only references it (docs/spec.md).
    assert '--lr="${AUTOML_P_learningRate}"' in r.argv[2]
    assert r.env["AUTOML_P_learningRate"] == repr(r.params["lr"])


# ---------------------------------------------------------------------------------------------
# Per-kind defaults: primaryPodLabels, successCondition, failureCondition
# ---------------------------------------------------------------------------------------------

KINDS = [
    ("batch/v1", "Job"),
    ("kubeflow.org/v1", "TFJob"),
    ("kubeflow.org/v1", "PyTorchJob"),
    ("kubeflow.org/v1", "XGBoostJob"),
    ("kubeflow.org/v1", "MPIJob"),
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"),
]


@pytest.mark.parametrize(("api", "kind"), KINDS, ids=[k for _, k in KINDS])
def test_defaults_per_kind(api: str, kind: str) -> None:
    spec = parse_spec(_text(_ts(lambda m: m.update(apiVersion=api, kind=kind))))
    t = spec.trial_template
    if kind in ("Job", "TrainJob"):
        assert t.success_condition == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    else:
        assert t.success_condition == 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
    assert t.failure_condition == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    assert (t.success_condition, t.failure_condition) == DEFAULT_CONDITIONS[kind]
    if kind == "Job":
        assert t.primary_pod_labels is None  # every pod of the trial
    elif kind == "TrainJob":
        assert t.primary_pod_labels == {
            "jobset.sigs.k8s.io/replicatedjob-name": "node",
            "batch.kubernetes.io/job-completion-index": "0",
        }
    else:
        assert t.primary_pod_labels == {"training.kubeflow.org/job-role": "master"}
        assert t.primary_pod_labels == DEFAULT_POD_LABELS[kind]


def test_written_conditions_and_labels_win() -> None:
    spec = load_spec(KATIB_EXAMPLES / "kubeflow-training-operator" / "mpijob-horovod.yaml")
    assert spec.trial_template.primary_pod_labels == {"mpi-job-role": "launcher"}
    custom = parse_spec(
        _text(
            lambda d: (
                _ts(lambda m: m.update(apiVersion="ray.io/v1", kind="RayJob"))(d),
                _tt(successCondition="status.jobStatus", failureCondition="status.failed")(d),
            )
        )
    )
    t = custom.trial_template
    assert (t.success_condition, t.failure_condition) == ("status.jobStatus", "status.failed")
    assert t.primary_pod_labels is None and t.local_blocker is None


# ---------------------------------------------------------------------------------------------
# Metrics collectors
# ---------------------------------------------------------------------------------------------


def _collector(mcs: dict[str, Any] | None) -> Any:
    spec = parse_spec(_text(_mcs(mcs) if mcs is not None else lambda d: None))
    return spec.metrics_collector


def test_collector_stdout_is_the_default() -> None:
    mc = _collector(None)
    assert mc.kind is CollectorKind.STDOUT and mc.format == "TEXT" and mc.filters == ()


def test_collector_file_defaults() -> None:
    mc = _collector({"collector": {"kind": "File"}})
    assert (mc.kind, mc.path, mc.format) == (
        CollectorKind.FILE,
        "/var/log/katib/metrics.log",
        "TEXT",
    )
    js = _collector(
        {
            "collector": {"kind": "File"},
            "source": {"fileSystemPath": {"path": "/a.json", "format": "JSON"}},
        }
    )
    assert (js.path, js.format) == ("/a.json", "JSON")


def test_collector_tensorflow_event() -> None:
    mc = _collector({"collector": {"kind": "TensorFlowEvent"}})
    assert mc.kind is CollectorKind.TENSORFLOW_EVENT and mc.path == "/var/log/katib/tfevent/"
    d = _collector(
        {
            "collector": {"kind": "TensorFlowEvent"},
            "source": {"fileSystemPath": {"path": "/tb/logs", "kind": "Directory"}},
        }
    )
    assert (d.path, d.path_kind) == ("/tb/logs", "Directory")


def test_collector_prometheus_defaults() -> None:
    mc = _collector({"collector": {"kind": "PrometheusMetric"}})
    assert mc.kind is CollectorKind.PROMETHEUS
    assert mc.http_get == {"path": "/metrics", "port": 8080}
    mc = _collector(
        {
            "collector": {"kind": "PrometheusMetric"},
            "source": {"httpGet": {"path": "/m", "port": "9090", "scheme": "HTTP"}},
        }
    )
    assert mc.http_get == {"path": "/m", "port": 9090, "scheme": "HTTP"}


def test_collector_custom() -> None:
    container = {"name": "collector", "image": "me/collector:1", "command": ["collect"]}
    mc = _collector(
        {
            "collector": {"kind": "Custom", "customCollector": container},
            "source": {"fileSystemPath": {"path": "/out", "kind": "Directory"}},
        }
    )
    assert mc.kind is CollectorKind.CUSTOM
    assert mc.custom_collector == container
    assert (mc.path, mc.path_kind) == ("/out", "Directory")


@pytest.mark.parametrize("kind", ["Push", "None"])
def test_collector_push_and_legacy_none(kind: str) -> None:
    assert _collector({"collector": {"kind": kind}}).kind is CollectorKind.PUSH


# ---------------------------------------------------------------------------------------------
# nasConfig and the ENAS / DARTS settings
# ---------------------------------------------------------------------------------------------


def _nas(mutate: Callable[[dict[str, Any]], Any], rel: str = "nas/enas-cpu.yaml") -> str:
    return _text(mutate, rel)


def _op(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: d["spec"]["nasConfig"]["operations"][i]


NAS_RULES = [
    pytest.param(
        lambda d: d["spec"]["nasConfig"]["graphConfig"].pop("inputSizes"),
        "nas/enas-cpu.yaml",
        "spec.nasConfig.graphConfig.inputSizes",
        ["required by enas"],
        id="enas-input-sizes",
    ),
    pytest.param(
        lambda d: d["spec"]["nasConfig"]["graphConfig"].update(numLayers=0),
        "nas/enas-cpu.yaml",
        "spec.nasConfig.graphConfig.numLayers",
        [">= 1", "got 0"],
        id="num-layers",
    ),
    pytest.param(
        lambda d: d["spec"]["nasConfig"]["graphConfig"].update(outputSizes=[]),
        "nas/enas-cpu.yaml",
        "spec.nasConfig.graphConfig.outputSizes",
        ["non-empty list", "[]"],
        id="output-sizes-empty",
    ),
    pytest.param(
        lambda d: _op(0)(d).update(operationType="dilated_convolution"),
        "nas/enas-cpu.yaml",
        "spec.nasConfig.operations[0].operationType",
        ["enas's operations", "'dilated_convolution'"],
        id="enas-operation-type",
    ),
    pytest.param(
        lambda d: _op(0)(d).pop("parameters"),
        "nas/enas-cpu.yaml",
        "spec.nasConfig.operations[0].parameters",
        ["at least one parameter", "'convolution'"],
        id="operation-without-parameters",
    ),
    pytest.param(
        lambda d: _op(3)(d)["parameters"][1]["feasibleSpace"].pop("step"),
        "nas/enas-cpu.yaml",
        "spec.nasConfig.operations[3].parameters[1].feasibleSpace.step",
        ["required for an int parameter of an ENAS operation"],
        id="enas-int-step",
    ),
    pytest.param(
        lambda d: _op(3)(d)["parameters"][1]["feasibleSpace"].update(min="4", max="3"),
        "nas/enas-cpu.yaml",
        "spec.nasConfig.operations[3].parameters[1].feasibleSpace.max",
        ["greater than or equal to min", "got 3"],
        id="operation-parameter-min-gt-max",
    ),
    pytest.param(
        lambda d: _op(3)(d)["parameters"].append(
            {"name": "rate", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
        ),
        "nas/enas-cpu.yaml",
        "spec.nasConfig.operations[3].parameters[2].feasibleSpace.step",
        ["> 0 for a double parameter", "None"],
        id="double-step",
    ),
    pytest.param(
        lambda d: _op(0)(d)["parameters"][0].update(parameterType="float"),
        "nas/enas-cpu.yaml",
        "spec.nasConfig.operations[0].parameters[0].parameterType",
        ["'float'"],
        id="operation-parameter-type",
    ),
    pytest.param(
        lambda d: _op(1)(d)["parameters"][0].update(
            parameterType="int", feasibleSpace={"min": "3", "max": "5"}
        ),
        "nas/darts-gpu.yaml",
        "spec.nasConfig.operations[1].parameters[0].parameterType",
        ["categorical for DARTS", "'int'"],
        id="darts-filter-size-categorical",
    ),
    pytest.param(
        lambda d: d["spec"]["trialTemplate"]["trialParameters"][0].update(reference="arch"),
        "nas/enas-cpu.yaml",
        "spec.trialTemplate.trialParameters[0].reference",
        ["a value enas assigns", "['architecture', 'nn_config']", "'arch'"],
        id="nas-reference",
    ),
    pytest.param(
        lambda d: d["spec"]["algorithm"].update(algorithmName="hyperband"),
        "nas/enas-cpu.yaml",
        "spec.algorithm.algorithmName",
        ["cannot search an architecture space", "'hyperband'"],
        id="nasconfig-algorithm-cannot-search-architectures",
    ),
    pytest.param(
        lambda d: (
            d["spec"].pop("nasConfig"),
            d["spec"].update(parameters=_doc()["spec"]["parameters"]),
        ),
        "nas/enas-cpu.yaml",
        "spec.nasConfig",
        ["required", "'enas'"],
        id="nas-algorithm-needs-nasconfig",
    ),
]


@pytest.mark.parametrize(("mutate", "rel", "path", "words"), NAS_RULES)
def test_nas_config_rule(
    mutate: Callable[[dict[str, Any]], Any], rel: str, path: str, words: list[str]
) -> None:
    issue = _issue_at(_issues(_nas(mutate, rel)), path)
    for w in words:
        assert w in issue.message, (w, str(issue))


def _with_settings(rel: str, **settings: str) -> str:
    return _nas(
        lambda d: d["spec"]["algorithm"].update(
            algorithmSettings=[{"name": k, "value": v} for k, v in settings.items()]
        ),
        rel,
    )


NAS_SETTINGS_BAD = [
    ("nas/enas-cpu.yaml", "controller_hidden_size", "0", "an integer >= 1"),
    ("nas/enas-cpu.yaml", "controller_hidden_size", "None", "an integer >= 1"),
    ("nas/enas-cpu.yaml", "controller_temperature", "0", 'a number > 0 or "None"'),
    ("nas/enas-cpu.yaml", "controller_temperature", "hot", 'a number > 0 or "None"'),
    ("nas/enas-cpu.yaml", "controller_baseline_decay", "1.5", "a number in (0, 1]"),
    ("nas/enas-cpu.yaml", "controller_learning_rate", "0", "a number in (0, 1]"),
    ("nas/enas-cpu.yaml", "controller_train_steps", "2.5", "an integer >= 1"),
    ("nas/enas-cpu.yaml", "controller_bogus", "1", "not a setting of 'enas'"),
    ("nas/darts-gpu.yaml", "num_epochs", "0", "an integer > 0"),
    ("nas/darts-gpu.yaml", "w_lr", "-0.1", "a number >= 0"),
    ("nas/darts-gpu.yaml", "batch_size", "0", 'an integer >= 1 or "None"'),
    ("nas/darts-gpu.yaml", "num_workers", "-1", "an integer >= 0"),
    ("nas/darts-gpu.yaml", "stem_multiplier", "0", "an integer >= 1"),
    ("nas/darts-gpu.yaml", "epochs", "3", "not a setting of 'darts'"),
]


@pytest.mark.parametrize(
    ("rel", "name", "value", "rule"),
    NAS_SETTINGS_BAD,
    ids=[f"{r.split('/')[1].split('-')[0]}-{n}-{v}" for r, n, v, _ in NAS_SETTINGS_BAD],
)
def test_nas_setting_rejected(rel: str, name: str, value: str, rule: str) -> None:
    issue = _issue_at(
        _issues(_with_settings(rel, **{name: value})),
        f"spec.algorithm.algorithmSettings[name={name}]",
    )
    assert rule in issue.message
    if "not a setting" not in rule:
        assert repr(value) in issue.message


def test_nas_settings_defaults_and_none() -> None:
    spec = parse_spec(
        _with_settings(
            "nas/enas-cpu.yaml",
            controller_temperature="None",
            controller_skip_weight="None",
            controller_hidden_size="100",
            controller_learning_rate="1",
        )
    )
    s = resolve_nas_settings(spec)
    assert s["controller_temperature"] is None and s["controller_skip_weight"] is None
    assert s["controller_hidden_size"] == 100 and s["controller_learning_rate"] == 1.0
    assert s["controller_tanh_const"] == 2.25 and s["controller_train_steps"] == 50
    darts = load_spec(KATIB_EXAMPLES / "nas" / "darts-gpu.yaml")
    ds = resolved_spec_dict(darts)["algorithm"]["settings"]
    assert ds["num_epochs"] == 3 and ds["w_lr"] == 0.025 and ds["stem_multiplier"] == 3
    none_batch = parse_spec(_with_settings("nas/darts-gpu.yaml", batch_size="None"))
    assert resolve_nas_settings(none_batch)["batch_size"] is None


@pytest.mark.parametrize("rel", ["nas/darts-gpu.yaml", "nas/enas-cpu.yaml"])
def test_nas_spec_passes_the_core_rules(rel: str) -> None:
    spec = load_spec(KATIB_EXAMPLES / rel)
    validate_spec(spec)
    spec.with_budget(max_trial_count=5)  # budget edits re-validate with the core rules


def test_nas_algorithms_are_not_runnable() -> None:
    import search

    assert not set(NAS_ALGORITHMS) & set(search.ALGORITHMS)


def test_darts_render_is_katibs_assignment() -> None:
    spec = load_spec(KATIB_EXAMPLES / "nas" / "darts-gpu.yaml")
    assert spec.nas_config is not None
    assert spec.nas_config["graphConfig"] == {"numLayers": 3}
    a, b = render_trials(spec, 2)
    assert a.params == b.params  # DARTS assigns the same to every trial
    assert a.params["num-layers"] == "3"
    assert a.params["search-space"] == (
        "['separable_convolution_3x3', 'dilated_convolution_3x3', 'dilated_convolution_5x5', "
        "'avg_pooling_3x3', 'max_pooling_3x3', 'skip_connection']"
    )
    settings = str(a.params["algorithm-settings"])
    assert settings.startswith("{'num_epochs': '3', 'w_lr': 0.025,")
    assert a.argv is not None and a.argv[-1] == '--num-layers="3"'


def test_enas_render_follows_katibs_format() -> None:
    def three_layers(d: dict[str, Any]) -> None:
        d["spec"]["nasConfig"]["graphConfig"]["numLayers"] = 3
        d["spec"]["parallelTrialCount"] = 2

    spec = parse_spec(_nas(three_layers)).model_copy(update={"seed": 7})
    trials = render_trials(spec, 2)
    assert [r.name for r in trials] == [r.name for r in render_trials(spec, 2)]  # seeded
    for r in trials:
        arc = json.loads(str(r.params["architecture"]))
        assert [len(layer) for layer in arc] == [1, 2, 3]
        assert all(x in (0, 1) for layer in arc for x in layer[1:])
        cfg = json.loads(str(r.params["nn_config"]).replace("'", '"'))
        assert cfg["num_layers"] == 3 and cfg["input_sizes"] == [32, 32, 3]
        assert set(cfg["embedding"]) == {str(layer[0]) for layer in arc}
        for op in cfg["embedding"].values():
            assert op["opt_type"] in NAS_ALGORITHMS["enas"].operation_types


# ---------------------------------------------------------------------------------------------
# Rendering and the resolved spec
# ---------------------------------------------------------------------------------------------


def test_render_grid_gives_what_the_grid_has() -> None:
    def small_grid(d: dict[str, Any]) -> None:
        d["spec"]["algorithm"] = {"algorithmName": "grid"}
        d["spec"]["parameters"] = [
            {"name": "lr", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}},
            {
                "name": "momentum",
                "parameterType": "int",
                "feasibleSpace": {"min": "1", "max": "1"},
            },
        ]
        d["spec"].update(maxTrialCount=2, parallelTrialCount=2, maxFailedTrialCount=1)

    spec = parse_spec(_text(small_grid))
    trials = render_trials(spec, 5)
    assert sorted(str(r.params["lr"]) for r in trials) == ["a", "b"]


def test_render_pbt_leaves_no_checkpoint_dirs(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    spec = parse_spec(
        _text(
            _alg(
                "pbt",
                suggestion_trial_dir=str(target),
                n_population="5",
                truncation_threshold="0.2",
            )
        )
    )
    assert len(render_trials(spec, 3)) == 3
    assert not target.exists()


def test_resolved_spec_dict_fills_defaults() -> None:
    spec = load_spec(KATIB_EXAMPLES / "early-stopping" / "median-stop.yaml")
    d = resolved_spec_dict(spec)
    json.dumps(d)
    assert d["parallel_trial_count"] == 2
    assert d["objective"]["strategies"] == {"loss": "min"}
    assert d["early_stopping"] == {
        "name": "medianstop",
        "settings": {"min_trials_required": 1, "start_step": 2},
    }
    assert d["trial_template"]["success_condition"] == DEFAULT_CONDITIONS["Job"][0]
    tpe = resolved_spec_dict(load_spec(KATIB_EXAMPLES / "hp-tuning" / "tpe.yaml"))
    assert tpe["algorithm"]["settings"]["n_ei_candidates"] == 24


def test_metric_strategy_defaults_follow_the_objective_type() -> None:
    spec = load_spec(KATIB_EXAMPLES / "kubeflow-training-operator" / "xgboostjob-lightgbm.yaml")
    assert all(spec.objective.strategy(m) is MetricStrategy.MAX for m in spec.objective.metrics)
    d = resolved_spec_dict(spec)
    assert d["objective"]["strategies"] == {m: "max" for m in spec.objective.metrics}


# ---------------------------------------------------------------------------------------------
# Katib files the examples do not have
# ---------------------------------------------------------------------------------------------

TFJOB_PROMETHEUS = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: tfjob-prometheus
spec:
  objective:
    type: maximize
    objectiveMetricName: accuracy
    additionalMetricNames: [loss]
    metricStrategies:
      - {name: loss, value: latest}
  algorithm:
    algorithmName: grid
  maxTrialCount: 6
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.1", max: "0.3", step: "0.1"}
    - name: optimizer
      parameterType: categorical
      feasibleSpace:
        list: [sgd, adam]
  metricsCollectorSpec:
    collector:
      kind: PrometheusMetric
  trialTemplate:
    primaryContainerName: tensorflow
    trialParameters:
      - {name: learningRate, reference: lr}
      - {name: optimizer, reference: optimizer}
      - {name: trialName, reference: "${trialSpec.Name}"}
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: TFJob
      spec:
        tfReplicaSpecs:
          Chief:
            replicas: 1
            restartPolicy: OnFailure
            template:
              spec:
                containers:
                  - name: tensorflow
                    image: example.com/tf-train:1
                    command: [python, /app/train.py]
                    args:
                      - --lr=${trialParameters.learningRate}
                      - --optimizer=${trialParameters.optimizer}
                      - --run=${trialParameters.trialName}
                    ports:
                      - {containerPort: 8080, name: metrics}
"""

XGBOOST_CUSTOM = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: xgb-custom
  namespace: ml
spec:
  objective:
    type: minimize
    goal: 0.1
    objectiveMetricName: rmse
  algorithm:
    algorithmName: multivariate-tpe
    algorithmSettings:
      - {name: n_startup_trials, value: "5"}
      - {name: random_state, value: "3"}
  earlyStopping:
    algorithmName: medianstop
    algorithmSettings:
      - {name: min_trials_required, value: "2"}
  parallelTrialCount: 2
  maxTrialCount: 8
  maxFailedTrialCount: 2
  resumePolicy: LongRunning
  parameters:
    - name: max_depth
      parameterType: int
      feasibleSpace: {min: "2", max: "10"}
    - name: eta
      parameterType: double
      feasibleSpace: {min: "0.001", max: "0.3", distribution: logUniform}
    - name: subsample
      parameterType: discrete
      feasibleSpace:
        list: ["0.5", "0.75", "1.0"]
  metricsCollectorSpec:
    collector:
      kind: Custom
      customCollector:
        name: rmse-collector
        image: example.com/collector:1
        command: [collect, --dir, /out]
    source:
      fileSystemPath: {path: /out, kind: Directory}
  trialTemplate:
    retain: true
    primaryContainerName: xgboost
    trialParameters:
      - {name: depth, reference: max_depth, description: Tree depth}
      - {name: eta, reference: eta}
      - {name: subsample, reference: subsample}
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: XGBoostJob
      spec:
        xgbReplicaSpecs:
          Master:
            replicas: 1
            restartPolicy: Never
            template:
              spec:
                containers:
                  - name: xgboost
                    image: example.com/xgb:1
                    command: [python, train.py]
                    args:
                      - --max_depth=${trialParameters.depth}
                      - --eta=${trialParameters.eta}
                      - --subsample=${trialParameters.subsample}
"""

PYTORCH_TFEVENT_HYPERBAND = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: pytorch-tfevent-hb
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: hyperband
    algorithmSettings:
      - {name: resource_name, value: epochs}
      - {name: r_l, value: "9"}
      - {name: eta, value: "3"}
  parallelTrialCount: 9
  metricsCollectorSpec:
    collector:
      kind: TensorFlowEvent
    source:
      fileSystemPath: {path: /logs/tb, kind: Directory}
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.001", max: "0.1"}
    - name: epochs
      parameterType: int
      feasibleSpace: {min: "1", max: "9"}
  trialTemplate:
    primaryContainerName: pytorch
    trialParameters:
      - {name: lr, reference: lr}
      - {name: epochs, reference: epochs}
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: PyTorchJob
      spec:
        pytorchReplicaSpecs:
          Master:
            replicas: 1
            template:
              spec:
                containers:
                  - name: pytorch
                    image: example.com/torch:1
                    command: [sh, -c]
                    args:
                      - >-
                        python train.py --lr=${trialParameters.lr}
                        --epochs=${trialParameters.epochs} --logdir=/logs/tb
                    resources:
                      limits: {nvidia.com/gpu: 1}
"""


def test_own_tfjob_with_prometheus_and_grid() -> None:
    spec = parse_spec(TFJOB_PROMETHEUS)
    t = spec.trial_template
    assert spec.parallel_trial_count == 3 and spec.resume_policy == "Never"
    assert spec.objective.strategy("loss") is MetricStrategy.LATEST
    assert spec.objective.strategy("accuracy") is MetricStrategy.MAX
    assert spec.metrics_collector.kind is CollectorKind.PROMETHEUS
    assert spec.metrics_collector.http_get == {"path": "/metrics", "port": 8080}
    assert t.primary_pod_labels == {"training.kubeflow.org/job-role": "master"}
    assert t.success_condition == DEFAULT_CONDITIONS["TFJob"][0]
    assert t.local_blocker is None
    assert t.command == (
        "python",
        "/app/train.py",
        "--lr=${trialParameters.learningRate}",
        "--optimizer=${trialParameters.optimizer}",
        "--run=${trialParameters.trialName}",
    )
    trials = render_trials(spec, 6)
    assert len(trials) == 6
    _no_placeholders(trials)
    combos = {(r.params["lr"], r.params["optimizer"]) for r in trials}
    assert combos == {(lr, o) for lr in (0.1, 0.2, 0.3) for o in ("sgd", "adam")}
    for r in trials:
        assert r.argv is not None and r.argv[-1] == f"--run={r.name}"
        assert r.manifest is not None and r.manifest["metadata"]["namespace"] == "default"
    # one more trial than the grid has is Katib's error
    with pytest.raises(SpecError) as info:
        parse_spec(TFJOB_PROMETHEUS.replace("maxTrialCount: 6", "maxTrialCount: 7"))
    assert "grid combinations (6)" in _issue_at(info.value.issues, "spec.maxTrialCount").message


def test_own_xgboostjob_with_custom_collector_and_early_stopping() -> None:
    spec = parse_spec(XGBOOST_CUSTOM)
    t = spec.trial_template
    assert t.local_blocker is None and t.retain is True
    assert t.command == (
        "python",
        "train.py",
        "--max_depth=${trialParameters.depth}",
        "--eta=${trialParameters.eta}",
        "--subsample=${trialParameters.subsample}",
    )
    assert t.primary_pod_labels == {"training.kubeflow.org/job-role": "master"}
    assert (t.success_condition, t.failure_condition) == DEFAULT_CONDITIONS["XGBoostJob"]
    mc = spec.metrics_collector
    assert mc.kind is CollectorKind.CUSTOM and mc.custom_collector is not None
    assert mc.custom_collector["image"] == "example.com/collector:1"
    assert (mc.path, mc.path_kind) == ("/out", "Directory")
    assert spec.early_stopping is not None and spec.early_stopping.name == "medianstop"
    assert spec.resume_policy == "LongRunning" and spec.namespace == "ml"
    assert spec.parameter("subsample").values == (0.5, 0.75, 1.0)
    trials = render_trials(spec, 2)
    _no_placeholders(trials)
    for r in trials:
        assert r.manifest is not None and r.manifest["metadata"]["namespace"] == "ml"
        assert r.argv is not None and r.argv[2] == f"--max_depth={r.params['max_depth']}"
    d = resolved_spec_dict(spec)
    assert d["algorithm"]["settings"]["n_startup_trials"] == 5
    assert d["early_stopping"]["settings"] == {"min_trials_required": 2, "start_step": 4}


def test_own_pytorchjob_with_tfevent_hyperband_and_gpu() -> None:
    spec = parse_spec(PYTORCH_TFEVENT_HYPERBAND)
    t = spec.trial_template
    assert t.local_blocker is None  # a GPU is usable by a local process
    assert t.shell_script_index == 2
    mc = spec.metrics_collector
    assert (mc.kind, mc.path, mc.path_kind) == (
        CollectorKind.TENSORFLOW_EVENT,
        "/logs/tb",
        "Directory",
    )
    trials = render_trials(spec, 3)
    assert len(trials) == 3
    _no_placeholders(trials)
    for r in trials:
        assert r.argv is not None
        assert '--epochs="${AUTOML_P_epochs}"' in r.argv[2]
        assert r.env["AUTOML_P_epochs"] == str(r.params["epochs"])
    # hyperband needs eta^floor(log(r_l)/log(eta)) = 9 trials in parallel
    with pytest.raises(SpecError) as info:
        parse_spec(
            PYTORCH_TFEVENT_HYPERBAND.replace("parallelTrialCount: 9", "parallelTrialCount: 3")
        )
    assert "= 9" in _issue_at(info.value.issues, "spec.parallelTrialCount").message


def test_own_files_round_trip_through_json() -> None:
    for text in (TFJOB_PROMETHEUS, XGBOOST_CUSTOM, PYTORCH_TFEVENT_HYPERBAND):
        spec = parse_spec(text)
        assert ExperimentSpec.from_json(spec.to_json()) == spec
        assert copy.deepcopy(spec) == spec
