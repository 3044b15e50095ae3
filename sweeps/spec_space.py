"""Parsing of the ``search_space`` section: parameters, ``when`` conditions, their order."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sweeps.spec_checks import (
    DIST_TYPES,
    _DIST_KEYS,
    Scalar,
    _bool,
    _check_keys,
    _did_you_mean,
    _float,
    _int,
    _is_scalar,
    _join,
    _kind,
    _num_str,
    _Problems,
    _show,
    _str,
)
from sweeps.spec_types import Condition, ParamSpec



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
