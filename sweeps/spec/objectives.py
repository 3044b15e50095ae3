"""The objectives of a sweep spec (``metric`` / ``mode``, one or several) and the checks that tie them
to the sampler and scheduler: pure (no Ray, MLflow or Optuna), used by :mod:`sweeps.spec.parse`.

Forms accepted::

    metric: best/valid_f1                        # one objective
    mode: max
    metric: [best/valid_f1, best/valid_corr]     # several objectives: a Pareto set is searched
    mode: [max, max]                             # one mode per metric, same order

Refused, each with one message naming the key: a metric list with a scalar mode (or a mode list with
one metric), lists of different lengths, an empty list, a metric listed twice, and any objective on
test data (a ``test/*`` metric, or ``fixed/test_*``: a path segment ``test`` or ``test_*``).
Selection must read validation data only; the message names the validation counterpart.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from sweeps.spec.checks import MODES, Problems, check_float, check_int, check_keys, check_str, show_value

#: samplers that can drive a multi-objective study (Optuna's CMA-ES optimises one objective only)
MULTI_OBJECTIVE_SAMPLERS = ("tpe", "random", "qmc", "grid", "nsga2")
#: NSGA-II's crossover operators (``optuna.samplers.nsgaii``) and the parents each one needs
NSGA2_CROSSOVERS = {"uniform": 2, "blxalpha": 2, "sbx": 2, "vsbx": 2, "undx": 3, "spx": 3}
NSGA2_OPTIONS = ("population_size", "mutation_prob", "crossover", "crossover_prob", "swapping_prob")

__all__ = [
    "MULTI_OBJECTIVE_SAMPLERS", "NSGA2_CROSSOVERS", "NSGA2_OPTIONS", "check_nsga2_options",
    "parse_objectives", "reads_test_data", "validation_counterpart",
]


def reads_test_data(metric: str) -> bool:
    """Whether ``metric`` is measured on the test split: a ``/``-separated segment is ``test`` or
    starts with ``test_`` (``test/f1``, ``fixed/test_corr``, ``eval/faith/test/x``)."""
    return any(seg == "test" or seg.startswith("test_") for seg in metric.split("/"))


def validation_counterpart(metric: str) -> str:
    """The validation metric to select on instead of test metric ``metric``: ``test/f1`` ->
    ``best/valid_f1`` (the running best, safe for ASHA), ``fixed/test_corr`` -> ``best/valid_corr``,
    other ``test`` segments -> ``valid`` (``test_x`` -> ``valid_x``)."""
    segs = metric.split("/")
    if len(segs) == 2 and segs[0] == "test":
        return f"best/valid_{segs[1]}"
    if len(segs) == 2 and segs[0] == "fixed" and segs[1].startswith("test_"):  # the metrics at corr_epoch
        return f"best/valid_{segs[1][5:]}"
    return "/".join("valid" if s == "test" else "valid_" + s[5:] if s.startswith("test_") else s for s in segs)


def _as_list(raw: Any) -> Optional[list[Any]]:
    return list(raw) if isinstance(raw, (list, tuple)) else None


def parse_objectives(metric_raw: Any, mode_raw: Any, pr: Problems) -> Optional[tuple[tuple[str, str], ...]]:
    """``((metric, mode), ...)`` from the spec's ``metric`` and ``mode`` (both present), or ``None``
    after recording every problem. A one-element list is the single-objective form."""
    n0 = len(pr.items)
    metrics, modes = _as_list(metric_raw), _as_list(mode_raw)
    if metrics is None and modes is None:
        metric = check_str(metric_raw, "metric", pr)
        mode = check_str(mode_raw, "mode", pr, MODES)
        pairs = [(metric, mode)]
    else:
        if metrics is None:
            pr.add("mode", f"a list of modes needs a list of metrics of the same length (got metric: "
                   f"{show_value(metric_raw)}); e.g. metric: [best/valid_f1, best/valid_corr]")
            return None
        if modes is None:
            pr.add("mode", f"a list of metrics needs a list of modes, one per metric in the same order (got mode: "
                   f"{show_value(mode_raw)}); e.g. mode: [{', '.join(['max'] * max(1, len(metrics)))}]")
            return None
        if not metrics:
            pr.add("metric", "the list of metrics is empty")
            return None
        if len(metrics) != len(modes):
            pr.add("mode", f"{len(modes)} mode(s) for {len(metrics)} metric(s): give one mode per metric, "
                   f"in the same order")
            return None
        pairs = [(check_str(m, f"metric[{i}]", pr), check_str(d, f"mode[{i}]", pr, MODES))
                 for i, (m, d) in enumerate(zip(metrics, modes))]
    seen: set[str] = set()
    for i, (metric, _) in enumerate(pairs):
        if metric is None:
            continue
        where = "metric" if len(pairs) == 1 else f"metric[{i}]"
        if metric in seen:
            pr.add(where, f"{metric!r} is listed twice: each objective once")
        seen.add(metric)
        if reads_test_data(metric):
            pr.add(where, f"{metric!r} is measured on test data, and selection must not read test data: "
                   f"select on its validation counterpart {validation_counterpart(metric)!r} (test metrics "
                   f"are reported beside it)")
    if len(pr.items) > n0:
        return None
    return tuple((m, d) for m, d in pairs)  # type: ignore[misc]


def _probability(raw: Any, path: str, pr: Problems) -> None:
    x = check_float(raw, path, pr)
    if x is not None and not 0.0 <= x <= 1.0:
        pr.add(path, f"must be in [0, 1] (got {show_value(raw)})")


def check_nsga2_options(options: Mapping[Any, Any], pr: Problems) -> None:
    """``sampler.options`` of ``type: nsga2`` (``optuna.samplers.NSGAIISampler``): ``population_size``
    (int >= 2, and >= the crossover's parents), ``mutation_prob`` (null: 1 / number of parameters),
    ``crossover`` (one of :data:`NSGA2_CROSSOVERS`), ``crossover_prob``, ``swapping_prob`` (in [0, 1])."""
    check_keys(options, NSGA2_OPTIONS, "sampler.options", pr)
    size = None
    if "population_size" in options:
        size = check_int(options["population_size"], "sampler.options.population_size", pr, minimum=2)
    if options.get("mutation_prob") is not None:
        _probability(options["mutation_prob"], "sampler.options.mutation_prob", pr)
    for key in ("crossover_prob", "swapping_prob"):
        if key in options:
            _probability(options[key], f"sampler.options.{key}", pr)
    if "crossover" in options:
        kind = check_str(options["crossover"], "sampler.options.crossover", pr, tuple(NSGA2_CROSSOVERS))
        need = NSGA2_CROSSOVERS.get(kind or "", 2)
        if kind is not None and size is not None and size < need:
            pr.add("sampler.options.population_size",
                   f"crossover {kind} needs a population of at least {need} (got {size})")
