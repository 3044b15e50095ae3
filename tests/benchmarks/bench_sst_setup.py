#!/usr/bin/env python
"""Benchmark: why is vanilla with random word vectors below the paper's 79.27 F1 on SST?

Trains the vanilla BiLSTM + additive-attention classifier on the Jain & Wallace SST split
(``../shared/data/sst``) under the reference setup of Kitada & Iyatomi's code
(shunk031/attention-meets-perturbation ``config/base_bc.jsonnet``: 300-d words, BiLSTM 128,
Adam with AMSGrad and L2 weight decay 1e-5, batch 32, 8 epochs, best epoch on validation
ROC-AUC, no dropout) and one-factor variations of it (optimiser/selection, embedding size,
vocabulary min count, lr, epochs). Reports test positive-class F1 (the paper's F1, AllenNLP
``F1Measure(positive_label=1)``), macro F1, the selected epoch and dev ROC-AUC per epoch.

Usage::

    python tests/benchmarks/bench_sst_setup.py --variants paper,old_optim --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _common import REPO, mean_sd, minilm_dir, write_output  # noqa: F401

PAPER = dict(
    embedding_dim=300, hidden_dim=128, attention_dim=128, dropout=0.0, lr=1e-3, batch_size=32, epochs=8,
    optimizer="adam", amsgrad=True, weight_decay=1e-5, selection_metric="roc_auc", min_freq=1,
    max_grad_norm=None,
)
VARIANTS = {
    "paper": {},
    "old_optim": dict(optimizer="adamw", amsgrad=False, weight_decay=0.0, selection_metric="f1", max_grad_norm=5.0),
    "emb128": dict(embedding_dim=128),
    "min_freq2": dict(min_freq=2),
    "lr3e-4": dict(lr=3e-4),
    "epochs4": dict(epochs=4),
    "clip5": dict(max_grad_norm=5.0),
    "minilm": dict(pretrained_embeddings="MINILM"),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default="paper")
    p.add_argument("--seeds", default="0")
    p.add_argument("--data-dir", default=str(next((d for d in (REPO / ".." / "shared" / "data" / "sst",
                                                                  REPO / ".." / ".." / "shared" / "data" / "sst")
                                                       if d.is_dir()), REPO / ".." / "shared" / "data" / "sst")))
    p.add_argument("--out", default=str(REPO / "tests" / "benchmarks" / "results" / "sst_setup.json"))
    args = p.parse_args(argv)
    import torch

    from trainables.classifier.trial import run_trial

    torch.set_num_threads(1)
    data = Path(args.data_dir).resolve()
    if not (data / "train.tsv").is_file():
        print(f"ERROR: {data}/train.tsv missing (see ../shared/data/sst/PROVENANCE.md)", file=sys.stderr)
        return 2
    rows = []
    for name in args.variants.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            cfg = dict(PAPER, **VARIANTS[name])
            if cfg.get("pretrained_embeddings") == "MINILM":
                cfg["pretrained_embeddings"] = minilm_dir()
            cfg.update(dataset=str(data / "{split}.tsv"), valid_split="dev", test_split="test", seed=seed,
                       num_threads=1, device="cpu", heatmaps=0, correlation=False)
            t0 = time.perf_counter()
            hist = []
            res = run_trial(cfg, lambda m, _c: hist.append(m))
            m = res.metrics
            row = {
                "variant": name, "seed": seed, "test_f1_pos": 100 * m["test/f1_pos"], "test_f1_macro": 100 * m["test/f1"],
                "test_acc": 100 * m["test/accuracy"], "best_epoch": m["best_epoch"],
                "valid_roc_auc": [h.get("valid/roc_auc") for h in res.history],
                "valid_f1_pos": [h.get("valid/f1_pos") for h in res.history], "wall_s": time.perf_counter() - t0,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| Variant | n | Test F1 (pos. class) % | Macro F1 % | Acc. % | best epochs |\n|---|---|---|---|---|---|")
    for name in args.variants.split(","):
        rs = [r for r in rows if r["variant"] == name]
        f, fs = mean_sd(r["test_f1_pos"] for r in rs)
        mf, mfs = mean_sd(r["test_f1_macro"] for r in rs)
        a, as_ = mean_sd(r["test_acc"] for r in rs)
        print(f"| {name} | {len(rs)} | {f:.2f} ± {fs:.2f} | {mf:.2f} ± {mfs:.2f} | {a:.2f} ± {as_:.2f} | "
              f"{[r['best_epoch'] for r in rs]} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"paper_setup": PAPER, "variants": VARIANTS, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
