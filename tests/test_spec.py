"""Tests for :mod:`sweeps.spec.parse`: every validation rule, round-trips, YAML numbers."""
from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any, Callable

import pytest
import yaml

from sweeps.spec.parse import (
    Condition,
    ParamSpec,
    ResourcesSpec,
    SamplerSpec,
    SchedulerSpec,
    SpecError,
    SweepSpec,
    apply_overrides,
    load_spec,
    parse_spec,
    read_yaml,
)

DEL = object()  # marks a top-level key to remove from BASE

BASE: dict[str, Any] = {
    "name": "demo",
    "trainable": "textcls",
    "metric": "val_loss",
    "mode": "min",
}

FULL: dict[str, Any] = {
    **BASE,
    "description": "a full spec",
    "config": {"epochs": 3, "data": {"name": "sst2"}},
    "search_space": {
        "hidden": {"type": "int", "low": 32, "high": 256, "step": 32, "when": {"model": "lstm"}},
        "model": {"type": "choice", "values": ["cnn", "lstm"]},
        "lr": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
        "dropout": {"type": "uniform", "low": 0, "high": 0.5, "when": {"model": ["cnn"]}},
        "layers": {"type": "int", "low": 1, "high": 64, "log": True},
    },
    "sampler": {"type": "tpe", "seed": 3, "options": {"n_startup_trials": 2}},
    "scheduler": {"type": "asha", "max_t": 20, "grace_period": 2, "reduction_factor": 3},
    "num_samples": 16,
    "max_concurrent": 4,
    "repeats": 3,
    "max_failures": 1,
    "resources": {"cpu": 2, "gpu": 0.5},
    "storage_path": "/tmp/ray",
    "tracking_uri": "file:/tmp/mlruns",
}


def make(**top: Any) -> dict[str, Any]:
    """BASE with top-level keys set (or removed with ``DEL``)."""
    data = copy.deepcopy(BASE)
    for key, value in top.items():
        if value is DEL:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def space(**params: Any) -> dict[str, Any]:
    return make(search_space=params)


U = {"type": "uniform", "low": 0, "high": 1}
CHOICE = {"type": "choice", "values": ["cnn", "lstm"]}

# (id, spec data, expected substrings -- each must appear in some problem)
ERROR_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("not-a-mapping-top-key", make(metirc="x"), ["metirc: unknown key (did you mean 'metric'?)"]),
    ("missing-name", make(name=DEL), ["name: is required"]),
    ("bad-name", make(name="a b"), ["name: must match [A-Za-z0-9_.-]+"]),
    ("name-not-str", make(name=5), ["name: must be a non-empty string (got 5)"]),
    ("missing-trainable", make(trainable=DEL), ["trainable: is required"]),
    ("missing-metric", make(metric=DEL), ["metric: is required"]),
    ("missing-mode", make(mode=DEL), ["mode: is required"]),
    ("bad-mode", make(mode="minimize"), ["mode: must be one of min, max (got 'minimize')"]),
    ("description-type", make(description=3), ["description: must be a non-empty string"]),
    ("reuse-workers-type", make(reuse_workers="yes"), ["reuse_workers: must be true or false (got 'yes')"]),
    ("checkpoint-every-negative", make(checkpoint_every_s=-1),
     ["checkpoint_every_s: must be >= 0 seconds (0: a checkpoint with every report; got -1)"]),
    ("checkpoint-every-type", make(checkpoint_every_s="often"), ["checkpoint_every_s: must be a number (got 'often')"]),
    ("config-type", make(config=[1]), ["config: must be a mapping (got list)"]),
    ("space-type", make(search_space=[1]), ["search_space: must be a mapping (got list)"]),
    ("param-type", space(lr=0.1), ["search_space.lr: must be a mapping with a 'type' key"]),
    ("param-name", space(**{"a/b": U}), ["search_space.a/b: parameter names must match"]),
    ("dist-missing-type", space(lr={"low": 0, "high": 1}), ["search_space.lr.type: is required"]),
    ("dist-bad-type", space(lr={"type": "unifrom", "low": 0, "high": 1}),
     ["search_space.lr.type: must be one of", "(did you mean 'uniform'?)"]),
    ("dist-unknown-key", space(lr={**U, "step": 0.1}), ["search_space.lr.step: unknown key"]),
    ("low-ge-high", space(eps={"type": "uniform", "low": 5, "high": 1}),
     ["search_space.eps.low: must be < high (got 5 >= 1)"]),
    ("low-eq-high", space(eps={"type": "int", "low": 2, "high": 2}),
     ["search_space.eps.low: must be < high (got 2 >= 2)"]),
    ("missing-high", space(lr={"type": "uniform", "low": 0}),
     ["search_space.lr.high: is required"]),
    ("low-not-numeric", space(lr={"type": "uniform", "low": "abc", "high": 1}),
     ["search_space.lr.low: must be a number (got 'abc')"]),
    ("low-bool", space(lr={"type": "uniform", "low": True, "high": 2}),
     ["search_space.lr.low: must be a number (got True)"]),
    ("low-inf", space(lr={"type": "uniform", "low": "-inf", "high": 2}),
     ["search_space.lr.low: must be a number"]),
    ("loguniform-nonpositive", space(lr={"type": "loguniform", "low": 0, "high": 1}),
     ["search_space.lr.low: must be > 0 for loguniform (got 0)"]),
    ("int-float-bound", space(n={"type": "int", "low": 1.5, "high": 4}),
     ["search_space.n.low: must be an integer (got 1.5)"]),
    ("int-step-zero", space(n={"type": "int", "low": 1, "high": 4, "step": 0}),
     ["search_space.n.step: must be an integer >= 1 (got 0)"]),
    ("int-log-low", space(n={"type": "int", "low": 0, "high": 4, "log": True}),
     ["search_space.n.low: must be >= 1 when log is true (got 0)"]),
    ("int-log-step", space(n={"type": "int", "low": 1, "high": 5, "step": 2, "log": True}),
     ["search_space.n.step: must be 1 when log is true"]),
    ("int-step-multiple", space(n={"type": "int", "low": 1, "high": 10, "step": 4}),
     ["search_space.n.high: high - low must be a multiple of step"]),
    ("int-log-not-bool", space(n={"type": "int", "low": 1, "high": 4, "log": "yes"}),
     ["search_space.n.log: must be true or false (got 'yes')"]),
    ("choice-missing-values", space(m={"type": "choice"}), ["search_space.m.values: is required"]),
    ("choice-empty", space(m={"type": "choice", "values": []}),
     ["search_space.m.values: must not be empty"]),
    ("choice-not-list", space(m={"type": "choice", "values": "abc"}),
     ["search_space.m.values: must be a list (got str)"]),
    ("choice-duplicate", space(m={"type": "choice", "values": ["a", "b", "a"]}),
     ["search_space.m.values[2]: duplicate value 'a'"]),
    ("choice-non-scalar", space(m={"type": "choice", "values": [[1], 2]}),
     ["search_space.m.values[0]: must be a string, number, boolean or null (got list)"]),
    ("choice-low-key", space(m={**CHOICE, "low": 1}), ["search_space.m.low: unknown key"]),
    ("when-empty", space(model=CHOICE, h={**U, "when": {}}),
     ["search_space.h.when: must be a non-empty mapping"]),
    ("when-unknown-parent", space(model=CHOICE, h={**U, "when": {"modle": "cnn"}}),
     ["search_space.h.when.modle: unknown parameter (did you mean 'model'?)"]),
    ("when-parent-not-categorical", space(x=U, h={**U, "when": {"x": 0.5}}),
     ["search_space.h.when.x: must refer to a choice or grid parameter (got uniform)"]),
    ("when-value-not-in-parent", space(model=CHOICE, h={**U, "when": {"model": ["cnn", "gru"]}}),
     ["search_space.h.when.model: 'gru' not among the values of model ['cnn', 'lstm']"]),
    ("when-self", space(m={**CHOICE, "when": {"m": "cnn"}}),
     ["search_space.m.when.m: a parameter cannot depend on itself"]),
    ("when-cycle", space(a={"type": "choice", "values": [1, 2], "when": {"b": 1}},
                         b={"type": "choice", "values": [1, 2], "when": {"a": [1]}}),
     ["search_space.a.when: conditional cycle a -> b -> a"]),
    ("space-and-config", make(config={"lr": 0.1}, search_space={"lr": U}),
     ["search_space.lr: also set in config (ambiguous"]),
    ("sampler-type", make(sampler={"type": "tpee"}),
     ["sampler.type: must be one of tpe, random, qmc, cmaes, grid", "did you mean 'tpe'"]),
    ("sampler-not-mapping", make(sampler="tpe"), ["sampler: must be a mapping (got str)"]),
    ("sampler-seed", make(sampler={"seed": -1}), ["sampler.seed: must be an integer >= 0"]),
    ("sampler-seed-big", make(sampler={"seed": 2**32}), ["sampler.seed: must be < 2**32"]),
    ("sampler-options-type", make(sampler={"options": [1]}),
     ["sampler.options: must be a mapping (got list)"]),
    ("sampler-options-seed", make(sampler={"options": {"seed": 1}}),
     ["sampler.options.seed: set sampler.seed instead"]),
    ("sampler-options-grid-space", make(sampler={"type": "grid", "options": {"search_space": {}}}),
     ["sampler.options.search_space: the grid is built from search_space"]),
    ("sampler-unknown-key", make(sampler={"seeds": 1}),
     ["sampler.seeds: unknown key (did you mean 'seed'?)"]),
    ("grid-sampler-continuous", make(sampler={"type": "grid"}, search_space={"lr": U}),
     ["search_space.lr: sampler.type: grid needs choice, grid or int parameters (got uniform)"]),
    ("grid-sampler-conditional",
     make(sampler={"type": "grid"},
          search_space={"m": CHOICE, "c": {**CHOICE, "when": {"m": "cnn"}}}),
     ["search_space.c.when: conditional parameters are not allowed with sampler.type: grid"]),
    ("grid-param-non-grid-sampler", space(g={"type": "grid", "values": [1, 2]}),
     ["search_space.g: grid parameters need sampler.type: grid (got tpe)"]),
    ("scheduler-type", make(scheduler={"type": "hyperband"}),
     ["scheduler.type: must be one of asha, none (got 'hyperband')"]),
    ("scheduler-string", make(scheduler="fast"), ["scheduler: must be a mapping, null or 'none'"]),
    ("scheduler-max-t", make(scheduler={"type": "asha", "max_t": 0}),
     ["scheduler.max_t: must be an integer >= 1 (got 0)"]),
    ("scheduler-grace", make(scheduler={"type": "asha", "max_t": 2, "grace_period": 3}),
     ["scheduler.grace_period: must be <= max_t (got 3 > 2)"]),
    ("scheduler-grace-zero", make(scheduler={"type": "asha", "grace_period": 0}),
     ["scheduler.grace_period: must be an integer >= 1"]),
    ("scheduler-rf", make(scheduler={"type": "asha", "reduction_factor": 1}),
     ["scheduler.reduction_factor: must be > 1 (got 1)"]),
    ("scheduler-time-attr", make(scheduler={"type": "asha", "time_attr": ""}),
     ["scheduler.time_attr: must be a non-empty string"]),
    ("scheduler-unknown-key", make(scheduler={"type": "asha", "grace": 1}),
     ["scheduler.grace: unknown key (did you mean 'grace_period'?)"]),
    ("scheduler-none-extra", make(scheduler={"type": "none", "max_t": 3}),
     ["scheduler.max_t: unknown key"]),
    ("num-samples-zero", make(num_samples=0), ["num_samples: must be an integer >= 1 (got 0)"]),
    ("num-samples-str", make(num_samples="many"), ["num_samples: must be an integer (got 'many')"]),
    ("num-samples-bool", make(num_samples=True), ["num_samples: must be an integer (got True)"]),
    ("max-concurrent-zero", make(max_concurrent=0), ["max_concurrent: must be an integer >= 1"]),
    ("repeats-zero", make(repeats=0), ["repeats: must be an integer >= 1"]),
    ("max-failures-negative", make(max_failures=-1), ["max_failures: must be an integer >= 0"]),
    ("resources-type", make(resources=2), ["resources: must be a mapping (got int)"]),
    ("resources-cpu", make(resources={"cpu": 0}), ["resources.cpu: must be > 0 (got 0)"]),
    ("resources-gpu-negative", make(resources={"gpu": -1}), ["resources.gpu: must be in [0, 1]"]),
    ("resources-gpu-fraction", make(resources={"gpu": 1.5}),
     ["resources.gpu: must be in [0, 1] or a whole number (got 1.5)"]),
    ("resources-unknown", make(resources={"gpus": 1}),
     ["resources.gpus: unknown key (did you mean 'gpu'?)"]),
    ("storage-path-type", make(storage_path=5), ["storage_path: must be a non-empty string"]),
    ("tracking-uri-empty", make(tracking_uri=""), ["tracking_uri: must be a non-empty string"]),
]


@pytest.mark.parametrize(
    "data,expected", [pytest.param(d, e, id=i) for i, d, e in ERROR_CASES]
)
def test_invalid_specs(data: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    problems = info.value.problems
    for needle in expected:
        assert any(needle in p for p in problems), f"{needle!r} not in {problems}"
        assert needle in str(info.value)


def _params(spec: SweepSpec) -> dict[str, ParamSpec]:
    return {p.name: p for p in spec.params}


# (id, spec data, check on the parsed spec)
VALID_CASES: list[tuple[str, dict[str, Any], Callable[[SweepSpec], bool]]] = [
    ("defaults", make(), lambda s: (
        s.config == {} and s.params == () and s.description is None
        and s.sampler == SamplerSpec("tpe", 0, {}) and s.scheduler is None
        and (s.num_samples, s.max_concurrent, s.repeats, s.max_failures) == (8, 2, 1, 0)
        and s.resources == ResourcesSpec(1.0, 0.0) and s.reuse_workers is True
        and s.storage_path is None and s.tracking_uri is None and s.source == "<spec>")),
    ("config-passthrough", make(config={"anything": {"nested": [1, 2]}, "lr": 1e-3}),
     lambda s: s.config == {"anything": {"nested": [1, 2]}, "lr": 1e-3}),
    ("null-sections", make(config=None, search_space=None, sampler=None, resources=None),
     lambda s: s.config == {} and s.params == () and s.sampler == SamplerSpec()),
    ("scheduler-none-str", make(scheduler="none"), lambda s: s.scheduler is None),
    ("scheduler-null", make(scheduler=None), lambda s: s.scheduler is None),
    ("scheduler-type-none", make(scheduler={"type": "none"}), lambda s: s.scheduler is None),
    ("scheduler-asha-defaults", make(scheduler={"type": "asha"}),
     lambda s: s.scheduler == SchedulerSpec("asha", 10, 1, 2.0, "training_iteration")),
    ("scheduler-asha-str", make(scheduler="asha"), lambda s: s.scheduler == SchedulerSpec()),
    ("scheduler-asha-values",
     make(scheduler={"max_t": 9, "grace_period": 9, "reduction_factor": 2.5, "time_attr": "epoch"}),
     lambda s: s.scheduler == SchedulerSpec("asha", 9, 9, 2.5, "epoch")),
    ("reuse-workers-off", make(reuse_workers=False), lambda s: s.reuse_workers is False),
    ("checkpoint-every-default", make(), lambda s: s.checkpoint_every_s == 60.0),
    ("checkpoint-every-each-report", make(checkpoint_every_s=0), lambda s: s.checkpoint_every_s == 0.0),
    ("gpu-fraction", make(resources={"gpu": 0.25}), lambda s: s.resources.gpu == 0.25),
    ("gpu-integer", make(resources={"cpu": 0.5, "gpu": 2}),
     lambda s: s.resources == ResourcesSpec(0.5, 2.0)),
    ("string-numbers", space(lr={"type": "loguniform", "low": "1e-4", "high": "1E-2"},
                             n={"type": "int", "low": "1e1", "high": "1e3", "step": "10"}),
     lambda s: _params(s)["lr"] == ParamSpec("lr", "loguniform", low=1e-4, high=1e-2)
     and _params(s)["n"] == ParamSpec("n", "int", low=10, high=1000, step=10)),
    ("uniform-floats", space(x={"type": "uniform", "low": -1, "high": 2}),
     lambda s: s.params[0] == ParamSpec("x", "uniform", low=-1.0, high=2.0)
     and isinstance(s.params[0].low, float)),
    ("int-defaults", space(n={"type": "int", "low": 1, "high": 4}),
     lambda s: s.params[0] == ParamSpec("n", "int", low=1, high=4, step=1, log=False)),
    ("int-log", space(n={"type": "int", "low": 1, "high": 64, "log": True}),
     lambda s: s.params[0].log is True),
    ("choice-scalars", space(c={"type": "choice", "values": ["a", 1, 2.5, None, False]}),
     lambda s: s.params[0].values == ("a", 1, 2.5, None, False)),
    ("topological-order", space(
        c2={**U, "when": {"c1": "x"}},
        c1={"type": "choice", "values": ["x", "y"], "when": {"root": ["lstm"]}},
        root=CHOICE, other=U),
     lambda s: s.param_names == ("root", "c1", "c2", "other")),
    ("when-scalar-and-multi", space(
        a=CHOICE, b={"type": "choice", "values": [1, 2]},
        c={**U, "when": {"a": "cnn", "b": [1, 2]}}),
     lambda s: s.param("c").when == (Condition("a", ("cnn",)), Condition("b", (1, 2)))),
    ("grid-sampler", make(sampler={"type": "grid", "seed": 7}, search_space={
        "g": {"type": "grid", "values": [1, 2]}, "c": CHOICE,
        "n": {"type": "int", "low": 1, "high": 5, "step": 2}}),
     lambda s: s.sampler == SamplerSpec("grid", 7, {}) and len(s.params) == 3),
    ("sampler-options", make(sampler={"type": "cmaes", "options": {"sigma0": 0.3}}),
     lambda s: s.sampler == SamplerSpec("cmaes", 0, {"sigma0": 0.3})),
    ("full", FULL, lambda s: s.num_samples == 16 and s.repeats == 3
     and s.resources == ResourcesSpec(2.0, 0.5) and s.storage_path == "/tmp/ray"
     and s.param_names == ("model", "hidden", "lr", "dropout", "layers")),
]


@pytest.mark.parametrize(
    "data,check", [pytest.param(d, c, id=i) for i, d, c in VALID_CASES]
)
def test_valid_specs(data: dict[str, Any], check: Callable[[SweepSpec], bool]) -> None:
    original = copy.deepcopy(data)
    spec = parse_spec(data)
    assert check(spec), spec
    assert data == original  # the input is not mutated
    assert parse_spec(spec.to_dict()) == spec  # and every valid spec round-trips


def test_all_problems_reported_at_once() -> None:
    data = {
        "name": "bad name!",
        "trainable": "textcls",
        "metirc": "acc",
        "mode": "up",
        "config": {"lr": 0.1},
        "search_space": {
            "lr": {"type": "loguniform", "low": "1e-4", "high": "oops"},
            "eps": {"type": "uniform", "low": 5, "high": 1},
            "h": {"type": "int", "low": 1, "high": 8, "when": {"model": "cnn"}},
        },
        "scheduler": {"type": "asha", "max_t": 2, "grace_period": 5},
        "num_samples": 0,
        "resources": {"gpu": 1.5},
    }
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="bad.yaml")
    err = info.value
    expected = [
        "metirc: unknown key (did you mean 'metric'?)",
        "metric: is required",
        "name: must match",
        "mode: must be one of min, max",
        "num_samples: must be an integer >= 1",
        "scheduler.grace_period: must be <= max_t (got 5 > 2)",
        "resources.gpu: must be in [0, 1] or a whole number",
        "search_space.lr: also set in config",
        "search_space.lr.high: must be a number (got 'oops')",
        "search_space.eps.low: must be < high (got 5 >= 1)",
        "search_space.h.when.model: unknown parameter",
    ]
    assert len(err.problems) == len(expected), err.problems
    lines = str(err).splitlines()
    assert "bad.yaml" in lines[0] and "11 problems" in lines[0]
    for needle in expected:
        assert sum(needle in line for line in lines[1:]) == 1, needle
    assert isinstance(err, ValueError)
    clone = pickle.loads(pickle.dumps(err))
    assert clone.problems == err.problems and str(clone) == str(err)


def test_known_trainables() -> None:
    assert parse_spec(make(), known_trainables={"textcls", "nli"}).trainable == "textcls"
    with pytest.raises(SpecError, match=r"trainable: unknown trainable 'textcl' .*'textcls'"):
        parse_spec(make(trainable="textcl"), known_trainables=["textcls", "nli"])


def test_root_must_be_mapping() -> None:
    with pytest.raises(SpecError, match=r"<root>: must be a mapping \(got list\)"):
        parse_spec([1, 2])  # type: ignore[arg-type]


def test_spec_is_frozen() -> None:
    spec = parse_spec(FULL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.params[0].low = 3  # type: ignore[misc]
    assert spec.config is not FULL["config"]  # a private copy


def test_round_trip_full_through_yaml(tmp_path: Any) -> None:
    spec = parse_spec(FULL, source="full")
    assert parse_spec(spec.to_dict(), source="full") == spec
    path = tmp_path / "full.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    loaded = load_spec(path)
    assert loaded == dataclasses.replace(spec, source=str(path))


def test_yaml_string_numbers(tmp_path: Any) -> None:
    text = """
name: yaml-numbers
trainable: textcls
metric: acc
mode: max
search_space:
  lr: {type: loguniform, low: 1e-5, high: 3E-2}
  wd: {type: choice, values: [0, 1e-4, 1.0e-3]}
  n: {type: int, low: 1e1, high: 1e2, step: 10}
"""
    # Plain PyYAML keeps "1e-5" as a string; parse_spec converts bounds anyway.
    raw = yaml.safe_load(text)
    assert raw["search_space"]["lr"]["low"] == "1e-5"
    params = _params(parse_spec(raw))
    assert (params["lr"].low, params["lr"].high) == (1e-5, 3e-2)
    # load_spec reads 1e-4 as a float everywhere, including choice values.
    path = tmp_path / "s.yaml"
    path.write_text(text)
    params = _params(load_spec(path))
    assert params["wd"].values == (0, 1e-4, 1e-3)
    assert params["n"] == ParamSpec("n", "int", low=10, high=100, step=10)
    assert params["lr"].low == 1e-5


def test_load_spec_errors(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="<yaml>") as info:
        load_spec(bad)
    assert info.value.source == str(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(SpecError, match=r"must be a mapping \(got null\)"):
        load_spec(empty)


@pytest.mark.parametrize("text, problems", [
    # (yaml, the duplicate-key problems: line, column, key path)
    ("a: 1\nb: 2\n", []),
    ("a: 1\na: 2\n", ["line 2, column 1: duplicate key 'a' (first at line 1, column 1)"]),
    ("config: {epochs: 1, epochs: 3}\n",
     ["line 1, column 21: duplicate key 'config.epochs' (first at line 1, column 10)"]),
    ("search_space:\n  lr: {type: float}\n  x: {values: [1, {k: 1, k: 2}]}\n  lr: {type: int}\n",
     ["line 3, column 26: duplicate key 'search_space.x.values[1].k' (first at line 3, column 20)",
      "line 4, column 3: duplicate key 'search_space.lr' (first at line 2, column 3)"]),
    ("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n", []),  # overriding a merged key is not a duplicate
    ("a: {1: x, '1': y}\n", []),  # the integer 1 and the string '1' are two keys
])
def test_duplicate_keys_at_any_depth(text: str, problems: list[str]) -> None:
    if not problems:
        read_yaml(text, "t.yaml")
        return
    with pytest.raises(SpecError) as info:
        read_yaml(text, "t.yaml")
    assert [p.removeprefix("<yaml>: ").removesuffix("; keep one of them") for p in info.value.problems] == problems


def test_load_spec_refuses_duplicate_keys(tmp_path: Any) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: demo\ntrainable: classifier\nconfig: {dataset: synthetic, epochs: 1, epochs: 3}\n"
                    "metric: best/valid_f1\nmode: max\n")
    with pytest.raises(SpecError, match=r"line 3, column 41: duplicate key 'config.epochs'"):
        load_spec(path)


def test_apply_overrides() -> None:
    spec = parse_spec(FULL)
    same = apply_overrides(spec)
    assert same == spec
    new = apply_overrides(spec, name="other", storage_path="/s", tracking_uri="http://x",
                          num_samples=3)
    assert (new.name, new.storage_path, new.tracking_uri, new.num_samples) == (
        "other", "/s", "http://x", 3)
    assert dataclasses.replace(new, name=spec.name, storage_path=spec.storage_path,
                               tracking_uri=spec.tracking_uri, num_samples=16) == spec
    assert spec.name == "demo"  # original untouched
    with pytest.raises(SpecError) as info:
        apply_overrides(spec, name="bad name", num_samples=0)
    assert len(info.value.problems) == 2


@pytest.mark.parametrize("raw, seconds", [(3600, 3600.0), ("90m", 5400.0), ("2h", 7200.0), ("1.5d", 129600.0),
                                          ("45 s", 45.0), (None, None)])
def test_time_budget_units(raw, seconds):
    assert parse_spec({**BASE, "time_budget": raw}).time_budget == seconds


@pytest.mark.parametrize("raw", [0, -5, "soon", "2 weeks", True, [1]])
def test_time_budget_rejects(raw):
    with pytest.raises(SpecError, match="time_budget: must be a positive number of seconds"):
        parse_spec({**BASE, "time_budget": raw})


def test_warm_start_parses_and_round_trips():
    s = parse_spec({**BASE, "warm_start": {"experiment": "earlier"}, "time_budget": "2h"})
    assert s.warm_start == "earlier" and parse_spec(s.to_dict()) == s
    with pytest.raises(SpecError, match=r"warm_start.experiment: is required"):
        parse_spec({**BASE, "warm_start": {}})
    with pytest.raises(SpecError, match=r"warm_start.exp: unknown key"):
        parse_spec({**BASE, "warm_start": {"experiment": "x", "exp": 1}})


# --------------------------------------------------------------------------- objectives (multi-objective)
MO = {"metric": ["best/valid_f1", "best/valid_corr"], "mode": ["max", "max"]}

MO_ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("metric-list-scalar-mode", make(metric=MO["metric"], mode="max"),
     "mode: a list of metrics needs a list of modes, one per metric in the same order (got mode: 'max'); "
     "e.g. mode: [max, max]"),
    ("mode-list-scalar-metric", make(metric="best/valid_f1", mode=["max", "max"]),
     "mode: a list of modes needs a list of metrics of the same length (got metric: 'best/valid_f1')"),
    ("lengths-differ", make(metric=["a", "b", "c"], mode=["max", "min"]),
     "mode: 2 mode(s) for 3 metric(s): give one mode per metric, in the same order"),
    ("empty-list", make(metric=[], mode=[]), "metric: the list of metrics is empty"),
    ("bad-mode-in-list", make(metric=["a", "b"], mode=["max", "up"]), "mode[1]: must be one of min, max (got 'up')"),
    ("duplicate-objective", make(metric=["a", "b", "a"], mode=["max", "min", "max"]),
     "metric[2]: 'a' is listed twice: each objective once"),
    ("duplicate-objective-other-mode", make(metric=["a", "a"], mode=["max", "min"]),
     "metric[1]: 'a' is listed twice"),
    ("asha-with-two-objectives", make(**MO, scheduler={"type": "asha", "max_t": 4}),
     "scheduler: ASHA stops trials on one metric, and this sweep has 2 objectives "
     "(metric: [best/valid_f1, best/valid_corr]); use scheduler: none (or one metric)"),
    ("asha-string-with-two-objectives", make(**MO, scheduler="asha"), "scheduler: ASHA stops trials on one metric"),
    ("cmaes-with-two-objectives", make(**MO, sampler={"type": "cmaes"}),
     "sampler.type: cmaes optimises one objective; a multi-objective sweep needs one of tpe, random, qmc, grid, nsga2"),
    ("test-metric-single", make(metric="test/f1", mode="max"),
     "metric: 'test/f1' is measured on test data, and selection must not read test data: select on its "
     "validation counterpart 'best/valid_f1'"),
    ("test-metric-in-list", make(metric=["best/valid_f1", "test/corr"], mode=["max", "max"]),
     "metric[1]: 'test/corr' is measured on test data, and selection must not read test data: select on its "
     "validation counterpart 'best/valid_corr'"),
    ("fixed-test-metric", make(metric="fixed/test_corr", mode="max"),
     "metric: 'fixed/test_corr' is measured on test data, and selection must not read test data: select on "
     "its validation counterpart 'best/valid_corr'"),
    ("test-rationale-metric", make(metric="test/rationale_auprc", mode="max"),
     "validation counterpart 'best/valid_rationale_auprc'"),
    ("eval-test-metric", make(metric="eval/faith/test/auprc", mode="max"),
     "validation counterpart 'eval/faith/valid/auprc'"),
    ("nsga2-unknown-option", make(sampler={"type": "nsga2", "options": {"population": 10}}),
     "sampler.options.population: unknown key (did you mean 'population_size'?)"),
    ("nsga2-population-too-small", make(sampler={"type": "nsga2", "options": {"population_size": 1}}),
     "sampler.options.population_size: must be an integer >= 2 (got 1)"),
    ("nsga2-probability", make(sampler={"type": "nsga2", "options": {"crossover_prob": 1.5}}),
     "sampler.options.crossover_prob: must be in [0, 1] (got 1.5)"),
    ("nsga2-crossover-name", make(sampler={"type": "nsga2", "options": {"crossover": "sbxx"}}),
     "sampler.options.crossover: must be one of uniform, blxalpha, sbx, vsbx, undx, spx (got 'sbxx')"),
    ("nsga2-crossover-parents", make(sampler={"type": "nsga2", "options": {"crossover": "spx", "population_size": 2}}),
     "sampler.options.population_size: crossover spx needs a population of at least 3 (got 2)"),
]


@pytest.mark.parametrize("data, expected", [pytest.param(d, e, id=i) for i, d, e in MO_ERROR_CASES])
def test_objective_refusals(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert any(expected in p for p in info.value.problems), info.value.problems
    assert len(info.value.problems) == 1, info.value.problems  # one clear message each


def test_test_data_names():
    from sweeps.spec.objectives import reads_test_data

    assert reads_test_data("test/f1") and reads_test_data("fixed/test_f1") and reads_test_data("best/test/f1")
    assert not any(reads_test_data(m) for m in ("best/valid_f1", "valid/corr", "testing/x", "eval/contest/x",
                                                 "restore/p_original_mean/uniform_marginalize"))


def test_multi_objective_spec_parses_and_round_trips() -> None:
    s = parse_spec(make(metric=["best/valid_f1", "train/step_time", "best/valid_corr"], mode=["max", "min", "max"],
                        sampler={"type": "nsga2", "seed": 3, "options": {"population_size": 4, "crossover": "undx",
                                                                         "mutation_prob": None}}))
    assert s.objectives == (("best/valid_f1", "max"), ("train/step_time", "min"), ("best/valid_corr", "max"))
    assert s.is_multi_objective and (s.metric, s.mode) == ("best/valid_f1", "max")  # the first objective
    assert s.to_dict()["metric"] == ["best/valid_f1", "train/step_time", "best/valid_corr"]
    assert s.to_dict()["mode"] == ["max", "min", "max"]
    assert parse_spec(s.to_dict()) == s
    assert s.sampler == SamplerSpec("nsga2", 3, {"population_size": 4, "crossover": "undx", "mutation_prob": None})


def test_single_objective_form_is_unchanged() -> None:
    s = parse_spec(make(metric="best/valid_f1", mode="max"))
    assert s.objectives == (("best/valid_f1", "max"),) and not s.is_multi_objective
    d = s.to_dict()
    assert (d["metric"], d["mode"]) == ("best/valid_f1", "max")  # scalars: fingerprints of old sweeps hold
    one = parse_spec(make(metric=["best/valid_f1"], mode=["max"]))  # a one-element list is one objective
    assert one == s
    # the single-objective samplers and ASHA still go with one metric
    assert parse_spec(make(sampler={"type": "cmaes"}, scheduler="asha")).scheduler is not None
