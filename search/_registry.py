"""The algorithm registry: names, settings (Katib's where they apply) and sampler factories.

Each entry validates its settings strictly: an unknown algorithm or setting, or a value that
breaks a rule, is a :class:`~automl.errors.SpecError` naming the setting, the rule and the value.
Settings may arrive as strings (Katib writes every value as a string).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from automl.core import ExperimentSpec, ParameterType
from automl.errors import SpecError, SpecIssue

__all__ = [
    "ALGORITHMS",
    "ALIASES",
    "MULTI_OBJECTIVE",
    "AlgorithmInfo",
    "Setting",
    "algorithm_names",
    "canonical_name",
    "resolve_settings",
]


@dataclass(frozen=True)
class Setting:
    """One algorithm setting: its type, rule and default."""

    kind: str  # "int", "float", "bool", "str" or "choice"
    default: Any = None
    rule: str = ""
    check: Callable[[Any], bool] = field(default=lambda v: True)
    choices: tuple[str, ...] = ()
    alias_of: str | None = None
    required: bool = False

    def parse(self, raw: Any, path: str) -> Any:
        """Coerce ``raw`` (possibly a string) to this setting's type and check the rule."""
        try:
            if self.kind == "int":
                if isinstance(raw, bool):
                    raise ValueError
                value: Any = int(str(raw)) if not isinstance(raw, int) else raw
            elif self.kind == "float":
                if isinstance(raw, bool):
                    raise ValueError
                value = float(raw)
                if not math.isfinite(value):
                    raise ValueError
            elif self.kind == "str":
                if raw is None or str(raw) == "":
                    raise ValueError
                value = str(raw)
            elif self.kind == "bool":
                if isinstance(raw, bool):
                    value = raw
                elif str(raw).lower() in ("true", "false"):
                    value = str(raw).lower() == "true"
                else:
                    raise ValueError
            else:
                value = str(raw)
                if value not in self.choices:
                    raise SpecError(
                        [SpecIssue(path, f"must be one of {list(self.choices)}; got {raw!r}")]
                    )
        except SpecError:
            raise  # already names what was wrong (a SpecError is a ValueError too)
        except (ValueError, TypeError) as exc:
            raise SpecError(
                [SpecIssue(path, f"must be {_article(self.kind)}; got {raw!r}")]
            ) from exc
        if self.kind == "int" and not -INT_SETTING_MAX <= value <= INT_SETTING_MAX:
            raise SpecError(
                [
                    SpecIssue(
                        path, f"must be {self.rule} and at most {INT_SETTING_MAX}; got {raw!r}"
                    )
                ]
            )
        if not self.check(value):
            raise SpecError([SpecIssue(path, f"must be {self.rule}; got {raw!r}")])
        return value


#: The largest integer setting (every count and size a sampler takes fits a C int).
INT_SETTING_MAX = 2**31 - 1
#: Seeds: numpy's generators (and so Optuna's samplers) take 0 <= seed < 2**32.
SEED_MAX = 2**32 - 1
#: Sizes a sampler allocates arrays for (candidates, populations).
SIZE_MAX = 100_000


def _article(kind: str) -> str:
    return {
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "str": "a non-empty string",
    }.get(kind, kind)


@dataclass(frozen=True)
class AlgorithmInfo:
    """A registered algorithm: what it is, its settings, and the rules it puts on the space."""

    description: str
    settings: Mapping[str, Setting]
    min_numeric_params: int = 0


_SEED = Setting("int", rule=f"an integer in [0, {SEED_MAX}]", check=lambda v: 0 <= v <= SEED_MAX)
_SEED_ALIAS = Setting(
    "int",
    rule=f"an integer in [0, {SEED_MAX}]",
    check=lambda v: 0 <= v <= SEED_MAX,
    alias_of="random_state",
)
_SIZE_RULE = f"an integer in [1, {SIZE_MAX}]"
_STARTUP = Setting("int", 10, "an integer >= 0", lambda v: v >= 0)
_TPE_SETTINGS: dict[str, Setting] = {
    "random_state": _SEED,
    "seed": _SEED_ALIAS,
    "n_startup_trials": _STARTUP,
    "n_ei_candidates": Setting("int", 24, _SIZE_RULE, lambda v: 0 < v <= SIZE_MAX),
    "n_EI_candidates": Setting(
        "int", 24, _SIZE_RULE, lambda v: 0 < v <= SIZE_MAX, alias_of="n_ei_candidates"
    ),
    "gamma": Setting("float", None, "a number in (0, 1)", lambda v: 0 < v < 1),
    "prior_weight": Setting("float", None, "a number > 0", lambda v: v > 0),
    "constant_liar": Setting("bool", True),
    "multivariate": Setting("bool", None),
}

_NSGA_SETTINGS: dict[str, Setting] = {
    "random_state": _SEED,
    "seed": _SEED_ALIAS,
    "population_size": Setting(
        "int", 50, f"an integer in [2, {SIZE_MAX}]", lambda v: 2 <= v <= SIZE_MAX
    ),
    "mutation_prob": Setting("float", None, "a number in [0, 1]", lambda v: 0 <= v <= 1),
    "crossover_prob": Setting("float", 0.9, "a number in [0, 1]", lambda v: 0 <= v <= 1),
    "swapping_prob": Setting("float", 0.5, "a number in [0, 1]", lambda v: 0 <= v <= 1),
}

#: Algorithms that search several objectives at once (the others refuse a multi-objective spec).
MULTI_OBJECTIVE = frozenset(
    {
        "auto",
        "random",
        "grid",
        "sobol",
        "tpe",
        "multivariate-tpe",
        "motpe",
        "nsga2",
        "nsga3",
        "bayesianoptimization",
    }
)

ALGORITHMS: dict[str, AlgorithmInfo] = {
    "auto": AlgorithmInfo(
        "The default: scrambled Sobol points, then a Gaussian process on power-transformed "
        "values for numeric and mixed spaces, multivariate TPE for categorical-only spaces, "
        "large spaces and long runs; each trial records its strategy (docs/search.md).",
        {
            "random_state": _SEED,
            "seed": _SEED_ALIAS,
            "n_initial_points": Setting("int", None, "an integer >= 1", lambda v: v >= 1),
            "gp_max_trials": Setting("int", 200, "an integer >= 0", lambda v: v >= 0),
        },
    ),
    "random": AlgorithmInfo(
        "Random search (Optuna RandomSampler).", {"random_state": _SEED, "seed": _SEED_ALIAS}
    ),
    "grid": AlgorithmInfo(
        "Katib's grid, every combination once (Optuna GridSampler).",
        {"random_state": _SEED, "seed": _SEED_ALIAS},
    ),
    "tpe": AlgorithmInfo(
        "Tree-structured Parzen estimator with Optuna's defaults (multivariate "
        "for one objective; multivariate: false models each parameter alone).",
        _TPE_SETTINGS,
    ),
    "multivariate-tpe": AlgorithmInfo(
        "TPE over the joint space (Optuna multivariate TPE).", _TPE_SETTINGS
    ),
    "cmaes": AlgorithmInfo(
        "CMA evolution strategy (Optuna CmaEsSampler).",
        {
            "random_state": _SEED,
            "seed": _SEED_ALIAS,
            "sigma": Setting("float", None, "a number > 0", lambda v: v > 0),
            "n_startup_trials": Setting("int", 0, "an integer >= 0", lambda v: v >= 0),
            "popsize": Setting(
                "int", None, f"an integer in [2, {SIZE_MAX}]", lambda v: 2 <= v <= SIZE_MAX
            ),
            "restart_strategy": Setting("choice", "none", choices=("none", "ipop", "bipop")),
            "inc_popsize": Setting("int", 2, "an integer >= 1", lambda v: v >= 1),
            "use_separable_cma": Setting("bool", False),
        },
        min_numeric_params=2,
    ),
    "sobol": AlgorithmInfo(
        "Scrambled Sobol quasi-random sequence (Optuna QMCSampler).",
        {"random_state": _SEED, "seed": _SEED_ALIAS, "scramble": Setting("bool", True)},
    ),
    "bayesianoptimization": AlgorithmInfo(
        "Gaussian-process Bayesian optimization with log expected improvement (Optuna GPSampler).",
        {
            "random_state": _SEED,
            "seed": _SEED_ALIAS,
            "n_initial_points": Setting("int", 10, "an integer >= 0", lambda v: v >= 0),
            "n_startup_trials": Setting(
                "int", 10, "an integer >= 0", lambda v: v >= 0, alias_of="n_initial_points"
            ),
            "base_estimator": Setting("choice", "GP", choices=("GP",)),
            "acq_func": Setting("choice", "gp_hedge", choices=("gp_hedge", "EI")),
            "acq_optimizer": Setting("choice", "auto", choices=("auto", "lbfgs")),
            "deterministic_objective": Setting("bool", False),
        },
    ),
    "nsga2": AlgorithmInfo(
        "NSGA-II, the elitist genetic algorithm for several objectives (Optuna NSGAIISampler); "
        "constraints by constrained domination.",
        _NSGA_SETTINGS,
    ),
    "nsga3": AlgorithmInfo(
        "NSGA-III: NSGA-II with reference points, for three or more objectives (Optuna "
        "NSGAIIISampler).",
        _NSGA_SETTINGS,
    ),
    "motpe": AlgorithmInfo(
        "Multi-objective TPE (Optuna TPESampler on several objectives, multivariate).",
        _TPE_SETTINGS,
    ),
    "hyperband": AlgorithmInfo(
        "Katib's Hyperband: brackets of successive halving over a resource parameter (epochs...).",
        {
            "resource_name": Setting("str", required=True, rule="the name of a parameter"),
            "r_l": Setting("float", required=True, rule="a number > 0", check=lambda v: v > 0),
            "eta": Setting("float", 3.0, "a number > 1", lambda v: v > 1),
            "random_state": _SEED,
            "seed": _SEED_ALIAS,
        },
    ),
    "pbt": AlgorithmInfo(
        "Population-based training: the worst trials of a generation take over a better trial's "
        "checkpoint and perturbed hyperparameters.",
        {
            "n_population": Setting(
                "int", 40, f"an integer in [5, {SIZE_MAX}]", lambda v: 5 <= v <= SIZE_MAX
            ),
            "truncation_threshold": Setting(
                "float", 0.2, "a number in [0, 1]", lambda v: 0 <= v <= 1
            ),
            "resample_probability": Setting(
                "float", None, "a number in [0, 1]", lambda v: 0 <= v <= 1
            ),
            "suggestion_trial_dir": Setting("str"),
            "random_state": _SEED,
            "seed": _SEED_ALIAS,
        },
    ),
    "evolution": AlgorithmInfo(
        "Regularized evolution (Real et al. 2019): tournament selection of a parent from a "
        "sample of the population, one-choice mutation, and ageing (the oldest member leaves).",
        {
            "population_size": Setting(
                "int", 20, f"an integer in [2, {SIZE_MAX}]", lambda v: 2 <= v <= SIZE_MAX
            ),
            "sample_size": Setting("int", 5, _SIZE_RULE, lambda v: 1 <= v <= SIZE_MAX),
            "mutation_rate": Setting("float", None, "a number in (0, 1]", lambda v: 0 < v <= 1),
            "random_state": _SEED,
            "seed": _SEED_ALIAS,
        },
    ),
}

#: Other names of registered algorithms.
ALIASES: dict[str, str] = {
    "regularized-evolution": "evolution",
    "nsgaii": "nsga2",
    "nsgaiii": "nsga3",
}

#: Algorithms that cannot search an architecture space (``nas_config``): they need a numeric
#: resource or perturb numbers.
_NO_NAS = ("hyperband", "pbt")


#: Algorithms that refuse a conditional space (``when``), and why.
_NO_CONDITIONS = {
    "hyperband": "its brackets sample and promote whole configurations, one value for every "
    "parameter",
    "pbt": "it perturbs every parameter of a trial, which can switch a parent and leave its "
    "children without values",
    "evolution": "a mutation changes one parameter, which can switch a parent and leave its "
    "children without values",
}


def algorithm_names() -> list[str]:
    """Names of every runnable algorithm (Katib's NAS algorithms ``enas`` and ``darts`` too)."""
    from search._nas_settings import NAS_ALGORITHMS

    return sorted({*ALGORITHMS, *NAS_ALGORITHMS})


def canonical_name(name: str) -> str:
    """The registered name for ``name`` (``regularized-evolution`` -> ``evolution``)."""
    return ALIASES.get(name, name)


def resolve_settings(spec: ExperimentSpec) -> dict[str, Any]:
    """Validate the spec's algorithm and settings and return them typed, with defaults.

    Aliases (``seed`` for ``random_state``, ``n_EI_candidates``...) are folded into their canonical
    name. ``random_state`` falls back to the spec's ``seed``.

    Raises:
        SpecError: Unknown algorithm, unknown setting, bad value or unsupported space.
    """
    from search._nas_settings import NAS_ALGORITHMS, resolve_nas_settings

    name = canonical_name(spec.algorithm.name)
    if spec.multi_objective and name not in MULTI_OBJECTIVE:
        raise SpecError(
            [
                SpecIssue(
                    "algorithm.name",
                    f"{name} optimizes one objective; with {len(spec.objectives)} objectives "
                    f"use one of {sorted(MULTI_OBJECTIVE)}; got {name!r}",
                )
            ]
        )
    if spec.nas_config is not None:
        from search._nas_space import NasSpace

        NasSpace.from_katib(spec.nas_config, "nas_config")  # raises with nas_config.* paths
    if name in NAS_ALGORITHMS:
        nas_settings = resolve_nas_settings(spec)
        if spec.nas_config is None:
            raise SpecError(
                [SpecIssue("nas_config", f"is required by the NAS algorithm {name!r}")]
            )
        if spec.parameters:
            raise SpecError(
                [
                    SpecIssue(
                        "parameters",
                        f"must be empty for {name} (it searches nas_config); got "
                        f"{[p.name for p in spec.parameters]}",
                    )
                ]
            )
        return nas_settings
    info = ALGORITHMS.get(name)
    if info is None:
        raise SpecError(
            [SpecIssue("algorithm.name", f"must be one of {algorithm_names()}; got {name!r}")]
        )
    if spec.nas_config is not None and name in _NO_NAS:
        raise SpecError(
            [
                SpecIssue(
                    "algorithm.name",
                    f"{name} cannot search an architecture space (nas_config); use enas, darts, "
                    f"evolution, tpe, random or grid; got {name!r}",
                )
            ]
        )
    issues: list[SpecIssue] = []
    out: dict[str, Any] = {}
    for key, raw in spec.algorithm.settings.items():
        setting = info.settings.get(key)
        path = f"algorithm.settings.{key}"
        if setting is None:
            issues.append(
                SpecIssue(
                    path, f"is not a setting of {name!r}; valid settings: {sorted(info.settings)}"
                )
            )
            continue
        try:
            out[setting.alias_of or key] = setting.parse(raw, path)
        except SpecError as exc:
            issues.extend(exc.issues)
    numeric = [p for p in spec.parameters if p.type in (ParameterType.INT, ParameterType.DOUBLE)]
    if len(numeric) < info.min_numeric_params and not spec.define_by_run:
        issues.append(
            SpecIssue(
                "parameters",
                f"{name} needs at least {info.min_numeric_params} "
                f"int or double parameters; got {len(numeric)}",
            )
        )
    for key, setting in info.settings.items():
        if setting.required and key not in out:
            issues.append(
                SpecIssue(f"algorithm.settings.{key}", f"is required by {name} ({setting.rule})")
            )
    if spec.define_by_run:
        from search._define_by_run import DBR_ALGORITHMS

        if name not in DBR_ALGORITHMS:
            issues.append(
                SpecIssue(
                    "algorithm.name",
                    f"{name} needs the search space before the first trial, and a define-by-run "
                    "objective (def objective(trial)) defines it as it runs; use "
                    f"{', '.join(DBR_ALGORITHMS)}, or declare parameters; got {name!r}",
                )
            )
    if name in _NO_CONDITIONS and any(p.when for p in spec.parameters):
        issues.append(
            SpecIssue(
                "algorithm.name",
                f"{name} cannot search a conditional space (parameters with when: "
                f"{[p.name for p in spec.parameters if p.when]}): {_NO_CONDITIONS[name]}; use "
                "auto, tpe, random, grid, sobol, cmaes or bayesianoptimization",
            )
        )
    if name == "hyperband" and not issues:
        issues.extend(_hyperband_problems(spec, out))
    if name == "bayesianoptimization" and importlib.util.find_spec("torch") is None:
        issues.append(
            SpecIssue(
                "algorithm.name",
                "bayesianoptimization needs torch (Optuna's GPSampler): pip install torch",
            )
        )
    if name == "grid":
        for i, p in enumerate(spec.parameters):
            if p.type is ParameterType.DOUBLE and p.step is None:
                issues.append(
                    SpecIssue(
                        f"parameters[{i}].step",
                        "must be set for every double parameter when the algorithm is grid",
                    )
                )
    if issues:
        raise SpecError(issues)
    for key, setting in info.settings.items():
        if setting.alias_of is None and key not in out and setting.default is not None:
            out[key] = setting.default
    if out.get("random_state") is None and spec.seed is not None:
        out["random_state"] = spec.seed
    return out


def _hyperband_problems(spec: ExperimentSpec, settings: Mapping[str, Any]) -> list[SpecIssue]:
    """Katib's hyperband rules.

    The resource is an int or double parameter, and enough trials run in parallel for the largest
    bracket's first rung.
    """
    out: list[SpecIssue] = []
    res = settings["resource_name"]
    names = {p.name: p for p in spec.parameters}
    if res not in names:
        out.append(
            SpecIssue(
                "algorithm.settings.resource_name",
                f"must name a parameter ({sorted(names)}); got {res!r}",
            )
        )
    elif names[res].type not in (ParameterType.INT, ParameterType.DOUBLE):
        out.append(
            SpecIssue(
                "algorithm.settings.resource_name",
                f"must name an int or double parameter; {res!r} is {names[res].type.value}",
            )
        )
    eta, r_l = settings.get("eta", 3.0), settings["r_l"]
    s_max = math.floor(math.log(r_l) / math.log(eta) + 1e-9) if r_l >= 1 else 0
    need = math.floor(eta**s_max)
    if spec.parallel_trial_count < need:
        out.append(
            SpecIssue(
                "parallel_trial_count",
                f"must be at least eta^floor(log(r_l)/log(eta)) = {need} for hyperband "
                f"(eta={eta:g}, r_l={r_l:g}); got {spec.parallel_trial_count}",
            )
        )
    return out
