"""Parameter codecs: types, bounds, steps and the prior each distribution puts on a range."""

from __future__ import annotations

import math
from typing import Any

import pytest

import automl
import search
from automl.core import (
    AlgorithmSpec,
    Direction,
    Distribution,
    ExperimentSpec,
    Objective,
    Parameter,
    ParameterType,
    ParamValue,
)
from search._space import SpaceCodec

INT, DOUBLE = ParameterType.INT, ParameterType.DOUBLE
CAT, DISC = ParameterType.CATEGORICAL, ParameterType.DISCRETE
U, LU = Distribution.UNIFORM, Distribution.LOG_UNIFORM
N, LN = Distribution.NORMAL, Distribution.LOG_NORMAL


def _p(
    type: ParameterType,
    min: float | None = None,
    max: float | None = None,
    *,
    step: float | None = None,
    dist: Distribution = U,
    values: tuple[ParamValue, ...] = (),
) -> Parameter:
    return Parameter(
        name="p", type=type, min=min, max=max, step=step, values=values, distribution=dist
    )


def sample(p: Parameter, n: int = 400, seed: int = 0) -> list[ParamValue]:
    """``n`` suggestions of the seeded random algorithm for a one-parameter space."""
    spec = ExperimentSpec(
        name="space",
        objective=Objective(type=Direction.MINIMIZE, metric="loss"),
        algorithm=AlgorithmSpec(name="random"),
        parameters=(p,),
        seed=seed,
        source="python",
    )
    s = search.create_suggester(spec)
    out = [x.params[p.name] for x in s.suggest([f"t{i}" for i in range(n)])]
    assert len(out) == n
    return out


NUMERIC = [
    pytest.param(_p(INT, 0, 12), id="int-uniform"),
    pytest.param(_p(INT, 0, 12, step=3), id="int-uniform-step"),
    pytest.param(_p(INT, 1, 1000, dist=LU), id="int-logUniform"),
    pytest.param(_p(INT, 2, 1000, step=2, dist=LU), id="int-logUniform-step"),
    pytest.param(_p(INT, 0, 12, dist=N), id="int-normal"),
    pytest.param(_p(INT, 1, 13, step=3, dist=N), id="int-normal-step"),
    pytest.param(_p(INT, 32, 64, dist=LN), id="int-logNormal"),
    pytest.param(_p(DOUBLE, -1.5, 2.5), id="double-uniform"),
    pytest.param(_p(DOUBLE, 0.0, 1.0, step=0.1), id="double-uniform-step"),
    pytest.param(_p(DOUBLE, 1e-3, 1e3, dist=LU), id="double-logUniform"),
    pytest.param(_p(DOUBLE, 0.001, 1000.001, step=0.5, dist=LU), id="double-logUniform-step"),
    pytest.param(_p(DOUBLE, 0.0, 12.0, dist=N), id="double-normal"),
    pytest.param(_p(DOUBLE, 0.01, 0.05, step=0.01, dist=N), id="double-normal-step"),
    pytest.param(_p(DOUBLE, 1.0, 1e6, dist=LN), id="double-logNormal"),
    pytest.param(_p(DOUBLE, 1.0, 100.0, step=3.3, dist=LN), id="double-logNormal-step"),
]


@pytest.mark.parametrize("p", NUMERIC)
def test_numeric_samples_in_range_on_step(p: Parameter) -> None:
    assert p.min is not None and p.max is not None
    assert not p.problems("p"), p.problems("p")
    values = sample(p)
    want = int if p.type is INT else float
    assert all(type(v) is want for v in values), {type(v) for v in values}
    assert all(p.min <= v <= p.max for v in values), (min(values), max(values))  # type: ignore[operator]
    step = p.step if p.step is not None else (1 if p.type is INT else None)
    if step is not None:
        for v in values:
            k = (float(v) - p.min) / step
            assert abs(k - round(k)) < 1e-6, (v, step)
        allowed = round((p.max - p.min) / step) + 1
        assert len(set(values)) <= allowed
    # The sampler explores the range rather than sticking to one point.
    assert len(set(values)) >= min(5, round((p.max - p.min) / (step or 1e-9)) + 1)


def _below(values: list[Any], x: float) -> float:
    return sum(v < x for v in values) / len(values)


def _within(values: list[Any], lo: float, hi: float) -> float:
    return sum(lo <= v <= hi for v in values) / len(values)


@pytest.mark.parametrize(
    "p",
    [
        pytest.param(_p(DOUBLE, 1e-3, 1e3, dist=LU), id="double"),
        pytest.param(_p(INT, 1, 10000, dist=LU), id="int"),
        pytest.param(_p(DOUBLE, 1e-4, 1.0, step=1e-4, dist=LU), id="double-step"),
    ],
)
def test_log_uniform_half_below_geometric_mean(p: Parameter) -> None:
    assert p.min is not None and p.max is not None
    values = sample(p)
    gm = math.sqrt(p.min * p.max)
    frac = _below(values, gm)
    # Uniform on [min, max] would put ~0.1-3% there; log-uniform puts half.
    assert 0.4 <= frac <= 0.6, frac
    # ... and a quarter in each of the log-quarters at the ends.
    q1 = p.min * (p.max / p.min) ** 0.25
    assert 0.15 <= _below(values, q1) <= 0.35


@pytest.mark.parametrize(
    "p",
    [
        pytest.param(_p(DOUBLE, 0.0, 12.0, dist=N), id="double"),
        pytest.param(_p(INT, 0, 120, dist=N), id="int"),
        pytest.param(_p(DOUBLE, 0.0, 12.0, step=0.25, dist=N), id="double-step"),
    ],
)
def test_normal_concentrates_in_the_middle(p: Parameter) -> None:
    assert p.min is not None and p.max is not None
    lo, hi = p.min, p.max
    values = sample(p)
    third = (hi - lo) / 3
    mid = _within(values, lo + third, hi - third)
    # Truncated normal with sigma = range/6: ~68% in the middle third (uniform: 33%).
    assert mid > 0.6, mid
    assert abs(sum(values) / len(values) - (lo + hi) / 2) < (hi - lo) * 0.05
    # Both tails are still reached.
    assert any(v < lo + third for v in values) and any(v > hi - third for v in values)


@pytest.mark.parametrize(
    "p",
    [
        pytest.param(_p(DOUBLE, 1.0, 1e6, dist=LN), id="double"),
        pytest.param(_p(INT, 1, 1_000_000, dist=LN), id="int"),
    ],
)
def test_log_normal_concentrates_in_the_middle_on_log_scale(p: Parameter) -> None:
    assert p.min is not None and p.max is not None
    values = sample(p)
    a = p.min * (p.max / p.min) ** (1 / 3)
    b = p.min * (p.max / p.min) ** (2 / 3)
    assert _within(values, a, b) > 0.6
    gm = math.sqrt(p.min * p.max)
    assert 0.4 <= _below(values, gm) <= 0.6  # symmetric on the log scale


def test_uniform_is_flat() -> None:
    values = sample(_p(DOUBLE, 0.0, 12.0))
    assert 0.25 <= _within(values, 4.0, 8.0) <= 0.42
    assert 0.4 <= _below(values, 6.0) <= 0.6


def test_categorical_keeps_typed_values() -> None:
    choices: tuple[ParamValue, ...] = ("rbf", 3, True, 2.5)
    values = sample(_p(CAT, values=choices), n=200)
    for v in values:
        assert any(type(v) is type(c) and v == c for c in choices), repr(v)
    assert {repr(v) for v in values} == {repr(c) for c in choices}  # every choice drawn


def test_discrete_values_are_numbers_from_the_list() -> None:
    choices: tuple[ParamValue, ...] = (0.1, 1, 10, 100.5)
    values = sample(_p(DISC, values=choices), n=200)
    assert {repr(v) for v in values} == {repr(c) for c in choices}
    for v in values:
        assert isinstance(v, (int, float)) and not isinstance(v, bool)


# ---------------------------------------------------------------------------------------------
# The codecs themselves
# ---------------------------------------------------------------------------------------------


def _codec(p: Parameter, grid: bool = False) -> Any:
    return SpaceCodec((p,), grid=grid).codecs[p.name]


@pytest.mark.parametrize(
    ("p", "warped"),
    [
        (_p(DOUBLE, 0, 1), False),
        (_p(DOUBLE, 0, 1, step=0.25), False),
        (_p(DOUBLE, 0.1, 10, dist=LU), False),
        (_p(INT, 1, 100, dist=LU), False),
        (_p(INT, 2, 100, step=2, dist=LU), True),
        (_p(DOUBLE, 0.1, 10.1, step=0.5, dist=LU), True),
        (_p(DOUBLE, 0, 1, dist=N), True),
        (_p(INT, 0, 10, dist=N), True),
        (_p(DOUBLE, 0.1, 10, dist=LN), True),
    ],
)
def test_which_codecs_are_warped(p: Parameter, warped: bool) -> None:
    assert _codec(p).warped is warped


UNIT = [i / 40 for i in range(1, 40)]


@pytest.mark.parametrize(
    "p",
    [
        pytest.param(_p(DOUBLE, 0.0, 12.0, dist=N), id="normal"),
        pytest.param(_p(DOUBLE, -3.0, 7.0, dist=N), id="normal-negative"),
        pytest.param(_p(DOUBLE, 1e-3, 1e3, dist=LN), id="logNormal"),
        pytest.param(_p(DOUBLE, 0.5, 2.0, dist=LN), id="logNormal-narrow"),
    ],
)
def test_warped_round_trip(p: Parameter) -> None:
    c = _codec(p)
    assert c.warped
    xs = [c.to_external(u) for u in UNIT]
    for u, x in zip(UNIT, xs, strict=True):
        assert p.min <= x <= p.max  # type: ignore[operator]
        assert c.to_internal(x) == pytest.approx(u, abs=1e-6)
    assert xs == sorted(xs)  # monotone: the model's ordering is the parameter's ordering
    assert c.to_external(0.5) == pytest.approx(
        (p.min + p.max) / 2 if p.distribution is N else math.sqrt(p.min * p.max)  # type: ignore[operator]
    )
    assert c.to_external(0.0) == pytest.approx(p.min)
    assert c.to_external(1.0) == pytest.approx(p.max)


@pytest.mark.parametrize(
    "p",
    [
        pytest.param(_p(DOUBLE, 0.01, 0.05, step=0.01, dist=N), id="normal-step"),
        pytest.param(_p(INT, 32, 64, dist=LN), id="int-logNormal"),
        pytest.param(_p(INT, 0, 20, step=4, dist=N), id="int-normal-step"),
        pytest.param(_p(INT, 2, 100, step=2, dist=LU), id="int-logUniform-step"),
    ],
)
def test_warped_stepped_values_are_fixed_points(p: Parameter) -> None:
    """A stored value maps back to itself: to_external(to_internal(v)) == v on the grid."""
    c = _codec(p)
    assert c.warped
    for v in p.grid():
        back = c.to_external(c.to_internal(v))
        assert back == pytest.approx(v)
        assert type(back) is type(v)


def test_unwarped_round_trip_is_identity() -> None:
    for p, v in [
        (_p(DOUBLE, 0, 1), 0.375),
        (_p(INT, 0, 10), 7),
        (_p(DOUBLE, 0.1, 10, dist=LU), 2.5),
        (_p(CAT, values=("a", "b")), "b"),
    ]:
        c = _codec(p)
        assert c.to_external(c.to_internal(v)) == v


def test_grid_codec_enumerates_katib_grid() -> None:
    c = _codec(_p(DOUBLE, 0.1, 0.3, step=0.1), grid=True)
    assert list(c.choices) == [0.1, 0.2, 0.3]  # not 0.30000000000000004
    c = _codec(_p(INT, 1, 9, step=4), grid=True)
    assert list(c.choices) == [1, 5, 9]


def test_categorical_codec_keeps_type_on_round_trip() -> None:
    choices: tuple[ParamValue, ...] = (1, True, "1", False, 0)
    c = _codec(_p(CAT, values=choices))
    for v in choices:
        back = c.to_external(c.to_internal(v))
        assert type(back) is type(v) and back == v, (v, back)


# ---------------------------------------------------------------------------------------------
# What an objective receives through automl.tune
# ---------------------------------------------------------------------------------------------


SEEN: list[dict[str, Any]] = []


def record_types(params: dict[str, Any]) -> float:
    SEEN.append(dict(params))
    return 0.0


def test_tune_passes_typed_values(sqlite_url: str) -> None:
    SEEN.clear()
    space = {
        "n": automl.int(1, 9, step=2),
        "lr": automl.double(1e-4, 1e-1, log=True),
        "m": automl.double(0.0, 1.0, distribution="normal"),
        "k": automl.int(32, 64, distribution="logNormal"),
        "kind": automl.categorical(["a", 7, False]),
        "size": automl.discrete([0.5, 2, 8]),
    }
    r = automl.tune(
        record_types, space, algorithm="random", max_trials=30, seed=1, store=sqlite_url
    )
    assert len(SEEN) == 30
    for params in SEEN:
        assert type(params["n"]) is int and params["n"] in (1, 3, 5, 7, 9)
        assert type(params["lr"]) is float and 1e-4 <= params["lr"] <= 1e-1
        assert type(params["m"]) is float and 0.0 <= params["m"] <= 1.0
        assert type(params["k"]) is int and 32 <= params["k"] <= 64
        assert any(
            type(params["kind"]) is type(c) and params["kind"] == c for c in ("a", 7, False)
        )
        assert params["size"] in (0.5, 2, 8)
    assert {repr(p["kind"]) for p in SEEN} == {"'a'", "7", "False"}
    # The stored trials keep the same types.
    trials = automl.Client(sqlite_url).trials(r.name)
    assert [dict(t.params) for t in trials] == SEEN
    assert {type(t.params["kind"]).__name__ for t in trials} == {"str", "int", "bool"}
