"""Parsing of the ``search_space`` section: parameters, ``when`` conditions, their order.

:func:`parse_search_space` is the one entry point (used by :func:`sweeps.spec.parse.parse_spec`).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sweeps.spec.checks import (
    DIST_TYPES,
    Problems,
    Scalar,
    check_bool,
    check_float,
    check_int,
    check_keys,
    check_str,
    is_scalar,
    join_path,
    kind_of,
    num_str,
    show_value,
)
from trainables.config import did_you_mean
from sweeps.spec.types import Condition, ParamSpec

__all__ = ["parse_search_space"]

# No "/": Ray's OptunaSearch unflattens returned keys on "/".
_PARAM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_DIST_KEYS = {
    "uniform": ("type", "low", "high", "when"),
    "loguniform": ("type", "low", "high", "when"),
    "int": ("type", "low", "high", "step", "log", "when"),
    "choice": ("type", "values", "when"),
    "grid": ("type", "values", "when"),
}


def parse_search_space(space: Mapping[Any, Any], config: Mapping[Any, Any] | None,
                       pr: Problems, *, list_values: bool = False) -> tuple[ParamSpec, ...]:
    """The parameters of a ``search_space`` mapping, parents before their ``when`` children.

    ``config`` is the spec's base config (``None`` if invalid): a parameter also set there is
    ambiguous. Every problem is recorded in ``pr`` under ``search_space.<name>...``; invalid
    parameters are left out of the result. ``list_values``: a ``choice``/``grid`` value may also be a
    list of scalars (kept as a tuple; a ``when`` clause names it as a list in its list,
    ``when: {faith_metrics: [[deletion]]}``): evaluation specs, whose points are enumerated, not sampled
    by Optuna.
    """
    parsed = []
    for pname, raw in space.items():
        path = join_path("search_space", pname)
        if not isinstance(pname, str) or not _PARAM_RE.fullmatch(pname):
            pr.add(path, "parameter names must match [A-Za-z_][A-Za-z0-9_.-]*")
            continue
        if config is not None and pname in config:
            pr.add(path, "also set in config (ambiguous: remove it from one of them)")
        p = _parse_param(pname, raw, path, pr, list_values)
        if p is not None:
            parsed.append(p)
    return _order_params(parsed, pr)


def _scalar_list(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, (str, bytes)) and all(is_scalar(x) for x in v)


def _parse_values(raw: Any, path: str, pr: Problems, list_values: bool = False) -> tuple[Scalar, ...] | None:
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        pr.add(path, f"must be a list (got {kind_of(raw)})")
        return None
    if not raw:
        pr.add(path, "must not be empty")
        return None
    ok = True
    seen: list[Scalar] = []
    raw = [tuple(v) if list_values and _scalar_list(v) else v for v in raw]
    for i, v in enumerate(raw):
        if list_values and isinstance(v, tuple) and any(v == s for s in seen):
            pr.add(f"{path}[{i}]", f"duplicate value {list(v)!r}")
            ok = False
        elif list_values and isinstance(v, tuple):
            seen.append(v)  # type: ignore[arg-type]
        elif not is_scalar(v):
            pr.add(f"{path}[{i}]", f"must be a string, number, boolean or null (got {kind_of(v)})")
            ok = False
        elif any(v == s for s in seen):
            pr.add(f"{path}[{i}]", f"duplicate value {show_value(v)}")
            ok = False
        else:
            seen.append(v)
    return tuple(raw) if ok else None


def _parse_when(raw: Any, path: str, pr: Problems, list_values: bool = False) -> tuple[Condition, ...] | None:
    if not isinstance(raw, Mapping) or not raw:
        pr.add(path, f"must be a non-empty mapping {{param: value or list}} (got {show_value(raw)})")
        return None
    conds = []
    for parent, vals in raw.items():
        if not isinstance(parent, str):
            pr.add(join_path(path, parent), "parameter names must be strings")
            return None
        if isinstance(vals, Sequence) and not isinstance(vals, str):
            vals = tuple(tuple(v) if list_values and _scalar_list(v) else v for v in vals)
        else:
            vals = (vals,)
        if not vals:
            pr.add(join_path(path, parent), "must not be an empty list")
            return None
        conds.append(Condition(parent, vals))
    return tuple(conds)


def _parse_param(name: str, raw: Any, path: str, pr: Problems, list_values: bool = False) -> ParamSpec | None:
    if not isinstance(raw, Mapping):
        pr.add(path, f"must be a mapping with a 'type' key (got {kind_of(raw)})")
        return None
    n0 = len(pr.items)
    kind = raw.get("type")
    if kind is None:
        pr.add(join_path(path, "type"), f"is required (one of {', '.join(DIST_TYPES)})")
        return None
    kind = check_str(kind, join_path(path, "type"), pr, DIST_TYPES)
    if kind is None:
        return None
    check_keys(raw, _DIST_KEYS[kind], path, pr)

    when: tuple[Condition, ...] | None = ()
    if "when" in raw:
        when = _parse_when(raw["when"], join_path(path, "when"), pr, list_values)

    if kind in ("choice", "grid"):
        if "values" not in raw:
            pr.add(join_path(path, "values"), "is required")
            return None
        values = _parse_values(raw["values"], join_path(path, "values"), pr, list_values)
        if values is None or when is None or len(pr.items) > n0:
            return None
        return ParamSpec(name, kind, values=values, when=when)

    bounds = []
    for key in ("low", "high"):
        if key not in raw:
            pr.add(join_path(path, key), "is required")
            bounds.append(None)
        elif kind == "int":
            bounds.append(check_int(raw[key], join_path(path, key), pr))
        else:
            bounds.append(check_float(raw[key], join_path(path, key), pr))
    low, high = bounds
    step, log = (1, False)
    if kind == "int":
        if "step" in raw:
            step = check_int(raw["step"], join_path(path, "step"), pr, minimum=1)
        if "log" in raw:
            log = check_bool(raw["log"], join_path(path, "log"), pr)
    if low is not None and high is not None:
        if low >= high:
            pr.add(join_path(path, "low"), f"must be < high (got {num_str(low)} >= {num_str(high)})")
        elif kind == "loguniform" and low <= 0:
            pr.add(join_path(path, "low"), f"must be > 0 for loguniform (got {num_str(low)})")
        elif kind == "int" and log and low < 1:
            pr.add(join_path(path, "low"), f"must be >= 1 when log is true (got {low})")
        elif kind == "int" and step is not None and (high - low) % step:
            pr.add(join_path(path, "high"), f"high - low must be a multiple of step "
                   f"(got {high} - {low} with step {step})")
    if kind == "int" and log and step is not None and step != 1:
        pr.add(join_path(path, "step"), f"must be 1 when log is true (got {step})")
    if len(pr.items) > n0 or when is None:
        return None
    if kind == "int":
        return ParamSpec(name, "int", low=low, high=high, step=step, log=bool(log), when=when)
    return ParamSpec(name, kind, low=low, high=high, when=when)


def _order_params(params: list[ParamSpec], pr: Problems) -> tuple[ParamSpec, ...]:
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
                pr.add(path, "unknown parameter" + did_you_mean(c.param, list(by_name)))
            elif not parent.is_categorical:
                pr.add(path, f"must refer to a choice or grid parameter (got {parent.type})")
            else:
                deps[p.name].add(c.param)
                bad = [v for v in c.values if not any(v == pv for pv in parent.values)]
                if bad:
                    pr.add(path, f"{', '.join(map(show_value, bad))} not among the values of "
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
