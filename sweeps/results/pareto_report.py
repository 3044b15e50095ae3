"""``xaisweep report`` of a multi-objective sweep: the Pareto front figure and the hypervolume history.

* :func:`config_points`: the analysed trials grouped into configurations (the search parameters without
  the seed), each with its mean and sd per objective over its seeds, and whether it is in the Pareto set
  (:mod:`sweeps.results.pareto`: non-dominated among the configurations' means, as ``xaisweep best``);
* :func:`hypervolume_by_trial`: the hypervolume of the non-dominated trials after each completed trial
  (completion order, one reference for the whole history: the worst value seen per objective over every
  analysed trial), the ``hypervolume`` column of ``trials.csv``;
* :func:`plot_pareto` (``pareto_front.png``): one panel per pair of objectives, a point per configuration
  (error bars: sd over seeds), Pareto members coloured by, and labelled with, the value of the search
  parameter that names the method (:data:`METHOD_PARAMS`, else the first categorical one), dominated
  configurations grey; :func:`plot_hypervolume` (``hypervolume.png``): the history as a line.
"""
from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from sweeps.results.figures import new_figure, save_figure
from sweeps.results.pareto import hypervolume, nadir, pareto_mask, seed_points
from sweeps.results.report_data import TrialRow, format_value
from sweeps.spec.parse import SweepSpec

PARETO_PNG = "pareto_front.png"
HYPERVOLUME_PNG = "hypervolume.png"
#: search parameters that name a method (paper rows), in the order they are looked for
METHOD_PARAMS = ("method", "regularizer", "cancel_out", "attribution", "model")
SEED_PARAMS = ("seed",)

__all__ = ["HYPERVOLUME_PNG", "METHOD_PARAMS", "PARETO_PNG", "ConfigPoint", "config_points", "hypervolume_by_trial",
           "method_param", "plot_hypervolume", "plot_pareto"]


@dataclass(frozen=True)
class ConfigPoint:
    """One configuration: ``params`` without the seed, ``means`` / ``sds`` per objective (sd ``nan``
    for one seed), ``n`` seeds, ``pareto``: non-dominated among the configurations."""

    params: dict[str, Any]
    means: tuple[float, ...]
    sds: tuple[float, ...]
    n: int
    pareto: bool
    run_ids: tuple[str, ...]

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={format_value(v)}" for k, v in self.params.items()) or "(base config)"


def config_points(rows: Sequence[TrialRow], spec: SweepSpec) -> list[ConfigPoint]:
    """The configurations of ``rows`` (their ``values``: one per objective of ``spec``), Pareto members
    first, each group best first by the first objective."""
    groups: dict[tuple, list[TrialRow]] = {}
    for r in rows:
        key = tuple((k, v) for k, v in r.params.items() if k not in SEED_PARAMS)
        groups.setdefault(key, []).append(r)
    modes = [d for _, d in spec.objectives]
    keys = list(groups)
    # one point per seed (a configuration drawn twice counts each seed once), as `best` groups them
    points = [seed_points([r.values for r in groups[k]], [r.seed for r in groups[k]]) for k in keys]
    means = [tuple(statistics.fmean(c) for c in zip(*pts)) for pts in points]
    mask = pareto_mask(means, modes) if keys else []
    out = []
    for key, pts, m, keep in zip(keys, points, means, mask):
        sds = tuple(statistics.stdev(c) if len(c) > 1 else math.nan for c in zip(*pts))
        out.append(ConfigPoint(dict(key), m, sds, len(pts), keep, tuple(r.run_id for r in groups[key])))
    sign = -1.0 if modes[0] == "max" else 1.0
    out.sort(key=lambda c: (not c.pareto, sign * c.means[0]))
    return out


def hypervolume_by_trial(rows: Sequence[TrialRow], spec: SweepSpec) -> tuple[list[tuple[str, float]], tuple]:
    """``([(run_id, hypervolume after it completed), ...] in completion order, reference)``: the
    hypervolume of the trials completed so far, against the worst value seen per objective over all
    of ``rows`` (:func:`sweeps.results.pareto.nadir`). Completion order: the run's end time (its start
    time when it has none)."""
    if not rows:
        return [], ()
    modes = [d for _, d in spec.objectives]
    done = sorted(rows, key=lambda r: (r.end_time or r.start_time, r.run_id))
    ref = nadir([r.values for r in done], modes)
    return [(r.run_id, hypervolume([q.values for q in done[: i + 1]], modes, ref))
            for i, r in enumerate(done)], ref


def method_param(spec: SweepSpec) -> Optional[str]:
    """The search parameter whose value names a configuration's method, ``None`` without one."""
    names = spec.param_names
    for name in METHOD_PARAMS:
        if name in names and spec.param(name).is_categorical:
            return name
    return next((p.name for p in spec.params if p.is_categorical and p.name not in SEED_PARAMS), None)


def _nan0(x: float) -> float:
    return 0.0 if x != x else x


def plot_pareto(points: Sequence[ConfigPoint], spec: SweepSpec, path: Path) -> Path:
    """``pareto_front.png``: each objective pair; Pareto members coloured and labelled by method."""
    from matplotlib import colormaps

    objectives = spec.objectives
    pairs = list(itertools.combinations(range(len(objectives)), 2))
    cols = min(3, len(pairs))
    rows_n = math.ceil(len(pairs) / cols)
    fig = new_figure(5.2 * cols + 1.5, 4.4 * rows_n)
    label_param = method_param(spec)
    methods = sorted({str(p.params.get(label_param, "–")) for p in points if p.pareto}) if label_param else []
    palette = colormaps["tab10"]
    colour = {m: palette(i % 10) for i, m in enumerate(methods)}
    for n, (a, b) in enumerate(pairs, 1):
        ax = fig.add_subplot(rows_n, cols, n)
        grey = [p for p in points if not p.pareto]
        if grey:
            ax.errorbar([p.means[a] for p in grey], [p.means[b] for p in grey],
                        xerr=[_nan0(p.sds[a]) for p in grey], yerr=[_nan0(p.sds[b]) for p in grey],
                        fmt="o", color="0.65", ecolor="0.8", markersize=5, label="dominated", zorder=2)
        front = [p for p in points if p.pareto]
        for i, p in enumerate(front, 1):
            method = str(p.params.get(label_param, "–")) if label_param else None
            c = colour.get(method, "tab:blue") if method is not None else "tab:blue"
            ax.errorbar([p.means[a]], [p.means[b]], xerr=[_nan0(p.sds[a])], yerr=[_nan0(p.sds[b])], fmt="o",
                        color=c, markersize=8, markeredgecolor="black", zorder=4,
                        label=method if method is not None and method not in ax.get_legend_handles_labels()[1]
                        else None)
            ax.annotate(f"{i}: {method}" if method is not None else str(i), (p.means[a], p.means[b]),
                        textcoords="offset points", xytext=(6, 5), fontsize="small", zorder=5)
        if len(front) > 1:  # the front of the set, in this pair's order
            ordered = sorted(front, key=lambda p: p.means[a])
            ax.plot([p.means[a] for p in ordered], [p.means[b] for p in ordered], color="black", alpha=0.3,
                    linewidth=1, zorder=3)
        (ma, da), (mb, db) = objectives[a], objectives[b]
        ax.set_xlabel(f"{ma} ({da})")
        ax.set_ylabel(f"{mb} ({db})")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small", title=label_param)
    # the sweep's name on a line of its own and wrapped at the figure's edge: a one-line title of a long sweep
    # name ran off both sides of a one-panel figure
    fig.suptitle(f"{spec.name}\nPareto set: {sum(p.pareto for p in points)} of {len(points)} configurations, "
                 f"means over seeds ± sd", wrap=True)
    return save_figure(fig, path)


def plot_hypervolume(history: Sequence[tuple[str, float]], reference: Sequence[float], spec: SweepSpec,
                     path: Path) -> Path:
    """``hypervolume.png``: the hypervolume after each completed trial."""
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot()
    xs = list(range(1, len(history) + 1))
    ax.plot(xs, [h for _, h in history], marker="o", color="tab:green")
    ax.set_xlabel("completed trials")
    ax.set_ylabel("hypervolume")
    ref = ", ".join(f"{format_value(float(v))}" for v in reference)
    ax.set_title(f"{spec.name}: hypervolume of the non-dominated trials\n(reference: the worst value seen per "
                 f"objective, ({ref}))", fontsize="medium", wrap=True)
    if len(xs) <= 30:
        ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
