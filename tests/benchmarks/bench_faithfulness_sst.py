#!/usr/bin/env python
"""Benchmark: faithfulness of four feature-map methods on SST (faithfulness-evaluation.txt, Tables 3-5),
plus IntegratedGradients throughput with internal batching vs a per-step loop.

For each seed the BiLSTM + additive-attention classifier is trained on the
sentence-level binary SST split (train 6920 / dev 872 / test 1821,
``<data-dir>/{train,dev,test}.tsv``, header ``text<TAB>label``) with
:func:`trainables.classifier.trial.train_classifier`, then
:func:`trainables.faithfulness.evaluate.evaluate_faithfulness` computes, for Saliency,
Integrated Gradients (50 Gauss-Legendre steps, zero baseline), Input x Gradient
and the attention weights (maps for the *predicted* class):

* Table 3 - mean deletion fraction until the predicted label flips (tokens
  replaced by PAD in descending map order; lower = more faithful);
* Table 4 - test F1 of the context-free weak learner pooled with the frozen,
  unit-L2 feature map, plus the Uniform and Random baselines (higher = better);
* Table 5 - mean over examples of the median (100 shuffles) total variation
  distance of the weak learner's output when the map is shuffled (higher = the
  map matters more);
* extras: ERASER AOPC comprehensiveness / sufficiency and Kendall tau between methods.

The tables are printed next to the paper's SST column with one verdict line per
table: "IG and IxG beat Saliency and Attention" = both IG and IxG are better
than both Saliency and Attention (on the mean over seeds).

IG throughput (same trained model, first ``--tp-examples`` test examples,
n_steps = 50): ``integrated_gradients(..., internal_batch_size=None)`` (all
B x 50 interpolated inputs in one forward/backward) vs the per-step loop
(``internal_batch_size = B``: one forward/backward per step), interleaved
call by call (which mode goes first alternates from call to call), at the
trial's batch size (``--tp-batch-size``, default 32, 200 examples) and a sweep
(``--tp-sweep``: B = 1, 4 and 200 = one batch, like the 256-example test
batches of ``ClassifierSetup`` that the faithfulness pipeline feeds IG). A
short profile (top ops of both modes, and a packed-vs-padded ``nn.LSTM``
backward micro-benchmark) records why the ratio is what it is.

Speed note: by default the faithfulness evaluation runs IG with
``internal_batch_size=--ig-internal-batch-size`` (256 expanded inputs per pass)
instead of the pipeline's ``None``: the attributions are identical up to float
rounding (see ``xaicore.faithfulness.attribution.integrated_gradients``) and on CPU this is
several times faster (see the throughput section); ``--ig-internal-batch-size 0``
runs the pipeline unchanged.

Defaults (~20-25 min on 2 shared CPU cores, 1 torch thread): 1 seed, 4 epochs
(best dev-F1 epoch kept), all 1821 test sentences, 2000 weak-learner training
sentences (the pipeline's default), all 872 dev sentences, 100 shuffles.

Usage (from the repository root)::

    .venv/bin/python tests/benchmarks/bench_faithfulness_sst.py \
        --out tests/benchmarks/results/faithfulness_sst.json --markdown tests/benchmarks/RESULTS_faithfulness.md
    .venv/bin/python tests/benchmarks/bench_faithfulness_sst.py --quick     # small smoke run (~2 min)

Exit status: 0 ok, 2 data missing, 3 a target was missed (``--strict`` only).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

from _common import MINILM_PACKAGE, REPO, loadavg, machine_info, mean_sd, minilm_dir, write_output  # noqa: E402, F401

METHODS = ("saliency", "integrated_gradients", "input_x_gradient", "attention")
LABELS = {
    "saliency": "Saliency",
    "integrated_gradients": "Integrated Grad",
    "input_x_gradient": "Input X Grad",
    "attention": "Attention",
    "uniform": "Uniform",
    "random": "Random",
}
# faithfulness-evaluation.txt, SST column of Tables 2-5.
PAPER = {
    "source": "faithfulness-evaluation.txt (LSTM + attention, binary SST 6920/872/1821), SST column",
    "model": {"accuracy": 0.766, "f1": 0.759},  # Table 2
    "deletion": {"saliency": 0.508, "integrated_gradients": 0.271, "input_x_gradient": 0.292, "attention": 0.545},
    "weak_f1": {"saliency": 0.669, "integrated_gradients": 0.725, "input_x_gradient": 0.667, "attention": 0.592,
                "uniform": 0.728, "random": 0.572},
    "shuffle_tvd": {"saliency": 0.093, "integrated_gradients": 0.314, "input_x_gradient": 0.240,
                    "attention": 0.167},
}
TABLES = (
    ("deletion", "Table 3 - mean deletion fraction until the label flips", "lower"),
    ("weak_f1", "Table 4 - weak-learner test F1", "higher"),
    ("shuffle_tvd", "Table 5 - shuffle TVD (median of 100 shuffles, mean over examples)", "higher"),
)
EXTRAS = ("comprehensiveness", "sufficiency")
TARGET_RATIO = 5.0


# ----------------------------------------------------------------------------- helpers








# ----------------------------------------------------------------------------- config
def trial_config(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "dataset": str(Path(args.data_dir) / "{split}.tsv"),
        "valid_split": "dev",
        "test_split": "test",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "embedding_dim": args.embedding_dim,
        "hidden_dim": args.hidden_dim,
        "attention_dim": args.attention_dim,
        "dropout": args.dropout,
        "seed": seed,
        "num_threads": args.num_threads,
        "device": "cpu",
        "correlation": False,
        "heatmaps": 0,
        "methods": list(METHODS),
        "faith_metrics": ["deletion", "weak_learner", "shuffle_tvd", "eraser", "agreement"],
        "eval_examples": args.eval_examples,
        "ig_steps": 50,
        "ig_method": "gausslegendre",
        "ig_baseline": "zeros",
        "ig_internal_batch_size": args.ig_internal_batch_size or None,
        "cancel_out": "pad",
        "deletion_step": 1,
        "tvd_permutations": args.tvd_permutations,
        "weak_epochs": args.weak_epochs,
        "weak_train_examples": args.weak_train_examples,
    }
    if args.pretrained:
        cfg["pretrained_embeddings"] = args.pretrained
    if args.max_train_examples:
        cfg["max_train_examples"] = args.max_train_examples
    return cfg


# ----------------------------------------------------------------------------- one seed
def run_seed(args: argparse.Namespace, seed: int, verbose: bool = True):
    from trainables.classifier.trial import train_classifier
    from trainables.faithfulness.config import parse_config
    from trainables.faithfulness.evaluate import evaluate_faithfulness, take_batches

    cfg = parse_config(trial_config(args, seed))

    def report(metrics: dict[str, Any], _ckpt: Any) -> None:
        if verbose:
            print(f"    epoch {metrics['epoch']}: loss {metrics.get('train/loss', float('nan')):.4f} "
                  f"valid F1 {metrics.get('valid/f1', float('nan')):.4f}", flush=True)

    t0 = time.perf_counter()
    trained = train_classifier(cfg, report)
    train_s = time.perf_counter() - t0
    last = trained.history[-1] if trained.history else {}
    if verbose:
        print(f"    epoch {last.get('epoch')}: loss {last.get('train/loss', float('nan')):.4f} "
              f"valid F1 {last.get('valid/f1', float('nan')):.4f}  (best epoch {trained.final['best_epoch']}, "
              f"test F1 {trained.final['test/f1']:.4f}, acc {trained.final['test/accuracy']:.4f}; "
              f"trained in {train_s:.0f} s)", flush=True)
    setup = trained.setup
    if args.weak_valid_examples:
        setup.valid_batches = take_batches(setup.valid_batches, args.weak_valid_examples)
    n_test = min(cfg.eval_examples, len(setup.splits.test))
    n_valid = sum(b.size for b in setup.valid_batches)

    t1 = time.perf_counter()
    metrics, table, _ = evaluate_faithfulness(setup, cfg, out_dir=None)
    eval_s = time.perf_counter() - t1
    if verbose:
        print(f"    faithfulness evaluation ({n_test} test / {min(cfg.weak_train_examples, len(setup.splits.train))} "
              f"weak-train / {n_valid} dev examples) in {eval_s:.0f} s", flush=True)
    row = {
        "seed": seed,
        "test_f1": float(trained.final["test/f1"]),
        "test_accuracy": float(trained.final["test/accuracy"]),
        "best_epoch": int(trained.final["best_epoch"]),
        "valid_f1_per_epoch": [float(h["valid/f1"]) for h in trained.history],
        "eval_test_examples": n_test,
        "weak_valid_examples": n_valid,
        "train_s": train_s,
        "faith_eval_s": eval_s,
        "table": table,
        "agreement": {k.split("/", 1)[1]: v for k, v in metrics.items()
                      if k.startswith(("faith/kendall_tau/", "faith/pearson/"))},
    }
    return row, trained


# ----------------------------------------------------------------------------- IG throughput
def ig_throughput(trained, args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved timing of batched IG (internal_batch_size=None) vs the per-step loop (= B)."""
    import torch

    from trainables.faithfulness.evaluate import take_batches
    from xaicore.faithfulness.attribution import integrated_gradients
    from xaicore.data.batching import batches

    setup, model = trained.setup, trained.setup.model.eval()
    n_total = min(args.tp_examples, len(setup.splits.test))

    def make(batch_size: int, n: int):
        return take_batches(list(batches(setup.splits.test, setup.encoder, batch_size=batch_size, shuffle=False, seed=0)), n)

    def call(batch, mode: str):
        ibs = None if mode == "batched" else batch.size
        t = time.perf_counter()
        out = integrated_gradients(model, batch, n_steps=50, internal_batch_size=ibs)
        return time.perf_counter() - t, out

    # warm-up (allocator, captum import)
    call(make(4, 4)[0], "batched")
    call(make(4, 4)[0], "loop")

    def measure(batch_size: int, n: int, reps: int) -> dict[str, Any]:
        bl = make(batch_size, n)
        n = sum(b.size for b in bl)
        times = {"batched": 0.0, "loop": 0.0}
        per_rep = []
        max_diff = 0.0
        load0 = loadavg()
        k = 0
        for rep in range(reps):
            rep_t = {"batched": 0.0, "loop": 0.0}
            for b in bl:
                outs = {}
                order = ("batched", "loop") if k % 2 == 0 else ("loop", "batched")  # alternate who goes first
                k += 1
                for mode in order:
                    dt, outs[mode] = call(b, mode)
                    rep_t[mode] += dt
                if rep == 0:
                    max_diff = max(max_diff, float((outs["batched"] - outs["loop"]).abs().max()))
            per_rep.append({m: n / rep_t[m] for m in rep_t} | {"ratio": rep_t["loop"] / rep_t["batched"]})
            for m in times:
                times[m] += rep_t[m]
        res = {
            "batch_size": batch_size,
            "examples": n,
            "reps": reps,
            "batched_ex_per_s": n * reps / times["batched"],
            "loop_ex_per_s": n * reps / times["loop"],
            "ratio_batched_over_loop": times["loop"] / times["batched"],
            "per_rep": per_rep,
            "rows_per_pass": {"batched": f"{batch_size}x50", "loop": batch_size},
            "max_abs_diff_batched_vs_loop": max_diff,
            "loadavg_1min_start": load0,
            "loadavg_1min_end": loadavg(),
        }
        print(f"    B={batch_size:>3} ({n} ex, {reps} rep): batched {res['batched_ex_per_s']:6.2f} ex/s  "
              f"loop {res['loop_ex_per_s']:6.2f} ex/s  ratio {res['ratio_batched_over_loop']:.2f}x  "
              f"(max |diff| {max_diff:.1e})", flush=True)
        return res

    head = measure(min(args.tp_batch_size, n_total), n_total, args.tp_reps)
    sweep = []
    for b in args.tp_sweep:
        if b == head["batch_size"]:
            continue
        sweep.append(measure(b, min(n_total, max(16, 8 * b)), 1))
    out = {
        "n_steps": 50,
        "method": "gausslegendre",
        "num_threads": torch.get_num_threads(),
        "headline": head,
        "sweep": sweep,
        "target_ratio": TARGET_RATIO,
        "target_met_headline": head["ratio_batched_over_loop"] >= TARGET_RATIO,
        "best_ratio_any_batch_size": max([head["ratio_batched_over_loop"]] + [s["ratio_batched_over_loop"]
                                                                                for s in sweep]),
    }
    if args.profile:
        out["profile"] = profile_ig(model, make, setup)
    return out


def profile_ig(model, make, setup) -> dict[str, Any]:
    """Why the ratio is what it is: top ops of both modes and packed vs padded LSTM backward."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence
    from torch.profiler import ProfilerActivity, profile

    from xaicore.faithfulness.attribution import integrated_gradients

    batch = make(16, 16)[0]
    ops: dict[str, Any] = {}
    for mode, ibs in (("batched", None), ("loop", batch.size)):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t = time.perf_counter()
            integrated_gradients(model, batch, n_steps=50, internal_batch_size=ibs)
            wall = time.perf_counter() - t
        avgs = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in avgs) or 1.0
        top = sorted(avgs, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
        ops[mode] = {
            "wall_s_under_profiler": wall,
            "top_self_cpu": [{"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count} for e in top],
            "fill_share": sum(e.self_cpu_time_total for e in avgs if e.key == "aten::fill_") / total,
            "gemm_share": sum(e.self_cpu_time_total for e in avgs if e.key in ("aten::mm", "aten::addmm")) / total,
        }
        print(f"    profile {mode} (B=16): aten::fill_ {100 * ops[mode]['fill_share']:.0f}% of self CPU, "
              f"mm/addmm {100 * ops[mode]['gemm_share']:.0f}%; top: "
              + ", ".join(f"{d['op']} {100 * d['share']:.0f}%" for d in ops[mode]["top_self_cpu"][:4]), flush=True)

    # packed vs padded BiLSTM forward/backward per row, as rows per pass grow (the model's encoder sizes)
    enc = model.encoder_fw  # one direction of the BiLSTM: packed vs padded input
    gen = torch.Generator().manual_seed(0)
    lstm_rows = []
    T = 41
    E = enc.input_size
    for rows in (16, 800, 3200):
        x = torch.randn(rows, T, E, generator=gen, requires_grad=True)
        lengths = torch.randint(5, T + 1, (rows,), generator=gen)
        lengths[0] = T
        rec = {"rows": rows, "T": T}
        for kind in ("packed", "padded"):
            t = time.perf_counter()
            with torch.enable_grad():
                if kind == "packed":
                    out, _ = enc(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
                    y = out.data.sum()
                else:
                    out, _ = enc(x)
                    y = out.sum()
                t1 = time.perf_counter()
                torch.autograd.grad(y, x)
            t2 = time.perf_counter()
            rec[f"{kind}_fwd_ms_per_row"] = 1e3 * (t1 - t) / rows
            rec[f"{kind}_bwd_ms_per_row"] = 1e3 * (t2 - t1) / rows
        lstm_rows.append(rec)
        print(f"    nn.LSTM rows={rows:>4} T={T}: packed fwd {rec['packed_fwd_ms_per_row']:.2f} / bwd "
              f"{rec['packed_bwd_ms_per_row']:.2f} ms/row; padded fwd {rec['padded_fwd_ms_per_row']:.2f} / bwd "
              f"{rec['padded_bwd_ms_per_row']:.2f} ms/row", flush=True)
    return {"ig_ops_B16": ops, "lstm_packed_vs_padded": lstm_rows}


# ----------------------------------------------------------------------------- summary
def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"model": {}, "tables": {}, "extras": {}, "agreement": {}}
    for key in ("test_f1", "test_accuracy"):
        m, s = mean_sd([r[key] for r in rows])
        summary["model"][key] = {"mean": m, "sd": s}
    for metric, _title, _better in TABLES:
        methods = list(METHODS) + (["uniform", "random"] if metric == "weak_f1" else [])
        summary["tables"][metric] = {}
        for method in methods:
            vals = [r["table"].get(method, {}).get(metric, float("nan")) for r in rows]
            m, s = mean_sd(vals)
            summary["tables"][metric][method] = {"mean": m, "sd": s, "per_seed": vals}
    for metric in EXTRAS:
        summary["extras"][metric] = {method: mean_sd([r["table"][method].get(metric, float("nan")) for r in rows])[0]
                                     for method in METHODS}
    keys = sorted({k for r in rows for k in r["agreement"]})
    summary["agreement"] = {k: mean_sd([r["agreement"].get(k, float("nan")) for r in rows])[0] for k in keys}
    return summary


def verdict(values: dict[str, float], better: str) -> dict[str, Any]:
    """Do both IG and IxG beat both Saliency and Attention? (plus the 4 pairwise comparisons)."""
    good, bad = ("integrated_gradients", "input_x_gradient"), ("saliency", "attention")
    pairs = {}
    for g in good:
        for b in bad:
            pairs[f"{g}>{b}"] = values[g] < values[b] if better == "lower" else values[g] > values[b]
    return {"yes": all(pairs.values()), "pairs_won": sum(pairs.values()), "pairs": pairs}


def format_tables(summary: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    lines: list[str] = []
    verdicts: dict[str, Any] = {}
    n_seeds = len(rows)
    for metric, title, better in TABLES:
        tab = summary["tables"][metric]
        lines.append(f"{title} ({better} = better)")
        who = f"mean +- sd over {n_seeds} seeds" if n_seeds > 1 else f"seed {rows[0]['seed']}"
        lines.append(f"| method | ours ({who}) | paper SST |")
        lines.append("|---|---:|---:|")
        for method, v in tab.items():
            ours = f"{v['mean']:.3f}" + (f" +- {v['sd']:.3f}" if n_seeds > 1 else "")
            lines.append(f"| {LABELS[method]} | {ours} | {PAPER[metric][method]:.3f} |")
        ours_v = verdict({m: tab[m]["mean"] for m in METHODS}, better)
        paper_v = verdict(PAPER[metric], better)
        per_seed = [verdict({m: tab[m]["per_seed"][i] for m in METHODS}, better)["yes"] for i in range(n_seeds)]
        verdicts[metric] = {"ours": ours_v, "paper": paper_v, "ours_per_seed": per_seed}
        lines.append(f"verdict: IG and IxG beat Saliency and Attention: {'yes' if ours_v['yes'] else 'no'} "
                     f"({ours_v['pairs_won']}/4 pairwise; paper: {'yes' if paper_v['yes'] else 'no'}, "
                     f"{paper_v['pairs_won']}/4)"
                     + (f"; per seed: {sum(per_seed)}/{n_seeds} yes" if n_seeds > 1 else ""))
        lines.append("")
    ex = summary["extras"]
    lines.append("Extras - ERASER AOPC (bins 1/5/10/20/50 %, PAD replacement) and mean Kendall tau with IG")
    lines.append("| method | comprehensiveness (higher = better) | sufficiency (lower = better) | Kendall tau vs IG |")
    lines.append("|---|---:|---:|---:|")
    ag = summary["agreement"]
    for method in METHODS:
        tau = ag.get(f"kendall_tau/{method}__integrated_gradients",
                     ag.get(f"kendall_tau/integrated_gradients__{method}"))
        tau_s = "-" if method == "integrated_gradients" or tau is None else f"{tau:.3f}"
        lines.append(f"| {LABELS[method]} | {ex['comprehensiveness'][method]:.3f} | {ex['sufficiency'][method]:.3f} "
                     f"| {tau_s} |")
    return "\n".join(lines), verdicts


def format_throughput(tp: dict[str, Any]) -> str:
    lines = ["IntegratedGradients throughput (n_steps=50, Gauss-Legendre, "
             f"{tp['num_threads']} torch thread(s)); ratio = batched / per-step loop",
             "| batch size B | examples | batched (internal_batch_size=None) ex/s | per-step loop "
             "(internal_batch_size=B) ex/s | ratio |",
             "|---:|---:|---:|---:|---:|"]
    for r in [tp["headline"]] + tp["sweep"]:
        mark = " (headline)" if r is tp["headline"] else ""
        lines.append(f"| {r['batch_size']}{mark} | {r['examples']} x {r['reps']} | {r['batched_ex_per_s']:.2f} | "
                     f"{r['loop_ex_per_s']:.2f} | {r['ratio_batched_over_loop']:.2f}x |")
    lines.append("")
    lines.append(f"target >= {tp['target_ratio']:.0f}x at the headline batch size: "
                 f"{'met' if tp['target_met_headline'] else 'NOT met'}; best ratio over all batch sizes "
                 f"{tp['best_ratio_any_batch_size']:.2f}x")
    prof = tp.get("profile")
    if prof:
        lines.append("")
        lines.append("Profile (torch.profiler, one IG call on a B=16 batch; share of self CPU time):")
        for mode, d in prof["ig_ops_B16"].items():
            lines.append(f"    {mode:<7}: aten::fill_ {100 * d['fill_share']:.0f}%, "
                         f"mm/addmm {100 * d['gemm_share']:.0f}%; "
                         "top " + ", ".join(f"{o['op'].replace('autograd::engine::evaluate_function: ', 'bwd:')} "
                                            f"{100 * o['share']:.0f}%" for o in d["top_self_cpu"][:5]))
        lines.append("nn.LSTM (the model's BiLSTM) forward / backward cost per row vs rows per pass, T=41:")
        for r in prof["lstm_packed_vs_padded"]:
            lines.append(f"    rows={r['rows']:>4}: packed {r['packed_fwd_ms_per_row']:.2f} / "
                         f"{r['packed_bwd_ms_per_row']:.2f} "
                         f"ms/row; padded (no packing) {r['padded_fwd_ms_per_row']:.2f} / "
                         f"{r['padded_bwd_ms_per_row']:.2f} ms/row")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "sst"))
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (first-seed, first-seed + 1, ...)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--eval-examples", type=int, default=1821, help="test examples evaluated (first N of 1821)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--embedding-dim", type=int, default=128, help="ignored with --init minilm (384)")
    p.add_argument("--hidden-dim", type=int, default=128)
    p.add_argument("--attention-dim", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--init", choices=["random", "minilm"], default="random",
                   help="word vectors: random N(0,1) or the MiniLM sub-word input embeddings (384-d)")
    p.add_argument("--max-train-examples", type=int, default=0)
    p.add_argument("--weak-train-examples", type=int, default=2000)
    p.add_argument("--weak-valid-examples", type=int, default=0, help="0 = all 872 dev sentences")
    p.add_argument("--weak-epochs", type=int, default=10)
    p.add_argument("--tvd-permutations", type=int, default=100)
    p.add_argument("--ig-internal-batch-size", type=int, default=256,
                   help="IG expanded inputs per pass inside the faithfulness evaluation (0 = pipeline default None)")
    p.add_argument("--num-threads", type=int, default=1, help="torch threads (the trial config's default is 1)")
    p.add_argument("--tp-examples", type=int, default=200, help="test examples for the IG throughput")
    p.add_argument("--tp-batch-size", type=int, default=32,
                   help="headline batch size of the throughput (the trial's batch_size)")
    p.add_argument("--tp-reps", type=int, default=1, help="repetitions of the headline (calls alternate anyway)")
    p.add_argument("--tp-sweep", default="1,4,200",
                   help="further batch sizes (1 rep, max(16, 8B) examples each; 200 = the pipeline's test "
                        "batching); '' = none")
    p.add_argument("--no-profile", dest="profile", action="store_false")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--quick", action="store_true", help="1 epoch, small subsets (smoke test)")
    p.add_argument("--out", default=str(REPO / "tests" / "benchmarks" / "results" / "faithfulness_sst.json"))
    p.add_argument("--markdown", default=None, help="also write the tables as Markdown here")
    p.add_argument("--strict", action="store_true", help="exit 3 when the >= 5x throughput target is missed")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="no run: combine the seeds of these result files into --out (and --markdown)")
    args = p.parse_args(argv)
    args.tp_sweep = [int(x) for x in args.tp_sweep.split(",") if x.strip()]
    if args.quick:
        args.epochs, args.max_train_examples = 1, args.max_train_examples or 1500
        args.eval_examples, args.weak_train_examples, args.weak_valid_examples = 64, 128, 64
        args.tvd_permutations, args.weak_epochs = 20, 3
        args.tp_examples, args.tp_batch_size, args.tp_reps, args.tp_sweep = 16, 16, 1, [1, 4]
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out, args.markdown)
    data = Path(args.data_dir)
    missing = [s for s in ("train", "dev", "test") if not (data / f"{s}.tsv").exists()]
    if missing:
        print(f"SST data missing in {data}: {missing}", file=sys.stderr)
        return 2
    args.pretrained = None
    if args.init == "minilm":
        args.pretrained = minilm_dir()
        if args.pretrained is None:
            print(f"--init minilm: package {MINILM_PACKAGE} not installed", file=sys.stderr)
            return 2
        args.embedding_dim = 384

    import torch

    torch.set_num_threads(args.num_threads)
    started = _dt.datetime.now(_dt.timezone.utc)
    t_all = time.perf_counter()
    load_start = loadavg()
    print(f"faithfulness benchmark on SST ({data}); seeds {args.seeds}; epochs {args.epochs}; init {args.init}; "
          f"E={args.embedding_dim} H={args.hidden_dim}; {args.num_threads} thread(s); load {load_start}", flush=True)

    rows, tp = [], None
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        print(f"seed {seed}: training", flush=True)
        row, trained = run_seed(args, seed)
        rows.append(row)
        if seed == args.first_seed and not args.skip_throughput:
            print(f"IG throughput (seed-{seed} model):", flush=True)
            tp = ig_throughput(trained, args)
        del trained

    summary = summarise(rows)
    tables_txt, verdicts = format_tables(summary, rows)
    m = summary["model"]
    header = (f"Model: BiLSTM({args.hidden_dim}) + additive attention, E={args.embedding_dim} "
              f"({'MiniLM sub-word init' if args.pretrained else 'random init'}), dropout {args.dropout}, "
              f"lr {args.lr}, {args.epochs} epochs, batch {args.batch_size}, best-dev-F1 epoch; "
              f"test F1 {m['test_f1']['mean']:.3f} acc {m['test_accuracy']['mean']:.3f} "
              f"(paper Table 2: F1 {PAPER['model']['f1']:.3f} acc {PAPER['model']['accuracy']:.3f}); "
              f"evaluated on {rows[0]['eval_test_examples']} test sentences")
    print()
    print(header)
    print()
    print(tables_txt)
    tp_txt = format_throughput(tp) if tp else ""
    if tp_txt:
        print()
        print(tp_txt)
    wall = time.perf_counter() - t_all
    print(f"\ntotal wall time {wall / 60:.1f} min; load average {load_start} -> {loadavg()}")

    result = {
        "benchmark": "faithfulness_sst",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine_info(args.num_threads, ("captum",)),
        "args": {k: v for k, v in vars(args).items()},
        "trial_config": trial_config(args, 0),
        "ig_internal_batch_size_in_eval": args.ig_internal_batch_size or None,
        "per_seed": rows,
        "summary": summary,
        "verdicts": verdicts,
        "paper": PAPER,
        "throughput": tp,
        "wall_s": wall,
        "loadavg_1min": {"start": load_start, "end": loadavg()},
        "printed": {"header": header, "tables": tables_txt, "throughput": tp_txt},
    }
    write_output(args.out, result)
    if args.markdown:
        write_output(args.markdown, markdown(result))
    if args.strict and tp is not None and not tp["target_met_headline"]:
        return 3
    return 0


def markdown(result: dict[str, Any]) -> str:
    p = result["printed"]
    seeds = ", ".join(str(r["seed"]) for r in result["per_seed"])
    runs = result.get("wall_s_per_run") or [result["wall_s"]]
    wall = " + ".join(f"{w / 60:.1f}" for w in runs) + " min"
    wall += f" ({len(runs)} separate runs)" if len(runs) > 1 else ""
    lines = [
        "# Faithfulness evaluation on SST (faithfulness-evaluation.txt Tables 3-5) + IG throughput",
        "",
        f"Generated by `tests/benchmarks/bench_faithfulness_sst.py` on {result['date']} "
        f"({result['machine'].get('cpu_model', result['machine']['processor'])}, {result['machine']['cpu_count']} "
        f"cores shared with other jobs, torch {result['machine']['torch']}, {result['machine']['torch_threads']} "
        f"thread(s)); wall time {wall}; seeds {seeds}; JSON: "
        f"`{result['args']['out']}`" + (f" (merged from {', '.join('`' + m + '`' for m in result['merged_from'])})"
                                       if result.get("merged_from") else "") + ".",
        "",
        p["header"] + ".",
        "",
        p["tables"].replace("verdict:", "\n**verdict:**").replace("Table ", "### Table "),
        "",
    ]
    if p["throughput"]:
        table, _, prof = p["throughput"].partition("\n\nProfile")
        lines += ["### " + table, ""]
        if prof:
            lines += ["```", "Profile" + prof, "```", ""]
    return "\n".join(lines)


def merge(paths: list[str], out: str, markdown_path: Optional[str]) -> int:
    """Combine the per-seed rows of several result JSONs (same settings, different seeds) into one summary."""
    results = [json.loads(Path(x).read_text()) for x in paths]
    rows = [r for res in results for r in res["per_seed"]]
    summary = summarise(rows)
    tables_txt, verdicts = format_tables(summary, rows)
    tp = next((res["throughput"] for res in results if res.get("throughput")), None)
    base = results[0]
    m = summary["model"]
    header = base["printed"]["header"].split("; test F1")[0] + (
        f"; test F1 {m['test_f1']['mean']:.3f} +- {m['test_f1']['sd']:.3f} acc {m['test_accuracy']['mean']:.3f} "
        f"(paper Table 2: F1 {PAPER['model']['f1']:.3f} acc {PAPER['model']['accuracy']:.3f}); "
        f"evaluated on {rows[0]['eval_test_examples']} test sentences; seeds {[r['seed'] for r in rows]} "
        f"(throughput from seed {rows[0]['seed']})")
    tp_txt = format_throughput(tp) if tp else ""
    print(header, "", tables_txt, "", tp_txt, sep="\n")
    merged = dict(base)
    merged.update({
        "args": dict(base["args"], out=out), "per_seed": rows, "summary": summary, "verdicts": verdicts,
        "throughput": tp, "wall_s": sum(res["wall_s"] for res in results), "merged_from": paths,
        "wall_s_per_run": [res["wall_s"] for res in results],
        "printed": {"header": header, "tables": tables_txt, "throughput": tp_txt},
    })
    write_output(out, merged)
    if markdown_path:
        write_output(markdown_path, markdown(merged))
    return 0


if __name__ == "__main__":
    sys.exit(main())
