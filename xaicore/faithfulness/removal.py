"""Token removal shared by the erasure metrics and :func:`xaicore.attribution.leave_one_out`.

``intervention`` is one of:

* ``"pad"`` (default) - the token's id is replaced by the PAD id (or by
  ``replace_id``, e.g. ``[MASK]``/UNK) and its position *stays in the
  attention mask*: the sequence length is unchanged and the model still
  "sees" a PAD token there (for :class:`~xaicore.models.AttentionLSTMClassifier`
  a zero embedding that the BiLSTM reads and the attention may weight).
  With ``replace_id=[MASK]`` this is faithfulness-evaluation.txt's "MASK".
* ``"mask"`` - the position is set False in the attention mask (the id is
  left as it is): a transformer no longer attends to it. Only for models that
  accept non-contiguous attention masks (transformers, :class:`WeakLearner`);
  the packed BiLSTM assumes right padding, so it raises ``ValueError`` there.
* ``"delete"`` - the token is removed and the rest shifted left (padding is
  appended): the model sees the shorter sequence.

Removal only ever touches content tokens: special tokens ([CLS], [SEP]) and
padding are never removed. Ranking (:func:`descending_rank`): tokens are
removed in descending order of ``scores``; ties are broken by position
(earlier first).
"""
from __future__ import annotations

from typing import Iterable, Optional, Union

import torch
from torch import Tensor, nn

from xaicore.regularizers import forward_batch
from xaicore.types import Batch

__all__ = ["INTERVENTIONS", "check_intervention", "remove_tokens", "descending_rank", "nanmean"]

INTERVENTIONS = ("pad", "mask", "delete")


def check_intervention(model: nn.Module, intervention: str) -> None:
    """Raise ``ValueError`` for an unknown intervention or ``"mask"`` on a packed-LSTM model."""
    if intervention not in INTERVENTIONS:
        raise ValueError(f"intervention must be one of {', '.join(INTERVENTIONS)}; got {intervention!r}")
    if intervention == "mask":
        from xaicore.models.lstm_attention import AttentionLSTMClassifier

        if isinstance(model, AttentionLSTMClassifier):
            raise ValueError(
                'intervention="mask" needs a model that accepts holes in the attention mask; '
                "AttentionLSTMClassifier packs sequences by length (right padding): use 'pad' or 'delete'"
            )


def remove_tokens(
    batch: Batch,
    remove: Tensor,
    *,
    intervention: str = "pad",
    pad_token_id: int = 0,
    replace_id: Optional[int] = None,
) -> Batch:
    """Remove the tokens ``remove & batch.content_mask`` from ``batch`` (see module docstring).

    Args:
        batch: inputs ``(B, T)``.
        remove: ``(B, T)`` bool, tokens to remove; positions outside the
            content mask are ignored.
        intervention: ``"pad"``, ``"mask"`` or ``"delete"``.
        pad_token_id: PAD id (written by ``"pad"`` and used to fill ``"delete"``).
        replace_id: with ``"pad"``, the id written instead of PAD.

    Returns:
        A new :class:`Batch` with the same shape ``(B, T)``; ``labels`` and
        ``index`` unchanged; with ``"delete"`` every per-token tensor
        (token types, special-token and rationale masks) is shifted alongside.
    """
    if intervention not in INTERVENTIONS:
        raise ValueError(f"intervention must be one of {', '.join(INTERVENTIONS)}; got {intervention!r}")
    remove = remove.bool() & batch.content_mask
    if intervention == "pad":
        fill = pad_token_id if replace_id is None else replace_id
        return batch.replace(input_ids=batch.input_ids.masked_fill(remove, int(fill)))
    attention = batch.attention_mask.bool()
    if intervention == "mask":
        return batch.replace(attention_mask=attention & ~remove)
    keep = attention & ~remove
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # kept tokens first, in order
    new_attention = keep.gather(1, order)
    shift = lambda x: None if x is None else x.gather(1, order)  # noqa: E731
    ids = shift(batch.input_ids).masked_fill(~new_attention, int(pad_token_id))
    types = shift(batch.token_type_ids)
    special = shift(batch.special_tokens_mask)
    rationale = shift(batch.rationale_mask)
    return batch.replace(
        input_ids=ids,
        attention_mask=new_attention,
        token_type_ids=None if types is None else types.masked_fill(~new_attention, 0),
        special_tokens_mask=None if special is None else special.bool() & new_attention,
        rationale_mask=None if rationale is None else rationale.bool() & new_attention,
    )


def descending_rank(scores: Tensor, mask: Tensor) -> Tensor:
    """``(B, T)`` long rank of each masked token in descending ``scores`` order (0 = most important).

    Ties are broken by position (earlier first); unmasked positions get rank ``T``.
    """
    s = scores.detach().float().masked_fill(~mask, float("-inf"))
    order = torch.sort(s, dim=1, descending=True, stable=True).indices  # (B, T)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1], device=s.device).expand_as(order).contiguous())
    return rank.masked_fill(~mask, s.shape[1])


def _probs(model: nn.Module, batch: Batch) -> Tensor:
    return torch.softmax(forward_batch(model, batch).logits.float(), dim=-1)


def nanmean(values: Union[Tensor, Iterable[Tensor]]) -> float:
    """Mean of all non-NaN entries of a tensor or of several (e.g. per-batch ``(B,)`` results)."""
    t = values if isinstance(values, Tensor) else torch.cat([v.reshape(-1).float() for v in values])
    t = t.reshape(-1).float()
    t = t[~torch.isnan(t)]
    return float(t.mean()) if t.numel() else float("nan")
