"""Models, the shared training loop and the classification metrics: known answers."""
import numpy as np
import pytest
import torch
from transformers import BertConfig

from xaicore.metrics import attention_gradient_correlation, classification_metrics, gradient_importance, macro_f1, pearson
from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.models.transformer import TransformerClassifier
from xaicore.perturbation.regularizers import forward_batch, make_regularizer
from xaicore.training import TrainConfig, Trainer, compute_loss
from xaicore.types import Batch


def lstm(seed=0, **kw):
    torch.manual_seed(seed)
    return AttentionLSTMClassifier(AttentionLSTMConfig(vocab_size=30, embedding_dim=8, hidden_dim=6, attention_dim=5, **kw))


def batch(lengths=(5, 3, 1), T=5, labels=(0, 1, 1), seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]
    ids = torch.randint(2, 30, (len(lengths), T), generator=g).masked_fill(~mask, 0)
    return Batch(ids, mask, torch.tensor(labels))


def test_attention_is_a_distribution_over_real_tokens_only():
    out = forward_batch(lstm(), batch())
    torch.testing.assert_close(out.attention.sum(1), torch.ones(3))
    assert (out.attention[~batch().attention_mask] == 0).all()
    assert out.logits.shape == (3, 2) and out.hidden.shape == (3, 5, 12)


def test_encoder_equals_a_packed_bidirectional_lstm():
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    model = lstm()
    bi = nn.LSTM(8, 6, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(bi, name).copy_(getattr(model.encoder_fw, name))
            getattr(bi, name + "_reverse").copy_(getattr(model.encoder_bw, name))
    x = torch.randn(3, 7, 8)
    mask = torch.arange(7)[None] < torch.tensor([7, 4, 1])[:, None]
    packed = pack_padded_sequence(x, mask.sum(1), batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(bi(packed)[0], batch_first=True, total_length=7)
    torch.testing.assert_close(model.encode(x, mask), expected, atol=1e-6, rtol=1e-5)


def test_padding_does_not_change_the_prediction():
    model = lstm().eval()
    b = batch()
    short = Batch(b.input_ids[:, :5], b.attention_mask[:, :5], b.labels)
    longer = Batch(torch.cat([b.input_ids, torch.zeros(3, 4, dtype=torch.long)], 1),
                   torch.cat([b.attention_mask, torch.zeros(3, 4, dtype=torch.bool)], 1), b.labels)
    torch.testing.assert_close(forward_batch(model, short).logits, forward_batch(model, longer).logits)


def test_score_perturbation_is_equivalent_to_changing_scores():
    model = lstm().eval()
    b = batch()
    out = forward_batch(model, b)
    r = torch.randn(3, 5)
    via_forward = forward_batch(model, b, score_perturb=r).logits
    via_attend = model.attend(out.hidden, b.attention_mask, scores=out.scores + r).logits
    torch.testing.assert_close(via_forward, via_attend)


def tiny_bert(num_labels=2):
    cfg = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=20, max_position_embeddings=32, num_labels=num_labels)
    torch.manual_seed(0)
    return TransformerClassifier.from_config(cfg)


def test_transformer_perturbation_enters_before_position_embeddings_and_layernorm():
    model = tiny_bert().eval()
    b = batch()
    special = torch.zeros_like(b.attention_mask)
    special[:, 0] = True
    b = b.replace(special_tokens_mask=special)
    emb_module = model.model.bert.embeddings
    seen = {}
    handle = emb_module.register_forward_hook(lambda m, args, kwargs, out: seen.update(kwargs), with_kwargs=True)
    r = torch.randn(3, 5, 16)
    forward_batch(model, b, emb_perturb=r, perturb_mask=b.content_mask)
    handle.remove()
    expected = model.embed(b.input_ids) + r * b.content_mask[..., None]
    torch.testing.assert_close(seen["inputs_embeds"], expected)


@pytest.mark.parametrize("name", ["word_at", "word_vat"])
def test_word_regularizers_work_on_transformers_and_spare_special_tokens(name):
    model = tiny_bert()
    b = batch()
    special = torch.zeros_like(b.attention_mask)
    special[:, 0] = True
    b = b.replace(special_tokens_mask=special)
    reg = make_regularizer(name, eps=0.5)
    clean = forward_batch(model, b)
    r = reg.perturbation(model, b, clean, b.labels)
    assert r[:, 0].abs().sum() == 0 and r[~b.attention_mask].abs().sum() == 0
    loss, parts = compute_loss(model, b, regularizer=reg)
    assert torch.isfinite(loss) and parts["reg"] > 0


def test_attention_regularizer_on_transformer_is_a_clear_error():
    model, b = tiny_bert(), batch()
    with pytest.raises(ValueError, match="additive attention"):
        compute_loss(model, b, regularizer=make_regularizer("attention_vat", eps=1.0))


def test_trainer_learns_selects_best_epoch_and_restores_its_weights():
    model = lstm(dropout=0.0)
    b = batch()
    scores = iter([0.5, 0.9, 0.7])
    snapshots = []

    def evaluate(m):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"f1": next(scores)}

    trainer = Trainer(model, TrainConfig(epochs=3, lr=1e-2), steps_per_epoch=1)
    result = trainer.fit(lambda epoch: [(b, None)], evaluate)
    assert result.best_epoch == 2 and result.best == 0.9
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, snapshots[1][k])
    assert result.history[0].train["loss"] > 0


def test_trainer_raises_on_non_finite_loss():
    model = lstm()
    trainer = Trainer(model, TrainConfig(epochs=3, lr=1e30, max_grad_norm=None), steps_per_epoch=4)
    with pytest.raises(FloatingPointError, match="non-finite"):
        trainer.fit(lambda epoch: [(batch(), None)] * 4, lambda m: {"f1": 0.0})


def test_warmup_then_linear_decay():
    trainer = Trainer(lstm(), TrainConfig(epochs=1, lr=1.0, warmup_ratio=0.25, decay=True), steps_per_epoch=8)
    lrs = []
    for _ in range(8):
        lrs.append(trainer.scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert lrs[:2] == [0.5, 1.0] and lrs[-1] < lrs[2] and lrs == lrs[:2] + sorted(lrs[2:], reverse=True)


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=0), "epochs"), (dict(lr=0), "lr"), (dict(lam=-1), "lam"), (dict(selection_mode="best"), "selection_mode"),
])
def test_train_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_metrics_known_answers():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2]])
    m = classification_metrics(y, probs)
    assert m["accuracy"] == 0.5
    assert m["f1"] == pytest.approx(0.5)
    assert m["roc_auc"] == pytest.approx(0.75)  # pairs (pos, neg): 0.7>0.1, 0.7>0.6, 0.2>0.1, 0.2<0.6
    assert macro_f1(np.array([0, 1, 2]), np.array([0, 1, 1])) == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert pearson(torch.tensor([1.0, 2, 3]), torch.tensor([2.0, 4, 6])) == pytest.approx(1.0)
    assert np.isnan(pearson(torch.tensor([1.0, 1, 1]), torch.tensor([1.0, 2, 3])))


def test_roc_auc_known_answers_and_equal_to_sklearn():
    from sklearn.metrics import roc_auc_score

    from xaicore.metrics import binary_roc_auc, roc_auc

    # ties count 1/2: pos {0.5, 0.9} vs neg {0.5, 0.1} -> pairs 1/2 + 1 + 1 + 1 = 3.5 of 4
    assert binary_roc_auc(np.array([1, 1, 0, 0]), np.array([0.5, 0.9, 0.5, 0.1])) == pytest.approx(0.875)
    assert np.isnan(binary_roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = np.round(rng.random(n), 1)  # many ties
        assert binary_roc_auc(y == 1, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    y3 = rng.integers(0, 3, 50)
    p3 = rng.dirichlet(np.ones(3), 50)
    assert roc_auc(y3, p3) == pytest.approx(roc_auc_score(y3, p3, multi_class="ovr", average="macro"), abs=1e-12)


def test_gradient_importance_is_normalised_masked_and_leaves_grads_alone():
    model = lstm()
    b = batch()
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    model.train()
    tau = gradient_importance(model, b)
    assert model.training
    assert all((p.grad == 7.0).all() for p in model.parameters())
    torch.testing.assert_close(tau.sum(1), torch.ones(3))
    assert (tau[~b.attention_mask] == 0).all()
    corr = attention_gradient_correlation(model, [b])
    assert -1 <= corr <= 1
