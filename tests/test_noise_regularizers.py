"""Shared suite for the transformer regularisers (similar-word noise family, SMART) plus known answers.

Same pattern as tests/test_regularizers.py (the AT/VAT suite), on tiny BERT models built from a config.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.tiny_transformer import SPECIAL, VOCAB, bert_batch, tiny_model
from xaicore.perturbation.neighbours import excluded_tokens, nearest_neighbours
from xaicore.models.protocol import forward_batch
from xaicore.perturbation.noise import (CANDIDATE_SOURCES, NOISE_RECIPES, NOISE_VARIANTS, TOKEN_SELECTIONS, make_noise_regularizer,
                          select_tokens, symmetric_kl)
from xaicore.perturbation.smart import SmartRegularizer
from xaicore.training import compute_loss
from xaicore.types import Batch, ClassifierOutput

EXCLUDE = excluded_tokens(VOCAB, SPECIAL)


def neighbour_ids(model):
    return nearest_neighbours(model.model.get_input_embeddings().weight.detach(), 10, exclude=EXCLUDE).ids


def synonyms():
    """A hand-made synonym table: good<->great/nice, bad->awful, car<->auto; -1 pads; others none."""
    idx = {t: i for i, t in enumerate(VOCAB)}
    table = torch.full((len(VOCAB), 2), -1, dtype=torch.long)
    for w, syns in {"good": ["great", "nice"], "great": ["good"], "bad": ["awful"], "car": ["auto"], "auto": ["car"]}.items():
        table[idx[w], : len(syns)] = torch.tensor([idx[s] for s in syns])
    return table


def build(name, model, noise_size=0.5):
    if name == "smart":
        return SmartRegularizer(mask="content")  # the suite's special-token rule; the code default is tested below
    return make_noise_regularizer(name, table_for(NOISE_RECIPES[name].source, model), noise_size=noise_size)


def table_for(source, model):
    """The candidate table a source declares it reads."""
    return {"synonyms": synonyms, "neighbours": lambda: neighbour_ids(model)}[source.table]()


ALL = ["smart", *NOISE_RECIPES]  # the registries: a newly registered recipe runs the whole suite


@pytest.fixture(params=ALL)
def name(request):
    return request.param


def test_registry_lists_every_variant():
    assert set(ALL) == {"smart", *NOISE_VARIANTS} and len(NOISE_VARIANTS) == 6


def test_loss_is_finite_and_reaches_parameters(name):
    model, batch = tiny_model(), bert_batch()
    reg = build(name, model)
    loss, parts = compute_loss(model, batch, regularizer=reg, lam=1.0)
    assert torch.isfinite(loss) and parts["reg"] > 0 and parts["noise_ratio"] > 0
    reg_only = reg(model, batch, forward_batch(model, batch), batch.labels).mean()
    grads = torch.autograd.grad(reg_only, list(model.parameters()), allow_unused=True)
    reached = {n for (n, _), g in zip(model.named_parameters(), grads) if g is not None and g.abs().sum() > 0}
    assert "model.classifier.weight" in reached
    assert any("encoder.layer.0" in n for n in reached)
    if name != "smart":  # SMART's adversarial input is detached (mt-dnn): it never trains the word embeddings
        assert "model.bert.embeddings.word_embeddings.weight" in reached


def test_special_and_padding_tokens_never_changed(name):
    model, batch = tiny_model(), bert_batch()
    r = build(name, model, noise_size=1.0).perturbation(model, batch, forward_batch(model, batch), batch.labels)
    assert r[~batch.content_mask].abs().sum() == 0
    assert r[batch.content_mask].abs().sum() > 0


@pytest.mark.parametrize("variant", list(NOISE_RECIPES))
def test_noise_size_zero_is_exactly_fine_tuning(variant):
    model, batch = tiny_model(dropout=0.1), bert_batch()
    torch.manual_seed(1)
    vanilla, _ = compute_loss(model, batch, regularizer=None)
    torch.manual_seed(1)
    zero, parts = compute_loss(model, batch, regularizer=build(variant, model, noise_size=0.0), lam=1.0)
    assert torch.equal(vanilla, zero) and parts["noise_ratio"] == 0.0


def test_same_seed_same_loss(name):
    def run():
        model, batch = tiny_model(dropout=0.1), bert_batch()
        torch.manual_seed(123)
        return compute_loss(model, batch, regularizer=build(name, model), lam=1.0)[0]

    assert torch.equal(run(), run())


def test_bad_input():
    model = tiny_model()
    with pytest.raises(ValueError, match="noise_size"):
        make_noise_regularizer("similar_1_1", neighbour_ids(model), noise_size=1.01)
    with pytest.raises(ValueError, match="unknown noise variant"):
        make_noise_regularizer("similar_3_1", neighbour_ids(model))
    with pytest.raises(ValueError, match="target"):
        SmartRegularizer(target="hidden")


# ------------------------------------------------------------------ shared suite: noise components
@pytest.mark.parametrize("source", list(CANDIDATE_SOURCES))
def test_candidate_source_replaces_content_tokens_by_their_own_candidates(source):
    model, batch = tiny_model(), bert_batch()
    src = CANDIDATE_SOURCES[source]
    table = table_for(src, model)
    noise = make_noise_regularizer("similar_1_1", table, source=src)  # any recipe: the source overrides its own
    torch.manual_seed(0)
    rep, has = noise.replacements(batch.input_ids)
    assert rep.shape == batch.input_ids.shape and rep.dtype == torch.long and has.dtype == torch.bool
    cand = table[batch.input_ids]  # (B, T, K)
    own = (cand == rep.unsqueeze(-1)).any(-1)
    assert own[has].all()  # a replacement is one of the token's own candidates
    assert torch.equal(rep[~has & (rep != batch.input_ids)], batch.input_ids[~has & (rep != batch.input_ids)])
    assert has[batch.content_mask].any()
    assert src.table in ("neighbours", "synonyms")


@pytest.mark.parametrize("selection", list(TOKEN_SELECTIONS))
def test_token_selection_picks_content_tokens_only(selection):
    model, batch = tiny_model(), bert_batch()
    sel = TOKEN_SELECTIONS[selection]
    noise = make_noise_regularizer("similar_1_1", neighbour_ids(model), selection=sel)
    clean = forward_batch(model, batch)
    chosen = noise.chosen_positions(model, batch, clean, batch.labels)
    assert chosen.shape == batch.content_mask.shape and chosen.dtype == torch.bool
    assert not (chosen & ~batch.content_mask).any()
    assert chosen.sum(1).ge(1).all()  # every example with content gets at least one token
    fused = noise.fused_loss(model, batch)
    assert (fused is None) == sel.needs_gradient  # the one-pass path only without the clean pass's gradient
    if sel.needs_gradient:
        with pytest.raises(ValueError, match="labels"):
            noise.chosen_positions(model, batch, clean, None)


def test_recipes_are_built_from_registered_components():
    for recipe in NOISE_RECIPES.values():
        assert CANDIDATE_SOURCES[recipe.source.name] is recipe.source
        assert TOKEN_SELECTIONS[recipe.selection.name] is recipe.selection
    assert (NOISE_RECIPES["similar_2_2"].source.name, NOISE_RECIPES["similar_2_2"].selection.name) == \
        ("nearest", "saliency_high")


# ------------------------------------------------------------------ known answers: noise
class FeedRecorder:
    """Records the inputs_embeds of every pass through the HF model (the noisy pass is the last)."""

    def __init__(self, model):
        self.seen = []
        self.handle = model.model.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        self.seen.append(kwargs["inputs_embeds"].detach().clone())


def test_1_1_with_noise_size_1_feeds_exactly_the_neighbour():
    model, batch = tiny_model(), bert_batch()
    ids = neighbour_ids(model)
    reg = make_noise_regularizer("similar_1_1", ids, noise_size=1.0)
    rec = FeedRecorder(model)
    clean = forward_batch(model, batch)
    reg(model, batch, clean, batch.labels)
    W = model.model.get_input_embeddings().weight.detach()
    # brute force: nearest cosine neighbour of each content token, never itself or a special token
    unit = W / W.norm(dim=1, keepdim=True)
    sims = unit @ unit.T
    sims.fill_diagonal_(-2)
    sims[:, EXCLUDE] = -2
    expected_ids = torch.where(batch.content_mask, sims.argmax(1)[batch.input_ids], batch.input_ids)
    assert torch.equal(rec.seen[-1], W[expected_ids])  # bit-exact, specials and padding unchanged


def test_1_1_half_noise_is_halfway_and_ratio_is_reported():
    model, batch = tiny_model(), bert_batch()
    ids = neighbour_ids(model)
    reg = make_noise_regularizer("similar_1_1", ids, noise_size=0.5)
    clean = forward_batch(model, batch)
    noise = reg.perturbation(model, batch, clean, batch.labels)
    W = model.model.get_input_embeddings().weight.detach()
    want = 0.5 * (W[ids[batch.input_ids, 0]] - W[batch.input_ids]) * batch.content_mask.unsqueeze(-1)
    torch.testing.assert_close(noise, want, rtol=0, atol=1e-6)
    _, stats = reg.loss_with_stats(model, batch, clean, batch.labels)
    emb = clean.embeddings.detach() * batch.content_mask.unsqueeze(-1)
    ratio = (want.flatten(1).norm(dim=1) / emb.flatten(1).norm(dim=1)).mean()
    assert stats["noise_ratio"] == pytest.approx(float(ratio), rel=1e-5) and stats["frac_changed"] == 1.0


def test_1_2_draws_among_the_top_10():
    model = tiny_model()
    ids = neighbour_ids(model)
    reg = make_noise_regularizer("similar_1_2", ids, noise_size=1.0)
    x = torch.full((1, 2000), VOCAB.index("good"))
    torch.manual_seed(0)
    rep, has = reg.replacements(x)
    drawn = set(rep[0].tolist())
    assert drawn == set(ids[x[0, 0], :10].tolist()) and has.all()


def test_2_1_changes_15_percent_of_each_sentence():
    model, batch = tiny_model(), bert_batch(lengths=(30, 12, 4))  # 28, 10, 2 content tokens
    reg = make_noise_regularizer("similar_2_1", neighbour_ids(model), noise_size=1.0)
    noise = reg.perturbation(model, batch, forward_batch(model, batch), batch.labels)
    changed = (noise.abs().sum(-1) > 0).sum(1).tolist()
    assert changed == [4, 2, 1]  # round(0.15 * n), at least 1


class KnownSaliencyModel(nn.Module):
    """logits = sum_t a_t * (E_t . v) * [1, -1]: |dCE/dE_t| summed over E is |p0 - y0| * 2 * |a_t| * ||v||_1,
    so the saliency order of the positions is the order of |a_t|, whatever the tokens."""

    def __init__(self, a):
        super().__init__()
        self.emb = nn.Embedding(len(VOCAB), 4)
        self.a = a
        self.v = torch.tensor([1.0, -2.0, 0.5, 1.5])

    def embed(self, ids):
        return self.emb(ids)

    def forward(self, input_ids, attention_mask, *, token_type_ids=None, inputs_embeds=None):
        e = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        s = ((e @ self.v) * self.a[: e.shape[1]] * attention_mask).sum(1)
        return ClassifierOutput(logits=torch.stack([s, -s], 1), embeddings=e)


@pytest.mark.parametrize("variant,expect", [("similar_2_2", "high"), ("similar_2_3", "low")])
def test_saliency_variants_pick_known_tokens(variant, expect):
    T = 22  # 20 content tokens -> 3 chosen
    a = torch.tensor([0.0] + [0.1 * (i % 7 + 1) * (-1) ** i for i in range(20)] + [0.0])
    model = KnownSaliencyModel(a)
    torch.manual_seed(0)
    ids = torch.randint(6, len(VOCAB), (1, T))
    special = torch.zeros(1, T, dtype=torch.bool)
    special[0, [0, T - 1]] = True
    batch = Batch(input_ids=ids, attention_mask=torch.ones(1, T, dtype=torch.bool), labels=torch.tensor([0]),
                  special_tokens_mask=special)
    table = torch.arange(len(VOCAB)).roll(1).unsqueeze(1)  # every token has another token as neighbour
    reg = make_noise_regularizer(variant, table, noise_size=1.0)
    chosen = reg.chosen_positions(model, batch, forward_batch(model, batch), batch.labels)[0]
    mag = a.abs().clone()
    mag[special[0]] = float("nan")
    content = torch.nonzero(~special[0]).squeeze(1)
    order = content[mag[content].argsort(descending=(expect == "high"), stable=True)]
    # ties in |a| are broken by position; compare the selected magnitudes
    assert sorted(mag[chosen].tolist()) == sorted(mag[order[:3]].tolist())


def test_select_tokens_rounding():
    mask = torch.tensor([[True] * 10 + [False] * 2, [True] * 3 + [False] * 9])
    sel = select_tokens(torch.arange(12.0).repeat(2, 1), mask, 0.15)
    assert sel.sum(1).tolist() == [2, 1] and sel[0, 9] and sel[0, 8] and not sel[0, 10]


def test_wordnet_variant_uses_synonyms_and_leaves_others():
    model = tiny_model()
    idx = {t: i for i, t in enumerate(VOCAB)}
    words = ["good", "bad", "movie", "car"]
    ids = torch.tensor([[idx["[CLS]"]] + [idx[w] for w in words] + [idx["[SEP]"]]])
    batch = Batch(input_ids=ids, attention_mask=torch.ones_like(ids, dtype=torch.bool),
                  labels=torch.tensor([1]), special_tokens_mask=(ids == 3) | (ids == 4))
    reg = make_noise_regularizer("wordnet", synonyms(), noise_size=1.0)
    W = model.model.get_input_embeddings().weight.detach()
    seen_good = set()
    for seed in range(20):
        torch.manual_seed(seed)
        new, changed = reg.noised(model, batch, forward_batch(model, batch), batch.labels)
        assert changed[0].tolist() == [False, True, True, False, True, False]  # movie has no synonym
        assert torch.equal(new[0, 2], W[idx["awful"]]) and torch.equal(new[0, 4], W[idx["auto"]])
        assert torch.equal(new[0, 3], W[idx["movie"]])
        seen_good.add(next(i for i in (idx["great"], idx["nice"]) if torch.equal(new[0, 1], W[i])))
    assert seen_good == {idx["great"], idx["nice"]}  # random among several


# ------------------------------------------------------------------ known answers: SMART
def test_smart_step_has_per_token_linf_norm_step_size():
    model, batch = tiny_model(), bert_batch()
    with torch.no_grad():  # a less flat classifier, so that every token's KL gradient is non-zero in float32
        model.model.classifier.weight.mul_(100)
    real = batch.attention_mask
    # with a negligible epsilon the per-token L-inf norm of the step is exactly step_size on every real token
    reg = SmartRegularizer(epsilon=1e-20)  # mt-dnn target (embedding output) and mask (attention)
    r = reg.perturbation(model, batch, forward_batch(model, batch), batch.labels)
    linf = r.abs().amax(-1)  # (B, T)
    torch.testing.assert_close(linf[real], torch.full_like(linf[real], 1e-3), rtol=2e-4, atol=0)  # float32 (e + s) - e
    assert (linf[~real] == 0).all()
    assert (linf[batch.special_tokens_mask] > 0).all()  # the code perturbs [CLS]/[SEP]
    # mt-dnn's default epsilon 1e-6 (g / (max|g| + 1e-6)): never above step_size, below it for tiny gradients
    torch.manual_seed(0)
    r = SmartRegularizer().perturbation(model, batch, forward_batch(model, batch), batch.labels)
    assert (r.abs().amax(-1)[real] <= 1e-3 + 1e-9).all()
    flat = tiny_model()
    r = SmartRegularizer().perturbation(flat, batch, forward_batch(flat, batch), batch.labels)
    assert (r.abs().amax(-1)[real] < 1e-3).all()


def test_smart_direction_ascends_the_kl():
    model, batch = tiny_model(), bert_batch()
    reg = SmartRegularizer(target="word", step_size=0.5, noise_var=1e-3)
    clean = forward_batch(model, batch)
    torch.manual_seed(0)
    r = reg.perturbation(model, batch, clean, batch.labels)
    emb = clean.embeddings.detach()

    def kl(x):
        return F.kl_div(F.log_softmax(model(batch.input_ids, batch.attention_mask, token_type_ids=batch.token_type_ids,
                                            inputs_embeds=x).logits, -1),
                        F.softmax(clean.logits.detach(), -1), reduction="batchmean")

    rand = torch.randn_like(r)
    rand = rand / rand.abs().amax(-1, keepdim=True) * 0.5 * batch.attention_mask.unsqueeze(-1)
    with torch.no_grad():
        assert kl(emb + r) > kl(emb + rand)


def test_symmetric_kl_is_symmetric_and_matches_definition():
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    torch.testing.assert_close(symmetric_kl(a, b), symmetric_kl(b, a))
    p, q = a.softmax(-1), b.softmax(-1)
    want = (p * (p / q).log()).sum(-1) + (q * (q / p).log()).sum(-1)
    torch.testing.assert_close(symmetric_kl(a, b), want)
    a.requires_grad_(True)
    b.requires_grad_(True)
    ga, gb = torch.autograd.grad(symmetric_kl(a, b).sum(), [a, b])
    assert ga.abs().sum() > 0 and gb.abs().sum() > 0  # both passes are trained (mt-dnn SymKlCriterion)


@pytest.mark.parametrize("variant", ["similar_1_1", "similar_1_2", "wordnet"])
def test_fused_pass_equals_two_passes(variant):
    """The loop's one-forward path (clean and noisy rows batched) gives the two-pass loss."""
    model, batch = tiny_model(), bert_batch()  # no dropout: both paths are deterministic given the seed
    reg = build(variant, model, noise_size=0.7)
    torch.manual_seed(5)
    fused, parts = compute_loss(model, batch, regularizer=reg, lam=1.0)
    torch.manual_seed(5)
    clean = forward_batch(model, batch)
    per, stats = reg.loss_with_stats(model, batch, clean, batch.labels)
    two = F.cross_entropy(clean.logits, batch.labels) + per.mean()
    torch.testing.assert_close(fused, two, rtol=1e-5, atol=1e-6)
    assert parts["noise_ratio"] == pytest.approx(stats["noise_ratio"], rel=1e-5)
    assert reg.fused_loss(model, batch) is not None
    assert build("similar_2_2", model).fused_loss(model, batch) is None  # saliency needs the clean gradient
