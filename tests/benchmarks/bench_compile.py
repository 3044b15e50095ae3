"""Issue 18, item 5, the ``compile: true`` part: eager vs torch.compile (inductor) on this CPU
(``RESULTS_compile.md``). CPU numbers are only indicative of what a GPU sees.

Two workloads, each built twice through the trainables' own setups (``compile: false`` and ``compile: true``,
same seed and data), run interleaved (eager epoch, compiled epoch, eager, compiled, ...), one thread:

* ``bilstm``: the BiLSTM vanilla classifier (paper sizes 300 / 128 unless ``--small``) for one epoch over a
  subset of local SST train (``--max-train``), then its valid evaluation;
* ``minilm``: a few fine-tuning steps of the packaged all-MiniLM-L6-v2 (``finetune``, SST sentences,
  ``max_length`` 64, batch 16) and its evaluation.

Per repeat: the mean training step time over the steps that compiled nothing (after warm-up), the
steps that did compile (their time above the steady step: the compile time, backend share from
:class:`xaicore.compilation.CompileCounter`), the graphs compiled (``train/recompiles`` of the epoch),
the evaluation time and the pad efficiency of the batches (multiple-of-8 padding when compiled).

Run: ``nice -n 10 python tests/benchmarks/bench_compile.py [--repeats 3] [--max-train 1500] [--steps 12]``
(``--device cuda`` on a GPU: precision stays ``auto``, i.e. bf16 autocast there; the step time is read after the
step's loss reaches the host, so it includes the device work).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import REPO, loadavg, machine_info, minilm_dir, write_output

DATA = next((d for d in (REPO / ".." / "shared" / "data", REPO / ".." / ".." / "shared" / "data") if d.is_dir()),
            REPO / ".." / "shared" / "data")


def epoch_stats(setup, epoch: int, max_steps=None) -> dict:
    """One training epoch step by step (``Trainer.step_on_device``), then the valid evaluation, timed."""
    import torch

    from xaicore.data.batching import pad_counts

    trainer, counter = setup.trainer, setup.trainer.compiled
    steady, compiling, real, total = [], [], 0, 0
    graphs0 = counter.graphs if counter is not None else 0
    backend0 = counter.seconds if counter is not None else 0.0
    for i, (batch, _) in enumerate(setup.epoch_batches(epoch)):
        if max_steps is not None and i >= max_steps:
            break
        r, t = pad_counts(batch)
        real, total = real + r, total + t
        before = counter.graphs if counter is not None else 0
        t0 = time.perf_counter()
        parts = trainer.step_on_device(batch)
        float(parts["loss"])  # the step's work is done (CPU: already; a device: synchronised)
        dt = time.perf_counter() - t0
        (compiling if counter is not None and counter.graphs > before else steady).append(dt)
    t0 = time.perf_counter()
    with torch.no_grad():
        setup.evaluate(setup.model, "valid")
    eval_s = time.perf_counter() - t0
    warm = steady[2:] if len(steady) > 4 else steady  # the first eager steps warm the allocator
    step = statistics.fmean(warm)
    return {"steps": len(steady) + len(compiling), "step_s": step, "step_median_s": statistics.median(warm),
            "compiling_steps": len(compiling), "compile_s": sum(max(0.0, c - step) for c in compiling),
            "backend_s": (counter.seconds - backend0) if counter is not None else 0.0,
            "recompiles": (counter.graphs - graphs0) if counter is not None else 0,
            "eval_s": eval_s, "pad_efficiency": real / total}


def bilstm_setups(args):
    from trainables.classifier.config import parse_config
    from trainables.classifier.setup import ClassifierSetup

    sizes = dict(embedding_dim=32, hidden_dim=32, attention_dim=32) if args.small else \
        dict(embedding_dim=300, hidden_dim=128, attention_dim=128)
    base = dict(dataset=str(DATA / "sst" / "{split}.tsv"), valid_split="dev", max_train_examples=args.max_train,
                regularizer="none", epochs=args.repeats, heatmaps=0, correlation=False, device=args.device, **sizes)
    return {mode: ClassifierSetup(parse_config({**base, "compile": mode == "compiled"}))
            for mode in ("eager", "compiled")}


def minilm_setups(args):
    from trainables.finetune.config import parse_config
    from trainables.finetune.setup import FinetuneSetup

    base = dict(model=minilm_dir(), local_files_only=True, dataset=str(DATA / "sst" / "{split}.tsv"),
                valid_split="dev", max_train_examples=16 * args.steps, max_eval_examples=128, max_length=64,
                batch_size=16, epochs=args.repeats, device=args.device)
    return {mode: FinetuneSetup(parse_config({**base, "compile": mode == "compiled"}))
            for mode in ("eager", "compiled")}


def run(name, setups, args) -> list[dict]:
    rows = []
    for rep in range(args.repeats):
        for mode in ("eager", "compiled"):  # interleaved
            row = {"workload": name, "mode": mode, "repeat": rep, "load": loadavg(),
                   **epoch_stats(setups[mode], rep)}
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            rows.append(row)
    return rows


def summary(rows) -> list[dict]:
    out = []
    for name in dict.fromkeys(r["workload"] for r in rows):
        eager = [r for r in rows if r["workload"] == name and r["mode"] == "eager"]
        comp = [r for r in rows if r["workload"] == name and r["mode"] == "compiled"]
        e = statistics.fmean(r["step_s"] for r in eager)
        c = statistics.fmean(r["step_s"] for r in comp[1:] or comp)  # after the compiling first epoch
        out.append({"workload": name, "eager_step_ms": 1e3 * e, "compiled_step_ms": 1e3 * c, "ratio": c / e,
                    "compile_s_first_epoch": comp[0]["compile_s"], "backend_s_first_epoch": comp[0]["backend_s"],
                    "recompiles_per_epoch": [r["recompiles"] for r in comp],
                    "eager_eval_s": statistics.fmean(r["eval_s"] for r in eager),
                    "compiled_eval_s": statistics.fmean(r["eval_s"] for r in comp[1:] or comp),
                    "pad_eff_eager": eager[0]["pad_efficiency"], "pad_eff_compiled": comp[0]["pad_efficiency"],
                    "loads": [r["load"] for r in eager + comp]})
    return out


def markdown(summ, rows, info, args) -> str:
    lines = ["# torch.compile (`compile: true`) on this CPU (issue 18, item 5)", "",
             f"Run: `python tests/benchmarks/bench_compile.py --repeats {args.repeats} --max-train {args.max_train} "
             f"--steps {args.steps}{' --small' if args.small else ''}`, one thread, eager and compiled epochs "
             f"interleaved. torch {info.get('torch')}, {info.get('processor')}, {info.get('cpu_count')} cores shared "
             "with other jobs (1-minute load beside each row). **CPU numbers are only indicative**: inductor's CPU "
             "code is not what a GPU runs, and the BiLSTM's LSTMs are never compiled (dynamo leaves `nn.LSTM` "
             "eager).", "",
             "| workload | eager step (ms) | compiled step (ms) | compiled / eager | compile time, 1st epoch (s) "
             "| backend share (s) | graphs compiled per epoch | eval eager / compiled (s) | pad eff. eager / compiled |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summ:
        lines.append(f"| {s['workload']} | {s['eager_step_ms']:.1f} | {s['compiled_step_ms']:.1f} | {s['ratio']:.2f} "
                     f"| {s['compile_s_first_epoch']:.1f} | {s['backend_s_first_epoch']:.1f} "
                     f"| {', '.join(str(int(x)) for x in s['recompiles_per_epoch'])} "
                     f"| {s['eager_eval_s']:.2f} / {s['compiled_eval_s']:.2f} "
                     f"| {s['pad_eff_eager']:.3f} / {s['pad_eff_compiled']:.3f} |")
    lines += ["", "Per epoch (interleaved, in run order):", "",
              "| workload | mode | repeat | load | steps | step (ms) | compiling steps | compile (s) | graphs | eval (s) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['mode']} | {r['repeat']} | {r['load']} | {r['steps']} "
                     f"| {1e3 * r['step_s']:.1f} | {r['compiling_steps']} | {r['compile_s']:.1f} | {r['recompiles']} "
                     f"| {r['eval_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="epochs per mode (the first compiled one compiles)")
    ap.add_argument("--max-train", type=int, default=1500, help="SST training sentences of the BiLSTM epoch")
    ap.add_argument("--steps", type=int, default=12, help="MiniLM fine-tuning steps per epoch (batch 16)")
    ap.add_argument("--small", action="store_true", help="a 32-d BiLSTM instead of the paper's 300 / 128")
    ap.add_argument("--only", choices=("bilstm", "minilm"), default=None)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: the same script on a lent GPU")
    ap.add_argument("--out", default=str(REPO / "tests" / "benchmarks" / "results" / "compile"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    info = machine_info(1, ["transformers"])
    rows = []
    if args.only in (None, "bilstm"):
        rows += run("BiLSTM vanilla, SST", bilstm_setups(args), args)
    if args.only in (None, "minilm") and minilm_dir() is not None:
        rows += run("MiniLM finetune, SST", minilm_setups(args), args)
    summ = summary(rows)
    out = Path(args.out)
    write_output(out.with_suffix(".json"), {"machine": info, "args": vars(args), "summary": summ, "rows": rows})
    write_output(out.with_suffix(".md"), markdown(summ, rows, info, args))


if __name__ == "__main__":
    main()
