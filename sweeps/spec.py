"""Parse and validate sweep specifications.

A sweep spec is a YAML mapping describing one hyperparameter sweep: the
trainable to run, its base config, the search space, the metric to optimise,
the Optuna sampler, the (optional) ASHA scheduler and the run budget.
:func:`parse_spec` turns such a mapping into an immutable :class:`SweepSpec`
or raises a :class:`SpecError` listing *every* problem it found, each
prefixed with the key path it concerns (``search_space.eps.low: ...``).

This module is pure: it imports neither Ray, MLflow nor Optuna, and the only
I/O is :func:`load_spec` reading the YAML file.
"""
from __future__ import annotations

import copy
import difflib
import math
import numbers
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from typing import Any, Literal, Optional, Union

import yaml

__all__ = [
    "Condition",
    "ParamSpec",
    "ResourcesSpec",
    "SamplerSpec",
    "SchedulerSpec",
    "SpecError",
    "SweepSpec",
    "apply_overrides",
    "load_spec",
    "parse_spec",
]

Scalar = Union[str, int, float, bool, None]
"""A value a ``choice``/``grid`` parameter may take (what Optuna accepts)."""

DIST_TYPES = ("uniform", "loguniform", "int", "choice", "grid")
SAMPLER_TYPES = ("tpe", "random", "qmc", "cmaes", "grid")
SCHEDULER_TYPES = ("asha", "none")
MODES = ("min", "max")

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
# No "/": Ray's OptunaSearch unflattens returned keys on "/".
_PARAM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")

_TOP_KEYS = (
    "name", "description", "trainable", "config", "search_space", "metric", "mode",
    "sampler", "scheduler", "num_samples", "max_concurrent", "repeats", "max_failures",
    "resources", "reuse_workers", "storage_path", "tracking_uri",
)
_DIST_KEYS = {
    "uniform": ("type", "low", "high", "when"),
    "loguniform": ("type", "low", "high", "when"),
    "int": ("type", "low", "high", "step", "log", "when"),
    "choice": ("type", "values", "when"),
    "grid": ("type", "values", "when"),
}
_SAMPLER_KEYS = ("type", "seed", "options")
_ASHA_KEYS = ("type", "max_t", "grace_period", "reduction_factor", "time_attr")
_RESOURCE_KEYS = ("cpu", "gpu")


# --------------------------------------------------------------------------- errors


class SpecError(ValueError):
    """An invalid sweep spec; ``problems`` holds one ``"key.path: message"`` per problem."""

    def __init__(self, problems: Sequence[str], source: str = "<spec>") -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        n = len(self.problems)
        header = f"invalid sweep spec {source} ({n} problem{'s' if n != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  {p}" for p in self.problems)]))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems, self.source))


class _Problems:
    """Collects problems while parsing so that all of them are reported at once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path or '<root>'}: {message}")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    return "null" if value is None else repr(value)


def _num_str(x: float | int) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else repr(x)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _did_you_mean(key: Any, allowed: Sequence[str]) -> str:
    key = str(key)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) or [
        a for a in allowed if len(key) >= 3 and (a.startswith(key) or key.startswith(a))
    ]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(m: Mapping[Any, Any], allowed: Sequence[str], path: str, pr: _Problems) -> None:
    for key in m:
        if key not in allowed:
            pr.add(_join(path, key), "unknown key" + _did_you_mean(key, allowed))


# --------------------------------------------------------------------------- scalars


def _number(value: Any) -> int | float | None:
    """``value`` as a finite int/float, accepting numeric strings such as ``"1e-4"``.

    PyYAML (YAML 1.1) loads ``1e-4`` as the *string* ``"1e-4"``; this undoes that.
    Returns ``None`` if the value is not numeric (booleans are not numbers).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        x: int | float = float(value)
    elif isinstance(value, str):
        try:
            x = int(value.strip())
        except ValueError:
            try:
                x = float(value.strip())
            except ValueError:
                return None
    else:
        return None
    return x if math.isfinite(x) else None


def _int(value: Any, path: str, pr: _Problems, minimum: int | None = None) -> int | None:
    n = _number(value)
    if n is None or (isinstance(n, float) and not n.is_integer()):
        pr.add(path, f"must be an integer (got {_show(value)})")
        return None
    if minimum is not None and n < minimum:
        pr.add(path, f"must be an integer >= {minimum} (got {_show(value)})")
        return None
    return int(n)


def _float(value: Any, path: str, pr: _Problems) -> float | None:
    n = _number(value)
    if n is None:
        pr.add(path, f"must be a number (got {_show(value)})")
        return None
    return float(n)


def _str(value: Any, path: str, pr: _Problems, choices: Sequence[str] | None = None) -> str | None:
    if not isinstance(value, str) or not value:
        pr.add(path, f"must be a non-empty string (got {_show(value)})")
        return None
    if choices is not None and value not in choices:
        pr.add(path, f"must be one of {', '.join(choices)} (got {value!r})"
               + _did_you_mean(value, choices))
        return None
    return value


def _bool(value: Any, path: str, pr: _Problems) -> bool | None:
    if not isinstance(value, bool):
        pr.add(path, f"must be true or false (got {_show(value)})")
        return None
    return value


def _mapping(value: Any, path: str, pr: _Problems) -> Mapping[Any, Any] | None:
    """``value`` if it is a mapping, ``{}`` if it is null, else record a problem."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        pr.add(path, f"must be a mapping (got {_kind(value)})")
        return None
    return value


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isnan(value)
    return value is None or isinstance(value, (str, int, bool))


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class Condition:
    """``param`` (a choice/grid parameter) must take one of ``values``."""

    param: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class ParamSpec:
    """One search-space parameter.

    Attributes:
        name: the trial-config key the sampled value is written to.
        type: ``uniform``, ``loguniform``, ``int``, ``choice`` or ``grid``.
        low, high: bounds for the numeric types (floats, or ints for ``int``), else ``None``.
        step: step of an ``int`` parameter (``None`` for the other types).
        log: whether an ``int`` parameter is sampled on a log scale.
        values: the candidates of a ``choice``/``grid`` parameter (``()`` otherwise).
        when: conditions that must *all* hold for the parameter to be sampled.
    """

    name: str
    type: Literal["uniform", "loguniform", "int", "choice", "grid"]
    low: float | int | None = None
    high: float | int | None = None
    step: int | None = None
    log: bool = False
    values: tuple[Scalar, ...] = ()
    when: tuple[Condition, ...] = ()

    @property
    def is_categorical(self) -> bool:
        """True for ``choice`` and ``grid`` parameters."""
        return self.type in ("choice", "grid")

    @property
    def is_conditional(self) -> bool:
        """True if the parameter carries a ``when`` clause."""
        return bool(self.when)

    def is_active(self, sampled: Mapping[str, Any]) -> bool:
        """Whether this parameter is sampled given the values sampled so far."""
        return all(c.param in sampled and sampled[c.param] in c.values for c in self.when)

    def to_dict(self) -> dict[str, Any]:
        """The spec-file form of this parameter (accepted by :func:`parse_spec`)."""
        out: dict[str, Any] = {"type": self.type}
        if self.is_categorical:
            out["values"] = list(self.values)
        else:
            out["low"], out["high"] = self.low, self.high
            if self.type == "int":
                out["step"], out["log"] = self.step, self.log
        if self.when:
            out["when"] = {c.param: list(c.values) for c in self.when}
        return out


@dataclass(frozen=True)
class SamplerSpec:
    """Which Optuna sampler to use; ``options`` are extra constructor kwargs."""

    type: Literal["tpe", "random", "qmc", "cmaes", "grid"] = "tpe"
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "seed": self.seed, "options": copy.deepcopy(self.options)}


@dataclass(frozen=True)
class SchedulerSpec:
    """An ASHA trial scheduler (the only kind supported; "no scheduler" is ``None``)."""

    type: Literal["asha"] = "asha"
    max_t: int = 10
    grace_period: int = 1
    reduction_factor: float = 2.0
    time_attr: str = "training_iteration"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type, "max_t": self.max_t, "grace_period": self.grace_period,
            "reduction_factor": self.reduction_factor, "time_attr": self.time_attr,
        }


@dataclass(frozen=True)
class ResourcesSpec:
    """Resources requested per trial."""

    cpu: float = 1.0
    gpu: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "gpu": self.gpu}


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep specification (see the module docstring).

    ``params`` is in topological order: a conditional parameter always comes after
    the parameters its ``when`` clause refers to. ``config`` is a private deep copy
    of the spec's base config (the dataclass is frozen, the dict is not: don't mutate).
    """

    name: str
    trainable: str
    metric: str
    mode: Literal["min", "max"]
    config: dict[str, Any] = field(default_factory=dict)
    params: tuple[ParamSpec, ...] = ()
    description: str | None = None
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    scheduler: SchedulerSpec | None = None
    num_samples: int = 8
    max_concurrent: int = 2
    repeats: int = 1
    max_failures: int = 0
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    reuse_workers: bool = True
    storage_path: str | None = None
    tracking_uri: str | None = None
    source: str = "<spec>"

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the search-space parameters, in :attr:`params` order."""
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> ParamSpec:
        """The parameter called ``name`` (``KeyError`` if there is none)."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A plain-data form with every field explicit; ``parse_spec`` round-trips it."""
        return {
            "name": self.name,
            "description": self.description,
            "trainable": self.trainable,
            "config": copy.deepcopy(self.config),
            "search_space": {p.name: p.to_dict() for p in self.params},
            "metric": self.metric,
            "mode": self.mode,
            "sampler": self.sampler.to_dict(),
            "scheduler": self.scheduler.to_dict() if self.scheduler else None,
            "num_samples": self.num_samples,
            "max_concurrent": self.max_concurrent,
            "repeats": self.repeats,
            "max_failures": self.max_failures,
            "resources": self.resources.to_dict(),
            "reuse_workers": self.reuse_workers,
            "storage_path": self.storage_path,
            "tracking_uri": self.tracking_uri,
        }


# --------------------------------------------------------------------------- search space


def _parse_values(raw: Any, path: str, pr: _Problems) -> tuple[Scalar, ...] | None:
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        pr.add(path, f"must be a list (got {_kind(raw)})")
        return None
    if not raw:
        pr.add(path, "must not be empty")
        return None
    ok = True
    seen: list[Scalar] = []
    for i, v in enumerate(raw):
        if not _is_scalar(v):
            pr.add(f"{path}[{i}]", f"must be a string, number, boolean or null (got {_kind(v)})")
            ok = False
        elif any(v == s for s in seen):
            pr.add(f"{path}[{i}]", f"duplicate value {_show(v)}")
            ok = False
        else:
            seen.append(v)
    return tuple(raw) if ok else None


def _parse_when(raw: Any, path: str, pr: _Problems) -> tuple[Condition, ...] | None:
    if not isinstance(raw, Mapping) or not raw:
        pr.add(path, f"must be a non-empty mapping {{param: value or list}} (got {_show(raw)})")
        return None
    conds = []
    for parent, vals in raw.items():
        if not isinstance(parent, str):
            pr.add(_join(path, parent), "parameter names must be strings")
            return None
        if isinstance(vals, Sequence) and not isinstance(vals, str):
            vals = tuple(vals)
        else:
            vals = (vals,)
        if not vals:
            pr.add(_join(path, parent), "must not be an empty list")
            return None
        conds.append(Condition(parent, vals))
    return tuple(conds)


def _parse_param(name: str, raw: Any, path: str, pr: _Problems) -> ParamSpec | None:
    if not isinstance(raw, Mapping):
        pr.add(path, f"must be a mapping with a 'type' key (got {_kind(raw)})")
        return None
    n0 = len(pr.items)
    kind = raw.get("type")
    if kind is None:
        pr.add(_join(path, "type"), f"is required (one of {', '.join(DIST_TYPES)})")
        return None
    kind = _str(kind, _join(path, "type"), pr, DIST_TYPES)
    if kind is None:
        return None
    _check_keys(raw, _DIST_KEYS[kind], path, pr)

    when: tuple[Condition, ...] | None = ()
    if "when" in raw:
        when = _parse_when(raw["when"], _join(path, "when"), pr)

    if kind in ("choice", "grid"):
        if "values" not in raw:
            pr.add(_join(path, "values"), "is required")
            return None
        values = _parse_values(raw["values"], _join(path, "values"), pr)
        if values is None or when is None or len(pr.items) > n0:
            return None
        return ParamSpec(name, kind, values=values, when=when)

    bounds = []
    for key in ("low", "high"):
        if key not in raw:
            pr.add(_join(path, key), "is required")
            bounds.append(None)
        elif kind == "int":
            bounds.append(_int(raw[key], _join(path, key), pr))
        else:
            bounds.append(_float(raw[key], _join(path, key), pr))
    low, high = bounds
    step, log = (1, False)
    if kind == "int":
        if "step" in raw:
            step = _int(raw["step"], _join(path, "step"), pr, minimum=1)
        if "log" in raw:
            log = _bool(raw["log"], _join(path, "log"), pr)
    if low is not None and high is not None:
        if low >= high:
            pr.add(_join(path, "low"), f"must be < high (got {_num_str(low)} >= {_num_str(high)})")
        elif kind == "loguniform" and low <= 0:
            pr.add(_join(path, "low"), f"must be > 0 for loguniform (got {_num_str(low)})")
        elif kind == "int" and log and low < 1:
            pr.add(_join(path, "low"), f"must be >= 1 when log is true (got {low})")
        elif kind == "int" and step is not None and (high - low) % step:
            pr.add(_join(path, "high"), f"high - low must be a multiple of step "
                   f"(got {high} - {low} with step {step})")
    if kind == "int" and log and step is not None and step != 1:
        pr.add(_join(path, "step"), f"must be 1 when log is true (got {step})")
    if len(pr.items) > n0 or when is None:
        return None
    if kind == "int":
        return ParamSpec(name, "int", low=low, high=high, step=step, log=bool(log), when=when)
    return ParamSpec(name, kind, low=low, high=high, when=when)


def _order_params(params: list[ParamSpec], pr: _Problems) -> tuple[ParamSpec, ...]:
    """Check ``when`` clauses and sort parents before children (stable otherwise)."""
    by_name = {p.name: p for p in params}
    deps: dict[str, set[str]] = {}
    for p in params:
        deps[p.name] = set()
        for c in p.when:
            path = f"search_space.{p.name}.when.{c.param}"
            parent = by_name.get(c.param)
            if c.param == p.name:
                pr.add(path, "a parameter cannot depend on itself")
            elif parent is None:
                pr.add(path, "unknown parameter" + _did_you_mean(c.param, list(by_name)))
            elif not parent.is_categorical:
                pr.add(path, f"must refer to a choice or grid parameter (got {parent.type})")
            else:
                deps[p.name].add(c.param)
                bad = [v for v in c.values if not any(v == pv for pv in parent.values)]
                if bad:
                    pr.add(path, f"{', '.join(map(_show, bad))} not among the values of "
                           f"{c.param} {list(parent.values)!r}")
    order: list[ParamSpec] = []
    done: set[str] = set()
    remaining = list(params)
    while remaining:
        ready = next((p for p in remaining if deps[p.name] <= done), None)
        if ready is None:  # every remaining parameter waits on another one: a cycle
            rem = {p.name for p in remaining}
            chain = [remaining[0].name]
            while True:
                nxt = next(q.name for q in remaining if q.name in deps[chain[-1]] & rem)
                if nxt in chain:
                    cycle = chain[chain.index(nxt):] + [nxt]
                    break
                chain.append(nxt)
            pr.add(f"search_space.{cycle[0]}.when", "conditional cycle " + " -> ".join(cycle))
            return tuple(params)
        order.append(ready)
        done.add(ready.name)
        remaining.remove(ready)
    return tuple(order)


# --------------------------------------------------------------------------- sections


def _parse_sampler(raw: Any, pr: _Problems) -> SamplerSpec | None:
    m = _mapping(raw, "sampler", pr)
    if m is None:
        return None
    n0 = len(pr.items)
    _check_keys(m, _SAMPLER_KEYS, "sampler", pr)
    kind = _str(m.get("type", "tpe"), "sampler.type", pr, SAMPLER_TYPES)
    seed = _int(m.get("seed", 0), "sampler.seed", pr, minimum=0)
    if seed is not None and seed >= 2**32:
        pr.add("sampler.seed", f"must be < 2**32 (got {seed})")
    options = _mapping(m.get("options"), "sampler.options", pr)
    if options is not None:
        for key in options:
            if not isinstance(key, str):
                pr.add(_join("sampler.options", key), "option names must be strings")
            elif key == "seed":
                pr.add("sampler.options.seed", "set sampler.seed instead")
            elif key == "search_space" and kind == "grid":
                pr.add("sampler.options.search_space",
                       "the grid is built from search_space; remove this option")
    if len(pr.items) > n0:
        return None
    return SamplerSpec(kind, seed, copy.deepcopy(dict(options)))  # type: ignore[arg-type]


def _parse_scheduler(raw: Any, pr: _Problems) -> SchedulerSpec | None:
    """Returns ``None`` both for "no scheduler" and on error (then a problem is recorded)."""
    if raw is None or raw == "none":
        return None
    if raw == "asha":
        return SchedulerSpec()
    if not isinstance(raw, Mapping):
        pr.add("scheduler", f"must be a mapping, null or 'none' (got {_show(raw)})")
        return None
    kind = _str(raw.get("type", "asha"), "scheduler.type", pr, SCHEDULER_TYPES)
    if kind is None:
        return None
    if kind == "none":
        _check_keys(raw, ("type",), "scheduler", pr)
        return None
    n0 = len(pr.items)
    _check_keys(raw, _ASHA_KEYS, "scheduler", pr)
    max_t = _int(raw.get("max_t", 10), "scheduler.max_t", pr, minimum=1)
    grace = _int(raw.get("grace_period", 1), "scheduler.grace_period", pr, minimum=1)
    if max_t is not None and grace is not None and grace > max_t:
        pr.add("scheduler.grace_period", f"must be <= max_t (got {grace} > {max_t})")
    rf = _float(raw.get("reduction_factor", 2), "scheduler.reduction_factor", pr)
    if rf is not None and rf <= 1:
        pr.add("scheduler.reduction_factor",
               f"must be > 1 (got {_show(raw.get('reduction_factor'))})")
    time_attr = _str(raw.get("time_attr", "training_iteration"), "scheduler.time_attr", pr)
    if len(pr.items) > n0:
        return None
    return SchedulerSpec("asha", max_t, grace, rf, time_attr)  # type: ignore[arg-type]


def _parse_resources(raw: Any, pr: _Problems) -> ResourcesSpec | None:
    m = _mapping(raw, "resources", pr)
    if m is None:
        return None
    n0 = len(pr.items)
    _check_keys(m, _RESOURCE_KEYS, "resources", pr)
    cpu = _float(m.get("cpu", 1), "resources.cpu", pr)
    if cpu is not None and cpu <= 0:
        pr.add("resources.cpu", f"must be > 0 (got {_show(m.get('cpu'))})")
    gpu = _float(m.get("gpu", 0), "resources.gpu", pr)
    if gpu is not None and (gpu < 0 or (gpu > 1 and not gpu.is_integer())):
        pr.add("resources.gpu", f"must be in [0, 1] or a whole number (got {_show(m.get('gpu'))})")
    if len(pr.items) > n0:
        return None
    return ResourcesSpec(cpu, gpu)  # type: ignore[arg-type]


def _opt_str(data: Mapping[Any, Any], key: str, pr: _Problems) -> str | None:
    value = data.get(key)
    return None if value is None else _str(value, key, pr)


def _check_name(value: Any, pr: _Problems) -> str | None:
    name = _str(value, "name", pr)
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
    pr = _Problems()
    if not isinstance(data, Mapping):
        raise SpecError([f"<root>: must be a mapping (got {_kind(data)})"], source)
    _check_keys(data, _TOP_KEYS, "", pr)
    for key in ("name", "trainable", "metric", "mode"):
        if data.get(key) is None:
            pr.add(key, "is required")

    name = _check_name(data["name"], pr) if data.get("name") is not None else None
    trainable = None
    if data.get("trainable") is not None:
        trainable = _str(data["trainable"], "trainable", pr)
        if trainable is not None and known_trainables is not None \
                and trainable not in known_trainables:
            known = sorted(known_trainables)
            pr.add("trainable", f"unknown trainable {trainable!r} (known: {', '.join(known)})"
                   + _did_you_mean(trainable, known))
    metric = _str(data["metric"], "metric", pr) if data.get("metric") is not None else None
    mode = _str(data["mode"], "mode", pr, MODES) if data.get("mode") is not None else None
    description = _opt_str(data, "description", pr)
    storage_path = _opt_str(data, "storage_path", pr)
    tracking_uri = _opt_str(data, "tracking_uri", pr)

    config = _mapping(data.get("config"), "config", pr)
    if config is not None:
        for key in config:
            if not isinstance(key, str):
                pr.add(_join("config", key), "config keys must be strings")

    budget = {}
    for key, default, minimum in (("num_samples", 8, 1), ("max_concurrent", 2, 1),
                                  ("repeats", 1, 1), ("max_failures", 0, 0)):
        budget[key] = _int(data.get(key, default), key, pr, minimum=minimum)

    sampler = _parse_sampler(data.get("sampler"), pr)
    scheduler = _parse_scheduler(data.get("scheduler"), pr)
    resources = _parse_resources(data.get("resources"), pr)
    reuse_workers = _bool(data.get("reuse_workers", True), "reuse_workers", pr)

    params: tuple[ParamSpec, ...] = ()
    space = _mapping(data.get("search_space"), "search_space", pr)
    if space is not None:
        parsed = []
        for pname, raw in space.items():
            path = _join("search_space", pname)
            if not isinstance(pname, str) or not _PARAM_RE.fullmatch(pname):
                pr.add(path, "parameter names must match [A-Za-z_][A-Za-z0-9_.-]*")
                continue
            if config is not None and pname in config:
                pr.add(path, "also set in config (ambiguous: remove it from one of them)")
            p = _parse_param(pname, raw, path, pr)
            if p is not None:
                parsed.append(p)
        params = _order_params(parsed, pr)

    # Sampler / search-space compatibility.
    kind = sampler.type if sampler is not None else None
    for p in params:
        path = _join("search_space", p.name)
        if kind == "grid":
            if p.type in ("uniform", "loguniform"):
                pr.add(path, f"sampler.type: grid needs choice, grid or int parameters "
                       f"(got {p.type})")
            if p.when:
                pr.add(_join(path, "when"), "conditional parameters are not allowed with "
                       "sampler.type: grid")
        elif kind is not None and p.type == "grid":
            pr.add(path, f"grid parameters need sampler.type: grid (got {kind})")

    if pr.items:
        raise SpecError(pr.items, source)
    return SweepSpec(
        name=name, trainable=trainable, metric=metric, mode=mode,  # type: ignore[arg-type]
        config=copy.deepcopy(dict(config)), params=params,  # type: ignore[arg-type]
        description=description, sampler=sampler, scheduler=scheduler,  # type: ignore[arg-type]
        resources=resources, reuse_workers=reuse_workers,  # type: ignore[arg-type]
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


def load_spec(
    path: str | PathLike[str], *, known_trainables: Collection[str] | None = None
) -> SweepSpec:
    """Read a YAML spec file and :func:`parse_spec` it (``source`` is the path).

    Raises:
        SpecError: if the YAML is malformed or the spec is invalid.
        OSError: if the file cannot be read.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SpecError([f"<yaml>: {exc}"], str(path)) from exc
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
    pr = _Problems()
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = _check_name(name, pr)
    if storage_path is not None:
        changes["storage_path"] = _str(storage_path, "storage_path", pr)
    if tracking_uri is not None:
        changes["tracking_uri"] = _str(tracking_uri, "tracking_uri", pr)
    if num_samples is not None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
            pr.add("num_samples", f"must be an integer (got {num_samples!r})")
        else:
            changes["num_samples"] = _int(num_samples, "num_samples", pr, minimum=1)
    if pr.items:
        raise SpecError(pr.items, f"{spec.source} (overrides)")
    return replace(spec, **changes)
