"""Validation helpers of the spec parser: :class:`SpecError`, the problem collector, key/scalar checks.

Pure (no Ray, MLflow or Optuna); see :mod:`sweeps.spec`.
"""
from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any, Union

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
    "resources", "reuse_workers", "storage_path", "tracking_uri", "time_budget", "warm_start",
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
