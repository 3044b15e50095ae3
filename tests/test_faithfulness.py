"""Faithfulness metrics: unit known answers on hand-built models, and a trained synthetic LSTM.

The BiLSTM is trained ONCE for the module (a few seconds) on the built-in
synthetic sentiment task, whose planted cue words are the exact rationale.
"""
import copy

import pytest
import torch
from torch import nn

from xaicore.faithfulness.attribution import ATTRIBUTION_METHODS, integrated_gradients
from xaicore.faithfulness.agreement import precision_at_k, rank_agreement, rationale_agreement
from xaicore.faithfulness.deletion import deletion_until_flip
from xaicore.faithfulness.eraser import comprehensiveness, ERASER_BINS, erasure_curves, sufficiency
from xaicore.faithfulness.removal import check_intervention, descending_rank, nanmean, remove_tokens
from xaicore.faithfulness.shuffle import shuffle_tvd, total_variation
from xaicore.faithfulness.weak_learner import normalize_feature_map, train_weak_learner, WeakLearner, with_feature_maps
from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.types import Batch, ClassifierOutput

KEY = 5  # the one token the toy model reads




class KeyTokenModel(nn.Module):
    """Predicts class 1 iff token ``KEY`` is present (and unmasked); ignores everything else."""

    pad_token_id = 0

    def embed(self, ids):
        return (ids == KEY).float().unsqueeze(-1)

    def forward(self, input_ids, attention_mask, *, inputs_embeds=None, **_):
        e = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        s = (e.squeeze(-1) * attention_mask.float()).sum(1)
        return ClassifierOutput(logits=torch.stack([torch.full_like(s, 0.5), s], dim=1), embeddings=e)


def toy_batch():
    # [CLS]=1 ... [SEP]=2; example 0: 6 content tokens incl. KEY at position 3
    ids = torch.tensor([[1, 7, 8, KEY, 9, 10, 11, 2], [1, KEY, 8, 2, 0, 0, 0, 0]])
    mask = ids != 0
    special = (ids == 1) | (ids == 2)
    rationale = ids == KEY
    return Batch(input_ids=ids, attention_mask=mask, special_tokens_mask=special, rationale_mask=rationale,
                 token_type_ids=torch.zeros_like(ids), labels=torch.tensor([1, 1]))


# ------------------------------------------------------------ interventions
def test_remove_tokens_pad_mask_delete():
    b = toy_batch()
    remove = torch.zeros_like(b.attention_mask)
    remove[0, [0, 2, 5]] = True  # position 0 is [CLS]: must be ignored
    remove[1, 6] = True  # padding: ignored
    pad = remove_tokens(b, remove, intervention="pad", pad_token_id=0)
    assert pad.input_ids[0].tolist() == [1, 7, 0, KEY, 9, 0, 11, 2]
    assert torch.equal(pad.attention_mask, b.attention_mask)
    assert remove_tokens(b, remove, intervention="pad", pad_token_id=0, replace_id=4).input_ids[0, 2] == 4
    masked = remove_tokens(b, remove, intervention="mask", pad_token_id=0)
    assert torch.equal(masked.input_ids, b.input_ids)
    assert masked.attention_mask[0].tolist() == [True, True, False, True, True, False, True, True]
    deleted = remove_tokens(b, remove, intervention="delete", pad_token_id=0)
    assert deleted.input_ids[0].tolist() == [1, 7, KEY, 9, 11, 2, 0, 0]
    assert deleted.attention_mask[0].tolist() == [True] * 6 + [False] * 2
    assert deleted.special_tokens_mask[0].tolist() == [True, False, False, False, False, True, False, False]
    assert deleted.rationale_mask[0].tolist() == [False, False, True, False, False, False, False, False]
    assert torch.equal(deleted.input_ids[1], b.input_ids[1])


def test_lstm_takes_attention_mask_but_refuses_mask_token_and_unknown_methods():
    lstm = AttentionLSTMClassifier(AttentionLSTMConfig(vocab_size=20, embedding_dim=4, hidden_dim=3, attention_dim=3))
    check_intervention(lstm, "mask")  # = attention_mask: a hole excluded from the attention softmax
    with pytest.raises(ValueError, match="mask token"):
        check_intervention(lstm, "mask_token")
    with pytest.raises(ValueError, match="cancel-out method"):
        check_intervention(lstm, "zero")


def test_descending_rank_breaks_ties_by_position():
    s = torch.tensor([[0.1, 0.5, 0.5, 0.9, 7.0]])
    m = torch.tensor([[True, True, True, True, False]])
    assert descending_rank(s, m).tolist() == [[3, 1, 2, 0, 5]]


# --------------------------------------------------- deletion / ERASER, toy
@pytest.mark.parametrize("intervention", ["pad", "mask", "delete"])
def test_deletion_until_flip_known_answer(intervention):
    model, b = KeyTokenModel(), toy_batch()
    key_first = (b.input_ids == KEY).float()
    frac = deletion_until_flip(model, b, key_first, intervention=intervention)
    torch.testing.assert_close(frac, torch.tensor([1 / 6, 1 / 2]))
    key_last = -key_first  # KEY removed last: the flip comes with the last content token
    torch.testing.assert_close(deletion_until_flip(model, b, key_last, intervention=intervention), torch.ones(2))
    stepped = deletion_until_flip(model, b, torch.arange(8.0).expand(2, 8), intervention=intervention, step=4)
    # descending position order: ex. 0 removes positions 6,5,4,3(KEY) in the first step of 4 -> 4/6
    torch.testing.assert_close(stepped, torch.tensor([4 / 6, 1.0]))


def test_erasure_curves_known_answer():
    model, b = KeyTokenModel(), toy_batch()
    p1 = torch.softmax(torch.tensor([0.5, 1.0]), 0)[1]
    p0 = torch.softmax(torch.tensor([0.5, 0.0]), 0)[1]
    key_first = (b.input_ids == KEY).float()
    out = erasure_curves(model, b, key_first)
    assert out["comprehensiveness"].shape == (2, len(ERASER_BINS))
    # every bin removes at least the top token (KEY): comprehensiveness p1 - p0, sufficiency 0
    torch.testing.assert_close(out["comprehensiveness"], torch.full((2, 5), float(p1 - p0)))
    torch.testing.assert_close(out["sufficiency"], torch.zeros(2, 5))
    torch.testing.assert_close(comprehensiveness(model, b, key_first), torch.full((2,), float(p1 - p0)))
    bad = erasure_curves(model, b, -key_first)
    # ex. 0 (6 tokens): bins 1..20 % keep KEY out of the top ceil(q*6) <= 2 tokens; 50 % = top 3, still without KEY
    torch.testing.assert_close(bad["comprehensiveness"][0], torch.zeros(5))
    torch.testing.assert_close(sufficiency(model, b, -key_first)[0], torch.tensor(float(p1 - p0)))


def test_erasure_metrics_run_on_a_tiny_bert():
    from transformers import BertConfig

    from xaicore.models.transformer import TransformerClassifier

    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                     vocab_size=20, max_position_embeddings=16, num_labels=2, pad_token_id=0)
    model, b = TransformerClassifier.from_config(cfg), toy_batch()
    scores = ATTRIBUTION_METHODS["saliency"](model, b)
    for intervention in ("pad", "mask", "delete"):
        frac = deletion_until_flip(model, b, scores, intervention=intervention)
        assert ((frac > 0) & (frac <= 1)).all()
        out = erasure_curves(model, b, scores, intervention=intervention)
        assert torch.isfinite(out["aopc_comprehensiveness"]).all() and out["sufficiency"].shape == (2, 5)


# ------------------------------------------------------------- agreement
def test_agreement_known_answers():
    m = torch.tensor([[True] * 5, [True] * 5, [True, True, False, False, False]])
    a = torch.tensor([[1.0, 2, 3, 4, 5], [5.0, 4, 3, 2, 1], [1.0, 1, 0, 0, 0]])
    b = torch.tensor([[2.0, 4, 6, 8, 10], [1.0, 2, 3, 4, 5], [3.0, 4, 0, 0, 0]])
    r = rank_agreement(a, b, m)  # ex. 2 has a constant map: skipped
    assert r["n_examples"] == 2 and r["kendall_tau"] == pytest.approx(0.0) and r["pearson"] == pytest.approx(0.0)
    r = rank_agreement(a[:1], b[:1], m[:1])
    assert r["kendall_tau"] == pytest.approx(1.0) and r["pearson"] == pytest.approx(1.0)

    rat = torch.tensor([[False, False, False, True, True], [True] * 5, [False, True, False, False, False]])
    ra = rationale_agreement(a, rat, m)  # ex. 1's rationale is constant: skipped
    assert ra["n_examples"] == 2 and ra["auprc"] == pytest.approx((1.0 + 0.5) / 2)
    assert ra["roc_auc"] == pytest.approx((1.0 + 0.5) / 2)

    p = precision_at_k(a, rat, m, k=2)
    torch.testing.assert_close(p, torch.tensor([1.0, 1.0, 0.5]))
    r_prec = precision_at_k(a, rat & False, m)
    assert torch.isnan(r_prec).all()
    assert nanmean([torch.tensor([1.0, float("nan")]), torch.tensor([0.0])]) == pytest.approx(0.5)


def test_normalize_feature_map():
    m = torch.tensor([[True, True, False], [True, True, True]])
    s = torch.tensor([[3.0, -4.0, 9.0], [0.0, 0.0, 0.0]])
    l2 = normalize_feature_map(s, m)
    torch.testing.assert_close(l2[0], torch.tensor([0.6, -0.8, 0.0]))
    torch.testing.assert_close(l2[1], torch.full((3,), 3 ** -0.5))  # zero map -> uniform
    l1 = normalize_feature_map(s, m, norm="l1", absolute=True)
    torch.testing.assert_close(l1[0], torch.tensor([3 / 7, 4 / 7, 0.0]))


def test_total_variation():
    p, q = torch.tensor([0.2, 0.8]), torch.tensor([0.5, 0.5])
    assert float(total_variation(p, q)) == pytest.approx(0.3)


# --------------------------------------------------------- trained models
@pytest.fixture(scope="module")
def trained():
    """A BiLSTM + attention trained 6 epochs on the synthetic task, and a test batch."""
    from xaicore.data.batching import batches
    from xaicore.metrics import classification_metrics, predict
    from xaicore.data.synthetic import synthetic_splits
    from xaicore.training import TrainConfig, Trainer
    from xaicore.data.vocab import WordEncoder, WordVocab

    splits = synthetic_splits(0, n_train=1000, n_dev=100, n_test=96)
    vocab = WordVocab.build(splits["train"].texts)
    enc = WordEncoder(vocab)
    torch.manual_seed(0)
    model = AttentionLSTMClassifier(
        AttentionLSTMConfig(vocab_size=len(vocab), embedding_dim=24, hidden_dim=24, attention_dim=24)
    )
    dev = list(batches(splits["dev"], enc, batch_size=100, shuffle=False, seed=0))

    def evaluate(m):
        return classification_metrics(*predict(m, dev))

    def train_batches(epoch):
        return ((b, None) for b in batches(splits["train"], enc, batch_size=32, shuffle=True, seed=0, epoch=epoch))

    trainer = Trainer(model, TrainConfig(epochs=6, lr=5e-3), steps_per_epoch=32)
    trainer.fit(train_batches, evaluate)
    model.eval()
    test = next(iter(batches(splits["test"], enc, batch_size=96, shuffle=False, seed=0)))
    f1 = classification_metrics(*predict(model, [test]))["f1"]
    assert f1 > 0.9, f"the synthetic LSTM did not learn the task (test F1 {f1:.3f})"
    make = lambda split, bs: list(batches(splits[split], enc, batch_size=bs, shuffle=False, seed=0))  # noqa: E731
    return {"model": model, "test": test, "vocab": vocab, "make": make}


def oracle_and_random(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return batch.rationale_mask.float(), torch.rand(batch.input_ids.shape, generator=g)


def test_oracle_deletes_to_a_flip_faster_than_random(trained):
    model, test = trained["model"], trained["test"]
    oracle, random = oracle_and_random(test)
    for intervention in ("pad", "delete"):
        d_oracle = deletion_until_flip(model, test, oracle, intervention=intervention).mean()
        d_random = deletion_until_flip(model, test, random, intervention=intervention).mean()
        assert d_oracle < d_random - 0.15, (intervention, d_oracle, d_random)


def test_oracle_is_more_comprehensive_and_sufficient_than_random(trained):
    model, test = trained["model"], trained["test"]
    oracle, random = oracle_and_random(test)
    e_oracle, e_random = erasure_curves(model, test, oracle), erasure_curves(model, test, random)
    assert e_oracle["aopc_comprehensiveness"].mean() > e_random["aopc_comprehensiveness"].mean() + 0.1
    assert e_oracle["aopc_sufficiency"].mean() < e_random["aopc_sufficiency"].mean() - 0.1


def test_oracle_rationale_agreement_is_perfect(trained):
    test = trained["test"]
    oracle, random = oracle_and_random(test)
    ra = rationale_agreement(oracle, test.rationale_mask, test.content_mask)
    assert ra["auprc"] == pytest.approx(1.0) and ra["roc_auc"] == pytest.approx(1.0)
    assert ra["n_examples"] == test.size
    assert rationale_agreement(random, test.rationale_mask, test.content_mask)["auprc"] < 0.6


@pytest.mark.parametrize("method", ["input_x_gradient", "integrated_gradients"])
def test_gradient_maps_rank_planted_cues_first(trained, method):
    """Precision@k with k = number of planted cues (R-precision) >= 0.7 (random: ~0.2)."""
    model, test = trained["model"], trained["test"]
    opts = {"n_steps": 20} if method == "integrated_gradients" else {}
    scores = ATTRIBUTION_METHODS[method](model, test, **opts)
    p = nanmean(precision_at_k(scores, test.rationale_mask, test.content_mask))
    assert p >= 0.7, p
    _, random = oracle_and_random(test)
    assert nanmean(precision_at_k(random, test.rationale_mask, test.content_mask)) < 0.4


def test_ig_and_ixg_agree_on_the_trained_model(trained):
    model, test = trained["model"], trained["test"]
    ig, delta = integrated_gradients(model, test, n_steps=20, return_delta=True)
    assert delta.abs().mean() < 0.05
    ixg = ATTRIBUTION_METHODS["input_x_gradient"](model, test)
    assert rank_agreement(ig, ixg, test.content_mask)["pearson"] > 0.5


def test_a_model_that_ignores_its_input(trained):
    """Constant logits: the label never flips (fraction 1.0) and shuffling changes nothing (TVD 0)."""
    model, test = copy.deepcopy(trained["model"]), trained["test"]
    with torch.no_grad():
        model.decoder.weight.zero_()
    oracle, random = oracle_and_random(test)
    torch.testing.assert_close(deletion_until_flip(model, test, oracle), torch.ones(test.size))
    gen = torch.Generator().manual_seed(0)
    tvd = shuffle_tvd(model, test, random, n_permutations=10, generator=gen)
    assert tvd.shape == (test.size,) and tvd.abs().max() < 1e-6


def test_shuffle_tvd_on_the_trained_lstm(trained):
    model, test = trained["model"], trained["test"]
    oracle, random = oracle_and_random(test)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    # a uniform map is invariant to permutation: TVD exactly 0
    assert shuffle_tvd(model, test, test.content_mask.float(), n_permutations=5, generator=gen()).abs().max() < 1e-6
    # the model's own attention, shuffled, moves the output; a peaked map on the cues
    # matters far more than a diffuse random one
    att = ATTRIBUTION_METHODS["attention"](model, test)
    t_att = shuffle_tvd(model, test, att, n_permutations=20, generator=gen())
    t_oracle = shuffle_tvd(model, test, oracle, n_permutations=20, generator=gen())
    t_random = shuffle_tvd(model, test, random, n_permutations=20, generator=gen())
    assert t_att.mean() > 0.05 and t_oracle.mean() > 3 * t_random.mean()
    # deterministic with a seeded generator; chunking does not change the result
    again = shuffle_tvd(model, test, att, n_permutations=20, generator=gen(), chunk_size=3)
    torch.testing.assert_close(t_att, again)


def test_weak_learner_oracle_beats_random_and_shuffle_tvd(trained):
    make, vocab = trained["make"], trained["vocab"]
    train, valid, test = make("train", 64)[:8], make("dev", 100), make("test", 96)

    def oracle_pairs(bs):
        return [(b, b.rationale_mask.float()) for b in bs]

    kw = dict(epochs=4, lr=1e-2, seed=0, embedding_dim=16, hidden_dim=16, vocab_size=len(vocab))
    oracle = train_weak_learner(oracle_pairs(train), oracle_pairs(valid), oracle_pairs(test), **kw)
    random = train_weak_learner(oracle_pairs(train), oracle_pairs(valid), oracle_pairs(test), feature_map="random", **kw)
    assert oracle["f1"] > 0.95 and oracle["f1"] > random["f1"]
    assert len(oracle["valid_loss_curve"]) == 4 and oracle["valid_loss_curve"][-1] < random["valid_loss_curve"][-1]
    again = train_weak_learner(oracle_pairs(train), oracle_pairs(valid), oracle_pairs(test), feature_map="random", **kw)
    assert again["valid_loss_curve"] == random["valid_loss_curve"]  # seeded, global RNG untouched
    # the paper's shuffle test runs on the weak learner
    wl, b = oracle["model"], test[0]
    gen = torch.Generator().manual_seed(0)
    assert shuffle_tvd(wl, b, b.rationale_mask.float(), n_permutations=10, generator=gen).mean() > 0.05
    assert shuffle_tvd(wl, b, b.content_mask.float(), n_permutations=3).abs().max() < 1e-6


def test_weak_learner_on_attribution_maps(trained):
    """End to end: IxG maps of the trained LSTM (predicted class) feed the weak learner."""
    model, make, vocab = trained["model"], trained["make"], trained["vocab"]
    maps = {s: with_feature_maps(model, make(s, 100)[:3], "input_x_gradient") for s in ("train", "dev", "test")}
    out = train_weak_learner(maps["train"], maps["dev"], maps["test"], epochs=2, seed=0, vocab_size=len(vocab))
    assert 0.0 <= out["f1"] <= 1.0 and 1 <= out["best_epoch"] <= 2
    assert isinstance(out["model"], WeakLearner) and not out["model"].training
    with pytest.raises(ValueError, match="given"):
        train_weak_learner([(b, None) for b, _ in maps["train"]], maps["dev"], maps["test"], epochs=1)


def test_metrics_leave_model_state_alone(trained):
    model, test = trained["model"], trained["test"]
    oracle, _ = oracle_and_random(test)
    model.train()
    try:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        deletion_until_flip(model, test, oracle)
        erasure_curves(model, test, oracle, bins=(0.5,))
        shuffle_tvd(model, test, oracle, n_permutations=2)
        assert model.training and all(m.training for m in model.modules())
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    finally:
        model.eval()
