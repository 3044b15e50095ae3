"""``xaisweep report``, figures: parameter importances and the three PNG plots."""
from __future__ import annotations

import math
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from sweeps.results.report_data import TrialRow, is_log_scale, range_position
from sweeps.spec.parse import SweepSpec

MIN_TRIALS_FOR_IMPORTANCE = 3
FEW_TRIALS_FOR_IMPORTANCE = 20

__all__ = ["FEW_TRIALS_FOR_IMPORTANCE", "MIN_TRIALS_FOR_IMPORTANCE", "new_figure", "param_importances", "plot_history",
           "plot_importances", "plot_parallel", "save_figure"]


# --------------------------------------------------------------------------- importances


def param_importances(
    spec: SweepSpec, rows: Sequence[TrialRow]
) -> tuple[dict[str, float], Optional[str], list[str]]:
    """(importances, note, warnings). ``importances`` is empty when they cannot be computed."""
    if not spec.params:
        return {}, "not computed: the sweep has no search space", []
    if len(spec.params) == 1:
        return {}, f"not computed: only one search parameter ({spec.params[0].name}), nothing to compare", []
    if len(rows) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, (f"not computed: needs at least {MIN_TRIALS_FOR_IMPORTANCE} finished trials "
                    f"(have {len(rows)})"), []
    if len({r.value for r in rows}) == 1:
        return {}, "not computed: every trial has the same metric value", []

    import optuna

    from sweeps.launch.space import optuna_distribution

    dists = {p.name: optuna_distribution(p) for p in spec.params}
    problems: list[str] = []
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small-sample notes of the evaluator: summarised below
            study = optuna.create_study(direction="maximize" if spec.mode == "max" else "minimize")
            n_added = 0
            for r in rows:
                try:
                    trial = optuna.trial.create_trial(
                        params=dict(r.params), distributions={k: dists[k] for k in r.params},
                        value=float(r.value),
                    )
                except ValueError as err:  # e.g. an older launch with a wider search space
                    problems.append(f"run {r.run_id} left out of the importances: {err}")
                    continue
                study.add_trial(trial)
                n_added += 1
            if n_added < MIN_TRIALS_FOR_IMPORTANCE:
                return {}, (f"not computed: needs at least {MIN_TRIALS_FOR_IMPORTANCE} trials "
                            f"inside the search space (have {n_added})"), problems
            raw = optuna.importance.get_param_importances(study)
    except Exception as err:  # noqa: BLE001 - a report must not die on the statistics
        return {}, f"not computed: {type(err).__name__}: {err}", problems
    finally:
        optuna.logging.set_verbosity(verbosity)
    imps = {k: float(v) for k, v in sorted(raw.items(), key=lambda kv: -kv[1])}
    note = None
    if n_added < FEW_TRIALS_FOR_IMPORTANCE:
        note = (f"estimated from {n_added} trials only: treat as a rough indication "
                f"(PED-ANOVA compares the top 10% of trials with all of them)")
    return imps, note, problems


# --------------------------------------------------------------------------- plots


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches at 100 dpi on its own Agg canvas."""
    # The object-oriented API with an explicit Agg canvas: no pyplot, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: Path) -> Path:
    """Lay ``fig`` out and write it to ``path`` as PNG; returns ``path``."""
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_history(rows: Sequence[TrialRow], spec: SweepSpec, best: TrialRow, path: Path) -> Path:
    """``optimization_history.png``: each trial's value in start order, the running best, early stops marked."""
    better = max if spec.mode == "max" else min
    xs = list(range(1, len(rows) + 1))
    ys = [r.value for r in rows]
    running = []
    for y in ys:
        running.append(y if not running else better(running[-1], y))
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot()
    normal = [(x, r.value) for x, r in zip(xs, rows) if not r.early_stopped]
    early = [(x, r.value) for x, r in zip(xs, rows) if r.early_stopped]
    if normal:
        ax.scatter(*zip(*normal), color="tab:blue", label="trial", zorder=3)
    if early:
        ax.scatter(*zip(*early), facecolors="none", edgecolors="tab:orange",
                   label="trial (early-stopped)", zorder=3)
    ax.step(xs, running, where="post", color="tab:red", label=f"running best ({spec.mode})")
    bx = xs[[r.run_id for r in rows].index(best.run_id)]
    ax.scatter([bx], [best.value], marker="*", s=220, color="gold", edgecolors="black",
               label="best", zorder=4)
    ax.set_xlabel("trial (in start-time order)")
    ax.set_ylabel(spec.metric)
    ax.set_title(f"{spec.name}: optimization history")
    if len(xs) <= 30:
        ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return save_figure(fig, path)


def plot_parallel(rows: Sequence[TrialRow], spec: SweepSpec, best: TrialRow, path: Path) -> Path:
    """``parallel_coordinates.png``: every trial across the search parameters (spec ranges) and the metric."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    params = list(spec.params)
    n_axes = len(params) + 1
    fig = new_figure(max(6.0, 1.7 * n_axes + 1.5), 4.8)
    ax = fig.add_subplot()
    values = [r.value for r in rows]
    vmin, vmax = min(values), max(values)
    span = vmax - vmin or 1.0
    norm = Normalize(vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1.0)
    cmap = colormaps["viridis"] if spec.mode == "max" else colormaps["viridis_r"]
    # Worst first, so the good lines end up on top.
    order = sorted(rows, key=lambda r: r.value, reverse=spec.mode == "min")
    for r in order:
        ys = [range_position(p, r.params[p.name]) if p.name in r.params else math.nan for p in params]
        ys.append((r.value - vmin) / span if vmax > vmin else 0.5)
        is_best = r.run_id == best.run_id
        ax.plot(range(n_axes), ys, color=cmap(norm(r.value)), alpha=1.0 if is_best else 0.75,
                linewidth=3.0 if is_best else 1.2, marker="o", markersize=3, zorder=3 if is_best else 2)
    for i, p in enumerate(params):
        ax.axvline(i, color="grey", linewidth=0.8, zorder=1)
        if p.is_categorical:
            for v in p.values:
                ax.text(i + 0.04, range_position(p, v), str(v), fontsize=7, va="center",
                        bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.5})
        else:
            ax.text(i + 0.04, -0.05, f"{p.low:g}", fontsize=7, va="top")
            ax.text(i + 0.04, 1.05, f"{p.high:g}", fontsize=7, va="bottom")
    ax.axvline(n_axes - 1, color="grey", linewidth=0.8, zorder=1)
    ax.text(n_axes - 1 + 0.04, -0.05, f"{vmin:.4g}", fontsize=7, va="top")
    ax.text(n_axes - 1 + 0.04, 1.05, f"{vmax:.4g}", fontsize=7, va="bottom")
    labels = [f"{p.name}{' (log)' if is_log_scale(p) else ''}" for p in params] + [spec.metric]
    ax.set_xticks(range(n_axes))
    ax.set_xticklabels(labels, rotation=20 if n_axes > 5 else 0, fontsize=8)
    ax.set_xlim(-0.2, n_axes - 1 + 0.6)
    ax.set_ylim(-0.15, 1.15)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"{spec.name}: parallel coordinates ({len(rows)} trials, best drawn thick)")
    sm = ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label=spec.metric, pad=0.02)
    return save_figure(fig, path)


def plot_importances(importances: Mapping[str, float], note: Optional[str], spec: SweepSpec,
                      path: Path) -> Path:
    """``param_importances.png``: the importances as bars (``note`` in their place when there are none)."""
    fig = new_figure(6.5, max(2.5, 0.45 * len(importances) + 1.5))
    ax = fig.add_subplot()
    if importances:
        names = list(importances)[::-1]
        vals = [importances[n] for n in names]
        bars = ax.barh(names, vals, color="tab:blue")
        for bar, v in zip(bars, vals):
            ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{v:.3f}",
                    va="center", fontsize=8)
        ax.set_xlim(0, max(1.0, max(vals) + 0.12))
        ax.set_xlabel(f"importance for {spec.metric} (normalised)")
        ax.set_title(f"{spec.name}: parameter importances")
    else:
        ax.axis("off")
        text = textwrap.fill(f"Parameter importances {note or 'not available'}.", width=60)
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, transform=ax.transAxes)
    return save_figure(fig, path)
