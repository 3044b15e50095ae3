"""Parse and validate sweep specifications.

A sweep spec is a YAML mapping describing one hyperparameter sweep: the
trainable to run, its base config, the search space, the metric to optimise
(or a list of metrics with a list of modes: a multi-objective sweep, see
:mod:`sweeps.spec.objectives`), the Optuna sampler, the (optional) ASHA
scheduler and the run budget.
:func:`parse_spec` turns such a mapping into an immutable :class:`SweepSpec`
or raises a :class:`SpecError` listing *every* problem it found, each
prefixed with the key path it concerns (``search_space.eps.low: ...``).

This module is pure: it imports neither Ray, MLflow nor Optuna, and the only
I/O is :func:`load_spec` reading the YAML file.
"""
from __future__ import annotations

import copy
import numbers
import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from os import PathLike
from typing import Any, Optional

import yaml

from sweeps.spec.checks import (
    SAMPLER_TYPES,
    SCHEDULER_TYPES,
    Problems,
    SpecError,
    check_bool,
    check_float,
    check_int,
    check_keys,
    check_mapping,
    check_str,
    join_path,
    kind_of,
    show_value,
)
from trainables.config import did_you_mean
from sweeps.spec.objectives import MULTI_OBJECTIVE_SAMPLERS, check_nsga2_options, parse_objectives
from sweeps.spec.search_space import parse_search_space
from sweeps.spec.types import (
    DEFAULT_CHECKPOINT_EVERY_S, Condition, ParamSpec, ResourcesSpec, SamplerSpec, SchedulerSpec, SweepSpec,
)

__all__ = [
    "Condition",
    "ParamSpec",
    "ResourcesSpec",
    "SamplerSpec",
    "SchedulerSpec",
    "SpecError",
    "SweepSpec",
    "apply_overrides",
    "check_name",
    "load_spec",
    "read_yaml",
    "parse_resources",
    "parse_spec",
]

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_TOP_KEYS = (
    "name", "description", "trainable", "config", "search_space", "metric", "mode",
    "sampler", "scheduler", "num_samples", "max_concurrent", "repeats", "max_failures",
    "resources", "reuse_workers", "checkpoint_every_s", "storage_path", "tracking_uri", "time_budget",
    "warm_start",
)
_SAMPLER_KEYS = ("type", "seed", "options")
_ASHA_KEYS = ("type", "max_t", "grace_period", "reduction_factor", "time_attr")
_RESOURCE_KEYS = ("cpu", "gpu")

# --------------------------------------------------------------------------- sections


def _parse_sampler(raw: Any, pr: Problems) -> SamplerSpec | None:
    m = check_mapping(raw, "sampler", pr)
    if m is None:
        return None
    n0 = len(pr.items)
    check_keys(m, _SAMPLER_KEYS, "sampler", pr)
    kind = check_str(m.get("type", "tpe"), "sampler.type", pr, SAMPLER_TYPES)
    seed = check_int(m.get("seed", 0), "sampler.seed", pr, minimum=0)
    if seed is not None and seed >= 2**32:
        pr.add("sampler.seed", f"must be < 2**32 (got {seed})")
    options = check_mapping(m.get("options"), "sampler.options", pr)
    if options is not None:
        for key in options:
            if not isinstance(key, str):
                pr.add(join_path("sampler.options", key), "option names must be strings")
            elif key == "seed":
                pr.add("sampler.options.seed", "set sampler.seed instead")
            elif key == "search_space" and kind == "grid":
                pr.add("sampler.options.search_space",
                       "the grid is built from search_space; remove this option")
        if kind == "nsga2":
            check_nsga2_options({k: v for k, v in options.items() if k != "seed"}, pr)
    if len(pr.items) > n0:
        return None
    return SamplerSpec(kind, seed, copy.deepcopy(dict(options)))  # type: ignore[arg-type]


def _parse_scheduler(raw: Any, pr: Problems) -> SchedulerSpec | None:
    """Returns ``None`` both for "no scheduler" and on error (then a problem is recorded)."""
    if raw is None or raw == "none":
        return None
    if raw == "asha":
        return SchedulerSpec()
    if not isinstance(raw, Mapping):
        pr.add("scheduler", f"must be a mapping, null or 'none' (got {show_value(raw)})")
        return None
    kind = check_str(raw.get("type", "asha"), "scheduler.type", pr, SCHEDULER_TYPES)
    if kind is None:
        return None
    if kind == "none":
        check_keys(raw, ("type",), "scheduler", pr)
        return None
    n0 = len(pr.items)
    check_keys(raw, _ASHA_KEYS, "scheduler", pr)
    max_t = check_int(raw.get("max_t", 10), "scheduler.max_t", pr, minimum=1)
    grace = check_int(raw.get("grace_period", 1), "scheduler.grace_period", pr, minimum=1)
    if max_t is not None and grace is not None and grace > max_t:
        pr.add("scheduler.grace_period", f"must be <= max_t (got {grace} > {max_t})")
    rf = check_float(raw.get("reduction_factor", 2), "scheduler.reduction_factor", pr)
    if rf is not None and rf <= 1:
        pr.add("scheduler.reduction_factor",
               f"must be > 1 (got {show_value(raw.get('reduction_factor'))})")
    time_attr = check_str(raw.get("time_attr", "training_iteration"), "scheduler.time_attr", pr)
    if len(pr.items) > n0:
        return None
    return SchedulerSpec("asha", max_t, grace, rf, time_attr)  # type: ignore[arg-type]


def parse_resources(raw: Any, pr: Problems) -> ResourcesSpec | None:
    """The ``resources`` section (``{cpu, gpu}`` per trial); ``None`` after recording a problem."""
    m = check_mapping(raw, "resources", pr)
    if m is None:
        return None
    n0 = len(pr.items)
    check_keys(m, _RESOURCE_KEYS, "resources", pr)
    cpu = check_float(m.get("cpu", 1), "resources.cpu", pr)
    if cpu is not None and cpu <= 0:
        pr.add("resources.cpu", f"must be > 0 (got {show_value(m.get('cpu'))})")
    gpu = check_float(m.get("gpu", 0), "resources.gpu", pr)
    if gpu is not None and (gpu < 0 or (gpu > 1 and not gpu.is_integer())):
        pr.add("resources.gpu", f"must be in [0, 1] or a whole number (got {show_value(m.get('gpu'))})")
    if len(pr.items) > n0:
        return None
    return ResourcesSpec(cpu, gpu)  # type: ignore[arg-type]


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_time_budget(raw: Any, pr: Problems) -> float | None:
    """Seconds, or a string with a unit (``90m``, ``2h``, ``1.5d``); ``null``: no budget."""
    if raw is None:
        return None
    match = None if isinstance(raw, bool) else _DURATION_RE.match(str(raw))
    if match is None or float(match.group(1)) <= 0:
        pr.add("time_budget", f"must be a positive number of seconds or a duration like 90m, 2h (got {show_value(raw)})")
        return None
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def _parse_warm_start(raw: Any, pr: Problems) -> str | None:
    """``{experiment: NAME}`` (an earlier sweep with the same search space); ``null``: none."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        pr.add("warm_start", f"must be a mapping {{experiment: NAME}} (got {kind_of(raw)})")
        return None
    check_keys(raw, ("experiment",), "warm_start", pr)
    if "experiment" not in raw:
        pr.add("warm_start.experiment", "is required (the name of an earlier sweep with the same search space)")
        return None
    return check_str(raw["experiment"], "warm_start.experiment", pr)


def _opt_str(data: Mapping[Any, Any], key: str, pr: Problems) -> str | None:
    value = data.get(key)
    return None if value is None else check_str(value, key, pr)


def check_name(value: Any, pr: Problems) -> str | None:
    """A sweep (or evaluation) name: ``[A-Za-z0-9_.-]+``; ``None`` after recording a problem."""
    name = check_str(value, "name", pr)
    if name is not None and not _NAME_RE.fullmatch(name):
        pr.add("name", f"must match [A-Za-z0-9_.-]+ (got {name!r})")
        return None
    return name


# --------------------------------------------------------------------------- entry points


def parse_spec(
    data: Mapping[str, Any],
    *,
    source: str = "<spec>",
    known_trainables: Collection[str] | None = None,
) -> SweepSpec:
    """Validate ``data`` (a loaded spec file) and return the :class:`SweepSpec`.

    Args:
        data: the spec mapping (e.g. from ``yaml.safe_load``).
        source: where it came from, used in error messages and kept on the spec.
        known_trainables: if given, ``trainable`` must be one of these names.

    Raises:
        SpecError: listing every problem found, one ``key.path: message`` each.
    """
    pr = Problems()
    if not isinstance(data, Mapping):
        raise SpecError([f"<root>: must be a mapping (got {kind_of(data)})"], source)
    check_keys(data, _TOP_KEYS, "", pr)
    for key in ("name", "trainable", "metric", "mode"):
        if data.get(key) is None:
            pr.add(key, "is required")

    name = check_name(data["name"], pr) if data.get("name") is not None else None
    trainable = None
    if data.get("trainable") is not None:
        trainable = check_str(data["trainable"], "trainable", pr)
        if trainable is not None and known_trainables is not None \
                and trainable not in known_trainables:
            known = sorted(known_trainables)
            pr.add("trainable", f"unknown trainable {trainable!r} (known: {', '.join(known)})"
                   + did_you_mean(trainable, known))
    objectives = None
    if data.get("metric") is not None and data.get("mode") is not None:
        objectives = parse_objectives(data["metric"], data["mode"], pr)
    elif data.get("metric") is not None:  # mode is missing: still check the metrics themselves
        raw = data["metric"]
        parse_objectives(raw, ["max"] * len(raw) if isinstance(raw, (list, tuple)) else "max", pr)
    elif data.get("mode") is not None:  # metric is missing: still check the mode(s)
        raw = data["mode"]
        parse_objectives([f"<metric {i}>" for i in range(len(raw))] if isinstance(raw, (list, tuple)) else "<metric>",
                         raw, pr)
    metric, mode = objectives[0] if objectives else (None, None)
    description = _opt_str(data, "description", pr)
    storage_path = _opt_str(data, "storage_path", pr)
    tracking_uri = _opt_str(data, "tracking_uri", pr)

    config = check_mapping(data.get("config"), "config", pr)
    if config is not None:
        for key in config:
            if not isinstance(key, str):
                pr.add(join_path("config", key), "config keys must be strings")

    budget = {}
    for key, default, minimum in (("num_samples", 8, 1), ("max_concurrent", 2, 1),
                                  ("repeats", 1, 1), ("max_failures", 0, 0)):
        budget[key] = check_int(data.get(key, default), key, pr, minimum=minimum)

    sampler = _parse_sampler(data.get("sampler"), pr)
    scheduler = _parse_scheduler(data.get("scheduler"), pr)
    resources = parse_resources(data.get("resources"), pr)
    reuse_workers = check_bool(data.get("reuse_workers", True), "reuse_workers", pr)
    checkpoint_every_s = check_float(data.get("checkpoint_every_s", DEFAULT_CHECKPOINT_EVERY_S),
                                     "checkpoint_every_s", pr)
    if checkpoint_every_s is not None and checkpoint_every_s < 0:
        pr.add("checkpoint_every_s",
               f"must be >= 0 seconds (0: a checkpoint with every report; got {checkpoint_every_s:g})")
        checkpoint_every_s = None
    time_budget = _parse_time_budget(data.get("time_budget"), pr)
    warm_start = _parse_warm_start(data.get("warm_start"), pr)

    params: tuple[ParamSpec, ...] = ()
    space = check_mapping(data.get("search_space"), "search_space", pr)
    if space is not None:
        params = parse_search_space(space, config, pr)

    # Sampler / scheduler / objectives compatibility.
    kind = sampler.type if sampler is not None else None
    if objectives is not None and len(objectives) > 1:
        if scheduler is not None:
            pr.add("scheduler", f"ASHA stops trials on one metric, and this sweep has {len(objectives)} objectives "
                   f"(metric: [{', '.join(m for m, _ in objectives)}]); use scheduler: none (or one metric)")
        if kind is not None and kind not in MULTI_OBJECTIVE_SAMPLERS:
            pr.add("sampler.type", f"{kind} optimises one objective; a multi-objective sweep needs one of "
                   f"{', '.join(MULTI_OBJECTIVE_SAMPLERS)}")
    for p in params:
        path = join_path("search_space", p.name)
        if kind == "grid":
            if p.type in ("uniform", "loguniform"):
                pr.add(path, f"sampler.type: grid needs choice, grid or int parameters "
                       f"(got {p.type})")
            if p.when:
                pr.add(join_path(path, "when"), "conditional parameters are not allowed with "
                       "sampler.type: grid")
        elif kind is not None and p.type == "grid":
            pr.add(path, f"grid parameters need sampler.type: grid (got {kind})")

    if pr.items:
        raise SpecError(pr.items, source)
    return SweepSpec(
        name=name, trainable=trainable, metric=metric, mode=mode,  # type: ignore[arg-type]
        extra_objectives=tuple(objectives[1:]),  # type: ignore[index]
        config=copy.deepcopy(dict(config)), params=params,  # type: ignore[arg-type]
        description=description, sampler=sampler, scheduler=scheduler,  # type: ignore[arg-type]
        resources=resources, reuse_workers=reuse_workers,  # type: ignore[arg-type]
        checkpoint_every_s=checkpoint_every_s,  # type: ignore[arg-type]
        time_budget=time_budget, warm_start=warm_start,
        storage_path=storage_path,
        tracking_uri=tracking_uri, source=source, **budget,  # type: ignore[arg-type]
    )


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` / ``3E5`` as floats (YAML 1.2 behaviour)."""


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _duplicate_keys(node: yaml.Node, path: str = "", seen: set[int] | None = None) -> list[str]:
    """Every key that a YAML mapping (at any depth) holds twice: ``'line L, column C: ...'`` per repeat.

    YAML 1.2 requires keys to be unique, but PyYAML keeps the last value without a word, so
    ``config: {epochs: 1, epochs: 3}`` would silently train 3 epochs. Merge keys (``<<: *base``)
    are not duplicates: overriding a merged key is what they are for.
    """
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias of a node already walked
        return []
    seen.add(id(node))
    out: list[str] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], yaml.Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                where = f"{path}.{key_node.value}" if path else key_node.value
                if key in first:
                    m, f = key_node.start_mark, first[key]
                    out.append(f"line {m.line + 1}, column {m.column + 1}: duplicate key {where!r} (first at "
                               f"line {f.line + 1}, column {f.column + 1}); keep one of them")
                else:
                    first[key] = key_node.start_mark
            else:
                where = f"{path}.<key>" if path else "<key>"
            out += _duplicate_keys(value_node, where, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out += _duplicate_keys(item, f"{path}[{i}]", seen)
    return out


def read_yaml(text: str, source: str) -> Any:
    """Parse spec-style YAML text (``1e-4`` is a float) and refuse duplicate keys at any depth.

    Raises:
        SpecError: malformed YAML, or every duplicate key with its line and column.
    """
    loader = _SpecLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = _duplicate_keys(node) if node is not None else []
        if duplicates:
            raise SpecError([f"<yaml>: {d}" for d in duplicates], source)
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise SpecError([f"<yaml>: {exc}"], source) from exc
    finally:
        loader.dispose()


def load_spec(
    path: str | PathLike[str], *, known_trainables: Collection[str] | None = None
) -> SweepSpec:
    """Read a YAML spec file and :func:`parse_spec` it (``source`` is the path).

    Raises:
        SpecError: if the YAML is malformed or the spec is invalid.
        OSError: if the file cannot be read.
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise SpecError([f"<file>: line {line}, column {column}: byte 0x{raw[err.start]:02x} is not valid UTF-8 "
                         f"(re-save the spec as UTF-8)"], str(path)) from None
    data = read_yaml(text, str(path))
    return parse_spec(data, source=str(path), known_trainables=known_trainables)


def apply_overrides(
    spec: SweepSpec,
    *,
    name: Optional[str] = None,
    storage_path: Optional[str] = None,
    tracking_uri: Optional[str] = None,
    num_samples: Optional[int] = None,
) -> SweepSpec:
    """Return ``spec`` with the given (non-``None``) fields replaced, validated as in a spec.

    Raises:
        SpecError: if an override is invalid (e.g. ``num_samples=0``).
    """
    pr = Problems()
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = check_name(name, pr)
    if storage_path is not None:
        changes["storage_path"] = check_str(storage_path, "storage_path", pr)
    if tracking_uri is not None:
        changes["tracking_uri"] = check_str(tracking_uri, "tracking_uri", pr)
    if num_samples is not None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
            pr.add("num_samples", f"must be an integer (got {num_samples!r})")
        else:
            changes["num_samples"] = check_int(num_samples, "num_samples", pr, minimum=1)
    if pr.items:
        raise SpecError(pr.items, f"{spec.source} (overrides)")
    return replace(spec, **changes)
