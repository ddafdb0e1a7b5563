"""Katib paths are container paths: nothing outside the runs directory is written without a map.

PBT's ``suggestion_trial_dir`` (``/var/log/katib/checkpoints/`` in Katib's files) is where each
trial's checkpoint directory is created; here it goes under ``<runs dir>/<experiment>/pbt``
unless ``--path-map`` maps it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

import search
from automl.core import TrialTemplate
from automl.spec import parse_spec
from tests.conftest import KATIB_EXAMPLES

KATIB_DIR = "/var/log/katib/checkpoints/"


def _pbt_spec(tmp_path: Path, path_map: dict[str, str] | None = None) -> Any:
    d = yaml.safe_load((KATIB_EXAMPLES / "hp-tuning" / "random.yaml").read_text())
    d["metadata"]["name"] = "pbt-paths"
    d["spec"]["algorithm"] = {
        "algorithmName": "pbt",
        "algorithmSettings": [
            {"name": "suggestion_trial_dir", "value": KATIB_DIR},
            {"name": "n_population", "value": "5"},
            {"name": "truncation_threshold", "value": "0.4"},
        ],
    }
    d["spec"]["parallelTrialCount"] = 5
    spec = parse_spec(yaml.safe_dump(d), base_dir=tmp_path)
    if path_map:
        t: TrialTemplate = spec.trial_template.model_copy(update={"path_map": path_map})
        spec = spec.model_copy(update={"trial_template": t})
    return spec


def _checkpoints(spec: Any, runs: Path) -> list[Path]:
    sug = search.create_suggester(spec, runs_dir=runs)
    out = []
    for s in sug.suggest(["t1", "t2"]):
        out.append(Path(str(s.attrs["checkpoint_dir"])))
    return out


def test_pbt_checkpoints_of_a_katib_file_stay_in_the_runs_directory(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    dirs = _checkpoints(_pbt_spec(tmp_path), runs)
    assert dirs and all(d.is_relative_to(runs / "pbt-paths" / "pbt") for d in dirs), dirs
    assert all(d.is_dir() for d in dirs)
    assert not Path(KATIB_DIR).exists()


def test_pbt_checkpoints_follow_a_path_map(tmp_path: Path) -> None:
    mapped = tmp_path / "katib-ckpt"
    spec = _pbt_spec(tmp_path, {"/var/log/katib": str(tmp_path / "katib-ckpt")})
    dirs = _checkpoints(spec, tmp_path / "runs")
    assert dirs and all(d.is_relative_to(mapped / "checkpoints") for d in dirs), dirs
    assert not (tmp_path / "runs").exists()
