"""Spec parsing primitives: :class:`SpecError`, the :class:`Problems` collector and the key and
scalar checks every section parser of :mod:`sweeps.spec.parse` and :mod:`sweeps.spec.search_space` is built from.

Each ``check_*`` function validates one value at one key path: it returns the value (typed) or
``None`` after recording a ``"key.path: message"`` problem, so that a parser reports every
problem of a spec at once. Pure (no Ray, MLflow or Optuna).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Union

from trainables.config import did_you_mean  # the one hint of trial configs and specs

Scalar = Union[str, int, float, bool, None]
"""A value a ``choice``/``grid`` parameter may take (what Optuna accepts)."""

DIST_TYPES = ("uniform", "loguniform", "int", "choice", "grid")
SAMPLER_TYPES = ("tpe", "random", "qmc", "cmaes", "grid", "nsga2")
SCHEDULER_TYPES = ("asha", "none")
MODES = ("min", "max")

__all__ = [
    "DIST_TYPES",
    "MODES",
    "SAMPLER_TYPES",
    "SCHEDULER_TYPES",
    "Problems",
    "Scalar",
    "SpecError",
    "check_bool",
    "check_float",
    "check_int",
    "check_keys",
    "check_mapping",
    "check_str",
    "is_scalar",
    "join_path",
    "kind_of",
    "num_str",
    "show_value",
]


# --------------------------------------------------------------------------- errors


class SpecError(ValueError):
    """An invalid sweep spec; ``problems`` holds one ``"key.path: message"`` per problem
    (``what``: the kind of spec named in the message, ``sweep spec`` or ``evaluation spec``)."""

    def __init__(self, problems: Sequence[str], source: str = "<spec>", what: str = "sweep spec") -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        self.what = what
        n = len(self.problems)
        header = f"invalid {what} {source} ({n} problem{'s' if n != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  {p}" for p in self.problems)]))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems, self.source, self.what))


class Problems:
    """Collects problems while parsing so that all of them are reported at once (``items``:
    one ``"key.path: message"`` each, in the order found)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path or '<root>'}: {message}")


def join_path(path: str, key: Any) -> str:
    """The key path of ``key`` under ``path`` (``"search_space"``, ``"lr"`` -> ``"search_space.lr"``)."""
    return f"{path}.{key}" if path else str(key)


def show_value(value: Any) -> str:
    """``value`` as shown in a problem: YAML's ``null`` for ``None``, else its ``repr``."""
    return "null" if value is None else repr(value)


def num_str(x: float | int) -> str:
    """A number as shown in a problem (``3.0`` -> ``"3"``)."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() else repr(x)


def kind_of(value: Any) -> str:
    """The type name of ``value`` as shown in a problem (``null`` for ``None``)."""
    return "null" if value is None else type(value).__name__



def check_keys(m: Mapping[Any, Any], allowed: Sequence[str], path: str, pr: Problems) -> None:
    """Record every key of ``m`` not in ``allowed`` as unknown (with a suggestion)."""
    for key in m:
        if key not in allowed:
            pr.add(join_path(path, key), "unknown key" + did_you_mean(key, allowed))


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


def check_int(value: Any, path: str, pr: Problems, minimum: int | None = None) -> int | None:
    """``value`` as an int (numeric strings and whole floats accepted), ``>= minimum`` if given."""
    n = _number(value)
    if n is None or (isinstance(n, float) and not n.is_integer()):
        pr.add(path, f"must be an integer (got {show_value(value)})")
        return None
    if minimum is not None and n < minimum:
        pr.add(path, f"must be an integer >= {minimum} (got {show_value(value)})")
        return None
    return int(n)


def check_float(value: Any, path: str, pr: Problems) -> float | None:
    """``value`` as a finite float (numeric strings such as ``"1e-4"`` accepted)."""
    n = _number(value)
    if n is None:
        pr.add(path, f"must be a number (got {show_value(value)})")
        return None
    return float(n)


def check_str(value: Any, path: str, pr: Problems, choices: Sequence[str] | None = None) -> str | None:
    """``value`` if it is a non-empty string (one of ``choices`` if given)."""
    if not isinstance(value, str) or not value:
        pr.add(path, f"must be a non-empty string (got {show_value(value)})")
        return None
    if choices is not None and value not in choices:
        pr.add(path, f"must be one of {', '.join(choices)} (got {value!r})"
               + did_you_mean(value, choices))
        return None
    return value


def check_bool(value: Any, path: str, pr: Problems) -> bool | None:
    """``value`` if it is ``true`` or ``false``."""
    if not isinstance(value, bool):
        pr.add(path, f"must be true or false (got {show_value(value)})")
        return None
    return value


def check_mapping(value: Any, path: str, pr: Problems) -> Mapping[Any, Any] | None:
    """``value`` if it is a mapping, ``{}`` if it is null, else record a problem."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        pr.add(path, f"must be a mapping (got {kind_of(value)})")
        return None
    return value


def is_scalar(value: Any) -> bool:
    """Whether ``value`` may be a ``choice``/``grid`` value (:data:`Scalar`; NaN is not)."""
    if isinstance(value, float):
        return not math.isnan(value)
    return value is None or isinstance(value, (str, int, bool))
