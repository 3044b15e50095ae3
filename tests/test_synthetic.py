"""Tests for xaicore.data.synthetic: determinism, exact rationales, learnability."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from xaicore.data.batching import batches
from xaicore.data.synthetic import (
    CONFOUNDER_WORDS,
    DISTRACTOR_WORDS,
    NEGATIVE_CUES,
    POSITIVE_CUES,
    make_synthetic_sentiment,
    synthetic_splits,
)
from xaicore.data.vocab import WordEncoder, WordVocab, word_tokenize


def test_deterministic_by_seed_and_independent_of_global_rng():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    a = make_synthetic_sentiment(50, seed=3)
    random.seed(2)
    np.random.seed(2)
    torch.manual_seed(2)
    b = make_synthetic_sentiment(50, seed=3)
    assert a == b
    assert make_synthetic_sentiment(50, seed=4).texts != a.texts


def test_labels_and_rationales_are_exact():
    ds = make_synthetic_sentiment(400, seed=0, p_opposite=0.5)
    pos, neg = set(POSITIVE_CUES), set(NEGATIVE_CUES)
    allowed = pos | neg | set(DISTRACTOR_WORDS) | set(CONFOUNDER_WORDS)
    saw_opposite = False
    for text, y, rat, n_pos, n_neg in zip(ds.texts, ds.labels, ds.rationales, ds.extras["n_positive"], ds.extras["n_negative"]):
        words = text.split()
        assert word_tokenize(text) == words  # rationale indices are word_tokenize indices
        assert 8 <= len(words) <= 20 and set(words) <= allowed
        cue_positions = tuple(i for i, w in enumerate(words) if w in pos or w in neg)
        assert rat == cue_positions
        p = sum(w in pos for w in words)
        q = sum(w in neg for w in words)
        assert (p, q) == (n_pos, n_neg) and p != q  # ties never generated
        assert y == int(p > q)
        assert 1 <= max(p, q) <= 3
        saw_opposite |= min(p, q) > 0
    assert saw_opposite
    assert sum(ds.labels) == 200 and ds.label_names == ("negative", "positive")


def test_confounders_carry_no_signal():
    ds = make_synthetic_sentiment(2000, seed=1, confounder_rate=0.2)
    rate = {}
    for y in (0, 1):
        words = [w for t, l in zip(ds.texts, ds.labels) if l == y for w in t.split()]
        rate[y] = sum(w in CONFOUNDER_WORDS for w in words) / len(words)
    assert rate[0] > 0.1 and abs(rate[0] - rate[1]) < 0.02


def test_splits_sizes_and_independence():
    sp = synthetic_splits(0, n_train=100, n_dev=30, n_test=20)
    assert {k: len(v) for k, v in sp.items()} == {"train": 100, "dev": 30, "test": 20}
    assert sp["train"].name == "synthetic_sentiment:train"
    assert not set(sp["train"].texts) & set(sp["test"].texts)
    assert synthetic_splits(0, n_train=100, n_dev=30, n_test=20) == sp
    assert synthetic_splits(1, n_train=100, n_dev=30, n_test=20)["train"] != sp["train"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "n must be"),
        (dict(n=5, n_cues=(0, 2)), "n_cues"),
        (dict(n=5, min_len=4, max_len=10, n_cues=(1, 3)), "too short"),
        (dict(n=5, min_len=10, max_len=9), "min_len"),
        (dict(n=5, distractor_vocab=("plain", "excellent")), "share words"),
        (dict(n=5, positive_cues=("Great",)), "lower-case"),
        (dict(n=5, p_opposite=1.5), "probabilities"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_sentiment(seed=0, **kwargs)


class _TinyBiLSTM(nn.Module):
    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab_size, 32, padding_idx=0)
        self.lstm = nn.LSTM(32, 32, batch_first=True, bidirectional=True)
        self.out = nn.Linear(64, 2)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.emb(ids))
        m = mask.unsqueeze(-1).float()
        return self.out((h * m).sum(1) / m.sum(1))


@pytest.fixture
def one_thread():
    """Tiny models are much faster single-threaded (and the test box is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_small_bilstm_learns_the_task(one_thread):
    torch.manual_seed(0)
    sp = synthetic_splits(0, n_train=2000, n_dev=500, n_test=10)
    enc = WordEncoder(WordVocab.build(sp["train"].texts))
    model = _TinyBiLSTM(enc.vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(2):
        for b in batches(sp["train"], enc, batch_size=32, shuffle=True, seed=0, epoch=epoch):
            loss = nn.functional.cross_entropy(model(b.input_ids, b.attention_mask), b.labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    correct = 0
    with torch.no_grad():
        for b in batches(sp["dev"], enc, batch_size=250, shuffle=False, seed=0):
            correct += (model(b.input_ids, b.attention_mask).argmax(-1) == b.labels).sum().item()
    assert correct / len(sp["dev"]) > 0.9
