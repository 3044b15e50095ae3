"""Documents -> sentences, for unlabeled pools built from labeled reviews (attention-vat.txt Fig. 2 needs
N_ul up to about 7 N_l: e.g. the sentences of the IMDB training reviews, labels dropped).

Rule (:func:`split_sentences`), exactly: HTML line breaks (``<br />``, ``<br>``) and newlines end a
sentence; otherwise a sentence ends after a run of ``.``, ``!`` or ``?`` (optionally followed by closing
quotes or brackets) that is followed by whitespace. Each piece is stripped of surrounding whitespace;
pieces with fewer than ``min_tokens`` :func:`xaicore.data.vocab.word_tokenize` tokens are dropped (default 3:
fragments such as ``"10/10"``, ``":)"``). Abbreviations (``"Mr. Smith"``) are split too: a known
limitation of a rule without a model; it only shortens a few pool entries.
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

from xaicore.data.text_dataset import TextDataset
from xaicore.data.vocab import word_tokenize

__all__ = ["split_sentences", "sentence_dataset"]

_BREAK = re.compile(r"<br\s*/?>|\n", re.I)
_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")


def split_sentences(text: str, *, min_tokens: int = 3) -> list[str]:
    """The sentences of ``text`` (see the module docstring for the rule), in order."""
    out = []
    for block in _BREAK.split(text):
        pos = 0
        for m in _END.finditer(block):
            out.append(block[pos:m.start() + len(m.group(0).rstrip())])
            pos = m.end()
        out.append(block[pos:])
    return [s for s in (p.strip() for p in out) if s and len(word_tokenize(s)) >= min_tokens]


def sentence_dataset(texts: Iterable[str], *, min_tokens: int = 3, name: Optional[str] = None) -> TextDataset:
    """An unlabeled :class:`TextDataset` of the sentences of ``texts`` (documents in order, then sentences)."""
    sentences = tuple(s for t in texts for s in split_sentences(t, min_tokens=min_tokens))
    if not sentences:
        raise ValueError(f"{name or 'texts'}: no sentence with at least {min_tokens} word tokens")
    return TextDataset(texts=sentences, labels=None, name=name or "sentences")
