"""One shared suite that every adversarial regulariser must pass, plus known answers."""
import pytest
import torch
import torch.nn.functional as F

from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.perturbation.norms import per_example_norm
from xaicore.perturbation.regularizers import REGULARIZER_KINDS, forward_batch, make_regularizer
from xaicore.training import compute_loss
from xaicore.types import Batch

METHODS = list(REGULARIZER_KINDS)  # the registry: a newly registered kind runs the whole suite
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
    from xaicore.perturbation.norms import kl_from_logits

    assert kl_adv > kl_from_logits(clean.logits, logits).sum()


def _brute_force_laplacian(scores, mask, k):
    """Dense Laplacian (one (B, T, T) matrix per example) of the directed k-nearest-by-score edges,
    built with Python loops and sorting (independent of exchange_graph's topk/scatter code), plus
    the number of connected components of each example's real tokens."""
    B, T = scores.shape
    scores = scores.detach()
    L = torch.zeros(B, T, T, dtype=torch.float64)
    components = []
    for b in range(B):
        real = [t for t in range(T) if mask[b, t]]
        parent = {t: t for t in real}

        def find(x):
            while parent[x] != x:
                x = parent[x]
            return x

        for t in real:
            others = sorted((abs(float(scores[b, t]) - float(scores[b, j])), j) for j in real if j != t)
            for _, j in others[:k]:
                L[b, t, t] += 1
                L[b, j, j] += 1
                L[b, t, j] -= 1
                L[b, j, t] -= 1
                parent[find(t)] = find(j)
        components.append(len({find(t) for t in real}))
    return L, components


def _long_batch(seed=0):
    return make_batch(seed, B=4, T=10, lengths=(10, 9, 8, 6))


def test_exchange_graph_is_half_the_graph_laplacian():
    """Known answer: U U^T = L_G / 2 for the k-nearest-by-score exchange graph (brute force)."""
    from xaicore.perturbation.norms import exchange_graph

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 9, generator=g)
    mask = torch.arange(9)[None, :] < torch.tensor([9, 6, 3])[:, None]
    for k in (1, 2, 3, 8):
        graph = exchange_graph(scores, mask, k)
        L, _ = _brute_force_laplacian(scores, mask, k)
        v = torch.randn(3, 9, generator=g) * mask
        torch.testing.assert_close(graph.combine(graph.project(v)).double(), torch.einsum("btk,bk->bt", L, v.double()) / 2,
                                   atol=1e-5, rtol=1e-5)
        assert graph.weight[~mask].abs().sum() == 0  # no edge leaves a padding position


def test_iat_is_normalised_laplacian_smoothed_gradient():
    """r_iAT = eps * L_G g / ||L_G g|| with g = dCE/da~ (autograd) and L_G brute force."""
    model, batch = make_model(), _long_batch()
    clean = forward_batch(model, batch)
    r = make_regularizer("attention_iat", eps=1.0, neighbours=2).perturbation(model, batch, clean, batch.labels)
    scores = clean.scores.detach().requires_grad_(True)
    logits = model.attend(clean.hidden.detach(), batch.attention_mask, scores=scores).logits
    (g,) = torch.autograd.grad(F.cross_entropy(logits, batch.labels, reduction="sum"), scores)
    L, _ = _brute_force_laplacian(clean.scores, batch.attention_mask, 2)
    expected = torch.einsum("btk,bk->bt", L, (g * batch.attention_mask).double())
    expected = expected / expected.norm(dim=1, keepdim=True)
    torch.testing.assert_close(r.double(), expected, atol=1e-5, rtol=1e-4)


def test_iat_with_a_complete_graph_is_exactly_at():
    """Known limit: with K >= T - 1 the graph is complete, L_G g = n g (the score gradient sums to
    0: softmax ignores a constant shift), so iAT equals AT."""
    model, batch = make_model(), make_batch()  # lengths <= 7
    clean = forward_batch(model, batch)
    r_at = make_regularizer("attention_at", eps=1.0).perturbation(model, batch, clean, batch.labels)
    r_iat = make_regularizer("attention_iat", eps=1.0, neighbours=6).perturbation(model, batch, clean, batch.labels)
    torch.testing.assert_close(r_iat, r_at, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["attention_iat", "attention_ivat"])
def test_interpretable_perturbation_is_not_a_temperature_change_nor_vat(name):
    """The old reading (rows d_t = a~_t 1 - a~) put r in span{1, a~}: residual 0 there, and this test
    fails on it. Exchange directions leave span{1, a~}, spend nothing on the all-ones direction
    (sum 0, a property of the Laplacian's range) and differ from AT/VAT on sparse graphs."""
    model, batch = make_model(), _long_batch()
    clean = forward_batch(model, batch)
    reg = make_regularizer(name, eps=1.0, neighbours=2)
    plain = make_regularizer(name.replace("_i", "_"), eps=1.0)
    torch.manual_seed(0)
    r = reg.perturbation(model, batch, clean, batch.labels)
    torch.manual_seed(0)
    r_plain = plain.perturbation(model, batch, clean, batch.labels)
    for b in range(batch.size):
        m = batch.attention_mask[b]
        span = torch.stack([torch.ones(int(m.sum())), clean.scores[b][m].detach()], dim=1).double()  # (n, 2)
        rb = r[b][m].double()
        residual = rb - span @ torch.linalg.lstsq(span, rb).solution
        assert residual.norm() > 0.2 * rb.norm(), (b, residual.norm(), rb.norm())
        assert abs(float(rb.sum())) < 1e-5
    cos = F.cosine_similarity(r, r_plain, dim=1)
    assert (cos.abs() < 0.99).all(), cos


def test_ivat_effective_rank_is_that_of_the_graph_laplacian():
    """Known answer: over many random starts the iVAT perturbations of one example span the range
    of L_G, rank n - (#components) (>= 3 here); the old span{1, a~} construction had rank <= 2."""
    model, batch = make_model(), _long_batch()
    clean = forward_batch(model, batch)
    reg = make_regularizer("attention_ivat", eps=1.0, neighbours=2)
    rs = []
    for seed in range(40):
        torch.manual_seed(seed)
        rs.append(reg.perturbation(model, batch, clean))
    R = torch.stack(rs).double()  # (40, B, T)
    _, comps = _brute_force_laplacian(clean.scores, batch.attention_mask, 2)
    for b in range(batch.size):
        n = int(batch.attention_mask[b].sum())
        sv = torch.linalg.svdvals(R[:, b, :n])
        rank = int((sv > 1e-6 * sv[0]).sum())
        assert rank == n - comps[b] and rank >= 3, (b, rank, n, comps[b])
    # pooled across examples and tokens (every example padded to T): rank well above 2 per example
    pooled = R.permute(1, 0, 2).reshape(-1, R.shape[2])
    sv = torch.linalg.svdvals(pooled)
    assert int((sv > 1e-6 * sv[0]).sum()) >= 8


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


@pytest.mark.parametrize("name", ["word_vat", "attention_vat", "attention_ivat"])
def test_vat_is_one_power_iteration_step_on_the_kl_hessian(name):
    """Known answer: with a small ``xi``, VAT's direction is ``H d0`` normalised (Miyato et al. 2017,
    eq. 9-10), ``H`` the Hessian of ``KL(p(x) || p(x + r))`` at ``r = 0`` and ``d0`` the random
    start; for iVAT the iteration runs on ``alpha``, so the direction is ``U U^T H U alpha0``.

    ``H v`` comes from double backprop (exact), in float64. The gradient must keep its component
    along the start direction (a normalisation to ``xi`` that autograd differentiates would remove
    it: cosine ~0.6-0.9 instead of 1).
    """
    from xaicore.perturbation.norms import exchange_graph, kl_from_logits, normalize_per_example

    model, batch = make_model().double().eval(), make_batch()
    clean = forward_batch(model, batch)
    reg = make_regularizer(name, eps=EPS, xi=1e-5)
    point = clean.embeddings if reg.target == "word" else clean.scores
    mask = batch.content_mask
    graph = exchange_graph(clean.scores, mask, reg.neighbours) if reg.interpretable else None

    torch.manual_seed(3)
    r = reg.perturbation(model, batch, clean)
    torch.manual_seed(3)
    if graph is None:  # the same draw as inside
        start = normalize_per_example(torch.randn_like(point), mask, 1.0)
    else:
        start = normalize_per_example(torch.randn_like(graph.weight) * (graph.weight != 0), mask, 1.0)
    d0 = start if graph is None else graph.combine(start)

    def kl_at(v):
        return kl_from_logits(clean.logits, reg._perturbed_logits(model, batch, clean, v)).sum()

    _, hd0 = torch.autograd.functional.hvp(kl_at, torch.zeros_like(point), d0.detach())
    if graph is not None:
        hd0 = graph.combine(graph.project(hd0))
    expected = normalize_per_example(hd0, mask, EPS)
    cos = F.cosine_similarity(r.reshape(batch.size, -1), expected.reshape(batch.size, -1), dim=1)
    assert (cos > 1 - 1e-6).all(), cos
    torch.testing.assert_close(r, expected, atol=1e-5, rtol=1e-4)  # finite difference: O(xi) error


def test_normalize_per_example_scales_tiny_directions_and_keeps_zero_ones():
    from xaicore.perturbation.norms import normalize_per_example

    x = torch.tensor([[3.0, 4.0, 9.0], [3e-30, -4e-30, 0.0], [0.0, 0.0, 5.0]])
    mask = torch.tensor([[True, True, False], [True, True, True], [True, True, False]])
    out = normalize_per_example(x, mask, 2.0)
    torch.testing.assert_close(out[0], torch.tensor([1.2, 1.6, 0.0]))
    torch.testing.assert_close(out[1], torch.tensor([1.2, -1.6, 0.0]))
    assert torch.equal(out[2], torch.zeros(3))  # nothing left under the mask: stays zero
    # detach_scale: the gradient keeps its component along x (here: all of it)
    v = torch.tensor([[1.0, 2.0, 0.0]], requires_grad=True)
    (g_detached,) = torch.autograd.grad(normalize_per_example(v, mask[:1], 1.0, detach_scale=True) @ v[0].detach(), v)
    (g_through,) = torch.autograd.grad(normalize_per_example(v, mask[:1], 1.0) @ v[0].detach(), v)
    torch.testing.assert_close(g_detached, v.detach() / 5 ** 0.5)
    torch.testing.assert_close(g_through, torch.zeros_like(v), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", METHODS)
def test_dropout_is_replayed_in_the_perturbed_pass(name):
    """In training mode with dropout, a zero perturbation reproduces the clean logits exactly:
    VAT's KL is 0 at r = 0 and AT's loss is the clean CE (the perturbed pass replays the masks)."""
    torch.manual_seed(0)
    model = AttentionLSTMClassifier(AttentionLSTMConfig(vocab_size=50, embedding_dim=8, hidden_dim=6,
                                                        attention_dim=5, dropout=0.5)).train()
    batch = make_batch()
    clean = forward_batch(model, batch)
    assert set(clean.dropout_masks) == {"embeddings", "pooled"}
    assert not torch.equal(forward_batch(model, batch).logits, clean.logits)  # dropout is on
    reg = make_regularizer(name, eps=0.0, xi=0.05)
    loss = reg(model, batch, clean, batch.labels)
    if reg.virtual:
        torch.testing.assert_close(loss, torch.zeros_like(loss), atol=1e-7, rtol=0)
    else:
        torch.testing.assert_close(loss, F.cross_entropy(clean.logits, batch.labels, reduction="none"))
    # the VAT direction is still one power-iteration step (no first-order dropout term)
    if reg.virtual:
        r = make_regularizer(name, eps=1.0, xi=1e-3).perturbation(model, batch, clean)
        assert torch.isfinite(r).all() and (per_example_norm(r)[:3] - 1.0).abs().max() < 1e-4


# ------------------------------------------------------------------- numerics
def test_normalize_per_example_underflowing_direction_gives_zero():
    """A subnormal direction (1e-45) has no usable direction: r = 0, never inf/nan (it used to
    return [inf, nan, nan]); masked positions are exactly 0 even where the input is not finite."""
    from xaicore.perturbation.norms import normalize_per_example

    mask = torch.tensor([[True, True, True], [True, True, False], [True, True, False]])
    x = torch.tensor([[1e-45, 0.0, 0.0], [1e-45, -1e-45, 0.0], [3.0, 4.0, float("nan")]])
    for detach in (False, True):
        out = normalize_per_example(x, mask, 5.0, detach_scale=detach)
        assert torch.isfinite(out).all()
        assert torch.equal(out[:2], torch.zeros(2, 3))
        torch.testing.assert_close(out[2], torch.tensor([3.0, 4.0, 0.0]))
    # a non-finite direction under the mask: no perturbation for that example
    assert torch.equal(normalize_per_example(torch.tensor([[float("inf"), 1.0]]), mask[:1, :2], 1.0), torch.zeros(1, 2))
    # the smallest normal float32 still scales to exactly the norm without overflow
    t = torch.finfo(torch.float32).tiny
    out = normalize_per_example(torch.tensor([[t, 0.0]]), mask[:1, :2], 5.0)
    torch.testing.assert_close(out, torch.tensor([[5.0, 0.0]]))


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("case", ["one_token", "two_tokens", "underflowing_gradients"])
def test_many_steps_on_degenerate_inputs_stay_finite(name, case):
    """Every regulariser, 40 Adam steps at a large eps and lr on 1- and 2-token sequences and on a
    model whose gradients underflow to ~1e-45: finite losses, perturbations and parameters."""
    torch.manual_seed(0)
    model = make_model()
    if case == "one_token":
        batch, ul = make_batch(B=4, T=3, lengths=(1, 1, 1, 1)), make_batch(1, B=4, T=3, lengths=(1, 1, 1, 1), labels=False)
    else:
        batch, ul = make_batch(B=4, T=3, lengths=(2, 1, 2, 2)), make_batch(1, B=4, T=3, lengths=(2, 2, 1, 2), labels=False)
    if case == "underflowing_gradients":
        with torch.no_grad():  # logits ~1e-44: every gradient w.r.t. embeddings/scores is subnormal or 0
            model.decoder.weight.mul_(1e-42)
            model.decoder.bias.zero_()
    reg = make_regularizer(name, eps=5.0, xi=1e-6)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(40):
        r = reg.perturbation(model, batch, forward_batch(model, batch), batch.labels)
        assert torch.isfinite(r).all()
        loss, _ = compute_loss(model, batch, unlabeled=ul, regularizer=reg, lam=1.0)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ------------------------------------------------------ Word iAT / iVAT (Sato et al. 2018)
def _brute_force_word_directions(model, batch, k):
    """(B, T, k, E) unit directions to each token's k nearest words by cosine (Python loops)."""
    W = model.embedding.weight.detach().double()
    V = W.shape[0]
    cos = [[float(W[i] @ W[j] / (W[i].norm() * W[j].norm() + 1e-300)) for j in range(V)] for i in range(V)]
    B, T = batch.input_ids.shape
    out = torch.zeros(B, T, k, W.shape[1], dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            v = int(batch.input_ids[b, t])
            order = sorted((j for j in range(V) if j not in (v, 0)), key=lambda j: -cos[v][j])[:k]
            for n, j in enumerate(order):
                d = W[j] - W[v]
                out[b, t, n] = d / d.norm()
    return out


def test_word_iat_is_sato_direction_combination():
    """Known answer (Sato et al. 2018 with their code's per-token normalisation): alpha_t = D_t g_t /
    ||D_t g_t||, r = eps * sum_t alpha_t D_t / ||.||, directions from brute-force cosine neighbours."""
    model, batch = make_model(), make_batch()
    clean = forward_batch(model, batch)
    reg = make_regularizer("word_iat", eps=1.0, word_neighbours=3)
    r = reg.perturbation(model, batch, clean, batch.labels).double()
    (g,) = torch.autograd.grad(F.cross_entropy(clean.logits, batch.labels, reduction="sum"), clean.embeddings,
                               retain_graph=True)
    D = _brute_force_word_directions(model, batch, 3)
    g_alpha = torch.einsum("btke,bte->btk", D, g.double())
    alpha = g_alpha / g_alpha.norm(dim=2, keepdim=True).clamp_min(1e-300)
    expected = torch.einsum("btk,btke->bte", alpha, D) * batch.attention_mask[..., None]
    expected = expected / expected.flatten(1).norm(dim=1)[:, None, None]
    torch.testing.assert_close(r, expected, atol=1e-5, rtol=1e-4)
    r_at = make_regularizer("word_at", eps=1.0).perturbation(model, batch, clean, batch.labels)
    assert (F.cosine_similarity(r.flatten(1).float(), r_at.flatten(1), dim=1).abs() < 0.99).all()


@pytest.mark.parametrize("name", ["word_iat", "word_ivat"])
def test_word_interpretable_perturbation_lies_in_each_tokens_neighbour_span(name):
    """Each token's r_t is in the K-dim span of its own neighbour directions (K=3 < E=8): rank <= K per
    token, while across tokens the pooled perturbations span more than K dimensions."""
    model, batch = make_model(), make_batch()
    clean = forward_batch(model, batch)
    reg = make_regularizer(name, eps=1.0, word_neighbours=3)
    torch.manual_seed(0)
    r = reg.perturbation(model, batch, clean, batch.labels).double()
    D = _brute_force_word_directions(model, batch, 3)
    for b in range(batch.size):
        for t in range(int(batch.attention_mask[b].sum())):
            A = D[b, t].T  # (E, K)
            coef = torch.linalg.lstsq(A, r[b, t]).solution
            assert (A @ coef - r[b, t]).norm() <= 1e-5 * max(1.0, float(r[b, t].norm()))
    real = r[batch.attention_mask]
    sv = torch.linalg.svdvals(real)
    assert int((sv > 1e-6 * sv[0]).sum()) > 3


def test_word_neighbour_table_is_shared_code_and_refreshed(monkeypatch):
    import xaicore.perturbation.regularizers as regs

    calls = []
    real = regs.nearest_neighbours
    monkeypatch.setattr(regs, "nearest_neighbours", lambda *a, **k: calls.append(1) or real(*a, **k))
    model, batch = make_model(), make_batch()
    reg = make_regularizer("word_ivat", eps=1.0, word_neighbours=3, refresh_every=2)
    for _ in range(5):
        reg.perturbation(model, batch, forward_batch(model, batch))
    assert len(calls) == 3  # calls 0, 2, 4
