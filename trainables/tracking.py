"""MLflow logging from inside a trial (so a worker node logs its own artifacts).

One MLflow experiment per sweep name, one parent run per launch (created by
the launcher), one child run per Ray trial. A retried or resumed trial
re-opens *its* child run (found by the ``ray_trial_id`` tag) and skips
epochs already logged, so nothing is lost or duplicated.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

MAX_PARAM_LEN = 6000


def git_commit(cwd: Optional[Path] = None) -> str:
    """Current git commit of the project, or ``"unknown"``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).resolve().parents[1],
            capture_output=True, text=True, timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite-or-NaN float metrics of a result dict (drops strings, bools, None)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, (int, float)):
            out[k] = float(v)
    return out


def get_or_create_experiment(client: MlflowClient, name: str, artifact_location: Optional[str] = None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # created concurrently by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


class TrialRun:
    """The child MLflow run of one trial.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///...`` or ``http://head:5000``).
        experiment_id: the sweep's experiment.
        parent_run_id: the launch's parent run.
        trial_id: Ray trial id (the identity used to re-open the run on retry).
        run_name: display name.
        tags: extra tags (sweep name, seed, device, ...).
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: Optional[str],
        trial_id: str,
        run_name: str,
        tags: Mapping[str, str],
    ) -> None:
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = experiment_id
        existing = find_trial_runs(self.client, experiment_id, trial_id, parent_run_id)
        base_tags = {
            "ray_trial_id": trial_id,
            "mlflow.runName": run_name,
            "host": socket.gethostname(),
            "git_commit": git_commit(),
            "attempts": "1",
            **{k: str(v) for k, v in tags.items()},
        }
        if parent_run_id:
            base_tags["mlflow.parentRunId"] = parent_run_id
        if existing:
            run = existing[0]
            self.run_id = run.info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            # outcome tags of the previous attempt no longer describe this run
            for key in STALE_ON_RESUME:
                if key in run.data.tags:
                    self.client.delete_tag(self.run_id, key)
            if "failure_reason" in run.data.tags:
                base_tags["previous_failure_reason"] = run.data.tags["failure_reason"][:5000]
            base_tags["resumed"] = "true"
            previous = run.data.tags.get("attempts", "1")
            base_tags["attempts"] = str(int(previous) + 1 if previous.isdigit() else 2)
            self.resumed = True
        else:
            run = self.client.create_run(experiment_id, tags=base_tags, run_name=run_name)
            self.run_id = run.info.run_id
            self.resumed = False
        if self.resumed:
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in base_tags.items()
                                                     if k not in ("mlflow.parentRunId",)])
        self._logged_steps = self._existing_steps()
        self.finished = False

    def _existing_steps(self) -> set[int]:
        if not self.resumed:
            return set()
        return {int(m.step) for m in self.client.get_metric_history(self.run_id, "training_iteration")}

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log a flat view of ``params``; on a re-opened run only new keys are logged."""
        current = self.client.get_run(self.run_id).data.params if self.resumed else {}
        items = [
            Param(k, str(v)[:MAX_PARAM_LEN]) for k, v in flatten(params).items() if k not in current
        ]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> bool:
        """Log numeric ``metrics`` at ``step`` unless that step was already logged; returns whether logged."""
        if step in self._logged_steps:
            return False
        now = int(time.time() * 1000)
        values = numeric_metrics(metrics)
        values["training_iteration"] = float(step)
        batch = [Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(batch), 200):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 200])
        self._logged_steps.add(step)
        return True

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_artifacts(self, files: Iterable[Path], root: Path) -> None:
        for f in files:
            rel = Path(f).resolve().relative_to(Path(root).resolve()).parent.as_posix()
            self.client.log_artifact(self.run_id, str(f), None if rel in ("", ".") else rel)

    def finish(self, status: str = "FINISHED", reason: Optional[str] = None) -> None:
        if reason:
            self.set_tags({"failure_reason": reason})
        self.client.set_terminated(self.run_id, status=status)
        self.finished = True


def find_trial_runs(
    client: MlflowClient, experiment_id: str, trial_id: str, parent_run_id: Optional[str] = None
) -> list:
    """The (active) child run(s) of Ray trial ``trial_id``, oldest first.

    With ``parent_run_id`` only runs of that launch count: Ray trial ids are short
    random strings, so two launches of a sweep into one experiment may share one.
    """
    query = f"tags.ray_trial_id = '{trial_id}'"
    if parent_run_id:
        query += f" and tags.`mlflow.parentRunId` = '{parent_run_id}'"
    return client.search_runs([experiment_id], filter_string=query, order_by=["attributes.start_time ASC"])


# Tags describing how an attempt ended; removed when a retried / resumed trial re-opens its run.
STALE_ON_RESUME = ("failure_reason", "failure_traceback", "early_stopped", "stopped_at_iteration", "interrupted")


def device_tag(requested: str = "auto") -> str:
    """Where the trial trains: ``cpu`` or ``cuda:<name> (CUDA_VISIBLE_DEVICES=...)``.

    ``requested`` is the trial config's ``device`` (``auto``, ``cpu``, ``cuda[:N]``).
    """
    import torch

    if requested == "cpu" or not torch.cuda.is_available():
        return "cpu"
    index = int(requested.split(":", 1)[1]) if requested.startswith("cuda:") else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    try:
        name = torch.cuda.get_device_name(index)
    except Exception:  # noqa: BLE001 - a bad index fails in the trial itself, with a clear error
        name = "?"
    return f"cuda:{index} {name} (CUDA_VISIBLE_DEVICES={visible})"
