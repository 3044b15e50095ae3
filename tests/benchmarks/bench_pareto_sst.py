#!/usr/bin/env python
"""Benchmark: the F1-Corr. Pareto front of vanilla vs Attention VAT / iVAT (vs Word VAT) on SST, through the
real CLI (``xaisweep run``, then ``best`` for the Pareto set and ``report`` for pareto_front.png and
hypervolume.png), from sweeps derived from the shipped ``sweeps/attention_vat_pareto_sst.yaml``.

Stages (``--stages``, in this order):

* ``search``: the shipped spec as it is (multi-objective TPE over method, eps, word_eps, lambda; objectives
  ``best/valid_f1``, ``best/valid_corr``; 3 seeds per configuration) cut to ``--search-configs`` (4)
  configurations x 3 seeds = 12 trials on a ``--max-train-examples`` (2,000) sentence subset of the SST
  training split (``data_seed`` 0: the same subset for every trial), ``--epochs`` epochs. Issue 19 asks that
  this run finishes in < 10 minutes on this machine: its wall time is measured and reported.
* ``compare``: the comparison the paper's claim needs: a grid over ``regularizer`` in ``--methods`` x ``eps``
  in ``--eps`` (lambda 1), 3 seeds each, same objectives, on ``--compare-train-examples`` sentences (0: the
  full training split). The grid sampler takes no ``when`` clause, so vanilla (and, with ``word_eps`` unset,
  Word VAT on the word-vector scale) runs at every eps: vanilla's eps is inactive, its rows are identical on
  this deterministic CPU run (checked and merged in the table).

Each stage writes ``results/pareto_<stage>.yaml`` (the derived spec), runs it with ``--fresh`` under
``--home`` (an ``XAISWEEP_HOME`` of its own), keeps the CLI outputs (``results/pareto_<stage>_best.txt``,
the report in ``results/pareto_<stage>_report/``), copies ``pareto_front.png`` and ``hypervolume.png`` to
``tests/benchmarks/figures/pareto_sst_<stage>_*.png`` and writes ``results/pareto_<stage>.json``: per
configuration the mean ± sd over seeds of the objectives and of test F1 (macro and positive class, the
paper's), test Corr. (mean and pooled), whether it is on the Pareto front (``sweeps.results.best.pareto_set``,
what ``best`` prints), which configurations dominate vanilla, the hypervolume of the configurations' means
and of the trials (``report``'s trials.csv), wall time and load. ``--markdown`` prints the tables there.
``--render`` rebuilds the markdown from the JSON files without training; ``--skip-run`` redoes ``best``,
``report`` and the tables of a sweep already run; ``--tag T`` names a second run of a stage (``compare_T``).

Usage (repository root)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python tests/benchmarks/bench_pareto_sst.py --stages search
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python tests/benchmarks/bench_pareto_sst.py --stages compare \\
        --eps 0.3,1,3 --epochs 3
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import REPO, loadavg, machine_info, mean_sd, write_output

import yaml  # noqa: E402

SPEC = REPO / "sweeps" / "attention_vat_pareto_sst.yaml"
RESULTS = REPO / "tests" / "benchmarks" / "results"
FIGURES = REPO / "tests" / "benchmarks" / "figures"
OBJECTIVES = ("best/valid_f1", "best/valid_corr")
TEST_COLUMNS = ("test/f1", "test/f1_pos", "test/corr", "test/corr_pooled", "best/valid_roc_auc", "best_epoch",
                "fixed/epoch", "fixed/test_f1", "fixed/test_corr")
METHOD_NAMES = {"none": "Vanilla", "attention_vat": "Attention VAT", "attention_ivat": "Attention iVAT",
                "word_vat": "Word VAT", "attention_at": "Attention AT", "attention_iat": "Attention iAT"}


def tag_of(stage: str, args: argparse.Namespace) -> str:
    """The stage's name in files and in the sweep name: ``compare``, or ``compare_full`` with ``--tag full``."""
    return stage + (f"_{args.tag}" if args.tag else "")


def derived_spec(stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """The shipped spec, cut to this machine (CPU trials of one thread, 2 at a time) and to the stage."""
    spec = yaml.safe_load(SPEC.read_text())
    spec["name"] = f"pareto-sst-bench-{tag_of(stage, args)}"
    spec["config"]["epochs"] = args.epochs
    spec["config"]["num_threads"] = 1
    spec["resources"] = {"cpu": 1}
    spec["max_concurrent"] = args.concurrent
    spec["repeats"] = args.seeds
    if stage == "search":
        spec["config"]["max_train_examples"] = args.max_train_examples
        spec["num_samples"] = args.search_configs
    else:
        if args.compare_train_examples:
            spec["config"]["max_train_examples"] = args.compare_train_examples
        spec["config"]["lam"] = 1.0
        methods = args.methods.split(",")
        spec["search_space"] = {
            "regularizer": {"type": "grid", "values": methods},
            "eps": {"type": "grid", "values": [float(e) for e in args.eps.split(",")]},
        }
        spec["sampler"] = {"type": "grid", "seed": 0}
        spec["num_samples"] = len(methods) * len(args.eps.split(","))
    spec["description"] = f"bench_pareto_sst.py stage {stage} (derived from sweeps/attention_vat_pareto_sst.yaml)"
    return spec


def cli(home: Path, *argv: str, log: Path) -> tuple[int, float, str]:
    """``python -m sweeps.cli ARGV`` with its own XAISWEEP_HOME; (rc, wall seconds, stdout)."""
    env = {**os.environ, "XAISWEEP_HOME": str(home), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "sweeps.cli", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True)
    wall = time.time() - t0
    log.write_text(f"$ xaisweep {' '.join(argv)}\n(rc {proc.returncode}, {wall:.0f} s)\n{proc.stdout}\n"
                   f"--- stderr ---\n{proc.stderr}")
    if proc.returncode != 0:
        raise RuntimeError(f"xaisweep {' '.join(argv)} failed (rc {proc.returncode}); see {log}\n"
                           f"{proc.stderr[-3000:]}")
    return proc.returncode, wall, proc.stdout


def label(params: dict[str, str], inactive, names) -> str:
    """``Attention VAT (eps 0.3, lam 1.2)``: the method and its active search parameters."""
    method = METHOD_NAMES.get(params.get("regularizer", ""), params.get("regularizer", "?"))
    parts = [f"{k} {float(params[k]):.3g}" for k in names
             if k != "regularizer" and k in params and k not in inactive and params.get("regularizer") != "none"]
    return method + (f" ({', '.join(parts)})" if parts else "")


def collect(tag: str, home: Path, names) -> dict[str, Any]:
    """Per configuration: the objectives (as ``best`` groups them) and the test metrics of its runs."""
    from mlflow.tracking import MlflowClient

    from sweeps.results.best import pareto_set
    from sweeps.results.pareto import dominates, hypervolume, nadir
    from sweeps.workdir import Workdir

    uri = Workdir(home).tracking_uri
    name = f"pareto-sst-bench-{tag}"
    ps = pareto_set(uri, name)
    client = MlflowClient(uri)
    rows = []
    for on_front, items in ((True, ps.front), (False, ps.dominated)):
        for cfg in items:
            runs = [client.get_run(r.run_id) for r in cfg.runs]
            metrics = {m: [run.data.metrics.get(m, math.nan) for run in runs] for m in OBJECTIVES + TEST_COLUMNS}
            rows.append({
                "label": label(cfg.params, cfg.inactive, names),
                "params": {k: cfg.params[k] for k in names if k in cfg.params},
                "inactive": sorted(cfg.inactive), "on_front": on_front, "n": cfg.n,
                "seeds": cfg.seeds, "run_ids": [r.run_id for r in cfg.runs],
                "per_seed": metrics,
                "mean_sd": {m: mean_sd(v) for m, v in metrics.items()},
                "objective_means": list(cfg.objective_values), "objective_sds": list(cfg.sds),
            })
    modes = [d for _, d in ps.objectives]
    points = [r["objective_means"] for r in rows]
    ref = nadir(points, modes)
    vanilla = [r for r in rows if r["params"].get("regularizer") == "none"]
    for r in rows:
        r["dominates_vanilla"] = bool(vanilla) and all(
            dominates(r["objective_means"], v["objective_means"], modes) for v in vanilla)
        # paired by seed against vanilla (the first vanilla row: all vanilla rows are the same model)
        if vanilla and r is not vanilla[0]:
            v = vanilla[0]
            r["paired_vs_vanilla"] = {}
            for m in OBJECTIVES + ("test/f1", "test/f1_pos", "test/corr"):
                by_seed = dict(zip(v["seeds"], v["per_seed"][m]))
                diffs = [x - by_seed[s] for s, x in zip(r["seeds"], r["per_seed"][m]) if s in by_seed]
                r["paired_vs_vanilla"][m] = {"mean_sd": mean_sd(diffs), "positive": sum(d > 0 for d in diffs),
                                             "n": len(diffs)}
    rows.sort(key=lambda r: (not r["on_front"], -r["objective_means"][0]))
    return {"objectives": [list(o) for o in ps.objectives], "rows": rows, "nadir_of_config_means": list(ref),
            "hypervolume_config_means": hypervolume(points, modes, ref)}


def trials_hypervolume(report_dir: Path) -> list[float]:
    path = report_dir / "trials.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return [float(r["hypervolume"]) for r in csv.DictReader(f) if r.get("hypervolume") not in (None, "")]


def run_stage(stage: str, args: argparse.Namespace) -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    spec = derived_spec(stage, args)
    tag = tag_of(stage, args)
    spec_path = RESULTS / f"pareto_{tag}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    home = Path(args.home) / tag
    load_before = loadavg()
    print(f"[{tag}] running {spec['num_samples']} configurations x {spec['repeats']} seeds, "
          f"{spec['config']['epochs']} epochs, train subset {spec['config'].get('max_train_examples', 'full')}, "
          f"load {load_before}", flush=True)
    run_log = RESULTS / f"pareto_{tag}_run.txt"
    timing = RESULTS / f"pareto_{tag}_run.json"
    if args.skip_run:  # the sweep of an earlier call: its wall time and load from that call
        if timing.exists():
            t = json.loads(timing.read_text())
            wall, load_before, load_after = t["wall_s"], t["load_before"], t["load_after"]
        else:  # only the log: "(rc 0, 401 s)" on its second line
            wall = float(run_log.read_text().splitlines()[1].split(", ")[1].split(" s)")[0])
            load_before = load_after = None
    else:
        _, wall, _ = cli(home, "run", str(spec_path), "--fresh", "--num-cpus", str(args.num_cpus), "--quiet",
                         log=run_log)
        load_after = loadavg()
        timing.write_text(json.dumps({"wall_s": wall, "load_before": load_before, "load_after": load_after}))
    print(f"[{tag}] sweep done in {wall:.0f} s (load {load_before} -> {load_after})", flush=True)
    _, _, best_out = cli(home, "best", spec["name"], "--top", "100", log=RESULTS / f"pareto_{tag}_best.txt")
    report_dir = RESULTS / f"pareto_{tag}_report"
    cli(home, "report", spec["name"], "--out", str(report_dir), log=RESULTS / f"pareto_{tag}_report.txt")
    FIGURES.mkdir(parents=True, exist_ok=True)
    for fig in ("pareto_front.png", "hypervolume.png"):
        if (report_dir / fig).exists():
            shutil.copy(report_dir / fig, FIGURES / f"pareto_sst_{tag}_{fig}")
    data = collect(tag, home, list(spec["search_space"]))
    hv = trials_hypervolume(report_dir)
    data.update({
        "stage": tag, "spec": spec, "wall_s": wall, "load_before": load_before, "load_after": load_after,
        "trials": spec["num_samples"] * spec["repeats"], "best_stdout": best_out,
        "hypervolume_trials_final": hv[-1] if hv else None, "hypervolume_trials": hv,
        "machine": machine_info(1), "finished_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    })
    write_output(RESULTS / f"pareto_{tag}.json", data)
    print(markdown(data), flush=True)
    return data


def _ms(pair, digits: int, scale: float = 1.0) -> str:
    m, s = pair
    if m != m:
        return "–"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def markdown(data: dict[str, Any]) -> str:
    spec = data["spec"]
    rows = data["rows"]
    # identical rows (vanilla at every eps of the grid: eps is inactive) are shown once
    shown, seen = [], {}
    for r in rows:
        key = (r["label"], tuple(round(x, 12) for x in r["objective_means"]))
        if key in seen:
            seen[key]["copies"] += 1
            continue
        r = {**r, "copies": 1}
        seen[key] = r
        shown.append(r)
    lines = [
        f"Stage `{data['stage']}`: {data['trials']} trials ({spec['num_samples']} configurations x {spec['repeats']} "
        f"seeds), {spec['config']['epochs']} epochs, training sentences: "
        f"{spec['config'].get('max_train_examples', 'all 6,920')}; wall {data['wall_s'] / 60:.1f} min for "
        f"`xaisweep run` (load {data['load_before']} before, {data['load_after']} after).",
        "",
        "| Configuration | on front | dev F1 % (objective) | dev Corr. (objective) | test F1 % | test F1 pos. % | "
        "test Corr. | test Corr. pooled | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in shown:
        ms = r["mean_sd"]
        name = r["label"] + (f" ×{r['copies']} identical grid cells" if r["copies"] > 1 else "")
        lines.append(f"| {name} | {'**yes**' if r['on_front'] else 'no'} | {_ms(ms['best/valid_f1'], 2, 100)} | "
                     f"{_ms(ms['best/valid_corr'], 3)} | {_ms(ms['test/f1'], 2, 100)} | "
                     f"{_ms(ms['test/f1_pos'], 2, 100)} | {_ms(ms['test/corr'], 3)} | "
                     f"{_ms(ms['test/corr_pooled'], 3)} | {r['n']} |")
    paired = [r for r in shown if "paired_vs_vanilla" in r and r["params"].get("regularizer") != "none"]
    if paired:
        lines += ["", "Paired by seed against vanilla (mean ± sd of the differences, seeds > 0 of n):", "",
                  "| Configuration | Δ dev F1 (points) | Δ dev Corr. | Δ test F1 (points) | Δ test F1 pos. | "
                  "Δ test Corr. | dominates vanilla (means) |", "|---|---|---|---|---|---|---|"]
        for r in paired:
            p = r["paired_vs_vanilla"]

            def cell(m, digits, scale=1.0):
                return f"{_ms(p[m]['mean_sd'], digits, scale)} ({p[m]['positive']}/{p[m]['n']})"
            lines.append(f"| {r['label']} | {cell('best/valid_f1', 2, 100)} | {cell('best/valid_corr', 3)} | "
                         f"{cell('test/f1', 2, 100)} | {cell('test/f1_pos', 2, 100)} | {cell('test/corr', 3)} | "
                         f"{'**yes**' if r['dominates_vanilla'] else 'no'} |")
    if any("fixed/test_corr" in r["mean_sd"] for r in shown):
        lines += ["", "The same models' selected epochs, and every method at the fixed epoch `corr_epoch` (test split; "
                  "the selected epochs differ between methods and seeds, and Corr. changes with training):", "",
                  "| Configuration | selected epochs (per seed) | fixed epoch | test F1 % @fixed | test Corr. @fixed |",
                  "|---|---|---|---|---|"]
        for r in shown:
            ms, per = r["mean_sd"], r["per_seed"]
            epochs = " / ".join(str(int(e)) if e == e else "–" for e in per["best_epoch"])
            fixed = sorted({int(e) for e in per.get("fixed/epoch", []) if e == e})
            lines.append(f"| {r['label']} | {epochs} | {', '.join(map(str, fixed)) or '–'} | "
                         f"{_ms(ms['fixed/test_f1'], 2, 100)} | {_ms(ms['fixed/test_corr'], 3)} |")
    hv = data.get("hypervolume_trials_final")
    lines += ["", f"Hypervolume of the configurations' means (dev F1 x dev Corr., reference = their nadir "
              f"{tuple(round(x, 4) for x in data['nadir_of_config_means'])}): "
              f"{data['hypervolume_config_means']:.3g}; `report`'s per-trial hypervolume after the last trial "
              f"(reference: the worst value per objective over the trials): "
              f"{'–' if hv is None else f'{hv:.3g}'}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stages", default="search,compare")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-train-examples", type=int, default=2000, help="training subset of the search stage")
    ap.add_argument("--search-configs", type=int, default=4)
    ap.add_argument("--compare-train-examples", type=int, default=2000, help="0: the full training split")
    ap.add_argument("--methods", default="none,attention_vat,attention_ivat,word_vat")
    ap.add_argument("--eps", default="0.3,1,3")
    ap.add_argument("--concurrent", type=int, default=2)
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--home", default=str(RESULTS / "pareto_home"))
    ap.add_argument("--tag", default="", help="suffix of the stage's files and sweep name (e.g. full)")
    ap.add_argument("--skip-run", action="store_true",
                    help="collect, best and report of the sweep an earlier call ran (same arguments)")
    ap.add_argument("--render", action="store_true", help="rebuild the markdown from results/pareto_<stage>.json")
    ap.add_argument("--markdown", default=None, help="also write the stages' tables to this file")
    args = ap.parse_args(argv)
    parts = []
    for stage in args.stages.split(","):
        if stage not in ("search", "compare"):
            ap.error(f"unknown stage {stage!r}: search, compare")
        if args.render:
            data = json.loads((RESULTS / f"pareto_{tag_of(stage, args)}.json").read_text())
            text = markdown(data)
            print(text)
        else:
            text = markdown(run_stage(stage, args))
        parts.append(text)
    if args.markdown:
        write_output(args.markdown, "\n\n".join(parts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
