"""One sweep name, one driver: the sweep directory's lock, the spec fingerprint a resume is checked
against, and what happens when a sweep of that name already exists.

Rules (README, "Resume"):

* While a driver runs, it holds an exclusive lock on ``<storage>/<name>/.xaisweep.lock``
  (``fcntl.flock``: released by the OS when the driver dies, SIGKILL included). A second
  ``xaisweep run`` of that name, with or without ``--resume``, stops before Ray starts.
* Without ``--resume``, an existing sweep of that name (its Ray state, or a launch of it
  in the MLflow experiment) is an error naming the choices: ``--resume``, ``--name NEW``,
  or ``--fresh`` (the old Ray state is deleted and the old MLflow runs are moved to
  MLflow's trash, from where ``mlflow gc`` purges or the UI restores them).
  ``--smoke-test`` runs are always fresh.
* ``--resume`` compares the spec with the one the sweep was launched with (stored in the
  launch file with its sha256 fingerprint) and refuses every change except those in
  :data:`RESUMABLE_CHANGES`: a restored Ray Tune experiment keeps its search space, sampler,
  scheduler, trial budget and concurrency, so any other change would silently not apply
  (or, for ``num_samples``, leave the sweep "interrupted" forever).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Optional

#: spec keys a ``--resume`` accepts changes of: ``description`` (text only), ``resources``
#: (per-trial CPU/GPU of the trials not started yet: the restored Tuner gets the new request)
#: and ``time_budget`` (it counts per launch: the resumed launch gets the new one).
RESUMABLE_CHANGES = ("description", "resources", "time_budget", "checkpoint_every_s")
#: keys that locate the sweep rather than define it (checked separately by resume)
_LOCATION_KEYS = ("tracking_uri", "storage_path")
LOCK_FILE = ".xaisweep.lock"


def spec_fingerprint(spec_dict: dict[str, Any]) -> str:
    """sha256 of the spec's defining part (everything but :data:`RESUMABLE_CHANGES` and location)."""
    core = {k: v for k, v in spec_dict.items() if k not in RESUMABLE_CHANGES + _LOCATION_KEYS}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): d}


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(refused, accepted)`` differences between two ``SweepSpec.to_dict()``, one line each."""
    a = _flat({k: v for k, v in old.items() if k not in _LOCATION_KEYS})
    b = _flat({k: v for k, v in new.items() if k not in _LOCATION_KEYS})
    refused, accepted = [], []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") == b.get(key, "<absent>"):
            continue
        line = f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}"
        (accepted if key.split(".")[0] in RESUMABLE_CHANGES else refused).append(line)
    return refused, accepted


class SweepLock:
    """An exclusive, process-lifetime lock on a sweep directory (no-op for remote storage)."""

    def __init__(self, experiment_dir: str) -> None:
        self.path = None if "://" in experiment_dir else Path(experiment_dir) / LOCK_FILE
        self._fd: Optional[int] = None

    def acquire(self) -> Optional[str]:
        """Take the lock; returns ``None``, or who holds it (then the lock is not taken)."""
        if self.path is None:
            return None
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
            os.close(fd)
            return holder
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
                 .encode())
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "SweepLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def ray_state_exists(experiment_dir: str) -> bool:
    """Whether a Ray Tune experiment of this name was saved here (local storage only)."""
    if "://" in experiment_dir:
        return False
    d = Path(experiment_dir)
    return (d / "tuner.pkl").exists() or any(d.glob("experiment_state-*.json"))


def mlflow_launches(tracking_uri: str, name: str) -> list[Any]:
    """Active parent (launch) runs of sweep ``name`` in its MLflow experiment, newest first."""
    from mlflow.tracking import MlflowClient

    from trainables import mlflow_names

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is None or exp.lifecycle_stage == "deleted":
        return []
    return client.search_runs([exp.experiment_id], mlflow_names.SWEEP_LAUNCHES,
                              order_by=["attributes.start_time DESC"], max_results=1000)


def discard_sweep(experiment_dir: str, tracking_uri: str, name: str) -> int:
    """``--fresh``: delete the Ray state and move every MLflow run of the sweep to the trash.

    Returns the number of MLflow runs deleted (``mlflow.tracking.MlflowClient.restore_run``
    brings one back; ``mlflow gc`` purges them).
    """
    from mlflow.tracking import MlflowClient

    if "://" not in experiment_dir and Path(experiment_dir).exists():
        for child in Path(experiment_dir).iterdir():
            if child.name == LOCK_FILE:
                continue  # held by this driver
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return 0
    n = 0
    for run in client.search_runs([exp.experiment_id], max_results=50000):
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, status="KILLED")
        client.delete_run(run.info.run_id)
        n += 1
    return n


__all__ = ["RESUMABLE_CHANGES", "SweepLock", "spec_fingerprint", "spec_changes", "ray_state_exists",
           "mlflow_launches", "discard_sweep"]
