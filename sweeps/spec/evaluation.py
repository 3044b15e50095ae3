"""Parse and validate evaluation specs (``xaisweep evaluate SWEEP --with SPEC``).

An evaluation spec is a YAML mapping naming the evaluation trainable (one that reads a saved model,
e.g. ``faithfulness``), its base ``config`` and a ``search_space`` of its knobs. Unlike a sweep, an
evaluation searches nothing: every point of the search space is evaluated on every saved model of the
sweep, so the parameters are ``choice`` / ``grid`` lists (``when`` clauses allowed; a value may itself be
a list, e.g. of ``faith_metrics``)::

    name: faith
    trainable: faithfulness
    config: {methods: [saliency, attention], faith_metrics: [deletion]}
    search_space:
      cancel_out: {type: grid, values: [zero_vector, pad]}
    resources: {cpu: 1}
    max_concurrent: 2

Each point has a stable name (:func:`evaluation_points`): the spec's ``name`` joined with the value
of every *varying* knob (a parameter with more than one value, when active), e.g. ``faith_zero_vector``;
a number or boolean value is written after its key (``ig_steps16``). Metrics land in the model's run
as ``eval/<point name>/<metric>``.

Pure (no Ray, MLflow or Optuna); the only I/O is :func:`load_evaluation_spec` reading the file. The
keys a point may set are checked against the trainable by :mod:`sweeps.evaluation.plan`.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any

from sweeps.spec.checks import Problems, SpecError, check_int, check_keys, check_mapping, check_str, join_path, kind_of
from sweeps.spec.parse import check_name, parse_resources, read_yaml
from sweeps.spec.search_space import parse_search_space
from sweeps.spec.types import ParamSpec, ResourcesSpec
from trainables.config import did_you_mean

__all__ = ["EvaluationPoint", "EvaluationSpec", "evaluation_points", "load_evaluation_spec",
           "parse_evaluation_spec"]

_TOP_KEYS = ("name", "description", "trainable", "config", "search_space", "resources", "max_concurrent")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
WHAT = "evaluation spec"
#: the most points one spec may have (every point runs on every model)
MAX_POINTS = 256


@dataclass(frozen=True)
class EvaluationSpec:
    """A parsed evaluation spec.

    Attributes:
        name: prefix of every point's name (``eval/<name>_<knobs>/...``).
        trainable: the evaluation trainable (it declares a ``ModelEvaluation``).
        config: the base config of every point.
        params: the knobs (``choice`` / ``grid`` parameters), parents before ``when`` children.
        description: free text.
        resources: per evaluation (as a sweep's per trial).
        max_concurrent: evaluations running at once.
        source: where the spec came from (a path).
    """

    name: str
    trainable: str
    config: dict[str, Any]
    params: tuple[ParamSpec, ...] = ()
    description: str | None = None
    resources: ResourcesSpec = ResourcesSpec()
    max_concurrent: int = 2
    source: str = "<evaluation spec>"

    def to_dict(self) -> dict[str, Any]:
        """The spec-file form (accepted by :func:`parse_evaluation_spec`)."""
        out: dict[str, Any] = {"name": self.name, "trainable": self.trainable, "config": copy.deepcopy(self.config),
                               "search_space": {p.name: p.to_dict() for p in self.params},
                               "resources": {"cpu": self.resources.cpu, "gpu": self.resources.gpu},
                               "max_concurrent": self.max_concurrent}
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class EvaluationPoint:
    """One evaluation config of a spec: its stable ``name`` and the knob ``values`` it sets
    (the active parameters; the spec's base config comes under them)."""

    name: str
    values: dict[str, Any]


def parse_evaluation_spec(data: Mapping[str, Any], *, source: str = "<evaluation spec>",
                          known_trainables: Collection[str] | None = None) -> EvaluationSpec:
    """Validate ``data`` (a loaded evaluation spec) and return the :class:`EvaluationSpec`.

    Raises:
        SpecError: listing every problem, one ``key.path: message`` each (the parameters must be
            ``choice`` / ``grid``: every point is evaluated; the point names must be distinct).
    """
    pr = Problems()
    if not isinstance(data, Mapping):
        raise SpecError([f"<root>: must be a mapping (got {kind_of(data)})"], source, WHAT)
    check_keys(data, _TOP_KEYS, "", pr)
    for key in ("name", "trainable"):
        if data.get(key) is None:
            pr.add(key, "is required")
    name = check_name(data["name"], pr) if data.get("name") is not None else None
    trainable = check_str(data["trainable"], "trainable", pr) if data.get("trainable") is not None else None
    if trainable is not None and known_trainables is not None and trainable not in known_trainables:
        known = sorted(known_trainables)
        pr.add("trainable", f"unknown trainable {trainable!r} (known: {', '.join(known)})"
               + did_you_mean(trainable, known))
    description = check_str(data["description"], "description", pr) if data.get("description") is not None else None
    config = check_mapping(data.get("config"), "config", pr)
    if config is not None:
        for key in config:
            if not isinstance(key, str):
                pr.add(join_path("config", key), "config keys must be strings")
    resources = parse_resources(data.get("resources"), pr)
    max_concurrent = check_int(data.get("max_concurrent", 2), "max_concurrent", pr, minimum=1)
    params: tuple[ParamSpec, ...] = ()
    space = check_mapping(data.get("search_space"), "search_space", pr)
    if space is not None:
        params = parse_search_space(space, config, pr, list_values=True)
    for p in params:
        if not p.is_categorical:
            pr.add(join_path("search_space", p.name), f"an evaluation runs every point of its search space: give "
                   f"the values (type: grid or choice, values: [...]), not a {p.type} range")
    spec = None
    if not pr.items:
        spec = EvaluationSpec(name=name, trainable=trainable,  # type: ignore[arg-type]
                              config=copy.deepcopy(dict(config or {})), params=params, description=description,
                              resources=resources, max_concurrent=max_concurrent,  # type: ignore[arg-type]
                              source=source)
        points = _enumerate(params)
        if len(points) > MAX_POINTS:
            pr.add("search_space", f"{len(points)} points (every one runs on every model); at most {MAX_POINTS}")
        names: dict[str, dict[str, Any]] = {}
        for values in points:
            point_name = _point_name(spec, values)
            if point_name in names:
                pr.add("search_space", f"points {names[point_name]} and {values} get the same name {point_name!r}: "
                       "give their values distinct spellings")
            names.setdefault(point_name, values)
    if pr.items:
        raise SpecError(pr.items, source, WHAT)
    return spec  # type: ignore[return-value]


def load_evaluation_spec(path: str | PathLike[str], *,
                         known_trainables: Collection[str] | None = None) -> EvaluationSpec:
    """Read a YAML evaluation spec (duplicate keys refused, as for sweep specs) and parse it.

    Raises:
        SpecError: malformed YAML or an invalid spec. OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(["<file>: not valid UTF-8 (re-save the spec as UTF-8)"], str(path), WHAT) from None
    try:
        data = read_yaml(text, str(path))
    except SpecError as err:
        raise SpecError(err.problems, str(path), WHAT) from None
    return parse_evaluation_spec(data, source=str(path), known_trainables=known_trainables)


def _enumerate(params: tuple[ParamSpec, ...]) -> list[dict[str, Any]]:
    """Every combination of the parameters' values, a ``when`` child only where its clause holds
    (``params`` are in topological order: parents first)."""
    points: list[dict[str, Any]] = [{}]
    for p in params:
        grown: list[dict[str, Any]] = []
        for pt in points:
            grown += [{**pt, p.name: v} for v in p.values] if p.is_active(pt) else [pt]
        points = grown
    return points


def _part(key: str, value: Any) -> str:
    """A knob value in a point name: a string as it is (characters MLflow refuses in a metric name become
    ``-``), a number, boolean or null after its key (``k10``, ``ig_steps16``), a list its items joined by
    ``-`` (``weak_learner-shuffle_tvd``)."""
    if isinstance(value, tuple):
        return "-".join(_part(key, v) for v in value) or "-"
    if isinstance(value, str):
        return _UNSAFE.sub("-", value) or "-"
    return _UNSAFE.sub("-", f"{key}{value}")


def _point_name(spec: EvaluationSpec, values: Mapping[str, Any]) -> str:
    varying = [p for p in spec.params if len(p.values) > 1 and p.name in values]
    return "_".join([spec.name] + [_part(p.name, values[p.name]) for p in varying])


def evaluation_points(spec: EvaluationSpec) -> list[EvaluationPoint]:
    """Every point of the spec's search space in a stable order (the spec's value order), each named by
    the spec's ``name`` and its varying knobs; a spec without varying knobs has one point named ``name``."""
    return [EvaluationPoint(_point_name(spec, values), {k: list(v) if isinstance(v, tuple) else v
                                                        for k, v in values.items()})
            for values in _enumerate(spec.params)]
