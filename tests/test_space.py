"""Tests for :mod:`sweeps.launch.space`: define-by-run sampling, samplers and grids."""
from __future__ import annotations

import importlib.util
import itertools
import pickle
import warnings
from typing import Any

import optuna
import pytest

from sweeps.launch.space import (
    OptunaDefineByRun,
    grid_points,
    grid_size,
    make_optuna_sampler,
    optuna_define_by_run,
)
from sweeps.spec.parse import ParamSpec, SpecError, parse_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _spec(space: dict[str, Any], sampler: dict[str, Any] | None = None):
    return parse_spec({"name": "t", "trainable": "toy", "metric": "loss", "mode": "min",
                       "search_space": space, "sampler": sampler})


CONDITIONAL = {
    # Children listed before parents on purpose: parse_spec must reorder them.
    "bidirectional": {"type": "choice", "values": [True, False], "when": {"layers": [2, 3]}},
    "layers": {"type": "choice", "values": [1, 2, 3], "when": {"model": "lstm"}},
    "hidden": {"type": "int", "low": 32, "high": 256, "step": 32, "when": {"model": "lstm"}},
    "kernel": {"type": "int", "low": 2, "high": 64, "log": True, "when": {"model": ["cnn"]}},
    "model": {"type": "choice", "values": ["cnn", "lstm", "bow"]},
    "lr": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
}


def _run(fn: OptunaDefineByRun, sampler: optuna.samplers.BaseSampler, n: int) -> optuna.Study:
    """Optimise a toy objective; each trial's sampled dict is kept as a user attr."""

    def objective(trial: optuna.Trial) -> float:
        values = fn(trial)
        trial.set_user_attr("values", values)
        return sum(float(v) for v in values.values() if isinstance(v, (int, float)))

    study = optuna.create_study(sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental / independent-sampling warnings
        study.optimize(objective, n_trials=n)
    return study


def test_define_by_run_conditional_space() -> None:
    spec = _spec(CONDITIONAL)
    study = _run(optuna_define_by_run(spec.params), optuna.samplers.RandomSampler(seed=0), 60)
    seen_models = set()
    for t in study.trials:
        values = t.user_attrs["values"]
        assert values == t.params  # returns exactly what was sampled
        model = values["model"]
        seen_models.add(model)
        expected = {"model", "lr", "dropout"}
        if model == "lstm":
            expected |= {"layers", "hidden"}
            if values["layers"] in (2, 3):
                expected.add("bidirectional")
        elif model == "cnn":
            expected.add("kernel")
        assert set(values) == expected, values  # inactive params are absent
        assert 1e-5 <= values["lr"] <= 1e-2 and t.distributions["lr"].log
        assert 0.0 <= values["dropout"] <= 0.5 and not t.distributions["dropout"].log
        if "hidden" in values:
            assert isinstance(values["hidden"], int)
            assert 32 <= values["hidden"] <= 256 and values["hidden"] % 32 == 0
            assert t.distributions["hidden"].step == 32
        if "kernel" in values:
            assert isinstance(values["kernel"], int) and 2 <= values["kernel"] <= 64
            assert t.distributions["kernel"].log
    assert seen_models == {"cnn", "lstm", "bow"}
    assert any("bidirectional" in t.params for t in study.trials)


def test_define_by_run_is_picklable_and_order_checked() -> None:
    spec = _spec(CONDITIONAL)
    fn = optuna_define_by_run(spec.params)
    assert pickle.loads(pickle.dumps(fn)) == fn
    # With a fixed trial the returned dict follows the topological order.
    trial = optuna.trial.FixedTrial({"model": "lstm", "layers": 2, "bidirectional": False,
                                     "hidden": 64, "lr": 1e-3, "dropout": 0.1})
    assert list(fn(trial)) == ["model", "layers", "bidirectional", "hidden", "lr", "dropout"]


SIMPLE = {
    "x": {"type": "uniform", "low": -2, "high": 2},
    "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
    "n": {"type": "int", "low": 1, "high": 9, "step": 2},
    "act": {"type": "choice", "values": ["relu", "gelu"]},
}
GRID = {
    "act": {"type": "choice", "values": ["relu", "gelu", "tanh"]},
    "n": {"type": "int", "low": 1, "high": 5, "step": 2},
    "bias": {"type": "grid", "values": [True, False]},
}


@pytest.mark.parametrize("kind", ["tpe", "random", "qmc", "cmaes", "grid"])
def test_each_sampler_runs(kind: str) -> None:
    spec = _spec(GRID if kind == "grid" else SIMPLE, {"type": kind, "seed": 1})
    if kind == "cmaes" and importlib.util.find_spec("cmaes") is None:
        with pytest.raises(ImportError, match="cmaes"):
            make_optuna_sampler(spec.sampler, spec.params)
        pytest.skip("the cmaes package is not installed")
    sampler = make_optuna_sampler(spec.sampler, spec.params)
    assert isinstance(sampler, optuna.samplers.BaseSampler)
    pickle.loads(pickle.dumps(sampler))  # Ray's OptunaSearch.save pickles it
    study = _run(optuna_define_by_run(spec.params), sampler, 5)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 5
    assert all(set(t.params) == set(spec.param_names) for t in study.trials)


def test_sampler_seed_is_reproducible() -> None:
    spec = _spec(SIMPLE, {"type": "tpe", "seed": 5, "options": {"n_startup_trials": 2}})
    fn = optuna_define_by_run(spec.params)
    runs = [[t.params for t in _run(fn, make_optuna_sampler(spec.sampler, spec.params), 4).trials]
            for _ in range(2)]
    assert runs[0] == runs[1]


def test_bad_sampler_options() -> None:
    spec = _spec(SIMPLE, {"type": "random", "options": {"n_startup_trials": 3}})
    with pytest.raises(SpecError, match="sampler.options: .*n_startup_trials"):
        make_optuna_sampler(spec.sampler, spec.params)


def test_grid_covers_all_points() -> None:
    spec = _spec(GRID, {"type": "grid"})
    points = grid_points(spec.params)
    assert points == {"act": ["relu", "gelu", "tanh"], "n": [1, 3, 5], "bias": [True, False]}
    assert grid_size(spec.params) == 18
    sampler = make_optuna_sampler(spec.sampler, spec.params)
    study = _run(optuna_define_by_run(spec.params), sampler, 100)  # GridSampler stops at 18
    assert len(study.trials) == 18
    got = {(t.params["act"], t.params["n"], t.params["bias"]) for t in study.trials}
    assert got == set(itertools.product(*points.values()))


def test_grid_sampler_ask_tell_past_exhaustion() -> None:
    """Ask/tell (as Ray's OptunaSearch does): the stock GridSampler raises in tell() at the end."""
    spec = _spec({"a": {"type": "grid", "values": [1, 2]}}, {"type": "grid"})
    study = optuna.create_study(sampler=make_optuna_sampler(spec.sampler, spec.params))
    fn = optuna_define_by_run(spec.params)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):  # one more than the grid: re-evaluates a point, no error
            trial = study.ask()
            seen.append(fn(trial)["a"])
            study.tell(trial, 0.0)
    assert set(seen[:2]) == {1, 2}


def test_grid_size_helpers() -> None:
    assert grid_size([]) == 1
    assert grid_size([ParamSpec("n", "int", low=0, high=10, step=5)]) == 3
    log_int = ParamSpec("k", "int", low=1, high=8, step=1, log=True)
    assert grid_size([log_int]) == 8 == len(grid_points([log_int])["k"])
    uniform = ParamSpec("x", "uniform", low=0.0, high=1.0)
    assert grid_size([uniform]) is None
    with pytest.raises(ValueError, match="x"):
        grid_points([uniform])
    conditional = _spec(CONDITIONAL).params
    assert grid_size([p for p in conditional if p.is_categorical]) is None
    assert grid_points([p for p in conditional if p.name == "model"]) == {
        "model": ["cnn", "lstm", "bow"]}


def test_with_ray_optuna_search(tmp_path: Any) -> None:
    """The define-by-run function and samplers plug into Ray's OptunaSearch."""
    pytest.importorskip("ray.tune.search.optuna")
    from ray.tune.search.optuna import OptunaSearch

    for space, sampler_cfg, n in ((CONDITIONAL, {"type": "tpe"}, 4), (GRID, {"type": "grid"}, 19)):
        spec = _spec(space, sampler_cfg)
        searcher = OptunaSearch(space=optuna_define_by_run(spec.params), metric="loss",
                                mode="min", sampler=make_optuna_sampler(spec.sampler, spec.params))
        for i in range(n):
            config = searcher.suggest(str(i))
            assert isinstance(config, dict) and ("model" in config or "act" in config)
            searcher.on_trial_complete(str(i), {"loss": 1.0, "training_iteration": 1})
        searcher.save(str(tmp_path / f"{sampler_cfg['type']}.pkl"))


@pytest.mark.parametrize("seed", range(3))
def test_tpe_concurrent_suggestions_are_distinct_with_constant_liar(seed):
    """max_concurrent > 1: TPE gets constant_liar, so trials asked before any of them is told
    (what Ray's ConcurrencyLimiter does) are not the same config; without it they pile up."""
    spec = parse_spec({"name": "x", "trainable": "classifier", "metric": "m", "mode": "max",
                       "search_space": {"a": {"type": "choice", "values": list(range(5))},
                                        "b": {"type": "choice", "values": list(range(4))}},
                       "sampler": {"type": "tpe", "seed": seed, "options": {"n_startup_trials": 10}}})
    fn = optuna_define_by_run(spec.params)

    def concurrent(max_concurrent):
        sampler = make_optuna_sampler(spec.sampler, spec.params, max_concurrent=max_concurrent)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for _ in range(12):
            t = study.ask()
            p = fn(t)
            study.tell(t, -((p["a"] - 3) ** 2) - (p["b"] - 1) ** 2)
        return [tuple(sorted(fn(study.ask()).items())) for _ in range(4)]

    assert make_optuna_sampler(spec.sampler, spec.params, max_concurrent=4)._constant_liar
    assert len(set(concurrent(4))) == 4
    assert len(set(concurrent(1))) < 4  # the same study without the liar repeats itself


# --------------------------------------------------------------------------- multi-objective search
MO_SPACE = {"x": {"type": "uniform", "low": 0.0, "high": 1.0},
            "k": {"type": "choice", "values": ["a", "b", "c"]}}


def _mo_spec(sampler: dict[str, Any], **extra: Any):
    return parse_spec({"name": "t", "trainable": "toy", "metric": ["f1", "cost"], "mode": ["max", "min"],
                       "search_space": MO_SPACE, "sampler": sampler, **extra})


def _front(points):
    """Brute-force Pareto set of (f1 max, cost min) pairs."""
    return sorted(p for p in points if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points))


@pytest.mark.parametrize("sampler", [{"type": "tpe", "options": {"n_startup_trials": 4}},
                                     {"type": "nsga2", "options": {"population_size": 4, "crossover": "sbx"}},
                                     {"type": "random"}])
def test_multi_objective_search_through_ray_optuna_search(tmp_path: Any, sampler: dict[str, Any]) -> None:
    """Ray's OptunaSearch with the metric and mode lists (what build_tuner passes for a metric list):
    an Optuna study with a direction per objective, whose best_trials are the brute-force Pareto set."""
    pytest.importorskip("ray.tune.search.optuna")
    from ray.tune.search.optuna import OptunaSearch

    spec = _mo_spec(sampler, max_concurrent=2)
    searcher = OptunaSearch(space=optuna_define_by_run(spec.params), metric=["f1", "cost"], mode=["max", "min"],
                            sampler=make_optuna_sampler(spec.sampler, spec.params, max_concurrent=2))
    assert [d.name for d in searcher._ot_study.directions] == ["MAXIMIZE", "MINIMIZE"]
    told = []
    for i in range(12):
        config = searcher.suggest(str(i))
        f1, cost = config["x"], config["x"] ** 2 + {"a": 0.0, "b": 0.1, "c": 0.5}[config["k"]]
        searcher.on_trial_complete(str(i), {"f1": f1, "cost": cost, "training_iteration": 1})
        told.append((f1, cost))
    best = sorted(tuple(t.values) for t in searcher._ot_study.best_trials)
    assert best == _front(told)
    searcher.save(str(tmp_path / "mo.pkl"))  # Tune pickles the searcher with its sampler


def test_nsga2_options_reach_the_sampler() -> None:
    from optuna.samplers import NSGAIISampler
    from optuna.samplers.nsgaii import UNDXCrossover

    spec = _mo_spec({"type": "nsga2", "seed": 5,
                     "options": {"population_size": 6, "crossover": "undx", "mutation_prob": 0.25}})
    sampler = make_optuna_sampler(spec.sampler, spec.params)
    assert isinstance(sampler, NSGAIISampler) and sampler._population_size == 6
    assert isinstance(sampler._child_generation_strategy._crossover, UNDXCrossover)
    assert sampler._child_generation_strategy._mutation_prob == 0.25
    pickle.dumps(sampler)


def test_objectives_repeater_tells_the_mean_of_each_objective() -> None:
    """repeats > 1 with several objectives: the searcher is told each objective's mean over the seeds
    (Ray's Repeater averages one metric only and fails on a metric list)."""
    pytest.importorskip("ray.tune.search.optuna")
    from ray.tune.search.optuna import OptunaSearch

    from sweeps.launch.repeat import ObjectivesRepeater

    spec = _mo_spec({"type": "random"})
    inner = OptunaSearch(space=optuna_define_by_run(spec.params), metric=["f1", "cost"], mode=["max", "min"],
                         sampler=make_optuna_sampler(spec.sampler, spec.params))
    rep = ObjectivesRepeater(inner, repeat=3, set_index=True)
    configs = [rep.suggest(f"t{i}") for i in range(6)]
    assert [c["__trial_index__"] for c in configs] == [0, 1, 2, 0, 1, 2]
    assert configs[0]["x"] == configs[2]["x"] and configs[0]["x"] != configs[3]["x"]
    for i, (f1, cost) in enumerate([(0.6, 2.0), (0.8, 4.0), (0.7, None), (0.5, 1.0), (0.5, 1.0), (0.5, 1.0)]):
        result = {"f1": f1, "training_iteration": 1, **({"cost": cost} if cost is not None else {})}
        rep.on_trial_complete(f"t{i}", result)
    values = [tuple(t.values) for t in inner._ot_study.trials]
    # seed 3 of the first configuration did not report cost: that objective's mean is over two seeds
    assert values[0] == pytest.approx((0.7, 3.0)) and values[1] == pytest.approx((0.5, 1.0))


def test_nsga2_warns_when_the_sweep_is_one_random_generation() -> None:
    from sweeps.launch.preflight import nsga2_warning

    small = _mo_spec({"type": "nsga2", "options": {"population_size": 8}}, num_samples=8)
    assert "every trial is of NSGA-II's random first generation" in nsga2_warning(small)
    assert nsga2_warning(_mo_spec({"type": "nsga2"}, num_samples=51)) is None
    assert nsga2_warning(_mo_spec({"type": "nsga2", "options": {"population_size": 4}}, num_samples=12)) is None
    assert nsga2_warning(_mo_spec({"type": "tpe"}, num_samples=2)) is None


def test_multi_objective_searcher_state_survives_save_and_restore(tmp_path: Any) -> None:
    """What a resumed multi-objective sweep with repeats relies on: Tune saves the searcher chain
    (ConcurrencyLimiter > ObjectivesRepeater > OptunaSearch) and a restored chain goes on from it."""
    pytest.importorskip("ray.tune.search.optuna")
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from sweeps.launch.repeat import ObjectivesRepeater

    spec = _mo_spec({"type": "tpe", "options": {"n_startup_trials": 2}})

    def chain():
        inner = OptunaSearch(space=optuna_define_by_run(spec.params), metric=["f1", "cost"], mode=["max", "min"],
                             sampler=make_optuna_sampler(spec.sampler, spec.params, max_concurrent=2))
        return ConcurrencyLimiter(ObjectivesRepeater(inner, repeat=2, set_index=True), max_concurrent=2), inner

    first, _ = chain()
    for i in range(4):
        config = first.suggest(f"t{i}")
        first.on_trial_complete(f"t{i}", {"f1": config["x"], "cost": 1 - config["x"], "training_iteration": 1})
    first.save_to_dir(str(tmp_path), session_str="s")
    restored, inner = chain()
    restored.restore_from_dir(str(tmp_path))
    inner = restored.searcher.searcher
    assert isinstance(restored.searcher, ObjectivesRepeater) and len(inner._ot_study.trials) == 2
    assert all(len(t.values) == 2 for t in inner._ot_study.trials)
    config = restored.suggest("t4")
    assert set(config) >= {"x", "k"} and len(inner._ot_study.trials) == 3
