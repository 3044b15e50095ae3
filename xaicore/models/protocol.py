"""What every text classifier offers, declared instead of sniffed, and the one model call.

A classifier is any ``nn.Module`` with ``forward(input_ids, attention_mask, **kwargs) ->
ClassifierOutput`` and ``embed(input_ids) -> (B, T, E)`` word embeddings
(:class:`TextClassifier`). What it can do beyond that is declared by class attributes that
plug-ins (regularisers, cancel-out methods, attributors, noise) read through
:func:`capability` instead of ``hasattr`` / ``isinstance``:

* ``has_attention`` - one additive attention distribution over the tokens, with
  ``encode`` / ``attention_scores`` / ``attend`` and the ``score_perturb``,
  ``detach_attention`` and ``attention_exclude`` keywords
  (:class:`~xaicore.models.AttentionLSTMClassifier`).
* ``word_level`` - a word vocabulary without a mask token or a masked LM sharing it
  (no ``mask_token`` / marginalize cancel-out).
* ``has_embedding_table`` - ``model.embedding`` is the trainable ``nn.Embedding`` of its
  words (Word iAT/iVAT's neighbour directions).
* ``has_embedding_output`` - ``embedding_output(ids, token_types)``: the input of the
  encoder after position/type embeddings and LayerNorm (SMART's perturbation point).
* ``takes_token_weights`` - ``forward(..., weights=)`` pools by a given feature map
  (:class:`~xaicore.faithfulness.WeakLearner`).

A capability a class does not declare is ``False``.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from xaicore.types import Batch, ClassifierOutput

__all__ = ["CAPABILITIES", "TextClassifier", "capability", "forward_batch"]

#: the capability attributes a classifier may declare (all default to False)
CAPABILITIES = ("has_attention", "word_level", "has_embedding_table", "has_embedding_output", "takes_token_weights")


@runtime_checkable
class TextClassifier(Protocol):
    """The interface every plug-in may rely on (see module docstring)."""

    def embed(self, input_ids: Tensor) -> Tensor: ...

    def __call__(self, input_ids: Tensor, attention_mask: Tensor, **kwargs) -> ClassifierOutput: ...


def capability(model: nn.Module, name: str) -> bool:
    """Whether ``model`` declares capability ``name`` (one of :data:`CAPABILITIES`)."""
    if name not in CAPABILITIES:
        raise ValueError(f"unknown capability {name!r}; choose one of {', '.join(CAPABILITIES)}")
    return bool(getattr(model, name, False))


def forward_batch(model: nn.Module, batch: Batch, **kwargs) -> ClassifierOutput:
    """Run ``model`` on ``batch`` (ids, mask, token types) with extra keyword args."""
    if batch.token_type_ids is not None:
        kwargs["token_type_ids"] = batch.token_type_ids
    return model(batch.input_ids, batch.attention_mask, **kwargs)
