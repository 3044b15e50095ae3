"""The classifier trial body without Ray: reporting, exact resume, validation errors."""
import math

import pytest

from trainables.classifier.config import ClassifierTrialConfig, parse_config
from trainables.classifier.trial import run_trial
from trainables.config import ConfigError

TINY = dict(dataset="synthetic", synthetic_size=160, epochs=3, batch_size=32, embedding_dim=16, hidden_dim=16,
            attention_dim=16, heatmaps=0)


def collect():
    reports = []
    return reports, lambda metrics, checkpoint: reports.append((metrics, checkpoint))


@pytest.mark.parametrize("regularizer", ["none", "attention_ivat"])
def test_reports_every_epoch_and_final_test_metrics(regularizer, tmp_path):
    reports, report = collect()
    result = run_trial({**TINY, "regularizer": regularizer, "heatmaps": 3}, report, out_dir=tmp_path)
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3]
    assert all(c is not None for _, c in reports)
    final = reports[-1][0]
    for key in ("test/f1", "test/accuracy", "test/roc_auc", "test/corr", "valid/f1", "best/valid_f1", "best_epoch"):
        assert key in final and not (isinstance(final[key], float) and math.isnan(final[key])), key
    assert 0 <= final["test/f1"] <= 1 and -1 <= final["test/corr"] <= 1
    # the running best is monotone
    best = [m["best/valid_f1"] for m, _ in reports]
    assert best == sorted(best)
    names = {p.name for p in result.artifacts}
    assert {"config.yaml", "training_curves.png", "attention_heatmaps.html"} <= names


def test_resume_from_checkpoint_is_exact():
    reports, report = collect()
    full = run_trial(TINY, report)
    checkpoint_after_1 = reports[0][1]
    resumed_reports, resumed_report = collect()
    resumed = run_trial(TINY, resumed_report, resume=checkpoint_after_1)
    assert [m["epoch"] for m, _ in resumed_reports] == [2, 3]
    for key in ("test/f1", "test/roc_auc", "valid/f1", "train/loss"):
        assert resumed.metrics[key] == pytest.approx(full.metrics[key], abs=1e-9), key


def test_same_seed_same_result_different_seed_differs():
    a = run_trial({**TINY, "epochs": 1}, lambda *_: None).metrics
    b = run_trial({**TINY, "epochs": 1}, lambda *_: None).metrics
    c = run_trial({**TINY, "epochs": 1, "seed": 1}, lambda *_: None).metrics
    assert a["train/loss"] == b["train/loss"] and a["test/roc_auc"] == b["test/roc_auc"]
    assert a["train/loss"] != c["train/loss"]


def test_semi_supervised_uses_unlabeled_pool():
    reports, report = collect()
    run_trial({**TINY, "epochs": 1, "regularizer": "attention_vat", "unlabeled": "synthetic", "ratio": 2.0}, report)
    assert reports[-1][0]["train/reg"] > 0


@pytest.mark.parametrize("from_unlabeled", [True, False])
def test_vocabulary_includes_the_unlabeled_pool_unless_disabled(tmp_path, from_unlabeled):
    from trainables.classifier.setup import ClassifierSetup

    pool = tmp_path / "pool.txt"
    pool.write_text("zyxwords qqqterm appear only here\nzyxwords again\n")
    # ratio = N_ul / N_l: the 2-sentence pool is all of N_ul = 0.0125 * 160
    cfg = parse_config({**TINY, "unlabeled": str(pool), "ratio": 0.0125, "vocab_from_unlabeled": from_unlabeled})
    vocab = ClassifierSetup(cfg).vocab
    assert ("zyxwords" in vocab.itos) == from_unlabeled and ("qqqterm" in vocab.itos) == from_unlabeled
    # the labeled vocabulary is always there, and no valid/test text leaks in
    supervised = ClassifierSetup(parse_config(TINY)).vocab
    assert set(supervised.itos) <= set(vocab.itos)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(epsilon=1.0), "epsilon: unknown key (did you mean 'eps'?)"),
        (dict(eps=-1.0), "eps: must be >= 0"),
        (dict(ratio=-0.5, unlabeled="synthetic"), "ratio: must be >= 0"),
        (dict(regularizer="attention_magic"), "regularizer: unknown 'attention_magic'"),
        (dict(dataset="no_such_dataset"), "dataset: 'no_such_dataset' is not 'synthetic', not a known dataset"),
        (dict(lr="fast"), "lr: expected a number"),
        (dict(ratio=1.0), "ratio > 0 needs an 'unlabeled' data source"),
        (dict(bucket_pool=0), "bucket_pool: must be an int >= 1"),
        (dict(bucket_pool=-3), "bucket_pool: must be an int >= 1"),
    ],
)
def test_bad_config_is_a_clear_value_error(changes, message):
    with pytest.raises(ValueError) as info:
        parse_config({**TINY, **changes})
    assert message in str(info.value)


def test_all_problems_reported_at_once():
    with pytest.raises(ConfigError) as info:
        parse_config({"eps": -1, "ratio": -1, "regularizer": "x"})
    assert len(info.value.problems) >= 3


def test_missing_dataset_column_is_a_clear_error(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("sentence,label\n" + "".join(f"good movie {i},1\nbad movie {i},0\n" for i in range(20)))
    with pytest.raises(ValueError, match="text"):
        run_trial({**TINY, "dataset": str(path)}, lambda *_: None)
    ok = run_trial({**TINY, "epochs": 1, "dataset": str(path), "columns": {"text": "sentence", "label": "label"}},
                   lambda *_: None)
    assert "test/f1" in ok.metrics


def test_config_dataclass_is_frozen():
    cfg = parse_config(TINY)
    assert isinstance(cfg, ClassifierTrialConfig)
    with pytest.raises(Exception):
        cfg.eps = 3.0


def _same_batches(old, new):
    import dataclasses

    import torch

    old, new = list(old), list(new)
    assert len(old) == len(new)
    for (a, ua), (b, ub) in zip(old, new):
        for x, y in ((a, b), (ua, ub)):
            assert (x is None) == (y is None)
            if x is not None:
                for f in dataclasses.fields(x):
                    u, v = getattr(x, f.name), getattr(y, f.name)
                    assert (u is None) == (v is None) and (u is None or torch.equal(u, v)), f.name


def test_bucket_pool_null_gives_todays_random_batches(tmp_path):
    from trainables.classifier.setup import ClassifierSetup
    from xaicore.data.batching import SemiSupervisedBatches, batches

    assert parse_config(TINY).bucket_pool == 100 and parse_config({**TINY, "bucket_pool": None}).bucket_pool is None
    setup = ClassifierSetup(parse_config({**TINY, "bucket_pool": None, "seed": 2}))
    for epoch in (0, 1):  # today's code: per-batch tokenisation of the raw split, random batches
        _same_batches(((b, None) for b in batches(setup.splits.train, setup.encoder, batch_size=32, shuffle=True,
                                                   seed=2, epoch=epoch)), setup.epoch_batches(epoch))
    semi = ClassifierSetup(parse_config({**TINY, "bucket_pool": None, "unlabeled": "synthetic", "ratio": 1.0}))
    old = SemiSupervisedBatches(semi.splits.train, semi.unlabeled, semi.encoder, batch_size=32, ratio=1.0, seed=0)
    _same_batches(old.epoch(1), semi.epoch_batches(1))
    grouped = ClassifierSetup(parse_config({**TINY, "seed": 2}))
    assert [b.index.tolist() for b, _ in grouped.epoch_batches(0)] != [b.index.tolist() for b, _ in setup.epoch_batches(0)]


def test_pad_efficiency_is_reported_every_epoch(tmp_path):
    effs = {}
    for pool in (None, 100):
        reports, report = collect()
        run_trial({**TINY, "epochs": 2, "bucket_pool": pool, "synthetic_size": 400}, report, out_dir=tmp_path)
        effs[pool] = [m["train/pad_efficiency"] for m, _ in reports]
        assert len(effs[pool]) == 2 and all(0 < e <= 1 for e in effs[pool])
    assert min(effs[100]) > max(effs[None])
