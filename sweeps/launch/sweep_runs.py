"""MLflow side of ``xaisweep run``: the parent run per launch, the driver-side trial-run callback,
and closing a launch (finished, interrupted, or resumed after a hard kill: orphaned runs).
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

from sweeps.launch.plan import PreflightError, SweepPlan
from sweeps.spec.parse import SweepSpec
from sweeps.launch.sweep_state import spec_fingerprint
from sweeps.workdir import artifact_location_for
from trainables import mlflow_names

logger = logging.getLogger(__name__)
LAUNCH_FILE = "xaisweep_launch.json"


def _launch_file(plan: SweepPlan) -> Optional[Path]:
    if "://" in plan.storage_path:
        return None
    return Path(plan.experiment_dir) / LAUNCH_FILE


def read_launch(plan: SweepPlan) -> Optional[dict[str, Any]]:
    """The launch file of the sweep (``None`` if there is none or storage is remote)."""
    launch = _launch_file(plan)
    if launch is None or not launch.exists():
        return None
    return json.loads(launch.read_text())


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
        if mlflow_names.INTERRUPTED in parent.data.tags:
            client.delete_tag(state["parent_run_id"], mlflow_names.INTERRUPTED)
        resumes = parent.data.tags.get(mlflow_names.RESUMES, "0")
        client.set_tag(state["parent_run_id"], mlflow_names.RESUMES,
                       str(int(resumes) + 1 if resumes.isdigit() else 1))
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
        tags={mlflow_names.ROLE: mlflow_names.ROLE_SWEEP, mlflow_names.SWEEP: plan.spec.name,
              mlflow_names.TRAINABLE: plan.spec.trainable, mlflow_names.GIT_COMMIT: git_commit(),
              mlflow_names.METRIC: plan.spec.metric, mlflow_names.MODE: plan.spec.mode,
              mlflow_names.OBJECTIVES: mlflow_names.objectives_value(plan.spec.objectives)},
    )
    spec_dict = plan.spec.to_dict()
    state = {"experiment_id": exp_id, "parent_run_id": run.info.run_id, "tracking_uri": plan.tracking_uri,
             "fingerprint": spec_fingerprint(spec_dict), "spec": spec_dict}
    client.set_tag(run.info.run_id, mlflow_names.SPEC_FINGERPRINT, state["fingerprint"])
    for key, value in {"num_samples": plan.spec.num_samples, "sampler": plan.spec.sampler.type,
                       "seed": plan.spec.sampler.seed, "metric": plan.spec.metric, "mode": plan.spec.mode}.items():
        client.log_param(run.info.run_id, key, value)
    if plan.spec.warm_start:
        client.set_tag(run.info.run_id, mlflow_names.WARM_START, f"{plan.spec.warm_start} ({len(plan.warm_points)} trials)")
    spec_text = yaml.safe_dump(plan.spec.to_dict(), sort_keys=False)
    client.log_text(run.info.run_id, spec_text, mlflow_names.SPEC_ARTIFACT)
    if launch is not None:
        launch.parent.mkdir(parents=True, exist_ok=True)
        launch.write_text(json.dumps(state))
    return state


_CALLBACK_CLS = None
# parent run id -> ids of the trials that had not ended when Tune's loop stopped, written
# by the callback at the end of ``fit()`` (before Tune's clean-up marks every trial TERMINATED)
_UNENDED_AT_EXIT: dict[Optional[str], list[str]] = {}
# parent run ids of launches that the spec's time_budget ended
_BUDGET_REACHED: set[Optional[str]] = set()
# parent run id -> time budget of the current launch (set by build_tuner: a restored callback
# keeps the budget it was pickled with, a resume may change it)
TIME_BUDGETS: dict[Optional[str], Optional[float]] = {}
_ENDED = ("TERMINATED", "ERROR")


def mlflow_callback_cls():
    """The driver-side ``tune.Callback`` class ``MlflowStatusCallback`` (built on first use: importing Ray is slow).

    It is published as ``sweeps.launcher.MlflowStatusCallback`` (that module's ``__getattr__``),
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

        def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: Optional[str] = None,
                     time_budget: Optional[float] = None) -> None:
            self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
            self.time_budget = time_budget
            self._started = time.monotonic()

        def __getstate__(self) -> dict:
            return {k: v for k, v in self.__dict__.items() if k not in ("_started", "_budget_fired")}

        def __setstate__(self, state: dict) -> None:
            # a restored sweep (resume) gets a fresh time budget: it counts per launch
            self.__dict__.update({"parent_run_id": None, "time_budget": None, **state,
                                  "_started": time.monotonic()})

        def on_step_begin(self, iteration, trials, **info):
            """``time_budget``: once spent, stop the sweep the way one Ctrl-C does (Tune saves its
            state, running trials keep their last checkpoint, finished ones stay finished), so
            ``--resume`` continues it."""
            budget = TIME_BUDGETS.get(self.parent_run_id, self.time_budget)
            if budget is None or getattr(self, "_budget_fired", False):
                return
            if time.monotonic() - self._started >= budget:
                import signal

                self._budget_fired = True
                _BUDGET_REACHED.add(self.parent_run_id)
                logger.warning("time_budget of %.0f s reached: stopping the sweep (resumable)", budget)
                signal.raise_signal(signal.SIGINT)

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
                    client.set_tag(run_id, mlflow_names.EARLY_STOPPED, mlflow_names.TRUE)
                    client.set_tag(run_id, mlflow_names.STOPPED_AT_ITERATION,
                                   str(int(last.get("training_iteration", 0))))
                if reason:
                    client.set_tag(run_id, mlflow_names.FAILURE_REASON, reason[:4000])
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
                    client.set_tag(run_id, mlflow_names.RAY_FAILURES, str(trial.num_failures))
            except Exception as err:  # noqa: BLE001
                logger.warning("could not update MLflow run of trial %s: %s", trial.trial_id, err)

        def on_trial_error(self, iteration, trials, trial, **info):
            reason = None
            path = getattr(trial, "error_file", None)
            if path and os.path.exists(path):
                reason = Path(path).read_text()[-2000:]
            self._close(trial, "FAILED", reason or "trial errored (see Ray logs)")

    # Published as sweeps.launcher.MlflowStatusCallback (launcher delegates here): the name
    # that Tuner states pickle, earlier ones included.
    MlflowStatusCallback.__module__ = "sweeps.launcher"
    MlflowStatusCallback.__qualname__ = "MlflowStatusCallback"
    _CALLBACK_CLS = MlflowStatusCallback
    return MlflowStatusCallback


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` returns.

    ``interrupted``: the sweep was stopped (SIGINT, or its ``time_budget`` was spent:
    ``time_budget_reached``) before every trial ended; it can be finished with ``resume=True``. ``orphaned_runs``: MLflow runs of trials that a killed
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
    time_budget_reached: bool = False

def result_trial_id(result) -> Optional[str]:
    """Ray trial id of a ``ray.tune.Result`` (from its directory name, see ``_trial_dirname``)."""
    name = Path(str(result.path or "")).name
    if name.startswith("trial_"):
        return name[len("trial_"):]
    return (result.metrics or {}).get("trial_id")


def close_launch(plan: SweepPlan, client, launch: dict[str, Any], results, *, restored: bool) -> SweepOutcome:
    """End the launch after ``Tuner.fit`` returned: KILLED with tag ``interrupted`` (and the runs of its
    unfinished trials) if the sweep was stopped before every trial ended, else FINISHED with the best
    trial's metric and ``best_run_id`` (a ``restored`` sweep first deletes its orphaned runs)."""
    from trainables.tracking import find_trial_runs

    parent, exp_id = launch["parent_run_id"], launch["experiment_id"]
    # On SIGINT Tune saves its state, stops the running trials as if they had completed and
    # returns from fit() normally. The callback noted which trials had not ended by then.
    unended = _UNENDED_AT_EXIT.pop(parent, None)
    if unended is None:  # a callback of an older version: the last result says whether a trial ended
        unended = [t for t in (result_trial_id(r) for r in results
                               if r.error is None and not (r.metrics or {}).get("done")) if t]
    expected = plan.spec.num_samples * plan.spec.repeats
    interrupted = bool(unended) or len(results) < expected
    outcome = SweepOutcome(plan, exp_id, parent, results, best_of(plan.spec, results), results.num_errors,
                           interrupted=interrupted, unfinished_trials=list(unended),
                           time_budget_reached=parent in _BUDGET_REACHED)
    _BUDGET_REACHED.discard(parent)
    if interrupted:
        for trial_id in outcome.unfinished_trials:
            for run in find_trial_runs(client, exp_id, trial_id, parent):
                if run.info.status == "RUNNING":
                    client.set_tag(run.info.run_id, mlflow_names.INTERRUPTED, mlflow_names.TRUE)
                    client.set_terminated(run.info.run_id, status="KILLED")
        client.set_tag(parent, mlflow_names.INTERRUPTED, mlflow_names.TRUE)
        client.set_terminated(parent, status="KILLED")
        return outcome
    if restored:
        outcome.orphaned_runs = delete_orphans(client, exp_id, parent, results)
    best = outcome.best
    if best is not None:
        # the parent's metric: the best trial's value, under the metric's own name when it is
        # already a running best ("best/valid_f1"), logged once (a resume re-logs only a change)
        key = parent_metric_name(plan.spec.metric)
        logged = client.get_run(parent).data.metrics.get(key)
        if logged is None or logged != float(best["metric"]):
            client.log_metric(parent, key, float(best["metric"]))
        client.set_tag(parent, mlflow_names.BEST_RUN_ID, best.get("mlflow_run_id") or "")
    client.set_terminated(parent, status="FINISHED")
    return outcome


def parent_metric_name(metric: str) -> str:
    """Name of the best trial's metric on the parent run: ``best/valid_f1`` stays, ``test/f1`` -> ``best/test/f1``."""
    return metric if metric.startswith("best/") else f"best/{metric}"


def mark_unended_runs_interrupted(client, experiment_id: str, parent_run_id: str) -> list[str]:
    """Tag ``interrupted`` and end KILLED every child run of the launch still RUNNING."""
    runs = client.search_runs([experiment_id], f"{mlflow_names.children_of(parent_run_id)} "
                              "and attributes.status = 'RUNNING'", max_results=50000)
    for run in runs:
        client.set_tag(run.info.run_id, mlflow_names.INTERRUPTED, mlflow_names.TRUE)
        client.set_terminated(run.info.run_id, status="KILLED")
    return [r.info.run_id for r in runs]


def delete_orphans(client, experiment_id: str, parent_run_id: str, results) -> list[str]:
    """Delete child runs whose Ray trial is not part of the (restored, now complete) sweep.

    A driver killed hard (SIGKILL, lost machine) saves Tune's experiment state only
    every few seconds; trials it started after the last save have an MLflow run but no
    Ray trial: on resume the search goes on from the saved state with new trials. Such
    runs are tagged ``orphaned`` and deleted (MLflow keeps deleted runs restorable).
    """
    trial_ids = {result_trial_id(r) for r in results}
    if None in trial_ids:
        return []  # cannot tell every trial's id: keep everything
    orphans = []
    children = client.search_runs([experiment_id], mlflow_names.children_of(parent_run_id), max_results=50000)
    for run in children:
        trial_id = run.data.tags.get(mlflow_names.RAY_TRIAL_ID)
        if trial_id and trial_id not in trial_ids:
            client.set_tag(run.info.run_id, mlflow_names.ORPHANED, "its Ray trial was lost when the sweep driver was killed")
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


def pareto_of(spec: SweepSpec, results) -> list[dict[str, Any]]:
    """The non-dominated trials of a ResultGrid over the spec's objectives (last reported values), best
    first by the first objective: ``{"values": [...], "params", "mlflow_run_id"}`` each."""
    from sweeps.results.pareto import pareto_mask

    rows = []
    for r in results:
        if r.error is not None or not r.metrics:
            continue
        values = [r.metrics.get(m) for m, _ in spec.objectives]
        if any(v is None or v != v for v in values):
            continue
        params = {p.name: r.config.get(p.name) for p in spec.params if p.name in r.config}
        rows.append({"values": [float(v) for v in values], "params": params,
                     "mlflow_run_id": r.metrics.get("mlflow_run_id")})
    mask = pareto_mask([row["values"] for row in rows], [d for _, d in spec.objectives])
    front = [row for row, keep in zip(rows, mask) if keep]
    return sorted(front, key=lambda row: row["values"][0], reverse=spec.mode == "max")


__all__ = [
    "LAUNCH_FILE", "TIME_BUDGETS", "SweepOutcome", "best_of", "pareto_of", "close_launch", "delete_orphans",
    "mark_unended_runs_interrupted", "mlflow_callback_cls", "parent_metric_name", "read_launch", "result_trial_id",
    "start_parent_run",
]
