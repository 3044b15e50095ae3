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
    x: Tensor, mask: Tensor, norm: float, *, tiny: float = 1e-12, detach_scale: bool = False
) -> Tensor:
    """Mask ``x`` and rescale each example to L2 norm ``norm``.

    Args:
        x: ``(B, T)`` or ``(B, T, E)`` direction.
        mask: ``(B, T)`` bool, positions allowed to be non-zero.
        norm: target per-example L2 norm.
        detach_scale: treat the rescaling factor ``norm / ||x||`` as a constant for autograd.
            A gradient w.r.t. ``x`` then keeps its component along ``x`` (differentiating
            the normalisation projects it out), which VAT's power iteration needs.

    Returns:
        Tensor shaped like ``x``; an example whose masked direction is exactly
        zero stays zero (there is no direction to scale).
    """
    x = x * expand_mask(mask, x)
    flat = x.reshape(x.shape[0], -1)  # (B, T*E)
    # divide by the largest entry first (as Miyato et al.'s code does): a direction whose
    # norm is tiny but not zero (e.g. a VAT gradient of order xi * ||H|| on a confident
    # model) is still scaled to exactly ``norm``, not clamped by ``tiny``
    peak = flat.abs().amax(dim=1)  # (B,)
    peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    length = (flat / peak[:, None]).norm(dim=1).clamp_min(tiny)  # (B,)
    scale = norm / (length * peak)
    if detach_scale:
        scale = scale.detach()
    return x * scale.reshape(-1, *([1] * (x.dim() - 1)))


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
