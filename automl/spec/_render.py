"""What an experiment would run, without running it: ``automl run --dry-run``.

:func:`render_trials` draws the first suggestions of the spec's algorithm (no store, no
executor) and substitutes them into the trial template the way Katib's manifest generator does;
:func:`resolved_spec_dict` is the spec with every default filled, as JSON-able data.

Katib's neural architecture search (``enas``, ``darts``; a ``nasConfig`` and no ``parameters``) is
rendered without starting its controller, from what Katib's NAS services would assign:

* ``darts``: exactly Katib's assignments (``algorithm-settings``, ``search-space``,
  ``num-layers``), the same for every trial.
* ``enas``: ``nn_config`` exactly as Katib's ENAS service builds it, for an ``architecture``
  drawn uniformly at random (operation and skip connections per layer, in Katib's format) in
  place of the RL controller's sample; seeded by ``spec.seed`` when set.

Multi-trial NAS (a ``nasConfig`` searched by ``random``, ``tpe``, ``evolution``...) renders through
its suggester like any other spec: each trial's params hold the layer choices plus
``architecture`` and ``nn_config``.
"""

from __future__ import annotations

import copy
import json
import random
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from automl.core import AlgorithmSpec, ExperimentSpec, ParamValue, with_defaults

__all__ = ["RenderedTrial", "render_trials", "resolved_spec_dict", "trial_name"]

#: Katib names trials ``<experiment>-<8 chars>`` from Kubernetes' random-string alphabet.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_TRIAL_PARAM_RE = re.compile(r"\$\{trialParameters\.(.+?)\}")
_TRIAL_SPEC_RE = re.compile(r"\$\{trialSpec\.([^{}]+)\}")


@dataclass(frozen=True)
class RenderedTrial:
    """One trial as it would run.

    Attributes:
        name: The trial's name, ``<experiment>-<8 chars>`` as Katib names trials.
        params: The suggested values (for NAS, the algorithm's assignments as strings).
        argv: The command a local run would start, or None when the template has none.
        env: Extra environment variables from the template, substituted.
        manifest: The trialSpec with every ``${trialParameters.x}`` and ``${trialSpec.*}``
            substituted and ``metadata.name``/``namespace`` set to the trial's, or None when the
            spec has no inline manifest (native specs, ConfigMap templates).
    """

    name: str
    params: Mapping[str, ParamValue]
    argv: list[str] | None
    env: Mapping[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None


def trial_name(experiment: str, rng: random.Random) -> str:
    """A Katib-style trial name, ``<experiment>-<8 chars>``."""
    return f"{experiment}-" + "".join(rng.choice(_ALPHABET) for _ in range(8))


def _format(value: Any) -> str:
    from trials import format_value

    return format_value(value)


def _substitute(
    text: str,
    bindings: Mapping[str, str],
    params: Mapping[str, Any],
    meta: Mapping[str, str],
) -> str:
    """Katib's substitution of one string: trialParameters by name, then trialSpec metadata."""

    def meta_value(key: str) -> str | None:
        return meta.get(key)

    def trial_param(m: re.Match[str]) -> str:
        ref = bindings.get(m.group(1))
        if ref is None:
            return m.group(0)
        meta_ref = _TRIAL_SPEC_RE.fullmatch(ref)
        if meta_ref:
            v = meta_value(meta_ref.group(1))
            return m.group(0) if v is None else v
        return _format(params[ref]) if ref in params else m.group(0)

    def trial_spec(m: re.Match[str]) -> str:
        v = meta_value(m.group(1))
        return m.group(0) if v is None else v

    return _TRIAL_SPEC_RE.sub(trial_spec, _TRIAL_PARAM_RE.sub(trial_param, text))


def _render_manifest(
    manifest: Mapping[str, Any],
    bindings: Mapping[str, str],
    params: Mapping[str, Any],
    meta: Mapping[str, str],
) -> dict[str, Any]:
    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return _substitute(node, bindings, params, meta)
        if isinstance(node, dict):
            return {walk(k): walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out: dict[str, Any] = walk(copy.deepcopy(dict(manifest)))
    md = out.get("metadata")
    md = dict(md) if isinstance(md, dict) else {}
    md["name"] = meta["Name"]
    md["namespace"] = meta["Namespace"]
    out["metadata"] = md
    return out


def _nas_assignments(spec: ExperimentSpec, count: int, rng: random.Random) -> list[dict[str, str]]:
    from automl.spec._katib import nas_operations
    from search._nas_settings import darts_assignments, enas_nn_config, enas_search_space

    ops, _ = nas_operations(spec.nas_config)
    if spec.algorithm.name == "darts":
        one = darts_assignments(spec, ops)
        return [dict(one) for _ in range(count)]
    space = enas_search_space(ops)
    graph = (spec.nas_config or {}).get("graphConfig") or {}
    layers = int(graph.get("numLayers") or 0)
    out = []
    for _ in range(count):
        arc = [
            [rng.randrange(max(len(space), 1))] + [rng.randrange(2) for _ in range(layer)]
            for layer in range(layers)
        ]
        out.append(
            {
                "architecture": json.dumps(arc),
                "nn_config": enas_nn_config(spec.nas_config or {}, ops, arc),
            }
        )
    return out


def _suggested(spec: ExperimentSpec, ids: list[str]) -> list[dict[str, ParamValue]]:
    """The first suggestions of the spec's algorithm, with no store and no files left behind."""
    import search

    with tempfile.TemporaryDirectory(prefix="automl-render-") as tmp:
        s = spec
        if spec.algorithm.name == "pbt" and "suggestion_trial_dir" in spec.algorithm.settings:
            # PBT creates a checkpoint directory per trial: keep it out of the real location.
            settings = {**spec.algorithm.settings, "suggestion_trial_dir": tmp}
            s = spec.model_copy(
                update={"algorithm": AlgorithmSpec(name=spec.algorithm.name, settings=settings)}
            )
        suggester = search.create_suggester(s, runs_dir=tmp)
        return [dict(sug.params) for sug in suggester.suggest(ids)]


def render_trials(spec: ExperimentSpec, count: int = 3) -> list[RenderedTrial]:
    """The first ``count`` trials of ``spec`` as they would run.

    Fewer come back when the algorithm has fewer to give (a small grid, a hyperband rung).
    Trial names are ``<experiment>-<8 chars>``; with ``spec.seed`` set, names and suggestions are
    reproducible. For NAS specs the assignments are Katib's (see the module docstring).
    """
    if count <= 0:
        return []
    rng = random.Random(spec.seed) if spec.seed is not None else random.Random()
    ids = [trial_name(spec.name, rng) for _ in range(count)]
    if not spec.parameters and spec.algorithm.name in ("enas", "darts"):
        drawn: list[dict[str, Any]] = list(_nas_assignments(spec, count, rng))
    else:
        drawn = list(_suggested(spec, ids))
    from automl.spec._katib import trial_metadata  # Katib's models load only when used

    t = spec.trial_template
    bindings = {tp.name: tp.reference for tp in t.trial_parameters}
    out: list[RenderedTrial] = []
    for trial_id, params in zip(ids, drawn, strict=False):
        meta = trial_metadata(t.manifest, trial_id, spec.namespace)
        argv: list[str] | None = None
        env: dict[str, str] = {}
        if t.command is not None:
            from trials import render_command

            # An inactive parameter's placeholder shows its default, as the trial will run.
            argv, env = render_command(t, with_defaults(spec.parameters, params), meta)
        manifest = (
            _render_manifest(t.manifest, bindings, params, meta)
            if t.manifest is not None
            else None
        )
        out.append(RenderedTrial(trial_id, params, argv, env, manifest))
    return out


def resolved_spec_dict(spec: ExperimentSpec) -> dict[str, Any]:
    """The spec as JSON-able data with every default filled.

    On top of the spec's own defaults: the algorithm's settings typed and completed with the
    algorithm's defaults (Katib's for ``enas``/``darts``), the early-stopping rule's likewise
    (under its canonical name), and a metric strategy for every metric.
    """
    import search
    from search._nas_settings import NAS_ALGORITHMS, resolve_nas_settings

    data: dict[str, Any] = spec.model_dump(mode="json")
    if spec.algorithm.name in NAS_ALGORITHMS:
        settings = resolve_nas_settings(spec)
    else:
        settings = search.resolve_settings(spec)
    data["algorithm"]["settings"] = settings
    if spec.early_stopping is not None:
        name, es = search.resolve_stopper_settings(spec)
        data["early_stopping"] = {"name": name, "settings": es}
    data["objective"]["strategies"] = {
        m: spec.objective.strategy(m).value for m in spec.objective.metrics
    }
    return data
