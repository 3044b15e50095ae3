"""Tests for xaicore.data.batching: deterministic batches and semi-supervised pairing."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from xaicore.data.batching import SemiSupervisedBatches, batch_indices, batches
from xaicore.data.loading import TextDataset
from xaicore.data.vocab import WordEncoder, WordVocab


def _plan(n, **kw):
    kw.setdefault("seed", 0)
    kw.setdefault("shuffle", True)
    return [b.tolist() for b in batch_indices(n, **kw)]


def test_batch_indices_cover_everything_once():
    plan = _plan(10, batch_size=4)
    assert [len(b) for b in plan] == [4, 4, 2]
    assert sorted(i for b in plan for i in b) == list(range(10))
    assert _plan(10, batch_size=4, drop_last=True) == plan[:2]
    assert _plan(7, batch_size=3, shuffle=False) == [[0, 1, 2], [3, 4, 5], [6]]


def test_batch_indices_deterministic_by_seed_and_epoch():
    a = _plan(50, batch_size=8, seed=3, epoch=1)
    assert a == _plan(50, batch_size=8, seed=3, epoch=1)
    assert a != _plan(50, batch_size=8, seed=3, epoch=2)
    assert a != _plan(50, batch_size=8, seed=4, epoch=1)
    np.random.seed(123)  # global RNG must not matter
    assert a == _plan(50, batch_size=8, seed=3, epoch=1)


def test_bucketing_groups_similar_lengths():
    lengths = [int(x) for x in np.random.default_rng(0).permutation(40)]
    plan = _plan(40, batch_size=5, lengths=lengths, bucket_pool=8)  # one pool = whole dataset
    assert sorted(i for b in plan for i in b) == list(range(40))
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in plan)
    assert spans == [(5 * k, 5 * k + 4) for k in range(8)]  # contiguous length ranges
    assert plan != _plan(40, batch_size=5, lengths=lengths, bucket_pool=8, epoch=1)
    with pytest.raises(ValueError, match="length"):
        _plan(40, batch_size=5, bucket_pool=2)


@pytest.mark.parametrize("kw", [dict(batch_size=0), dict(batch_size=2, seed=-1), dict(batch_size=2, epoch=-1)])
def test_batch_indices_rejects_bad_arguments(kw):
    with pytest.raises(ValueError):
        _plan(5, **kw)


@pytest.fixture
def toy():
    texts = tuple(" ".join(["w"] * (i % 4 + 1)) + f" t{chr(97 + i)}" for i in range(10))
    labeled = TextDataset(texts=texts, labels=tuple(i % 2 for i in range(10)), name="lab")
    unlabeled = TextDataset(texts=tuple(f"u{chr(97 + i)} x" for i in range(5)), labels=(1,) * 5, name="unl")
    enc = WordEncoder(WordVocab.build(texts + unlabeled.texts))
    return labeled, unlabeled, enc


def test_batches_yield_consistent_examples(toy):
    labeled, _, enc = toy
    seen = []
    for b in batches(labeled, enc, batch_size=4, shuffle=True, seed=1, bucket_pool=2):
        for row, i in enumerate(b.index.tolist()):
            assert b.labels[row].item() == labeled.labels[i]
            n_tok = int(b.attention_mask[row].sum())
            assert enc.vocab.decode(b.input_ids[row, :n_tok]) == labeled.texts[i]
            assert not b.attention_mask[row, n_tok:].any()
        seen += b.index.tolist()
    assert sorted(seen) == list(range(10))
    unl = next(batches(labeled.without_labels(), enc, batch_size=3, shuffle=False, seed=0))
    assert unl.labels is None and unl.index.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "ratio, expected",
    [
        (0.0, [None, None, None]),
        (1.0, [4, 4, 2]),
        (1.5, [6, 6, 3]),
        (3.0, [12, 12, 6]),
        (0.25, [1, 1, None]),  # round(0.5) == 0 -> no unlabeled batch
    ],
)
def test_semi_supervised_sizes(toy, ratio, expected):
    labeled, unlabeled, enc = toy
    ssb = SemiSupervisedBatches(labeled, unlabeled, enc, batch_size=4, ratio=ratio, seed=0)
    pairs = list(ssb.iter_epoch(0))
    assert len(ssb) == len(pairs) == 3
    assert [lb.size for lb, _ in pairs] == [4, 4, 2]
    assert [None if ub is None else ub.size for _, ub in pairs] == expected
    for lb, ub in pairs:
        assert lb.labels is not None
        assert ub is None or ub.labels is None


def test_unlabeled_pool_cycles_with_reshuffles(toy):
    labeled, unlabeled, enc = toy
    ssb = SemiSupervisedBatches(labeled, unlabeled, enc, batch_size=4, ratio=1.5, seed=0)
    drawn = [i for _, ub in ssb.iter_epoch(0) for i in ub.index.tolist()]
    assert len(drawn) == 15
    passes = [drawn[k : k + 5] for k in range(0, 15, 5)]
    assert all(sorted(p) == list(range(5)) for p in passes)  # each pass is a permutation
    assert len({tuple(p) for p in passes}) > 1  # reshuffled between passes
    assert Counter(drawn) == {i: 3 for i in range(5)}


def test_semi_supervised_determinism_and_set_epoch(toy):
    labeled, unlabeled, enc = toy

    def run(ssb, epoch=None):
        it = ssb.iter_epoch(epoch) if epoch is not None else iter(ssb)
        return [(lb.index.tolist(), ub.index.tolist()) for lb, ub in it]

    a = SemiSupervisedBatches(labeled, unlabeled, enc, batch_size=4, ratio=1.0, seed=7)
    b = SemiSupervisedBatches(labeled, unlabeled, enc, batch_size=4, ratio=1.0, seed=7)
    assert run(a, 2) == run(b, 2)
    assert run(a, 1) != run(a, 2)
    a.set_epoch(2)
    assert run(a) == run(b, 2)
    assert [(lb.index.tolist(), ub.index.tolist()) for lb, ub in a.epoch(1)] == run(b, 1)
    # labeled order matches plain batches() for the same (seed, epoch)
    plain = [x.index.tolist() for x in batches(labeled, enc, batch_size=4, shuffle=True, seed=7, epoch=2)]
    assert [lb for lb, _ in run(b, 2)] == plain


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ratio=-0.5), "ratio must be"),
        (dict(ratio=float("nan")), "ratio must be"),
        (dict(ratio=1.0, unlabeled=None), "non-empty unlabeled"),
        (dict(ratio=1.0, batch_size=0), "batch_size"),
    ],
)
def test_semi_supervised_errors(toy, kwargs, message):
    labeled, unlabeled, enc = toy
    args = dict(unlabeled=unlabeled, batch_size=4, seed=0) | kwargs
    with pytest.raises(ValueError, match=message):
        SemiSupervisedBatches(labeled, args.pop("unlabeled"), enc, **args)


def test_ratio_zero_allows_no_unlabeled_pool(toy):
    labeled, _, enc = toy
    pairs = list(SemiSupervisedBatches(labeled, None, enc, batch_size=5, ratio=0, seed=0))
    assert [ub for _, ub in pairs] == [None, None]
    with pytest.raises(ValueError, match="no labels"):
        SemiSupervisedBatches(labeled.without_labels(), None, enc, batch_size=5, ratio=0, seed=0)


# ---------------------------------------------------------------- issue 18: tokenise once, length-grouped batches
import dataclasses  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import torch  # noqa: E402

from xaicore.data.batching import (  # noqa: E402
    EncodedDataset, collate_indices, encode_dataset, eval_batches, pad_counts,
)
from xaicore.data.encoded import collate_encoded  # noqa: E402


def _pair_data(n=40, seed=0, rationales=True):
    rng = np.random.default_rng(seed)
    words = ["good", "great", "bad", "awful", "movie", "film", "a", "the", "is", "was", "man", "dog", "zzz"]
    text = lambda k: " ".join(rng.choice(words, size=k).tolist())  # noqa: E731
    texts = tuple(text(int(rng.integers(0, 12))) for _ in range(n))
    pairs = tuple(text(int(rng.integers(1, 9))) for _ in range(n))
    rats = tuple(() if i % 3 == 0 or not t else tuple(sorted({int(rng.integers(0, len(t.split()))), 0}))
                 for i, t in enumerate(texts)) if rationales else None
    return TextDataset(texts=texts, text_pairs=pairs, labels=tuple(i % 2 for i in range(n)), rationales=rats,
                       name="pairs")


def _word_encoder(data, max_length=None):
    return WordEncoder(WordVocab.build(list(data.texts[:25]) + list(data.text_pairs or ())), max_length=max_length)


def _hf_encoder(tmp_path, max_length=12, padding_side="right"):
    transformers = pytest.importorskip("transformers")
    from tests.tiny_transformer import make_model_dir
    from xaicore.data.vocab import HFEncoder

    tok = transformers.AutoTokenizer.from_pretrained(str(make_model_dir(tmp_path / "m")))
    tok.padding_side = padding_side
    return HFEncoder(tok, max_length=max_length)


def _assert_same_batch(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert (x is None) == (y is None), f.name
        if x is not None:
            assert x.dtype == y.dtype and torch.equal(x, y), f.name


@pytest.mark.parametrize("kind", ["word", "word_truncated", "hf", "hf_left", "hf_single"])
def test_pre_encoded_batches_equal_per_batch_tokenisation(kind, tmp_path):
    data = _pair_data()
    if kind == "hf_single":
        data = dataclasses.replace(data, text_pairs=None)
    if kind.startswith("word"):
        enc = _word_encoder(data, max_length=6 if kind == "word_truncated" else None)
    else:
        enc = _hf_encoder(tmp_path, padding_side="left" if kind == "hf_left" else "right")
    encoded = encode_dataset(data, enc)
    assert isinstance(encoded, EncodedDataset) and len(encoded) == len(data)
    for kw in ({"shuffle": True, "epoch": 1}, {"shuffle": False}):
        old = list(batches(data, enc, batch_size=7, seed=3, **kw))  # per-batch tokenisation (today's path)
        new = list(batches(encoded, enc, batch_size=7, seed=3, **kw))
        assert len(old) == len(new)
        for a, b in zip(old, new):
            _assert_same_batch(a, b)
    assert any(b.rationale_mask is not None and b.rationale_mask.any() for b in new) or kind == "hf_single"
    # unlabeled batches (no labels) too
    _assert_same_batch(collate_indices(data, enc, [5, 1, 9], with_labels=False),
                       collate_encoded(enc, [encoded.examples[i] for i in (5, 1, 9)], index=[5, 1, 9]))


def test_pre_encoded_batches_never_tokenise(monkeypatch):
    data = _pair_data()
    enc = _word_encoder(data)
    encoded = encode_dataset(data, enc)

    def boom(*a, **k):
        raise AssertionError("tokenised inside the batch loop")

    monkeypatch.setattr(WordVocab, "encode", boom)
    monkeypatch.setattr(WordEncoder, "collate", boom)
    assert sum(b.size for b in batches(encoded, enc, batch_size=8, shuffle=True, seed=0, bucket_pool=2)) == 40


def _sst_like(n=8544, seed=0):
    """Word counts like SST-2/5 training sentences: mean ~19, long right tail, 1..56."""
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.gamma(4.0, 4.8, size=n)), 1, 56).astype(int)


def _efficiency(bs):
    real = total = 0
    for b in bs:
        r, t = pad_counts(b)
        real, total = real + r, total + t
    return real / total


def test_default_pool_pads_little_on_sst_like_lengths():
    lengths = _sst_like()
    data = TextDataset(texts=tuple(" ".join(["w"] * int(k)) for k in lengths), labels=(0,) * len(lengths))
    enc = WordEncoder(WordVocab.build(["w"]))
    encoded = encode_dataset(data, enc)
    grouped = _efficiency(batches(encoded, enc, batch_size=32, shuffle=True, seed=0, bucket_pool=100))
    random = _efficiency(batches(encoded, enc, batch_size=32, shuffle=True, seed=0, bucket_pool=None))
    assert grouped >= 0.95 and random < 0.7, (grouped, random)
    ev = eval_batches(encoded, enc, batch_size=256)
    assert _efficiency(ev) >= 0.95 > 0.7 > _efficiency(eval_batches(encoded, enc, batch_size=256, sort=False))
    assert sorted(int(i) for b in ev for i in b.index) == list(range(len(data)))


def test_length_grouped_batches_are_seeded_and_vary_by_epoch():
    data = TextDataset(texts=tuple(" ".join(["w"] * int(k)) for k in _sst_like(500)), labels=(0,) * 500)
    enc = WordEncoder(WordVocab.build(["w"]))
    encoded = encode_dataset(data, enc)
    plan = lambda e: [b.index.tolist() for b in batches(encoded, enc, batch_size=16, shuffle=True, seed=1,  # noqa: E731
                                                          epoch=e, bucket_pool=4)]
    assert plan(0) == plan(0) and plan(0) != plan(1)
    assert sorted(i for b in plan(0) for i in b) == list(range(500))


def test_semi_supervised_unlabeled_stream_length_grouped(toy):
    labeled, _, enc = toy
    unl = TextDataset(texts=tuple(" ".join(["w"] * int(k)) for k in _sst_like(400, seed=2)), name="u")
    enc = WordEncoder(WordVocab.build(list(labeled.texts) + ["w"]))
    big = TextDataset(texts=labeled.texts * 20, labels=labeled.labels * 20, name="lab")
    eb, eu = encode_dataset(big, enc), encode_dataset(unl, enc)

    def unlabeled_eff(pool):
        sb = SemiSupervisedBatches(eb, eu, enc, batch_size=4, ratio=2, seed=0, bucket_pool=pool)
        return _efficiency(u for _, u in sb.epoch(0))

    assert unlabeled_eff(50) >= 0.9 > 0.75 > unlabeled_eff(None)
    # null: exactly the batches of today's per-batch path over the raw datasets
    old = list(SemiSupervisedBatches(big, unl, enc, batch_size=4, ratio=2, seed=0).epoch(1))
    new = list(SemiSupervisedBatches(eb, eu, enc, batch_size=4, ratio=2, seed=0, bucket_pool=None).epoch(1))
    for (a, ua), (b, ub) in zip(old, new):
        _assert_same_batch(a, b)
        _assert_same_batch(ua, ub)
    with pytest.raises(ValueError, match="bucket_pool"):
        SemiSupervisedBatches(eb, eu, enc, batch_size=4, ratio=2, seed=0, bucket_pool=0)


class _SumModel(torch.nn.Module):
    """logits = (sum of real ids, index-free): a prediction that depends only on the example."""

    def forward(self, input_ids, attention_mask, **_):
        s = (input_ids * attention_mask).sum(1).float()
        return SimpleNamespace(logits=torch.stack([s / 10, -s / 10], 1))


def test_sorted_eval_batches_keep_prediction_i_at_example_i():
    from xaicore.metrics import predict

    data = _pair_data(60, seed=4, rationales=False)
    enc = _word_encoder(data)
    encoded = encode_dataset(data, enc)
    sorted_b = eval_batches(encoded, enc, batch_size=8)
    plain = eval_batches(encoded, enc, batch_size=8, sort=False)
    assert [int(i) for b in sorted_b for i in b.index] != list(range(60))  # the batches really are reordered
    la, pa = predict(_SumModel(), sorted_b, "cpu")
    lb, pb = predict(_SumModel(), plain, "cpu")
    assert np.array_equal(la, np.asarray(data.labels)) and np.array_equal(la, lb)
    np.testing.assert_allclose(pa, pb, rtol=0, atol=1e-7)
