"""Cancel-out methods: one shared suite every method passes, plus known answers (cancel-out.txt sec. 2-3).

Tiny BERTs built from a config (no download); a copy-MLM is trained in the test.
"""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from xaicore.cancel_out.methods import (
    CANCEL_OUT_REGISTRY,
    CancelOut,
    cancel_out_log_probs,
    cancel_out_probs,
)
from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.models.transformer import TransformerClassifier
from xaicore.cancel_out.restorability import restorability, summarize
from xaicore.types import Batch

V, PAD, CLS, SEP, MASK, UNK = 24, 0, 1, 2, 3, 4
SPECIAL = (PAD, CLS, SEP, MASK, UNK)


def bert_config(**kw):
    from transformers import BertConfig

    base = dict(vocab_size=V, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                max_position_embeddings=32, pad_token_id=PAD, num_labels=3, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0, attn_implementation="eager")
    base.update(kw)
    return BertConfig(**base)


@pytest.fixture(scope="module")
def models():
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    clf = TransformerClassifier.from_config(bert_config(initializer_range=0.5)).eval()  # outputs that vary
    clf.mask_token_id = MASK
    mlm = BertForMaskedLM(bert_config()).eval()
    lstm = AttentionLSTMClassifier(AttentionLSTMConfig(vocab_size=V, num_classes=3, embedding_dim=8, hidden_dim=6,
                                                       attention_dim=5, pad_id=PAD)).eval()
    return SimpleNamespace(clf=clf, mlm=mlm, lstm=lstm)


def hf_batch():
    ids = torch.tensor([
        [CLS, 7, 8, 9, SEP, PAD, PAD, PAD],
        [CLS, 10, 11, 12, 13, 14, 15, SEP],
        [CLS, 16, SEP, PAD, PAD, PAD, PAD, PAD],
    ])
    att = ids != PAD
    special = (ids == CLS) | (ids == SEP)
    return Batch(input_ids=ids, attention_mask=att, special_tokens_mask=special, labels=torch.tensor([0, 1, 2]))


def lstm_batch():
    ids = torch.tensor([[7, 8, 9, 0, 0], [10, 11, 12, 13, 14], [16, 17, 0, 0, 0]])
    return Batch(input_ids=ids, attention_mask=ids != PAD, labels=torch.tensor([0, 1, 2]))


def removal(batch):
    r = torch.zeros_like(batch.input_ids, dtype=torch.bool)
    r[:, 0] = r[:, 2] = r[:, 4] = True  # includes special tokens and padding: they must be ignored
    r[1, 3] = True  # several content tokens in row 1 (greedy filling)
    return r


def method(name, models, k=3):
    if CANCEL_OUT_REGISTRY[name].needs_mlm:
        return CancelOut(name, k=k, mlm=models.mlm, exclude_ids=SPECIAL)
    return CancelOut(name)


# the registry: a newly registered method runs the whole suite; on the word-level BiLSTM every method
# that declares it needs no mask token
CASES = [(m, "bert") for m in CANCEL_OUT_REGISTRY] + [
    (m, "lstm") for m, impl in CANCEL_OUT_REGISTRY.items() if not impl.needs_mask_token]


def setup(name, kind, models):
    model = models.clf if kind == "bert" else models.lstm
    batch = hf_batch() if kind == "bert" else lstm_batch()
    return model, batch, method(name, models), removal(batch)


# ---------------------------------------------------------------- shared suite
@pytest.mark.parametrize("name,kind", CASES)
def test_shape_dtype_and_weights(name, kind, models):
    model, batch, m, remove = setup(name, kind, models)
    c = m.apply(model, batch, remove)
    K = m.k if m.method.needs_mlm else 1
    assert c.batch.input_ids.shape == (batch.size * K, batch.input_ids.shape[1])
    assert c.batch.input_ids.dtype == batch.input_ids.dtype
    assert c.batch.attention_mask.shape == c.batch.input_ids.shape
    assert c.weights.shape == (batch.size, K)
    assert torch.allclose(c.weights.sum(1), torch.ones(batch.size))
    if c.inputs_embeds is not None:
        assert c.inputs_embeds.shape[:2] == c.batch.input_ids.shape
    logp = cancel_out_log_probs(model, batch, remove, m)
    assert logp.shape == (batch.size, 3) and logp.dtype == torch.float32
    assert torch.allclose(logp.exp().sum(1), torch.ones(batch.size), atol=1e-5)


@pytest.mark.parametrize("name,kind", CASES)
def test_special_tokens_padding_and_other_positions_untouched(name, kind, models):
    model, batch, m, remove = setup(name, kind, models)
    c = m.apply(model, batch, remove)
    K = c.k
    ids0, att0 = batch.input_ids.repeat_interleave(K, 0), batch.attention_mask.repeat_interleave(K, 0)
    cancelled = (remove & batch.content_mask).repeat_interleave(K, 0)
    ids, att = c.batch.input_ids, c.batch.attention_mask.bool()
    if not m.method.keeps_positions:  # kept tokens, specials included, keep their order; padding fills the end
        for r in range(ids.shape[0]):
            kept = ids0[r][att0[r].bool() & ~cancelled[r]]
            assert ids[r][att[r]].tolist() == kept.tolist()
            assert ids[r][~att[r]].eq(PAD).all()
        return
    untouched = ~cancelled
    assert torch.equal(ids[untouched], ids0[untouched])
    assert torch.equal(att[untouched], att0.bool()[untouched])
    if c.inputs_embeds is not None:
        emb0 = (models.lstm if kind == "lstm" else models.clf).embed(ids0)
        assert torch.equal(c.inputs_embeds[untouched], emb0[untouched])
        assert c.inputs_embeds[cancelled].abs().sum() == 0
    changed = (ids != ids0) | (att != att0.bool())
    if c.attention_exclude is not None:  # BiLSTM attention_mask: ids and mask kept, the attention excludes
        assert torch.equal(c.attention_exclude, cancelled)
        changed = changed | c.attention_exclude
    if c.inputs_embeds is None:  # a method feeding embeddings keeps the ids (checked above)
        assert changed[cancelled].any() or m.method.needs_mlm  # an MLM may propose the original token
        assert not changed[untouched].any()


@pytest.mark.parametrize("name", list(CANCEL_OUT_REGISTRY))
def test_declared_capabilities_hold(name, models):
    impl = CANCEL_OUT_REGISTRY[name]
    batch = hf_batch()
    remove = removal(batch)
    if impl.needs_mlm:
        with pytest.raises(ValueError, match="masked LM"):
            CancelOut(name)
    m = method(name, models)
    if impl.needs_model:  # no model-free use
        with pytest.raises(ValueError, match="needs the model"):
            m.apply(None, batch, remove)
    elif impl.needs_pad_id:  # model-free with the PAD id only
        with pytest.raises(ValueError, match="needs the model"):
            m.apply(None, batch, remove)
        assert CancelOut(name, pad_token_id=PAD).apply(None, batch, remove).k == 1
    else:
        assert m.apply(None, batch, remove).k == 1
    if impl.needs_mask_token:  # no meaning for the word-level BiLSTM (declares word_level)
        lstm = models.lstm
        lstm.mask_token_id = MASK
        try:
            with pytest.raises(ValueError, match="word-level"):
                m.check(lstm)
        finally:
            del lstm.mask_token_id
    else:
        m.check(models.lstm)


@pytest.mark.parametrize("name,kind", CASES)
def test_deterministic_and_batched_equals_one_by_one(name, kind, models):
    model, batch, m, remove = setup(name, kind, models)
    torch.manual_seed(1)
    a = cancel_out_probs(model, batch, remove, m)
    torch.manual_seed(2)
    b = cancel_out_probs(model, batch, remove, m)
    assert torch.equal(a, b)
    rows = []
    for i in range(batch.size):
        sub = Batch(**{f: (getattr(batch, f)[i:i + 1] if getattr(batch, f) is not None else None)
                       for f in ("input_ids", "attention_mask", "labels", "special_tokens_mask")})
        rows.append(cancel_out_probs(model, sub, remove[i:i + 1], m))
    assert torch.allclose(torch.cat(rows), a, atol=1e-5)


@pytest.mark.parametrize("name,kind", CASES)
def test_nothing_removed_is_the_plain_output(name, kind, models):
    model, batch, m, _ = setup(name, kind, models)
    none = torch.zeros_like(batch.input_ids, dtype=torch.bool)
    plain = torch.softmax(model(batch.input_ids, batch.attention_mask).logits, -1)
    assert torch.allclose(cancel_out_probs(model, batch, none, m), plain, atol=1e-5)


# ---------------------------------------------------------------- known answers
def test_uniform_k1_equals_the_mlm_top1_replacement(models):
    batch = hf_batch()
    remove = torch.zeros_like(batch.input_ids, dtype=torch.bool)
    remove[:, 1] = True
    masked = batch.input_ids.masked_fill(remove, MASK)
    with torch.no_grad():
        p = torch.softmax(models.mlm(input_ids=masked, attention_mask=batch.attention_mask.long()).logits[:, 1], -1)
        p[:, list(SPECIAL)] = 0
        top1 = p.argmax(-1)
        replaced = batch.input_ids.clone()
        replaced[:, 1] = top1
        want = torch.softmax(models.clf(replaced, batch.attention_mask).logits, -1)
    got = cancel_out_probs(models.clf, batch, remove, CancelOut("uniform_marginalize", k=1, mlm=models.mlm,
                                                                exclude_ids=SPECIAL))
    assert torch.allclose(got, want, atol=1e-6)


class OneHotMLM(nn.Module):
    """p_L puts (almost) all mass on ``token`` at every position."""

    def __init__(self, token):
        super().__init__()
        self.token = token
        self.emb = nn.Embedding(V, 4)

    def get_input_embeddings(self):
        return self.emb

    def forward(self, input_ids=None, attention_mask=None, **_):
        logits = torch.zeros(*input_ids.shape, V)
        logits[..., self.token] = 60.0
        return SimpleNamespace(logits=logits)


def test_weighted_with_a_one_hot_mlm_is_that_tokens_output_and_uniform_is_not(models):
    batch, token = hf_batch(), 20
    remove = torch.zeros_like(batch.input_ids, dtype=torch.bool)
    remove[:, 1] = True
    replaced = batch.input_ids.masked_fill(remove, token)
    with torch.no_grad():
        want = torch.softmax(models.clf(replaced, batch.attention_mask).logits, -1)
    onehot = OneHotMLM(token)
    got = cancel_out_probs(models.clf, batch, remove, CancelOut("weighted_marginalize", k=4, mlm=onehot,
                                                                exclude_ids=SPECIAL))
    assert torch.allclose(got, want, atol=1e-6)
    uni = cancel_out_probs(models.clf, batch, remove, CancelOut("uniform_marginalize", k=4, mlm=onehot,
                                                                exclude_ids=SPECIAL))
    assert not torch.allclose(uni, want, atol=1e-3)


def test_zero_vector_keeps_position_embeddings(models):
    """Zero vector == a token whose word-embedding row is zero (position/segment still added)."""
    import copy

    batch = hf_batch()
    remove = torch.zeros_like(batch.input_ids, dtype=torch.bool)
    remove[1, 2] = True
    clf = copy.deepcopy(models.clf)
    with torch.no_grad():
        clf.model.get_input_embeddings().weight[21].zero_()
        want = torch.softmax(clf(batch.input_ids.masked_fill(remove, 21), batch.attention_mask).logits, -1)
    assert torch.allclose(cancel_out_probs(clf, batch, remove, "zero_vector"), want, atol=1e-6)


def test_attention_mask_bert_no_query_attends_to_it_and_layer0_renormalises(models):
    batch, i = hf_batch(), 3
    remove = torch.zeros_like(batch.input_ids, dtype=torch.bool)
    remove[1, i] = True
    c = CancelOut("attention_mask").apply(models.clf, batch, remove)
    with torch.no_grad():
        kw = dict(output_attentions=True)
        before = models.clf.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long(), **kw).attentions
        after = models.clf.model(input_ids=c.batch.input_ids, attention_mask=c.batch.attention_mask.long(),
                                 **kw).attentions
    for layer in after:
        assert layer[1, :, :, i].abs().max() == 0  # (B, heads, query, key): nobody attends to i
    a0, a1 = before[0][1], after[0][1]  # (heads, T, T), example 1 has no padding
    rest = [j for j in range(a0.shape[-1]) if j != i]
    renorm = a0[:, :, rest] / a0[:, :, rest].sum(-1, keepdim=True)
    assert torch.allclose(a1[:, :, rest], renorm, atol=1e-6)


def test_attention_mask_lstm_excluded_from_softmax_rest_renormalised(models):
    batch, i = lstm_batch(), 2
    remove = torch.zeros_like(batch.input_ids, dtype=torch.bool)
    remove[:, i] = True
    c = CancelOut("attention_mask").apply(models.lstm, batch, remove)
    with torch.no_grad():
        a0 = models.lstm(batch.input_ids, batch.attention_mask).attention
        out = models.lstm(c.batch.input_ids, c.batch.attention_mask, **c.forward_kwargs())
    a1 = out.attention
    assert a1[:, i].abs().max() == 0
    rest = batch.attention_mask.clone()
    rest[:, i] = False
    want = torch.where(rest, a0 / (1 - a0[:, i:i + 1]), torch.zeros_like(a0))
    assert torch.allclose(a1, want, atol=1e-6)  # the BiLSTM still read the token: states unchanged


@pytest.fixture(scope="module")
def copy_mlm():
    """A 1-layer BERT MLM trained to output its input token at every position (random i.i.d. tokens)."""
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    mlm = BertForMaskedLM(bert_config(hidden_size=32, num_hidden_layers=1, intermediate_size=64))
    opt = torch.optim.Adam(mlm.parameters(), lr=3e-3)
    for _ in range(150):
        ids = torch.randint(5, V, (64, 10))
        ids[:, 0], ids[:, -1] = CLS, SEP
        loss = nn.functional.cross_entropy(mlm(input_ids=ids).logits.reshape(-1, V), ids.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mlm.eval()


def test_copy_mlm_attention_mask_restores_and_mask_token_cannot(copy_mlm):
    torch.manual_seed(3)
    ids = torch.randint(5, V, (40, 10))
    ids[:, 0], ids[:, -1] = CLS, SEP
    batch = Batch(input_ids=ids, attention_mask=torch.ones_like(ids, dtype=torch.bool),
                  special_tokens_mask=(ids == CLS) | (ids == SEP))
    pos = torch.randint(1, 9, (40,))
    res = restorability(copy_mlm, batch, pos, k=3, mask_token_id=MASK, exclude_ids=SPECIAL)
    mean = {m: float(r["p_original"].mean()) for m, r in res.items()}
    assert mean["original"] > 0.9
    assert mean["attention_mask"] > 0.9  # the token still flows through its own residual stream
    assert mean["mask_token"] < 0.2  # i.i.d. tokens: the context says nothing about the masked one
    assert mean["zero_vector"] < 0.2
    # marginalised over candidates the copy reproduces, the original comes back only if it is a candidate
    assert mean["uniform_marginalize"] <= mean["weighted_marginalize"] + 1e-6 or mean["uniform_marginalize"] < 0.5
    for r in res.values():
        assert (r["p_max"] >= r["p_original"] - 1e-6).all()
    s = summarize(res["original"]["p_original"].numpy())
    assert s["share_above_0.5"] > 0.9 and s["n"] == 40


# ---------------------------------------------------------------- bad input
def test_bad_input_gets_clear_errors(models):
    with pytest.raises(ValueError, match="k"):
        CancelOut("uniform_marginalize", k=0, mlm=models.mlm)
    with pytest.raises(ValueError, match="masked LM"):
        CancelOut("weighted_marginalize")
    with pytest.raises(ValueError, match="unknown cancel-out"):
        CancelOut("blank")
    with pytest.raises(ValueError, match="mask token"):
        CancelOut("mask_token").check(models.lstm)
    no_mask = TransformerClassifier.from_config(bert_config())
    with pytest.raises(ValueError, match="mask token"):
        CancelOut("mask_token").check(no_mask)
    from transformers import BertForMaskedLM

    other = BertForMaskedLM(bert_config(vocab_size=V + 5))
    with pytest.raises(ValueError, match="vocabulary"):
        CancelOut("uniform_marginalize", k=2, mlm=other).check(models.clf)
    with pytest.raises(ValueError, match="delete"):
        restorability(models.mlm, hf_batch(), torch.tensor([1, 1, 1]), methods=("delete",))
