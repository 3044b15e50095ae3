"""``xaisweep run``: all Ray / Optuna / MLflow wiring of a sweep.

Order of work: parse the spec -> validate every reachable trial config ->
preflight the tracking URI and storage -> MLflow experiment + parent run ->
Ray -> ``tune.Tuner`` (OptunaSearch [+ Repeater] in a ConcurrencyLimiter,
ASHA) -> closing table. ``resume=True`` restores the Tuner from its storage
and re-uses the parent run, so finished trials are not re-run and no MLflow
run is duplicated.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from sweeps.preflight import check_storage_path, check_trial_configs, check_tracking_uri, grid_warning
from sweeps.spec import SpecError, SweepSpec, apply_overrides
from sweeps.workdir import Workdir, artifact_location_for, resolve_tracking_uri
from trainables import get_trainable

logger = logging.getLogger(__name__)
LAUNCH_FILE = "xaisweep_launch.json"


class PreflightError(ValueError):
    """The sweep cannot start; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("the sweep cannot start:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class SweepPlan:
    """A validated, fully resolved sweep (nothing started yet)."""

    spec: SweepSpec
    tracking_uri: str
    storage_path: str
    workdir: Workdir
    config_overrides: dict[str, Any]

    @property
    def experiment_dir(self) -> str:
        return os.path.join(self.storage_path, self.spec.name)


def plan_sweep(
    spec: SweepSpec,
    *,
    tracking_uri: Optional[str] = None,
    storage: Optional[str] = None,
    name: Optional[str] = None,
    smoke_test: bool = False,
    workdir: Optional[Workdir] = None,
) -> SweepPlan:
    """Resolve defaults and run every pre-Ray check; raises :class:`PreflightError`."""
    workdir = workdir or Workdir.default()
    overrides: dict[str, Any] = {}
    if smoke_test:
        entry = get_trainable(spec.trainable)
        overrides = dict(entry.smoke)
        spec = apply_overrides(spec, num_samples=min(2, spec.num_samples))
        spec = dataclasses.replace(spec, repeats=1)
        if spec.scheduler is not None:
            spec = dataclasses.replace(spec, scheduler=dataclasses.replace(spec.scheduler, max_t=1, grace_period=1))
        name = name or f"{spec.name}-smoke"
    spec = apply_overrides(spec, name=name)
    uri = resolve_tracking_uri(tracking_uri, spec.tracking_uri, workdir)
    storage_path = storage or spec.storage_path or str(workdir.ray_storage)
    if "://" not in storage_path:
        storage_path = str(Path(storage_path).resolve())
    problems = check_trial_configs(spec, overrides)
    problems += check_tracking_uri(uri)
    problems += check_storage_path(storage_path)
    if problems:
        raise PreflightError(problems)
    warning = grid_warning(spec)
    if warning:
        logger.warning(warning)
    return SweepPlan(spec=spec, tracking_uri=uri, storage_path=storage_path, workdir=workdir,
                     config_overrides=overrides)


# ------------------------------------------------------------------ MLflow
def _launch_file(plan: SweepPlan) -> Optional[Path]:
    if "://" in plan.storage_path:
        return None
    return Path(plan.experiment_dir) / LAUNCH_FILE


def start_parent_run(plan: SweepPlan, *, resume: bool) -> dict[str, str]:
    """Experiment per sweep name, parent run per launch (re-used on ``resume``)."""
    from mlflow.tracking import MlflowClient

    from trainables.tracking import get_or_create_experiment, git_commit

    client = MlflowClient(plan.tracking_uri)
    launch = _launch_file(plan)
    if resume and launch is not None and launch.exists():
        state = json.loads(launch.read_text())
        client.update_run(state["parent_run_id"], status="RUNNING")
        return state
    exp_id = get_or_create_experiment(
        client, plan.spec.name, artifact_location_for(plan.tracking_uri, plan.workdir, plan.spec.name)
    )
    run = client.create_run(
        exp_id,
        run_name=f"{plan.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={"xaisweep.role": "sweep", "sweep": plan.spec.name, "trainable": plan.spec.trainable,
              "git_commit": git_commit(), "metric": plan.spec.metric, "mode": plan.spec.mode},
    )
    state = {"experiment_id": exp_id, "parent_run_id": run.info.run_id, "tracking_uri": plan.tracking_uri}
    for key, value in {"num_samples": plan.spec.num_samples, "sampler": plan.spec.sampler.type,
                       "seed": plan.spec.sampler.seed, "metric": plan.spec.metric, "mode": plan.spec.mode}.items():
        client.log_param(run.info.run_id, key, value)
    spec_text = yaml.safe_dump(plan.spec.to_dict(), sort_keys=False)
    client.log_text(run.info.run_id, spec_text, "spec.yaml")
    if launch is not None:
        launch.parent.mkdir(parents=True, exist_ok=True)
        launch.write_text(json.dumps(state))
    return state


def _mlflow_callback_cls():
    from ray import tune

    class MlflowStatusCallback(tune.Callback):
        """Driver-side bookkeeping of trial runs the trial itself could not close.

        Early-stopped (ASHA) trials end FINISHED with tag ``early_stopped``;
        trials that died without closing their run (worker crash, OOM) end
        FAILED with Ray's error as ``failure_reason``.
        """

        def __init__(self, tracking_uri: str, experiment_id: str) -> None:
            self.tracking_uri, self.experiment_id = tracking_uri, experiment_id

        def _run_id(self, client, trial) -> Optional[str]:
            run_id = (trial.last_result or {}).get("mlflow_run_id")
            if run_id:
                return run_id
            found = client.search_runs([self.experiment_id], f"tags.ray_trial_id = '{trial.trial_id}'", max_results=1)
            return found[0].info.run_id if found else None

        def _close(self, trial, status: str, reason: Optional[str] = None) -> None:
            from mlflow.tracking import MlflowClient

            try:
                client = MlflowClient(self.tracking_uri)
                run_id = self._run_id(client, trial)
                if run_id is None or client.get_run(run_id).info.status != "RUNNING":
                    return  # no run yet, or the trial closed its own run
                if status == "FINISHED":  # stopped by the scheduler before the body returned
                    done = int((trial.last_result or {}).get("training_iteration", 0))
                    client.set_tag(run_id, "early_stopped", "true")
                    client.set_tag(run_id, "stopped_at_iteration", str(done))
                if reason:
                    client.set_tag(run_id, "failure_reason", reason[:4000])
                client.set_terminated(run_id, status=status)
            except Exception as err:  # noqa: BLE001 - bookkeeping must never kill the sweep
                logger.warning("could not update MLflow run of trial %s: %s", trial.trial_id, err)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._close(trial, "FINISHED")

        def on_trial_error(self, iteration, trials, trial, **info):
            reason = None
            path = getattr(trial, "error_file", None)
            if path and os.path.exists(path):
                reason = Path(path).read_text()[-2000:]
            self._close(trial, "FAILED", reason or "trial errored (see Ray logs)")

    return MlflowStatusCallback


# --------------------------------------------------------------------- Ray
def _resources(spec: SweepSpec) -> dict[str, float]:
    res = {"cpu": spec.resources.cpu}
    if spec.resources.gpu:
        res["gpu"] = spec.resources.gpu
    return res


def build_tuner(plan: SweepPlan, launch: dict[str, str], *, resume: bool, verbose: int = 1):
    """The ``tune.Tuner`` for ``plan`` (restored from storage when ``resume`` and it exists)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter, Repeater
    from ray.tune.search.optuna import OptunaSearch

    from sweeps.space import make_optuna_sampler, optuna_define_by_run
    from trainables.ray_trainable import META_KEY, ray_trainable

    spec = plan.spec
    trainable = tune.with_resources(ray_trainable, _resources(spec))
    callback = _mlflow_callback_cls()(plan.tracking_uri, launch["experiment_id"])
    if resume and tune.Tuner.can_restore(plan.experiment_dir):
        return tune.Tuner.restore(
            plan.experiment_dir, trainable=trainable, resume_unfinished=True, resume_errored=False,
            restart_errored=False,
        )
    searcher = None
    if spec.params:
        searcher = OptunaSearch(
            space=optuna_define_by_run(spec.params), metric=spec.metric, mode=spec.mode,
            sampler=make_optuna_sampler(spec.sampler, spec.params),
        )
        if spec.repeats > 1:
            searcher = Repeater(searcher, repeat=spec.repeats, set_index=True)
        searcher = ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent)
    if spec.scheduler is not None:
        scheduler = ASHAScheduler(
            time_attr=spec.scheduler.time_attr, max_t=spec.scheduler.max_t,
            grace_period=spec.scheduler.grace_period, reduction_factor=spec.scheduler.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    meta = {"trainable": spec.trainable, "tracking_uri": plan.tracking_uri, "sweep": spec.name, **launch}
    param_space = {**spec.config, **plan.config_overrides, META_KEY: meta}
    num_samples = spec.num_samples * (spec.repeats if spec.params else 1)
    if not spec.params and spec.repeats > 1:
        param_space["__trial_index__"] = tune.grid_search(list(range(spec.repeats)))
        num_samples = spec.num_samples
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.mode, search_alg=searcher, scheduler=scheduler,
            num_samples=num_samples, max_concurrent_trials=spec.max_concurrent,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=plan.storage_path,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[callback],
            verbose=verbose,
        ),
    )


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


@dataclass
class SweepOutcome:
    plan: SweepPlan
    experiment_id: str
    parent_run_id: str
    results: Any  # ray.tune.ResultGrid
    best: Optional[dict[str, Any]]
    num_errors: int


def run_sweep(
    plan: SweepPlan,
    *,
    address: Optional[str] = None,
    resume: bool = False,
    num_cpus: Optional[int] = None,
    verbose: int = 1,
) -> SweepOutcome:
    """Start (or resume) the sweep of a validated :class:`SweepPlan` and wait for it."""
    import ray
    from mlflow.tracking import MlflowClient

    launch = start_parent_run(plan, resume=resume)
    client = MlflowClient(plan.tracking_uri)
    env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "RAY_AIR_NEW_OUTPUT": os.environ.get("RAY_AIR_NEW_OUTPUT", "1")}}
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"runtime_env": env, "log_to_driver": verbose > 0}
        if address:
            kwargs["address"] = address
        else:
            kwargs.update(include_dashboard=False, num_cpus=num_cpus)
        ray.init(**kwargs)
    try:
        tuner = build_tuner(plan, launch, resume=resume, verbose=verbose)
        results = tuner.fit()
    except BaseException:
        client.update_run(launch["parent_run_id"], status="KILLED")
        raise
    best = best_of(plan.spec, results)
    if best is not None:
        client.log_metric(launch["parent_run_id"], f"best/{plan.spec.metric}", float(best["metric"]))
        client.set_tag(launch["parent_run_id"], "best_run_id", best.get("mlflow_run_id") or "")
    client.set_terminated(launch["parent_run_id"], status="FINISHED")
    return SweepOutcome(plan, launch["experiment_id"], launch["parent_run_id"], results, best, results.num_errors)


def best_of(spec: SweepSpec, results) -> Optional[dict[str, Any]]:
    """Best trial of a ResultGrid on the spec's metric (last reported value), or None."""
    rows = []
    for r in results:
        if r.error is not None or not r.metrics or spec.metric not in r.metrics:
            continue
        value = r.metrics[spec.metric]
        if value is None or value != value:
            continue
        rows.append((value, r))
    if not rows:
        return None
    value, r = (max if spec.mode == "max" else min)(rows, key=lambda x: x[0])
    params = {p.name: r.config.get(p.name) for p in spec.params if p.name in r.config}
    return {
        "metric": value, "trial_id": r.metrics.get("trial_id"), "params": params,
        "mlflow_run_id": r.metrics.get("mlflow_run_id"),
        "iterations": r.metrics.get("training_iteration"),
    }


def run_link(tracking_uri: str, experiment_id: str, run_id: Optional[str]) -> str:
    """A link to the run in the MLflow UI (``xaisweep ui`` serves the local store on port 5000)."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith("http") else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if run_id else f"{base}/#/experiments/{experiment_id}"


__all__ = ["PreflightError", "SpecError", "SweepPlan", "plan_sweep", "run_sweep", "best_of", "run_link"]
