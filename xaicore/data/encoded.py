"""Tokenise once, pad per batch (issue 18): :func:`encode_examples` turns a split's examples into unpadded
:class:`EncodedExample` s once; :func:`collate_encoded` pads any subset of them into the :class:`Batch` that
the encoder's ``collate`` would build from the raw texts of those examples (ids, masks, token types,
rationale masks, labels, index), without tokenising again.

Supports :class:`~xaicore.data.vocab.WordEncoder` and :class:`~xaicore.data.vocab.HFEncoder`; another
encoder may provide ``encode_examples`` / ``collate_encoded`` methods with the same signatures.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from xaicore.data.vocab import HFEncoder, WordEncoder, word_spans, word_tokenize
from xaicore.types import Batch

__all__ = ["EncodedExample", "encode_examples", "collate_encoded", "padded_width"]


@dataclass(frozen=True)
class EncodedExample:
    """One example tokenised once, unpadded.

    Attributes:
        input_ids: the token ids (special tokens included, truncated).
        token_type_ids: segment ids, or ``None`` when the encoder gives none.
        special_tokens_mask: 1 on special tokens, or ``None`` (word encoder).
        rationale: positions marked as evidence, ``()`` for none; ``None``: the batch gets no
            ``rationale_mask`` (no rationales, or a slow HF tokenizer).
    """

    input_ids: tuple[int, ...]
    token_type_ids: Optional[tuple[int, ...]] = None
    special_tokens_mask: Optional[tuple[int, ...]] = None
    rationale: Optional[tuple[int, ...]] = None

    def __len__(self) -> int:
        return len(self.input_ids)


def _check(texts: Sequence[str], **others: Optional[Sequence[Any]]) -> None:
    for name, value in others.items():
        if value is not None and len(value) != len(texts):
            raise ValueError(f"{name} has {len(value)} entries but texts has {len(texts)}")


def _word_examples(enc: WordEncoder, texts, text_pairs, rationales) -> list[EncodedExample]:
    out = []
    for i, text in enumerate(texts):
        pair = enc.vocab.encode(text_pairs[i]) if text_pairs is not None else None
        a, b = enc.truncate(enc.vocab.encode(text), pair)
        types = (0,) * len(a) + (1,) * len(b or ()) if text_pairs is not None else None
        rat = None
        if rationales is not None:
            rat = ()
            if rationales[i]:
                n_words = len(word_tokenize(text))
                for w in rationales[i]:
                    if not 0 <= int(w) < n_words:
                        raise ValueError(f"rationale index {w} out of range for example {i} with {n_words} word tokens")
                rat = tuple(sorted({int(w) for w in rationales[i] if int(w) < len(a)}))
        out.append(EncodedExample(tuple(a + (b or [])), types, None, rat))
    return out


def _hf_examples(enc: HFEncoder, texts, text_pairs, rationales) -> list[EncodedExample]:
    want_offsets = rationales is not None and bool(getattr(enc.tokenizer, "is_fast", False))
    tok = enc.tokenizer(list(texts), list(text_pairs) if text_pairs is not None else None, padding=False,
                        truncation=True, max_length=enc.max_length, return_special_tokens_mask=True,
                        return_offsets_mapping=want_offsets)
    types_all = tok.get("token_type_ids")
    out = []
    for i in range(len(texts)):
        special = tuple(int(x) for x in tok["special_tokens_mask"][i])
        rat = None
        if want_offsets:
            rat = ()
            if rationales[i]:
                spans = word_spans(texts[i])
                chars = []
                for w in rationales[i]:
                    if not 0 <= int(w) < len(spans):
                        raise ValueError(f"rationale index {w} out of range for example {i} with {len(spans)} "
                                         f"word tokens")
                    chars.append(spans[int(w)][1:])
                seq_ids = tok.sequence_ids(i)
                rat = tuple(t for t, (a, b) in enumerate(tok["offset_mapping"][i])
                            if seq_ids[t] == 0 and b > a and not special[t] and any(s < b and a < e for s, e in chars))
        out.append(EncodedExample(tuple(int(x) for x in tok["input_ids"][i]),
                                  tuple(int(x) for x in types_all[i]) if types_all is not None else None, special, rat))
    return out


def encode_examples(encoder: Any, texts: Sequence[str], text_pairs: Optional[Sequence[str]] = None,
                    rationales: Optional[Sequence[Optional[Sequence[int]]]] = None) -> list[EncodedExample]:
    """Tokenise every example once (unpadded; one tokenizer call for an HF encoder). Arguments as in
    :meth:`xaicore.data.vocab.Encoder.collate`; rationale indices are checked here."""
    if len(texts) == 0:
        return []
    _check(texts, text_pairs=text_pairs, rationales=rationales)
    if isinstance(encoder, WordEncoder):
        return _word_examples(encoder, texts, text_pairs, rationales)
    if isinstance(encoder, HFEncoder):
        return _hf_examples(encoder, texts, text_pairs, rationales)
    return list(encoder.encode_examples(texts, text_pairs=text_pairs, rationales=rationales))


def padded_width(longest: int, pad_multiple: Optional[int] = None, max_length: Optional[int] = None) -> int:
    """The padded length ``T`` of a batch whose longest example has ``longest`` tokens: ``longest`` itself
    (``pad_multiple=None``), else rounded up to a multiple of ``pad_multiple`` (compiled runs,
    :mod:`xaicore.compilation`: fewer distinct shapes) but never past ``max_length`` (the encoder's limit:
    a model's position table may end there) when that is not below ``longest``. The extra positions are
    padding (mask False)."""
    if pad_multiple is None:
        return longest
    if isinstance(pad_multiple, bool) or not isinstance(pad_multiple, int) or pad_multiple < 1:
        raise ValueError(f"pad_multiple must be an int >= 1 or None, got {pad_multiple!r}")
    width = -(-longest // pad_multiple) * pad_multiple
    return min(width, max_length) if max_length is not None and max_length >= longest else width


def collate_encoded(encoder: Any, rows: Sequence[EncodedExample], labels: Optional[Sequence[int]] = None,
                    index: Optional[Sequence[int]] = None, *, pad_multiple: Optional[int] = None) -> Batch:
    """Pad pre-encoded ``rows`` into one :class:`Batch`, as ``encoder.collate`` pads: the word encoder on the
    right with id 0 (``T >= 1``); an HF encoder as its tokenizer's ``padding="longest"`` (pad id, pad token
    type, padding side). No tokenisation. ``pad_multiple``: the width rounded up to a multiple of it, at most the
    encoder's ``max_length`` (:func:`padded_width`; more padding on the padding side, masks False there);
    ``None``: the longest row."""
    if len(rows) == 0:
        raise ValueError("cannot collate an empty list of examples")
    _check(rows, labels=labels, index=index)
    if isinstance(encoder, WordEncoder):
        pad, type_pad, left, special = encoder.pad_token_id, 0, False, False
        width = padded_width(max(1, max(len(r) for r in rows)), pad_multiple, encoder.max_length)
    elif isinstance(encoder, HFEncoder):
        tok = encoder.tokenizer
        pad, type_pad = encoder.pad_token_id, int(getattr(tok, "pad_token_type_id", 0) or 0)
        left, special = getattr(tok, "padding_side", "right") == "left", True
        width = padded_width(max(len(r) for r in rows), pad_multiple, encoder.max_length)
    else:
        kwargs = {} if pad_multiple is None else {"pad_multiple": pad_multiple}
        return encoder.collate_encoded(rows, labels=labels, index=index, **kwargs)
    B = len(rows)
    input_ids = torch.full((B, width), pad, dtype=torch.long)
    attention = torch.zeros(B, width, dtype=torch.bool)
    types = torch.full((B, width), type_pad, dtype=torch.long) if rows[0].token_type_ids is not None else None
    smask = torch.zeros(B, width, dtype=torch.bool) if special else None
    rmask = torch.zeros(B, width, dtype=torch.bool) if rows[0].rationale is not None else None
    for i, r in enumerate(rows):
        n = len(r)
        off = width - n if left else 0
        sl = slice(off, off + n)
        if n:
            input_ids[i, sl] = torch.as_tensor(r.input_ids, dtype=torch.long)
            attention[i, sl] = True
            if types is not None:
                types[i, sl] = torch.as_tensor(r.token_type_ids, dtype=torch.long)
            if smask is not None:
                smask[i, sl] = torch.as_tensor(r.special_tokens_mask, dtype=torch.bool)
        if rmask is not None and r.rationale:
            rmask[i, [off + t for t in r.rationale]] = True
    as_long = lambda v: None if v is None else torch.as_tensor([int(x) for x in v], dtype=torch.long)  # noqa: E731
    return Batch(input_ids=input_ids, attention_mask=attention, labels=as_long(labels), token_type_ids=types,
                 special_tokens_mask=smask, rationale_mask=rmask, index=as_long(index))
