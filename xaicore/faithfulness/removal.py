"""Token removal for the erasure metrics: a thin layer over :mod:`xaicore.cancel_out.methods`, plus the removal order.

The metrics take ``cancel_out`` (a name in :data:`xaicore.cancel_out.methods.CANCEL_OUT_METHODS`
or a :class:`~xaicore.cancel_out.methods.CancelOut`; default ``"pad"``). The older
``intervention=`` names ``"pad"``, ``"mask"`` (= ``attention_mask``) and
``"delete"`` are still accepted. Ranking (:func:`descending_rank`): tokens are
removed in descending order of ``scores``; ties are broken by position
(earlier first).
"""
from __future__ import annotations

from typing import Iterable, Optional, Union

import torch
from torch import Tensor, nn

from xaicore.cancel_out.methods import CancelOut, cancel_out_log_probs
from xaicore.types import Batch

__all__ = ["INTERVENTIONS", "resolve_cancel_out", "check_intervention", "remove_tokens", "cancelled_probs",
           "descending_rank", "nanmean"]

INTERVENTIONS = ("pad", "mask", "delete")


def resolve_cancel_out(
    cancel_out: Union[None, str, CancelOut] = None,
    intervention: Optional[str] = None,
    *,
    pad_token_id: Optional[int] = None,
    replace_id: Optional[int] = None,
) -> CancelOut:
    """The :class:`CancelOut` of a metric call: ``cancel_out`` (name or instance), else the legacy
    ``intervention`` name, else ``"pad"``; ``pad_token_id``/``replace_id`` fill in a name's options."""
    if cancel_out is not None and intervention is not None:
        raise ValueError("pass cancel_out or the older intervention, not both")
    if isinstance(cancel_out, CancelOut):
        return cancel_out
    return CancelOut(cancel_out or intervention or "pad", pad_token_id=pad_token_id, replace_id=replace_id)


def check_intervention(model: nn.Module, intervention: Union[str, CancelOut]) -> None:
    """Raise ``ValueError`` for an unknown cancel-out method or one without meaning for ``model``."""
    resolve_cancel_out(intervention).check(model)


def remove_tokens(
    batch: Batch,
    remove: Tensor,
    *,
    intervention: str = "pad",
    pad_token_id: int = 0,
    replace_id: Optional[int] = None,
) -> Batch:
    """``batch`` with ``remove & batch.content_mask`` removed by a one-row method (``pad``, ``mask``/``attention_mask``,
    ``delete``, or ``mask_token`` with ``replace_id``); see :mod:`xaicore.cancel_out.methods`.

    Returns:
        A new :class:`Batch` with the same shape ``(B, T)``.
    """
    if intervention not in INTERVENTIONS:
        raise ValueError(f"intervention must be one of {', '.join(INTERVENTIONS)}; got {intervention!r}")
    return CancelOut(intervention, pad_token_id=pad_token_id, replace_id=replace_id).apply(None, batch, remove).batch


def descending_rank(scores: Tensor, mask: Tensor) -> Tensor:
    """``(B, T)`` long rank of each masked token in descending ``scores`` order (0 = most important).

    Ties are broken by position (earlier first); unmasked positions get rank ``T``.
    """
    s = scores.detach().float().masked_fill(~mask, float("-inf"))
    order = torch.sort(s, dim=1, descending=True, stable=True).indices  # (B, T)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1], device=s.device).expand_as(order).contiguous())
    return rank.masked_fill(~mask, s.shape[1])


def cancelled_probs(model: nn.Module, batch: Batch, remove: Tensor, cancel_out: CancelOut) -> Tensor:
    """``(B, C)`` output distribution with ``remove`` cancelled out (call under no_grad / eval mode)."""
    return cancel_out_log_probs(model, batch, remove, cancel_out).exp()


def nanmean(values: Union[Tensor, Iterable[Tensor]]) -> float:
    """Mean of all non-NaN entries of a tensor or of several (e.g. per-batch ``(B,)`` results)."""
    t = values if isinstance(values, Tensor) else torch.cat([v.reshape(-1).float() for v in values])
    t = t.reshape(-1).float()
    t = t[~torch.isnan(t)]
    return float(t.mean()) if t.numel() else float("nan")
