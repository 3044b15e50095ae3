"""Small model/batch helpers every algorithm module shares (below attribution, cancel-out and the metrics)."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from torch import Tensor, nn

from xaicore.types import Batch

__all__ = ["eval_mode", "resolve_pad_token_id", "resolve_mask_token_id", "index_batch"]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode; restore *every* submodule's own flag on exit."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def resolve_pad_token_id(model: nn.Module, pad_token_id: Optional[int] = None) -> int:
    """The PAD id of ``model``: the explicit argument, else ``model.pad_token_id``,
    ``model.config.pad_id`` (:class:`AttentionLSTMClassifier`) or the wrapped HF
    model's ``config.pad_token_id`` (:class:`TransformerClassifier`).

    Raises:
        ValueError: none of these is available.
    """
    value = _first_id(pad_token_id, (lambda: model.pad_token_id, lambda: model.config.pad_id,
                                     lambda: model.model.config.pad_token_id))
    if value is None:
        raise ValueError(f"cannot find the PAD id of {type(model).__name__}; pass pad_token_id explicitly")
    return value


def _first_id(explicit: Optional[int], getters) -> Optional[int]:
    """``explicit``, else the first getter that neither raises ``AttributeError`` nor returns None."""
    if explicit is not None:
        return int(explicit)
    for getter in getters:
        try:
            value = getter()
        except AttributeError:
            continue
        if value is not None:
            return int(value)
    return None


def resolve_mask_token_id(model: nn.Module, mask_token_id: Optional[int] = None) -> int:
    """The [MASK] / ``<mask>`` id for ``model``: the explicit argument, else ``model.mask_token_id``
    (set it from the tokenizer, e.g. ``classifier.mask_token_id = tokenizer.mask_token_id``) or the
    wrapped HF model's ``config.mask_token_id``.

    Raises:
        ValueError: the model has no mask token (e.g. a word-level BiLSTM vocabulary).
    """
    value = _first_id(mask_token_id, (lambda: model.mask_token_id, lambda: model.model.config.mask_token_id,
                                      lambda: model.config.mask_token_id))
    if value is not None:
        return value
    raise ValueError(
        f"{type(model).__name__} has no mask token: mask-based cancel-out methods (mask_token, "
        "weighted_marginalize, uniform_marginalize) need a model whose tokenizer has one (pass mask_token_id)"
    )


def index_batch(batch: Batch, idx: Tensor) -> Batch:
    """Rows ``idx`` of every tensor of ``batch``."""
    pick = lambda x: None if x is None else x[idx]  # noqa: E731
    return Batch(
        input_ids=batch.input_ids[idx],
        attention_mask=batch.attention_mask[idx],
        labels=pick(batch.labels),
        token_type_ids=pick(batch.token_type_ids),
        special_tokens_mask=pick(batch.special_tokens_mask),
        rationale_mask=pick(batch.rationale_mask),
        index=pick(batch.index),
    )
