"""``xaisweep report``: plots, parameter importances and a summary of a sweep read back from MLflow.

:func:`make_report` reads the trial (child) runs of one sweep experiment, all
launches or those of one parent run, and writes to ``out_dir``:

* ``optimization_history.png``: the metric of each finished trial in start-time
  order, with the running best;
* ``parallel_coordinates.png``: one axis per search parameter (numeric axes
  normalised to the spec's ``[low, high]``, log-scaled for log parameters;
  categorical axes at the positions of their values) plus the metric, one line
  per trial coloured by the metric;
* ``param_importances.png``: Optuna's parameter importances
  (:func:`optuna.importance.get_param_importances`, PED-ANOVA by default in
  Optuna 5, which also handles conditional parameters) of an in-memory study
  rebuilt from the runs and the spec's distributions;
* ``report.md`` and ``report.html`` (PNGs embedded as data URIs, so the page is
  self-contained): top trials, importances and warnings;
* ``trials.csv``: one row per analysed trial.

The files are also logged to the parent run under ``report/``.

The search space (and metric/mode) come from the ``spec.yaml`` artifact of the
parent run (the given one, else the latest launch that has one). A trial's
metric is the last value of the spec's metric logged to its run
(``run.data.metrics``). Runs that ended FINISHED are analysed, including
those early-stopped by ASHA (tag ``early_stopped=true``: their last value is
the running best when they were stopped); FAILED runs are only counted.
Conditional parameters whose ``when`` clause does not hold for a run are left
out of that trial even if the trainable logged a default value for them.
"""
from __future__ import annotations

import base64
import csv
import html
import logging
import math
import tempfile
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from sweeps.spec import ParamSpec, SpecError, SweepSpec, parse_spec

logger = logging.getLogger(__name__)

__all__ = ["ReportResult", "TrialRow", "make_report", "boundary_warnings"]

ROLE_TAG = "xaisweep.role"
PARENT_TAG = "mlflow.parentRunId"
SPEC_ARTIFACT = "spec.yaml"
ARTIFACT_DIR = "report"
BOUNDARY_FRACTION = 0.05
MIN_TRIALS_FOR_IMPORTANCE = 3
FEW_TRIALS_FOR_IMPORTANCE = 20

HISTORY_PNG = "optimization_history.png"
PARALLEL_PNG = "parallel_coordinates.png"
IMPORTANCE_PNG = "param_importances.png"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
TRIALS_CSV = "trials.csv"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TrialRow:
    """One analysed (FINISHED) trial run."""

    run_id: str
    run_name: str
    parent_run_id: str
    start_time: int  # ms since the epoch
    value: float
    params: dict[str, Any]  # active search parameters only, typed as in the spec
    early_stopped: bool


@dataclass(frozen=True)
class ReportResult:
    """What :func:`make_report` produced.

    Attributes:
        out_dir: the output directory.
        files: the files written (PNGs, ``report.md``, ``report.html``, ``trials.csv``).
        markdown: the text of ``report.md``.
        warnings: boundary warnings and problems met (skipped runs, importances unavailable, ...).
        importances: ``{param: importance}`` (sums to 1, descending); empty if not computable.
        importance_note: why importances are missing, or a caution about them; ``None`` if none.
        n_finished: FINISHED trial runs (early-stopped ones included).
        n_failed: FAILED trial runs.
        n_early_stopped: FINISHED runs tagged ``early_stopped=true`` (a subset of ``n_finished``).
        n_analysed: finished runs that reported the metric and entered the analysis.
        experiment_id, metric, mode: the sweep's experiment and objective.
        parent_run_ids: the parent runs whose trials were read.
        logged_to: the parent run the files were logged to (``None`` if not logged).
        best: the best trial.
        trials: every analysed trial, in start-time order.
    """

    out_dir: Path
    files: tuple[Path, ...]
    markdown: str
    warnings: tuple[str, ...]
    importances: dict[str, float]
    importance_note: Optional[str]
    n_finished: int
    n_failed: int
    n_early_stopped: int
    n_analysed: int
    experiment_id: str
    metric: str
    mode: str
    parent_run_ids: tuple[str, ...]
    logged_to: Optional[str]
    best: TrialRow
    trials: tuple[TrialRow, ...] = field(repr=False, default=())


# --------------------------------------------------------------------------- MLflow reading


def _find_experiment(client: Any, experiment: str) -> Any:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        try:
            exp = client.get_experiment(experiment)
        except MlflowException:
            exp = None
        except Exception:  # noqa: BLE001 - e.g. a non-numeric id on a SQLite store
            exp = None
    if exp is None:
        names = _experiment_names(client)
        shown = ", ".join(repr(n) for n in names[:50]) + (" ..." if len(names) > 50 else "")
        raise ValueError(
            f"unknown MLflow experiment {experiment!r} (neither a name nor an id); "
            f"existing experiments: {shown or '(none)'}"
        )
    if exp.lifecycle_stage == "deleted":
        raise ValueError(f"MLflow experiment {experiment!r} is deleted (restore it first)")
    return exp


def _experiment_names(client: Any) -> list[str]:
    names: list[str] = []
    token = None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        names += [e.name for e in page]
        token = page.token
        if not token:
            return sorted(names)


def _all_runs(client: Any, experiment_id: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _load_spec(client: Any, run_id: str) -> Optional[SweepSpec]:
    """The parent run's ``spec.yaml`` artifact as a spec, ``None`` if it has none."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, SPEC_ARTIFACT, tmp)
        except Exception:  # noqa: BLE001 - missing artifact / unreachable store: treated alike
            return None
        text = Path(path).read_text(encoding="utf-8")
    try:
        return parse_spec(yaml.safe_load(text), source=f"runs:/{run_id}/{SPEC_ARTIFACT}")
    except (SpecError, yaml.YAMLError) as err:
        raise ValueError(f"the {SPEC_ARTIFACT} of parent run {run_id} is invalid: {err}") from err


# --------------------------------------------------------------------------- params


def _parse_value(p: ParamSpec, raw: str) -> Any:
    """A logged (string) param value as the spec type; ``ValueError`` if it does not fit."""
    if p.is_categorical:
        for v in p.values:
            if str(v) == raw:
                return v
        try:  # e.g. a choice of [16, 32] logged as "16.0" after the trainable coerced it
            x = float(raw)
        except ValueError:
            x = None
        if x is not None:
            for v in p.values:
                if isinstance(v, (int, float)) and not isinstance(v, bool) and float(v) == x:
                    return v
        raise ValueError(f"{raw!r} is not one of {list(p.values)!r}")
    if p.type == "int":
        x = float(raw)
        if not x.is_integer():
            raise ValueError(f"{raw!r} is not an integer")
        return int(x)
    x = float(raw)
    if not math.isfinite(x):
        raise ValueError(f"{raw!r} is not finite")
    return x


def _active_params(spec: SweepSpec, logged: Mapping[str, str]) -> dict[str, Any]:
    """The search parameters a run sampled: spec order, ``when`` clauses honoured."""
    out: dict[str, Any] = {}
    for p in spec.params:
        if not p.is_active(out) or p.name not in logged:
            continue
        out[p.name] = _parse_value(p, logged[p.name])
    return out


def _distribution(p: ParamSpec) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if p.type == "uniform":
        return FloatDistribution(float(p.low), float(p.high))
    if p.type == "loguniform":
        return FloatDistribution(float(p.low), float(p.high), log=True)
    if p.type == "int":
        return IntDistribution(int(p.low), int(p.high), log=p.log, step=p.step or 1)
    return CategoricalDistribution(list(p.values))


def _is_log(p: ParamSpec) -> bool:
    return p.type == "loguniform" or (p.type == "int" and p.log)


def _position(p: ParamSpec, v: Any) -> float:
    """``v`` on ``[0, 1]`` along the spec's range (log space for log params, index for categories)."""
    if p.is_categorical:
        idx = next(i for i, c in enumerate(p.values) if c == v and type(c) is type(v))
        return idx / (len(p.values) - 1) if len(p.values) > 1 else 0.5
    lo, hi, x = float(p.low), float(p.high), float(v)
    if _is_log(p):
        lo, hi, x = math.log(lo), math.log(hi), math.log(x)
    return (x - lo) / (hi - lo)


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def boundary_warnings(spec: SweepSpec, best_params: Mapping[str, Any]) -> list[str]:
    """Warnings for numeric parameters of the best trial within 5% of the range from a bound."""
    out = []
    for p in spec.params:
        if p.is_categorical or p.name not in best_params:
            continue
        pos = _position(p, best_params[p.name])
        side = "lower" if pos <= BOUNDARY_FRACTION else "upper" if pos >= 1 - BOUNDARY_FRACTION else None
        if side:
            out.append(
                f"best {p.name}={_fmt(best_params[p.name])} sits on the {side} boundary of "
                f"[{p.low:g}, {p.high:g}]: consider widening the search space"
            )
    return out


# --------------------------------------------------------------------------- importances


def _importances(
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

    dists = {p.name: _distribution(p) for p in spec.params}
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


def _new_figure(width: float, height: float) -> Any:
    # The object-oriented API with an explicit Agg canvas: no pyplot, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _plot_history(rows: Sequence[TrialRow], spec: SweepSpec, best: TrialRow, path: Path) -> Path:
    better = max if spec.mode == "max" else min
    xs = list(range(1, len(rows) + 1))
    ys = [r.value for r in rows]
    running = []
    for y in ys:
        running.append(y if not running else better(running[-1], y))
    fig = _new_figure(7.5, 4.2)
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
    return _save(fig, path)


def _plot_parallel(rows: Sequence[TrialRow], spec: SweepSpec, best: TrialRow, path: Path) -> Path:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    params = list(spec.params)
    n_axes = len(params) + 1
    fig = _new_figure(max(6.0, 1.7 * n_axes + 1.5), 4.8)
    ax = fig.add_subplot()
    values = [r.value for r in rows]
    vmin, vmax = min(values), max(values)
    span = vmax - vmin or 1.0
    norm = Normalize(vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1.0)
    cmap = colormaps["viridis"] if spec.mode == "max" else colormaps["viridis_r"]
    # Worst first, so the good lines end up on top.
    order = sorted(rows, key=lambda r: r.value, reverse=spec.mode == "min")
    for r in order:
        ys = [_position(p, r.params[p.name]) if p.name in r.params else math.nan for p in params]
        ys.append((r.value - vmin) / span if vmax > vmin else 0.5)
        is_best = r.run_id == best.run_id
        ax.plot(range(n_axes), ys, color=cmap(norm(r.value)), alpha=1.0 if is_best else 0.75,
                linewidth=3.0 if is_best else 1.2, marker="o", markersize=3, zorder=3 if is_best else 2)
    for i, p in enumerate(params):
        ax.axvline(i, color="grey", linewidth=0.8, zorder=1)
        if p.is_categorical:
            for v in p.values:
                ax.text(i + 0.04, _position(p, v), str(v), fontsize=7, va="center",
                        bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.5})
        else:
            ax.text(i + 0.04, -0.05, f"{p.low:g}", fontsize=7, va="top")
            ax.text(i + 0.04, 1.05, f"{p.high:g}", fontsize=7, va="bottom")
    ax.axvline(n_axes - 1, color="grey", linewidth=0.8, zorder=1)
    ax.text(n_axes - 1 + 0.04, -0.05, f"{vmin:.4g}", fontsize=7, va="top")
    ax.text(n_axes - 1 + 0.04, 1.05, f"{vmax:.4g}", fontsize=7, va="bottom")
    labels = [f"{p.name}{' (log)' if _is_log(p) else ''}" for p in params] + [spec.metric]
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
    return _save(fig, path)


def _plot_importances(importances: Mapping[str, float], note: Optional[str], spec: SweepSpec,
                      path: Path) -> Path:
    fig = _new_figure(6.5, max(2.5, 0.45 * len(importances) + 1.5))
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
    return _save(fig, path)


# --------------------------------------------------------------------------- text


def _md_cell(v: Any) -> str:
    return _fmt(v).replace("|", "\\|").replace("\n", " ")


def _markdown(
    *, exp_name: str, exp_id: str, spec: SweepSpec, parents: Sequence[str], rows: Sequence[TrialRow],
    best: TrialRow, top: Sequence[TrialRow], importances: Mapping[str, float],
    importance_note: Optional[str], warns: Sequence[str], n_finished: int, n_failed: int,
    n_early: int, n_other: int,
) -> str:
    names = list(spec.param_names)
    lines = [
        f"# Sweep report: {exp_name}",
        "",
        f"- experiment: `{exp_name}` (id {exp_id})",
        f"- launches (parent runs): {', '.join(f'`{p}`' for p in parents) or '(none)'}",
        f"- objective: {spec.metric} ({spec.mode})",
        f"- trials: {n_finished} finished ({n_early} early-stopped), {n_failed} failed"
        + (f", {n_other} not finished (running/killed)" if n_other else "")
        + f"; {len(rows)} analysed",
        f"- best: `{best.run_id}` {spec.metric}={best.value:.6g}"
        + (f" with {', '.join(f'{k}={_fmt(v)}' for k, v in best.params.items())}" if best.params else ""),
        "",
        f"## Top {len(top)} trials",
        "",
        "| rank | run id | " + " | ".join([spec.metric, *names]) + " |",
        "|---:|---|" + "---:|" * (1 + len(names)),
    ]
    for i, r in enumerate(top, 1):
        cells = [f"{r.value:.6g}"] + [_md_cell(r.params[n]) if n in r.params else "–" for n in names]
        flag = " (early-stopped)" if r.early_stopped else ""
        lines.append(f"| {i} | `{r.run_id}`{flag} | " + " | ".join(cells) + " |")
    if any(p.when for p in spec.params):
        lines += ["", "– : parameter inactive in that trial (its `when` clause did not hold)."]
    lines += ["", "## Parameter importances", ""]
    if importances:
        lines += ["| parameter | importance |", "|---|---:|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in importances.items()]
        if importance_note:
            lines += ["", f"Note: importances {importance_note}."]
    else:
        lines.append(f"Parameter importances {importance_note or 'not available'}.")
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in warns] if warns else ["(none)"]
    lines += [
        "", "## Figures", "",
        f"![optimization history]({HISTORY_PNG})",
        "",
        f"![parallel coordinates]({PARALLEL_PNG})",
        "",
        f"![parameter importances]({IMPORTANCE_PNG})",
        "",
    ]
    return "\n".join(lines)


def _html(title: str, markdown_text: str, spec: SweepSpec, top: Sequence[TrialRow],
          importances: Mapping[str, float], importance_note: Optional[str], warns: Sequence[str],
          pngs: Sequence[Path]) -> str:
    e = html.escape
    names = list(spec.param_names)
    summary = [ln[2:] for ln in markdown_text.splitlines() if ln.startswith("- ")][:6]
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
        "td.num{text-align:right}img{max-width:100%;display:block;margin:1em 0}"
        ".warn{color:#a15c00}</style></head><body>",
        f"<h1>{e(title)}</h1>", "<ul>",
        *[f"<li>{e(s.replace('`', ''))}</li>" for s in summary], "</ul>",
        f"<h2>Top {len(top)} trials</h2><table><tr><th>rank</th><th>run id</th>"
        + "".join(f"<th>{e(h)}</th>" for h in [spec.metric, *names]) + "</tr>",
    ]
    for i, r in enumerate(top, 1):
        flag = " (early-stopped)" if r.early_stopped else ""
        cells = [f"{r.value:.6g}"] + [_fmt(r.params[n]) if n in r.params else "–" for n in names]
        parts.append(f"<tr><td class='num'>{i}</td><td><code>{e(r.run_id)}</code>{e(flag)}</td>"
                     + "".join(f"<td class='num'>{e(c)}</td>" for c in cells) + "</tr>")
    parts.append("</table><h2>Parameter importances</h2>")
    if importances:
        parts.append("<table><tr><th>parameter</th><th>importance</th></tr>"
                     + "".join(f"<tr><td>{e(k)}</td><td class='num'>{v:.4f}</td></tr>"
                               for k, v in importances.items()) + "</table>")
        if importance_note:
            parts.append(f"<p>Note: importances {e(importance_note)}.</p>")
    else:
        parts.append(f"<p>Parameter importances {e(importance_note or 'not available')}.</p>")
    parts.append("<h2>Warnings</h2>")
    parts.append("<ul>" + "".join(f"<li class='warn'>{e(w)}</li>" for w in warns) + "</ul>"
                 if warns else "<p>(none)</p>")
    parts.append("<h2>Figures</h2>")
    for png in pngs:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f"<img alt='{e(png.stem)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _write_csv(rows: Sequence[TrialRow], spec: SweepSpec, path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["run_id", "run_name", "parent_run_id", "start_time_ms", spec.metric,
                    "early_stopped", *spec.param_names])
        for r in rows:
            w.writerow([r.run_id, r.run_name, r.parent_run_id, r.start_time, repr(r.value),
                        r.early_stopped, *(r.params.get(n, "") for n in spec.param_names)])
    return path


# --------------------------------------------------------------------------- entry point


def make_report(
    tracking_uri: str,
    experiment: str,
    out_dir: Path,
    *,
    parent_run_id: Optional[str] = None,
    top_n: int = 10,
    log_artifacts: bool = True,
) -> ReportResult:
    """Write the report of sweep ``experiment`` to ``out_dir`` (see the module docstring).

    Args:
        tracking_uri: MLflow tracking URI.
        experiment: the experiment's name (the sweep name) or id.
        out_dir: output directory (created if needed; existing report files are overwritten).
        parent_run_id: read only the trials of this launch (and log the report to it);
            default: the trials of every launch, report logged to the latest launch.
        top_n: rows of the top-trials table.
        log_artifacts: log the files to the parent run under ``report/``.

    Raises:
        ValueError: unknown experiment (the message lists the existing ones), unknown
            parent run, no launch with a ``spec.yaml``, or no finished trial with the metric.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = _find_experiment(client, experiment)
    exp_id, exp_name = exp.experiment_id, exp.name
    runs = _all_runs(client, exp_id)

    parents = sorted((r for r in runs if r.data.tags.get(ROLE_TAG) == "sweep"),
                     key=lambda r: (r.info.start_time or 0, r.info.run_id), reverse=True)
    if parent_run_id is not None:
        chosen = [r for r in parents if r.info.run_id == parent_run_id]
        if not chosen:
            known = ", ".join(r.info.run_id for r in parents) or "(none)"
            raise ValueError(f"run {parent_run_id!r} is not a sweep launch (parent run) of experiment "
                             f"{exp_name!r}; its launches: {known}")
        parents = chosen
    if not parents:
        raise ValueError(f"experiment {exp_name!r} has no xaisweep launch "
                         f"(parent run with tag {ROLE_TAG}=sweep)")
    parent_ids = [r.info.run_id for r in parents]

    spec, spec_parent = None, None
    for p in parents:  # newest first
        spec = _load_spec(client, p.info.run_id)
        if spec is not None:
            spec_parent = p.info.run_id
            break
    if spec is None:
        raise ValueError(f"no launch of experiment {exp_name!r} has a {SPEC_ARTIFACT} artifact "
                         f"(checked {', '.join(parent_ids)})")

    warns: list[str] = []
    for p in parents:
        tag_metric = p.data.tags.get("metric")
        if tag_metric and tag_metric != spec.metric:
            warns.append(f"launch {p.info.run_id} optimised {tag_metric!r}, not {spec.metric!r} "
                         f"(the spec of {spec_parent}); its trials are judged on {spec.metric!r}")

    wanted = set(parent_ids)
    children = [r for r in runs if r.data.tags.get(PARENT_TAG) in wanted
                and r.data.tags.get(ROLE_TAG) != "sweep"]
    finished = [r for r in children if r.info.status == "FINISHED"]
    n_failed = sum(r.info.status == "FAILED" for r in children)
    n_other = len(children) - len(finished) - n_failed
    n_early = sum(r.data.tags.get("early_stopped", "").lower() == "true" for r in finished)

    rows: list[TrialRow] = []
    no_metric, bad_params = [], []
    for r in finished:
        value = r.data.metrics.get(spec.metric)
        if value is None or not math.isfinite(value):
            no_metric.append(r.info.run_id)
            continue
        try:
            params = _active_params(spec, r.data.params)
        except ValueError as err:
            bad_params.append(f"{r.info.run_id} ({err})")
            continue
        rows.append(TrialRow(
            run_id=r.info.run_id, run_name=r.info.run_name or "",
            parent_run_id=r.data.tags.get(PARENT_TAG, ""), start_time=int(r.info.start_time or 0),
            value=float(value), params=params,
            early_stopped=r.data.tags.get("early_stopped", "").lower() == "true",
        ))
    if no_metric:
        warns.append(f"{len(no_metric)} finished run(s) never logged {spec.metric!r} (or logged NaN) "
                     f"and were left out: {', '.join(no_metric[:5])}{' ...' if len(no_metric) > 5 else ''}")
    if bad_params:
        warns.append(f"{len(bad_params)} finished run(s) have params that do not fit the search space "
                     f"and were left out: {'; '.join(bad_params[:3])}{' ...' if len(bad_params) > 3 else ''}")
    if not rows:
        raise ValueError(
            f"experiment {exp_name!r} has no finished trial reporting {spec.metric!r} "
            f"({len(children)} trial run(s): {len(finished)} finished, {n_failed} failed, {n_other} other)"
        )
    if n_other:
        warns.append(f"{n_other} trial run(s) are still running or were killed: not analysed")

    rows.sort(key=lambda r: (r.start_time, r.run_id))
    ranked = sorted(rows, key=lambda r: r.value, reverse=spec.mode == "max")  # stable: earlier first on ties
    best = ranked[0]
    boundary = boundary_warnings(spec, best.params)
    importances, importance_note, imp_problems = _importances(spec, rows)
    warns = boundary + warns + imp_problems
    if not importances:
        warns.append(f"parameter importances {importance_note}")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = [
        _plot_history(rows, spec, best, out_dir / HISTORY_PNG),
        _plot_parallel(rows, spec, best, out_dir / PARALLEL_PNG),
        _plot_importances(importances, importance_note, spec, out_dir / IMPORTANCE_PNG),
    ]
    top = ranked[:max(1, top_n)]
    md = _markdown(
        exp_name=exp_name, exp_id=exp_id, spec=spec, parents=parent_ids, rows=rows, best=best, top=top,
        importances=importances, importance_note=importance_note, warns=warns,
        n_finished=len(finished), n_failed=n_failed, n_early=n_early, n_other=n_other,
    )
    md_path = out_dir / REPORT_MD
    md_path.write_text(md, encoding="utf-8")
    html_path = out_dir / REPORT_HTML
    html_path.write_text(
        _html(f"Sweep report: {exp_name}", md, spec, top, importances, importance_note, warns, pngs),
        encoding="utf-8",
    )
    csv_path = _write_csv(rows, spec, out_dir / TRIALS_CSV)
    files = (*pngs, md_path, html_path, csv_path)

    logged_to = None
    result_warns = list(warns)
    if log_artifacts:
        target = parent_ids[0]  # the given launch, else the latest one
        try:
            for f in files:
                client.log_artifact(target, str(f), ARTIFACT_DIR)
            logged_to = target
        except Exception as err:  # noqa: BLE001 - the local report is still useful
            msg = f"could not log the report to parent run {target}: {type(err).__name__}: {err}"
            logger.warning(msg)
            result_warns.append(msg)

    return ReportResult(
        out_dir=out_dir, files=files, markdown=md, warnings=tuple(result_warns),
        importances=importances, importance_note=importance_note, n_finished=len(finished),
        n_failed=n_failed, n_early_stopped=n_early, n_analysed=len(rows), experiment_id=exp_id,
        metric=spec.metric, mode=spec.mode, parent_run_ids=tuple(parent_ids), logged_to=logged_to,
        best=best, trials=tuple(rows),
    )
