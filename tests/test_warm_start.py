"""warm_start (item 12): an earlier sweep's finished trials enter the new study as COMPLETE trials
(their results count, nothing is re-run); a different search space or metric is refused."""
from __future__ import annotations

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("ray")

from sweeps.launch.plan import PreflightError, plan_sweep  # noqa: E402
from sweeps.spec.parse import parse_spec  # noqa: E402
from sweeps.launch.warm_start import warm_start_points, warm_storage  # noqa: E402
from sweeps.workdir import Workdir  # noqa: E402
from test_report import METRIC, Store, score, spec_dict, write_sweep  # noqa: E402


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("warm"))
    write_sweep(store, "earlier", peak=-3.0)  # 12 finished, 1 failed, 1 early-stopped
    return store


def _new_spec(**overrides):
    d = spec_dict("later")
    d.update({"warm_start": {"experiment": "earlier"}, **overrides})
    return parse_spec(d)


def test_finished_trials_become_complete_optuna_trials(earlier):
    spec = _new_spec()
    points, problems = warm_start_points(earlier.uri, spec)
    assert problems == [] and len(points) == 12  # the failed and the early-stopped trial are left out
    best = max(points, key=lambda p: p[1])
    assert best[1] == pytest.approx(max(score(10 ** (-4 + 2 * k / 11), -3.0) for k in range(12)))
    inactive = [p for p, _ in points if p["regularizer"] == "none"]
    assert inactive and all(set(p) == {"regularizer", "lr", "eps"} for p in inactive)  # eps has no when here

    from ray.tune.search.optuna import OptunaSearch

    from sweeps.launch.space import make_optuna_sampler, optuna_define_by_run

    searcher = OptunaSearch(space=optuna_define_by_run(spec.params), metric=METRIC, mode="max",
                            sampler=make_optuna_sampler(spec.sampler, spec.params),
                            study_name="xaisweep", storage=warm_storage(spec, points, "xaisweep"))
    trials = searcher._ot_study.trials
    assert len(trials) == 12 and all(t.state.name == "COMPLETE" for t in trials)
    assert sorted(t.value for t in trials) == sorted(v for _, v in points)
    config = searcher.suggest("t1")  # the first new suggestion: a new trial, the old ones not re-run
    assert set(config) == {"regularizer", "lr", "eps"} and len(searcher._ot_study.trials) == 13


def test_plan_carries_the_points_and_refuses_another_space(earlier, tmp_path):
    wd = Workdir(tmp_path / "home")
    plan = plan_sweep(_new_spec(), tracking_uri=earlier.uri, workdir=wd)
    assert len(plan.warm_points) == 12
    other = _new_spec(search_space={**spec_dict("x")["search_space"],
                                    "lr": {"type": "loguniform", "low": 1e-5, "high": 1e-2}})
    with pytest.raises(PreflightError, match=r"warm_start.experiment: 'earlier': its search space differs .* lr"):
        plan_sweep(other, tracking_uri=earlier.uri, workdir=wd)
    with pytest.raises(PreflightError, match="no such MLflow experiment"):
        plan_sweep(_new_spec(warm_start={"experiment": "nope"}), tracking_uri=earlier.uri, workdir=wd)
    with pytest.raises(PreflightError, match="walks a fixed grid"):
        plan_sweep(_new_spec(sampler={"type": "grid"}, search_space={
            "regularizer": {"type": "grid", "values": ["none", "attention_vat"]}}), tracking_uri=earlier.uri,
            workdir=wd)


def test_warm_started_sampler_does_not_redraw_the_earlier_configs():
    """The earlier sweep drew its first configs at random from the same seed: a warm-started
    sampler with that seed would draw them again (it did: 4 of 4 re-run in the demo)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from sweeps.launch.space import make_optuna_sampler, optuna_define_by_run
    from sweeps.launch.warm_start import warm_sampler

    spec = _new_spec()
    fn = optuna_define_by_run(spec.params)
    first = optuna.create_study(direction="maximize", sampler=make_optuna_sampler(spec.sampler, spec.params))
    points = []
    for i in range(6):
        t = first.ask()
        points.append((fn(t), 0.5 + 0.01 * i))
        first.tell(t, points[-1][1])
    searcher = OptunaSearch(space=fn, metric=METRIC, mode="max",
                            sampler=make_optuna_sampler(warm_sampler(spec, len(points)), spec.params),
                            study_name="xaisweep", storage=warm_storage(spec, points, "xaisweep"))
    earlier = [p for p, _ in points]
    new = [searcher.suggest(f"t{i}") for i in range(4)]
    assert not any(cfg in earlier for cfg in new)
    same_seed = OptunaSearch(space=fn, metric=METRIC, mode="max",
                             sampler=make_optuna_sampler(spec.sampler, spec.params),
                             study_name="xaisweep", storage=warm_storage(spec, points, "xaisweep"))
    assert same_seed.suggest("t0") in earlier  # what the seed move prevents


def test_multi_objective_warm_start(tmp_path):
    """An earlier multi-objective sweep warm-starts one with the same objectives: each finished trial
    enters the study with its value of every objective; other objectives are refused."""
    from ray.tune.search.optuna import OptunaSearch

    from sweeps.launch.space import make_optuna_sampler, optuna_define_by_run
    from test_pareto_results import SPEC as MO_SPEC, TABLE, write_mo_sweep
    from test_report import Store as _Store

    store = _Store(tmp_path)
    write_mo_sweep(store, "mo-earlier")
    spec = parse_spec({**MO_SPEC, "name": "mo-later", "repeats": 1, "warm_start": {"experiment": "mo-earlier"}})
    points, problems = warm_start_points(store.uri, spec)
    assert problems == [] and len(points) == sum(len(v) for v in TABLE.values())
    assert sorted(v for _, v in points) == sorted((f1, cost) for seeds in TABLE.values() for f1, cost, _ in seeds)
    searcher = OptunaSearch(space=optuna_define_by_run(spec.params), metric=[m for m, _ in spec.objectives],
                            mode=[d for _, d in spec.objectives], sampler=make_optuna_sampler(spec.sampler, spec.params),
                            study_name="xaisweep", storage=warm_storage(spec, points, "xaisweep"))
    study = searcher._ot_study
    assert len(study.trials) == len(points) and all(t.state.name == "COMPLETE" for t in study.trials)
    # the study's Pareto set is that of the earlier runs (per run: one point per seed)
    assert sorted(tuple(t.values) for t in study.best_trials) == [(0.8, 1.0), (0.84, 2.6), (0.9, 3.0), (0.95, 3.5)]
    assert set(searcher.suggest("new")) <= {"regularizer", "eps"} and len(study.trials) == len(points) + 1

    for other, shown in (({"metric": "best/valid_f1", "mode": "max"}, "best/valid_f1 (max)"),
                         ({"metric": ["best/valid_f1", "train/step_time"], "mode": ["max", "max"]},
                          "train/step_time (max)")):
        spec = parse_spec({**MO_SPEC, "name": "mo-other", "warm_start": {"experiment": "mo-earlier"}, **other})
        _, problems = warm_start_points(store.uri, spec)
        assert problems == [f"warm_start.experiment: 'mo-earlier': it optimised best/valid_f1 (max), "
                            f"train/step_time (min), this sweep {'best/valid_f1 (max), ' if 'train' in shown else ''}"
                            f"{shown}"], problems
