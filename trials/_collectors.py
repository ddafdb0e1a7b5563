"""Running image-bound trials locally: the path map, and the collectors beyond stdout and files.

* :class:`PathMap` rewrites paths that exist only inside a trial image (``/opt/pytorch-mnist``)
  to local directories, by longest prefix at path boundaries.
* :func:`read_tfevents` reads scalar summaries from TensorFlow event files (Katib's
  ``TensorFlowEvent`` collector), with tensorboard's ``EventAccumulator``.
* :func:`parse_prometheus` and :func:`scrape_prometheus` read a Prometheus text exposition
  (the ``PrometheusMetric`` collector), with ``prometheus_client``'s parser.

tensorboard and prometheus_client are optional: they are imported when a collector needs them,
and :func:`require` says which package to install when one is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import posixpath
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trials._metrics import STEP_NAMES, MetricLine

__all__ = [
    "KATIB_TFEVENT_DIR",
    "PathMap",
    "ScalarRecord",
    "collector_package",
    "parse_prometheus",
    "read_tfevents",
    "require",
    "scrape_prometheus",
    "tfevent_metrics",
]

#: Katib's default ``fileSystemPath`` of the TensorFlowEvent collector.
KATIB_TFEVENT_DIR = "/var/log/katib/tfevent/"

# Characters that continue a path component: a prefix only matches where none comes before it
# and none (other than "/") follows it, so /opt/app never rewrites /opt/application or /x/opt/app.
_PATH_CHAR = r"[\w.~-]"

#: Optional packages: import name -> pip name.
_PACKAGES = {
    "tensorboard": "tensorboard",
    "prometheus_client": "prometheus-client",
}


def collector_package(module: str) -> str | None:
    """The pip package to install for ``module`` when it cannot be imported, else None."""
    top = module.split(".", 1)[0]
    if importlib.util.find_spec(top) is not None:
        return None
    return _PACKAGES.get(top, top)


def require(module: str, what: str) -> Any:
    """Import ``module`` for ``what``; a missing package raises ImportError naming the fix."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".", 1)[0]
        raise ImportError(
            f"{what} needs the {_PACKAGES.get(top, top)!r} package: "
            f"pip install {_PACKAGES.get(top, top)}"
        ) from exc


# -- path map ------------------------------------------------------------------------------


class PathMap:
    """Prefix rewrites for paths that exist only inside the trial image.

    ``{"/opt/pytorch-mnist": "/home/me/automl/examples/katib/pytorch-mnist"}`` rewrites
    ``/opt/pytorch-mnist/mnist.py`` anywhere a path can start in a string: a whole argument,
    a ``--flag=/opt/...`` value, a ``PYTHONPATH=/a:/opt/...`` list or a word of a shell
    script. The longest prefix wins; a prefix matches only at path boundaries (``/opt/app``
    leaves ``/opt/application`` and ``/x/opt/app`` alone).

    Args:
        mapping: Absolute source prefix -> local directory (relative ones resolve against
            ``base``).
        base: Directory relative targets are resolved against (default: the working dir).

    Raises:
        ValueError: A source prefix is not absolute.
    """

    def __init__(self, mapping: Mapping[str, str | Path], base: Path | None = None) -> None:
        entries: dict[str, str] = {}
        for src, dst in mapping.items():
            if not str(src).startswith("/"):
                raise ValueError(f"a path map source must be absolute; got {src!r}")
            key = posixpath.normpath(str(src))
            if key.startswith("//"):
                key = "/" + key.lstrip("/")
            target = Path(dst).expanduser()
            if not target.is_absolute():
                target = (base or Path.cwd()) / target
            entries[key] = os.path.normpath(target)
        self.entries: dict[str, str] = entries
        keys = sorted(entries, key=len, reverse=True)
        alternatives = [
            "/(?=.|$)" if k == "/" else re.escape(k) + rf"(?!{_PATH_CHAR})" for k in keys
        ]
        self._rx = (
            re.compile(rf"(?<![\w.~/-])(?:{'|'.join(alternatives)})", re.DOTALL) if keys else None
        )

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __repr__(self) -> str:
        return f"PathMap({self.entries!r})"

    def __call__(self, text: str) -> str:
        """``text`` with every mapped path prefix rewritten."""
        if self._rx is None:
            return text

        def sub(m: re.Match[str]) -> str:
            key = m.group(0)
            dst = self.entries[key]
            return dst.rstrip("/") + "/" if key == "/" else dst

        return self._rx.sub(sub, text)

    def covering(self, path: str) -> tuple[str, str] | None:
        """The entry (source, target) whose prefix holds the absolute ``path``, longest first."""
        norm = posixpath.normpath(path)
        for src in sorted(self.entries, key=len, reverse=True):
            if src == "/" or norm == src or norm.startswith(src + "/"):
                return src, self.entries[src]
        return None

    def with_entry(self, src: str, dst: str | Path) -> PathMap:
        """A copy with one more (or a replaced) entry."""
        return PathMap({**self.entries, src: dst})

    def describe(self) -> str:
        """``a -> b, c -> d``."""
        return ", ".join(f"{k} -> {v}" for k, v in self.entries.items())


def image_paths(argv: Sequence[str]) -> list[str]:
    """Absolute paths named in ``argv`` (whole words or ``--flag=`` values)."""
    rx = re.compile(rf"(?<![\w.~/-])/{_PATH_CHAR}[\w.~/-]*")
    out: list[str] = []
    for arg in argv:
        out.extend(m.group(0) for m in rx.finditer(arg))
    return out


# -- TensorFlow event files ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScalarRecord:
    """One scalar summary value from an event file."""

    directory: Path  # the event file's directory
    tag: str
    step: int
    wall_time: float
    value: float


def read_tfevents(directory: Path) -> Iterator[ScalarRecord]:
    """Every scalar summary in the ``*tfevents*`` files under ``directory`` (recursively).

    Both kinds of scalar are read: ``simple_value`` summaries (``torch.utils.tensorboard``,
    TF1) and one-element tensor summaries (TF2 ``tf.summary.scalar``).

    Raises:
        ImportError: tensorboard is not installed.
    """
    ea = require(
        "tensorboard.backend.event_processing.event_accumulator", "the TensorFlowEvent collector"
    )
    tensor_util = require("tensorboard.util.tensor_util", "the TensorFlowEvent collector")
    files = (
        [directory]
        if directory.is_file()
        else sorted(f for f in directory.rglob("*") if f.is_file() and "tfevents" in f.name)
    )
    for file in files:
        acc = ea.EventAccumulator(str(file), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        tags = acc.Tags()
        for tag in tags.get(ea.SCALARS, ()):
            for e in acc.Scalars(tag):
                yield ScalarRecord(file.parent, tag, int(e.step), float(e.wall_time), e.value)
        for tag in tags.get(ea.TENSORS, ()):
            for e in acc.Tensors(tag):
                arr = tensor_util.make_ndarray(e.tensor_proto)
                if getattr(arr, "size", 0) == 1 and arr.dtype.kind in "fiub":
                    value = float(arr.reshape(()).item())
                    yield ScalarRecord(file.parent, tag, int(e.step), float(e.wall_time), value)


def _tag_matches(metric: str, record: ScalarRecord, root: Path) -> int:
    """How well a summary matches a metric name: 2, 1 or 0 (no match).

    2: the tag (or ``<subdir>/<tag>`` under ``root``) is the metric; 1: the metric is the tail
    of ``<event file dir>/<tag>`` at a ``/`` (Katib's ``test/accuracy`` for tag ``accuracy`` in
    a ``test`` directory, or ``accuracy`` for tag ``eval/accuracy``).
    """
    try:
        rel = record.directory.relative_to(root).as_posix()
    except ValueError:
        rel = "."
    full = record.tag if rel == "." else f"{rel}/{record.tag}"
    if metric in (record.tag, full):
        return 2
    if f"{record.directory.as_posix()}/{record.tag}".endswith("/" + metric):
        return 1
    return 0


def tfevent_metrics(directory: Path, metrics: Sequence[str]) -> list[MetricLine]:
    """The wanted metrics' values from the event files under ``directory``, oldest first.

    A metric takes the summaries whose tag is its name (or ``<subdir>/<tag>``, relative to
    ``directory``); failing those, the ones whose ``<directory>/<tag>`` ends with ``/<name>``,
    as Katib's collector does for a metric ``test/accuracy`` written as tag ``accuracy`` under
    ``test/``. Each value keeps its summary's step.

    Raises:
        ImportError: tensorboard is not installed.
    """
    records = list(read_tfevents(directory))
    picked: list[tuple[float, int, str, float]] = []
    for m in metrics:
        scored = [(r, _tag_matches(m, r, directory)) for r in records]
        best = max((s for _, s in scored), default=0)
        if best:
            picked.extend((r.wall_time, r.step, m, r.value) for r, s in scored if s == best)
    picked.sort(key=lambda t: (t[0], t[1]))
    return [MetricLine({name: value}, step) for _, step, name, value in picked]


# -- Prometheus ----------------------------------------------------------------------------


def parse_prometheus(text: str, metrics: Sequence[str]) -> MetricLine | None:
    """The wanted metrics in a Prometheus text exposition, or None when it holds none.

    A metric matches a sample of that name, or a counter's ``<name>_total`` sample; an
    unlabelled sample wins over labelled ones. A ``step``, ``epoch``,
    ``iteration`` or ``global_step`` sample with a whole value becomes the step.

    Raises:
        ImportError: prometheus_client is not installed.
        ValueError: The text is not in the exposition format.
    """
    parser = require("prometheus_client.parser", "the PrometheusMetric collector")
    wanted = set(metrics)
    found: dict[str, tuple[bool, float]] = {}  # name -> (labelled, value)
    step: int | None = None
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name not in wanted and name.endswith("_total") and name[: -len("_total")] in wanted:
                name = name[: -len("_total")]  # a counter: sample <name>_total
            value = float(sample.value)
            if name in wanted:
                labelled = bool(sample.labels)
                if name not in found or (found[name][0] and not labelled):
                    found[name] = (labelled, value)
            elif name.lower() in STEP_NAMES and value.is_integer():
                step = int(value)
    if not found:
        return None
    return MetricLine({k: v for k, (_, v) in found.items()}, step)


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def scrape_prometheus(port: int, path: str = "/metrics", timeout: float = 1.0) -> str:
    """GET ``http://127.0.0.1:<port><path>`` (loopback only, never through a proxy).

    Raises:
        OSError: Nothing answers, or the answer is not 200.
    """
    if not path.startswith("/"):
        path = "/" + path
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with _NO_PROXY.open(url, timeout=timeout) as resp:
            body: bytes = resp.read()
            charset = resp.headers.get_content_charset() or "utf-8"
    except urllib.error.URLError as exc:
        raise OSError(f"{url}: {exc.reason}") from exc
    except (OSError, ValueError) as exc:  # connection reset, timeout, bad status line
        raise OSError(f"{url}: {exc}") from exc
    return body.decode(charset, errors="replace")
