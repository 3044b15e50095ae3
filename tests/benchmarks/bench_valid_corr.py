#!/usr/bin/env python
"""Benchmark: what ``valid/corr`` (Corr. on the validation split, every epoch) adds to an epoch.

On the local SST split (dev: 872 sentences) with the model of ``sweeps/attention_vat_sst.yaml`` (300-d words,
BiLSTM 128, Adam + AMSGrad), per regulariser, interleaved round by round: one training epoch, then on its weights

* ``corr``: :func:`xaicore.metrics.attention_gradient_correlations` as the trainable runs it (one forward and
  one backward pass per batch of 256, eval mode, fp32),
* ``corr_3pass``: the same numbers the way they were computed before (a no-grad forward for the attention, then
  :func:`xaicore.metrics.gradient_importance`: a prediction forward and a forward + backward per batch),
* ``evaluate``: the validation F1 / accuracy / ROC-AUC pass that every epoch already ran,
* ``rationales``: :func:`xaicore.faithfulness.rationale_metrics.attention_rationale_scores` (a no-grad
  forward; SST has no rationales, so this times the forward on fake all-token rationales: what a split with
  rationales pays).

Reported: medians over rounds; the ratios are medians of the per-round ratios. Usage (repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_valid_corr.py --rounds 3 \
        --regularizers none,attention_vat,word_vat --markdown tests/benchmarks/RESULTS_valid_corr.md
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

from _common import REPO, loadavg, machine_info

import numpy as np  # noqa: E402
import torch  # noqa: E402


def corr_3pass(model, batches, device):
    """Corr. as computed before the one-pass version (same values)."""
    from xaicore.metrics import gradient_importance, pearson
    from xaicore.models.protocol import forward_batch

    model.eval()
    values, all_a, all_t = [], [], []
    for batch in batches:
        batch = batch.to(device)
        with torch.no_grad():
            attn = forward_batch(model, batch).attention
        tau = gradient_importance(model, batch)
        for i in range(batch.size):
            m = batch.content_mask[i]
            if int(m.sum()) < 2:
                continue
            all_a.append(attn[i][m].detach().cpu())
            all_t.append(tau[i][m].detach().cpu())
            r = pearson(all_a[-1], all_t[-1])
            if r == r:
                values.append(r)
    return {"mean": float(np.mean(values)), "pooled": pearson(torch.cat(all_a), torch.cat(all_t))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--regularizers", default="none,attention_vat")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args(argv)
    data = REPO.parent / "shared" / "data" / "sst"
    if not data.is_dir():
        print(f"no SST data at {data}", file=sys.stderr)
        return 2
    from trainables.classifier.config import parse_config
    from trainables.classifier.setup import ClassifierSetup
    from xaicore.faithfulness.rationale_metrics import attention_rationale_scores
    from xaicore.metrics import attention_gradient_correlations

    torch.set_num_threads(args.threads)
    lines = [f"load before: {loadavg()}", f"machine: {machine_info(args.threads)}", ""]
    table = ["| regularizer | epoch (s) | evaluate (s) | corr (s) | corr, 3 passes (s) | rationales (s) "
             "| corr / epoch | corr / 3 passes |", "|---|---|---|---|---|---|---|---|"]
    for reg in args.regularizers.split(","):
        cfg = parse_config(dict(
            dataset=str(data / "{split}.tsv"), valid_split="dev", test_split="test", epochs=args.rounds,
            embedding_dim=300, hidden_dim=128, attention_dim=128, min_freq=2, optimizer="adam", amsgrad=True,
            weight_decay=1e-5, max_grad_norm=None, selection_metric="roc_auc", regularizer=reg, eps=1.0,
            word_eps=5.0, num_threads=args.threads, device=args.device))
        setup = ClassifierSetup(cfg)
        dev = setup.device
        fake = [dataclasses.replace(b, rationale_mask=b.attention_mask.clone()) for b in setup.valid_batches]

        def timed(f):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            out = f()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t, out

        rows = {k: [] for k in ("epoch", "evaluate", "corr", "corr_3pass", "rationales")}
        for r in range(args.rounds):
            setup.model.train()
            rows["epoch"].append(timed(lambda: [setup.trainer.step_on_device(b, u) for b, u in setup.epoch_batches(r)])[0])
            t, new = timed(lambda: attention_gradient_correlations(setup.model, setup.valid_batches, dev))
            rows["corr"].append(t)
            t, old = timed(lambda: corr_3pass(setup.model, setup.valid_batches, dev))
            rows["corr_3pass"].append(t)
            rows["evaluate"].append(timed(lambda: setup.evaluate(setup.model, "valid"))[0])
            rows["rationales"].append(timed(lambda: attention_rationale_scores(setup.model, fake, dev))[0])
            assert abs(new["mean"] - old["mean"]) < 1e-9 and abs(new["pooled"] - old["pooled"]) < 1e-9, (new, old)
        med = {k: statistics.median(v) for k, v in rows.items()}
        # ratios per round (the epoch and its passes run back to back), then their median
        per_epoch = statistics.median(c / e for c, e in zip(rows["corr"], rows["epoch"]))
        per_old = statistics.median(c / o for c, o in zip(rows["corr"], rows["corr_3pass"]))
        table.append(f"| {reg} | {med['epoch']:.2f} | {med['evaluate']:.3f} | {med['corr']:.3f} | "
                     f"{med['corr_3pass']:.3f} | {med['rationales']:.3f} | {100 * per_epoch:.1f}% | {per_old:.2f} |")
        print(table[-1], {k: [round(x, 3) for x in v] for k, v in rows.items()}, flush=True)
    lines += table + ["", f"load after: {loadavg()}; valid sentences {len(setup.splits.valid)}, "
                      f"{args.rounds} rounds, device {args.device}, {args.threads} thread(s)"]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
