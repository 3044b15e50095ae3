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
* ``trials.csv``: one row per analysed trial;
* ``paper_table.md`` / ``paper_table.tex``: configurations x metrics (x datasets), mean ± sd
  over seeds, best in bold, paired significance against the best (Holm-corrected), see
  :mod:`sweeps.results.paper_table`; also a section of ``report.md``.

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
import dataclasses
import html
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional


from sweeps.results.report_data import (
    ARTIFACT_DIR,
    HISTORY_PNG,
    IMPORTANCE_PNG,
    PARALLEL_PNG,
    REPORT_HTML,
    REPORT_MD,
    TRIALS_CSV,
    ReportResult,
    TrialRow,
    active_params,
    all_runs,
    boundary_warnings,
    find_experiment,
    format_value,
    load_run_spec,
)
from sweeps.results.figures import param_importances, plot_history, plot_importances, plot_parallel
from sweeps.results.paper_table import build_table
from sweeps.results.pareto_report import (
    HYPERVOLUME_PNG,
    PARETO_PNG,
    config_points,
    hypervolume_by_trial,
    plot_hypervolume,
    plot_pareto,
)
from sweeps.spec.parse import SweepSpec
from trainables import mlflow_names

logger = logging.getLogger(__name__)

__all__ = ["PAPER_MD", "PAPER_TEX", "SEED_PARAMS", "make_report"]


# --------------------------------------------------------------------------- text


def _md_cell(v: Any) -> str:
    return format_value(v).replace("|", "\\|").replace("\n", " ")


def _markdown(
    *, exp_name: str, exp_id: str, spec: SweepSpec, parents: Sequence[str], rows: Sequence[TrialRow],
    best: TrialRow, top: Sequence[TrialRow], importances: Mapping[str, float],
    importance_note: Optional[str], warns: Sequence[str], n_finished: int, n_failed: int,
    n_early: int, n_other: int, pareto_md: str = "",
) -> str:
    names = list(spec.param_names)
    metrics = [m for m, _ in spec.objectives]
    objective = ", ".join(f"{m} ({d})" for m, d in spec.objectives)
    lines = [
        f"# Sweep report: {exp_name}",
        "",
        f"- experiment: `{exp_name}` (id {exp_id})",
        f"- launches (parent runs): {', '.join(f'`{p}`' for p in parents) or '(none)'}",
        f"- objective{'s' if spec.is_multi_objective else ''}: {objective}",
        f"- trials: {n_finished} finished ({n_early} early-stopped), {n_failed} failed"
        + (f", {n_other} not finished (running/killed)" if n_other else "")
        + f"; {len(rows)} analysed",
        f"- best{' by ' + spec.metric if spec.is_multi_objective else ''}: `{best.run_id}` {spec.metric}={best.value:.6g}"
        + (f" with {', '.join(f'{k}={format_value(v)}' for k, v in best.params.items())}" if best.params else ""),
        "",
        f"## Top {len(top)} trials" + (f" by {spec.metric}" if spec.is_multi_objective else ""),
        "",
        "| rank | run id | " + " | ".join([*metrics, *names]) + " |",
        "|---:|---|" + "---:|" * (len(metrics) + len(names)),
    ]
    for i, r in enumerate(top, 1):
        cells = [f"{v:.6g}" for v in (r.values or (r.value,))] + [_md_cell(r.params[n]) if n in r.params else "–"
                                                                  for n in names]
        flag = " (early-stopped)" if r.early_stopped else ""
        lines.append(f"| {i} | `{r.run_id}`{flag} | " + " | ".join(cells) + " |")
    if any(p.when for p in spec.params):
        lines += ["", "– : parameter inactive in that trial (its `when` clause did not hold)."]
    if pareto_md:
        lines += ["", pareto_md.rstrip("\n")]
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
          pngs: Sequence[Path], pareto: Sequence[Any] = ()) -> str:
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
        + "".join(f"<th>{e(h)}</th>" for h in [*(m for m, _ in spec.objectives), *names]) + "</tr>",
    ]
    for i, r in enumerate(top, 1):
        flag = " (early-stopped)" if r.early_stopped else ""
        cells = [f"{v:.6g}" for v in (r.values or (r.value,))] + [format_value(r.params[n]) if n in r.params else "–"
                                                                  for n in names]
        parts.append(f"<tr><td class='num'>{i}</td><td><code>{e(r.run_id)}</code>{e(flag)}</td>"
                     + "".join(f"<td class='num'>{e(c)}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    front = [p for p in pareto if p.pareto]
    if front:
        parts.append(f"<h2>Pareto set</h2><p>{len(front)} of {len(pareto)} configurations are non-dominated "
                     "(means over seeds ± sd).</p><table><tr><th>#</th><th>configuration</th>"
                     + "".join(f"<th>{e(m)}</th>" for m, _ in spec.objectives) + "<th>n</th></tr>")
        for i, p in enumerate(front, 1):
            cells = [f"{m:.4g}" + ("" if sd != sd else f" ± {sd:.2g}") for m, sd in zip(p.means, p.sds)]
            parts.append(f"<tr><td class='num'>{i}</td><td>{e(p.label)}</td>"
                         + "".join(f"<td class='num'>{e(c)}</td>" for c in cells) + f"<td class='num'>{p.n}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Parameter importances</h2>")
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


def _write_csv(rows: Sequence[TrialRow], spec: SweepSpec, path: Path,
               hypervolume: Optional[Mapping[str, float]] = None) -> Path:
    """One row per trial; a multi-objective report has a column per objective and ``hypervolume`` (of the
    non-dominated trials once this one had completed)."""
    metrics = [m for m, _ in spec.objectives]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["run_id", "run_name", "parent_run_id", "start_time_ms", *metrics,
                    *(["hypervolume"] if hypervolume is not None else []), "early_stopped", *spec.param_names])
        for r in rows:
            hv = [repr(hypervolume[r.run_id])] if hypervolume is not None else []
            w.writerow([r.run_id, r.run_name, r.parent_run_id, r.start_time,
                        *(repr(v) for v in (r.values or (r.value,))), *hv,
                        r.early_stopped, *(r.params.get(n, "") for n in spec.param_names)])
    return path


def _pareto_markdown(spec: SweepSpec, points: Sequence[Any], history: Sequence[tuple[str, float]],
                     reference: Sequence[float]) -> str:
    metrics = [m for m, _ in spec.objectives]
    front = [p for p in points if p.pareto]
    lines = [
        "## Pareto set", "",
        f"{len(front)} of {len(points)} configurations are non-dominated over "
        + ", ".join(f"{m} ({d})" for m, d in spec.objectives) + " (means over seeds ± sd; a configuration is "
        "dominated when another is at least as good in every objective and better in one).", "",
        "| # | configuration | " + " | ".join(metrics) + " | n |",
        "|---:|---|" + "---:|" * (len(metrics) + 1),
    ]
    for i, p in enumerate(front, 1):
        cells = [f"{m:.4g}" + ("" if sd != sd else f" ± {sd:.2g}") for m, sd in zip(p.means, p.sds)]
        lines.append(f"| {i} | {_md_cell(p.label)} | " + " | ".join(cells) + f" | {p.n} |")
    ref = ", ".join(f"{format_value(float(v))}" for v in reference)
    lines += ["", f"Hypervolume of the non-dominated trials after {len(history)} completed trials: "
              f"{history[-1][1]:.6g} (reference point: the worst value seen per objective, ({ref}); per trial in "
              f"`{TRIALS_CSV}`, column `hypervolume`).", "",
              f"![Pareto front]({PARETO_PNG})", "", f"![hypervolume]({HYPERVOLUME_PNG})", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- paper table
PAPER_MD = "paper_table.md"
PAPER_TEX = "paper_table.tex"
SEED_PARAMS = ("seed",)


def _table_inputs(spec: SweepSpec, finished: Sequence[Any], metrics: Optional[Sequence[str]]
                  ) -> tuple[list[dict[str, Any]], list[str]]:
    """Runs of :func:`sweeps.results.paper_table.build_table` (label = active search parameters without
    the seed and the dataset axis) and its metric columns. Early-stopped runs are left out."""
    runs = []
    for r in finished:
        if mlflow_names.is_early_stopped(r.data.tags):
            continue
        try:
            params = active_params(spec, r.data.params)
        except ValueError:
            continue
        label = ", ".join(f"{k}={format_value(v)}" for k, v in params.items() if k not in SEED_PARAMS + ("dataset",))
        runs.append({"config": label or "(base config)", "seed": r.data.params.get("seed", r.info.run_id),
                     "dataset": params.get("dataset"), "metrics": dict(r.data.metrics)})
    if metrics:
        return runs, list(metrics)
    common = set.intersection(*(set(r["metrics"]) for r in runs)) if runs else set()
    first = [m for m, _ in spec.objectives]
    return runs, first + sorted(m for m in common if m.startswith(("test/", mlflow_names.EVAL_PREFIX)) and m not in first)


# --------------------------------------------------------------------------- entry point


def make_report(
    tracking_uri: str,
    experiment: str,
    out_dir: Path,
    *,
    parent_run_id: Optional[str] = None,
    top_n: int = 10,
    log_artifacts: bool = True,
    metrics: Optional[Sequence[str]] = None,
    objectives: Optional[Sequence[tuple[str, str]]] = None,
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
        metrics: columns of the paper table (default: the sweep's objectives and every
            ``test/*`` and ``eval/*`` metric that all finished runs logged).
        objectives: ``(metric, mode)`` pairs to judge the trials on instead of the sweep's own (any
            metric the runs logged, e.g. ``eval/<name>/...``; several: a Pareto set). A sweep with
            several objectives (or several here) adds ``pareto_front.png``, ``hypervolume.png``,
            a Pareto-set section and a ``hypervolume`` column of ``trials.csv``.

    Raises:
        ValueError: unknown experiment (the message lists the existing ones), unknown
            parent run, no launch with a ``spec.yaml``, or no finished trial with the metric.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = find_experiment(client, experiment)
    exp_id, exp_name = exp.experiment_id, exp.name
    runs = all_runs(client, exp_id)

    parents = sorted((r for r in runs if r.data.tags.get(mlflow_names.ROLE) == mlflow_names.ROLE_SWEEP),
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
                         f"(parent run with tag {mlflow_names.ROLE}={mlflow_names.ROLE_SWEEP})")
    parent_ids = [r.info.run_id for r in parents]

    spec, spec_parent = None, None
    for p in parents:  # newest first
        spec = load_run_spec(client, p.info.run_id)
        if spec is not None:
            spec_parent = p.info.run_id
            break
    if spec is None:
        raise ValueError(f"no launch of experiment {exp_name!r} has a {mlflow_names.SPEC_ARTIFACT} artifact "
                         f"(checked {', '.join(parent_ids)})")

    warns: list[str] = []
    if objectives:
        objectives = tuple(objectives)
        spec = dataclasses.replace(spec, metric=objectives[0][0], mode=objectives[0][1],
                                   extra_objectives=objectives[1:])
    for p in parents:
        tag_metric = p.data.tags.get(mlflow_names.METRIC)
        if tag_metric and tag_metric != spec.metric and not objectives:
            warns.append(f"launch {p.info.run_id} optimised {tag_metric!r}, not {spec.metric!r} "
                         f"(the spec of {spec_parent}); its trials are judged on {spec.metric!r}")

    wanted = set(parent_ids)
    children = [r for r in runs if r.data.tags.get(mlflow_names.PARENT_RUN_ID) in wanted
                and r.data.tags.get(mlflow_names.ROLE) != mlflow_names.ROLE_SWEEP]
    finished = [r for r in children if r.info.status == "FINISHED"]
    n_failed = sum(r.info.status == "FAILED" for r in children)
    n_other = len(children) - len(finished) - n_failed
    n_early = sum(mlflow_names.is_early_stopped(r.data.tags) for r in finished)

    rows: list[TrialRow] = []
    no_metric, bad_params = [], []
    for r in finished:
        values = [r.data.metrics.get(m) for m, _ in spec.objectives]
        if any(v is None or not math.isfinite(v) for v in values):
            no_metric.append(r.info.run_id)
            continue
        try:
            params = active_params(spec, r.data.params)
        except ValueError as err:
            bad_params.append(f"{r.info.run_id} ({err})")
            continue
        rows.append(TrialRow(
            run_id=r.info.run_id, run_name=r.info.run_name or "",
            parent_run_id=r.data.tags.get(mlflow_names.PARENT_RUN_ID, ""), start_time=int(r.info.start_time or 0),
            value=float(values[0]), params=params,
            early_stopped=mlflow_names.is_early_stopped(r.data.tags),
            values=tuple(float(v) for v in values), end_time=int(r.info.end_time or 0),
            seed=r.data.params.get("seed"),
        ))
    wanted_metrics = " / ".join(repr(m) for m, _ in spec.objectives)
    if no_metric:
        warns.append(f"{len(no_metric)} finished run(s) never logged {wanted_metrics} (or logged NaN) "
                     f"and were left out: {', '.join(no_metric[:5])}{' ...' if len(no_metric) > 5 else ''}")
    if bad_params:
        warns.append(f"{len(bad_params)} finished run(s) have params that do not fit the search space "
                     f"and were left out: {'; '.join(bad_params[:3])}{' ...' if len(bad_params) > 3 else ''}")
    if not rows:
        raise ValueError(
            f"experiment {exp_name!r} has no finished trial reporting {wanted_metrics} "
            f"({len(children)} trial run(s): {len(finished)} finished, {n_failed} failed, {n_other} other)"
        )
    if n_other:
        warns.append(f"{n_other} trial run(s) are still running or were killed: not analysed")

    rows.sort(key=lambda r: (r.start_time, r.run_id))
    ranked = sorted(rows, key=lambda r: r.value, reverse=spec.mode == "max")  # stable: earlier first on ties
    best = ranked[0]
    boundary = boundary_warnings(spec, best.params)
    importances, importance_note, imp_problems = param_importances(spec, rows)
    warns = boundary + warns + imp_problems
    if not importances:
        warns.append(f"parameter importances {importance_note}")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = [
        plot_history(rows, spec, best, out_dir / HISTORY_PNG),
        plot_parallel(rows, spec, best, out_dir / PARALLEL_PNG),
        plot_importances(importances, importance_note, spec, out_dir / IMPORTANCE_PNG),
    ]
    hv_by_run: Optional[dict[str, float]] = None
    points: list[Any] = []
    history: list[tuple[str, float]] = []
    pareto_md = ""
    if spec.is_multi_objective:
        final = [r for r in rows if not r.early_stopped]  # (an ASHA sweep judged with --metric a --metric b)
        if len(final) < len(rows):
            warns.append(f"{len(rows) - len(final)} early-stopped run(s) left out of the Pareto set and the "
                         f"hypervolume: their values are not final")
        if final:
            points = config_points(final, spec)
            history, reference = hypervolume_by_trial(final, spec)
            hv_by_run = {r.run_id: math.nan for r in rows} | dict(history)
            pngs += [plot_pareto(points, spec, out_dir / PARETO_PNG),
                     plot_hypervolume(history, reference, spec, out_dir / HYPERVOLUME_PNG)]
            pareto_md = _pareto_markdown(spec, points, history, reference)
    top = ranked[:max(1, top_n)]
    md = _markdown(
        exp_name=exp_name, exp_id=exp_id, spec=spec, parents=parent_ids, rows=rows, best=best, top=top,
        importances=importances, importance_note=importance_note, warns=warns,
        n_finished=len(finished), n_failed=n_failed, n_early=n_early, n_other=n_other, pareto_md=pareto_md,
    )
    table_runs, table_metrics = _table_inputs(spec, finished, metrics)
    paper = build_table(table_runs, table_metrics,
                        dataset_key="dataset" if "dataset" in spec.param_names else None)
    md += "\n## Paper table\n\n" + paper.markdown()
    paper_md, paper_tex = out_dir / PAPER_MD, out_dir / PAPER_TEX
    paper_md.write_text(paper.markdown(), encoding="utf-8")
    paper_tex.write_text(paper.latex(), encoding="utf-8")
    md_path = out_dir / REPORT_MD
    md_path.write_text(md, encoding="utf-8")
    html_path = out_dir / REPORT_HTML
    html_path.write_text(
        _html(f"Sweep report: {exp_name}", md, spec, top, importances, importance_note, warns, pngs, points),
        encoding="utf-8",
    )
    csv_path = _write_csv(rows, spec, out_dir / TRIALS_CSV, hv_by_run)
    files = (*pngs, md_path, html_path, csv_path, paper_md, paper_tex)

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
        best=best, trials=tuple(rows), objectives=spec.objectives, pareto=tuple(points),
        hypervolume=tuple(history),
    )
