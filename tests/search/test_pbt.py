"""Population-based training: generations, exploit/explore, checkpoints, lineage, rebuilds."""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

import automl
from automl.core import (
    AlgorithmSpec,
    Direction,
    Distribution,
    ExperimentSpec,
    Objective,
    Parameter,
    ParameterType,
    Suggestion,
    TrialRecord,
    TrialState,
)
from automl.errors import SpecError
from search import create_suggester
from search._pbt import PARENT_SUFFIX, PbtSuggester, _perturb

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pbt" / "experiment.yaml"

PARAMS = (
    Parameter(
        name="lr",
        type=ParameterType.DOUBLE,
        min=1e-4,
        max=1.0,
        distribution=Distribution.LOG_UNIFORM,
    ),
    Parameter(name="units", type=ParameterType.INT, min=1, max=100),
    Parameter(name="drop", type=ParameterType.DOUBLE, min=0.0, max=0.5, step=0.05),
    Parameter(name="act", type=ParameterType.CATEGORICAL, values=("relu", "tanh", "gelu")),
    Parameter(name="batch", type=ParameterType.DISCRETE, values=(128, 32, 64)),
)


def make_spec(
    tmp_path: Path | None,
    *,
    direction: Direction = Direction.MAXIMIZE,
    parameters: tuple[Parameter, ...] = PARAMS,
    **settings: Any,
) -> ExperimentSpec:
    base: dict[str, Any] = {"n_population": 6, "truncation_threshold": 0.34, "random_state": 7}
    if tmp_path is not None:
        base["suggestion_trial_dir"] = str(tmp_path / "ckpt")
    base.update(settings)
    base = {k: v for k, v in base.items() if v is not None}
    return ExperimentSpec(
        name="pbt-test",
        objective=Objective(type=direction, metric="acc"),
        algorithm=AlgorithmSpec(name="pbt", settings=base),
        parameters=parameters,
        parallel_trial_count=3,
    )


class Sim:
    """Drives a suggester like the controller does, keeping every trial as the store would."""

    def __init__(self, suggester: PbtSuggester) -> None:
        self.s = suggester
        self.trials: dict[str, TrialRecord] = {}
        self.n = 0

    def ids(self, k: int, prefix: str = "pbt-test-") -> list[str]:
        return [f"{prefix}{self.n + i:08d}" for i in range(k)]

    def suggest(self, k: int) -> list[tuple[str, Suggestion]]:
        ids = self.ids(k)
        got = self.s.suggest(ids)
        out = list(zip(ids, got, strict=False))
        for tid, sug in out:
            self.trials[tid] = TrialRecord(
                id=tid,
                experiment_id="x",
                number=self.n,
                params=dict(sug.params),
                state=TrialState.RUNNING,
                attrs=json.loads(json.dumps(dict(sug.attrs))),  # what the store gives back
            )
            self.n += 1
        return out

    def finish(
        self, tid: str, value: float | None, state: TrialState = TrialState.SUCCEEDED
    ) -> None:
        t = self.trials[tid]
        ckpt = Path(t.attrs["checkpoint_dir"])
        (ckpt / "weights.txt").write_text(tid)  # what a trainer writes
        (ckpt / "sub").mkdir(exist_ok=True)
        (ckpt / "sub" / "opt.txt").write_text(f"opt of {tid}")
        done = TrialRecord(
            id=t.id,
            experiment_id="x",
            number=t.number,
            params=t.params,
            state=state,
            value=value,
            attrs=t.attrs,
        )
        self.trials[tid] = done
        self.s.tell(done)

    def history(self) -> list[TrialRecord]:
        return sorted(self.trials.values(), key=lambda t: t.number)

    def generation(self, g: int) -> list[TrialRecord]:
        return [t for t in self.history() if t.attrs["pbt"]["generation"] == g]


def run_generation(sim: Sim, score: Callable[[int, TrialRecord], float | None]) -> list[str]:
    """Hand out one whole generation and finish it with ``score(slot, trial)``."""
    got = sim.suggest(50)
    for i, (tid, _) in enumerate(got):
        value = score(i, sim.trials[tid])
        sim.finish(tid, value, TrialState.SUCCEEDED if value is not None else TrialState.FAILED)
    return [tid for tid, _ in got]


def in_space(params: Mapping[str, Any]) -> None:
    assert 1e-4 <= params["lr"] <= 1.0
    assert isinstance(params["units"], int) and 1 <= params["units"] <= 100
    assert 0.0 <= params["drop"] <= 0.5
    assert math.isclose(params["drop"] / 0.05, round(params["drop"] / 0.05), abs_tol=1e-9)
    assert params["act"] in ("relu", "tanh", "gelu")
    assert params["batch"] in (32, 64, 128)


def perturbed_from(p: Parameter, old: Any, new: Any) -> bool:
    """Whether ``new`` is one of the values a x0.8/x1.2 perturbation of ``old`` can give."""
    return any(new == _perturb(p, old, _Fixed(f, d)) for f in (0.8, 1.2) for d in (-1, 1))


class _Fixed(random.Random):
    """A generator whose choice() always picks ``factor`` (numbers) or ``delta`` (choices)."""

    def __init__(self, factor: float, delta: int) -> None:
        super().__init__(0)
        self.factor, self.delta = factor, delta

    def choice(self, seq: Any) -> Any:
        return self.factor if self.factor in seq else self.delta


# -- generation 0 and the generation barrier -------------------------------------------------
def test_generation_zero_is_n_seeded_random_trials(tmp_path: Path) -> None:
    sim = Sim(PbtSuggester(make_spec(tmp_path)))
    got = sim.suggest(10)
    assert len(got) == 6  # never more than the population
    for tid, s in got:
        in_space(s.params)
        assert s.attrs["pbt"] == {"generation": 0, "parent": None, "replaces": None}
        assert "parent_checkpoint_dir" not in s.attrs
        ckpt = Path(s.attrs["checkpoint_dir"])
        assert ckpt == (tmp_path / "ckpt" / tid).resolve()
        assert ckpt.is_dir() and not any(ckpt.iterdir())
    again = PbtSuggester(make_spec(tmp_path / "other")).suggest(["a", "b", "c", "d", "e", "f"])
    assert [s.params for s in again] == [s.params for _, s in got]  # seeded
    assert len({json.dumps(s.params, sort_keys=True) for _, s in got}) == 6


def test_nothing_is_suggested_mid_generation(tmp_path: Path) -> None:
    sim = Sim(PbtSuggester(make_spec(tmp_path)))
    first = sim.suggest(4)
    assert len(first) == 4
    rest = sim.suggest(4)
    assert len(rest) == 2
    assert sim.suggest(3) == []
    for i, (tid, _) in enumerate(first + rest[:1]):
        sim.finish(tid, float(i))
        assert sim.suggest(3) == []  # the generation is not complete
        assert sim.s.generation == 0
    sim.finish(rest[1][0], 5.0)
    assert sim.s.generation == 1
    nxt = sim.suggest(2)
    assert [s.attrs["pbt"]["generation"] for _, s in nxt] == [1, 1]
    assert len(sim.suggest(10)) == 4
    assert sim.suggest(1) == []
    assert not sim.s.exhausted


def test_sizes_over_generations(tmp_path: Path) -> None:
    sim = Sim(PbtSuggester(make_spec(tmp_path, n_population=5, truncation_threshold=0.2)))
    for _ in range(4):
        run_generation(sim, lambda i, t: float(t.params["lr"]))
    assert [len(sim.generation(g)) for g in range(4)] == [5, 5, 5, 5]


# -- exploit and explore ---------------------------------------------------------------------
@pytest.mark.parametrize("direction", [Direction.MAXIMIZE, Direction.MINIMIZE])
def test_bottom_fraction_takes_a_top_checkpoint_and_perturbed_params(
    tmp_path: Path, direction: Direction
) -> None:
    spec = make_spec(tmp_path, direction=direction, n_population=10, truncation_threshold=0.2)
    sim = Sim(PbtSuggester(spec))
    sign = 1.0 if direction is Direction.MAXIMIZE else -1.0
    gen0 = run_generation(sim, lambda i, t: sign * i)  # slot 9 is the best, slot 0 the worst
    bottom, top = set(gen0[:2]), set(gen0[-2:])
    gen1 = sim.suggest(20)
    assert len(gen1) == 10
    by_id = {t.id: t for t in sim.history()}
    exploited = 0
    for slot, (tid, s) in enumerate(gen1):
        lineage = s.attrs["pbt"]
        assert lineage["generation"] == 1
        assert lineage["replaces"] == gen0[slot]  # one member per slot of the population
        parent = by_id[lineage["parent"]]
        copy = Path(s.attrs["parent_checkpoint_dir"])
        assert copy == Path(s.attrs["checkpoint_dir"]).with_name(tid + PARENT_SUFFIX)
        # The parent's checkpoint, copied (not linked): files and subdirectories.
        assert (copy / "weights.txt").read_text() == parent.id
        assert (copy / "sub" / "opt.txt").read_text() == f"opt of {parent.id}"
        assert copy != Path(parent.attrs["checkpoint_dir"]) and not copy.is_symlink()
        assert not any(Path(s.attrs["checkpoint_dir"]).iterdir())  # its own dir starts empty
        in_space(s.params)
        if gen0[slot] in bottom:
            exploited += 1
            assert parent.id in top
            for p in PARAMS:
                assert perturbed_from(p, parent.params[p.name], s.params[p.name]), p.name
            assert s.params != parent.params
        else:
            assert parent.id == gen0[slot]  # continues itself
            assert s.params == parent.params
    assert exploited == 2


def test_lineage_chains_through_generations(tmp_path: Path) -> None:
    sim = Sim(PbtSuggester(make_spec(tmp_path, n_population=5, truncation_threshold=0.4)))
    for _ in range(3):
        run_generation(sim, lambda i, t: float(t.params["units"]))
    by_id = {t.id: t for t in sim.history()}
    for t in sim.history():
        g, parent = t.attrs["pbt"]["generation"], t.attrs["pbt"]["parent"]
        if g == 0:
            assert parent is None
        else:
            assert by_id[parent].attrs["pbt"]["generation"] == g - 1
            assert by_id[t.attrs["pbt"]["replaces"]].attrs["pbt"]["generation"] == g - 1


def test_failed_trials_rank_last_are_replaced_and_never_parents(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, n_population=6, truncation_threshold=0.2)  # floor(1.2) = 1
    sim = Sim(PbtSuggester(spec))
    gen0 = run_generation(sim, lambda i, t: None if i in (1, 2, 4) else float(i))
    gen1 = sim.suggest(6)
    parents = {s.attrs["pbt"]["replaces"]: s.attrs["pbt"]["parent"] for _, s in gen1}
    # The 3 failed rank last, so they are the bottom fraction (of 1) and more: all are
    # replaced by a copy of the best; the worst succeeded trial (slot 0) continues itself.
    for slot in (1, 2, 4):
        assert parents[gen0[slot]] == gen0[5]
    for slot in (0, 3, 5):
        assert parents[gen0[slot]] == gen0[slot]


def test_a_generation_without_success_starts_afresh(tmp_path: Path) -> None:
    sim = Sim(PbtSuggester(make_spec(tmp_path, n_population=5)))
    gen0 = run_generation(sim, lambda i, t: None)
    gen1 = sim.suggest(5)
    assert len(gen1) == 5
    for slot, (_, s) in enumerate(gen1):
        assert s.attrs["pbt"] == {"generation": 1, "parent": None, "replaces": gen0[slot]}
        assert "parent_checkpoint_dir" not in s.attrs
        in_space(s.params)


def test_truncation_zero_keeps_everyone(tmp_path: Path) -> None:
    sim = Sim(PbtSuggester(make_spec(tmp_path, n_population=5, truncation_threshold=0)))
    gen0 = run_generation(sim, lambda i, t: float(i))
    gen1 = sim.suggest(5)
    assert [s.attrs["pbt"]["parent"] for _, s in gen1] == gen0
    assert [s.params for _, s in gen1] == [sim.trials[t].params for t in gen0]


def test_resample_probability_one_resamples(tmp_path: Path) -> None:
    lr = (PARAMS[0],)
    ratios: dict[float, list[float]] = {}
    for prob in (0.0, 1.0):
        spec = make_spec(
            tmp_path / str(prob),
            parameters=lr,
            n_population=20,
            truncation_threshold=0.5,
            resample_probability=prob,
        )
        sim = Sim(PbtSuggester(spec))
        run_generation(sim, lambda i, t: float(i))
        gen1 = sim.suggest(20)
        ratios[prob] = [
            float(s.params["lr"]) / float(sim.trials[s.attrs["pbt"]["parent"]].params["lr"])
            for tid, s in gen1
            if s.attrs["pbt"]["parent"] != s.attrs["pbt"]["replaces"]
        ]
        assert len(ratios[prob]) == 10
    # Perturbed: x0.8 or x1.2 (or clipped at a bound); resampled: anything in the space.
    close = [any(math.isclose(r, f) for f in (0.8, 1.2)) for r in ratios[0.0]]
    assert sum(close) >= 8
    assert not any(any(math.isclose(r, f) for f in (0.8, 1.2)) for r in ratios[1.0])


def test_perturbation_rules() -> None:
    lr, units, drop, act, batch = PARAMS
    up, down = _Fixed(1.2, 1), _Fixed(0.8, -1)
    assert _perturb(units, 10, up) == 12 and _perturb(units, 10, down) == 8
    assert _perturb(units, 1, up) == 2  # rounding would undo the move: one step instead
    assert _perturb(units, 3, down) == 2
    assert _perturb(units, 1, down) == 1  # clipped at min
    assert _perturb(units, 95, up) == 100  # clipped at max
    assert _perturb(drop, 0.25, up) == 0.3 and _perturb(drop, 0.25, down) == 0.2
    assert _perturb(drop, 0.05, up) == 0.1  # 0.06 rounds back to 0.05: one step up
    assert _perturb(drop, 0.5, up) == 0.5
    assert math.isclose(float(_perturb(lr, 0.01, up)), 0.012)
    assert _perturb(lr, 0.9, up) == 1.0
    assert isinstance(_perturb(units, 50, up), int)
    # Categorical: the neighbour in the listed order; discrete: in numeric order; ends stay.
    assert _perturb(act, "tanh", up) == "gelu" and _perturb(act, "tanh", down) == "relu"
    assert _perturb(act, "relu", down) == "relu"
    assert _perturb(batch, 64, up) == 128 and _perturb(batch, 64, down) == 32
    assert _perturb(batch, 128, up) == 128


# -- rebuilding from the store ---------------------------------------------------------------
def _value(t: TrialRecord) -> float:
    return -abs(math.log10(float(t.params["lr"])) + 2) + int(t.params["units"]) / 100


@pytest.mark.parametrize("cut", [0, 3, 6, 8, 12, 13, 15])
@pytest.mark.parametrize("seeded", [True, False])
def test_rebuilt_from_history_continues_identically(
    tmp_path: Path, cut: int, seeded: bool
) -> None:
    """Suggest 3 at a time and finish the oldest; at step ``cut`` rebuild and compare."""
    spec = make_spec(tmp_path, random_state=7 if seeded else None)
    a = Sim(PbtSuggester(spec))
    running: list[str] = []
    b: Sim | None = None
    sims = [a]
    for step in range(30):
        if step == cut:
            history = a.history()  # what the controller loads after a crash
            rebuilt = create_suggester(spec, history, dict(a.s.state()))
            assert isinstance(rebuilt, PbtSuggester)
            b = Sim(rebuilt)
            b.trials = dict(a.trials)
            b.n = a.n
            sims = [a, b]
            if seeded:
                assert a.s.state()["seed"] == 7
        outs = [sim.suggest(3 - len(running)) for sim in sims]
        if b is not None:
            assert [(t, s.params, s.attrs) for t, s in outs[0]] == [
                (t, s.params, s.attrs) for t, s in outs[1]
            ]
            assert b.s.generation == a.s.generation
        running += [tid for tid, _ in outs[0]]
        if running:
            tid = running.pop(0)
            for sim in sims:
                sim.finish(tid, _value(sim.trials[tid]))
    assert b is not None
    assert a.s.generation >= 3


def test_rebuild_keeps_active_trials_as_members(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    a = Sim(PbtSuggester(spec))
    gen0 = a.suggest(6)
    for tid, _ in gen0[:4]:
        a.finish(tid, 1.0)
    b = Sim(PbtSuggester(spec, a.history(), a.s.state()))
    b.trials, b.n = dict(a.trials), a.n
    assert b.s.suggest(["new-1"]) == []  # the two active ones will run again, then be told
    b.finish(gen0[4][0], 2.0)
    assert b.s.suggest(["new-1"]) == []
    b.finish(gen0[5][0], 3.0)
    assert b.s.generation == 1 and len(b.suggest(6)) == 6


def test_state_keeps_the_checkpoint_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = PbtSuggester(make_spec(None, random_state=None))
    root = (tmp_path / "automl-runs" / "pbt-test" / "pbt").resolve()
    assert s.checkpoint_root == root and root.is_absolute()
    assert s.state()["checkpoint_root"] == str(root)
    assert isinstance(s.state()["seed"], int)  # unseeded: drawn once, then kept
    first = s.suggest(["a", "b"])
    assert first[0].attrs["checkpoint_dir"] == str(root / "a")
    monkeypatch.chdir(root)  # a resume from another directory
    again = PbtSuggester(make_spec(None, random_state=None), (), s.state())
    assert again.checkpoint_root == root
    assert again.suggest(["a", "b"]) == first
    elsewhere = PbtSuggester(make_spec(None), runs_dir=tmp_path / "runs")
    assert elsewhere.checkpoint_root == tmp_path / "runs" / "pbt-test" / "pbt"


def test_missing_parent_checkpoint_is_an_error(tmp_path: Path) -> None:
    sim = Sim(PbtSuggester(make_spec(tmp_path, n_population=5)))
    gen0 = run_generation(sim, lambda i, t: float(i))
    shutil.rmtree(sim.trials[gen0[1]].attrs["checkpoint_dir"])
    # Slot 0 (replaced by the best's copy) is ready; slot 1 continues gen0[1], whose
    # checkpoint is gone: what is ready is handed out, then the error surfaces.
    assert len(sim.s.suggest(["z-0", "z-1", "z-2"])) == 1
    with pytest.raises(FileNotFoundError, match=gen0[1]):
        sim.s.suggest(["z-1"])


# -- settings --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"n_population": 3}, "algorithm.settings.n_population"),
        ({"n_population": "4"}, "algorithm.settings.n_population"),
        ({"truncation_threshold": 1.5}, "algorithm.settings.truncation_threshold"),
        ({"truncation_threshold": "-0.1"}, "algorithm.settings.truncation_threshold"),
        ({"resample_probability": 2}, "algorithm.settings.resample_probability"),
        ({"suggestion_trial_dir": ""}, "algorithm.settings.suggestion_trial_dir"),
        ({"mutation": 0.1}, "algorithm.settings.mutation"),
    ],
)
def test_bad_settings_are_spec_errors(tmp_path: Path, settings: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as err:
        PbtSuggester(make_spec(tmp_path, **settings))
    assert path in [i.path for i in err.value.issues]
    with pytest.raises(SpecError) as err:
        automl.tune(
            _objective,
            {"lr": automl.double(1e-3, 1.0)},
            algorithm="pbt",
            algorithm_settings=settings,
            max_trials=5,
            store=f"sqlite:///{tmp_path}/s.db",
        )
    setting = path.rsplit(".", 1)[1]
    assert f"algorithm_settings.{setting}" in [i.path for i in err.value.issues]


def test_katib_string_settings(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, n_population="5", truncation_threshold="0.4")
    sim = Sim(PbtSuggester(spec))
    run_generation(sim, lambda i, t: float(i))
    lineages = [s.attrs["pbt"] for _, s in sim.suggest(5)]
    assert sum(x["parent"] != x["replaces"] for x in lineages) == 2


# -- end to end ------------------------------------------------------------------------------
def _objective(lr: float, depth: int, opt: str) -> float:
    """A trainer: resumes its parent's state, takes one step, saves, returns its score."""
    info = automl.current_trial()
    assert info is not None and info.checkpoint_dir is not None
    state: dict[str, Any] = {"steps": 0, "score": 0.0, "trail": []}
    if info.parent_checkpoint_dir is not None:
        state = json.loads((Path(info.parent_checkpoint_dir) / "state.json").read_text())
    state["steps"] += 1
    state["score"] += lr * depth * (2.0 if opt == "adam" else 1.0)
    state["trail"].append(info.id)
    (Path(info.checkpoint_dir) / "state.json").write_text(json.dumps(state))
    return float(state["score"])


def test_tune_end_to_end_in_process(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/s.db"
    result = automl.tune(
        _objective,
        {
            "lr": automl.double(0.01, 1.0, log=True),
            "depth": automl.int(1, 8),
            "opt": automl.categorical(["sgd", "adam"]),
        },
        objective_metric="score",
        direction="maximize",
        algorithm="pbt",
        algorithm_settings={
            "n_population": 5,
            "truncation_threshold": 0.4,
            "suggestion_trial_dir": str(tmp_path / "ckpt"),
        },
        max_trials=15,
        parallel_trials=2,
        seed=3,
        name="pbt-e2e",
        store=store,
    )
    assert result.experiment.reason == "ExperimentMaxTrialsReached"
    client = automl.Client(store)
    try:
        trials = client.trials("pbt-e2e")
        state = client.get("pbt-e2e").sampler_state
    finally:
        client.close()
    assert len(trials) == 15 and all(t.state is TrialState.SUCCEEDED for t in trials)
    assert state["seed"] == 3 and state["checkpoint_root"] == str((tmp_path / "ckpt").resolve())
    by_id = {t.id: t for t in trials}
    gens = [t.attrs["pbt"]["generation"] for t in trials]
    assert gens == [0] * 5 + [1] * 5 + [2] * 5  # creation order follows the generations
    for t in trials:
        g, parent = t.attrs["pbt"]["generation"], t.attrs["pbt"]["parent"]
        saved = json.loads((Path(t.attrs["checkpoint_dir"]) / "state.json").read_text())
        assert saved["steps"] == g + 1  # every trial continued a lineage from generation 0
        assert saved["trail"][-1] == t.id
        if g == 0:
            assert parent is None and "parent_checkpoint_dir" not in t.attrs
            continue
        assert by_id[parent].attrs["pbt"]["generation"] == g - 1
        inherited = json.loads((Path(t.attrs["parent_checkpoint_dir"]) / "state.json").read_text())
        assert inherited["trail"][-1] == parent  # the copy is the parent's checkpoint
        assert saved["trail"][:-1] == inherited["trail"]
        if parent == t.attrs["pbt"]["replaces"]:
            assert t.params == by_id[parent].params
        else:  # replaced: the parent was in the top 2 of its generation
            peers = sorted(
                (x for x in trials if x.attrs["pbt"]["generation"] == g - 1),
                key=lambda x: -(x.value or 0.0),
            )
            assert parent in {x.id for x in peers[:2]}
    replaced = [t for t in trials if t.attrs["pbt"]["parent"] != t.attrs["pbt"]["replaces"]]
    assert len(replaced) == 4  # floor(5 * 0.4) = 2 per generation after the first


def test_example_spec_loads() -> None:
    from automl.spec import load_spec

    spec = load_spec(EXAMPLE)
    assert spec.algorithm.name == "pbt"
    assert PbtSuggester(spec).state()["checkpoint_root"].endswith("automl-runs/pbt-digits/pbt")


@pytest.mark.integration
def test_example_runs_with_checkpoints(tmp_path: Path) -> None:
    """The shipped example through the process executor (8 trials: a generation and a bit)."""
    from automl.spec import load_spec

    spec = load_spec(EXAMPLE)
    settings = {**spec.algorithm.settings, "suggestion_trial_dir": str(tmp_path / "ckpt")}
    spec = spec.model_copy(
        update={
            "algorithm": AlgorithmSpec(name="pbt", settings=settings),
            "max_trial_count": 8,
        }
    )
    client = automl.Client(f"sqlite:///{tmp_path}/s.db", runs_dir=tmp_path / "runs")
    try:
        result = client.run(spec)
        trials = client.trials(spec.name)
    finally:
        client.close()
    assert result.experiment.reason == "ExperimentMaxTrialsReached"
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 8
    for t in trials:
        assert (Path(t.attrs["checkpoint_dir"]) / "model.pkl").is_file()
    later = [t for t in trials if t.attrs["pbt"]["generation"] == 1]
    assert len(later) == 2
    for t in later:
        assert (Path(t.attrs["parent_checkpoint_dir"]) / "model.pkl").is_file()
        log = (tmp_path / "runs" / spec.name / t.id / "trial.log").read_text()
        assert "resumed from" in log and "epoch=6 accuracy=" in log
