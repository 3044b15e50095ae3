"""The paper setup of attention-vat.txt: positive-class F1, Adam + AMSGrad, both Corr. conventions,
Corr. at a fixed epoch."""
import numpy as np
import pytest
import torch

from trainables.classifier.config import parse_config
from trainables.classifier.setup import ClassifierSetup
from trainables.classifier.trial import run_trial
from trainables.config import ConfigError
from xaicore.metrics import attention_gradient_correlations, binary_f1, classification_metrics, gradient_importance
from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.perturbation.regularizers import forward_batch
from xaicore.types import Batch

TINY = dict(dataset="synthetic", synthetic_size=160, epochs=3, batch_size=32, embedding_dim=16, hidden_dim=16,
            attention_dim=16, heatmaps=0)


def test_binary_f1_is_the_positive_class_f1():
    y = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([1, 1, 0, 1, 0, 0])  # tp 2, fp 1, fn 1 -> 2*2 / (4 + 1 + 1)
    assert binary_f1(y, p) == pytest.approx(4 / 6)
    assert binary_f1(y, p, positive=0) == pytest.approx(4 / 6)
    assert binary_f1(y, 1 - y) == 0.0
    probs = np.stack([1 - p, p], axis=1).astype(float)
    assert classification_metrics(y, probs)["f1_pos"] == pytest.approx(4 / 6)
    assert "f1_pos" not in classification_metrics(np.array([0, 1, 2]), np.eye(3))


def test_corr_conventions_match_brute_force():
    torch.manual_seed(0)
    model = AttentionLSTMClassifier(AttentionLSTMConfig(vocab_size=40, embedding_dim=8, hidden_dim=6, attention_dim=5))
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([7, 5, 1, 3])
    mask = torch.arange(7)[None, :] < lengths[:, None]
    batch = Batch(input_ids=torch.randint(2, 40, (4, 7), generator=g).masked_fill(~mask, 0), attention_mask=mask,
                  labels=torch.tensor([0, 1, 0, 1]))
    got = attention_gradient_correlations(model, [batch])
    model.eval()
    attn = forward_batch(model, batch).attention.detach()
    tau = gradient_importance(model, batch)
    keep = [i for i in range(4) if lengths[i] >= 2]  # the one-token sentence is left out of both
    per = [np.corrcoef(attn[i, : lengths[i]].numpy(), tau[i, : lengths[i]].numpy())[0, 1] for i in keep]
    pooled = np.corrcoef(np.concatenate([attn[i, : lengths[i]].numpy() for i in keep]),
                         np.concatenate([tau[i, : lengths[i]].numpy() for i in keep]))[0, 1]
    assert got["mean"] == pytest.approx(np.mean(per), abs=1e-6)
    assert got["pooled"] == pytest.approx(pooled, abs=1e-6)
    assert got["mean"] != pytest.approx(got["pooled"], abs=1e-3)  # two different numbers


def test_adam_amsgrad_and_fixed_epoch_corr_survive_resume():
    cfg = {**TINY, "optimizer": "adam", "amsgrad": True, "weight_decay": 1e-5, "selection_metric": "roc_auc",
           "corr_epoch": 1}
    opt = ClassifierSetup(parse_config(cfg)).trainer.optimizer
    assert type(opt) is torch.optim.Adam and opt.defaults["amsgrad"] and opt.defaults["weight_decay"] == 1e-5
    reports = []
    full = run_trial(cfg, lambda m, c: reports.append((m, c))).metrics
    for key in ("test/f1_pos", "test/corr", "test/corr_pooled", "fixed/test_corr", "fixed/test_corr_pooled",
                "fixed/test_f1_pos", "best/valid_roc_auc"):
        assert key in full and full[key] == full[key], key
    assert full["fixed/epoch"] == 1 and "fixed/test_corr" in reports[0][0]
    resumed = run_trial(cfg, lambda *_: None, resume=reports[1][1]).metrics  # resumed after epoch 2
    assert resumed["fixed/test_corr"] == full["fixed/test_corr"]


@pytest.mark.parametrize("bad, message", [
    (dict(optimizer="sgd"), "optimizer"),
    (dict(corr_epoch=0), "corr_epoch"),
    (dict(neighbours=0), "neighbours"),
    (dict(word_neighbours=0), "word_neighbours"),
])
def test_bad_setup_keys_are_one_clear_error(bad, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**TINY, **bad})


@pytest.mark.parametrize("regularizer", ["word_iat", "word_ivat", "attention_iat"])
def test_interpretable_methods_train_from_a_config(regularizer):
    m = run_trial({**TINY, "epochs": 1, "regularizer": regularizer, "word_neighbours": 4, "neighbours": 2},
                  lambda *_: None).metrics
    assert np.isfinite(m["train/loss"]) and m["train/reg"] > 0 and 0 <= m["test/f1"] <= 1


def test_ratio_is_the_size_of_the_unlabeled_pool():
    """N_ul = ratio * N_l examples in the pool (attention-vat.txt Fig. 2), each seen once per epoch."""
    cfg = {**TINY, "unlabeled": "synthetic", "regularizer": "attention_vat"}
    n_l = len(ClassifierSetup(parse_config(cfg)).splits.train)
    for ratio in (0.5, 2.0):
        setup = ClassifierSetup(parse_config({**cfg, "ratio": ratio}))
        assert len(setup.unlabeled) == round(ratio * n_l)
        seen = sum(ul.size for _, ul in setup.epoch_batches(0) if ul is not None)
        assert abs(seen - round(ratio * n_l)) <= len(list(setup.epoch_batches(0)))  # per-batch rounding only
    with pytest.raises(ValueError, match="N_ul = ratio"):
        ClassifierSetup(parse_config({**cfg, "ratio": 1000.0}))


def test_attention_vs_rationale_scores_are_reported_when_the_data_has_rationales():
    m = run_trial({**TINY, "epochs": 1}, lambda *_: None).metrics  # the synthetic task plants rationales
    for key in ("test/rationale_auprc", "test/rationale_avg_precision", "test/rationale_roc_auc"):
        assert 0 <= m[key] <= 1, key
    assert m["test/rationale_documents"] > 0
