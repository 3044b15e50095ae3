"""Config dict -> validated frozen dataclass, with every problem reported at once."""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Mapping, Sequence, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A trial config is invalid; ``problems`` lists every issue found."""

    def __init__(self, problems: list[str], *, where: str = "config") -> None:
        self.problems = list(problems)
        super().__init__(f"invalid {where}:\n" + "\n".join(f"  - {p}" for p in self.problems))


def _coerce(name: str, value: Any, hint: Any) -> tuple[Any, str | None]:
    """Coerce ``value`` to the annotated type ``hint``; return (value, problem or None)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None, None
        for arg in args:
            if arg is type(None):
                continue
            coerced, problem = _coerce(name, value, arg)
            if problem is None:
                return coerced, None
        return value, f"{name}: expected {hint}, got {value!r}"
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value in allowed:
            return value, None
        return value, f"{name}: must be one of {', '.join(map(repr, allowed))}, got {value!r}"
    if hint is bool:
        if isinstance(value, bool):
            return value, None
        return value, f"{name}: expected true/false, got {value!r}"
    if hint is int:
        if isinstance(value, bool):
            return value, f"{name}: expected an integer, got {value!r}"
        if isinstance(value, int):
            return value, None
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        if isinstance(value, str):
            try:
                return int(value), None
            except ValueError:
                pass
        return value, f"{name}: expected an integer, got {value!r}"
    if hint is float:
        if isinstance(value, bool):
            return value, f"{name}: expected a number, got {value!r}"
        try:
            return float(value), None
        except (TypeError, ValueError):
            return value, f"{name}: expected a number, got {value!r}"
    if hint is str:
        if isinstance(value, str):
            return value, None
        return value, f"{name}: expected a string, got {value!r}"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if isinstance(value, Mapping):
            return dict(value), None
        return value, f"{name}: expected a mapping, got {value!r}"
    if origin in (tuple, list) or hint in (tuple, list):
        if isinstance(value, (list, tuple)):
            return tuple(value), None
        return value, f"{name}: expected a list, got {value!r}"
    return value, None



def did_you_mean(key: Any, allowed: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` for the name of ``allowed`` a user most likely meant, or ``""``: a name the
    key shortens or extends (``epsilon`` -> ``eps``; both at least 3 characters) first, then the closest
    spelling (:func:`difflib.get_close_matches`). The one hint of trial configs and sweep specs."""
    key = str(key)
    close = [a for a in allowed if len(key) >= 3 and len(a) >= 3 and (a.startswith(key) or key.startswith(a))] \
        or difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""

def build_config(cls: type[T], data: Mapping[str, Any], *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``.

    Unknown keys (with a "did you mean" hint), type errors and the problems
    returned by ``cls.problems()`` (range checks) are all collected and raised
    together as one :class:`ConfigError`. Keys starting with ``_`` are
    reserved for the launcher and ignored here.
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key.startswith("_"):
            continue
        if key not in names:
            problems.append(f"{key}: unknown key{did_you_mean(key, names)}")
            continue
        coerced, problem = _coerce(key, value, hints[key])
        if problem:
            problems.append(problem)
        else:
            values[key] = coerced
    # range checks run on the keys that were valid (defaults stand in for the rest), so
    # one error lists every problem of the config
    instance = cls(**values)
    problems += instance.problems() if hasattr(instance, "problems") else []
    if problems:
        raise ConfigError(problems, where=where)
    return instance
