"""Turn parsed search spaces (:class:`~sweeps.spec.parse.ParamSpec`) into Optuna objects.

* :class:`OptunaDefineByRun` / :func:`optuna_define_by_run`: a define-by-run
  function for ``ray.tune.search.optuna.OptunaSearch(space=...)`` (or any Optuna
  objective) that samples the active parameters and returns them as a dict.
* :func:`make_optuna_sampler`: the Optuna sampler a :class:`~sweeps.spec.parse.SamplerSpec`
  describes.
* :func:`grid_points` / :func:`grid_size`: the grid a grid sweep enumerates.

Everything returned here is picklable with the standard :mod:`pickle` (Ray's
``OptunaSearch.save`` pickles both its ``space`` and its ``sampler``).
"""
from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from sweeps.spec.parse import ParamSpec, SamplerSpec, SpecError
from sweeps.spec.checks import Scalar

__all__ = [
    "OptunaDefineByRun",
    "grid_points",
    "grid_size",
    "make_optuna_sampler",
    "optuna_define_by_run",
    "optuna_distribution",
    "suggest_param",
]


def suggest_param(trial: optuna.Trial, param: ParamSpec) -> Any:
    """Sample one parameter from ``trial`` (an Optuna trial or Ray's trial proxy)."""
    if param.type == "uniform":
        return trial.suggest_float(param.name, param.low, param.high)
    if param.type == "loguniform":
        return trial.suggest_float(param.name, param.low, param.high, log=True)
    if param.type == "int":
        return trial.suggest_int(
            param.name, int(param.low), int(param.high), step=param.step or 1, log=param.log
        )
    return trial.suggest_categorical(param.name, list(param.values))


def optuna_distribution(param: ParamSpec) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution :func:`suggest_param` samples ``param`` from (to add finished
    trials to a study: warm start, parameter importances)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if param.type == "uniform":
        return FloatDistribution(float(param.low), float(param.high))
    if param.type == "loguniform":
        return FloatDistribution(float(param.low), float(param.high), log=True)
    if param.type == "int":
        return IntDistribution(int(param.low), int(param.high), log=param.log, step=param.step or 1)
    return CategoricalDistribution(list(param.values))


@dataclass(frozen=True)
class OptunaDefineByRun:
    """Define-by-run search space: ``fn(trial) -> {name: value}`` for the active params.

    ``params`` must be in topological order (as in :attr:`SweepSpec.params`); a
    conditional parameter is sampled only if its ``when`` clause holds for the
    values sampled before it, and is absent from the result otherwise.
    """

    params: tuple[ParamSpec, ...]

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        sampled: dict[str, Any] = {}
        for p in self.params:
            if p.is_active(sampled):
                sampled[p.name] = suggest_param(trial, p)
        return sampled


def optuna_define_by_run(params: Sequence[ParamSpec]) -> OptunaDefineByRun:
    """A picklable define-by-run function sampling ``params`` (see :class:`OptunaDefineByRun`)."""
    return OptunaDefineByRun(tuple(params))


def _grid_values(param: ParamSpec) -> list[Scalar]:
    if param.is_categorical:
        return list(param.values)
    if param.type == "int":
        return list(range(int(param.low), int(param.high) + 1, param.step or 1))
    raise ValueError(f"{param.name}: a {param.type} parameter has no grid")


def grid_points(params: Sequence[ParamSpec]) -> dict[str, list[Scalar]]:
    """The ``GridSampler`` search space: every value of each choice/grid/int param.

    Raises:
        ValueError: if a parameter is continuous or conditional.
    """
    for p in params:
        if p.when:
            raise ValueError(f"{p.name}: conditional parameters cannot be gridded")
    return {p.name: _grid_values(p) for p in params}


def grid_size(params: Sequence[ParamSpec]) -> int | None:
    """Number of points of the full grid over ``params``, or ``None`` if it has no grid.

    ``None`` means some parameter is continuous (uniform/loguniform) or conditional.
    An empty space has one (empty) grid point.
    """
    sizes = []
    for p in params:
        if p.when or p.type in ("uniform", "loguniform"):
            return None
        if p.is_categorical:
            sizes.append(len(p.values))
        else:
            sizes.append((int(p.high) - int(p.low)) // (p.step or 1) + 1)
    return math.prod(sizes)


def _nsga2_sampler(seed: int, options: Mapping[str, Any]) -> optuna.samplers.BaseSampler:
    from optuna.samplers import nsgaii

    options = dict(options)
    kind = options.pop("crossover", None)
    if kind is not None:
        swapping = options.get("swapping_prob", 0.5)
        options["crossover"] = {
            "uniform": lambda: nsgaii.UniformCrossover(swapping), "blxalpha": nsgaii.BLXAlphaCrossover,
            "sbx": nsgaii.SBXCrossover, "vsbx": nsgaii.VSBXCrossover, "undx": nsgaii.UNDXCrossover,
            "spx": nsgaii.SPXCrossover}[kind]()
    return PicklableNSGAIISampler(seed=seed, **options)


class PicklableNSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's ``NSGAIISampler``, picklable: Optuna 5.1's GA samplers hold a ``threading.Lock``
    (``_thread_lock``), and Tune pickles the searcher with its sampler in every experiment snapshot
    (``OptunaSearch.save``); the lock is left out of the pickle and made anew on unpickling."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


class _AskTellGridSampler(optuna.samplers.GridSampler):
    """``GridSampler`` that works with the ask/tell interface used by Ray's ``OptunaSearch``.

    ``GridSampler.after_trial`` calls ``study.stop()`` once the grid is exhausted,
    which raises ``RuntimeError`` outside ``study.optimize`` (i.e. inside
    ``study.tell``; Ray catches it and logs it as a warning). Stopping is Tune's
    job there (``num_samples``), so that error is swallowed; ``tell`` records the
    trial's state in a ``finally`` block, so nothing is lost.
    """

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        try:
            super().after_trial(study, trial, state, values)
        except RuntimeError as exc:
            if "Study.stop" not in str(exc):
                raise


def make_optuna_sampler(
    sampler_spec: SamplerSpec, params: Sequence[ParamSpec], *, max_concurrent: int = 1
) -> optuna.samplers.BaseSampler:
    """Build the Optuna sampler described by ``sampler_spec`` for ``params``.

    ``sampler_spec.options`` are passed as keyword arguments to the sampler's
    constructor; ``seed`` always comes from ``sampler_spec.seed``. For ``grid``
    the grid is :func:`grid_points` of ``params``. For ``nsga2`` (``NSGAIISampler``, single- or
    multi-objective) ``crossover`` is a name (:data:`sweeps.spec.objectives.NSGA2_CROSSOVERS`) turned
    into Optuna's crossover object; the other options are the constructor's (checked by the parser).
    TPE handles a multi-objective study itself (MOTPE). TPE uses ``constant_liar=True``
    exactly when ``max_concurrent > 1`` (unless the options say otherwise): trials
    still running count as bad, so concurrent suggestions do not pile onto one config.

    Raises:
        SpecError: if ``options`` are not accepted by the sampler's constructor.
        ImportError: for ``cmaes`` when the ``cmaes`` package is not installed.
        ValueError: for ``grid`` when ``params`` cannot be gridded.
    """
    options: Mapping[str, Any] = sampler_spec.options
    seed = sampler_spec.seed
    samplers = optuna.samplers
    try:
        if sampler_spec.type == "tpe":
            # explicit either way (Optuna's default has changed between versions)
            options = {"constant_liar": max_concurrent > 1, **options}
            return samplers.TPESampler(seed=seed, **options)
        if sampler_spec.type == "random":
            return samplers.RandomSampler(seed=seed, **options)
        if sampler_spec.type == "qmc":
            return samplers.QMCSampler(seed=seed, **options)
        if sampler_spec.type == "cmaes":
            if importlib.util.find_spec("cmaes") is None:
                raise ImportError("sampler.type: cmaes needs the 'cmaes' package "
                                  "(pip install cmaes)")
            return samplers.CmaEsSampler(seed=seed, **options)
        if sampler_spec.type == "grid":
            return _AskTellGridSampler(grid_points(params), seed=seed, **options)
        if sampler_spec.type == "nsga2":
            return _nsga2_sampler(seed, options)
    except TypeError as exc:
        raise SpecError([f"sampler.options: {exc}"]) from exc
    raise ValueError(f"unknown sampler type {sampler_spec.type!r}")
