"""Figure 2 of similar-word-noise.txt: where clean, SMART-perturbed and noised tokens lie.

For chosen token occurrences in a batch, the vectors of three conditions, at two depths:

* ``embeddings``: the embedding module's output ``LayerNorm(W_word + W_pos + W_type)`` (the paper's
  "BERT Embeddings", left panel): clean; SMART's adversarial input ``x~`` (for the mt-dnn target,
  the perturbed embedding output itself; for ``target="word"``, the embedding output of the
  perturbed word vectors); the similar-word noise's embedding output of ``E_new``.
* ``layer2``: the output of the second encoder layer (right panel), each condition fed as it is
  in training.

:func:`pca_2d` projects a set of views onto their first two principal components (centred SVD).
Everything runs without dropout (eval mode is set and restored).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from xaicore.types import Batch


def _hidden(model: nn.Module, batch: Batch, layer: int, **kwargs) -> Tensor:
    if batch.token_type_ids is not None:
        kwargs["token_type_ids"] = batch.token_type_ids
    out = model.model.base_model(attention_mask=batch.attention_mask.long(), output_hidden_states=True, **kwargs)
    return out.hidden_states[layer]  # (B, T, H); 0 = embedding output


def embedding_views(
    model: nn.Module, batch: Batch, positions: Tensor, *, smart: Optional[Any] = None, noise: Optional[Any] = None,
    layer: int = 2,
) -> dict[str, dict[str, Tensor]]:
    """Vectors ``(N, H)`` of the ``positions`` ``(N, 2)`` (row, column) of ``batch`` per depth and condition.

    Args:
        model: a :class:`xaicore.models.TransformerClassifier`.
        batch: the inputs.
        positions: ``(N, 2)`` long (example, token) pairs to collect.
        smart: a :class:`xaicore.perturbation.smart.SmartRegularizer` (or None to skip).
        noise: a :class:`xaicore.perturbation.noise.SimilarWordNoise` (or None to skip).
        layer: encoder layer of the second depth (paper: 2; the last one if the model has fewer).

    Returns:
        ``{"embeddings": {condition: (N, H)}, "layer<k>": {...}}`` with conditions
        ``clean``, ``smart``, ``noise`` (those requested).
    """
    layer = min(layer, int(model.model.config.num_hidden_layers))  # a shallower model: its last layer
    was_training = model.training
    model.eval()
    rows, cols = positions[:, 0], positions[:, 1]
    pick = lambda x: x[rows, cols].detach()  # noqa: E731
    views: dict[str, dict[str, Tensor]] = {"embeddings": {}, f"layer{layer}": {}}
    try:
        with torch.no_grad():
            views["embeddings"]["clean"] = pick(model.embedding_output(batch.input_ids, batch.token_type_ids))
            views[f"layer{layer}"]["clean"] = pick(_hidden(model, batch, layer, input_ids=batch.input_ids))
        kwargs = {} if batch.token_type_ids is None else {"token_type_ids": batch.token_type_ids}
        clean = model(batch.input_ids, batch.attention_mask, **kwargs)
        if smart is not None:
            adv, _ = smart.adversarial_input(model, batch, clean)
            if adv is not None:
                with torch.no_grad():
                    emb = adv if smart.target == "embedding_output" else \
                        _hidden(model, batch, 0, inputs_embeds=adv)
                    views["embeddings"]["smart"] = pick(emb)
                    views[f"layer{layer}"]["smart"] = pick(_hidden(model, batch, layer, inputs_embeds=adv))
        if noise is not None:
            new, _ = noise.noised(model, batch, clean, batch.labels)
            with torch.no_grad():
                views["embeddings"]["noise"] = pick(_hidden(model, batch, 0, inputs_embeds=new.detach()))
                views[f"layer{layer}"]["noise"] = pick(_hidden(model, batch, layer, inputs_embeds=new.detach()))
    finally:
        model.train(was_training)
    return views


def pca_2d(groups: dict[str, Tensor]) -> dict[str, Tensor]:
    """Project every ``(N_i, H)`` group onto the first two principal components of all of them together."""
    names = list(groups)
    X = torch.cat([groups[n].float() for n in names])  # (N, H)
    Xc = X - X.mean(0, keepdim=True)
    _, _, Vh = torch.linalg.svd(Xc, full_matrices=False)
    coords = Xc @ Vh[:2].T  # (N, 2)
    out, start = {}, 0
    for n in names:
        out[n] = coords[start : start + len(groups[n])]
        start += len(groups[n])
    return out
