"""The sentences of an ``mlm`` trial (pooled text sources, WikiText joiners undone) and their batches."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

import torch

from trainables.data_setup import load_unlabeled
from trainables.mlm.config import MLMTrialConfig
from xaicore.data.batching import batch_indices
from xaicore.data.encoded import padded_width
from xaicore.types import Batch

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


def collate(rows, pad_id: int, pad_multiple: Optional[int] = None) -> Batch:
    """Right-padded rows; ``pad_multiple``: the width rounded up to a multiple of it (compiled runs)."""
    T = padded_width(max(len(r[0]) for r in rows), pad_multiple)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    special = torch.ones((len(rows), T), dtype=torch.bool)
    mask = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, (r, s) in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        special[i, : len(r)] = torch.tensor(s, dtype=torch.bool)
        mask[i, : len(r)] = True
    return Batch(input_ids=ids, attention_mask=mask, special_tokens_mask=special & mask)


def length_batches(rows, batch_size: int, pad_id: int, *, seed: Optional[int],
                   bucket_pool: Optional[int] = None, pad_multiple: Optional[int] = None) -> list[Batch]:
    """Batches of similar length (little padding); shuffled order when ``seed`` is given.

    ``bucket_pool=k`` (with a ``seed``): the classifier trainables' grouping
    (:func:`xaicore.data.batching.batch_indices`): seeded pools of ``k`` batches, each sorted by length,
    batch order shuffled, so the batches change every epoch. ``None``: the whole set sorted once (the same
    batches every epoch, shuffled order; the held-out batches, unshuffled). ``pad_multiple``: see :func:`collate`.
    """
    if bucket_pool is not None and seed is not None:
        plan = batch_indices(len(rows), batch_size=batch_size, shuffle=True, seed=seed,
                             lengths=[len(r[0]) for r in rows], bucket_pool=bucket_pool)
        return [collate([rows[int(i)] for i in c], pad_id, pad_multiple) for c in plan]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if seed is not None:
        random.Random(seed).shuffle(chunks)
    return [collate([rows[i] for i in c], pad_id, pad_multiple) for c in chunks]
