"""Norm-constrained perturbations shared by the adversarial regularisers.

Convention: a perturbation of a batch is normalised *per example* to L2 norm
``eps`` over all of that example's perturbable entries (all real,
non-special tokens, and every embedding dimension for word perturbations),
as in Miyato et al. (2017) and Kitada & Iyatomi (2021). Entries outside the
mask are exactly zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from xaicore.precision import exact, to_exact


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
        Computed in fp32 under autocast (a bf16/fp16 ``x`` is cast up first).
    """
    with exact(x):
        return _normalize(to_exact(x), mask, norm, tiny, detach_scale)


def _normalize(x: Tensor, mask: Tensor, norm: float, tiny: float | None, detach_scale: bool) -> Tensor:
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
        ``(B,)`` fp32 KL divergences in nats (computed in fp32 also under autocast: the KL between a
        clean and a slightly perturbed pass is a difference of nearly equal numbers).
    """
    with exact(logits):
        log_p = torch.log_softmax(to_exact(target_logits.detach()), dim=-1)
        log_q = torch.log_softmax(to_exact(logits), dim=-1)
        return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


@dataclass(frozen=True)
class ExchangeGraph:
    """Sparse attention-exchange directions of the interpretable variants (iAT / iVAT).

    Edge ``(t, k)`` joins real token ``t`` to ``neighbours[b, t, k]``, one of its ``K`` nearest
    real tokens *by pre-softmax score* ``|a~_t - a~_j|`` (itself excluded). Its unit direction
    in score space is ``u_tk = s_tk (e_t - e_j) / sqrt(2)``, ``s_tk = sign(a~_j - a~_t)`` (``+1``
    on ties): the direction from ``a~`` towards the score vector in which ``t`` and ``j``
    exchange their scores, i.e. ``t`` takes its neighbour's attention (the analogue of
    Sato et al.'s directions from a word's embedding to a neighbouring word's embedding).

    Attributes:
        neighbours: ``(B, T, K)`` long, the neighbour position ``j`` of each edge (0 where invalid).
        weight: ``(B, T, K)`` ``s_tk / sqrt(2)`` on valid edges, exactly 0 on invalid ones
            (padding, special tokens, or fewer than ``K + 1`` real tokens).
    """

    neighbours: Tensor
    weight: Tensor

    def combine(self, alpha: Tensor) -> Tensor:
        """``r(alpha) = sum_{t,k} alpha_tk u_tk``: ``alpha`` ``(B, T, K)`` -> ``r`` ``(B, T)``."""
        c = alpha * self.weight  # (B, T, K)
        r = c.sum(dim=2)  # + on e_t
        return r.scatter_add(1, self.neighbours.flatten(1), -c.flatten(1))  # - on e_j

    def project(self, g: Tensor) -> Tensor:
        """``U^T g``: the coefficients ``<u_tk, g>`` ``(B, T, K)`` of ``g`` ``(B, T)``
        (= the gradient w.r.t. ``alpha`` when ``g`` is the gradient w.r.t. the scores)."""
        g_nb = g.gather(1, self.neighbours.flatten(1)).view_as(self.weight)  # (B, T, K)
        return self.weight * (g.unsqueeze(2) - g_nb)


def exchange_graph(scores: Tensor, mask: Tensor, k: int) -> ExchangeGraph:
    """Build the :class:`ExchangeGraph` of each example's ``k`` nearest tokens by score.

    ``U U^T = L_G / 2`` with ``L_G`` the Laplacian of the (multi)graph of these edges, so the
    interpretable perturbations ``r = U U^T g`` lie in the range of ``L_G``: they sum to 0
    (no budget is spent on the all-ones direction that softmax ignores), their rank across
    gradients is ``n_real - (number of connected components)``, and they are not confined to
    ``span{1, a~}`` (a temperature change). With ``k >= n_real - 1`` the graph is complete and
    ``L_G g = n g`` for every ``g`` summing to 0 (the score gradient does): AT/VAT exactly.

    Args:
        scores: ``(B, T)`` pre-softmax scores (detached here: the graph is a constant).
        mask: ``(B, T)`` bool, perturbable tokens.
        k: neighbours per token (``>= 1``).
    """
    if k < 1:
        raise ValueError(f"k (exchange neighbours) must be >= 1, got {k}")
    s = scores.detach()
    B, T = s.shape
    kk = min(k, max(T - 1, 1))
    dist = (s.unsqueeze(2) - s.unsqueeze(1)).abs()  # (B, T, T): |a~_t - a~_j|
    pair = mask.unsqueeze(2) & mask.unsqueeze(1) & ~torch.eye(T, dtype=torch.bool, device=s.device)
    dist = torch.where(pair, dist, torch.full_like(dist, float("inf")))
    d_sel, nb = dist.topk(kk, dim=2, largest=False)  # (B, T, kk)
    valid = torch.isfinite(d_sel)
    nb = torch.where(valid, nb, torch.zeros_like(nb))
    sign = torch.sign(s.gather(1, nb.flatten(1)).view_as(nb).to(s.dtype) - s.unsqueeze(2))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    weight = torch.where(valid, sign / math.sqrt(2.0), torch.zeros_like(sign))
    if kk < k:  # T too small for k neighbours: pad with invalid edges so alpha is always (B, T, k)
        pad = k - kk
        nb = torch.cat([nb, nb.new_zeros(B, T, pad)], dim=2)
        weight = torch.cat([weight, weight.new_zeros(B, T, pad)], dim=2)
    return ExchangeGraph(neighbours=nb, weight=weight.to(scores.dtype))
