"""Export an :class:`~automl.core.ExperimentSpec` as a Katib ``Experiment`` document.

:func:`to_katib` builds the ``kubeflow.org/v1beta1`` ``Experiment`` as a dict and
:func:`dump_katib` writes it as block-style YAML in the key order of Katib's own examples. The
document parses back through :func:`automl.spec.parse_spec` to an equivalent spec.

What goes where:

* Every number Katib reads as a string is written as one: ``feasibleSpace`` ``min``/``max``/
  ``step`` and ``list``, and every ``algorithmSettings`` / ``earlyStopping`` value (``"0.01"``,
  ``"8"``, ``"true"``). Values are formatted as the local runner formats them on a command line,
  so a trial sees the same text on Kubernetes as it does locally.
* Optional fields equal to what Katib would default anyway are left out (``distribution:
  uniform``, ``resumePolicy: Never``, ``retain: false``, a plain ``StdOut`` collector, the
  ``TEXT`` metrics format). ``parallelTrialCount`` is always written: Katib defaults it to 3,
  automl's native form to 1.
* A spec that came from a Katib document keeps its trial template as written: ``trialSpec`` is
  the stored manifest (or ``configMap`` its source), with its ``trialParameters``,
  ``primaryContainerName``, ``primaryPodLabels``, ``successCondition``, ``failureCondition`` and
  ``retain``.
* A native or Python spec gets a generated ``batch/v1`` ``Job``: one container called
  ``training-container`` running ``image`` with the trial command, ``restartPolicy: Never``,
  ``workingDir`` from the trial workdir and ``env`` from the trial env. Native ``${x}``
  placeholders become ``${trialParameters.x}``, with one ``trialParameters`` entry per parameter
  (name and reference = the parameter name); ``${trialSpec.Name}`` and the other metadata
  placeholders get a ``trialParameters`` entry whose reference is the metadata, as Katib requires.
  Katib also requires every trial parameter to appear in the template: a parameter the command
  and env never mention is passed as an environment variable ``AUTOML_PARAM_<name>``.
  The per-trial timeout becomes the Job's ``activeDeadlineSeconds`` (whole seconds, rounded up).
* automl-only fields have no Katib field and are not written, except as noted here:
  ``seed`` becomes the ``random_state`` algorithm setting for the algorithms whose Katib service
  takes one (random, tpe, grid, multivariate-tpe, cmaes, bayesianoptimization) and is dropped for
  the others; ``auto`` (automl's default) is written as ``bayesianoptimization``, the GP it
  mostly runs, keeping only ``n_initial_points``; the experiment's wall-clock budget
  (``spec.timeout``) has no Katib field at all and is written as the annotation
  ``automl.io/timeout-seconds`` on the Experiment's metadata, which Katib ignores (it never
  stops an experiment on time). ``path_map`` and ``local_blocker`` are local-run details and
  ``workdir`` of a Katib spec is only where it runs locally; none of them is written.
* A Python-function spec (``automl.tune``: ``trial_template.function``, no command) cannot be
  exported faithfully, since Katib runs containers, not functions: :func:`to_katib` raises
  :class:`~automl.errors.SpecError` unless a ``command`` is given that runs the objective.

Limits worth knowing: the ``Push`` collector is exported as Katib's ``Push`` kind, but
:func:`automl.report` does not reach Katib's database (on Kubernetes the trial must call
``kubeflow.katib.report_metrics``); a relative ``File`` collector path is made absolute against
the trial workdir, since Katib needs an absolute path.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import yaml

from automl.core import (
    PLACEHOLDER_RE,
    CollectorKind,
    Distribution,
    ExperimentSpec,
    MetricsCollectorSpec,
    Parameter,
    ParameterType,
    TrialParameter,
    TrialTemplate,
)
from automl.errors import SpecError, SpecIssue

__all__ = [
    "DEFAULT_IMAGE",
    "PRIMARY_CONTAINER",
    "TIMEOUT_ANNOTATION",
    "dump_katib",
    "to_katib",
]

KATIB_API_VERSION = "kubeflow.org/v1beta1"
#: Annotation that carries the experiment's wall-clock budget in seconds (no Katib field has it).
TIMEOUT_ANNOTATION = "automl.io/timeout-seconds"
#: Image of the generated trial Job, unless ``image`` says otherwise.
DEFAULT_IMAGE = "python:3.11-slim"
#: Name of the generated Job's only container (Katib SDK's name for it).
PRIMARY_CONTAINER = "training-container"
#: Container name Kubeflow's training operator expects in a PyTorchJob.
PYTORCH_CONTAINER = "pytorch"
#: Kubernetes extended resource of NVIDIA GPUs.
GPU_RESOURCE = "nvidia.com/gpu"
#: Katib's default primary pod label and conditions for Kubeflow training jobs.
MASTER_ROLE_LABEL = "training.kubeflow.org/job-role"
KUBEFLOW_SUCCESS = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
KUBEFLOW_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
#: Prefix of the environment variables that carry parameters the command does not mention.
PARAM_ENV_PREFIX = "AUTOML_PARAM_"

_KATIB_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_KATIB_NAME_MAX = 40
# Algorithms whose Katib suggestion service takes a ``random_state`` setting.
_SEEDED = frozenset({"random", "tpe", "grid", "multivariate-tpe", "cmaes", "bayesianoptimization"})
_METADATA_REF = re.compile(
    r"^trialSpec\.(Name|Namespace|Kind|APIVersion|Annotations\[[^\]]+\]|Labels\[[^\]]+\])$"
)


def _check_conditions(spec: ExperimentSpec) -> None:
    """Katib's parameters are a flat, unconditional list: refuse ``when`` and define-by-run."""
    conditional = [p.name for p in spec.parameters if p.when]
    if conditional:
        raise SpecError(
            "cannot be exported to Katib: Katib's parameters are unconditional, and "
            f"{conditional} exist only under a when condition; drop the conditions (every "
            "trial then gets every parameter) or run the experiment with automl",
            path=f"parameters.{conditional[0]}.when",
        )
    if spec.define_by_run:
        raise SpecError(
            "cannot be exported to Katib: the objective defines its parameters as it runs "
            "(def objective(trial)), and a Katib Experiment declares them up front",
            path="parameters",
        )


def to_katib(
    spec: ExperimentSpec,
    *,
    image: str = DEFAULT_IMAGE,
    command: Sequence[str] | None = None,
    name: str | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """Build the Katib ``Experiment`` equivalent to ``spec``.

    See the module documentation for how each field maps. The experiment's time budget
    (``spec.timeout``) has no Katib field: it is written as the metadata annotation
    ``automl.io/timeout-seconds``, which Katib keeps but does not act on.

    Args:
        spec: The experiment to export.
        image: Container image of the generated trial Job (specs without a Katib trial
            template: native and Python ones).
        command: Trial argv for the generated Job, with ``${x}`` or ``${trialParameters.x}``
            placeholders; required for a Python-function spec, and replaces the command of a
            native one. Not allowed when the spec carries a Katib trial template.
        name: Experiment name to write instead of ``spec.name``.
        namespace: Namespace to write instead of ``spec.namespace``.

    Returns:
        The document as plain dicts, lists and strings, in Katib's key order.

    Raises:
        SpecError: The spec cannot be expressed in Katib (a Python function without
            ``command``, a name Katib rejects, ``nas_config`` searched by an algorithm other
            than ``enas``/``darts``, several objectives or constraints, conditional parameters,
            a define-by-run objective), with the field path.
    """
    _check_nas_pairing(spec)
    _check_conditions(spec)
    if spec.multi_objective:
        metrics = ", ".join(o.metric for o in spec.all_objectives)
        raise SpecError(
            f"cannot be exported to Katib: a Katib Experiment has one objective "
            f"(objectiveMetricName), this one has {len(spec.objectives)} ({metrics})",
            path="objectives",
        )
    if spec.constraints:
        raise SpecError(
            "cannot be exported to Katib: Katib has no constraints on metrics; got "
            + ", ".join(repr(c.text) for c in spec.constraints),
            path="constraints",
        )
    exp_name = spec.name if name is None else name
    if not _KATIB_NAME_RE.match(exp_name) or len(exp_name) > _KATIB_NAME_MAX:
        raise SpecError(
            f"must match ^[a-z]([-a-z0-9]*[a-z0-9])?$ and be at most {_KATIB_NAME_MAX} "
            f"characters to be a Katib Experiment name; got {exp_name!r} "
            "(pass name=... to export under another name)",
            path="name",
        )
    metadata: dict[str, Any] = {"name": exp_name}
    ns = spec.namespace if namespace is None else namespace
    if ns:
        metadata["namespace"] = ns
    if spec.timeout is not None:
        metadata["annotations"] = {TIMEOUT_ANNOTATION: _number(spec.timeout)}

    body: dict[str, Any] = {"objective": _objective(spec)}
    body["algorithm"] = _algorithm(spec)
    if spec.early_stopping is not None:
        body["earlyStopping"] = _named_settings(
            spec.early_stopping.name, spec.early_stopping.settings
        )
    body["parallelTrialCount"] = spec.parallel_trial_count
    if spec.max_trial_count is not None:
        body["maxTrialCount"] = spec.max_trial_count
    if spec.max_failed_trial_count is not None:
        body["maxFailedTrialCount"] = spec.max_failed_trial_count
    if spec.resume_policy != "Never":
        body["resumePolicy"] = spec.resume_policy
    collector = _collector(spec.metrics_collector, spec.trial_template)
    if collector is not None:
        body["metricsCollectorSpec"] = collector
    if spec.parameters or spec.nas_config is None:
        body["parameters"] = [_parameter(p) for p in spec.parameters]
    if spec.nas_config is not None:
        body["nasConfig"] = copy.deepcopy(spec.nas_config)
    body["trialTemplate"] = _trial_template(spec, image, command)
    return {
        "apiVersion": KATIB_API_VERSION,
        "kind": "Experiment",
        "metadata": metadata,
        "spec": body,
    }


def _check_nas_pairing(spec: ExperimentSpec) -> None:
    """Katib pairs ``nasConfig`` only with its NAS algorithms (``enas``, ``darts``).

    Multi-trial NAS (``nasConfig`` searched by random, tpe, evolution...) is an automl extension:
    Katib's other suggestion services read only ``parameters`` and never assign
    ``architecture`` / ``nn_config``, so the export refuses it instead of writing an experiment
    Katib cannot run.
    """
    from search._nas_settings import NAS_ALGORITHMS

    name = spec.algorithm.name
    if spec.nas_config is None or spec.parameters or name in NAS_ALGORITHMS:
        return
    raise SpecError(
        f"Katib cannot run nasConfig with algorithm {name!r}: its nasConfig experiments need "
        f"one of its NAS algorithms {sorted(NAS_ALGORITHMS)} (multi-trial NAS with {name} is an "
        "automl extension; run it with automl, or export it with algorithm enas); got "
        f"{name!r}",
        path="algorithm.name",
    )


def dump_katib(
    spec: ExperimentSpec,
    *,
    image: str = DEFAULT_IMAGE,
    command: Sequence[str] | None = None,
    name: str | None = None,
    namespace: str | None = None,
) -> str:
    """The Katib ``Experiment`` of :func:`to_katib` as block-style YAML.

    Keys keep Katib's order; numbers Katib reads as strings are quoted; multi-line strings are
    written as literal blocks. Arguments and errors are those of :func:`to_katib`.
    """
    doc = to_katib(spec, image=image, command=command, name=name, namespace=namespace)
    return yaml.dump(
        doc,
        Dumper=_Dumper,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        width=1 << 16,
    )


# -- formatting ----------------------------------------------------------------------------------


def _number(value: float, integer: bool = False) -> str:
    """A number as Katib writes it in a string: ``"2"``, ``"0.01"``, ``"1e-05"``."""
    if integer or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))


def _text(value: Any) -> str | None:
    """A parameter value or setting as text, the way the local runner puts it on a command line."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return str(value)


# -- experiment parts ----------------------------------------------------------------------------


def _objective(spec: ExperimentSpec) -> dict[str, Any]:
    obj = spec.objective
    out: dict[str, Any] = {"type": obj.type.value}
    if obj.goal is not None:
        out["goal"] = obj.goal
    out["objectiveMetricName"] = obj.metric
    if obj.additional_metrics:
        out["additionalMetricNames"] = list(obj.additional_metrics)
    if obj.strategies:
        out["metricStrategies"] = [
            {"name": metric, "value": strategy.value}
            for metric, strategy in obj.strategies.items()
        ]
    return out


def _named_settings(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"algorithmName": name}
    if settings:
        out["algorithmSettings"] = [{"name": k, "value": _text(v)} for k, v in settings.items()]
    return out


def _algorithm(spec: ExperimentSpec) -> dict[str, Any]:
    settings = dict(spec.algorithm.settings)
    name = spec.algorithm.name
    if name == "auto":
        # Katib has no ``auto``; its closest service is the GP it starts (skopt's Bayesian
        # optimization), which keeps only the setting they share.
        name = "bayesianoptimization"
        settings = {k: v for k, v in settings.items() if k in ("n_initial_points", "seed")}
    if (
        spec.seed is not None
        and name in _SEEDED
        and "random_state" not in settings
        and "seed" not in settings
    ):
        settings["random_state"] = spec.seed
    return _named_settings(name, settings)


def _parameter(p: Parameter) -> dict[str, Any]:
    space: dict[str, Any] = {}
    if p.is_numeric_range:
        integer = p.type is ParameterType.INT
        for key, num in (("min", p.min), ("max", p.max), ("step", p.step)):
            if num is not None:
                space[key] = _number(num, integer)
        if p.distribution is not Distribution.UNIFORM:
            space["distribution"] = p.distribution.value
    else:
        space["list"] = [_text(v) for v in p.values]
    return {"name": p.name, "parameterType": p.type.value, "feasibleSpace": space}


def _collector(mc: MetricsCollectorSpec, template: TrialTemplate) -> dict[str, Any] | None:
    source: dict[str, Any] = {}
    if mc.filters:
        source["filter"] = {"metricsFormat": list(mc.filters)}
    fsp: dict[str, Any] = {}
    if mc.path:
        path = mc.path
        if (
            not path.startswith("/")
            and template.workdir
            and template.manifest is None
            and template.config_map is None
        ):
            # Katib needs an absolute path; locally a relative one is under the trial workdir,
            # which the generated Job uses as its workingDir.
            path = f"{template.workdir.rstrip('/')}/{path}"
        fsp["path"] = path
    if mc.path_kind:
        fsp["kind"] = mc.path_kind
    if mc.format and mc.format != "TEXT":
        fsp["format"] = mc.format
    if fsp:
        source["fileSystemPath"] = fsp
    if mc.http_get:
        source["httpGet"] = copy.deepcopy(mc.http_get)
    collector: dict[str, Any] = {"kind": mc.kind.value}
    if mc.custom_collector:
        collector["customCollector"] = copy.deepcopy(mc.custom_collector)
    if not source and mc.kind is CollectorKind.STDOUT and len(collector) == 1:
        return None
    out: dict[str, Any] = {}
    if source:
        out["source"] = source
    out["collector"] = collector
    return out


# -- trial template ------------------------------------------------------------------------------


def _trial_template(
    spec: ExperimentSpec, image: str, command: Sequence[str] | None
) -> dict[str, Any]:
    t = spec.trial_template
    katib_source = t.manifest is not None or t.config_map is not None
    if katib_source and command is not None:
        raise SpecError(
            "cannot replace the command of a trial template that comes from a Katib document "
            "(trialSpec or configMap); command applies to generated Jobs only",
            path="trial_template.command",
        )
    out: dict[str, Any] = {}
    if t.retain:
        out["retain"] = True
    if katib_source:
        if t.primary_container_name:
            out["primaryContainerName"] = t.primary_container_name
        if t.primary_pod_labels:
            out["primaryPodLabels"] = dict(t.primary_pod_labels)
        if t.success_condition:
            out["successCondition"] = t.success_condition
        if t.failure_condition:
            out["failureCondition"] = t.failure_condition
        if t.trial_parameters:
            out["trialParameters"] = [_trial_parameter(tp) for tp in t.trial_parameters]
        if t.manifest is not None:
            out["trialSpec"] = copy.deepcopy(t.manifest)
        else:
            assert t.config_map is not None
            out["configMap"] = {
                k: t.config_map[k]
                for k in ("configMapName", "configMapNamespace", "templatePath")
                if t.config_map.get(k)
            }
        return out

    argv = _argv(spec, command)
    bindings = _Bindings(spec)
    katib_argv = [bindings.rewrite(a) for a in argv]
    env = {k: bindings.rewrite(v) for k, v in t.env.items()}
    used = " ".join([*katib_argv, *env.values()])
    for tp in bindings.items:
        if "${trialParameters." + tp.name + "}" not in used:
            var = PARAM_ENV_PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", tp.name)
            env.setdefault(var, "${trialParameters." + tp.name + "}")

    res = t.resources
    name = PYTORCH_CONTAINER if res.distributed else PRIMARY_CONTAINER
    container: dict[str, Any] = {"name": name, "image": image, "command": katib_argv}
    if t.workdir:
        container["workingDir"] = t.workdir
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    limits = _limits(spec)
    if limits:
        container["resources"] = {"limits": limits}
    out["primaryContainerName"] = name
    if res.distributed:
        # A Kubeflow PyTorchJob: a Master and workers-1 Workers, each running the same command;
        # the training operator sets MASTER_ADDR/RANK/WORLD_SIZE and runs nprocPerNode processes.
        def replica(count: int) -> dict[str, Any]:
            return {
                "replicas": count,
                "restartPolicy": "OnFailure",
                "template": {"spec": {"containers": [copy.deepcopy(container)]}},
            }

        replicas = {"Master": replica(1)}
        if res.workers > 1:
            replicas["Worker"] = replica(res.workers - 1)
        pt_spec: dict[str, Any] = {"pytorchReplicaSpecs": replicas}
        if res.processes_per_worker > 1:
            pt_spec["nprocPerNode"] = str(res.processes_per_worker)
        if t.timeout is not None:
            pt_spec["runPolicy"] = {"activeDeadlineSeconds": max(1, math.ceil(t.timeout))}
        out["primaryPodLabels"] = dict(t.primary_pod_labels or {MASTER_ROLE_LABEL: "master"})
        out["successCondition"] = t.success_condition or KUBEFLOW_SUCCESS
        out["failureCondition"] = t.failure_condition or KUBEFLOW_FAILURE
        out["trialParameters"] = [_trial_parameter(tp) for tp in bindings.items]
        out["trialSpec"] = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": pt_spec}
        return out
    job_spec: dict[str, Any] = {}
    if t.timeout is not None:
        job_spec["activeDeadlineSeconds"] = max(1, math.ceil(t.timeout))
    job_spec["template"] = {"spec": {"containers": [container], "restartPolicy": "Never"}}
    if t.primary_pod_labels:
        out["primaryPodLabels"] = dict(t.primary_pod_labels)
    if t.success_condition:
        out["successCondition"] = t.success_condition
    if t.failure_condition:
        out["failureCondition"] = t.failure_condition
    out["trialParameters"] = [_trial_parameter(tp) for tp in bindings.items]
    out["trialSpec"] = {"apiVersion": "batch/v1", "kind": "Job", "spec": job_spec}
    return out


def _limits(spec: ExperimentSpec) -> dict[str, Any]:
    """Container limits for ``trial_template.resources`` (per worker)."""
    r = spec.trial_template.resources
    out: dict[str, Any] = {}
    if r.cpu is not None:
        out["cpu"] = _number(r.cpu)
    if r.memory is not None:
        out["memory"] = r.memory
    if r.gpu:
        if r.gpu != int(r.gpu):
            raise SpecError(
                "Kubernetes schedules whole GPUs (nvidia.com/gpu); a fractional GPU cannot be "
                f"exported; got {r.gpu:g}",
                path="trial_template.resources.gpu",
            )
        out[GPU_RESOURCE] = int(r.gpu * r.processes_per_worker)
    return out


def _argv(spec: ExperimentSpec, command: Sequence[str] | None) -> list[str]:
    t = spec.trial_template
    if command is not None:
        if isinstance(command, str) or not command:
            raise SpecError(
                f"must be a non-empty list of arguments; got {command!r}", path="command"
            )
        return [str(a) for a in command]
    if t.command:
        return list(t.command)
    what = (
        f"the Python function {t.function!r}" if t.function else "a Python function (no command)"
    )
    raise SpecError(
        [
            SpecIssue(
                "trial_template.function",
                f"trials run {what} in-process, which a Katib trial (a container) cannot do; "
                "pass command=[...] with a script that runs the objective, e.g. "
                "['python', 'train.py', '--lr', '${lr}'], to export it",
            )
        ]
    )


def _trial_parameter(tp: TrialParameter) -> dict[str, Any]:
    out = {"name": tp.name}
    if tp.description:
        out["description"] = tp.description
    out["reference"] = tp.reference
    return out


def _describe(p: Parameter) -> str:
    if p.is_numeric_range:
        assert p.min is not None and p.max is not None
        integer = p.type is ParameterType.INT
        text = f"{p.type.value} in [{_number(p.min, integer)}, {_number(p.max, integer)}]"
        if p.step is not None:
            text += f", step {_number(p.step, integer)}"
        if p.distribution is not Distribution.UNIFORM:
            text += f", {p.distribution.value}"
        return text
    return f"{p.type.value}: {', '.join(str(_text(v)) for v in p.values)}"


class _Bindings:
    """``trialParameters`` of a generated Job, and the rewrite of native placeholders."""

    def __init__(self, spec: ExperimentSpec) -> None:
        self.params = [p.name for p in spec.parameters]
        self.items: list[TrialParameter] = list(spec.trial_template.trial_parameters)
        if not self.items:
            self.items = [
                TrialParameter(name=p.name, reference=p.name, description=_describe(p))
                for p in spec.parameters
            ]
        for name in self.params:  # Katib wants one trial parameter per parameter
            self._bind(name, f"Hyperparameter {name}")

    def _names(self) -> set[str]:
        return {tp.name for tp in self.items}

    def _bind(self, reference: str, description: str, prefer: str | None = None) -> str:
        for tp in self.items:
            if tp.reference == reference:
                return tp.name
        base = prefer or reference
        name, i = base, 1
        while name in self._names():
            i += 1
            name = f"{base}{i}"
        self.items.append(TrialParameter(name=name, reference=reference, description=description))
        return name

    def _resolve(self, m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref.startswith("trialParameters."):
            key = ref.removeprefix("trialParameters.")
            if key in self._names() or key not in self.params:
                return m.group(0)
            return "${trialParameters." + self._bind(key, f"Hyperparameter {key}") + "}"
        if _METADATA_REF.match(ref):
            field = ref.removeprefix("trialSpec.")
            prefer = "trial" + re.sub(r"[^A-Za-z0-9]+", "-", field).strip("-")
            name = self._bind("${" + ref + "}", f"Trial metadata {field}", prefer)
            return "${trialParameters." + name + "}"
        if ref in self.params:
            return "${trialParameters." + self._bind(ref, f"Hyperparameter {ref}") + "}"
        return m.group(0)

    def rewrite(self, text: str) -> str:
        """``text`` with every native placeholder in its Katib ``${trialParameters.x}`` form."""
        return PLACEHOLDER_RE.sub(self._resolve, text)


# -- YAML ----------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style like Katib's examples: indented lists, no aliases, literal multi-line text."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _represent_str)
