"""Pre-Ray part of ``xaisweep run``: the resolved :class:`SweepPlan` and every check before Ray starts."""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from sweeps.launch.preflight import check_storage_path, check_trial_configs, check_trial_io, check_tracking_uri, grid_warning, nsga2_warning
from sweeps.spec.parse import ResourcesSpec, SweepSpec, apply_overrides
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
    smoke_test: bool = False
    #: ``(params, value)`` of the ``warm_start`` sweep's finished trials (:mod:`sweeps.launch.warm_start`)
    warm_points: tuple = ()

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
    spec, resolved = resolve_relative_paths(spec, Path.cwd())
    for old, new in resolved:
        logger.info("relative path %r resolved against the working directory: %s", old, new)
    uri = resolve_tracking_uri(tracking_uri, spec.tracking_uri, workdir)
    storage_path = storage or spec.storage_path or str(workdir.ray_storage)
    if "://" not in storage_path:
        storage_path = str(Path(storage_path).resolve())
    problems = check_trial_configs(spec, overrides)
    problems += check_trial_io(spec, overrides)
    problems += check_tracking_uri(uri)
    problems += check_storage_path(storage_path)
    warm_points: list = []
    if spec.warm_start is not None and not problems:
        from sweeps.launch.warm_start import warm_start_points

        warm_points, warm_problems = warm_start_points(uri, spec)
        problems += warm_problems
    if problems:
        raise PreflightError(problems)
    for warning in (grid_warning(spec), nsga2_warning(spec)):
        if warning:
            logger.warning(warning)
    return SweepPlan(spec=spec, tracking_uri=uri, storage_path=storage_path, workdir=workdir,
                     config_overrides=overrides, smoke_test=smoke_test, warm_points=tuple(warm_points))


def _local_path(value: Any, base: Path) -> Optional[str]:
    """``value`` as an absolute path if it is a relative path to something under ``base``, else ``None``.

    A path is a string with a ``/`` or a file extension (``data.csv``, ``data/{split}.tsv``,
    ``../model``) that exists relative to ``base``; with ``{split}``, its folder must exist.
    """
    if not isinstance(value, str) or not value or "://" in value or os.path.isabs(value) or value.startswith("~"):
        return None
    if "/" not in value and not Path(value).suffix:
        return None
    target = base / value
    probe = target.parent if "{split}" in value else target
    if not probe.exists():
        return None
    return str(Path(os.path.normpath(base.resolve() / value)))


def resolve_relative_paths(spec: SweepSpec, base: Path) -> tuple[SweepSpec, list[tuple[str, str]]]:
    """Make relative file paths in the base config and in choice/grid values absolute,
    also inside list and mapping values (a list of files, a grid value that is a list).

    Trials run in Ray workers whose working directory is not the one ``xaisweep run``
    was started in, so a relative path is resolved here, against ``base`` (the
    directory ``xaisweep run`` runs in), and the absolute path is what every trial
    config holds (and what MLflow records). Returns the new spec and (old, new) pairs.
    """
    changed: list[tuple[str, str]] = []

    def fix(value: Any) -> Any:
        if isinstance(value, (list, tuple)):  # e.g. a list of files, or a grid value that is a list
            return type(value)(fix(v) for v in value)
        if isinstance(value, dict):  # e.g. columns or a nested option block
            return {k: fix(v) for k, v in value.items()}
        new = _local_path(value, base)
        if new is None:
            return value
        changed.append((value, new))
        return new

    config = {k: fix(v) for k, v in spec.config.items()}
    params = tuple(dataclasses.replace(p, values=tuple(fix(v) for v in p.values)) if p.is_categorical else p
                   for p in spec.params)
    if not changed:
        return spec, []
    return dataclasses.replace(spec, config=config, params=params), changed


def check_resources(
    request: ResourcesSpec, nodes: list[dict[str, float]], *, local: bool, smoke_test: bool,
    max_cluster: Optional[dict[str, float]] = None,
) -> tuple[ResourcesSpec, list[str], list[str]]:
    """Per-trial ``request`` against the Ray nodes: ``(resources to use, warnings, problems)``.

    Args:
        request: the spec's ``resources``.
        nodes: ``{"CPU": n, "GPU": m}`` of every alive node.
        local: the embedded local Ray (started by ``xaisweep run`` without ``--address``).
        smoke_test: ``--smoke-test``.
        max_cluster: what the autoscaler could add (Ray's cluster config), ``None`` if unknown.

    A GPU request where no node has a GPU runs on CPU with one warning on the local Ray
    and under ``--smoke-test`` (GPU requests dropped); on a cluster where neither a node
    nor an autoscaler node type can ever hold one trial it is a problem with the numbers,
    since Ray would keep the trials PENDING forever. The same holds for CPUs.
    """
    warnings: list[str] = []
    problems: list[str] = []
    max_gpu = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    max_cpu = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    could_gpu = (max_cluster or {}).get("GPU", 0) or 0
    could_cpu = (max_cluster or {}).get("CPU", 0) or 0
    where = "this machine's Ray" if local else f"the cluster ({len(nodes)} node(s))"
    if request.gpu > 0 and max_gpu < min(request.gpu, 1.0) and could_gpu < request.gpu:
        if local or smoke_test:
            warnings.append(f"resources.gpu: {request.gpu:g} GPU per trial requested but {where} has no GPU: "
                            f"the trials run on CPU")
            request = dataclasses.replace(request, gpu=0.0)
        else:
            per_node = ", ".join(f"{n.get('GPU', 0.0):g}" for n in nodes)
            problems.append(f"resources.gpu: each trial requests {request.gpu:g} GPU but no node of {where} has a "
                            f"GPU (GPUs per node: {per_node}), and no "
                            f"autoscaler node type offers one: add GPU workers or set resources.gpu: 0")
    elif request.gpu > 1 and max_gpu < request.gpu and could_gpu < request.gpu:
        problems.append(f"resources.gpu: each trial requests {request.gpu:g} GPUs but the largest node of {where} "
                        f"has {max_gpu:g}")
    if request.cpu > max_cpu and could_cpu < request.cpu:
        hint = " (start it with more: --num-cpus N)" if local else ""
        problems.append(f"resources.cpu: each trial requests {request.cpu:g} CPUs but the largest node of {where} "
                        f"has {max_cpu:g}{hint}; lower resources.cpu")
    return request, warnings, problems


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
