"""``xaisweep run``: all Ray / Optuna / MLflow wiring of a sweep.

Order of work: parse the spec -> validate every reachable trial config ->
preflight the tracking URI and storage -> MLflow experiment + parent run ->
Ray -> ``tune.Tuner`` (OptunaSearch [+ Repeater] in a ConcurrencyLimiter,
ASHA) -> closing table. ``resume=True`` restores the Tuner from its storage
and re-uses the parent run, so finished trials are not re-run and no MLflow
run is duplicated.

Interruptions: on Ctrl-C (SIGINT) Tune saves its state and returns; the launch
is then marked KILLED (tag ``interrupted``) with the runs of unfinished trials,
and :attr:`SweepOutcome.interrupted` is set. A driver killed hard (SIGKILL)
leaves its runs RUNNING; the resumed sweep re-opens them, and deletes the runs
of trials the killed driver started after its last state snapshot (Tune does
not know them: the search goes on from the snapshot).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional, Sequence

from sweeps.plan import PreflightError, SweepPlan, multinode_warnings, plan_sweep  # noqa: F401 - re-exported
from sweeps.spec import SpecError, SweepSpec
from sweeps.sweep_runs import (  # noqa: F401 - re-exported names
    LAUNCH_FILE,
    SweepOutcome,
    _close_launch,
    _delete_orphans,
    _mlflow_callback_cls,
    _trial_id,
    best_of,
    start_parent_run,
)

logger = logging.getLogger(__name__)


def __getattr__(name: str):
    if name == "MlflowStatusCallback":
        return _mlflow_callback_cls()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------- Ray
def _resources(spec: SweepSpec) -> dict[str, float]:
    res = {"cpu": spec.resources.cpu}
    if spec.resources.gpu:
        res["gpu"] = spec.resources.gpu
    return res


def build_tuner(
    plan: SweepPlan,
    launch: dict[str, str],
    *,
    resume: bool,
    verbose: int = 1,
    callbacks: Sequence[Any] = (),
):
    """The ``tune.Tuner`` for ``plan`` (restored from storage when ``resume`` and it exists).

    ``callbacks``: extra ``ray.tune.Callback`` objects (a new sweep only: a restored
    Tuner runs the callbacks it was started with).
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter, Repeater
    from ray.tune.search.optuna import OptunaSearch

    from sweeps.space import make_optuna_sampler, optuna_define_by_run
    from trainables.ray_trainable import META_KEY, ray_trainable

    spec = plan.spec
    # Trials checkpoint every epoch with num_to_keep=2, so Tune forces an experiment-state
    # snapshot every second checkpoint (that is what keeps a resume pointing at a checkpoint
    # that still exists) and warns about it each time on short epochs: wanted, so not warned.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    trainable = tune.with_resources(ray_trainable, _resources(spec))
    callback = _mlflow_callback_cls()(plan.tracking_uri, launch["experiment_id"], launch.get("parent_run_id"))
    if resume and tune.Tuner.can_restore(plan.experiment_dir):
        if callbacks:
            logger.warning("a restored sweep keeps the callbacks it was started with; ignoring %s", list(callbacks))
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
    meta = {"trainable": spec.trainable, "tracking_uri": plan.tracking_uri, "sweep": spec.name,
            "experiment_id": launch["experiment_id"], "parent_run_id": launch["parent_run_id"]}
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
            # a worker runs trial after trial: no process start-up, imports or MLflow client set-up
            # per trial (tests/benchmarks/bench_sweep_overhead.py). Each trial re-seeds and resets
            # torch's global modes itself (xaicore.seeding), so a trial does not depend on the
            # one before it in the same process (the reproduce test checks it).
            reuse_actors=spec.reuse_workers,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=plan.storage_path,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[callback, *callbacks],
            verbose=verbose,
        ),
    )


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def run_sweep(
    plan: SweepPlan,
    *,
    address: Optional[str] = None,
    resume: bool = False,
    num_cpus: Optional[int] = None,
    verbose: int = 1,
    callbacks: Sequence[Any] = (),
) -> SweepOutcome:
    """Start (or resume) the sweep of a validated :class:`SweepPlan` and wait for it.

    Connects to ``address`` or starts a local Ray (``num_cpus``) unless Ray is already
    initialised; a Ray started here is shut down on return. ``callbacks`` are extra
    ``ray.tune.Callback`` objects for a new sweep.
    """
    import ray
    from mlflow.tracking import MlflowClient

    launch = start_parent_run(plan, resume=resume)
    parent = launch["parent_run_id"]
    client = MlflowClient(plan.tracking_uri)
    env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "RAY_AIR_NEW_OUTPUT": os.environ.get("RAY_AIR_NEW_OUTPUT", "1")}}
    started_ray = False
    try:
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"runtime_env": env, "log_to_driver": verbose > 0}
            if address:
                kwargs["address"] = address
            else:
                kwargs.update(include_dashboard=False, num_cpus=num_cpus)
            try:
                ray.init(**kwargs)
            except ConnectionError as err:
                if address and os.environ.get("RAY_AUTH_MODE") != "token":
                    raise ConnectionError(
                        f"{err}\nhint: a cluster started with token authentication needs "
                        "RAY_AUTH_MODE=token (and RAY_AUTH_TOKEN_PATH if the token is not ~/.ray/auth_token)"
                    ) from err
                raise
            started_ray = True
            if address:
                for warning in multinode_warnings(plan, len([n for n in ray.nodes() if n.get("Alive")])):
                    logger.warning(warning)
        tuner = build_tuner(plan, launch, resume=resume, verbose=verbose, callbacks=callbacks)
        results = tuner.fit()
    except BaseException:
        try:
            client.set_terminated(parent, status="KILLED")
        except Exception as err:  # noqa: BLE001 - do not hide the original error
            logger.warning("could not mark the parent run %s KILLED: %s", parent, err)
        if started_ray:
            ray.shutdown()
        raise
    try:
        return _close_launch(plan, client, launch, results, restored=bool(launch.get("resumed")))
    finally:
        if started_ray:
            ray.shutdown()


def run_link(tracking_uri: str, experiment_id: str, run_id: Optional[str]) -> str:
    """A link to the run in the MLflow UI (``xaisweep ui`` serves the local store on port 5000)."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith("http") else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if run_id else f"{base}/#/experiments/{experiment_id}"


__all__ = ["PreflightError", "SpecError", "SweepPlan", "plan_sweep", "run_sweep", "best_of", "run_link"]
