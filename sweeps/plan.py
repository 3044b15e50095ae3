"""Pre-Ray part of ``xaisweep run``: the resolved :class:`SweepPlan` and every check before Ray starts."""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from sweeps.preflight import check_storage_path, check_trial_configs, check_trial_io, check_tracking_uri, grid_warning
from sweeps.spec import SweepSpec, apply_overrides
from sweeps.workdir import Workdir, resolve_tracking_uri
from trainables import get_trainable

logger = logging.getLogger(__name__)


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
    problems += check_trial_io(spec, overrides)
    problems += check_tracking_uri(uri)
    problems += check_storage_path(storage_path)
    if problems:
        raise PreflightError(problems)
    warning = grid_warning(spec)
    if warning:
        logger.warning(warning)
    return SweepPlan(spec=spec, tracking_uri=uri, storage_path=storage_path, workdir=workdir,
                     config_overrides=overrides)


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
