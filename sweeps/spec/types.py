"""The frozen dataclasses a parsed sweep spec is made of (see :mod:`sweeps.spec.parse`)."""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sweeps.spec.checks import Scalar

#: seconds between two checkpoints of a trial (``checkpoint_every_s``): a report carries the trial's
#: checkpoint (and draws and uploads its interim artifacts) once this long has passed since the last one,
#: and so does the first (its artifacts only with an early-stopping scheduler, ASHA); the final report always
#: does. 0: every report (a retried or resumed trial then loses no epoch).
DEFAULT_CHECKPOINT_EVERY_S = 60.0



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
        if self.is_categorical:  # (a tuple value: a list value of an evaluation spec)
            out["values"] = [list(v) if isinstance(v, tuple) else v for v in self.values]
        else:
            out["low"], out["high"] = self.low, self.high
            if self.type == "int":
                out["step"], out["log"] = self.step, self.log
        if self.when:
            out["when"] = {c.param: [list(v) if isinstance(v, tuple) else v for v in c.values] for c in self.when}
        return out


@dataclass(frozen=True)
class SamplerSpec:
    """Which Optuna sampler to use; ``options`` are extra constructor kwargs."""

    type: Literal["tpe", "random", "qmc", "cmaes", "grid", "nsga2"] = "tpe"
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

    Objectives: ``metric`` / ``mode`` are the first (for a single-objective sweep the only)
    objective; ``extra_objectives`` the further ``(metric, mode)`` pairs of a multi-objective
    sweep (``metric: [a, b]``, ``mode: [max, min]``). Read them as :attr:`objectives`.
    """

    name: str
    trainable: str
    metric: str
    mode: Literal["min", "max"]
    extra_objectives: tuple[tuple[str, str], ...] = ()
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
    checkpoint_every_s: float = DEFAULT_CHECKPOINT_EVERY_S
    time_budget: float | None = None
    warm_start: str | None = None
    storage_path: str | None = None
    tracking_uri: str | None = None
    source: str = "<spec>"

    @property
    def objectives(self) -> tuple[tuple[str, str], ...]:
        """``((metric, mode), ...)``: every objective in spec order (one pair for a single objective)."""
        return ((self.metric, self.mode), *self.extra_objectives)

    @property
    def is_multi_objective(self) -> bool:
        """True for a spec with a list of metrics (a Pareto set is searched)."""
        return bool(self.extra_objectives)

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
            # a single objective keeps its scalar form (and so the fingerprint of existing sweeps)
            "metric": [m for m, _ in self.objectives] if self.is_multi_objective else self.metric,
            "mode": [d for _, d in self.objectives] if self.is_multi_objective else self.mode,
            "sampler": self.sampler.to_dict(),
            "scheduler": self.scheduler.to_dict() if self.scheduler else None,
            "num_samples": self.num_samples,
            "max_concurrent": self.max_concurrent,
            "repeats": self.repeats,
            "max_failures": self.max_failures,
            "resources": self.resources.to_dict(),
            "reuse_workers": self.reuse_workers,
            "checkpoint_every_s": self.checkpoint_every_s,
            "time_budget": self.time_budget,
            "warm_start": {"experiment": self.warm_start} if self.warm_start else None,
            "storage_path": self.storage_path,
            "tracking_uri": self.tracking_uri,
        }
