"""The (sentence, token) pairs a ``restorability`` trial samples and their batches."""
from __future__ import annotations

import random

from typing import Optional

import torch

from xaicore.data.encoded import padded_width
from xaicore.types import Batch


def sample_pairs(texts, tokenizer, n: int, max_length: int, seed: int) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Tokenise ``texts`` and draw ``n`` distinct (sentence, position) pairs uniformly over content tokens."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, return_special_tokens_mask=True)
    skip = set(tokenizer.all_special_ids)
    pool = [(i, j) for i, (ids, sp) in enumerate(zip(enc["input_ids"], enc["special_tokens_mask"]))
            for j, (t, s) in enumerate(zip(ids, sp)) if not s and t not in skip]
    if not pool:
        raise ValueError("no content token to sample")
    rng = random.Random(seed)
    picked = rng.sample(pool, min(n, len(pool)))
    return enc["input_ids"], picked


def pair_batches(ids: list[list[int]], pairs, batch_size: int, pad_id: int, special_ids,
                 pad_multiple: Optional[int] = None) -> list[tuple[Batch, torch.Tensor]]:
    """Pairs grouped by sentence length (little padding): ``(batch (B, T), positions (B,))``; ``pad_multiple``:
    ``T`` rounded up to a multiple of it (compiled runs)."""
    order = sorted(range(len(pairs)), key=lambda i: (len(ids[pairs[i][0]]), i))
    out = []
    for s in range(0, len(order), batch_size):
        chunk = [pairs[i] for i in order[s : s + batch_size]]
        T = padded_width(max(len(ids[i]) for i, _ in chunk), pad_multiple)
        x = torch.full((len(chunk), T), pad_id, dtype=torch.long)
        for r, (i, _) in enumerate(chunk):
            x[r, : len(ids[i])] = torch.tensor(ids[i])
        att = torch.zeros_like(x, dtype=torch.bool)
        for r, (i, _) in enumerate(chunk):
            att[r, : len(ids[i])] = True
        special = torch.isin(x, torch.tensor(sorted(special_ids))) & att
        out.append((Batch(input_ids=x, attention_mask=att, special_tokens_mask=special),
                    torch.tensor([j for _, j in chunk])))
    return out
