"""Benchmark: restorability of cancelled tokens on the SST test split (cancel-out.txt section 3, Figs. 3-4).

Runs :func:`trainables.restorability.trial.run_trial` (the sweep's own code) with the
offline MLM built by ``sweeps/mlm.yaml`` (default ``/work/mlm-minilm``: the
first 3 layers of all-MiniLM-L6-v2 + an MLM head, fine-tuned here) on
``../shared/data/sst/test.tsv`` (1,821 sentences), ``k = 10``, every method, and
writes the table (mean / median / share > 0.5 of the original token's
probability and of the maximum probability, time per method), Figs. 3-4 as
PNG, JSON and Markdown. The paper's order of mean original-token probability
(Fig. 3): Original ~ Attention Mask > Mask Token ~ Weighted > Uniform > Zero Vector.

    python tests/benchmarks/bench_restorability.py --n-tokens 9000 --threads 2 \
        --markdown tests/benchmarks/RESULTS_restorability.md
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from _common import REPO, loadavg, machine_info, write_output

PAPER_ORDER = ["original", "attention_mask", "mask_token", "weighted_marginalize", "uniform_marginalize",
               "zero_vector"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlm", default="/work/mlm-minilm")
    ap.add_argument("--data", default=str(REPO.parent.parent / "shared" / "data" / "sst" / "{split}.tsv"))
    ap.add_argument("--n-tokens", type=int, default=9000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=str(REPO / "tests" / "benchmarks" / "results" / "restorability"))
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--mlm-note", default="")
    ap.add_argument("--progress-every", type=int, default=10, help="write partial results every N batches")
    args = ap.parse_args()
    data = args.data
    if not Path(data.replace("{split}", "test")).is_file():
        data = "/work/shared/data/sst/{split}.tsv"

    from trainables.restorability.trial import run_trial

    out = Path(args.out)
    cfg = dict(mlm=args.mlm, local_files_only=True, dataset=data, split="test", n_tokens=args.n_tokens, k=args.k,
               batch_size=args.batch_size, num_threads=args.threads, methods=PAPER_ORDER, seed=0)
    load0 = loadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    out.mkdir(parents=True, exist_ok=True)

    def progress(done, total, values, seconds):  # partial results of a long run (random subset of the tokens)
        if done % args.progress_every and done != total:
            return
        import numpy as np
        import torch

        from xaicore.cancel_out.restorability import summarize
        part = {m: {q: summarize(torch.cat(v).numpy()) for q, v in d.items()} for m, d in values.items()}
        write_output(out / "restorability_sst_partial.json", {
            "batches_done": done, "batches": total, "tokens_done": int(part[PAPER_ORDER[0]]["p_original"]["n"]),
            "wall_seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "loadavg": loadavg(), "seconds": dict(seconds), "summary": part,
            "p_max_max": {m: float(np.max(torch.cat(d["p_max"]).numpy())) for m, d in values.items()}})

    result = run_trial(cfg, lambda m, c: None, out_dir=out, progress=progress)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    load1 = loadavg()
    m = result.metrics
    rows = []
    for meth in PAPER_ORDER:
        rows.append({"method": meth, **{f"{q}_{s}": m[f"restore/{q}_{s}/{meth}"] for q in ("p_original", "p_max")
                                        for s in ("mean", "median", "share_above_0.5")},
                     "seconds": m[f"restore/seconds/{meth}"]})
    measured_order = [r["method"] for r in sorted(rows, key=lambda r: -r["p_original_mean"])]
    payload = {"config": cfg, "wall_seconds": wall, "cpu_seconds": cpu, "loadavg_start": load0, "loadavg_end": load1,
               "n_tokens": m["restore/n_tokens"], "n_sentences": m["restore/n_sentences"], "rows": rows,
               "measured_order": measured_order, "paper_order": PAPER_ORDER,
               "machine": machine_info(args.threads, ["transformers"])}
    write_output(out / "restorability_sst.json", payload)
    head = "| method | p(orig) mean | median | share > 0.5 | max p mean | median | share > 0.5 | seconds |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['p_original_mean']:.3f} | {r['p_original_median']:.3f} | "
                     f"{r['p_original_share_above_0.5']:.3f} | {r['p_max_mean']:.3f} | {r['p_max_median']:.3f} | "
                     f"{r['p_max_share_above_0.5']:.3f} | {r['seconds']:.0f} |")
    table = "\n".join(lines)
    print(table)
    print("measured order (mean p(orig)):", " > ".join(measured_order))
    print(f"wall {wall:.0f} s, CPU {cpu:.0f} s (this process, all threads) for {m['restore/n_tokens']} tokens, "
          f"load average {load0} -> {load1}")
    if args.markdown:
        md = Path(args.markdown)
        figs = md.parent / "figures"
        figs.mkdir(exist_ok=True)
        for name in ("fig3_p_original.png", "fig4_p_max.png"):
            shutil.copy(out / name, figs / f"restorability_{name}")
        write_output(md, "\n".join([
            "# Restorability on SST (cancel-out.txt section 3, Figs. 3-4)", "",
            f"Tokens: {m['restore/n_tokens']} sampled (seed 0) from {m['restore/n_sentences']} sentences of the SST "
            f"test split; k = {args.k}; MLM `{args.mlm}` {args.mlm_note}; {args.threads} torch threads; "
            f"wall {wall:.0f} s, CPU {cpu:.0f} s (load average {load0} at start, {load1} at end: the 2 cores were "
            "shared with other jobs).", "",
            table, "",
            "Measured order of mean p(original): " + " > ".join(measured_order), "",
            "Paper (Fig. 3): original ~ attention_mask > mask_token ~ weighted_marginalize > uniform_marginalize "
            "> zero_vector.", "",
            "![Fig. 3](figures/restorability_fig3_p_original.png)", "",
            "![Fig. 4](figures/restorability_fig4_p_max.png)", "",
        ]) + "\n")


if __name__ == "__main__":
    main()
