"""Tests for xaicore.data.vocab: tokenisation, vocabulary and encoders."""
from __future__ import annotations

import json

import pytest
import torch

from xaicore.types import Batch
from xaicore.data.vocab import PAD, UNK, Encoder, HFEncoder, WordEncoder, WordVocab, word_spans, word_tokenize


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, World!", ["hello", ",", "world", "!"]),
        ("It's 1990s-style, GREAT!", ["it's", "0000s", "-", "style", ",", "great", "!"]),
        ("do n't  stop...", ["do", "n't", "stop", ".", ".", "."]),
        ("  tabs\tand\nnewlines ", ["tabs", "and", "newlines"]),
        ("Price: $3.50", ["price", ":", "$", "0", ".", "00"]),
        ("", []),
        ("   ", []),
        ("Café Ünïcode", ["café", "ünïcode"]),
    ],
)
def test_word_tokenize_known_answers(text, expected):
    assert word_tokenize(text) == expected


def test_word_spans_point_into_raw_text():
    text = "The 2 CATS, don't!"
    spans = word_spans(text)
    assert [t for t, _, _ in spans] == word_tokenize(text)
    assert [text[s:e] for _, s, e in spans] == ["The", "2", "CATS", ",", "don't", "!"]


def test_vocab_build_order_and_specials():
    vocab = WordVocab.build(["b a a", "c b a", "z y"])
    # freq desc (a:3, b:2), then alphabetical among ties (c, y, z: 1)
    assert vocab.itos == (PAD, UNK, "a", "b", "c", "y", "z")
    assert vocab.pad_id == 0 and vocab.unk_id == 1
    assert len(vocab) == 7


def test_vocab_min_freq_and_max_size():
    texts = ["b a a", "c b a", "z y"]
    assert WordVocab.build(texts, min_freq=2).itos == (PAD, UNK, "a", "b")
    assert WordVocab.build(texts, max_size=3).itos == (PAD, UNK, "a")
    with pytest.raises(ValueError, match="max_size"):
        WordVocab.build(texts, max_size=1)
    with pytest.raises(ValueError, match="min_freq"):
        WordVocab.build(texts, min_freq=0)


def test_vocab_literal_specials_do_not_collide():
    vocab = WordVocab.build(["<unk> <pad> word"])
    assert vocab.itos[:2] == (PAD, UNK)
    assert len(set(vocab.itos)) == len(vocab.itos)


def test_encode_decode_roundtrip_and_unk():
    vocab = WordVocab.build(["the cat sat"])
    ids = vocab.encode("The DOG sat")
    assert ids == [vocab.token_to_id("the"), 1, vocab.token_to_id("sat")]
    assert vocab.decode(ids + [0, 0]) == "the <unk> sat"
    assert vocab.decode(torch.tensor(ids)) == "the <unk> sat"


def test_vocab_dict_roundtrip_through_json():
    vocab = WordVocab.build(["x y y z z z"])
    again = WordVocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert again == vocab and again.encode("z y q") == vocab.encode("z y q")


@pytest.mark.parametrize(
    "state, message",
    [({}, "itos"), ({"itos": ["a", "b"]}, "must start with"), ({"itos": [PAD, UNK, "a", "a"]}, "duplicate")],
)
def test_vocab_from_dict_rejects_bad_state(state, message):
    with pytest.raises(ValueError, match=message):
        WordVocab.from_dict(state)


# ---------------------------------------------------------------- WordEncoder


@pytest.fixture
def word_encoder() -> WordEncoder:
    return WordEncoder(WordVocab.build(["a b c d e f g"]))


def test_word_encoder_padding_and_fields(word_encoder):
    v = word_encoder.vocab
    batch = word_encoder.collate(["a b c", "d", "e f"], labels=[1, 0, 1], index=[7, 8, 9])
    assert isinstance(batch, Batch)
    assert batch.input_ids.shape == (3, 3) and batch.input_ids.dtype == torch.long
    assert batch.input_ids[1].tolist() == [v.token_to_id("d"), 0, 0]
    assert batch.attention_mask.dtype == torch.bool
    assert batch.attention_mask.tolist() == [[True] * 3, [True, False, False], [True, True, False]]
    assert batch.labels.tolist() == [1, 0, 1] and batch.index.tolist() == [7, 8, 9]
    assert batch.token_type_ids is None and batch.special_tokens_mask is None and batch.rationale_mask is None
    assert word_encoder.pad_token_id == 0 and isinstance(word_encoder, Encoder)


def test_word_encoder_rationales_truncation_and_pairs(word_encoder):
    enc = WordEncoder(word_encoder.vocab, max_length=4)
    batch = enc.collate(["a b c d e f", "a b"], rationales=[(1, 5), ()])
    assert batch.input_ids.shape == (2, 4)
    # index 5 is truncated away; index 1 is kept
    assert batch.rationale_mask.tolist() == [[False, True, False, False], [False] * 4]

    pair = enc.collate(["a b c", "a"], text_pairs=["d e f", "b"], rationales=[(0,), (0,)])
    v = enc.vocab
    # longest-first truncation to 4 positions: 2 + 2
    assert pair.input_ids[0].tolist() == [v.token_to_id(t) for t in "a b d e".split()]
    assert pair.token_type_ids.tolist() == [[0, 0, 1, 1], [0, 1, 0, 0]]
    assert pair.attention_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert pair.rationale_mask.tolist() == [[True, False, False, False], [True, False, False, False]]


def test_word_encoder_empty_text_still_has_one_column(word_encoder):
    batch = word_encoder.collate(["", ""])
    assert batch.input_ids.shape == (2, 1) and not batch.attention_mask.any()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(texts=[]), "empty list"),
        (dict(texts=["a"], labels=[0, 1]), "labels has 2 entries"),
        (dict(texts=["a b"], rationales=[(2,)]), "out of range"),
    ],
)
def test_word_encoder_errors(word_encoder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        word_encoder.collate(**kwargs)


# ------------------------------------------------------------------ HFEncoder

_HF_VOCAB = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "i", "don", "'", "t", "like", "play", "##ing", "it", "is", "fun", "."]


@pytest.fixture
def bert_tokenizer(tmp_path):
    transformers = pytest.importorskip("transformers")
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(_HF_VOCAB) + "\n")
    tok = transformers.BertTokenizerFast(vocab=str(vocab_file))
    assert tok.is_fast and tok.pad_token_id == 3  # [PAD] deliberately not id 0
    return tok


def test_hf_encoder_single_texts(bert_tokenizer):
    enc = HFEncoder(bert_tokenizer, max_length=16)
    assert enc.pad_token_id == 3 and isinstance(enc, Encoder)
    batch = enc.collate(["I like playing", "fun"], labels=[1, 0], index=[4, 5])
    ids = {t: i for i, t in enumerate(_HF_VOCAB)}
    assert batch.input_ids.tolist() == [
        [ids["[CLS]"], ids["i"], ids["like"], ids["play"], ids["##ing"], ids["[SEP]"]],
        [ids["[CLS]"], ids["fun"], ids["[SEP]"], 3, 3, 3],
    ]
    assert batch.attention_mask.tolist() == [[True] * 6, [True] * 3 + [False] * 3]
    # special-token mask from the tokenizer, restricted to real positions
    assert batch.special_tokens_mask.tolist() == [
        [True, False, False, False, False, True],
        [True, False, True, False, False, False],
    ]
    assert batch.content_mask.sum(1).tolist() == [4, 1]
    assert batch.labels.tolist() == [1, 0] and batch.index.tolist() == [4, 5]


def test_hf_encoder_pairs_token_type_ids(bert_tokenizer):
    batch = HFEncoder(bert_tokenizer).collate(["i like it"], text_pairs=["it is fun"])
    assert batch.token_type_ids.tolist() == [[0, 0, 0, 0, 0, 1, 1, 1, 1]]
    assert batch.special_tokens_mask.tolist() == [[True, False, False, False, True, False, False, False, True]]


def test_hf_encoder_maps_word_rationales_to_subwords(bert_tokenizer):
    # word_tokenize: ["i", "don't", "like", "playing", "."]; BERT splits "don't" into 3 pieces
    text = "I don't like playing."
    assert word_tokenize(text)[1] == "don't"
    batch = HFEncoder(bert_tokenizer).collate([text, text], rationales=[(1, 3), None], text_pairs=["playing", "it"])
    pieces = bert_tokenizer.convert_ids_to_tokens(batch.input_ids[0].tolist())
    marked = [p for p, m in zip(pieces, batch.rationale_mask[0].tolist()) if m]
    assert marked == ["don", "'", "t", "play", "##ing"]  # not the pair's "playing"
    assert not batch.rationale_mask[1].any()


def test_hf_encoder_truncation_and_errors(bert_tokenizer):
    batch = HFEncoder(bert_tokenizer, max_length=4).collate(["i like playing it"], rationales=[(3,)])
    assert batch.input_ids.shape == (1, 4) and not batch.rationale_mask.any()
    with pytest.raises(ValueError, match="out of range"):
        HFEncoder(bert_tokenizer).collate(["i like"], rationales=[(5,)])
    bert_tokenizer.pad_token = None
    with pytest.raises(ValueError, match="pad token"):
        HFEncoder(bert_tokenizer)
