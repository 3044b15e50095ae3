"""One shared suite that every adversarial regulariser must pass, plus known answers."""
import pytest
import torch
import torch.nn.functional as F

from xaicore.models import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.perturbation import attention_difference_basis, per_example_norm
from xaicore.regularizers import REGULARIZERS, forward_batch, make_regularizer
from xaicore.training import compute_loss
from xaicore.types import Batch

METHODS = [name for name in REGULARIZERS if name != "none"]
EPS = 0.7


def make_batch(seed=0, B=4, T=7, V=50, lengths=(7, 5, 3, 2), labels=True):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, V, (B, T), generator=g)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    ids = ids.masked_fill(~mask, 0)
    y = torch.randint(0, 2, (B,), generator=g) if labels else None
    return Batch(input_ids=ids, attention_mask=mask, labels=y)


def make_model(seed=0):
    torch.manual_seed(seed)
    return AttentionLSTMClassifier(AttentionLSTMConfig(vocab_size=50, embedding_dim=8, hidden_dim=6, attention_dim=5))


@pytest.fixture(params=METHODS)
def reg(request):
    return make_regularizer(request.param, eps=EPS, xi=0.05)


def test_loss_is_finite_and_reaches_parameters(reg):
    model, batch = make_model(), make_batch()
    loss, parts = compute_loss(model, batch, unlabeled=make_batch(1, labels=False), regularizer=reg, lam=1.0)
    assert torch.isfinite(loss) and parts["reg"] > 0
    reg_only = reg(model, batch, forward_batch(model, batch), batch.labels).mean()
    grads = torch.autograd.grad(reg_only, [p for p in model.parameters()], allow_unused=True)
    reached = {n for (n, _), g in zip(model.named_parameters(), grads) if g is not None and g.abs().sum() > 0}
    assert "decoder.weight" in reached and "attn_proj.weight" in reached
    if reg.target == "word":
        assert "embedding.weight" in reached


def test_perturbation_norm_equals_eps(reg):
    model, batch = make_model(), make_batch()
    r = reg.perturbation(model, batch, forward_batch(model, batch), batch.labels)
    torch.testing.assert_close(per_example_norm(r), torch.full((batch.size,), EPS), rtol=1e-4, atol=0)


def test_padding_never_perturbed(reg):
    model, batch = make_model(), make_batch()
    r = reg.perturbation(model, batch, forward_batch(model, batch), batch.labels)
    pad = ~batch.attention_mask
    assert r[pad].abs().sum() == 0


def test_special_tokens_never_perturbed(reg):
    model, batch = make_model(), make_batch()
    special = torch.zeros_like(batch.attention_mask)
    special[:, 0] = True
    batch = batch.replace(special_tokens_mask=special)
    r = reg.perturbation(model, batch, forward_batch(model, batch), batch.labels)
    assert r[:, 0].abs().sum() == 0


def test_lambda_zero_is_exactly_vanilla(reg):
    model, batch = make_model(), make_batch()
    vanilla, _ = compute_loss(model, batch, regularizer=None)
    zero, _ = compute_loss(model, batch, unlabeled=make_batch(1, labels=False), regularizer=reg, lam=0.0)
    assert torch.equal(vanilla, zero)


def test_same_seed_same_loss(reg):
    def run():
        model, batch = make_model(), make_batch()
        torch.manual_seed(123)
        return compute_loss(model, batch, unlabeled=make_batch(1, labels=False), regularizer=reg, lam=1.0)[0]

    assert torch.equal(run(), run())


@pytest.mark.parametrize("name", [m for m in METHODS if m.startswith("attention_")])
def test_attention_perturbation_needs_no_encoder_pass(name):
    """Word perturbations re-run the encoder by definition; attention ones must not."""
    reg = make_regularizer(name, eps=EPS, xi=0.05)
    model, batch = make_model(), make_batch()
    clean = forward_batch(model, batch)
    calls = []
    handles = [m.register_forward_hook(lambda *a: calls.append(1)) for m in (model.encoder_fw, model.encoder_bw)]
    reg(model, batch, clean, batch.labels)
    for h in handles:
        h.remove()
    assert calls == []


# --------------------------------------------------------------- known answers
def test_attention_at_is_normalised_gradient():
    model, batch = make_model(), make_batch()
    clean = forward_batch(model, batch)
    r = make_regularizer("attention_at", eps=1.0).perturbation(model, batch, clean, batch.labels)
    scores = clean.scores.detach().requires_grad_(True)
    logits = model.attend(clean.hidden.detach(), batch.attention_mask, scores=scores).logits
    (g,) = torch.autograd.grad(F.cross_entropy(logits, batch.labels, reduction="sum"), scores)
    g = g * batch.attention_mask
    torch.testing.assert_close(r, g / g.norm(dim=1, keepdim=True))


def test_attention_at_increases_loss_more_than_random():
    model, batch = make_model(), make_batch()
    clean = forward_batch(model, batch)
    reg = make_regularizer("attention_at", eps=2.0)
    adv = reg(model, batch, clean, batch.labels).sum()
    rand = torch.randn_like(clean.scores) * batch.attention_mask
    rand = 2.0 * rand / rand.norm(dim=1, keepdim=True)
    logits = model.attend(clean.hidden, batch.attention_mask, scores=clean.scores, score_perturb=rand).logits
    assert adv > F.cross_entropy(logits, batch.labels, reduction="sum")


@pytest.mark.parametrize("target", ["word", "attention"])
def test_vat_direction_approximates_dominant_eigenvector(target):
    """The one-step VAT direction is (close to) the top eigenvector of the KL Hessian: it beats random."""
    model, batch = make_model(), make_batch()
    clean = forward_batch(model, batch)
    reg = make_regularizer(f"{target}_vat", eps=1.0, xi=1e-2)
    torch.manual_seed(0)
    kl_adv = reg(model, batch, clean).sum()
    point = clean.embeddings if target == "word" else clean.scores
    rand = torch.randn_like(point) * (batch.attention_mask[..., None] if target == "word" else batch.attention_mask)
    rand = rand / rand.reshape(batch.size, -1).norm(dim=1).reshape(-1, *[1] * (rand.dim() - 1))
    logits = reg._perturbed_logits(model, batch, clean, rand)
    from xaicore.perturbation import kl_from_logits

    assert kl_adv > kl_from_logits(clean.logits, logits).sum()


def test_ivat_lies_in_difference_span_and_differs_from_vat():
    model, batch = make_model(), make_batch()
    clean = forward_batch(model, batch)
    torch.manual_seed(0)
    r_vat = make_regularizer("attention_vat", eps=1.0).perturbation(model, batch, clean)
    torch.manual_seed(0)
    r_ivat = make_regularizer("attention_ivat", eps=1.0).perturbation(model, batch, clean)
    # in the span of the rows d^_t of the (B, T, T) basis: least-squares residual ~ 0
    basis = attention_difference_basis(clean.scores, batch.attention_mask)
    for b in range(batch.size):
        A = basis[b].T  # (T, T) columns d^_t
        projected = A.double() @ torch.linalg.pinv(A.double(), rtol=1e-8) @ r_ivat[b].double()
        torch.testing.assert_close(projected.float(), r_ivat[b], atol=1e-5, rtol=1e-4)
    # ...and not the VAT direction (cosine well below 1 on the long examples)
    cos = F.cosine_similarity(r_vat[:2], r_ivat[:2], dim=1)
    assert (cos.abs() < 0.99).all()


def test_iat_is_projected_gradient():
    """iAT = D^T D g (gradient w.r.t. alpha at 0, mapped back), normalised: checked against autograd."""
    model, batch = make_model(), make_batch()
    clean = forward_batch(model, batch)
    r = make_regularizer("attention_iat", eps=1.0).perturbation(model, batch, clean, batch.labels)
    basis = attention_difference_basis(clean.scores, batch.attention_mask)
    alpha = torch.zeros_like(clean.scores, requires_grad=True)
    pert = torch.einsum("bt,btk->bk", alpha, basis)
    logits = model.attend(clean.hidden.detach(), batch.attention_mask, scores=clean.scores.detach(), score_perturb=pert)
    (g_alpha,) = torch.autograd.grad(F.cross_entropy(logits.logits, batch.labels, reduction="sum"), alpha)
    expected = torch.einsum("bt,btk->bk", g_alpha, basis)
    expected = expected / expected.norm(dim=1, keepdim=True)
    torch.testing.assert_close(r, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="attention_magic", eps=1.0), "unknown regularizer"),
        (dict(name="attention_vat", eps=-0.1), "eps must be >= 0"),
        (dict(name="word_vat", eps=1.0, xi=0.0), "xi must be > 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_regularizer(kwargs.pop("name"), **kwargs)


def test_unlabeled_only_enter_virtual_methods():
    model, batch, ul = make_model(), make_batch(), make_batch(1, labels=False)
    at = make_regularizer("attention_at", eps=1.0)
    with_ul, _ = compute_loss(model, batch, unlabeled=ul, regularizer=at)
    without, _ = compute_loss(model, batch, regularizer=at)
    assert torch.equal(with_ul, without)
    vat = make_regularizer("attention_vat", eps=1.0)
    torch.manual_seed(0)
    with_ul, _ = compute_loss(model, batch, unlabeled=ul, regularizer=vat)
    torch.manual_seed(0)
    without, _ = compute_loss(model, batch, regularizer=vat)
    assert not torch.equal(with_ul, without)
