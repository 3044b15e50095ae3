"""Containers shared by every part of :mod:`xaicore`.

A :class:`Batch` is what data loaders yield and what models, regularisers and
attribution methods consume; a :class:`ClassifierOutput` is what every
classifier returns. Both are plain frozen dataclasses of tensors so that they
move between devices with :meth:`Batch.to` and never carry hidden state.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Mapping, Optional

import torch
from torch import Tensor


@dataclass(frozen=True)
class Batch:
    """A padded mini-batch of (optionally paired) token sequences.

    Attributes:
        input_ids: ``(B, T)`` long token ids, padded with the tokenizer's PAD id.
        attention_mask: ``(B, T)`` bool, ``True`` on real tokens (including any
            special tokens such as ``[CLS]``/``[SEP]``), ``False`` on padding.
        labels: ``(B,)`` long class ids, or ``None`` for unlabeled data.
        token_type_ids: ``(B, T)`` long segment ids for sentence pairs (HF
            models), or ``None``.
        special_tokens_mask: ``(B, T)`` bool, ``True`` on special tokens
            (``[CLS]``, ``[SEP]``, ...) that attribution and perturbation must
            skip; ``None`` when the tokenizer adds none (word-level vocab).
        rationale_mask: ``(B, T)`` bool, ``True`` on tokens a human (or the
            synthetic generator) marked as evidence; ``None`` when unknown.
        index: ``(B,)`` long position of each example in its dataset.
    """

    input_ids: Tensor
    attention_mask: Tensor
    labels: Optional[Tensor] = None
    token_type_ids: Optional[Tensor] = None
    special_tokens_mask: Optional[Tensor] = None
    rationale_mask: Optional[Tensor] = None
    index: Optional[Tensor] = None

    def to(self, device: torch.device | str) -> "Batch":
        """Return a copy with every tensor moved to ``device``.

        To a CUDA device, CPU tensors are copied from page-locked (pinned) memory with
        ``non_blocking=True``, so the host-to-device copy overlaps with work already queued; the
        pinned copy is made once per tensor and kept with this batch (a tensor changed in place
        since is pinned again). Any other target is a plain ``tensor.to(device)``.
        """
        if torch.device(device).type != "cuda":
            moved = {
                f.name: (getattr(self, f.name).to(device) if getattr(self, f.name) is not None else None)
                for f in fields(self)
            }
            return Batch(**moved)
        return Batch(**{name: (t.to(device, non_blocking=True) if t is not None else None)
                        for name, t in self._pinned().items()})

    def _pinned(self) -> dict[str, Optional[Tensor]]:
        """Every field, its CPU tensors in pinned memory (cached on the instance, keyed by the tensor's
        in-place version counter so that an edit after pinning is never copied stale)."""
        cache = self.__dict__.get("_pinned_cache")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_pinned_cache", cache)  # not a field: eq, repr and replace() ignore it
        out: dict[str, Optional[Tensor]] = {}
        for f in fields(self):
            t = getattr(self, f.name)
            if t is None or t.device.type != "cpu" or t.is_pinned():
                out[f.name] = t
                continue
            hit = cache.get(f.name)
            if hit is None or hit[0] is not t or hit[1] != t._version:
                hit = cache[f.name] = (t, t._version, t.pin_memory())
            out[f.name] = hit[2]
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_pinned_cache", None)  # page-locked copies stay in this process
        return state

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def content_mask(self) -> Tensor:
        """``(B, T)`` bool: real tokens that are not special tokens.

        This is the set of positions that perturbations, attributions and
        token-removal interventions may touch.
        """
        mask = self.attention_mask.bool()
        if self.special_tokens_mask is not None:
            mask = mask & ~self.special_tokens_mask.bool()
        return mask

    def replace(self, **changes) -> "Batch":
        return replace(self, **changes)


@dataclass(frozen=True)
class ClassifierOutput:
    """What every classifier's ``forward`` returns.

    Attributes:
        logits: ``(B, C)`` unnormalised class scores.
        attention: ``(B, T)`` attention weights (sum to 1 over real tokens,
            exactly 0 on padding) or ``None`` for models without a single
            attention distribution.
        scores: ``(B, T)`` pre-softmax attention scores ``a~`` (padding set to
            0, never -inf, so that they can be perturbed) or ``None``.
        hidden: ``(B, T, H)`` encoder states the attention pools over, returned
            so that attention perturbations can be re-applied without a second
            encoder pass; ``None`` for models that do not expose them.
        embeddings: ``(B, T, E)`` the (possibly perturbed) word embeddings the
            encoder consumed, for gradient-based importance.
        dropout_masks: the scaled keep-masks this training-mode pass drew, by
            dropout site (``None`` in eval mode, without dropout, or for models
            that do not expose them). Given back to the model
            (``dropout_masks=``), they replay the same dropout, so a perturbed
            pass differs from the clean one by the perturbation only.
    """

    logits: Tensor
    attention: Optional[Tensor] = None
    scores: Optional[Tensor] = None
    hidden: Optional[Tensor] = None
    embeddings: Optional[Tensor] = None
    dropout_masks: Optional[Mapping[str, Tensor]] = None
