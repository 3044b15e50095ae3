"""MLflow logging from inside a trial (so a worker node logs its own artifacts). Under Ray, a
:class:`TrialRun` lives in the worker's tracking process (:mod:`trainables.tracking_process`).

One MLflow experiment per sweep name, one parent run per launch (created by
the launcher), one child run per Ray trial. A retried or resumed trial
re-opens *its* child run (found by the ``ray_trial_id`` tag) and skips
epochs already logged, so nothing is lost or duplicated.

Every call goes through MLflow's HTTP client, which retries a refused or broken request
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``; docs/cluster.md,
"Tracking-server outages"). A retry may repeat a request the server had already carried out:
a metric batch is resent as it was (same timestamps), which the SQL store stores once; a
repeated ``create_run`` makes a second run, which :class:`TrialRun` deletes.
"""
from __future__ import annotations

import functools
import hashlib
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from trainables import mlflow_names

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


@functools.lru_cache(maxsize=1)
def git_state(cwd: Optional[str] = None) -> tuple[str, Optional[bool], str]:
    """``(commit, dirty, diff)`` of the project checkout: ``dirty`` is ``None`` outside git;
    ``diff`` is ``git diff HEAD`` (tracked changes) plus the list of untracked files."""
    root = cwd or str(Path(__file__).resolve().parents[1])

    def git(*args: str) -> Optional[str]:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = (git("rev-parse", "HEAD") or "").strip() or "unknown"
    status = git("status", "--porcelain", "--untracked-files=normal")
    if status is None:
        return commit, None, ""
    diff = git("diff", "HEAD") or ""
    untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
    if untracked:
        diff += "\n# untracked files (not in the diff):\n" + "".join(f"#   {u}\n" for u in untracked)
    return commit, bool(status.strip()), diff


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Every installed distribution and its version (``importlib.metadata``), sorted by name; read once
    per process (~70 ms: every trial of a reused worker runs the code that process imported)."""
    from importlib import metadata

    out = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            out[name] = dist.version
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) for the process."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def data_files(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Local files a trial config names: ``{path: {"key": config key, "sha256": ..., "bytes": n}}``.

    String values that are files are hashed; a ``{split}`` pattern is hashed for every file
    it matches. Directories (model folders) are not hashed.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, value in flatten(config).items():
        if not isinstance(value, str) or not value or "://" in value:
            continue
        if "{split}" in value:
            pattern = Path(value.replace("{split}", "*"))
            candidates = sorted(pattern.parent.glob(pattern.name)) if pattern.parent.is_dir() else []
        else:
            candidates = [Path(value)]
        for path in candidates:
            try:
                if path.is_file():
                    out[str(path)] = {"key": key, "sha256": sha256_file(path), "bytes": path.stat().st_size}
            except OSError:
                continue
    return out


def provenance(config: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``(tags, files)`` recording where a run came from: git commit, dirty flag, diff, package
    versions and the sha256 of every local data file of ``config``; ``files`` maps artifact
    names under ``provenance/`` to their text."""
    commit, dirty, diff = git_state()
    data = data_files(config)
    tags = {mlflow_names.GIT_COMMIT: commit, mlflow_names.GIT_DIRTY: "unknown" if dirty is None else str(dirty).lower()}
    for i, (path, info) in enumerate(sorted(data.items())):
        tags[f"data_sha256.{info['key']}" + (f".{i}" if sum(v["key"] == info["key"] for v in data.values()) > 1
                                              else "")] = info["sha256"]
    files = {"packages.txt": "".join(f"{k}=={v}\n" for k, v in dict(package_versions()).items()),
             "data_files.json": json.dumps(data, indent=2, sort_keys=True)}
    if dirty:
        files["git_diff.patch"] = diff
    return tags, files


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


#: MLflow 3's UI opens an experiment without this tag in its GenAI view (traces); a sweep is a
#: classic ML experiment whose runs table should open.
EXPERIMENT_KIND = {mlflow_names.EXPERIMENT_KIND: "custom_model_development"}


def get_or_create_experiment(client: MlflowClient, name: str, artifact_location: Optional[str] = None) -> str:
    """The experiment ``name`` (restored if deleted, created if missing), tagged as a classic ML experiment."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        if mlflow_names.EXPERIMENT_KIND not in (exp.tags or {}):
            for key, value in EXPERIMENT_KIND.items():
                client.set_experiment_tag(exp.experiment_id, key, value)
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location, tags=dict(EXPERIMENT_KIND))
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
            mlflow_names.RAY_TRIAL_ID: trial_id,
            mlflow_names.RUN_NAME: run_name,
            mlflow_names.HOST: socket.gethostname(),
            mlflow_names.GIT_COMMIT: git_commit(),
            mlflow_names.ATTEMPTS: "1",
            **{k: str(v) for k, v in tags.items()},
        }
        if parent_run_id:
            base_tags[mlflow_names.PARENT_RUN_ID] = parent_run_id
        if existing:
            run = existing[0]
            self.run_id = run.info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            # outcome tags of the previous attempt no longer describe this run
            for key in STALE_ON_RESUME:
                if key in run.data.tags:
                    self.client.delete_tag(self.run_id, key)
            if mlflow_names.FAILURE_REASON in run.data.tags:
                base_tags[mlflow_names.PREVIOUS_FAILURE_REASON] = run.data.tags[mlflow_names.FAILURE_REASON][:5000]
            base_tags[mlflow_names.RESUMED] = mlflow_names.TRUE
            previous = run.data.tags.get(mlflow_names.ATTEMPTS, "1")
            base_tags[mlflow_names.ATTEMPTS] = str(int(previous) + 1 if previous.isdigit() else 2)
            self.resumed = True
        else:
            run = self.client.create_run(experiment_id, tags=base_tags, run_name=run_name)
            self.run_id = run.info.run_id
            self.resumed = False
            self._drop_duplicate_runs(trial_id, parent_run_id)
        if self.resumed:
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in base_tags.items()
                                                     if k not in (mlflow_names.PARENT_RUN_ID,)])
        self._logged_steps = self._existing_steps()
        self.finished = False

    def _drop_duplicate_runs(self, trial_id: str, parent_run_id: Optional[str]) -> None:
        """Delete the other runs of this trial that appeared while this one was created.

        ``create_run`` is not idempotent: when its request reached the server but the reply
        was lost (server or network dying mid-request), MLflow's client retries it and the
        server creates a second run. The trial had no run just before, so every other run of
        it now is such a twin (empty, RUNNING forever, and, being the older one, what a
        retried attempt would re-open): ended KILLED, tagged ``duplicate_of``, deleted.
        """
        for run in find_trial_runs(self.client, self.experiment_id, trial_id, parent_run_id):
            if run.info.run_id != self.run_id:
                self.client.set_tag(run.info.run_id, mlflow_names.DUPLICATE_OF, self.run_id)
                self.client.set_terminated(run.info.run_id, status="KILLED")
                self.client.delete_run(run.info.run_id)

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

    def log_metrics(self, metrics: Mapping[str, Any], step: int, timestamp_ms: Optional[int] = None) -> bool:
        """Log numeric ``metrics`` at ``step`` unless that step was already logged; returns whether logged.
        ``timestamp_ms``: when the trial made the call (default: now)."""
        if step in self._logged_steps:
            return False
        now = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
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

    def log_provenance(self, config: Mapping[str, Any]) -> None:
        """Tags and ``provenance/`` artifacts of :func:`provenance` (logged once per run)."""
        tags, files = provenance(config)
        self.set_tags(tags)
        for name, text in files.items():
            self.client.log_text(self.run_id, text, f"provenance/{name}")

    def finish(self, status: str = "FINISHED", reason: Optional[str] = None) -> None:
        if reason:
            self.set_tags({mlflow_names.FAILURE_REASON: reason})
        self.client.set_terminated(self.run_id, status=status)
        self.finished = True


def find_trial_runs(
    client: MlflowClient, experiment_id: str, trial_id: str, parent_run_id: Optional[str] = None
) -> list:
    """The (active) child run(s) of Ray trial ``trial_id``, oldest first.

    With ``parent_run_id`` only runs of that launch count: Ray trial ids are short
    random strings, so two launches of a sweep into one experiment may share one.
    """
    query = f"tags.{mlflow_names.RAY_TRIAL_ID} = '{trial_id}'"
    if parent_run_id:
        query += f" and {mlflow_names.children_of(parent_run_id)}"
    return client.search_runs([experiment_id], filter_string=query, order_by=["attributes.start_time ASC"])


# Tags describing how an attempt ended; removed when a retried / resumed trial re-opens its run.
STALE_ON_RESUME = (mlflow_names.FAILURE_REASON, mlflow_names.FAILURE_TRACEBACK, mlflow_names.EARLY_STOPPED,
                   mlflow_names.STOPPED_AT_ITERATION, mlflow_names.INTERRUPTED)
