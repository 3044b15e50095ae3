"""Word tokenisation, word vocabularies and encoders that build :class:`Batch` es.

Conventions shared by the whole data layer:

* **Word tokens** are what :func:`word_tokenize` returns. Dataset rationales
  (:attr:`xaicore.data.loading.TextDataset.rationales`) are indices into this list for
  the first text of each example.
* An :class:`Encoder` turns a list of examples into one padded :class:`Batch`
  (``collate``). :class:`WordEncoder` produces one position per word token (no
  special tokens); :class:`HFEncoder` wraps a Hugging Face tokenizer and maps
  word-level rationales onto its sub-word positions.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping, Optional, Protocol, Sequence, runtime_checkable

import torch

from xaicore.types import Batch

__all__ = [
    "PAD",
    "UNK",
    "word_tokenize",
    "word_spans",
    "WordVocab",
    "Encoder",
    "WordEncoder",
    "HFEncoder",
]

PAD = "<pad>"
UNK = "<unk>"

# A word is a maximal run of word characters (Unicode letters, digits, "_"),
# optionally joined by internal apostrophes ("don't", "n't", "o'clock");
# any other non-space character is a token of its own.
_TOKEN_RE = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")
_DIGIT_RE = re.compile(r"\d")


def _normalise(token: str) -> str:
    return _DIGIT_RE.sub("0", token.lower())


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """Word tokens of ``text`` with their character spans.

    Args:
        text: raw text.

    Returns:
        ``[(token, start, end), ...]`` where ``text[start:end]`` is the raw
        surface form and ``token`` its normalised form (see
        :func:`word_tokenize`). Spans index the *original* ``text``.
    """
    return [(_normalise(m.group()), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def word_tokenize(text: str) -> list[str]:
    """Split ``text`` into normalised word tokens.

    The rule, exactly:

    1. Tokens are found on the raw text with the regular expression
       ``\\w+(?:['’]\\w+)*|[^\\w\\s]``: a run of word characters (Unicode
       letters, digits, underscore) with internal apostrophes kept
       (``"don't"`` stays one token, PTB-style ``"n't"`` too), or a single
       character that is neither a word character nor whitespace (each
       punctuation mark is its own token, ``"..."`` gives three ``"."``).
       Whitespace only separates.
    2. Each token is lower-cased (``str.lower``) and every Unicode decimal
       digit is replaced by ``"0"``.

    Example: ``"It's 1990s-style, GREAT!"`` ->
    ``["it's", "0000s", "-", "style", ",", "great", "!"]``.

    Args:
        text: raw text.

    Returns:
        List of tokens (empty for an empty / whitespace-only text).
    """
    return [tok for tok, _, _ in word_spans(text)]


@dataclass(frozen=True)
class WordVocab:
    """A word-level vocabulary with ``PAD`` at index 0 and ``UNK`` at index 1.

    Attributes:
        itos: index -> token; ``itos[0] == PAD`` and ``itos[1] == UNK``.
    """

    itos: tuple[str, ...]
    _stoi: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        itos = tuple(self.itos)
        if len(itos) < 2 or itos[0] != PAD or itos[1] != UNK:
            raise ValueError(f"WordVocab.itos must start with ({PAD!r}, {UNK!r}), got {itos[:2]!r}")
        if len(set(itos)) != len(itos):
            dupes = sorted(t for t, c in Counter(itos).items() if c > 1)
            raise ValueError(f"WordVocab.itos has duplicate tokens: {dupes[:10]!r}")
        object.__setattr__(self, "itos", itos)
        object.__setattr__(self, "_stoi", {t: i for i, t in enumerate(itos)})

    pad_id: ClassVar[int] = 0
    unk_id: ClassVar[int] = 1

    @classmethod
    def build(cls, texts: Iterable[str], *, min_freq: int = 1, max_size: Optional[int] = None) -> "WordVocab":
        """Count :func:`word_tokenize` tokens of ``texts`` and build a vocabulary.

        Ordering is deterministic: ``PAD``, ``UNK``, then tokens by decreasing
        frequency, ties broken alphabetically (Python string order).

        Args:
            texts: iterable of raw texts.
            min_freq: keep tokens seen at least this many times (>= 1).
            max_size: maximum total size *including* ``PAD`` and ``UNK``
                (>= 2), or ``None`` for no limit.

        Returns:
            The vocabulary.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must be >= 2 (PAD and UNK), got {max_size}")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(word_tokenize(text))
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max_size - 2]
        return cls((PAD, UNK, *words))

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self._stoi

    def token_to_id(self, token: str) -> int:
        """Id of an already-normalised token (``UNK`` id if unknown)."""
        return self._stoi.get(token, 1)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``word_tokenize(text)``; unknown words map to ``UNK`` (1)."""
        return [self._stoi.get(tok, 1) for tok in word_tokenize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Space-joined tokens of ``ids``, skipping ``PAD`` (0).

        Args:
            ids: token ids (ints or a 1-D tensor).

        Returns:
            The decoded string (normalised tokens, not the original text).
        """
        return " ".join(self.itos[int(i)] for i in ids if int(i) != 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, inverse of :meth:`from_dict`."""
        return {"type": "WordVocab", "itos": list(self.itos)}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> "WordVocab":
        """Rebuild a vocabulary saved with :meth:`to_dict`."""
        if "itos" not in state:
            raise ValueError("WordVocab state has no 'itos' entry")
        return cls(tuple(state["itos"]))


@runtime_checkable
class Encoder(Protocol):
    """Turns lists of examples into padded :class:`Batch` es.

    Attributes:
        pad_token_id: id used to pad ``input_ids``.
        vocab_size: number of ids the encoder can produce.
    """

    pad_token_id: int

    @property
    def vocab_size(self) -> int: ...

    def collate(
        self,
        texts: Sequence[str],
        text_pairs: Optional[Sequence[str]] = None,
        labels: Optional[Sequence[int]] = None,
        rationales: Optional[Sequence[Optional[Sequence[int]]]] = None,
        index: Optional[Sequence[int]] = None,
    ) -> Batch:
        """Encode and pad ``B`` examples.

        Args:
            texts: ``B`` first texts.
            text_pairs: ``B`` second texts for sentence-pair tasks, or ``None``.
            labels: ``B`` class ids, or ``None`` (the batch gets ``labels=None``).
            rationales: per example, word-token indices (see
                :func:`word_tokenize`) into the first text marked as evidence,
                or ``None`` for an example without one; ``None`` overall gives
                ``rationale_mask=None``.
            index: ``B`` dataset positions, or ``None``.

        Returns:
            A :class:`Batch` with ``(B, T)`` tensors, ``T`` the longest encoded
            example (at least 1).
        """
        ...


def _check_lengths(texts: Sequence[str], **others: Optional[Sequence[Any]]) -> None:
    if len(texts) == 0:
        raise ValueError("cannot collate an empty list of examples")
    for name, value in others.items():
        if value is not None and len(value) != len(texts):
            raise ValueError(f"{name} has {len(value)} entries but texts has {len(texts)}")


def _long(values: Optional[Sequence[int]]) -> Optional[torch.Tensor]:
    return None if values is None else torch.as_tensor([int(v) for v in values], dtype=torch.long)


@dataclass(frozen=True)
class WordEncoder:
    """Word-level encoder: one position per :func:`word_tokenize` token.

    No special tokens are added (``special_tokens_mask`` is ``None``). For a
    sentence pair the two token lists are concatenated and
    ``token_type_ids`` is 0 on the first text, 1 on the second (0 on padding).
    With ``max_length`` the longer side of a pair is truncated first (single
    texts are cut at the end). An empty text encodes to zero positions; the
    batch still has ``T >= 1``, so an all-empty example is one padding column.

    Attributes:
        vocab: the vocabulary.
        max_length: maximum number of positions per example, or ``None``.
    """

    vocab: WordVocab
    max_length: Optional[int] = None

    def __post_init__(self) -> None:
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")

    @property
    def pad_token_id(self) -> int:
        return 0

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def truncate(self, a: list[int], b: Optional[list[int]]) -> tuple[list[int], Optional[list[int]]]:
        """Cut ids ``a`` (and pair ids ``b``) to ``max_length``: the longer side of a pair first."""
        if self.max_length is None:
            return a, b
        if b is None:
            return a[: self.max_length], None
        la, lb = len(a), len(b)
        while la + lb > self.max_length:
            if la >= lb:
                la -= 1
            else:
                lb -= 1
        return a[:la], b[:lb]

    def collate(
        self,
        texts: Sequence[str],
        text_pairs: Optional[Sequence[str]] = None,
        labels: Optional[Sequence[int]] = None,
        rationales: Optional[Sequence[Optional[Sequence[int]]]] = None,
        index: Optional[Sequence[int]] = None,
    ) -> Batch:
        """See :meth:`Encoder.collate`."""
        _check_lengths(texts, text_pairs=text_pairs, labels=labels, rationales=rationales, index=index)
        rows: list[tuple[list[int], Optional[list[int]]]] = []
        for i, text in enumerate(texts):
            pair = self.vocab.encode(text_pairs[i]) if text_pairs is not None else None
            rows.append(self.truncate(self.vocab.encode(text), pair))
        lengths = [len(a) + (len(b) if b is not None else 0) for a, b in rows]
        batch, width = len(rows), max(1, max(lengths))
        input_ids = torch.zeros(batch, width, dtype=torch.long)
        attention = torch.zeros(batch, width, dtype=torch.bool)
        types = torch.zeros(batch, width, dtype=torch.long) if text_pairs is not None else None
        rmask = torch.zeros(batch, width, dtype=torch.bool) if rationales is not None else None
        for i, (a, b) in enumerate(rows):
            ids = a + (b or [])
            input_ids[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            attention[i, : len(ids)] = True
            if types is not None and b:
                types[i, len(a) : len(ids)] = 1
            if rmask is not None and rationales[i]:
                n_words = len(word_tokenize(texts[i]))
                for w in rationales[i]:
                    if not 0 <= int(w) < n_words:
                        raise ValueError(f"rationale index {w} out of range for example {i} with {n_words} word tokens")
                    if int(w) < len(a):
                        rmask[i, int(w)] = True
        return Batch(
            input_ids=input_ids,
            attention_mask=attention,
            labels=_long(labels),
            token_type_ids=types,
            special_tokens_mask=None,
            rationale_mask=rmask,
            index=_long(index),
        )


class HFEncoder:
    """Encoder wrapping a Hugging Face tokenizer (sub-word, with special tokens).

    * ``input_ids`` are padded with ``tokenizer.pad_token_id`` (a tokenizer
      without a pad token is rejected: set ``tokenizer.pad_token`` first).
    * ``token_type_ids`` are whatever the tokenizer returns (segment ids for
      pairs; zeros for single texts with BERT-like tokenizers; ``None`` for
      tokenizers that produce none).
    * ``special_tokens_mask`` is the tokenizer's special-tokens mask restricted
      to real (non-padding) positions.
    * Truncation: ``max_length`` with the tokenizer's default strategy
      (``longest_first`` for pairs).
    * Rationales: word indices (into :func:`word_tokenize` of the first text)
      are mapped to sub-word positions of the first sequence whose character
      offsets overlap the word's character span. Character offsets are used
      rather than ``word_ids()`` because the tokenizer's notion of "word"
      differs from :func:`word_tokenize` (e.g. BERT splits ``"don't"`` into
      three words). This needs a fast tokenizer; with a slow one
      ``rationale_mask`` is ``None``.

    Args:
        tokenizer: a ``transformers`` tokenizer (``PreTrainedTokenizerBase``).
        max_length: maximum sequence length including special tokens.
    """

    def __init__(self, tokenizer: Any, max_length: Optional[int] = 128) -> None:
        if getattr(tokenizer, "pad_token_id", None) is None:
            raise ValueError("tokenizer has no pad token (pad_token_id is None); set tokenizer.pad_token first")
        if max_length is not None and max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def collate(
        self,
        texts: Sequence[str],
        text_pairs: Optional[Sequence[str]] = None,
        labels: Optional[Sequence[int]] = None,
        rationales: Optional[Sequence[Optional[Sequence[int]]]] = None,
        index: Optional[Sequence[int]] = None,
    ) -> Batch:
        """See :meth:`Encoder.collate`."""
        _check_lengths(texts, text_pairs=text_pairs, labels=labels, rationales=rationales, index=index)
        is_fast = bool(getattr(self.tokenizer, "is_fast", False))
        want_offsets = rationales is not None and is_fast
        enc = self.tokenizer(
            list(texts),
            list(text_pairs) if text_pairs is not None else None,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
            return_offsets_mapping=want_offsets,
        )
        attention = enc["attention_mask"].bool()
        special = enc["special_tokens_mask"].bool() & attention
        types = enc.get("token_type_ids")
        rmask: Optional[torch.Tensor] = None
        if want_offsets:
            rmask = torch.zeros_like(attention)
            offsets = enc["offset_mapping"].tolist()
            for i, rat in enumerate(rationales):
                if not rat:
                    continue
                spans = word_spans(texts[i])
                chars = []
                for w in rat:
                    if not 0 <= int(w) < len(spans):
                        raise ValueError(f"rationale index {w} out of range for example {i} with {len(spans)} word tokens")
                    chars.append(spans[int(w)][1:])
                seq_ids = enc.sequence_ids(i)
                for t, (a, b) in enumerate(offsets[i]):
                    if seq_ids[t] != 0 or b <= a or special[i, t]:
                        continue
                    if any(s < b and a < e for s, e in chars):
                        rmask[i, t] = True
        return Batch(
            input_ids=enc["input_ids"].long(),
            attention_mask=attention,
            labels=_long(labels),
            token_type_ids=types.long() if types is not None else None,
            special_tokens_mask=special,
            rationale_mask=rmask,
            index=_long(index),
        )
