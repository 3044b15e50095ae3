"""Norm-constrained perturbations shared by the adversarial regularisers.

Convention: a perturbation of a batch is normalised *per example* to L2 norm
``eps`` over all of that example's perturbable entries (all real,
non-special tokens, and every embedding dimension for word perturbations),
as in Miyato et al. (2017) and Kitada & Iyatomi (2021). Entries outside the
mask are exactly zero.
"""
from __future__ import annotations

import torch
from torch import Tensor


def expand_mask(mask: Tensor, like: Tensor) -> Tensor:
    """Broadcast a ``(B, T)`` mask to ``like``'s shape ``(B, T, ...)`` as ``like.dtype``."""
    m = mask.to(like.dtype)
    while m.dim() < like.dim():
        m = m.unsqueeze(-1)
    return m


def normalize_per_example(
    x: Tensor, mask: Tensor, norm: float, *, tiny: float | None = None, detach_scale: bool = False
) -> Tensor:
    """Mask ``x`` and rescale each example to L2 norm ``norm``; never returns a non-finite value.

    Args:
        x: ``(B, T)`` or ``(B, T, E)`` direction.
        mask: ``(B, T)`` bool, positions allowed to be non-zero.
        norm: target per-example L2 norm.
        tiny: an example whose largest masked entry is below ``tiny`` (default: the
            smallest *normal* number of ``x.dtype``, 1.2e-38 in float32) has no usable
            direction and gets exactly 0. A subnormal or underflowing gradient has lost
            its precision (a single-token sequence's attention gradient is 0 up to
            rounding), so its "direction" is rounding noise; scaling it would also
            overflow (``5 / 1e-45 = inf`` and ``0 * inf = nan``).
        detach_scale: treat the rescaling factor ``norm / ||x||`` as a constant for autograd.
            A gradient w.r.t. ``x`` then keeps its component along ``x`` (differentiating
            the normalisation projects it out), which VAT's power iteration needs.

    Returns:
        Tensor shaped like ``x``: exactly 0 outside ``mask`` and for examples whose masked
        direction is zero, below ``tiny`` or non-finite; otherwise per-example norm ``norm``.
    """
    m = expand_mask(mask, x).bool().expand_as(x)
    x = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device))  # exact 0 even where x is inf/nan
    flat = x.reshape(x.shape[0], -1)  # (B, T*E)
    if tiny is None:
        tiny = torch.finfo(x.dtype).tiny if x.dtype.is_floating_point else 0.0
    # divide by the largest entry first (as Miyato et al.'s code does): a direction whose
    # norm is small but normal (e.g. a VAT gradient of order xi * ||H|| on a confident
    # model) is still scaled to exactly ``norm``, and the scale factor stays <= norm
    peak = flat.abs().amax(dim=1)  # (B,)
    usable = torch.isfinite(flat).all(dim=1) & (peak >= tiny)  # (B,)
    peak = torch.where(usable, peak, torch.ones_like(peak))
    shape = (-1, *([1] * (x.dim() - 1)))
    unit = x / (peak.detach() if detach_scale else peak).reshape(shape)  # entries in [-1, 1], finite
    length = unit.reshape(x.shape[0], -1).norm(dim=1)  # (B,), >= 1 where usable
    length = torch.where(usable, length, torch.ones_like(length))
    scale = norm / length
    if detach_scale:
        scale = scale.detach()
    out = unit * scale.reshape(shape)
    return torch.where(usable.reshape(shape), out, torch.zeros((), dtype=x.dtype, device=x.device))


def per_example_norm(x: Tensor) -> Tensor:
    """L2 norm of each example of ``x`` ``(B, ...)`` -> ``(B,)``."""
    return x.reshape(x.shape[0], -1).norm(dim=1)


def kl_from_logits(target_logits: Tensor, logits: Tensor) -> Tensor:
    """Per-example ``KL(p || q)`` with ``p = softmax(target_logits)`` *detached*.

    Args:
        target_logits: ``(B, C)`` clean logits; detached here so the target
            distribution is a constant (VAT convention).
        logits: ``(B, C)`` logits under perturbation.

    Returns:
        ``(B,)`` KL divergences in nats.
    """
    log_p = torch.log_softmax(target_logits.detach(), dim=-1)
    log_q = torch.log_softmax(logits, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def attention_difference_basis(scores: Tensor, mask: Tensor, *, tiny: float = 1e-12) -> Tensor:
    """Normalised attention-difference vectors (attention-vat.txt, eqs. 5-6).

    ``d_t = (a~_t - a~_k)_{k=1..T}`` and ``d^_t = d_t / ||d_t||_2``, computed
    over real tokens only (rows and columns of padding are zero). The scores
    are detached: the basis is a constant of the perturbation search.

    Args:
        scores: ``(B, T)`` pre-softmax attention scores ``a~``.
        mask: ``(B, T)`` bool, real (perturbable) tokens.

    Returns:
        ``(B, T, T)`` tensor whose row ``t`` is ``d^_t``.
    """
    s = scores.detach()
    diff = s.unsqueeze(2) - s.unsqueeze(1)  # (B, T, T): [b, t, k] = a~_t - a~_k
    pair = mask.unsqueeze(2) & mask.unsqueeze(1)  # (B, T, T)
    diff = diff * pair.to(diff.dtype)
    return diff / diff.norm(dim=2, keepdim=True).clamp_min(tiny)


def span_combination(alpha: Tensor, basis: Tensor) -> Tensor:
    """``r(alpha) = sum_t alpha_t d^_t``: ``alpha`` ``(B, T)``, ``basis`` ``(B, T, T)`` -> ``(B, T)``."""
    return torch.einsum("bt,btk->bk", alpha, basis)
