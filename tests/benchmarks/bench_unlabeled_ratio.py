#!/usr/bin/env python
"""Benchmark: does more unlabeled data help Attention VAT? (attention-vat.txt Table 1b and Fig. 2).

Fig. 2 of the paper plots the validation score of the VAT-based methods against the amount of
unlabeled data N_ul and reports gains up to N_ul ~ 7 N_l. Here the BiLSTM + additive-attention
classifier is trained in the reference setup (see ``bench_attention_vat_sst.py``) on the J&W SST
split with ``ratio`` = N_ul / N_l in ``--ratios`` (0 = supervised Attention VAT), plus a vanilla
row, for several seeds. The unlabeled pool is the sentences of the IMDB training reviews
(``../shared/data/imdb/train.tsv``, labels dropped, ``unlabeled_sentences: true``): in-domain
movie-review text, whereas the paper's pool (1% of One Billion Word) is general-domain text.
The pool of a run is a ``data_seed``-fixed subset of exactly round(ratio * N_l) sentences, so
the pools are the same across seeds and nested across ratios only up to the subset draw.

Reported per (method, ratio), mean ± sd over seeds: the selected epoch's dev ROC-AUC and dev
F1 (the validation score of Fig. 2), test positive-class F1 and Corr. (mean per sentence /
pooled), and paired-by-seed differences against ratio 0; plus the Spearman correlation between
ratio and each score per seed (the "more helps" trend).

Usage (from the repository root)::

    .venv/bin/python tests/benchmarks/bench_unlabeled_ratio.py --quick
    .venv/bin/python tests/benchmarks/bench_unlabeled_ratio.py --max-train-examples 2000 --epochs 4 \\
        --markdown tests/benchmarks/RESULTS_table1b_fig2_unlabeled.md
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path
from typing import Any, Optional

from _common import REPO, machine_info, mean_sd, write_output  # noqa: E402

import bench_attention_vat_sst as avs  # noqa: E402

PUBLISHED = {
    "source": "attention-vat.txt Table 1(b) (SST, N_ul = 50,000 sentences of 1% One Billion Word) and Fig. 2",
    "attention_vat_supervised": {"f1": 82.19, "corr": 0.878},
    "attention_vat_semi": {"f1": 83.18, "corr": 0.898},
    "attention_ivat_semi": {"f1": 83.22, "corr": 0.901},
    "vanilla": {"f1": 79.27, "corr": 0.852},
    "fig2_claim": "validation score of the VAT-based methods rises with N_ul up to about 7 N_l",
}


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ratios", default="0,1,2,4,7", help="N_ul / N_l values (0 = supervised)")
    p.add_argument("--methods", default="attention_vat", help="VAT-type regularizers swept over the ratios")
    p.add_argument("--vanilla", action=argparse.BooleanOptionalAction, default=True, help="add a vanilla row")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-train-examples", type=int, default=2000, help="N_l: labeled subset (data_seed 0); 0 = all")
    p.add_argument("--unlabeled", default=str(REPO.parent / "shared" / "data" / "imdb" / "train.tsv"))
    p.add_argument("--eps", type=float, default=1.0)
    p.add_argument("--vocab-from-unlabeled", action=argparse.BooleanOptionalAction, default=True,
                   help="vocabulary from labeled + pool text (the trainable's default); --no-...: labeled text only")
    p.add_argument("--min-freq", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="1 epoch, 300 labeled sentences, ratios 0,1, seed 0")
    p.add_argument("--out", default=str(REPO / "tests" / "benchmarks" / "results" / "unlabeled_ratio.json"))
    p.add_argument("--markdown", default=None)
    p.add_argument("--resume", action="store_true", help="keep the runs already in --out (a killed run's partial JSON)")
    p.add_argument("--render", action="store_true", help="no training: rebuild the tables (and --figure) from --out")
    p.add_argument("--figure", default=None, help="also plot Fig. 2 (score against N_ul / N_l) to this PNG")
    p.add_argument("--vocab-probe", action="store_true",
                   help="no training: per ratio, how the vocabulary built from labeled + pool text covers dev/test")
    return p.parse_args(argv)


def base_args(args: argparse.Namespace) -> argparse.Namespace:
    """The SST benchmark's argument namespace (reference setup) with this run's overrides."""
    b = avs.parse_args([])
    b.epochs, b.eps, b.min_freq, b.unlabeled = args.epochs, args.eps, args.min_freq, args.unlabeled
    b.max_train_examples = args.max_train_examples or None
    b.corr_epoch = None
    b.pretrained = None  # random init (the paper's Table 1 / Fig. 2 rows)
    return b


def config(args: argparse.Namespace, reg: str, ratio: float, seed: int) -> dict[str, Any]:
    b = base_args(args)
    b.ratio = ratio
    cfg = avs.trial_config(b, reg, seed, semi=ratio > 0)
    if ratio > 0:
        cfg["unlabeled_sentences"] = True
        cfg["vocab_from_unlabeled"] = args.vocab_from_unlabeled
    return cfg


def spearman(x: list[float], y: list[float]) -> float:
    import scipy.stats

    return float(scipy.stats.spearmanr(x, y).statistic) if len(set(y)) > 1 else float("nan")


def summarise(runs: list[dict[str, Any]], seeds: list[int], knob: str = "ratio", base: float = 0.0) -> dict[str, Any]:
    """Rows per (method, value of ``knob``), paired-by-seed differences against ``knob == base`` of the same
    method, and the per-seed Spearman rho between the knob and each score (vanilla rows are never swept)."""
    fields = ("best_valid", "valid_f1_best", "test_f1_pos", "test_corr", "test_corr_pooled", "wall_s", "best_epoch")
    rows: dict[str, Any] = {}
    for r in runs:
        rows.setdefault((r["method"], r[knob]), []).append(r)
    out = {}
    for (method, value), rs in sorted(rows.items(), key=lambda kv: (kv[0][0] != "none", kv[0][0], kv[0][1])):
        out[f"{method}@{value:g}"] = {"method": method, "value": value, "n": len(rs),
                                      **{f: mean_sd(x[f] for x in rs) for f in fields}}
    trends = {}
    for method in sorted({r["method"] for r in runs if r["method"] != "none"}):
        by_seed = {s: sorted((r for r in runs if r["method"] == method and r["seed"] == s), key=lambda r: r[knob])
                   for s in seeds}
        t: dict[str, Any] = {}
        for f in ("best_valid", "test_f1_pos", "test_corr"):
            rhos = [spearman([r[knob] for r in rs], [r[f] for r in rs]) for rs in by_seed.values() if len(rs) > 2]
            t[f"spearman_{f}"] = mean_sd(rhos)
            diffs = {}
            for value in sorted({r[knob] for r in runs if r["method"] == method and r[knob] != base}):
                d = []
                for rs in by_seed.values():
                    b0 = [r for r in rs if r[knob] == base]
                    cur = [r for r in rs if r[knob] == value]
                    if b0 and cur:
                        d.append(cur[0][f] - b0[0][f])
                diffs[f"{value:g}"] = {"mean_sd": mean_sd(d), "positive": sum(x > 0 for x in d), "n": len(d)}
            t[f"diff_vs_base_{f}"] = diffs
        trends[method] = t
    return {"rows": out, "trends": trends}


def pm(v: tuple[float, float], scale: float = 1.0, fmt: str = ".2f") -> str:
    return f"{scale * v[0]:{fmt}} ± {scale * v[1]:{fmt}}"


def format_markdown(summary: dict[str, Any], knob_label: str = "N_ul / N_l", base: float = 0.0) -> str:
    lines = [
        f"| Method | {knob_label} | dev ROC-AUC (selected) | dev F1 pos. % | test F1 pos. % | Corr. mean | Corr. pooled |"
        " best epoch | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["rows"].values():
        label = avs.LABELS.get(row["method"], row["method"])
        lines.append(
            f"| {label} | {row['value']:g} | {pm(row['best_valid'], 1, '.4f')} | {pm(row['valid_f1_best'], 100)} | "
            f"{pm(row['test_f1_pos'], 100)} | {pm(row['test_corr'], 1, '.3f')} | {pm(row['test_corr_pooled'], 1, '.3f')} | "
            f"{pm(row['best_epoch'], 1, '.1f')} | {row['wall_s'][0]:.0f} |")
    lines += ["", f"Paired by seed, each {knob_label} minus {knob_label} = {base:g} of the same method (mean ± sd, seeds > 0):", "",
              f"| Method | {knob_label} | Δ dev ROC-AUC | Δ test F1 pos. (points) | Δ Corr. mean |", "|---|---|---|---|---|"]
    for method, t in summary["trends"].items():
        for value in t["diff_vs_base_best_valid"]:
            cells = []
            for f, scale, fmt in (("best_valid", 1, "+.4f"), ("test_f1_pos", 100, "+.2f"), ("test_corr", 1, "+.3f")):
                d = t[f"diff_vs_base_{f}"][value]
                cells.append(f"{scale * d['mean_sd'][0]:{fmt}} ± {scale * d['mean_sd'][1]:.{fmt[-2]}f} ({d['positive']}/{d['n']})")
            lines.append(f"| {avs.LABELS.get(method, method)} | {value} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(f"Spearman rho({knob_label}, score) per seed, mean ± sd: dev ROC-AUC {pm(t['spearman_best_valid'], 1, '.2f')}, "
                     f"test F1 {pm(t['spearman_test_f1_pos'], 1, '.2f')}, Corr. {pm(t['spearman_test_corr'], 1, '.2f')}")
    return "\n".join(lines)


def plot_fig2(runs: list[dict[str, Any]], path: str) -> None:
    """Fig. 2 of the paper: the validation score (dev ROC-AUC of the selected epoch) and the test F1 against
    N_ul / N_l, mean ± sd over seeds, vanilla as a horizontal reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, field, scale, title in ((axes[0], "best_valid", 1, "dev ROC-AUC (selected epoch)"),
                                    (axes[1], "test_f1_pos", 100, "test F1 pos. %")):
        for method in sorted({r["method"] for r in runs if r["method"] != "none"}):
            xs = sorted({r["ratio"] for r in runs if r["method"] == method})
            ms = [mean_sd(scale * r[field] for r in runs if r["method"] == method and r["ratio"] == x) for x in xs]
            ax.errorbar(xs, [m for m, _ in ms], yerr=[sd for _, sd in ms], marker="o", capsize=3,
                        label=avs.LABELS.get(method, method))
        van = mean_sd(scale * r[field] for r in runs if r["method"] == "none")
        if van[0] == van[0]:
            ax.axhline(van[0], color="grey", linestyle="--", label="Vanilla")
        ax.set_xlabel("N_ul / N_l")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def vocab_probe(args: argparse.Namespace, ratios: list[float]) -> str:
    """Per ratio, the data side of a trial (no training): vocabulary size, and the share of dev / test
    word tokens that are UNK, or in the vocabulary only because of the unlabeled pool (never in the
    labeled training subset, so their embeddings get no cross-entropy gradient; with ratio 0 they are UNK,
    whose embedding is trained on the labeled singletons)."""
    from collections import Counter

    from trainables.classifier.config import parse_config
    from trainables.classifier.setup import ClassifierSetup
    from xaicore.data.vocab import word_tokenize

    lines = ["| N_ul / N_l | pool sentences | vocabulary | dev UNK % | dev pool-only % | test UNK % | test pool-only % |",
             "|---|---|---|---|---|---|---|"]
    for ratio in ratios:
        setup = ClassifierSetup(parse_config(config(args, "attention_vat", ratio, 0)))
        labeled = Counter(t for text in setup.splits.train.texts for t in word_tokenize(text))
        cells = []
        for split in (setup.splits.valid, setup.splits.test):
            toks = [t for text in split.texts for t in word_tokenize(text)]
            unk = sum(t not in setup.vocab for t in toks)
            pool_only = sum(t in setup.vocab and labeled[t] == 0 for t in toks)
            cells += [f"{100 * unk / len(toks):.1f}", f"{100 * pool_only / len(toks):.1f}"]
        n_pool = 0 if setup.unlabeled is None else len(setup.unlabeled)
        lines.append(f"| {ratio:g} | {n_pool} | {len(setup.vocab)} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.vocab_probe:
        table = vocab_probe(args, [float(r) for r in args.ratios.split(",")])
        print(table)
        if args.markdown:
            write_output(args.markdown, table + "\n")
        return 0
    if args.render:
        import json

        data = json.loads(Path(args.out).read_text())
        runs = data["runs"]
        seeds = sorted({r["seed"] for r in runs})
        table = format_markdown(summarise(runs, seeds))
        print(table)
        if args.markdown:
            write_output(args.markdown, table + "\n")
        if args.figure:
            plot_fig2(runs, args.figure)
        return 0
    if args.quick:
        args.epochs, args.max_train_examples, args.ratios, args.seeds = 1, 300, "0,1", "0"
    seeds = [int(s) for s in args.seeds.split(",")]
    ratios = [float(r) for r in args.ratios.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    for need in (REPO.parent / "shared" / "data" / "sst" / "train.tsv", Path(args.unlabeled)):
        if not need.exists():
            print(f"missing data: {need}", file=sys.stderr)
            return 2
    plan = [(("none", 0.0)) for _ in [0] if args.vanilla] + [(m, r) for m in methods for r in ratios]
    runs: list[dict[str, Any]] = []
    if args.resume and Path(args.out).is_file():
        import json

        runs = [r for r in json.loads(Path(args.out).read_text())["runs"]
                if r["seed"] in seeds and r["ratio"] in ratios + [0.0]]
        print(f"resuming: {len(runs)} runs kept from {args.out}", flush=True)
    done = {(r["method"], r["ratio"], r["seed"]) for r in runs}
    t_start = time.perf_counter()
    for seed in seeds:  # seed-major: background load hits every row alike
        for reg, ratio in plan:
            if (reg, ratio, seed) in done:
                continue
            cfg = config(args, reg, ratio, seed)
            print(f"[seed {seed}] {reg} ratio {ratio:g} ...", flush=True)
            r = avs.run_one(cfg, verbose=False)
            best = r["best_epoch"] - 1
            r.update(method=reg, ratio=ratio, seed=seed, valid_f1_best=r["valid_f1_per_epoch"][best])
            runs.append(r)
            print(f"[seed {seed}] {reg} ratio {ratio:g}: dev ROC-AUC {r['best_valid']:.4f} test F1 pos "
                  f"{100 * r['test_f1_pos']:.2f} corr {r['test_corr']:.3f} epoch {r['best_epoch']} "
                  f"({r['wall_s']:.0f} s, load {r['loadavg_1min_start']}->{r['loadavg_1min_end']})", flush=True)
            write_output(args.out, {"partial": True, "runs": runs})
    summary = summarise(runs, seeds)
    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": time.perf_counter() - t_start, "machine": machine_info(1), "seeds": seeds, "ratios": ratios,
        "epochs": args.epochs, "max_train_examples": args.max_train_examples, "unlabeled": args.unlabeled,
        "config_example": config(args, methods[0], ratios[-1], seeds[0]), "published": PUBLISHED,
    }
    table = format_markdown(summary)
    print(table)
    write_output(args.out, {"meta": meta, "summary": summary, "runs": runs})
    if args.markdown:
        write_output(args.markdown, table + "\n")
    if args.figure:
        plot_fig2(runs, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
