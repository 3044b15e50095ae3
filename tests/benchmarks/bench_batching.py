"""Issue 18, the batching part: padding of random vs length-grouped batches on the real local data, and the
BiLSTM Attention VAT epoch time on SST with both (``RESULTS_throughput.md``).

Pad efficiency = real / padded tokens over one epoch's training batches (batch 32, seed 0), the evaluation
batches (256, unsorted vs length-sorted) alongside. Random = ``bucket_pool: null`` (before issue 18), grouped =
the default ``bucket_pool: 100``. SST and IMDB go through the classifier's word encoder (IMDB at the default
``max_length`` 256 and uncapped), RTE pairs through the finetune path's HF encoder (packaged MiniLM
tokenizer, ``max_length`` 128). The epoch time runs ``trainables.classifier.trial.run_trial`` for one epoch
(paper sizes: 300-d embeddings, 128 hidden), old / new interleaved, ``--repeats`` each, one thread.

Run: ``nice -n 10 python tests/benchmarks/bench_batching.py [--repeats 2] [--max-train N]``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _common import REPO, machine_info, write_output  # noqa: F401

DATA = next((d for d in (REPO / ".." / "shared" / "data", REPO / ".." / ".." / "shared" / "data") if d.is_dir()),
            REPO / ".." / "shared" / "data")


def efficiency(bs) -> float:
    from xaicore.data.batching import pad_counts

    real = total = 0
    for b in bs:
        r, t = pad_counts(b)
        real, total = real + r, total + t
    return real / total


def pad_rows() -> list[dict]:
    from trainables.classifier.config import parse_config
    from trainables.classifier.setup import EVAL_BATCH_SIZE, ClassifierSetup
    from xaicore.data.batching import batches, encode_dataset, eval_batches
    from xaicore.data.loading import TextDataset
    from xaicore.data.vocab import HFEncoder

    rows = []

    def measure(name, train, evald, enc):
        t0 = time.perf_counter()
        et, ee = encode_dataset(train, enc), encode_dataset(evald, enc)
        enc_s = time.perf_counter() - t0
        row = {"data": name, "n_train": len(train), "n_eval": len(evald), "encode_s": round(enc_s, 2)}
        for label, pool in (("random", None), ("grouped", 100)):
            row[f"train_{label}"] = efficiency(batches(et, enc, batch_size=32, shuffle=True, seed=0, bucket_pool=pool))
        row["eval_unsorted"] = efficiency(eval_batches(ee, enc, batch_size=EVAL_BATCH_SIZE, sort=False))
        row["eval_sorted"] = efficiency(eval_batches(ee, enc, batch_size=EVAL_BATCH_SIZE, sort=True))
        print(json.dumps(row), flush=True)
        rows.append(row)

    base = dict(embedding_dim=8, hidden_dim=8, attention_dim=8, heatmaps=0, correlation=False, device="cpu")
    sst = ClassifierSetup(parse_config({**base, "dataset": str(DATA / "sst" / "{split}.tsv"), "valid_split": "dev"}))
    measure("SST (word, 256)", sst.splits.train, sst.splits.test, sst.encoder)
    imdb_cfg = {**base, "dataset": str(DATA / "imdb" / "{split}.tsv"), "valid_split": None,
                "columns": {"text": "text", "label": "label"}}
    for cap in (256, None):
        imdb = ClassifierSetup(parse_config({**imdb_cfg, "max_length": cap}))
        measure(f"IMDB (word, {cap or 'uncapped'})", imdb.splits.train, imdb.splits.test, imdb.encoder)

    from transformers import AutoTokenizer

    from _common import minilm_dir

    def rte(split):
        rs = [json.loads(x) for x in (DATA / "rte" / f"{split}.jsonl").read_text().splitlines() if x.strip()]
        return TextDataset(texts=tuple(r["premise"] for r in rs), text_pairs=tuple(r["hypothesis"] for r in rs),
                           labels=tuple(int(r["label_id"]) for r in rs), name=f"rte:{split}")

    enc = HFEncoder(AutoTokenizer.from_pretrained(minilm_dir()), max_length=128)
    measure("RTE pairs (MiniLM, 128)", rte("train"), rte("validation"), enc)
    return rows


def epoch_rows(repeats: int, max_train) -> list[dict]:
    import torch

    from trainables.classifier.trial import run_trial

    torch.set_num_threads(1)
    cfg = dict(embedding_dim=300, hidden_dim=128, attention_dim=128, batch_size=32, epochs=1, lr=1e-3,
               regularizer="attention_vat", dataset=str(DATA / "sst" / "{split}.tsv"), valid_split="dev",
               heatmaps=0, correlation=False, device="cpu", num_threads=1, max_train_examples=max_train)
    rows = []
    for rep in range(repeats):
        for label, pool in (("old (random)", None), ("new (grouped)", 100)):
            t0 = time.perf_counter()
            res = run_trial({**cfg, "bucket_pool": pool}, lambda m, c: None)
            m = res.metrics
            row = {"run": label, "repeat": rep, "trial_s": round(time.perf_counter() - t0, 2),
                   "step_time_ms": round(1000 * m["train/step_time"], 2),
                   "train_epoch_s": round(m["train/step_time"] * -(-(max_train or 6920) // 32), 2),
                   "pad_efficiency": round(m["train/pad_efficiency"], 4), "test_f1": round(m["test/f1"], 4)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def spec_config() -> dict:
    """The trial config of ``sweeps/attention_vat_sst.yaml`` (its ``config`` block) with the data path
    resolved against the repository."""
    import yaml

    cfg = dict(yaml.safe_load((REPO / "sweeps" / "attention_vat_sst.yaml").read_text())["config"])
    cfg["dataset"] = str(DATA / "sst" / "{split}.tsv")
    return cfg


def vat_rows(seeds: int, epochs: int, eps: float, lam: float) -> list[dict]:
    """Attention VAT on the whole SST at the spec's settings, random vs grouped batches interleaved per seed:
    step time (the trainer's ``train/step_time``, mean over every step of every epoch) and the test metrics
    of the best (dev ROC-AUC) epoch."""
    import torch

    from trainables.classifier.trial import run_trial

    torch.set_num_threads(1)
    cfg = {**spec_config(), "regularizer": "attention_vat", "eps": eps, "lam": lam, "epochs": epochs,
           "heatmaps": 0, "correlation": False, "corr_epoch": None, "device": "cpu", "num_threads": 1}
    rows = []
    for seed in range(seeds):
        for label, pool in (("random", None), ("grouped", 100)):
            steps = []
            t0 = time.perf_counter()
            res = run_trial({**cfg, "seed": seed, "bucket_pool": pool},
                            lambda m, c: steps.append(m["train/step_time"]))
            m = res.metrics
            steps.append(m["train/step_time"])  # the last epoch (finish, not report)
            row = {"arm": label, "seed": seed, "trial_s": round(time.perf_counter() - t0, 2),
                   "step_time_ms": round(1000 * sum(steps) / len(steps), 2),
                   "train_epoch_s": round(sum(steps) / len(steps) * 217, 2), "load": os.getloadavg()[0],
                   "pad_efficiency": round(m["train/pad_efficiency"], 4), "best_epoch": m.get("best_epoch"),
                   **{k: round(float(v), 4) for k, v in m.items() if k.startswith("test/") and k != "test/loss"}}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def interleaved_epoch_rows(epochs: int) -> dict:
    """One epoch of Attention VAT per arm (the spec's settings, eps = lam = 1, seed 0), the arms' steps
    interleaved one by one (random, grouped, random-before, grouped-before, ...) so that the machine's load
    hits every arm alike. "before" = this code with the two speed-ups of the step undone: PyTorch's default
    (foreach) Adam instead of the fused one, and the encoder's reversal by ``gather`` (``scatter_add``
    backward) instead of the involutive ``index_select``."""
    import torch

    from trainables.classifier.config import parse_config
    from trainables.classifier.setup import ClassifierSetup
    from xaicore.models.lstm_attention import _reverse_within_length

    torch.set_num_threads(1)
    base = {**spec_config(), "regularizer": "attention_vat", "eps": 1.0, "lam": 1.0, "epochs": epochs,
            "heatmaps": 0, "correlation": False, "corr_epoch": None, "device": "cpu", "num_threads": 1, "seed": 0}

    def gather_encode(self, embeddings, attention_mask, masks):
        mask = attention_mask.bool()
        x = self._dropout(embeddings, "embeddings", masks)
        rev = _reverse_within_length(mask)
        fw, _ = self.encoder_fw(x)
        bw, _ = self.encoder_bw(x.gather(1, rev.unsqueeze(-1).expand_as(x)))
        bw = bw.gather(1, rev.unsqueeze(-1).expand_as(bw))
        return torch.cat([fw, bw], dim=-1) * mask.unsqueeze(-1).to(fw.dtype)

    arms = {}
    for label, pool, before in (("random", None, False), ("grouped", 100, False),
                                ("random-before", None, True), ("grouped-before", 100, True)):
        setup = ClassifierSetup(parse_config({**base, "bucket_pool": pool}))
        if before:
            setup.model._encode = gather_encode.__get__(setup.model)
            c = setup.trainer.config
            opt = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
            setup.trainer.optimizer = opt(setup.model.parameters(), lr=c.lr, weight_decay=c.weight_decay,
                                          amsgrad=c.amsgrad)
            setup.trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(setup.trainer.optimizer, lambda step: 1.0)
        arms[label] = {"setup": setup, "seconds": 0.0, "steps": 0}
    loads = [os.getloadavg()[0]]
    for epoch in range(epochs):
        streams = {label: iter(a["setup"].epoch_batches(epoch)) for label, a in arms.items()}
        live = dict(streams)
        while live:
            for label in list(live):
                pair = next(live[label], None)
                if pair is None:
                    del live[label]
                    continue
                trainer = arms[label]["setup"].trainer
                t0 = time.perf_counter()
                trainer.step_on_device(*pair)
                arms[label]["seconds"] += time.perf_counter() - t0
                arms[label]["steps"] += 1
        loads.append(os.getloadavg()[0])
    out = {label: {"train_epoch_s": round(a["seconds"] / epochs, 2), "steps": a["steps"],
                   "step_ms": round(1000 * a["seconds"] / a["steps"], 2)} for label, a in arms.items()}
    out["ratios"] = {"grouped/random": round(arms["grouped"]["seconds"] / arms["random"]["seconds"], 3),
                     "grouped/random-before": round(arms["grouped"]["seconds"] / arms["random-before"]["seconds"], 3),
                     "grouped-before/random-before": round(arms["grouped-before"]["seconds"]
                                                           / arms["random-before"]["seconds"], 3),
                     "grouped/grouped-before": round(arms["grouped"]["seconds"] / arms["grouped-before"]["seconds"], 3)}
    out["load"] = loads
    print(json.dumps(out), flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-train", type=int, default=None, help="subset of the SST training split (epoch time)")
    p.add_argument("--skip-epoch", action="store_true")
    p.add_argument("--vat-seeds", type=int, default=0,
                   help="only the Attention VAT F1 / step-time comparison at the spec's settings, over this many seeds")
    p.add_argument("--vat-epochs", type=int, default=8)
    p.add_argument("--interleaved-epochs", type=int, default=0,
                   help="only the step-by-step interleaved epoch time of random / grouped, now / before the speed-ups")
    p.add_argument("--vat-eps", type=float, default=1.0)
    p.add_argument("--vat-lam", type=float, default=1.0)
    p.add_argument("--out", default=str(REPO / "tests" / "benchmarks" / "results" / "batching.json"))
    args = p.parse_args(argv)
    if args.interleaved_epochs:
        out = {"interleaved": interleaved_epoch_rows(args.interleaved_epochs), "machine": machine_info(1)}
        path = Path(args.out).with_name("attention_vat_interleaved.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
        return 0
    if args.vat_seeds:
        out = {"vat": vat_rows(args.vat_seeds, args.vat_epochs, args.vat_eps, args.vat_lam), "machine": machine_info(1),
               "epochs": args.vat_epochs, "eps": args.vat_eps, "lam": args.vat_lam}
        path = Path(args.out).with_name("attention_vat_speed.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
        return 0
    out = {"pad": pad_rows(), "machine": machine_info(1)}
    if not args.skip_epoch:
        out["epoch"] = epoch_rows(args.repeats, args.max_train)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
