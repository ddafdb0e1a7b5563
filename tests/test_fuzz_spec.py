"""Property-based fuzzing of the spec front doors (hypothesis, derandomized, bounded).

Every example experiment and every Katib example file is mutated (values replaced by hostile
ones, keys deleted, renamed or given twice, the text truncated or spliced) and fed to
:func:`automl.spec.parse_spec`. Whatever the input, the only exception is a
:class:`~automl.errors.SpecError`, every issue names a field path (only document-level problems,
such as malformed YAML, have none), and no single case runs away: validation work is bounded by
the limits in ``automl.spec._yaml`` and ``automl.spec._limits``, so the generous per-case bound
below only catches a hang, not a slow machine.

The run is reproducible (``derandomize=True``, no example database) and small enough for every
CI run: :data:`CASES` cases, a few seconds.
"""

from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from automl.errors import SpecError
from automl.spec import parse_spec
from tests.conftest import KATIB_EXAMPLES, REPO

CASES = 200
#: A hang detector, ~100x the slowest case seen on a loaded 2-core machine (see the module doc).
RUNAWAY_S = 10.0

FILES = sorted(
    [
        *(p for p in (REPO / "examples").glob("*/experiment.yaml")),
        *KATIB_EXAMPLES.glob("*/*.yaml"),
    ]
)
DOCS = {p: yaml.safe_load(p.read_text()) for p in FILES}
# Issues about the document as a whole (no field to name).
DOCUMENT_LEVEL = (
    "malformed YAML",
    "the document is empty",
    "must be a mapping at the top level",
    "holds more than",
    "is nested more than",
    "refers to its own container",
)

HOSTILE = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**32, 2**63, 2**64, -1, 0, 1, 10**9, 400, 10_000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "${x}",
            "${lrr}",
            "$(touch /tmp/automl-fuzz-pwned)",
            "minimise",
            "n" * 300,
            "a\x00b",
            "1e308",
            "-1",
            "None",
            "[",
        ]
    ),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=5),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    st.recursive(st.integers(), lambda c: st.lists(c, max_size=3), max_leaves=20),
)


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a document, depth first."""
    out: list[tuple[Any, Any]] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        items = cur.items() if isinstance(cur, dict) else enumerate(cur)
        for k, v in list(items):
            out.append((cur, k))
            if isinstance(v, (dict, list)):
                stack.append(v)
    return out


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Path, str]:
    path = draw(st.sampled_from(FILES))
    doc = copy.deepcopy(DOCS[path])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        slots = _slots(doc)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(["replace", "replace", "delete", "rename"]))
        if op == "replace":
            container[key] = draw(HOSTILE)
        elif op == "delete":
            del container[key]
        elif isinstance(container, dict):
            new = draw(st.sampled_from([f"{key}x", str(key)[:-1], str(key).upper(), "spec"]))
            container[new] = container.pop(key)
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    cut = draw(st.sampled_from(["none", "none", "truncate", "splice", "twice"]))
    lines = text.splitlines(keepends=True)
    if cut == "truncate" and text:
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    elif cut == "splice" and text:
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = (
            text[:at] + draw(st.sampled_from(["[", "{", ": ", "&a ", "*a", "\t", "'"])) + text[at:]
        )
    elif cut == "twice" and lines:  # a key given twice
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        text = "".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
    return path, text


STATS = {"cases": 0, "errors": 0, "worst_s": 0.0}


@settings(
    max_examples=CASES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure reports its raw case
)
@given(mutated())
def test_mutated_specs_raise_only_spec_errors_with_paths(case: tuple[Path, str]) -> None:
    path, text = case
    STATS["cases"] += 1
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parse_spec(text, base_dir=path.parent, filename=str(path))
        except SpecError as exc:
            STATS["errors"] += 1
            assert exc.issues
            for issue in exc.issues:
                assert issue.message, issue
                assert issue.path or issue.message.startswith(DOCUMENT_LEVEL), issue
    took = time.perf_counter() - start
    STATS["worst_s"] = max(STATS["worst_s"], took)
    assert took < RUNAWAY_S, (path, took)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Any:
    yield
    if STATS["cases"]:
        print(
            f"\nfuzz: {STATS['cases']} cases, {STATS['errors']} SpecErrors, "
            f"slowest {STATS['worst_s'] * 1000:.0f} ms"
        )
