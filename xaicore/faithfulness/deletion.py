"""Deletion until the label flips (faithfulness-evaluation.txt section 4, ERASER-style deletion)."""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor, nn

from xaicore.cancel_out.methods import CancelOut
from xaicore.faithfulness.removal import cancelled_probs, descending_rank, resolve_cancel_out
from xaicore.models.model_utils import eval_mode, index_batch
from xaicore.models.protocol import forward_batch
from xaicore.types import Batch

__all__ = ["deletion_until_flip"]


def deletion_until_flip(
    model: nn.Module,
    batch: Batch,
    scores: Tensor,
    *,
    cancel_out: Union[None, str, CancelOut] = None,
    intervention: Optional[str] = None,
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
        cancel_out: how a token is removed: a name in
            :data:`xaicore.cancel_out.methods.CANCEL_OUT_METHODS` or a
            :class:`~xaicore.cancel_out.methods.CancelOut` (default ``"pad"``; the
            marginalize methods need an instance carrying the MLM).
        intervention: older name for ``cancel_out`` (``"pad"``, ``"mask"``, ``"delete"``).
        step: tokens removed per iteration (>= 1); with ``step > 1`` the
            fraction is a multiple of ``step / n_b`` (or 1.0).
        pad_token_id: PAD id (default: from the model).
        replace_id: with ``"pad"``, id written instead of PAD (e.g. UNK).

    Returns:
        ``(B,)`` float in ``(0, 1]`` (lower = more faithful); NaN for an
        example without content tokens.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    method = resolve_cancel_out(cancel_out, intervention, pad_token_id=pad_token_id, replace_id=replace_id)
    method.check(model)
    content = batch.content_mask
    n = content.sum(dim=1)  # (B,)
    rank = descending_rank(scores, content)
    result = torch.ones(batch.size, dtype=torch.float, device=content.device)
    result[n == 0] = float("nan")
    with torch.no_grad(), eval_mode(model):
        pred0 = forward_batch(model, batch).logits.argmax(dim=-1)
        active = n > 0
        k = 0
        while bool(active.any()):
            k += step
            idx = active.nonzero().squeeze(1)
            sub = index_batch(batch, idx)
            flipped = cancelled_probs(model, sub, rank[idx] < k, method).argmax(dim=-1) != pred0[idx]
            n_sub = n[idx]
            count = torch.clamp(n_sub, max=k)
            result[idx[flipped]] = (count[flipped].float() / n_sub[flipped].float())
            active[idx[flipped | (k >= n_sub)]] = False
    return result

