"""Deletion until the label flips (faithfulness-evaluation.txt section 4, ERASER-style deletion)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from xaicore.attribution import _index_batch, eval_mode, resolve_pad_token_id
from xaicore.faithfulness.removal import _probs, check_intervention, descending_rank, remove_tokens
from xaicore.types import Batch

__all__ = ["deletion_until_flip"]


def deletion_until_flip(
    model: nn.Module,
    batch: Batch,
    scores: Tensor,
    *,
    intervention: str = "pad",
    step: int = 1,
    pad_token_id: Optional[int] = None,
    replace_id: Optional[int] = None,
) -> Tensor:
    """Fraction of content tokens removed, most important first, until the predicted label flips.

    faithfulness-evaluation.txt section 4: remove (MASK) inputs in descending
    feature-map order until the output label changes; deletion rate = removed
    / number of input tokens; 1.0 if removing everything never changes it.
    All examples of the batch advance together: iteration ``i`` removes the
    top ``min(i * step, n_b)`` tokens of every still-unflipped example in one
    forward pass.

    Args:
        model: classifier.
        batch: inputs ``(B, T)``.
        scores: feature map ``(B, T)`` (only content positions are read).
        intervention: ``"pad"`` (default), ``"mask"`` or ``"delete"``.
        step: tokens removed per iteration (>= 1); with ``step > 1`` the
            fraction is a multiple of ``step / n_b`` (or 1.0).
        pad_token_id: PAD id (default: from the model).
        replace_id: with ``"pad"``, id written instead of PAD (e.g. [MASK]).

    Returns:
        ``(B,)`` float in ``(0, 1]`` (lower = more faithful); NaN for an
        example without content tokens.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    check_intervention(model, intervention)
    pad = resolve_pad_token_id(model, pad_token_id)
    content = batch.content_mask
    n = content.sum(dim=1)  # (B,)
    rank = descending_rank(scores, content)
    result = torch.ones(batch.size, dtype=torch.float, device=content.device)
    result[n == 0] = float("nan")
    with torch.no_grad(), eval_mode(model):
        pred0 = _probs(model, batch).argmax(dim=-1)
        active = n > 0
        k = 0
        while bool(active.any()):
            k += step
            idx = active.nonzero().squeeze(1)
            sub = _index_batch(batch, idx)
            removed = remove_tokens(
                sub, rank[idx] < k, intervention=intervention, pad_token_id=pad, replace_id=replace_id
            )
            flipped = _probs(model, removed).argmax(dim=-1) != pred0[idx]
            n_sub = n[idx]
            count = torch.clamp(n_sub, max=k)
            result[idx[flipped]] = (count[flipped].float() / n_sub[flipped].float())
            active[idx[flipped | (k >= n_sub)]] = False
    return result

