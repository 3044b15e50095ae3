"""Synonym tables: for each vocabulary entry, synonyms that are themselves one vocabulary entry.

similar-word-noise.txt sec. 3.4 (WordNet_x): a token's replacement is a WordNet
synonym "whose tokenisation is a single vocabulary entry", random among several;
tokens without one stay unchanged. The table is built once per vocabulary from a
``synonyms(word) -> iterable of words`` callable (e.g. :func:`wordnet_synonyms`
over an NLTK WordNet reader) and has the layout of a neighbour table with ``-1``
padding, so :class:`xaicore.perturbation.noise.SimilarWordNoise` consumes both alike.

Token conventions: WordPiece continuation pieces (``##ing``), excluded entries
(special tokens, unused slots) and entries that are not alphabetic words get no
synonyms. A byte-level BPE entry ``Ġword`` (RoBERTa) is the word ``word`` with a
leading space; its synonyms are looked up as ``Ġsynonym``. For a lower-case
(uncased) vocabulary synonyms are lower-cased.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence

import torch
from torch import Tensor

__all__ = ["synonym_table", "wordnet_synonyms"]

_SPACE = "\u0120"  # byte-level BPE's leading-space marker 'Ġ'


def synonym_table(
    tokens: Sequence[str],
    synonyms: Callable[[str], Iterable[str]],
    *,
    exclude: Optional[Tensor] = None,
    max_synonyms: int = 16,
) -> Tensor:
    """``(V, S)`` long table of synonym ids per vocabulary id, ``-1`` padded (``S >= 1``).

    Args:
        tokens: vocabulary entries in id order.
        synonyms: word -> candidate synonyms (order kept; duplicates and the word itself dropped).
        exclude: ``(V,)`` bool, entries that neither get nor serve as synonyms.
        max_synonyms: at most this many synonyms per entry (the first ones).
    """
    index = {t: i for i, t in enumerate(tokens)}
    uncased = all(t == t.lower() for t in tokens if t and t.isalpha())
    ex = exclude.tolist() if exclude is not None else [False] * len(tokens)
    rows: list[list[int]] = []
    for i, tok in enumerate(tokens):
        row: list[int] = []
        if tok and not ex[i] and not tok.startswith("##"):
            prefix = _SPACE if tok.startswith(_SPACE) else ""
            word = tok[len(prefix):]
            if word.isalpha():
                for syn in synonyms(word):
                    syn = syn.lower() if uncased else syn
                    j = index.get(prefix + syn)
                    if j is not None and j != i and not ex[j] and j not in row:
                        row.append(j)
                        if len(row) >= max_synonyms:
                            break
        rows.append(row)
    width = max(1, max((len(r) for r in rows), default=0))
    table = torch.full((len(tokens), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            table[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return table


def wordnet_synonyms(reader: Any) -> Callable[[str], list[str]]:
    """``word -> synonyms`` from an NLTK ``WordNetCorpusReader``: the lemma names of every
    synset of ``word`` (all parts of speech, NLTK's morphy lemmatisation), in WordNet's
    order; multi-word lemmas (``ice_cream``) are dropped (they are never one entry)."""

    def lookup(word: str) -> list[str]:
        out: list[str] = []
        for synset in reader.synsets(word):
            for name in synset.lemma_names():
                if "_" not in name and name.lower() != word.lower() and name not in out:
                    out.append(name)
        return out

    return lookup
