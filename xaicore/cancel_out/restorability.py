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

import time
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from xaicore.cancel_out.methods import CANCEL_OUT_REGISTRY, CancelOut
from xaicore.models.masked_lm import position_logits
from xaicore.models.model_utils import eval_mode, resolve_mask_token_id
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


def _at_unique(mlm: nn.Module, batch: Batch, positions: Tensor) -> Tensor:
    """:func:`_at` on the unchanged input, the encoder run once per distinct row (several tokens of one sentence)."""
    parts = [batch.input_ids, batch.attention_mask.long()]
    if batch.token_type_ids is not None:
        parts.append(batch.token_type_ids)
    uniq, inverse = torch.unique(torch.cat(parts, dim=1), dim=0, return_inverse=True)  # (U, *), (B,)
    if uniq.shape[0] == batch.input_ids.shape[0]:
        return _at(mlm, batch, positions)
    first = torch.full((uniq.shape[0],), -1, dtype=torch.long, device=positions.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(inverse), device=positions.device), "amin", include_self=False)
    tt = None if batch.token_type_ids is None else batch.token_type_ids[first]
    logits = position_logits(mlm, batch.input_ids[first], batch.attention_mask[first], positions, token_type_ids=tt,
                             rows=inverse)
    return torch.softmax(logits.float(), dim=-1)  # (B, V)


def restorability(
    mlm: nn.Module,
    batch: Batch,
    positions: Tensor,
    methods: Sequence[str] = RESTORABILITY_METHODS,
    *,
    k: int = 10,
    mask_token_id: Optional[int] = None,
    exclude_ids: Sequence[int] = (),
    seconds: Optional[dict[str, float]] = None,
) -> dict[str, dict[str, Tensor]]:
    """``{method: {"p_original": (B,), "p_max": (B,)}}`` for one cancelled token per row.

    Computation shared between rows (same results as one pass per method): the
    ``original`` row runs the encoder once per distinct sentence of the batch;
    the marginalize rows take their ``k`` candidates from the ``mask_token``
    row's pass (:func:`xaicore.cancel_out.methods.propose_candidates` with one removed
    position runs exactly that pass) and share one candidate pass.

    Args:
        mlm: HF masked LM (eval mode, no gradients are taken).
        batch: ``(B, T)`` in the MLM's tokenisation.
        positions: ``(B,)`` long, the cancelled position of each row (a content token).
        methods: ``original`` and names of :data:`xaicore.cancel_out.methods.CANCEL_OUT_METHODS` except ``delete``
            (a deleted token has no position left to read).
        k: marginalization candidates (>= 1).
        mask_token_id: [MASK] id (default: ``mlm.config.mask_token_id``).
        exclude_ids: never proposed as candidates (special tokens).
        seconds: if given, wall seconds are added per method (the candidate proposal pass counts under
            ``mask_token`` when that row is requested, else under the marginalize rows; the shared
            candidate pass counts in full under each marginalize row).
    """
    moved = [m for m in methods if m in CANCEL_OUT_REGISTRY and not CANCEL_OUT_REGISTRY[m].keeps_positions]
    if moved:
        raise ValueError(f"restorability: {', '.join(map(repr, moved))} leaves no position to read the MLM at")
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
    clock = {"t": time.perf_counter()}

    def tick(names: Sequence[str]) -> None:
        now = time.perf_counter()
        if seconds is not None:
            for n in names:
                seconds[n] = seconds.get(n, 0.0) + now - clock["t"]
        clock["t"] = now

    def record(name: str, probs: Tensor, weights: Optional[Tensor] = None) -> None:
        p_orig = probs.gather(1, orig.repeat_interleave(probs.shape[0] // B).unsqueeze(1)).squeeze(1)
        p_max = probs.max(dim=1).values
        if weights is not None:  # (B, K)
            p_orig = (p_orig.view(B, -1) * weights).sum(1)
            p_max = (p_max.view(B, -1) * weights).sum(1)
        out[name] = {"p_original": p_orig.cpu(), "p_max": p_max.cpu()}

    marg = [m for m in methods if m in CANCEL_OUT_REGISTRY and CANCEL_OUT_REGISTRY[m].needs_mlm]
    with torch.inference_mode(), eval_mode(mlm):
        masked_probs = None  # (B, V) p_L(. | x with [MASK] at i), shared by mask_token and the proposal
        for name in methods:
            if name in marg:
                continue
            clock["t"] = time.perf_counter()
            if name == "original":
                record(name, _at_unique(mlm, batch, positions))
            else:
                c = CancelOut(name, mask_token_id=mask_token_id).apply(mlm, batch, remove)
                probs = _at(mlm, c.batch, positions, c.inputs_embeds)
                if masked_probs is None and _is_masked_input(mlm, batch, remove, c, mask_token_id):
                    masked_probs = probs  # this method's input is the marginalisation's [MASK] input: reuse it
                record(name, probs)
            tick([name])
        if marg:
            clock["t"] = time.perf_counter()
            mask_id = resolve_mask_token_id(mlm, mask_token_id)
            if masked_probs is None:
                masked_probs = _at(mlm, batch.replace(input_ids=batch.input_ids.masked_fill(remove, mask_id)),
                                   positions)
                tick(marg)
            ids, w = _candidates(masked_probs, batch.input_ids, positions, k=k, exclude_ids=exclude_ids)
            rep = lambda x: None if x is None else x.repeat_interleave(k, dim=0)  # noqa: E731
            cand = Batch(input_ids=ids, attention_mask=rep(batch.attention_mask), token_type_ids=rep(batch.token_type_ids))
            probs = _at(mlm, cand, positions.repeat_interleave(k))  # (B*k, V)
            for name in marg:
                weights = w if CANCEL_OUT_REGISTRY[name].weighting == "weighted" else torch.full_like(w, 1.0 / k)
                record(name, probs, weights)
            tick(marg)
    return {m: out[m] for m in methods}


def _is_masked_input(mlm: nn.Module, batch: Batch, remove: Tensor, cancelled, mask_token_id: Optional[int]) -> bool:
    """Whether a cancel-out result is exactly ``batch`` with [MASK] at ``remove`` (same ids, same attention
    mask, no embedding override): then the MLM's distribution there is the marginalisation's proposal."""
    if cancelled.inputs_embeds is not None:
        return False
    try:
        mask_id = resolve_mask_token_id(mlm, mask_token_id)
    except ValueError:
        return False
    return (torch.equal(cancelled.batch.input_ids, batch.input_ids.masked_fill(remove, mask_id))
            and torch.equal(cancelled.batch.attention_mask, batch.attention_mask))


def _candidates(masked_probs: Tensor, input_ids: Tensor, positions: Tensor, *, k: int,
                exclude_ids: Sequence[int]) -> tuple[Tensor, Tensor]:
    """:func:`xaicore.cancel_out.methods.propose_candidates` for one removed position per row, from its ``(B, V)`` pass.

    Returns ``ids`` ``(B * k, T)`` (row ``b * k + j``: candidate ``j`` at ``positions[b]``) and the weighted
    marginalization's weights ``(B, k)`` (``p_L`` of the candidates, renormalised over the k).
    """
    V = masked_probs.shape[1]
    p = masked_probs
    excl = [i for i in exclude_ids if 0 <= i < V]
    if excl:
        p = p.index_fill(1, torch.tensor(excl, dtype=torch.long, device=p.device), 0.0)
    if k > V - len(set(excl)):
        raise ValueError(f"k={k} exceeds the number of candidate tokens of the masked LM")
    top_p, top_i = p.topk(k, dim=-1)  # (B, k)
    weights = top_p / top_p.sum(dim=1, keepdim=True).clamp_min(1e-30)
    ids = input_ids.repeat_interleave(k, dim=0)  # (B*k, T)
    ids[torch.arange(ids.shape[0], device=ids.device), positions.repeat_interleave(k)] = top_i.reshape(-1).to(ids.dtype)
    return ids, weights


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean, median and the share above 0.5 (the paper's histograms read as numbers)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "share_above_0.5": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "share_above_0.5": float((v > 0.5).mean()),
            "n": int(v.size)}
