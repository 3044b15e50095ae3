"""``warm_start: {experiment: NAME}``: seed a new sweep's Optuna study with the finished trials of an
earlier sweep that has the same search space; their results count and they are not re-run.

The earlier sweep's search space is read from the ``spec.yaml`` of its latest launch and must
equal this spec's (parameter names, types, bounds, values, ``when`` clauses) and have the same
objectives (metric and mode; for a multi-objective sweep every ``(metric, mode)`` pair, in order);
every FINISHED trial run that logged every objective becomes a COMPLETE Optuna trial with the run's
active search parameters and its value (one per objective: ``values`` of a multi-objective study)
(repeats: one trial per seed). Early-stopped trials (ASHA) are
left out: their value is not final. The trials go into the study through its storage, before Ray
Tune's ``OptunaSearch`` opens it, so the sampler sees them from the first suggestion on; the
sampler's seed is moved (:func:`warm_sampler`) so that its random start-up draws differ from
the earlier sweep's.
"""
from __future__ import annotations

from typing import Any, Optional

from sweeps.spec.parse import SweepSpec

#: samplers whose suggestions learn from completed trials (grid walks a fixed grid)
WARM_SAMPLERS = ("tpe", "random", "qmc", "cmaes", "nsga2")


def warm_start_points(tracking_uri: str, spec: SweepSpec) -> tuple[list[tuple[dict[str, Any], Any]], list[str]]:
    """``(points, problems)``: ``(params, value)`` of the earlier sweep's finished trials, or why not.

    ``value`` is a float for a single-objective spec, a tuple of floats (one per objective, spec
    order) for a multi-objective one."""
    from mlflow.tracking import MlflowClient

    from sweeps.results.report_data import active_params, all_runs, load_run_spec
    from trainables import mlflow_names

    name = spec.warm_start
    if name is None:
        return [], []
    where = f"warm_start.experiment: {name!r}"
    if spec.sampler.type not in WARM_SAMPLERS:
        return [], [f"{where}: sampler.type {spec.sampler.type} walks a fixed grid; warm start needs one of "
                    f"{', '.join(WARM_SAMPLERS)}"]
    if not spec.params:
        return [], [f"{where}: this sweep has no search space to warm-start"]
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is None or exp.lifecycle_stage == "deleted":
        return [], [f"{where}: no such MLflow experiment in {tracking_uri}"]
    runs = all_runs(client, exp.experiment_id)
    parents = sorted((r for r in runs if r.data.tags.get(mlflow_names.ROLE) == mlflow_names.ROLE_SWEEP),
                     key=lambda r: r.info.start_time, reverse=True)
    if not parents:
        return [], [f"{where}: the experiment has no xaisweep launch"]
    try:
        earlier: Optional[SweepSpec] = load_run_spec(client, parents[0].info.run_id)
    except ValueError as err:
        return [], [f"{where}: {err}"]
    if earlier is None:
        return [], [f"{where}: its latest launch has no {mlflow_names.SPEC_ARTIFACT}"]
    problems = []
    mine = {p.name: p.to_dict() for p in spec.params}
    theirs = {p.name: p.to_dict() for p in earlier.params}
    if mine != theirs:
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        problems.append(f"{where}: its search space differs from this one in {', '.join(diff)} (warm start "
                        f"needs the same space)")
    if earlier.objectives != spec.objectives:
        def show(s: SweepSpec) -> str:
            return ", ".join(f"{m} ({d})" for m, d in s.objectives)
        problems.append(f"{where}: it optimised {show(earlier)}, this sweep {show(spec)}")
    if problems:
        return [], problems
    points = []
    for r in runs:
        tags = r.data.tags
        if (r.info.status != "FINISHED" or mlflow_names.RAY_TRIAL_ID not in tags
                or mlflow_names.is_early_stopped(tags)):
            continue
        values = [r.data.metrics.get(m) for m, _ in spec.objectives]
        if any(v is None or v != v for v in values):
            continue
        try:
            params = active_params(spec, r.data.params)
        except ValueError:
            continue  # a value outside today's space (cannot happen with an equal space; be safe)
        if set(params) != {p.name for p in spec.params if p.is_active(params)}:
            continue
        points.append((params, tuple(float(v) for v in values) if spec.is_multi_objective else float(values[0])))
    if not points:
        problems.append(f"{where}: no finished trial with {' and '.join(m for m, _ in spec.objectives)} "
                        f"to start from")
    return points, problems


def warm_sampler(spec: SweepSpec, n_points: int) -> Any:
    """The sampler spec of a warm-started sweep: its seed moved by the number of warm trials.

    With the earlier sweep's seed the sampler would draw the earlier sweep's first (random
    start-up) configurations again: the same configs would be re-run.
    """
    import dataclasses

    return dataclasses.replace(spec.sampler, seed=(spec.sampler.seed + 7919 * (n_points + 1)) % 2**32)


def warm_storage(spec: SweepSpec, points: list[tuple[dict[str, Any], Any]], study_name: str) -> Any:
    """An in-memory Optuna storage holding study ``study_name`` (one direction per objective) with
    ``points`` as COMPLETE trials."""
    import optuna

    from sweeps.launch.space import optuna_distribution

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=study_name,
                                directions=["maximize" if d == "max" else "minimize" for _, d in spec.objectives])
    dists = {p.name: optuna_distribution(p) for p in spec.params}
    for params, value in points:
        one = {"values": list(value)} if spec.is_multi_objective else {"value": value}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, **one,
            user_attrs={"warm_start": spec.warm_start}))
    return storage


__all__ = ["warm_start_points", "warm_storage", "warm_sampler", "WARM_SAMPLERS"]
