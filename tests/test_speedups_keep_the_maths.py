"""The speed-ups of the BiLSTM Attention VAT step change no result: each against the straightforward
implementation it replaces (issue 18, must-reach A).

* the encoder's reversal within length is a row ``index_select`` whose backward is the same
  ``index_select`` (an involution) instead of ``gather`` + ``scatter_add``: outputs and gradients
  bitwise equal to the ``gather`` implementation;
* the Attention VAT loss (clean pass, ``xi`` probe on the attention scores reusing the clean encoder
  states, perturbed pass) equals a naive one that re-runs the whole model for every pass;
* the fused Adam / AdamW update equals PyTorch's default (foreach) one up to float rounding.
"""
import pytest
import torch

from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig, _reverse_within_length
from xaicore.perturbation.norms import kl_from_logits, normalize_per_example
from xaicore.perturbation.regularizers import make_regularizer
from xaicore.training import TrainConfig, Trainer, compute_loss_on_device
from xaicore.types import Batch


def model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return AttentionLSTMClassifier(AttentionLSTMConfig(vocab_size=40, embedding_dim=8, hidden_dim=6, attention_dim=5,
                                                       dropout=dropout))


def batch(lengths=(7, 4, 1, 6), T=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]
    ids = torch.randint(2, 40, (len(lengths), T), generator=g).masked_fill(~mask, 0)
    return Batch(ids, mask, torch.randint(0, 2, (len(lengths),), generator=g))


def gather_encode(m: AttentionLSTMClassifier, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The encoder as it was written before the speed-up: reversal by ``gather`` (backward: ``scatter_add``)."""
    rev = _reverse_within_length(mask)
    fw, _ = m.encoder_fw(x)
    bw, _ = m.encoder_bw(x.gather(1, rev.unsqueeze(-1).expand_as(x)))
    bw = bw.gather(1, rev.unsqueeze(-1).expand_as(bw))
    return torch.cat([fw, bw], dim=-1) * mask.unsqueeze(-1).to(fw.dtype)


def test_reversal_within_length_is_an_involution():
    mask = torch.arange(6)[None] < torch.tensor([6, 3, 1, 0])[:, None]
    rev = _reverse_within_length(mask)
    assert torch.equal(rev.gather(1, rev), torch.arange(6).expand(4, 6))
    assert rev[1].tolist() == [2, 1, 0, 3, 4, 5]


def test_encoder_outputs_and_gradients_bitwise_equal_the_gather_implementation():
    m = model()
    b = batch()
    mask = b.attention_mask
    x = torch.randn(4, 7, 8, requires_grad=True)
    weight = torch.randn(4, 7, 12)  # a loss that weighs every output coordinate differently
    new = m.encode(x, mask)
    grads_new = torch.autograd.grad((new * weight).sum(), [x, *m.parameters()], allow_unused=True)
    old = gather_encode(m, x, mask)
    grads_old = torch.autograd.grad((old * weight).sum(), [x, *m.parameters()], allow_unused=True)
    assert torch.equal(new, old)
    for gn, go in zip(grads_new, grads_old):
        assert (gn is None) == (go is None)
        if gn is not None:
            assert torch.equal(gn, go)
    # and twice differentiable like the gather (a gradient penalty through the encoder)
    (gx,) = torch.autograd.grad((m.encode(x, mask) ** 2).sum(), x, create_graph=True)
    (gx_old,) = torch.autograd.grad((gather_encode(m, x, mask) ** 2).sum(), x, create_graph=True)
    (hh,) = torch.autograd.grad(gx.pow(2).sum(), x)
    (hh_old,) = torch.autograd.grad(gx_old.pow(2).sum(), x)
    torch.testing.assert_close(hh, hh_old, rtol=1e-6, atol=1e-7)


def naive_attention_vat_loss(m, b, *, eps, xi, lam):
    """Attention VAT (attention-vat.txt eqs. 1-4, 10) written without any reuse: every pass runs the whole
    model (embedding, BiLSTM, attention) from the input ids, with the clean pass's dropout masks."""
    mask = b.content_mask
    clean = m(b.input_ids, b.attention_mask)
    ce = torch.nn.functional.cross_entropy(clean.logits, b.labels)
    replay = {} if clean.dropout_masks is None else {"dropout_masks": clean.dropout_masks}
    var = normalize_per_example(torch.randn_like(clean.scores), mask, 1.0).requires_grad_(True)
    d = normalize_per_example(var, mask, xi, detach_scale=True)
    probe = m(b.input_ids, b.attention_mask, score_perturb=d, **replay).logits
    (g,) = torch.autograd.grad(kl_from_logits(clean.logits, probe).sum(), var, retain_graph=True)
    r = normalize_per_example(g.detach(), mask, eps)
    perturbed = m(b.input_ids, b.attention_mask, score_perturb=r, **replay).logits
    return ce + lam * kl_from_logits(clean.logits, perturbed).mean()


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_attention_vat_loss_and_gradients_equal_the_naive_implementation(dropout):
    eps, xi, lam = 2.0, 0.1, 1.5
    reg = make_regularizer("attention_vat", eps=eps, xi=xi)
    for seed in range(3):
        m = model(seed, dropout).train()
        b = batch(seed=seed)
        torch.manual_seed(100 + seed)
        loss, _ = compute_loss_on_device(m, b, regularizer=reg, lam=lam)
        grads = torch.autograd.grad(loss, list(m.parameters()), allow_unused=True)
        torch.manual_seed(100 + seed)  # the same dropout masks and random start direction
        ref = naive_attention_vat_loss(m, b, eps=eps, xi=xi, lam=lam)
        ref_grads = torch.autograd.grad(ref, list(m.parameters()), allow_unused=True)
        if dropout == 0:  # the regulariser's KL is not negligible (else the comparison would test the CE only)
            ce = torch.nn.functional.cross_entropy(m(b.input_ids, b.attention_mask).logits, b.labels)
            assert float(ref.detach() - ce.detach()) > 1e-4
        torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-7)
        for (name, _), g, gr in zip(m.named_parameters(), grads, ref_grads):
            if gr is None:
                assert g is None or not g.any(), name
            else:
                torch.testing.assert_close(g, gr, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("optimizer, amsgrad, weight_decay", [("adam", True, 1e-5), ("adamw", False, 0.01)])
def test_fused_optimizer_updates_equal_the_default_implementation(optimizer, amsgrad, weight_decay):
    cfg = TrainConfig(epochs=1, lr=1e-2, optimizer=optimizer, amsgrad=amsgrad, weight_decay=weight_decay,
                      max_grad_norm=1.0, lam=1.0)
    reg = make_regularizer("attention_vat", eps=1.0)
    fused, plain = model(3), model(3)
    t_fused = Trainer(fused, cfg, steps_per_epoch=8, regularizer=reg)
    t_plain = Trainer(plain, cfg, steps_per_epoch=8, regularizer=reg)
    assert t_fused.optimizer.defaults.get("fused") is True  # on CPU the Trainer fuses
    opt = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    t_plain.optimizer = opt(plain.parameters(), lr=cfg.lr, weight_decay=weight_decay, amsgrad=amsgrad)
    t_plain.scheduler = torch.optim.lr_scheduler.LambdaLR(t_plain.optimizer, lambda step: 1.0)
    for step in range(8):
        b = batch(seed=step)
        torch.manual_seed(step)
        lf = t_fused.train_step(b)["loss"]
        torch.manual_seed(step)
        lp = t_plain.train_step(b)["loss"]
        assert lf == pytest.approx(lp, rel=1e-5, abs=1e-6)
    moved = 0.0
    for (name, pf), pp, p0 in zip(fused.named_parameters(), plain.parameters(), model(3).parameters()):
        torch.testing.assert_close(pf, pp, rtol=1e-5, atol=1e-6, msg=name)
        moved = max(moved, float((pf - p0).detach().abs().max()))
    assert moved > 1e-3  # the steps did update the weights (else equality would be vacuous)
