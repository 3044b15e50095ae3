"""One shared suite that every attribution method must pass, plus known answers.

The trained-model known answers (planted cues ranked first) live in
``tests/test_faithfulness.py`` next to the module-scoped trained LSTM.
"""
import pytest
import torch
from torch import nn

from xaicore.faithfulness.attribution import (
    ATTRIBUTION_METHODS,
    IG_METHODS,
    attribute,
    input_x_gradient,
    integrated_gradients,
    leave_one_out,
    saliency,
)
from xaicore.faithfulness.ig_passes import activation_elements_per_token, ig_rows_per_pass
from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.models.protocol import forward_batch
from xaicore.models.transformer import TransformerClassifier
from xaicore.types import Batch, ClassifierOutput

V = 50


CLS, SEP = 1, 2


class LinearBag(nn.Module):
    """Logits are a linear function of the summed word embeddings (PAD row = 0)."""

    pad_token_id = 0

    def __init__(self, vocab=V, dim=6, classes=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.linear = nn.Linear(dim, classes)

    def embed(self, ids):
        return self.embedding(ids)

    def forward(self, input_ids, attention_mask, *, inputs_embeds=None, **_):
        e = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        pooled = (e * attention_mask.unsqueeze(-1).to(e.dtype)).sum(1)
        return ClassifierOutput(logits=self.linear(pooled), embeddings=e)


def lstm_model(seed=0):
    torch.manual_seed(seed)
    cfg = AttentionLSTMConfig(vocab_size=V, embedding_dim=8, hidden_dim=6, attention_dim=5, dropout=0.3)
    return AttentionLSTMClassifier(cfg)


def bert_model(seed=0):
    from transformers import BertConfig

    torch.manual_seed(seed)
    cfg = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        vocab_size=V, max_position_embeddings=16, num_labels=2, pad_token_id=0,
    )
    return TransformerClassifier.from_config(cfg)


def word_batch(seed=0, lengths=(7, 5, 3, 1)):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.randint(3, V, (len(lengths), T), generator=g)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    return Batch(input_ids=ids.masked_fill(~mask, 0), attention_mask=mask)


def bert_batch(seed=0, lengths=(7, 5, 3)):
    """[CLS] w ... w [SEP] PAD..., with the special-tokens mask set."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.randint(3, V, (len(lengths), T), generator=g)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    ids = ids.masked_fill(~mask, 0)
    ids[:, 0] = CLS
    special = torch.zeros_like(mask)
    special[:, 0] = True
    for i, n in enumerate(lengths):
        ids[i, n - 1] = SEP
        special[i, n - 1] = True
    return Batch(input_ids=ids, attention_mask=mask, special_tokens_mask=special, token_type_ids=torch.zeros_like(ids))


MODELS = {
    "lstm": (lstm_model, word_batch),
    "bert": (bert_model, bert_batch),
    "linear": (LinearBag, word_batch),
}
HAS_ATTENTION = {"lstm": True, "bert": False, "linear": False}
# the registry: a newly registered attributor runs the whole suite (on the models its capabilities allow)
SUPPORTED = [
    (method, kind)
    for method, attributor in ATTRIBUTION_METHODS.items()
    for kind in MODELS
    if HAS_ATTENTION[kind] or not attributor.needs_attention
]
# keep IG cheap inside the shared suite
FAST = {"integrated_gradients": {"n_steps": 8}}


@pytest.fixture(params=SUPPORTED, ids=[f"{m}-{k}" for m, k in SUPPORTED])
def case(request):
    method, kind = request.param
    make_model, make_batch = MODELS[kind]
    fn = ATTRIBUTION_METHODS[method]
    opts = FAST.get(method, {})
    return fn, opts, make_model(), make_batch()


def test_shape_dtype_and_zero_outside_content(case, request):
    fn, opts, model, batch = case
    scores = fn(model, batch, **opts)
    assert scores.shape == batch.input_ids.shape and scores.dtype == torch.float32
    assert torch.isfinite(scores).all()
    assert (scores[~batch.content_mask] == 0).all()
    if request.node.callspec.id != "saliency_signed-bert":  # ~0 by LayerNorm invariance (see its docstring)
        assert scores[batch.content_mask].abs().sum() > 0


def test_deterministic_even_from_train_mode(case):
    fn, opts, model, batch = case
    model.train()  # dropout on: the method must switch it off itself
    a = fn(model, batch, **opts)
    b = fn(model, batch, **opts)
    assert torch.equal(a, b)


def test_grads_untouched_and_modes_restored(case):
    fn, opts, model, batch = case
    model.train()
    first = next(iter(model.children()))
    first.eval()  # a mixed train/eval state must come back exactly
    flags = {name: m.training for name, m in model.named_modules()}
    sentinel = {}
    for name, p in model.named_parameters():
        p.grad = torch.full_like(p, 7.25)
        sentinel[name] = p.grad.clone()
    fn(model, batch, **opts)
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.equal(p.grad, sentinel[name]), name
    assert {name: m.training for name, m in model.named_modules()} == flags


def test_works_under_no_grad_and_explicit_target(case):
    fn, opts, model, batch = case
    with torch.no_grad():
        default = fn(model, batch, **opts)
        pred = model.eval()(batch.input_ids, batch.attention_mask).logits.argmax(-1)
        explicit = fn(model, batch, target=pred, **opts)
    torch.testing.assert_close(default, explicit)


def test_declared_capabilities_hold(case, request):
    fn, opts, model, batch = case
    scores = fn(model, batch, **opts)
    if not fn.signed:
        assert (scores >= 0).all()
    assert fn.needs_attention <= HAS_ATTENTION[request.node.callspec.id.rsplit("-", 1)[1]]


@pytest.mark.parametrize("method", [m for m, a in ATTRIBUTION_METHODS.items() if a.needs_attention])
def test_attention_attributors_refuse_a_model_without_attention(method):
    with pytest.raises(ValueError, match="attention"):
        ATTRIBUTION_METHODS[method](bert_model(), bert_batch())


def test_target_changes_class_dependent_maps():
    model, batch = LinearBag(), word_batch()
    a = input_x_gradient(model, batch, target=0)
    b = input_x_gradient(model, batch, target=1)
    assert not torch.allclose(a, b)


def test_attention_needs_an_attention_model():
    for model, batch in ((bert_model(), bert_batch()), (LinearBag(), word_batch())):
        with pytest.raises(ValueError, match="attention"):
            attribute("attention", model, batch)


def test_attention_is_the_models_distribution():
    model, batch = lstm_model(), word_batch()
    att = attribute("attention", model, batch)
    torch.testing.assert_close(att.sum(1), torch.ones(batch.size))
    assert (att >= 0).all()


def test_bad_arguments():
    model, batch = LinearBag(), word_batch()
    with pytest.raises(ValueError, match="reduction"):
        saliency(model, batch, reduction="max")
    with pytest.raises(ValueError, match="method"):
        integrated_gradients(model, batch, method="simpson")
    with pytest.raises(ValueError, match="mask_token_id"):
        integrated_gradients(model, batch, baseline="mask")
    with pytest.raises(ValueError, match="unknown attribution"):
        attribute("lime", model, batch)
    with pytest.raises(ValueError, match="detach_attention"):
        saliency(bert_model(), bert_batch(), detach_attention=True)


# ------------------------------------------------------------- known answers
@pytest.mark.parametrize("method", IG_METHODS)
def test_ig_is_exact_on_a_linear_model(method):
    """Linear logits: IG with a zero baseline is exactly Input x Gradient, and complete."""
    model, batch = LinearBag(), word_batch()
    ig, delta = integrated_gradients(model, batch, method=method, n_steps=7, return_delta=True)
    assert delta.shape == (batch.size,) and delta.abs().max() < 1e-3
    torch.testing.assert_close(ig, input_x_gradient(model, batch), atol=1e-5, rtol=1e-4)


def test_ig_completeness_with_pad_and_mask_baselines():
    model, batch = LinearBag(), word_batch()
    with torch.no_grad():
        pred = model(batch.input_ids, batch.attention_mask).logits.argmax(-1)
    mask_id = 4
    ig, delta = integrated_gradients(model, batch, baseline="mask", mask_token_id=mask_id, return_delta=True)
    assert delta.abs().max() < 1e-3
    base_ids = batch.input_ids.masked_fill(batch.content_mask, mask_id)
    with torch.no_grad():
        fx = model(batch.input_ids, batch.attention_mask).logits.gather(1, pred[:, None]).squeeze(1)
        fb = model(base_ids, batch.attention_mask).logits.gather(1, pred[:, None]).squeeze(1)
    torch.testing.assert_close(ig.sum(1), fx - fb, atol=1e-5, rtol=1e-4)
    # the PAD row of the embedding is zero, so the PAD baseline is the zero baseline
    torch.testing.assert_close(integrated_gradients(model, batch, baseline="pad"), integrated_gradients(model, batch))


def test_ig_delta_small_on_lstm_and_internal_batching_is_equivalent():
    model, batch = lstm_model(), word_batch()
    full, delta = integrated_gradients(model, batch, n_steps=32, return_delta=True)
    assert delta.abs().max() < 1e-3
    per_step = integrated_gradients(model, batch, n_steps=32, internal_batch_size=batch.size)
    torch.testing.assert_close(full, per_step, atol=1e-6, rtol=1e-5)


def _tiny_transformer_case():
    from tests.tiny_transformer import bert_batch as tt_batch, tiny_model

    return tiny_model(), tt_batch(lengths=(9, 7, 5, 3))


IG_AUTO_CASES = {"lstm": lambda: (lstm_model(), word_batch()), "tiny_transformer": _tiny_transformer_case}


@pytest.mark.parametrize("kind", list(IG_AUTO_CASES))
def test_ig_auto_batching_equals_one_step_per_pass_and_counts_its_passes(kind):
    """internal_batch_size="auto": the steps of one pass fit the budget; the maps are those of the per-step loop."""
    model, batch = IG_AUTO_CASES[kind]()
    n = 20
    per_step_stats, auto_stats, one_stats = {}, {}, {}
    per_step = integrated_gradients(model, batch, n_steps=n, internal_batch_size=batch.size, stats=per_step_stats)
    assert per_step_stats["passes"] == n and per_step_stats["rows_per_pass"] == batch.size
    b, t = batch.input_ids.shape
    e = model.embed(batch.input_ids[:1]).shape[-1]
    per_row = t * 4 * (3 * e + activation_elements_per_token(model, t)) + 17 * t  # fp32 (ig_rows_per_pass)
    budget = per_row * b * 3 + per_row  # 3 steps of B rows and a bit: 3 steps per pass
    rows = ig_rows_per_pass(model, (b, t, e), n, budget)
    assert rows == 3 * b
    auto = integrated_gradients(model, batch, n_steps=n, internal_batch_size="auto", memory_budget_bytes=budget,
                                stats=auto_stats)
    assert auto_stats["rows_per_pass"] == rows
    assert auto_stats["passes"] == -(-batch.size * n // rows) > 1  # ceil(B * n_steps / rows), counted
    torch.testing.assert_close(auto, per_step, atol=1e-5, rtol=0)
    one = integrated_gradients(model, batch, n_steps=n, internal_batch_size="auto", memory_budget_bytes=1 << 40,
                               stats=one_stats)
    assert one_stats["passes"] == 1 and one_stats["rows_per_pass"] == batch.size * n
    torch.testing.assert_close(one, per_step, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", list(IG_AUTO_CASES))
def test_ig_auto_batching_is_complete(kind):
    """Token scores sum to f(x) - f(x') + delta (zero baseline on content tokens) in the auto mode."""
    model, batch = IG_AUTO_CASES[kind]()
    stats = {}
    ig, delta = integrated_gradients(model, batch, n_steps=16, internal_batch_size="auto",
                                     memory_budget_bytes=1 << 16, return_delta=True, stats=stats)
    assert stats["passes"] > 1
    with torch.no_grad():
        target = forward_batch(model.eval(), batch).logits.argmax(-1)
        emb = model.embed(batch.input_ids)
        base = torch.where(batch.content_mask.unsqueeze(-1), torch.zeros_like(emb), emb)
        fx = forward_batch(model, batch, inputs_embeds=emb).logits
        fb = forward_batch(model, batch, inputs_embeds=base).logits
    diff = (fx - fb).gather(1, target[:, None]).squeeze(1)
    torch.testing.assert_close(ig.sum(1), diff + delta, atol=1e-5, rtol=1e-4)


def test_ig_rows_per_pass_known_answers():
    """LinearBag: one Linear(6 -> 3) => 2 * 3 activation elements per token; a row of T=7 tokens, E=6, fp32
    costs 7 * 4 * (3 * 6 + 6) + 17 * 7 = 791 bytes."""
    model = LinearBag()
    assert activation_elements_per_token(model, 7) == 6
    assert ig_rows_per_pass(model, (4, 7, 6), 10, 791 * 12) == 12  # 12 rows fit: 3 steps of B=4
    assert ig_rows_per_pass(model, (4, 7, 6), 10, 791 * 12 - 1) == 8  # 11 rows: 2 whole steps
    assert ig_rows_per_pass(model, (4, 7, 6), 10, 1) == 4  # over budget: still one step per pass
    assert ig_rows_per_pass(model, (4, 7, 6), 10, 1 << 40) == 40  # at most every step at once
    assert ig_rows_per_pass(model, (4, 7, 6), 10, 791 * 12, element_size=2) > 12  # bf16 rows are smaller
    with pytest.raises(ValueError, match="memory_budget_bytes"):
        ig_rows_per_pass(model, (4, 7, 6), 10, 0)
    # the recurrent encoder's gates and states count; attention scores grow with the length (transformers only)
    lstm = lstm_model()  # two LSTMs (H=6): 2 * (4 + 2) * 6; Linear 5, 1 and 2 outputs
    assert activation_elements_per_token(lstm, 7) == 2 * (2 * 36 + 5 + 1 + 2)
    assert activation_elements_per_token(lstm, 70) == activation_elements_per_token(lstm, 7)
    bert = bert_model()
    assert activation_elements_per_token(bert, 70) - activation_elements_per_token(bert, 7) == 2 * 2 * 2 * 63


def test_ig_internal_batch_size_refuses_unknown_words():
    with pytest.raises(ValueError, match="internal_batch_size must be >= 1, 'auto' or None"):
        integrated_gradients(LinearBag(), word_batch(), internal_batch_size="big")


def test_ig_on_tiny_bert_spares_special_tokens_and_is_complete():
    model, batch = bert_model(), bert_batch()
    ig, delta = integrated_gradients(model, batch, baseline="pad", n_steps=64, return_delta=True)
    assert (ig[batch.special_tokens_mask] == 0).all()
    assert delta.abs().max() < 1e-3


def test_saliency_of_a_linear_model_is_the_weight_norm():
    model, batch = LinearBag(), word_batch()
    target = torch.zeros(batch.size, dtype=torch.long)
    sal = saliency(model, batch, target=target)
    expected = model.linear.weight[0].norm().item()
    torch.testing.assert_close(sal[batch.content_mask], torch.full_like(sal[batch.content_mask], expected))
    l1 = saliency(model, batch, target=target, reduction="abs_sum")
    torch.testing.assert_close(l1[batch.content_mask].max(), model.linear.weight[0].abs().sum())


def test_leave_one_out_of_a_linear_model_equals_input_x_gradient():
    """With a zero PAD embedding, occluding token t lowers the logit by exactly e_t . w_y."""
    model, batch = LinearBag(), word_batch()
    loo = leave_one_out(model, batch, output="logit", chunk_size=3)
    torch.testing.assert_close(loo, input_x_gradient(model, batch), atol=1e-5, rtol=1e-4)
    deleted = leave_one_out(model, batch, output="logit", intervention="delete")
    torch.testing.assert_close(deleted, loo, atol=1e-5, rtol=1e-4)
