"""Embedded defaults: one work directory holding the MLflow SQLite store, its artifacts and Ray results."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_HOME = "XAISWEEP_HOME"
ENV_TRACKING = "MLFLOW_TRACKING_URI"


@dataclass(frozen=True)
class Workdir:
    """``./xaisweep-runs/`` by default (``$XAISWEEP_HOME`` overrides)::

        mlflow.db      SQLite backend store of MLflow
        mlartifacts/   MLflow artifact root (per-experiment folders)
        ray/           Ray Tune storage (experiment state, trial checkpoints)
    """

    root: Path

    @classmethod
    def default(cls) -> "Workdir":
        return cls(Path(os.environ.get(ENV_HOME, "xaisweep-runs")).resolve())

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def ray_storage(self) -> Path:
        return self.root / "ray"


def resolve_tracking_uri(cli: str | None, spec: str | None, workdir: Workdir) -> str:
    """CLI flag > spec ``tracking_uri`` > ``$MLFLOW_TRACKING_URI`` > the work dir's SQLite store."""
    return cli or spec or os.environ.get(ENV_TRACKING) or workdir.tracking_uri


def artifact_location_for(tracking_uri: str, workdir: Workdir, experiment: str) -> str | None:
    """Where a *new* experiment stores artifacts: the local artifact dir for a local SQLite/file store,
    the server's default (proxied ``mlflow-artifacts:``) for a tracking server."""
    if tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri:
        return (workdir.artifacts / experiment).resolve().as_uri()
    return None
