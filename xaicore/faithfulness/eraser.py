"""ERASER comprehensiveness and sufficiency, AOPC over bins (DeYoung et al. 2020)."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from xaicore.faithfulness.attribution import resolve_target
from xaicore.cancel_out.methods import CancelOut
from xaicore.faithfulness.removal import cancelled_probs, descending_rank, resolve_cancel_out
from xaicore.models.model_utils import eval_mode
from xaicore.models.protocol import forward_batch
from xaicore.types import Batch

__all__ = ["ERASER_BINS", "erasure_curves", "comprehensiveness", "sufficiency"]

ERASER_BINS = (0.01, 0.05, 0.10, 0.20, 0.50)


def _bin_sizes(n: Tensor, q: float) -> Tensor:
    # ceil(q * n) with a tolerance so that e.g. 0.1 * 20 gives 2, not 3
    k = torch.ceil(q * n.double() - 1e-9).long().clamp_min(0)
    return torch.minimum(k, n)


def erasure_curves(
    model: nn.Module,
    batch: Batch,
    scores: Tensor,
    *,
    bins: Sequence[float] = ERASER_BINS,
    target: Union[None, int, Tensor] = None,
    cancel_out: Union[None, str, CancelOut] = None,
    intervention: Optional[str] = None,
    pad_token_id: Optional[int] = None,
    replace_id: Optional[int] = None,
) -> dict[str, Tensor]:
    """ERASER comprehensiveness and sufficiency per bin and their AOPC (DeYoung et al. 2020).

    For each bin ``q`` the rationale ``r_q`` is the top ``k = ceil(q * n_b)``
    content tokens (``n_b`` = content tokens of example ``b``; so at least
    one token for any ``q > 0``), and with ``p(y|.)`` the softmax probability
    of the explained class ``y`` (default: the predicted class on the full
    input)::

        comprehensiveness_q = p(y|x) - p(y|x without r_q)   # higher = more faithful
        sufficiency_q       = p(y|x) - p(y|r_q only)         # lower = more faithful

    "without r_q" removes ``r_q``; "r_q only" removes every other content
    token (special tokens are always kept), both with the cancel-out method. AOPC is
    the plain mean over the bins (the ERASER reference code's convention; the
    paper's formula writes it with a ``k = 0`` term and ``1 / (|B| + 1)``).

    Args:
        model, batch, scores, cancel_out, intervention, pad_token_id, replace_id: see
            :func:`xaicore.faithfulness.deletion.deletion_until_flip`.
        bins: fractions in ``(0, 1]`` (default 0.01, 0.05, 0.1, 0.2, 0.5).
        target: explained class; default the predicted class.

    Returns:
        ``{"comprehensiveness": (B, K), "sufficiency": (B, K),
        "aopc_comprehensiveness": (B,), "aopc_sufficiency": (B,)}`` float
        tensors (``K = len(bins)``).
    """
    bins = [float(q) for q in bins]
    if not bins or any(not 0 < q <= 1 for q in bins):
        raise ValueError(f"bins must be a non-empty list of fractions in (0, 1], got {bins}")
    method = resolve_cancel_out(cancel_out, intervention, pad_token_id=pad_token_id, replace_id=replace_id)
    method.check(model)
    y = resolve_target(model, batch, target)
    content = batch.content_mask
    n = content.sum(dim=1)
    rank = descending_rank(scores, content)
    comp, suff = [], []
    with torch.no_grad(), eval_mode(model):
        p_full = torch.softmax(forward_batch(model, batch).logits.float(), -1).gather(1, y.unsqueeze(1)).squeeze(1)
        for q in bins:
            top = rank < _bin_sizes(n, q).unsqueeze(1)  # (B, T)
            p_without = cancelled_probs(model, batch, top, method).gather(1, y.unsqueeze(1)).squeeze(1)
            p_only = cancelled_probs(model, batch, content & ~top, method).gather(1, y.unsqueeze(1)).squeeze(1)
            comp.append(p_full - p_without)
            suff.append(p_full - p_only)
    comp_t, suff_t = torch.stack(comp, dim=1), torch.stack(suff, dim=1)
    return {
        "comprehensiveness": comp_t,
        "sufficiency": suff_t,
        "aopc_comprehensiveness": comp_t.mean(dim=1),
        "aopc_sufficiency": suff_t.mean(dim=1),
    }


def comprehensiveness(model: nn.Module, batch: Batch, scores: Tensor, **kwargs) -> Tensor:
    """AOPC comprehensiveness ``(B,)`` (higher = more faithful); arguments of :func:`erasure_curves`."""
    return erasure_curves(model, batch, scores, **kwargs)["aopc_comprehensiveness"]


def sufficiency(model: nn.Module, batch: Batch, scores: Tensor, **kwargs) -> Tensor:
    """AOPC sufficiency ``(B,)`` (lower = more faithful); arguments of :func:`erasure_curves`."""
    return erasure_curves(model, batch, scores, **kwargs)["aopc_sufficiency"]

