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
