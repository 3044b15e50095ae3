"""Hugging Face encoder classifier with an embedding-perturbation hook.

Wraps any ``AutoModelForSequenceClassification`` (BERT, RoBERTa, MiniLM, ...).

Where the perturbation enters: ``emb_perturb`` ``(B, T, E)`` is added to the
*token (word) embedding lookup* ``W_word[input_ids]`` and the sum is passed as
``inputs_embeds``. The model's embedding module then adds position and
token-type embeddings and applies LayerNorm and dropout, i.e.::

    LayerNorm(W_word[x] + r + W_pos[p] + W_type[s])

so ``r`` lives in the same space as the word vectors (the space in which
"similar words" and SMART's perturbations are defined) and is normalised by
the embedding LayerNorm together with the word vector. Special tokens and
padding are never perturbed (``emb_perturb`` is multiplied by the content
mask the caller passes as ``perturb_mask``, default: the attention mask).

Positions are the model's defaults for ``inputs_embeds`` (0..T-1, RoBERTa:
offset by ``padding_idx + 1``), which equal the ``input_ids`` positions for the
right-padded batches :mod:`xaicore` builds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor, nn

from xaicore.types import ClassifierOutput


@dataclass(frozen=True)
class TransformerClassifierConfig:
    """Attributes:
        model_name_or_path: HF hub id (e.g. ``bert-base-uncased``) or local dir.
        num_classes: number of labels.
        local_files_only: never contact the hub (offline clusters, tests).
        use_safetensors: ``True``: read the weights from ``*.safetensors`` only (a saved model of another
            trial: never unpickle a ``pytorch_model.bin``); ``None``: the ``transformers`` default.
    """

    model_name_or_path: str
    num_classes: int = 2
    local_files_only: bool = False
    use_safetensors: Optional[bool] = None


class TransformerClassifier(nn.Module):
    """Sequence classifier around a Hugging Face encoder; see module docstring."""

    #: declared capabilities (:mod:`xaicore.models.protocol`)
    has_attention = False
    word_level = False
    has_embedding_output = True

    def __init__(self, model: nn.Module) -> None:
        """
        Args:
            model: an ``AutoModelForSequenceClassification``-style module whose
                ``get_input_embeddings()`` returns the word-embedding table.
        """
        super().__init__()
        self.model = model

    @classmethod
    def from_pretrained(cls, config: TransformerClassifierConfig) -> "TransformerClassifier":
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(
            config.model_name_or_path, num_labels=config.num_classes, local_files_only=config.local_files_only,
            use_safetensors=config.use_safetensors,
        )
        return cls(model)

    @classmethod
    def from_config(cls, hf_config) -> "TransformerClassifier":
        """Randomly initialised model from a ``transformers`` config (tests, no download)."""
        from transformers import AutoModelForSequenceClassification

        return cls(AutoModelForSequenceClassification.from_config(hf_config))

    @property
    def num_classes(self) -> int:
        return int(self.model.config.num_labels)

    def embed(self, input_ids: Tensor) -> Tensor:
        """Word-embedding lookup ``(B, T, E)`` (before position embeddings and LayerNorm)."""
        return self.model.get_input_embeddings()(input_ids)

    def embedding_output(self, input_ids: Tensor, token_type_ids: Optional[Tensor] = None) -> Tensor:
        """The embedding module's output ``(B, T, H)``: ``LayerNorm(W_word[x] + W_pos + W_type)``
        (dropout in training mode), i.e. the tensor mt-dnn's SMART perturbs (see :mod:`xaicore.perturbation.smart`)."""
        if token_type_ids is None:
            token_type_ids = input_ids.new_zeros(input_ids.shape)
        return self.model.base_model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        *,
        token_type_ids: Optional[Tensor] = None,
        emb_perturb: Optional[Tensor] = None,
        perturb_mask: Optional[Tensor] = None,
        inputs_embeds: Optional[Tensor] = None,
        score_perturb: Optional[Tensor] = None,
    ) -> ClassifierOutput:
        """Classify a padded batch.

        Args:
            input_ids: ``(B, T)`` token ids.
            attention_mask: ``(B, T)`` bool/int, 1 on real tokens.
            token_type_ids: ``(B, T)`` segment ids or None.
            emb_perturb: ``(B, T, E)`` additive word-embedding perturbation.
            perturb_mask: ``(B, T)`` bool, where ``emb_perturb`` may act
                (default: ``attention_mask``; pass the content mask to spare
                special tokens).
            inputs_embeds: ``(B, T, E)`` word embeddings to use instead of the
                lookup of ``input_ids``.
            score_perturb: not supported (a transformer has no single
                attention distribution); must be None.

        Returns:
            :class:`ClassifierOutput` with ``logits`` ``(B, C)`` and the
            ``embeddings`` ``(B, T, E)`` fed to the model.
        """
        if score_perturb is not None:
            raise ValueError("TransformerClassifier has no additive attention: attention perturbations need the LSTM")
        emb = self.embed(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, E)
        if emb_perturb is not None:
            where = attention_mask if perturb_mask is None else perturb_mask
            emb = emb + emb_perturb * where.to(emb.dtype).unsqueeze(-1)
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.model(inputs_embeds=emb, attention_mask=attention_mask.long(), **kwargs)
        return ClassifierOutput(logits=out.logits, embeddings=emb)
