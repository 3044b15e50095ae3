"""Benchmark: gender-bias mitigation by cancelling gender words during fine-tuning, on synthetic bios
(cancel-out.txt section 4, Table 2), through :func:`trainables.bios_debias.trial.run_trial`.

Data: :func:`xaicore.bias.bios.synthetic_bios` (8 professions in 4 pairs sharing their content words, planted
training female rates 0.9/0.1, 0.8/0.2, 0.7/0.3, 0.6/0.4 carried only by names, pronouns and titles;
gender-balanced test set). Model: a tiny BERT built from a config (hidden 64, 2 layers, word-level
vocabulary of the generator) whose encoder and MLM head are first trained as a masked LM on the
synthetic training texts with the ``mlm`` trainable; the same directory is the classifier's starting
point and the MLM of uniform marginalization (k = 2, section 4.1). 5 methods x 3 seeds.

    python tests/benchmarks/bench_bios_debias.py --markdown tests/benchmarks/RESULTS_bios_debias.md
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import REPO, loadavg, machine_info, mean_sd, write_output

METHODS = ["original", "zero_vector", "mask_token", "attention_mask", "uniform_marginalize"]
PAPER = {"original": (0.838, 5.06e-8, 0.861), "zero_vector": (0.804, 4.29e-7, 0.862),
         "mask_token": (0.701, 4.63e-5, 0.837), "attention_mask": (0.796, 6.91e-7, 0.863),
         "uniform_marginalize": (0.517, 5.80e-3, 0.805)}


def build_tiny_mlm(out: Path, *, seed: int = 0, epochs: int = 4, threads: int = 1) -> Path:
    """Word-level tokenizer + tiny BERT encoder from a config, then MLM-trained on synthetic bios texts."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from trainables.mlm.trial import run_trial as train_mlm
    from xaicore.bias.bios import synthetic_bios, synthetic_vocabulary

    enc = out / "encoder"
    enc.mkdir(parents=True, exist_ok=True)
    (enc / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                             + synthetic_vocabulary()) + "\n")
    BertTokenizerFast(vocab=str(enc / "vocab.txt")).save_pretrained(enc)
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=5 + len(synthetic_vocabulary()), hidden_size=64, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=128, max_position_embeddings=64)).save_pretrained(enc)
    texts = out / "texts.txt"
    texts.write_text("\n".join(synthetic_bios(300, seed=1000 + seed).texts) + "\n")
    res = train_mlm(dict(base_model=str(enc), texts=str(texts), heldout=200, epochs=epochs, batch_size=32, lr=2e-3,
                         warmup_ratio=0.0, max_length=48, save_dir=str(out / "mlm"), num_threads=threads),
                    lambda m, c: None)
    print(f"tiny MLM: held-out masked top-1 {res.metrics['heldout/accuracy']:.3f}")
    return out / "mlm"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--per-profession", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "tests" / "benchmarks" / "results" / "bios_debias"))
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--summarize", default=None, help="only rebuild the tables from a runs.jsonl of an earlier run")
    args = ap.parse_args()
    import json

    out = Path(args.out)
    t0 = time.perf_counter()
    if args.summarize:
        runs = [json.loads(line) for line in Path(args.summarize).read_text().splitlines() if line.strip()]
        return summarize(runs, args, out, t0)
    from trainables.bios_debias.trial import run_trial

    mlm = build_tiny_mlm(out, threads=args.threads)
    runs = []
    log = out / "runs.jsonl"
    log.write_text("")
    for seed in range(args.seeds):
        for method in METHODS:
            cfg = dict(dataset="synthetic_bios", model=str(mlm), local_files_only=True, cancel_out=method, k=2,
                       synthetic_per_profession=args.per_profession, epochs=args.epochs, batch_size=16, lr=1e-3,
                       warmup_ratio=0.1, max_length=48, seed=seed, num_threads=args.threads, step_log=False)
            t = time.perf_counter()
            res = run_trial(cfg, lambda m, c: None, out_dir=out / f"{method}_s{seed}")
            m = res.metrics
            runs.append({"method": method, "seed": seed, "r": m["bias/gap_r"], "p": m["bias/gap_p_value"],
                         "accuracy": m["test/accuracy"], "mean_abs_gap": m["bias/mean_abs_gap"],
                         "seconds": time.perf_counter() - t})
            print(runs[-1], flush=True)
            with log.open("a") as f:
                f.write(json.dumps(runs[-1]) + "\n")
    summarize(runs, args, out, t0)


def summarize(runs: list[dict], args, out: Path, t0: float) -> None:
    rows = []
    for method in METHODS:
        rs = [r for r in runs if r["method"] == method]
        r_m, r_s = mean_sd([x["r"] for x in rs])
        a_m, a_s = mean_sd([x["accuracy"] for x in rs])
        g_m, g_s = mean_sd([x["mean_abs_gap"] for x in rs])
        rows.append({"method": method, "r_mean": r_m, "r_sd": r_s, "acc_mean": a_m, "acc_sd": a_s,
                     "abs_gap_mean": g_m, "abs_gap_sd": g_s, "p_values": [x["p"] for x in rs],
                     "r_per_seed": [x["r"] for x in rs], "paper": PAPER[method]})
    orig = next(r for r in rows if r["method"] == "original")
    uni = next(r for r in rows if r["method"] == "uniform_marginalize")
    per_seed = [u < o for u, o in zip(uni["r_per_seed"], orig["r_per_seed"])]
    payload = {"runs": runs, "rows": rows, "uniform_below_original_per_seed": per_seed,
               "wall_seconds": time.perf_counter() - t0, "loadavg_end": loadavg(),
               "sizing": vars(args), "machine": machine_info(args.threads)}
    write_output(out / "bios_debias.json", payload)
    lines = ["| method | r (mean ± sd, 3 seeds) | r per seed | p-values | test acc | mean abs gap | paper r | paper p | paper acc |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pr, pp, pa = r["paper"]
        lines.append(f"| {r['method']} | {r['r_mean']:.3f} ± {r['r_sd']:.3f} | "
                     + ", ".join(f"{x:.3f}" for x in r["r_per_seed"]) + " | "
                     + ", ".join(f"{x:.1e}" for x in r["p_values"]) + f" | {r['acc_mean']:.3f} ± {r['acc_sd']:.3f} | "
                     f"{r['abs_gap_mean']:.3f} ± {r['abs_gap_sd']:.3f} | {pr} | {pp:.2e} | {pa} |")
    table = "\n".join(lines)
    print(table)
    print("uniform < original per seed:", per_seed)
    if args.markdown:
        write_output(args.markdown, "\n".join([
            "# Gender-bias mitigation on synthetic bios (cancel-out.txt section 4, Table 2)", "",
            f"Sizing: {args.per_profession} training bios per profession (8 professions), valid/test half that "
            f"(test gender-balanced), {args.epochs} epochs, tiny BERT (hidden 64, 2 layers) MLM-pretrained on the "
            f"synthetic texts, k = 2, {args.seeds} seeds, {args.threads} torch thread(s); "
            f"wall {payload['wall_seconds']:.0f} s. r = Pearson correlation between the per-profession TPR gap "
            "(female - male, test) and the training female rate.", "",
            table, "",
            f"Uniform marginalization below the original training's r, per seed: {per_seed}.", "",
        ]) + "\n")


if __name__ == "__main__":
    main()
