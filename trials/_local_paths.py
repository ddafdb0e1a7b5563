"""What running a Katib trial as a local process means: image paths, the per-trial collector path.

A Katib trial's primary container runs here as a process: its image is not pulled. The
template's ``path_map`` rewrites paths that exist only inside the image (argv, env values,
working dir, collector path); the directory of the collector's metrics path is per trial, as it
is in a pod (``<target>/<trial>`` when mapped, ``<trial dir>/<path>`` when not).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from typing import Any

from automl.core import CollectorKind, ExperimentSpec, TrialTemplate
from trials._collectors import KATIB_TFEVENT_DIR, PathMap, image_paths

__all__ = ["PER_TRIAL_KINDS", "collector_dir", "local_notice"]


def _primary_image(template: TrialTemplate) -> str | None:
    """The image of the template's primary container, if its manifest names one."""

    def find(node: Any) -> dict[str, Any] | None:
        if isinstance(node, dict):
            containers = node.get("containers")
            if isinstance(containers, list):
                for c in containers:
                    if isinstance(c, dict) and (
                        template.primary_container_name is None
                        or c.get("name") == template.primary_container_name
                    ):
                        return c
            nodes: list[Any] = list(node.values())
        elif isinstance(node, list):
            nodes = node
        else:
            return None
        for v in nodes:
            found = find(v)
            if found is not None:
                return found
        return None

    container = find(template.manifest)
    image = container.get("image") if container else None
    return str(image) if image else None


def local_notice(spec: ExperimentSpec, created: Sequence[str] = ()) -> str | None:
    """What running this spec's trials locally means, in one line; None for a plain command.

    For a Katib trial (a manifest with an image): the image is not pulled, the primary
    container's command runs here, and which image paths are mapped or still unmapped.
    """
    t = spec.trial_template
    if t.manifest is None and not t.path_map:
        return None
    paths = PathMap(t.path_map)
    parts: list[str] = []
    if t.manifest is not None:
        image = _primary_image(t)
        what = f"image {image} is not pulled" if image else "the trial image is not pulled"
        who = (
            f"container {t.primary_container_name!r}" if t.primary_container_name else "the trial"
        )
        parts.append(f"{what}; the command of {who} runs here as a local process")
    if paths:
        parts.append(f"paths mapped: {paths.describe()}")
    if created:
        parts.append(f"created {', '.join(created)}")
    mc = spec.metrics_collector
    cdir = collector_dir(spec)
    missing = sorted(
        {
            p
            for arg in t.command or ()
            if "${" not in arg and "{{" not in arg
            for p in image_paths([arg])
            if paths.covering(p) is None
            and not (cdir and _under(p, cdir))
            and not os.path.exists(p)
        }
    )
    if missing:
        parts.append(f"not found here: {', '.join(missing)} (map them with --path-map SRC=DST)")
    if cdir and mc.kind in PER_TRIAL_KINDS:
        cover = paths.covering(cdir)
        where = f"{paths(cdir)}/<trial>" if cover else f"<trial dir>{cdir}"
        parts.append(f"{mc.kind.value} collector path {cdir} is per trial: {where}")
    return "; ".join(parts)


PER_TRIAL_KINDS = (CollectorKind.FILE, CollectorKind.TENSORFLOW_EVENT, CollectorKind.CUSTOM)


def _under(path: str, prefix: str) -> bool:
    path, prefix = posixpath.normpath(path), posixpath.normpath(prefix)
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def collector_dir(spec: ExperimentSpec) -> str | None:
    """The absolute in-image directory the collector reads, made per trial; None if none.

    The File collector's file's directory, the TensorFlowEvent directory (Katib's default
    ``/var/log/katib/tfevent`` for a Katib trial), or a Custom collector's path. Only for
    trials from an image (a manifest) or with a path map: a plain local command's absolute
    path is taken as it is.
    """
    mc = spec.metrics_collector
    t = spec.trial_template
    if mc.kind not in PER_TRIAL_KINDS:
        return None
    raw = mc.path
    if not raw and mc.kind is CollectorKind.TENSORFLOW_EVENT and t.manifest is not None:
        raw = KATIB_TFEVENT_DIR
    if not raw or not raw.startswith("/"):
        return None
    directory = mc.kind is CollectorKind.TENSORFLOW_EVENT or mc.path_kind == "Directory"
    d = posixpath.normpath(raw) if directory else posixpath.dirname(posixpath.normpath(raw))
    if d == "/":
        return None
    if t.manifest is None and PathMap(t.path_map).covering(d) is None:
        return None
    return d
