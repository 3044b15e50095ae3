"""``xaisweep run``: all Ray / Optuna / MLflow wiring of a sweep.

Order of work: parse the spec -> validate every reachable trial config ->
preflight the tracking URI and storage -> MLflow experiment + parent run ->
Ray -> ``tune.Tuner`` (OptunaSearch [+ Repeater] in a ConcurrencyLimiter,
ASHA) -> closing table. A multi-objective spec gives OptunaSearch its metric
and mode lists (and ``repeats`` the :class:`sweeps.launch.repeat.ObjectivesRepeater`);
Tune's own metric is the first objective. ``resume=True`` restores the Tuner from its storage
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

import dataclasses
import logging
import os
import sys
import time
from typing import Any, Optional, Sequence

from sweeps.mlflow_links import ui_link
from sweeps.launch.plan import PreflightError, SweepPlan, check_resources, multinode_warnings
from sweeps.spec.parse import SweepSpec
from sweeps.launch.sweep_runs import (
    TIME_BUDGETS,
    SweepOutcome,
    close_launch,
    mark_unended_runs_interrupted,
    mlflow_callback_cls,
    read_launch,
    start_parent_run,
)
from sweeps.launch.sweep_state import (
    RESUMABLE_CHANGES,
    SweepLock,
    discard_sweep,
    mlflow_launches,
    ray_state_exists,
    spec_changes,
)
from trainables import mlflow_names

logger = logging.getLogger(__name__)


def __getattr__(name: str):
    """``sweeps.launcher.MlflowStatusCallback``: the name under which Tuner states (those of earlier
    versions included) pickle the driver-side callback (:func:`sweeps.launch.sweep_runs.mlflow_callback_cls`
    builds it on first use: importing Ray is slow). Not a re-export: a resumed sweep finds the class here."""
    if name == "MlflowStatusCallback":
        return mlflow_callback_cls()
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

    from sweeps.launch.space import make_optuna_sampler, optuna_define_by_run
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from trainables.ray_trainable import CHECKPOINT_EVERY_KEY, EARLY_STOPPING_KEY, ray_trainable

    spec = plan.spec
    # Trials checkpoint with num_to_keep=2 (every epoch with checkpoint_every_s: 0), so Tune forces an experiment-state
    # snapshot every second checkpoint (that is what keeps a resume pointing at a checkpoint
    # that still exists) and warns about it each time on short epochs: wanted, so not warned.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's default loggers include TensorBoard's and a hint to run it: MLflow is our record, so
    # only the CSV/JSON result files are kept (passed explicitly below).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    _quiet_ray_hints()
    # launcher metadata (tracking URI, parent run) travels beside the config, not in it: it
    # stays out of the progress table and of the trial config
    meta = {"trainable": spec.trainable, "tracking_uri": plan.tracking_uri, "sweep": spec.name,
            "experiment_id": launch["experiment_id"], "parent_run_id": launch["parent_run_id"],
            CHECKPOINT_EVERY_KEY: spec.checkpoint_every_s, EARLY_STOPPING_KEY: spec.scheduler is not None}
    trainable = tune.with_resources(tune.with_parameters(ray_trainable, xaisweep_meta=meta), _resources(spec))
    callback = mlflow_callback_cls()(plan.tracking_uri, launch["experiment_id"], launch.get("parent_run_id"),
                                      time_budget=spec.time_budget)
    TIME_BUDGETS[launch.get("parent_run_id")] = spec.time_budget  # this launch's budget, restored sweeps too
    if resume and tune.Tuner.can_restore(plan.experiment_dir):
        if callbacks:
            logger.warning("a restored sweep keeps the callbacks it was started with; ignoring %s", list(callbacks))
        return tune.Tuner.restore(
            plan.experiment_dir, trainable=trainable, resume_unfinished=True, resume_errored=False,
            restart_errored=False,
        )
    searcher = None
    if spec.params:
        warm: dict[str, Any] = {}
        sampler_spec = spec.sampler
        if plan.warm_points:  # finished trials of the warm_start sweep: counted, not re-run
            from sweeps.launch.warm_start import warm_sampler, warm_storage

            warm = {"study_name": "xaisweep", "storage": warm_storage(spec, list(plan.warm_points), "xaisweep")}
            sampler_spec = warm_sampler(spec, len(plan.warm_points))
            logger.info("warm start: %d finished trials of sweep %r", len(plan.warm_points), spec.warm_start)
        # a multi-objective sweep gives OptunaSearch the metric list and the mode list (an Optuna study
        # with one direction per objective: its best_trials are the Pareto set)
        metric: Any = [m for m, _ in spec.objectives] if spec.is_multi_objective else spec.metric
        mode: Any = [d for _, d in spec.objectives] if spec.is_multi_objective else spec.mode
        searcher = OptunaSearch(
            space=optuna_define_by_run(spec.params), metric=metric, mode=mode,
            sampler=make_optuna_sampler(sampler_spec, spec.params, max_concurrent=spec.max_concurrent),
            **warm,
        )
        if spec.repeats > 1 and spec.is_multi_objective:
            from sweeps.launch.repeat import ObjectivesRepeater

            searcher = ObjectivesRepeater(searcher, repeat=spec.repeats, set_index=True)
        elif spec.repeats > 1:
            searcher = Repeater(searcher, repeat=spec.repeats, set_index=True)
        searcher = ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent)
    if spec.scheduler is not None:
        scheduler = ASHAScheduler(
            time_attr=spec.scheduler.time_attr, max_t=spec.scheduler.max_t,
            grace_period=spec.scheduler.grace_period, reduction_factor=spec.scheduler.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    param_space = {**spec.config, **plan.config_overrides}
    num_samples = spec.num_samples * (spec.repeats if spec.params else 1)
    if not spec.params and spec.repeats > 1:
        param_space["__trial_index__"] = tune.grid_search(list(range(spec.repeats)))
        num_samples = spec.num_samples
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            # Tune's own metric (result grids, the progress table's sort): the first objective; the
            # searcher of a multi-objective sweep has every objective
            metric=spec.metric, mode=spec.mode, search_alg=searcher, scheduler=scheduler,
            num_samples=num_samples,
            # the ConcurrencyLimiter limits a searched sweep (Tune ignores this then, with a warning)
            max_concurrent_trials=None if searcher is not None else spec.max_concurrent,
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
            callbacks=[callback, CSVLoggerCallback(), JsonLoggerCallback(), *callbacks],
            verbose=verbose,
        ),
    )


class _DropRayHints(logging.Filter):
    """Drops Ray's "resume with Tuner.restore(...)" hint: ``xaisweep`` prints its own command."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Experiment has been interrupted") and "Tuner.restore" in msg)


class _DropLocalAuthWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _quiet_local_auth_warning() -> None:
    log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropLocalAuthWarning) for f in log.filters):
        log.addFilter(_DropLocalAuthWarning())


class _DropMissingResultFiles(logging.Filter):
    """Drops "Failed to fetch metrics ... result.json and progress.csv were not found": a trial
    stopped (interruption, time budget, killed driver) before its first result has none; the
    MLflow run is the record, and the resumed trial writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if not msg.startswith("Failed to fetch metrics for"):
            return True
        lines = [line for line in msg.splitlines()[1:] if line.strip()]
        return not all("were not found" in line for line in lines)


def _quiet_ray_hints() -> None:
    for name, cls in (("ray.tune.tune", _DropRayHints),
                      ("ray.tune.analysis.experiment_analysis", _DropMissingResultFiles)):
        log = logging.getLogger(name)
        if not any(isinstance(f, cls) for f in log.filters):
            log.addFilter(cls())


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def run_sweep(
    plan: SweepPlan,
    *,
    address: Optional[str] = None,
    resume: bool = False,
    fresh: bool = False,
    num_cpus: Optional[int] = None,
    verbose: int = 1,
    callbacks: Sequence[Any] = (),
) -> SweepOutcome:
    """Start (or resume) the sweep of a validated :class:`SweepPlan` and wait for it.

    Connects to ``address`` or starts a local Ray (``num_cpus``) unless Ray is already
    initialised; a Ray started here is shut down on return. ``callbacks`` are extra
    ``ray.tune.Callback`` objects for a new sweep. The sweep directory is locked while
    this runs; an existing sweep of the name needs ``resume`` or ``fresh``
    (:mod:`sweeps.launch.sweep_state`; a smoke test is always fresh).
    """
    lock = SweepLock(plan.experiment_dir)
    holder = lock.acquire()
    if holder is not None:
        raise PreflightError([f"sweep {plan.spec.name!r} is running in another driver ({holder}; lock "
                              f"{lock.path}): wait for it to end, or give this one another --name"])
    try:
        check_existing_sweep(plan, resume=resume, fresh=fresh or plan.smoke_test)
        return _run_locked(plan, address=address, resume=resume, num_cpus=num_cpus, verbose=verbose,
                           callbacks=callbacks)
    finally:
        lock.release()


def check_existing_sweep(plan: SweepPlan, *, resume: bool, fresh: bool) -> None:
    """Without ``resume``: refuse an existing sweep of this name unless ``fresh`` (then discard it).
    With ``resume``: refuse a spec that changed in a way a resume cannot apply. Raises
    :class:`PreflightError` naming the choices."""
    name = plan.spec.name
    state = read_launch(plan)
    if not resume:
        launches = mlflow_launches(plan.tracking_uri, name)
        if state is None and not ray_state_exists(plan.experiment_dir) and not launches:
            return
        if fresh:
            n = discard_sweep(plan.experiment_dir, plan.tracking_uri, name)
            logger.warning("--fresh: discarded the earlier sweep %r (Ray state under %s; %d MLflow run(s) moved "
                           "to MLflow's trash)", name, plan.experiment_dir, n)
            return
        when = ""
        if launches:
            when = f", last launched {time.strftime('%Y-%m-%d %H:%M', time.localtime(launches[0].info.start_time / 1000))}"
        raise PreflightError([
            f"a sweep named {name!r} already exists (storage {plan.experiment_dir}, tracking {plan.tracking_uri}"
            f"{when}). Choose: --resume to finish it; --name NEW to start another sweep beside it; or --fresh to "
            f"discard it (its Ray state is deleted and its MLflow runs are moved to MLflow's trash)"])
    if state is None:
        return  # nothing to resume: start_parent_run says so and starts a new sweep
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(plan.tracking_uri).get_run(state["parent_run_id"])
    except Exception as err:  # noqa: BLE001
        raise PreflightError([
            f"--resume: the sweep's parent run {state['parent_run_id']} is not in the tracking store "
            f"{plan.tracking_uri} ({type(err).__name__}); resume with the tracking URI the sweep was "
            f"started with ({state.get('tracking_uri', '?')})"]) from None
    if "spec" not in state:
        logger.warning("--resume: sweep %r was launched by an older xaisweep without a spec fingerprint: "
                       "changes to the spec cannot be checked", name)
        return
    refused, accepted = spec_changes(state["spec"], plan.spec.to_dict())
    if refused:
        raise PreflightError([
            f"--resume: the spec of sweep {name!r} changed since it was launched (fingerprint "
            f"{state.get('fingerprint', '?')[:12]}); a resumed sweep keeps its search space, sampler, scheduler, "
            f"trial budget and concurrency, so these changes cannot apply:",
            *(f"  {line}" for line in refused),
            f"revert them to resume; or run the new spec as a new sweep (--name NEW, optionally with "
            f"warm_start: {{experiment: {name}}} to reuse the finished trials), or --fresh to discard this one. "
            f"A resume accepts changes of: {', '.join(RESUMABLE_CHANGES)}"])
    for line in accepted:
        logger.warning("--resume: applying the changed %s", line)


def ray_nodes() -> tuple[list[dict[str, float]], Optional[dict[str, float]]]:
    """``({"CPU": n, "GPU": m, ...} of every alive node, what the autoscaler could add or None)``."""
    import ray

    nodes = [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]
    try:
        from ray._private.state import state

        max_cluster = state.get_max_resources_from_cluster_config()
    except Exception:  # noqa: BLE001 - private API; without it only the alive nodes count
        max_cluster = None
    return nodes, max_cluster


def _start_ray(plan: SweepPlan, address: Optional[str], num_cpus: Optional[int], verbose: int) -> bool:
    """Connect to ``address`` or start a local Ray unless one is up; returns whether it started one."""
    import ray

    started = init_ray(address, num_cpus, verbose)
    if started and address:
        for warning in multinode_warnings(plan, len([n for n in ray.nodes() if n.get("Alive")])):
            logger.warning(warning)
    return started


def init_ray(address: Optional[str], num_cpus: Optional[int], verbose: int) -> bool:
    """Connect to ``address`` or start a local Ray (``num_cpus``) unless one is up, with the environment every
    trial needs (the MLflow retry policy of the driver); returns whether it started or connected one."""
    import ray

    if ray.is_initialized():
        return False
    env_vars = {"TOKENIZERS_PARALLELISM": "false", "RAY_AIR_NEW_OUTPUT": os.environ.get("RAY_AIR_NEW_OUTPUT", "1")}
    # the tracking-server retry policy set for the driver holds in every trial, on every node
    env_vars.update({k: v for k, v in os.environ.items() if k.startswith(MLFLOW_RETRY_ENV_PREFIX)})
    env = {"env_vars": env_vars}
    kwargs: dict[str, Any] = {"runtime_env": env, "log_to_driver": verbose > 0}
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(include_dashboard=False, num_cpus=num_cpus)
        # Ray enables token authentication for a new local cluster (mode unset) and warns that
        # it did on every run: the protection stays, the warning goes (README, "Cluster").
        _quiet_local_auth_warning()
    try:
        ray.init(**kwargs)
    except ConnectionError as err:
        if address and os.environ.get("RAY_AUTH_MODE") != "token":
            raise ConnectionError(
                f"{err}\nhint: a cluster started with token authentication needs "
                "RAY_AUTH_MODE=token (and RAY_AUTH_TOKEN_PATH if the token is not ~/.ray/auth_token)"
            ) from err
        raise
    return True


def _fit_resources(plan: SweepPlan, *, local: bool) -> SweepPlan:
    """Check the per-trial request against the Ray nodes (:func:`sweeps.launch.plan.check_resources`)."""
    nodes, max_cluster = ray_nodes()
    resources, warnings, problems = check_resources(
        plan.spec.resources, nodes, local=local, smoke_test=plan.smoke_test, max_cluster=max_cluster)
    if problems:
        raise PreflightError(problems)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if resources != plan.spec.resources:
        plan = dataclasses.replace(plan, spec=dataclasses.replace(plan.spec, resources=resources))
    return plan


def _run_locked(plan: SweepPlan, *, address, resume, num_cpus, verbose, callbacks) -> SweepOutcome:
    import ray
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    started_ray = _start_ray(plan, address, num_cpus, verbose)
    launch: Optional[dict[str, Any]] = None
    client = MlflowClient(plan.tracking_uri)
    try:
        plan = _fit_resources(plan, local=not address)
        launch = start_parent_run(plan, resume=resume)
        tuner = build_tuner(plan, launch, resume=resume, verbose=verbose, callbacks=callbacks)
        results = tuner.fit()
    except BaseException as exc:
        if launch is not None:
            parent = launch["parent_run_id"]
            try:
                client.set_terminated(parent, status="KILLED")
                if isinstance(exc, KeyboardInterrupt):  # a second Ctrl-C: Tune did not get to save and return
                    client.set_tag(parent, mlflow_names.INTERRUPTED, mlflow_names.TRUE)
                    mark_unended_runs_interrupted(client, launch["experiment_id"], parent)
            except Exception as err:  # noqa: BLE001 - do not hide the original error
                logger.warning("could not mark the parent run %s KILLED: %s", parent, err)
        if started_ray:
            ray.shutdown()
        raise
    try:
        return close_launch(plan, client, launch, results, restored=bool(launch.get("resumed")))
    except (MlflowException, OSError) as err:  # requests' errors are OSErrors
        raise TrackingUnavailable(
            f"the sweep ran ({len(results)} trials, saved under {plan.experiment_dir}) but the tracking server "
            f"{plan.tracking_uri} did not answer while the launch was being closed ({err}). Nothing Ray saved is "
            f"lost: once the server is back, `xaisweep run SPEC --resume` closes the launch (it re-runs no "
            f"finished trial)") from None
    finally:
        if started_ray:
            ray.shutdown()


#: MLflow's HTTP retry settings (MLFLOW_HTTP_REQUEST_MAX_RETRIES, ..._BACKOFF_FACTOR, ..._TIMEOUT, ...),
#: passed from the driver's environment to every trial (docs/cluster.md, "Tracking-server outages")
MLFLOW_RETRY_ENV_PREFIX = "MLFLOW_HTTP_REQUEST_"


class TrackingUnavailable(RuntimeError):
    """The tracking server did not answer after the trials ran (the launch can be closed with ``--resume``)."""


def run_link(tracking_uri: str, experiment_id: str, run_id: Optional[str]) -> str:
    """A link to the run (the experiment's runs table without ``run_id``) in the classic MLflow UI
    (``xaisweep ui`` serves the local store on port 5000): :func:`sweeps.mlflow_links.ui_link`."""
    return ui_link(tracking_uri, experiment_id, run_id)


__all__ = ["MLFLOW_RETRY_ENV_PREFIX", "TrackingUnavailable", "build_tuner", "check_existing_sweep", "init_ray",
           "ray_nodes", "run_link", "run_sweep"]
