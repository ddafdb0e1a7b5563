"""Metrics collection: Katib's default regex, custom filters, JSON lines, report lines and
metric strategies (min / max / latest) as they end up on a stored trial."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

import automl
from automl import Client
from automl.core import Direction, MetricStrategy, MetricSummary, Objective, TrialState
from trials import (
    DEFAULT_FILTER,
    TextMetricParser,
    objective_value,
    parse_json_line,
    parse_report_line,
    summarize,
)

# -- Katib's default filter -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "metric", "value"),
    [
        ("loss=0.3", "loss", 0.3),
        ("accuracy=.98", "accuracy", 0.98),
        ("Score=-7.53e-05", "Score", -7.53e-05),
        ("loss = 2", "loss", 2.0),
        ("val-loss=1.5E+2", "val-loss", 150.0),
        ("accuracy=+0.5", "accuracy", 0.5),
    ],
)
def test_default_filter_katib_lines(line: str, metric: str, value: float) -> None:
    parsed = TextMetricParser([metric]).parse(line)
    assert parsed is not None
    assert parsed.values == {metric: pytest.approx(value)}
    assert parsed.step is None


def test_default_filter_reads_step_epoch_iteration() -> None:
    p = TextMetricParser(["accuracy"])
    for name in ("epoch", "step", "iteration", "Epoch"):
        parsed = p.parse(f"{name}=3 accuracy=0.91")
        assert parsed is not None
        assert parsed.values == {"accuracy": 0.91}
        assert parsed.step == 3, name


def test_default_filter_keeps_only_wanted_metrics() -> None:
    p = TextMetricParser(["loss", "accuracy"])
    parsed = p.parse("epoch=2 lr=0.01 loss=0.25 accuracy=0.9 other=7")
    assert parsed is not None
    assert dict(parsed.values) == {"loss": 0.25, "accuracy": 0.9}
    assert parsed.step == 2


@pytest.mark.parametrize(
    "line",
    [
        "",
        "training started",
        "lr=0.01",  # not a wanted metric
        "loss: 0.3",  # not the default form
        "loss=abc",  # no number
        "loss=",
    ],
)
def test_default_filter_ignores_lines_without_values(line: str) -> None:
    assert TextMetricParser(["loss"]).parse(line) is None


def test_non_integer_step_is_not_a_step() -> None:
    parsed = TextMetricParser(["loss"]).parse("epoch=1.5 loss=0.2")
    assert parsed is not None
    assert parsed.step is None
    assert parsed.values == {"loss": 0.2}


def test_default_filter_constant_is_katibs() -> None:
    assert DEFAULT_FILTER == r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"


# -- custom filters ---------------------------------------------------------------------------


def test_custom_filter_replaces_the_default() -> None:
    p = TextMetricParser(["accuracy", "loss"], [r"([\w|-]+)\s*:\s*((-?\d+)(\.\d+)?)"])
    parsed = p.parse("epoch: 4, accuracy: 0.75, loss: 1.25")
    assert parsed is not None
    assert dict(parsed.values) == {"accuracy": 0.75, "loss": 1.25}
    assert parsed.step == 4
    # The default `name=value` form no longer matches once a custom filter is given.
    assert p.parse("accuracy=0.5") is None


def test_several_custom_filters_all_apply() -> None:
    p = TextMetricParser(
        ["accuracy", "loss"], [r"(accuracy)\s+is\s+([\d.]+)", r"(loss)\s*->\s*([\d.]+)"]
    )
    parsed = p.parse("accuracy is 0.8 and loss -> 0.4")
    assert parsed is not None
    assert dict(parsed.values) == {"accuracy": 0.8, "loss": 0.4}


# -- JSON lines and automl.report lines -----------------------------------------------------


def test_json_line_numbers_and_numeric_strings() -> None:
    parsed = parse_json_line('{"accuracy": "0.9", "loss": 0.1, "epoch": 2}', ["accuracy", "loss"])
    assert parsed is not None
    assert dict(parsed.values) == {"accuracy": 0.9, "loss": 0.1}
    assert parsed.step == 2


@pytest.mark.parametrize(
    "line",
    ["not json", "[1, 2]", '{"other": 1}', '{"accuracy": "high"}', "{broken", '"accuracy"'],
)
def test_json_line_without_wanted_metrics(line: str) -> None:
    assert parse_json_line(line, ["accuracy"]) is None


def test_report_line() -> None:
    parsed = parse_report_line('{"step": 3, "metrics": {"accuracy": 0.5, "loss": "nan"}}')
    assert parsed is not None
    assert parsed.step == 3
    assert parsed.values["accuracy"] == 0.5
    assert math.isnan(parsed.values["loss"])
    assert parse_report_line('{"step": null, "metrics": {"a": 1}}').step is None  # type: ignore[union-attr]
    assert parse_report_line("garbage") is None
    assert parse_report_line('{"metrics": {"a": "x"}}') is None


# -- summaries and strategies ---------------------------------------------------------------


def test_summarize_tracks_min_max_latest_and_skips_nan() -> None:
    s: dict[str, MetricSummary] = {}
    for v in (0.5, 0.2, float("nan"), 0.9, 0.4):
        s = summarize(s, {"loss": v})
    assert s["loss"] == MetricSummary(min=0.2, max=0.9, latest=0.4)


@pytest.mark.parametrize(
    ("direction", "strategy", "expected"),
    [
        ("minimize", None, 0.2),  # Katib's default for minimize is min
        ("maximize", None, 0.9),  # and max for maximize
        ("minimize", "latest", 0.4),
        ("minimize", "max", 0.9),
        ("maximize", "min", 0.2),
    ],
)
def test_objective_value_strategy(direction: str, strategy: str | None, expected: float) -> None:
    obj = Objective(
        type=Direction(direction),
        metric="m",
        strategies={"m": MetricStrategy(strategy)} if strategy else {},
    )
    summary = {"m": MetricSummary(min=0.2, max=0.9, latest=0.4)}
    assert objective_value(obj, summary) == expected
    assert objective_value(obj, {}) is None


# -- strategies on stored trials (in-process and subprocess) ---------------------------------


@pytest.mark.parametrize(("strategy", "expected"), [("min", 0.1), ("max", 0.9), ("latest", 0.5)])
def test_strategy_applies_to_stored_value_in_process(
    sqlite_url: str, strategy: str, expected: float
) -> None:
    def objective(x: float) -> None:
        for step, v in enumerate((0.3, 0.1, 0.9, 0.5)):
            automl.report(step=step, loss=v, aux=v * 10)

    res = automl.tune(
        objective,
        {"x": automl.double(0, 1)},
        objective_metric="loss",
        additional_metrics=["aux"],
        metric_strategies={"loss": strategy, "aux": "latest"},
        max_trials=1,
        store=sqlite_url,
        name=f"strat-{strategy}",
        seed=0,
    )
    (trial,) = Client(sqlite_url).trials(res.name)
    assert trial.state is TrialState.SUCCEEDED
    assert trial.value == pytest.approx(expected)
    assert trial.metrics["loss"] == MetricSummary(0.1, 0.9, 0.5)
    assert trial.metrics["aux"].latest == pytest.approx(5.0)
    assert res.trials.loc[0, "aux"] == pytest.approx(5.0)  # the table uses aux's strategy


def test_stdout_strategy_latest_with_steps_and_additional_metric(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(
        "print('epoch=1 accuracy=0.5 fit_seconds=3')\n"
        "print('noise accuracy without value')\n"
        "print('epoch=2 accuracy=0.95 fit_seconds=2')\n"
        "print('epoch=3 accuracy=0.7 fit_seconds=1')\n"
    )
    doc = {
        "name": "stdout-latest",
        "objective": {
            "metric": "accuracy",
            "direction": "maximize",
            "additional_metrics": ["fit_seconds"],
            "strategies": {"accuracy": "latest"},
        },
        "algorithm": "random",
        "parameters": {"x": {"type": "int", "min": 0, "max": 3}},
        "budget": {"max_trials": 1},
        "trial": {"command": ["python", "script.py", "${x}"]},
    }
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    client = Client(url, runs_dir=tmp_path / "runs")
    client.run(f)
    (t,) = client.trials("stdout-latest")
    assert t.state is TrialState.SUCCEEDED, t.message
    assert t.value == pytest.approx(0.7)  # latest, though max would be 0.95
    # fit_seconds has no strategy: it falls back to the objective's default (max).
    assert t.metrics["fit_seconds"] == MetricSummary(1.0, 3.0, 1.0)
    obs = [(o.metric, o.step, o.value) for o in client.observations("stdout-latest")]
    assert sorted(obs) == sorted(
        [
            ("accuracy", 1, 0.5),
            ("fit_seconds", 1, 3.0),
            ("accuracy", 2, 0.95),
            ("fit_seconds", 2, 2.0),
            ("accuracy", 3, 0.7),
            ("fit_seconds", 3, 1.0),
        ]
    )
