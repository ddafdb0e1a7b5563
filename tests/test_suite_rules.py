"""Rules the test suite keeps about itself (cheap source checks, no services)."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"


def _required_distributions() -> set[str]:
    """Distributions the core dependencies and the ``dev`` extra install (normalized names)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def test_no_test_skips_when_a_dev_dependency_is_missing() -> None:
    # A missing dev dependency is a broken install: the tests that need it must fail, not skip.
    required = _required_distributions()
    by_module = importlib.metadata.packages_distributions()
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for name in re.findall(r"importorskip\(\s*[\"']([\w.]+)[\"']", text):
            dists = {d.lower().replace("_", "-") for d in by_module.get(name.split(".")[0], [])}
            if dists & required:
                offenders.append(f"{path.relative_to(REPO)}: importorskip({name!r})")
    assert offenders == []
    assert "torch" in required and "ray" in required  # the rule reads the real extras


def test_the_gpu_marker_is_used_by_real_discovery_tests() -> None:
    text = (TESTS / "trials" / "test_gpu.py").read_text(encoding="utf-8")
    assert "@pytest.mark.gpu" in text
