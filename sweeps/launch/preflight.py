"""Checks that run before Ray starts: trial configs, the trainable's I/O (data files,
models: its ``preflight`` hook), tracking URI and storage path.

Every function returns a list of human-readable problems (empty = fine), so
the CLI can print them all at once and exit before any trial is scheduled.
"""
from __future__ import annotations

import dataclasses
import itertools
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Mapping

from sweeps.spec.parse import ParamSpec, SweepSpec
from trainables import get_trainable


def _candidates(param: ParamSpec) -> list[Any]:
    if param.type in ("choice", "grid"):
        return list(param.values)
    return [param.low, param.high]


def config_problems(entry, config: Mapping[str, Any]) -> list[str]:
    """Every problem ``entry.parse_config`` finds in ``config`` (``[]`` if it is valid);
    :func:`trainables.config.build_config` reports unknown keys, type errors and range
    checks together."""
    try:
        entry.parse_config(dict(config))
    except ValueError as err:
        return [str(line) for line in getattr(err, "problems", [str(err)])]
    return []


def _metrics(spec: SweepSpec) -> list[str]:
    """The spec's objective(s): ``metric`` as a list."""
    return list(spec.metric) if isinstance(spec.metric, (list, tuple)) else [spec.metric]


def check_trial_configs(spec: SweepSpec, overrides: Mapping[str, Any] | None = None) -> list[str]:
    """Validate the trainable config at every corner the search space can reach.

    For each parameter, each of its extreme values (``low``/``high``, every
    choice) is combined with the base config and the first candidate of all
    other *active* parameters, and validated by the trainable's own config
    dataclass. Unknown keys, out-of-range values and a metric the trainable
    never reports (or that a point's config turns off: the trainable's ``metric_problems``)
    are found here, before Ray starts.
    """
    try:
        entry = get_trainable(spec.trainable)
    except ValueError as err:
        return [str(err)]
    problems: list[str] = []
    for i, (metric, _) in enumerate(spec.objectives):
        if metric not in entry.metrics:
            where = f"metric[{i}]" if spec.is_multi_objective else "metric"
            problems.append(
                f"{where}: {metric!r} is not reported by trainable {spec.trainable!r}; "
                f"it reports: {', '.join(entry.metrics)}"
            )
    base = {**spec.config, **dict(overrides or {})}
    first = {p.name: _candidates(p)[0] for p in spec.params}
    combos: list[dict[str, Any]] = [dict(first)] if spec.params else [{}]
    for p in spec.params:
        for value in _candidates(p):
            combos.append({**first, p.name: value})
    per_combo: list[tuple[str, list[str]]] = []
    for combo in combos:
        active = {}
        for p in spec.params:  # parents come first (topological order)
            if p.is_active(active):
                active[p.name] = combo[p.name]
        where = ", ".join(f"{k}={v!r}" for k, v in active.items())
        config = {**base, **active}
        per_combo.append((where, [f"config: {line}" for line in config_problems(entry, config)]
                          + [line for metric in _metrics(spec) for line in entry.metric_problems(metric, config)]))
    # a problem every point of the space has comes from the base config: no "(with ...)" suffix
    everywhere = set.intersection(*(set(lines) for _, lines in per_combo)) if per_combo else set()
    seen: set[str] = set()
    for where, lines in per_combo:
        for line in lines:
            if line not in seen:
                seen.add(line)
                suffix = f"  (with {where})" if where and line not in everywhere else ""
                problems.append(f"{line}{suffix}")
    return problems


MAX_IO_CONFIGS = 256


def _io_combos(spec: SweepSpec) -> list[dict[str, Any]]:
    """Search-space points whose I/O the trainable's preflight hook checks.

    Every combination of the categorical (``choice``/``grid``) values, so that each
    dataset / model / column mapping the search can reach is met, with numeric
    parameters at their first candidate; more than :data:`MAX_IO_CONFIGS` combinations
    fall back to one value changed at a time. Inactive conditional parameters are dropped.
    """
    cats = [p for p in spec.params if p.is_categorical]
    first = {p.name: _candidates(p)[0] for p in spec.params}
    n = 1
    for p in cats:
        n *= len(p.values)
    if n <= MAX_IO_CONFIGS:
        raw = [{**first, **dict(zip([p.name for p in cats], values))}
               for values in itertools.product(*(p.values for p in cats))]
    else:
        raw = [dict(first)] + [{**first, p.name: v} for p in cats for v in p.values]
    combos = []
    for combo in raw:
        active: dict[str, Any] = {}
        for p in spec.params:  # parents first (topological order)
            if p.is_active(active):
                active[p.name] = combo[p.name]
        combos.append(active)
    return combos


def check_trial_io(spec: SweepSpec, overrides: Mapping[str, Any] | None = None) -> list[str]:
    """Run the trainable's ``preflight(cfg)`` hook (see :mod:`trainables`) on every distinct
    config the search space can reach (:func:`_io_combos`), base config and ``overrides``
    (the smoke-test ones) included. Configs that do not parse are skipped (their problems
    come from :func:`check_trial_configs`); identical problem lines are reported once."""
    try:
        entry = get_trainable(spec.trainable)
        hook = entry.preflight
    except ValueError:
        return []
    if hook is None:
        return []
    base = {**spec.config, **dict(overrides or {})}
    problems: list[str] = []
    seen_cfgs: set[str] = set()
    for combo in _io_combos(spec):
        try:
            cfg = entry.parse_config({**base, **combo})
        except ValueError:
            continue
        key = repr(dataclasses.asdict(cfg)) if dataclasses.is_dataclass(cfg) else repr(cfg)
        if key in seen_cfgs:
            continue
        seen_cfgs.add(key)
        for line in hook(cfg):
            if line not in problems:
                problems.append(line)
    return problems


def check_tracking_uri(uri: str, *, timeout: float = 5.0) -> list[str]:
    """The MLflow tracking URI is usable: a writable SQLite/file location or a live server."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        return _check_writable_dir(path.parent, f"tracking URI {uri}")
    if uri.startswith("file:") or "://" not in uri:
        path = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
        return _check_writable_dir(path, f"tracking URI {uri}")
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                if resp.status != 200:
                    return [f"tracking URI {uri}: /health answered HTTP {resp.status}"]
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                return []  # the server is there; credentials are checked by the client (MLFLOW_TRACKING_USERNAME)
            return [f"tracking URI {uri}: /health answered HTTP {err.code}"]
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            return [f"tracking URI {uri} is unreachable ({reason}); start the server "
                    f"(`mlflow server --host 127.0.0.1 --port 5000 ...`) or pass --tracking-uri"]
        return []
    return []  # other schemes (databricks, postgresql+...) are checked by MLflow itself


def _check_writable_dir(path: Path, what: str) -> list[str]:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".xaisweep-write-test-{uuid.uuid4().hex}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        return [f"{what}: directory {path} is not writable ({err.strerror or err})"]
    return []


def check_storage_path(storage: str) -> list[str]:
    """Ray's storage path is writable: a local/shared directory, or a reachable cloud bucket."""
    if "://" in storage and not storage.startswith("file://"):
        try:
            import pyarrow.fs

            fs, path = pyarrow.fs.FileSystem.from_uri(storage)
            fs.get_file_info(path)
        except Exception as err:  # noqa: BLE001 - any failure means unusable
            return [f"storage path {storage} is not reachable: {err}"]
        return []
    local = Path(storage[len("file://"):] if storage.startswith("file://") else storage)
    return _check_writable_dir(local, f"storage path {storage}")


def check_raw_spec_config(path: str | Path) -> list[str]:
    """Trial-config problems of a spec file that :func:`sweeps.spec.parse.load_spec` rejected.

    When the spec itself is invalid (an unknown top-level key, a bad sampler, ...) no
    :class:`SweepSpec` exists, so :func:`check_trial_configs` cannot run; this checks what
    it can on the raw YAML (the metric, the base ``config`` and every ``choice``/``grid``
    value of the search space) so that one run of the CLI lists every problem. Best
    effort: returns ``[]`` whenever the file is too broken to tell.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        entry = get_trainable(str(data.get("trainable")))
    except Exception:  # noqa: BLE001 - unreadable, not a mapping, unknown trainable: the spec errors say it
        return []
    problems: list[str] = []
    metric = data.get("metric")
    named = [("metric", metric)] if isinstance(metric, str) else \
        [(f"metric[{i}]", m) for i, m in enumerate(metric)] if isinstance(metric, list) else []
    for where, m in named:
        if isinstance(m, str) and m not in entry.metrics:
            problems.append(f"{where}: {m!r} is not reported by trainable {entry.name!r}; "
                            f"it reports: {', '.join(entry.metrics)}")
    config = data.get("config") or {}
    space = data.get("search_space") or {}
    if not isinstance(config, Mapping) or not isinstance(space, Mapping):
        return problems
    base = {k: v for k, v in config.items() if isinstance(k, str)}
    combos: list[dict[str, Any]] = [{}]
    for name, param in space.items():
        if isinstance(name, str) and isinstance(param, Mapping) and isinstance(param.get("values"), list) \
                and not param.get("when"):
            combos += [{name: v} for v in param["values"]]
    seen: set[str] = set()
    for combo in combos:
        try:
            lines = config_problems(entry, {**base, **combo})
        except Exception:  # noqa: BLE001
            continue
        where = ", ".join(f"{k}={v!r}" for k, v in combo.items())
        for line in lines:
            if line not in seen:
                seen.add(line)
                problems.append(f"config: {line}" + (f"  (with {where})" if where else ""))
    return problems


def grid_warning(spec: SweepSpec) -> str | None:
    from sweeps.launch.space import grid_size

    n = grid_size(spec.params)
    if spec.sampler.type == "grid" and n is not None and spec.num_samples < n:
        return f"num_samples={spec.num_samples} covers only part of the {n}-point grid"
    return None


def nsga2_warning(spec: SweepSpec) -> str | None:
    """NSGA-II samples its first generation (``population_size`` trials, default 50) at random: a sweep
    no larger than that never evolves."""
    if spec.sampler.type != "nsga2":
        return None
    size = int(spec.sampler.options.get("population_size", 50))
    if spec.num_samples <= size:
        return (f"sampler nsga2: num_samples={spec.num_samples} <= population_size={size}, so every trial is of "
                f"NSGA-II's random first generation; lower sampler.options.population_size or raise num_samples")
    return None


__all__ = ["nsga2_warning", "config_problems", "check_trial_configs", "check_trial_io", "check_raw_spec_config", "check_tracking_uri", "check_storage_path", "grid_warning"]
