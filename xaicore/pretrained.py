"""Initialise word-level embeddings from a pretrained sub-word model's input embeddings."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor


def word_vectors_from_subwords(
    words: Sequence[str], tokenizer: Any, embedding_matrix: Tensor, *, seed: int = 0, std: float | None = None
) -> tuple[Tensor, int]:
    """One vector per word: the mean of its sub-word pieces' input embeddings.

    Args:
        words: the word vocabulary, index ``i`` -> ``words[i]`` (index 0 = PAD
            gets zeros; any word the tokenizer maps only to its UNK token gets a
            random normal vector with the matrix's std).
        tokenizer: a Hugging Face tokenizer of the pretrained model.
        embedding_matrix: ``(V_sub, E)`` the model's input-embedding table.
        seed: seed for the random vectors of unknown words.
        std: std of those vectors (default: the matrix's std).

    Returns:
        ``((len(words), E) tensor, number of words found)``.
    """
    matrix = embedding_matrix.detach().float().cpu()
    gen = torch.Generator().manual_seed(seed)
    std = float(matrix.std()) if std is None else std
    out = torch.randn(len(words), matrix.shape[1], generator=gen) * std
    out[0] = 0.0
    unk = getattr(tokenizer, "unk_token_id", None)
    found = 0
    for i, word in enumerate(words):
        if i == 0:
            continue
        ids = [t for t in tokenizer.encode(word, add_special_tokens=False) if t != unk]
        if ids:
            out[i] = matrix[ids].mean(dim=0)
            found += 1
    return out, found
