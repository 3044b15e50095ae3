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

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

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
        try:
            parent = client.get_run(state["parent_run_id"])
        except Exception as err:  # noqa: BLE001
            raise PreflightError([
                f"--resume: the sweep's parent run {state['parent_run_id']} is not in the tracking store "
                f"{plan.tracking_uri} ({type(err).__name__}); resume with the tracking URI the sweep was "
                f"started with ({state.get('tracking_uri', '?')})"
            ]) from None
        client.update_run(state["parent_run_id"], status="RUNNING")
        if "interrupted" in parent.data.tags:
            client.delete_tag(state["parent_run_id"], "interrupted")
        resumes = parent.data.tags.get("resumes", "0")
        client.set_tag(state["parent_run_id"], "resumes", str(int(resumes) + 1 if resumes.isdigit() else 1))
        return {**state, "resumed": True}
    if resume:
        logger.warning("--resume: no earlier launch of sweep %r under %s; starting a new sweep",
                       plan.spec.name, plan.experiment_dir)
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


_CALLBACK_CLS = None
# parent run id -> ids of the trials that had not ended when Tune's loop stopped, written
# by the callback at the end of ``fit()`` (before Tune's clean-up marks every trial TERMINATED)
_UNENDED_AT_EXIT: dict[Optional[str], list[str]] = {}
_ENDED = ("TERMINATED", "ERROR")


def _mlflow_callback_cls():
    """The driver-side ``tune.Callback`` class (built on first use: importing Ray is slow).

    It is published as ``sweeps.launcher.MlflowStatusCallback`` (module ``__getattr__``),
    so the Tuner state pickles it by reference: a resumed sweep runs the installed
    code, not a copy pickled when the sweep started.
    """
    global _CALLBACK_CLS
    if _CALLBACK_CLS is not None:
        return _CALLBACK_CLS
    from ray import tune

    from trainables.ray_trainable import COMPLETE_KEY

    class MlflowStatusCallback(tune.Callback):
        """Driver-side bookkeeping of trial runs the trial itself could not close.

        A trial that ended closes its run FINISHED here, when Tune records it as
        ended: after its final report (``trial_complete`` in the result), or with
        tag ``early_stopped`` when the scheduler stopped it before. Trials that
        died without closing their run (worker crash, OOM) end FAILED with Ray's
        error as ``failure_reason``; a retry (``max_failures``) is counted in tag
        ``ray_failures``.
        """

        def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: Optional[str] = None) -> None:
            self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id

        def __setstate__(self, state: dict) -> None:
            self.__dict__.update({"parent_run_id": None, **state})

        def _run_id(self, client, trial) -> Optional[str]:
            from trainables.tracking import find_trial_runs

            run_id = (trial.last_result or {}).get("mlflow_run_id")
            if run_id:
                return run_id
            found = find_trial_runs(client, self.experiment_id, trial.trial_id, self.parent_run_id)
            return found[0].info.run_id if found else None

        def _close(self, trial, status: str, reason: Optional[str] = None) -> None:
            from mlflow.tracking import MlflowClient

            try:
                client = MlflowClient(self.tracking_uri)
                run_id = self._run_id(client, trial)
                if run_id is None or client.get_run(run_id).info.status != "RUNNING":
                    return  # no run yet, or the trial closed its own run
                last = trial.last_result or {}
                if status == "FINISHED" and not last.get(COMPLETE_KEY):  # stopped by the scheduler
                    client.set_tag(run_id, "early_stopped", "true")
                    client.set_tag(run_id, "stopped_at_iteration", str(int(last.get("training_iteration", 0))))
                if reason:
                    client.set_tag(run_id, "failure_reason", reason[:4000])
                client.set_terminated(run_id, status=status)
            except Exception as err:  # noqa: BLE001 - bookkeeping must never kill the sweep
                logger.warning("could not update MLflow run of trial %s: %s", trial.trial_id, err)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._close(trial, "FINISHED")

        def on_step_end(self, iteration, trials, **info):
            self._unended = [t.trial_id for t in trials if t.status not in _ENDED]

        def on_experiment_end(self, trials, **info):
            unended = getattr(self, "_unended", None)
            if unended is None:
                unended = [t.trial_id for t in trials if t.status not in _ENDED]
            _UNENDED_AT_EXIT[self.parent_run_id] = list(unended)

        def on_trial_recover(self, iteration, trials, trial, **info):
            from mlflow.tracking import MlflowClient

            try:
                client = MlflowClient(self.tracking_uri)
                run_id = self._run_id(client, trial)
                if run_id is not None:
                    client.set_tag(run_id, "ray_failures", str(trial.num_failures))
            except Exception as err:  # noqa: BLE001
                logger.warning("could not update MLflow run of trial %s: %s", trial.trial_id, err)

        def on_trial_error(self, iteration, trials, trial, **info):
            reason = None
            path = getattr(trial, "error_file", None)
            if path and os.path.exists(path):
                reason = Path(path).read_text()[-2000:]
            self._close(trial, "FAILED", reason or "trial errored (see Ray logs)")

    MlflowStatusCallback.__module__ = __name__
    MlflowStatusCallback.__qualname__ = "MlflowStatusCallback"
    _CALLBACK_CLS = MlflowStatusCallback
    return MlflowStatusCallback


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


def multinode_warnings(plan: SweepPlan, alive_nodes: int) -> list[str]:
    """Settings that only work on one machine, when the cluster has several nodes."""
    if alive_nodes < 2:
        return []
    out = []
    uri = plan.tracking_uri
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri or "127.0.0.1" in uri or "localhost" in uri:
        out.append(f"tracking URI {uri} is local to this machine but the cluster has {alive_nodes} nodes: "
                   "trials on other nodes log to their own disk; use the head's MLflow server (http://<head>:5000)")
    if "://" not in plan.storage_path:
        out.append(f"storage {plan.storage_path} is a local path: trials can only resume on another node if it is "
                   "a shared filesystem mounted at the same path on every node (or use s3://...)")
    return out


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` returns.

    ``interrupted``: the sweep was stopped (SIGINT) before every trial ended; it can be
    finished with ``resume=True``. ``orphaned_runs``: MLflow runs of trials that a killed
    driver started but never recorded in its Ray state, deleted when the sweep completed.
    """

    plan: SweepPlan
    experiment_id: str
    parent_run_id: str
    results: Any  # ray.tune.ResultGrid
    best: Optional[dict[str, Any]]
    num_errors: int
    interrupted: bool = False
    unfinished_trials: list[str] = dataclasses.field(default_factory=list)
    orphaned_runs: list[str] = dataclasses.field(default_factory=list)


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


def _trial_id(result) -> Optional[str]:
    """Ray trial id of a ``ray.tune.Result`` (from its directory name, see ``_trial_dirname``)."""
    name = Path(str(result.path or "")).name
    if name.startswith("trial_"):
        return name[len("trial_"):]
    return (result.metrics or {}).get("trial_id")


def _close_launch(plan: SweepPlan, client, launch: dict[str, Any], results, *, restored: bool) -> SweepOutcome:
    from trainables.tracking import find_trial_runs

    parent, exp_id = launch["parent_run_id"], launch["experiment_id"]
    # On SIGINT Tune saves its state, stops the running trials as if they had completed and
    # returns from fit() normally. The callback noted which trials had not ended by then.
    unended = _UNENDED_AT_EXIT.pop(parent, None)
    if unended is None:  # a callback of an older version: the last result says whether a trial ended
        unended = [t for t in (_trial_id(r) for r in results if r.error is None and not (r.metrics or {}).get("done"))
                   if t]
    expected = plan.spec.num_samples * plan.spec.repeats
    interrupted = bool(unended) or len(results) < expected
    outcome = SweepOutcome(plan, exp_id, parent, results, best_of(plan.spec, results), results.num_errors,
                           interrupted=interrupted, unfinished_trials=list(unended))
    if interrupted:
        for trial_id in outcome.unfinished_trials:
            for run in find_trial_runs(client, exp_id, trial_id, parent):
                if run.info.status == "RUNNING":
                    client.set_tag(run.info.run_id, "interrupted", "true")
                    client.set_terminated(run.info.run_id, status="KILLED")
        client.set_tag(parent, "interrupted", "true")
        client.set_terminated(parent, status="KILLED")
        return outcome
    if restored:
        outcome.orphaned_runs = _delete_orphans(client, exp_id, parent, results)
    best = outcome.best
    if best is not None:
        client.log_metric(parent, f"best/{plan.spec.metric}", float(best["metric"]))
        client.set_tag(parent, "best_run_id", best.get("mlflow_run_id") or "")
    client.set_terminated(parent, status="FINISHED")
    return outcome


def _delete_orphans(client, experiment_id: str, parent_run_id: str, results) -> list[str]:
    """Delete child runs whose Ray trial is not part of the (restored, now complete) sweep.

    A driver killed hard (SIGKILL, lost machine) saves Tune's experiment state only
    every few seconds; trials it started after the last save have an MLflow run but no
    Ray trial: on resume the search goes on from the saved state with new trials. Such
    runs are tagged ``orphaned`` and deleted (MLflow keeps deleted runs restorable).
    """
    trial_ids = {_trial_id(r) for r in results}
    if None in trial_ids:
        return []  # cannot tell every trial's id: keep everything
    orphans = []
    children = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                  max_results=50000)
    for run in children:
        trial_id = run.data.tags.get("ray_trial_id")
        if trial_id and trial_id not in trial_ids:
            client.set_tag(run.info.run_id, "orphaned", "its Ray trial was lost when the sweep driver was killed")
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, status="KILLED")
            client.delete_run(run.info.run_id)
            orphans.append(run.info.run_id)
    if orphans:
        logger.warning("deleted %d MLflow run(s) of trials lost with the killed driver: %s",
                       len(orphans), ", ".join(orphans))
    return orphans


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
