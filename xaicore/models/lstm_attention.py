"""BiLSTM encoder + additive (tanh) attention classifier.

The model of Jain & Wallace (2019) used by Kitada & Iyatomi for Attention
AT/VAT (attention-vat.txt, appendix A):

    h_t  = BiLSTM(e_1..e_T)_t                        # (B, T, 2H)
    a~_t = c^T tanh(W h_t + b)                       # (B, T) pre-softmax scores
    a    = softmax(a~ + r_att) over real tokens only # (B, T), 0 on padding
    h_a  = sum_t a_t h_t                             # (B, 2H)
    y    = softmax(W_o h_a + b_o)                    # (B, C)

``forward`` accepts an additive perturbation ``emb_perturb`` of the word
embeddings (Word AT/VAT) and ``score_perturb`` of the pre-softmax scores
(Attention AT/iAT/VAT/iVAT). :meth:`attend` re-runs only the attention and
decoder on cached encoder states, so attention perturbations cost no second
LSTM pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch
from torch import Tensor, nn

from xaicore.types import ClassifierOutput


@dataclass(frozen=True)
class AttentionLSTMConfig:
    """Hyper-parameters of :class:`AttentionLSTMClassifier`.

    Attributes:
        vocab_size: number of word ids (PAD = ``pad_id``).
        num_classes: number of output classes.
        embedding_dim: word-embedding size E.
        hidden_dim: LSTM hidden size per direction H (encoder states are 2H).
        attention_dim: size of the additive-attention projection W.
        dropout: dropout on embeddings and on the pooled vector (training only).
        pad_id: id of the padding token (its embedding row is kept at zero).
    """

    vocab_size: int
    num_classes: int = 2
    embedding_dim: int = 300
    hidden_dim: int = 128
    attention_dim: int = 128
    dropout: float = 0.0
    pad_id: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "num_classes", "embedding_dim", "hidden_dim", "attention_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"AttentionLSTMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_classes < 2:
            raise ValueError(f"AttentionLSTMConfig.num_classes must be >= 2, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"AttentionLSTMConfig.dropout must be in [0, 1), got {self.dropout}")


def _reverse_within_length(mask: Tensor) -> Tensor:
    """Index ``(B, T)`` mapping position ``t < len`` to ``len - 1 - t`` (padding maps to itself)."""
    lengths = mask.long().sum(dim=1, keepdim=True)  # (B, 1)
    t = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)  # (1, T)
    return torch.where(t < lengths, lengths - 1 - t, t)


class _InvolutionRows(torch.autograd.Function):
    """``x.reshape(B * T, -1)[index]`` for a row permutation ``index`` that is its own inverse.

    The gradient of a gather by a permutation ``P`` is the gather by ``P^-1``; for an involution
    (``P = P^-1``, :func:`_reverse_within_length`) that is the same ``index_select``, so the backward
    copies rows instead of zero-filling a buffer and scatter-adding into it: the same values exactly
    (every row receives one gradient row), at the cost of a copy.
    """

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor) -> Tensor:  # x (B, T, D), index (B * T,) flat row ids
        ctx.save_for_backward(index)
        return x.reshape(-1, x.shape[-1]).index_select(0, index).view(x.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        return _InvolutionRows.apply(grad, index), None  # itself: twice differentiable


def _flat_reverse_index(mask: Tensor) -> Tensor:
    """``(B * T,)`` flat row ids ``b * T + rev[b, t]`` of :func:`_reverse_within_length` (an involution)."""
    B, T = mask.shape
    rev = _reverse_within_length(mask)
    return (rev + torch.arange(B, device=mask.device).unsqueeze(1) * T).reshape(-1)


class AttentionLSTMClassifier(nn.Module):
    """BiLSTM + additive attention text classifier (Jain & Wallace 2019)."""

    #: declared capabilities (:mod:`xaicore.models.protocol`)
    has_attention = True
    word_level = True
    has_embedding_table = True

    def __init__(self, config: AttentionLSTMConfig, embeddings: Optional[Tensor] = None) -> None:
        """
        Args:
            config: model hyper-parameters.
            embeddings: optional ``(vocab_size, embedding_dim)`` initial word
                vectors (e.g. pretrained); copied, stay trainable.
        """
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_id)
        if embeddings is not None:
            if tuple(embeddings.shape) != (config.vocab_size, config.embedding_dim):
                raise ValueError(
                    f"embeddings must have shape {(config.vocab_size, config.embedding_dim)}, "
                    f"got {tuple(embeddings.shape)}"
                )
            with torch.no_grad():
                self.embedding.weight.copy_(embeddings)
                self.embedding.weight[config.pad_id].zero_()
        # Two unidirectional LSTMs on padded input (see :meth:`encode`), not one packed BiLSTM.
        self.encoder_fw = nn.LSTM(config.embedding_dim, config.hidden_dim, batch_first=True)
        self.encoder_bw = nn.LSTM(config.embedding_dim, config.hidden_dim, batch_first=True)
        self.attn_proj = nn.Linear(2 * config.hidden_dim, config.attention_dim)  # W, b
        self.attn_vector = nn.Linear(config.attention_dim, 1, bias=False)  # c
        self.decoder = nn.Linear(2 * config.hidden_dim, config.num_classes)

    # ------------------------------------------------------------------ parts
    def embed(self, input_ids: Tensor) -> Tensor:
        """Word embeddings ``(B, T, E)`` of ``input_ids`` ``(B, T)``."""
        return self.embedding(input_ids)

    def _dropout(self, x: Tensor, site: str, masks: Optional[dict[str, Tensor]]) -> Tensor:
        """Inverted dropout at ``site``; replays ``masks[site]`` when present, else draws a
        mask and records it in ``masks`` (when given). Identity in eval mode or with p = 0."""
        p = self.config.dropout
        if not self.training or p == 0.0:
            return x
        keep = None if masks is None else masks.get(site)
        if keep is None:
            keep = (torch.rand_like(x) >= p).to(x.dtype) / (1.0 - p)
            if masks is not None:
                masks[site] = keep
        return x * keep

    def encode(self, embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        """BiLSTM states ``(B, T, 2H)`` (zero on padding) of right-padded ``embeddings`` ``(B, T, E)``.

        The forward direction runs on the padded batch as is (padding only
        follows the real tokens, so it cannot reach them). The backward
        direction runs on each sequence reversed *within its own length*
        and is reversed back, so padding never precedes a real token either.
        The states equal those of a packed bidirectional LSTM, without the
        packed-sequence backward pass, which on CPU zero-fills a gradient of
        the whole packed tensor per time step (slow for large batches such as
        IntegratedGradients' interpolation steps).
        """
        return self._encode(embeddings, attention_mask, None)

    def _encode(self, embeddings: Tensor, attention_mask: Tensor, masks: Optional[dict[str, Tensor]]) -> Tensor:
        mask = attention_mask.bool()
        x = self._dropout(embeddings, "embeddings", masks)  # (B, T, E)
        rev = _flat_reverse_index(mask)  # (B * T,)
        fw, _ = self.encoder_fw(x)  # (B, T, H)
        bw, _ = self.encoder_bw(_InvolutionRows.apply(x, rev))  # (B, T, H), reversed time
        bw = _InvolutionRows.apply(bw, rev)
        return torch.cat([fw, bw], dim=-1) * mask.unsqueeze(-1).to(fw.dtype)  # (B, T, 2H)

    def attention_scores(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        """Pre-softmax additive-attention scores ``a~`` ``(B, T)``; 0 on padding."""
        scores = self.attn_vector(torch.tanh(self.attn_proj(hidden))).squeeze(-1)  # (B, T)
        return scores.masked_fill(~attention_mask.bool(), 0.0)

    def attend(
        self,
        hidden: Tensor,
        attention_mask: Tensor,
        scores: Optional[Tensor] = None,
        score_perturb: Optional[Tensor] = None,
        detach_attention: bool = False,
        dropout_masks: Optional[Mapping[str, Tensor]] = None,
    ) -> ClassifierOutput:
        """Attention pooling + decoder on cached encoder states.

        Args:
            hidden: ``(B, T, 2H)`` encoder states from :meth:`encode`.
            attention_mask: ``(B, T)`` bool, True on real tokens.
            scores: ``(B, T)`` pre-softmax scores; recomputed from ``hidden`` if None.
            score_perturb: ``(B, T)`` additive perturbation of the scores; its
                padded positions are ignored (masked out before softmax).
            detach_attention: pool with ``a.detach()`` so gradients do not flow
                through the attention module (Jain & Wallace's gradient importance).
            dropout_masks: masks of an earlier pass to replay (training mode).

        Returns:
            :class:`ClassifierOutput` with logits ``(B, C)``, attention ``(B, T)``,
            the unperturbed scores ``(B, T)``, ``hidden`` and the dropout masks used.
        """
        return self._attend(hidden, attention_mask, scores, score_perturb, detach_attention, dict(dropout_masks or {}))

    def _attend(
        self, hidden: Tensor, attention_mask: Tensor, scores: Optional[Tensor], score_perturb: Optional[Tensor],
        detach_attention: bool, masks: dict[str, Tensor],
    ) -> ClassifierOutput:
        """:meth:`attend` with dropout masks read from and recorded in ``masks``."""
        mask = attention_mask.bool()
        if scores is None:
            scores = self.attention_scores(hidden, mask)
        perturbed = scores if score_perturb is None else scores + score_perturb
        attention = torch.softmax(perturbed.masked_fill(~mask, float("-inf")), dim=-1)  # (B, T)
        attention = attention.masked_fill(~mask, 0.0)  # rows of all-padding stay finite
        weights = attention.detach() if detach_attention else attention
        # under autocast the scores (and a perturbation's fp32 forward) can meet a bf16 ``hidden``: pool in the
        # wider of the two dtypes (an fp32 perturbation block stays exact; autocast casts bmm itself)
        dtype = torch.promote_types(weights.dtype, hidden.dtype)
        pooled = torch.bmm(weights.unsqueeze(1).to(dtype), hidden.to(dtype)).squeeze(1)  # (B, 2H)
        logits = self.decoder(self._dropout(pooled, "pooled", masks))  # (B, C)
        return ClassifierOutput(logits=logits, attention=attention, scores=scores, hidden=hidden,
                                dropout_masks=masks or None)

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        *,
        emb_perturb: Optional[Tensor] = None,
        score_perturb: Optional[Tensor] = None,
        inputs_embeds: Optional[Tensor] = None,
        token_type_ids: Optional[Tensor] = None,
        detach_attention: bool = False,
        dropout_masks: Optional[Mapping[str, Tensor]] = None,
        attention_exclude: Optional[Tensor] = None,
    ) -> ClassifierOutput:
        """Classify a padded batch.

        Args:
            input_ids: ``(B, T)`` word ids.
            attention_mask: ``(B, T)`` bool, True on real tokens.
            emb_perturb: ``(B, T, E)`` added to the word embeddings (padding
                positions are zeroed before adding).
            score_perturb: ``(B, T)`` added to the pre-softmax attention scores.
            inputs_embeds: ``(B, T, E)`` embeddings to use instead of looking up
                ``input_ids`` (used by gradient attributions).
            token_type_ids: ignored (single-sequence model); accepted for a
                uniform interface with :class:`TransformerClassifier`.
            detach_attention: see :meth:`attend`.
            dropout_masks: the ``dropout_masks`` of an earlier training-mode pass
                on the same batch, to replay its dropout (perturbed passes of
                adversarial regularisers); sites not in it are drawn afresh.
            attention_exclude: ``(B, T)`` bool, tokens the BiLSTM reads but the
                attention softmax excludes (weight exactly 0): the
                ``attention_mask`` cancel-out method of :mod:`xaicore.cancel_out.methods`.

        Returns:
            :class:`ClassifierOutput` (logits, attention, scores, hidden, embeddings,
            dropout masks).
        """
        mask = attention_mask.bool()
        masks = dict(dropout_masks or {})
        emb = self.embed(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, E)
        if emb_perturb is not None:
            emb = emb + emb_perturb * mask.unsqueeze(-1)
        hidden = self._encode(emb, mask, masks)
        attend_mask = mask if attention_exclude is None else mask & ~attention_exclude.bool()
        out = self._attend(hidden, attend_mask, None, score_perturb, detach_attention, masks)
        return ClassifierOutput(
            logits=out.logits, attention=out.attention, scores=out.scores, hidden=hidden, embeddings=emb,
            dropout_masks=out.dropout_masks,
        )
