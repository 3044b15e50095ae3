"""Restorability: can a masked LM restore a cancelled token? (cancel-out.txt section 3, Figs. 3-6).

For one token per row (``positions`` ``(B,)``) and a cancel-out method, the MLM
reads the cancelled input and we record at that position

* ``p_original`` - the MLM's probability of the original token (section 3.1);
* ``p_max`` - the MLM's largest probability over the vocabulary (section 3.2).

``original`` is the baseline row (the input unchanged). For the marginalize
methods both are marginalised over the ``k`` candidates as the paper does:
``sum_j w_j p_L(. | x with candidate j at i)`` with ``w`` renormalised ``p_L``
(weighted) or ``1/k`` (uniform); for ``p_max`` this is footnote 2's average of
each candidate sentence's maximum probability at that position. The
candidate sentences are built once and serve both weightings.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from xaicore.cancel_out import MLM_METHODS, CancelOut, propose_candidates
from xaicore.masked_lm import position_logits
from xaicore.model_utils import eval_mode, resolve_mask_token_id
from xaicore.types import Batch

__all__ = ["RESTORABILITY_METHODS", "restorability", "summarize"]

#: the paper's six rows (Figs. 3-6), in its order; ``pad`` is accepted too
RESTORABILITY_METHODS = ("original", "attention_mask", "mask_token", "weighted_marginalize", "uniform_marginalize",
                         "zero_vector")


def _at(mlm: nn.Module, batch: Batch, positions: Tensor, inputs_embeds: Optional[Tensor] = None) -> Tensor:
    """``(N, V)`` MLM probabilities at one position per row."""
    logits = position_logits(mlm, batch.input_ids, batch.attention_mask, positions, inputs_embeds=inputs_embeds,
                             token_type_ids=batch.token_type_ids)
    return torch.softmax(logits.float(), dim=-1)


def restorability(
    mlm: nn.Module,
    batch: Batch,
    positions: Tensor,
    methods: Sequence[str] = RESTORABILITY_METHODS,
    *,
    k: int = 10,
    mask_token_id: Optional[int] = None,
    exclude_ids: Sequence[int] = (),
) -> dict[str, dict[str, Tensor]]:
    """``{method: {"p_original": (B,), "p_max": (B,)}}`` for one cancelled token per row.

    Args:
        mlm: HF masked LM (eval mode, no gradients are taken).
        batch: ``(B, T)`` in the MLM's tokenisation.
        positions: ``(B,)`` long, the cancelled position of each row (a content token).
        methods: ``original`` and names of :data:`xaicore.cancel_out.CANCEL_OUT_METHODS` except ``delete``
            (a deleted token has no position left to read).
        k: marginalization candidates (>= 1).
        mask_token_id: [MASK] id (default: ``mlm.config.mask_token_id``).
        exclude_ids: never proposed as candidates (special tokens).
    """
    if "delete" in methods:
        raise ValueError("restorability: 'delete' leaves no position to read the MLM at")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    B, T = batch.input_ids.shape
    rows = torch.arange(B, device=positions.device)
    if not bool(batch.content_mask[rows, positions].all()):
        raise ValueError("every position must be a content token (not special, not padding)")
    orig = batch.input_ids[rows, positions]  # (B,)
    remove = torch.zeros((B, T), dtype=torch.bool, device=positions.device)
    remove[rows, positions] = True
    out: dict[str, dict[str, Tensor]] = {}

    def record(name: str, probs: Tensor, weights: Optional[Tensor] = None) -> None:
        p_orig = probs.gather(1, orig.repeat_interleave(probs.shape[0] // B).unsqueeze(1)).squeeze(1)
        p_max = probs.max(dim=1).values
        if weights is not None:  # (B, K)
            p_orig = (p_orig.view(B, -1) * weights).sum(1)
            p_max = (p_max.view(B, -1) * weights).sum(1)
        out[name] = {"p_original": p_orig.cpu(), "p_max": p_max.cpu()}

    with torch.inference_mode(), eval_mode(mlm):
        for name in methods:
            if name == "original":
                record(name, _at(mlm, batch, positions))
            elif name in MLM_METHODS:
                continue
            else:
                c = CancelOut(name, mask_token_id=mask_token_id).apply(mlm, batch, remove)
                record(name, _at(mlm, c.batch, positions, c.inputs_embeds))
        marg = [m for m in methods if m in MLM_METHODS]
        if marg:
            mask_id = resolve_mask_token_id(mlm, mask_token_id)
            ids, w = propose_candidates(mlm, batch, remove, k=k, mask_token_id=mask_id, weighting="weighted",
                                        exclude_ids=tuple(exclude_ids))
            rep = lambda x: None if x is None else x.repeat_interleave(k, dim=0)  # noqa: E731
            cand = Batch(input_ids=ids, attention_mask=rep(batch.attention_mask), token_type_ids=rep(batch.token_type_ids))
            probs = _at(mlm, cand, positions.repeat_interleave(k))  # (B*k, V)
            for name in marg:
                weights = w if name == "weighted_marginalize" else torch.full_like(w, 1.0 / k)
                record(name, probs, weights)
    return {m: out[m] for m in methods}


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean, median and the share above 0.5 (the paper's histograms read as numbers)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "share_above_0.5": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "share_above_0.5": float((v > 0.5).mean()),
            "n": int(v.size)}
