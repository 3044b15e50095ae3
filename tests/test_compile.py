"""``compile: true`` (xaicore/compilation.py, issue 18 item 5): the compiled model computes what the eager one
computes (logits, losses, gradients, every perturbation), padding to a multiple of 8 changes nothing an
eval-mode model outputs, the batches of ``compile: false`` are today's, and the compilations stay bounded
and are reported. Tests use the ``eager`` / ``aot_eager`` backends (dynamo traces, no code generation);
one slow test runs the default inductor backend."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.test_trainable_contract import assets, base_config, run  # noqa: F401  (assets: a fixture)
from tests.tiny_transformer import bert_batch, bert_config
from trainables import TRAINABLES
from trainables.config import ConfigError
from trainables.protocol import is_bookkeeping, runtime_compilation
from xaicore.compilation import EAGER, Compilation, compile_model, compile_regions, forget_compiled
from xaicore.data.batching import batch_indices, batches, collate_indices, encode_dataset, eval_batches
from xaicore.data.encoded import collate_encoded, padded_width
from xaicore.data.loading import TextDataset
from xaicore.data.vocab import WordEncoder, WordVocab
from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.models.protocol import forward_batch
from xaicore.models.transformer import TransformerClassifier
from xaicore.perturbation.regularizers import make_regularizer
from xaicore.perturbation.smart import SmartRegularizer
from xaicore.training import TrainConfig, Trainer, compute_loss
from xaicore.types import Batch


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Every test starts without the compiled code of the last (as every compiled trial does, start_runtime):
    the same model classes' functions would otherwise pile up entries towards dynamo's recompile limit."""
    forget_compiled()
    yield
    forget_compiled()


def lstm(seed=0, vocab=40, dropout=0.0):
    torch.manual_seed(seed)
    return AttentionLSTMClassifier(AttentionLSTMConfig(vocab_size=vocab, embedding_dim=8, hidden_dim=8,
                                                       attention_dim=8, dropout=dropout))


def transformer(seed=0, layers=2):
    torch.manual_seed(seed)
    cfg = bert_config()
    cfg.num_hidden_layers = layers
    return TransformerClassifier.from_config(cfg)


def word_batch(lengths=(7, 5, 3, 6), vocab=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    ids = torch.randint(1, vocab, (len(lengths), T), generator=g).masked_fill(~mask, 0)
    return Batch(input_ids=ids, attention_mask=mask, labels=torch.arange(len(lengths)) % 2)


def padded(batch: Batch, width: int, pad_id: int = 0) -> Batch:
    """``batch`` right-padded to ``width`` positions (pad id, type 0, masks False)."""
    extra = width - batch.input_ids.shape[1]

    def grow(t, value):
        return None if t is None else F.pad(t, (0, extra), value=value)

    return Batch(input_ids=grow(batch.input_ids, pad_id), attention_mask=grow(batch.attention_mask, False),
                 labels=batch.labels, token_type_ids=grow(batch.token_type_ids, 0),
                 special_tokens_mask=grow(batch.special_tokens_mask, False), index=batch.index)


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# ----------------------------------------------------------------------------- (a) compiled == eager
@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_compiled_model_gives_the_eager_logits_loss_and_gradients(kind, backend):
    eager = lstm() if kind == "lstm" else transformer()
    batch = word_batch() if kind == "lstm" else bert_batch()
    compiled = copy.deepcopy(eager)
    counter = compile_model(compiled, backend=backend)
    for mode in ("train", "eval"):
        outs = []
        for m in (eager, compiled):
            getattr(m, mode)()
            m.zero_grad(set_to_none=True)
            out = forward_batch(m, batch)
            loss = F.cross_entropy(out.logits, batch.labels)
            loss.backward()
            outs.append((out.logits.detach(), loss.detach(), grads(m)))
        (la, sa, ga), (lb, sb, gb) = outs
        assert torch.allclose(la, lb, atol=1e-5) and abs(float(sa - sb)) < 1e-5
        assert ga.keys() == gb.keys() and all(torch.allclose(ga[k], gb[k], atol=1e-5) for k in ga)
    assert counter.graphs >= 1  # it really was compiled
    assert eager.state_dict().keys() == compiled.state_dict().keys()  # checkpoints unchanged


@pytest.mark.parametrize("regularizer", ["word_vat", "word_at", "word_iat", "attention_vat", "attention_ivat"])
def test_bilstm_regularisers_under_compile_equal_eager(regularizer):
    """The perturbation code runs eagerly around the compiled forward: the same loss (fp32, same draws)."""
    reg = make_regularizer(regularizer, eps=1.0, xi=0.1, neighbours=2, word_neighbours=3, refresh_every=1)
    eager = lstm(dropout=0.2)
    compiled = copy.deepcopy(eager)
    compile_model(compiled, backend="aot_eager")
    batch, values = word_batch(), []
    for m in (eager, compiled):
        m.train()
        torch.manual_seed(5)
        loss, parts = compute_loss(m, batch, regularizer=reg, lam=1.0)
        loss.backward()
        values.append((float(loss.detach()), parts["reg"], grads(m)))
    (a, ra, ga), (b, rb, gb) = values
    assert abs(a - b) < 1e-5 and abs(ra - rb) < 1e-5 and ra > 0
    assert all(torch.allclose(ga[k], gb[k], atol=1e-5) for k in ga)


def test_attention_at_cannot_reach_the_scores_of_a_compiled_forward():
    """Why the config refuses attention_at / attention_iat with compile: the gradient has no path."""
    reg = make_regularizer("attention_at", eps=1.0, xi=0.1, neighbours=2, word_neighbours=3, refresh_every=1)
    model = lstm()
    compile_model(model, backend="aot_eager")
    with pytest.raises(RuntimeError, match="not have been used in the graph"):
        compute_loss(model.train(), word_batch(), regularizer=reg)


def test_smart_under_compile_equals_eager_and_keeps_its_fp32_step():
    smart = SmartRegularizer()
    eager = transformer()
    compiled = copy.deepcopy(eager)
    compile_model(compiled, backend="aot_eager")
    batch, values = bert_batch(), []
    for m in (eager, compiled):
        m.train()
        torch.manual_seed(3)
        clean = forward_batch(m, batch)
        adv, base, finite = smart.adversarial(m, batch, clean)
        torch.manual_seed(3)
        loss, parts = compute_loss(m, batch, regularizer=smart, lam=1.0)
        values.append(((adv - base).detach(), float(loss.detach()), parts["noise_ratio"], bool(finite)))
    (da, la, na, fa), (db, lb, nb, fb) = values
    assert fa and fb and da.dtype == torch.float32
    assert torch.allclose(da, db, atol=1e-9) and abs(la - lb) < 1e-5 and abs(na - nb) < 1e-7
    assert 0 < float(da.abs().amax()) <= smart.step_size  # a real step, per-token L-inf at most step_size


@pytest.mark.parametrize("variant", ["similar_1_2", "similar_2_2"])
def test_similar_word_noise_under_compile_equals_eager(variant):
    """The noise (random top-k draw, saliency selection: a gradient w.r.t. the eager embedding lookup) and its
    fused clean + noisy forward run on the compiled layers with the eager losses and statistics."""
    from tests.tiny_transformer import VOCAB
    from xaicore.perturbation.noise import make_noise_regularizer

    g = torch.Generator().manual_seed(0)
    candidates = torch.randint(6, len(VOCAB), (len(VOCAB), 10), generator=g)
    noise = make_noise_regularizer(variant, candidates, noise_size=0.5)
    eager = transformer()
    compiled = copy.deepcopy(eager)
    compile_model(compiled, backend="aot_eager")
    values = []
    for m in (eager, compiled):
        m.train()
        torch.manual_seed(7)
        loss, parts = compute_loss(m, bert_batch(lengths=(9, 6, 4)), regularizer=noise, lam=1.0)
        loss.backward()
        values.append((float(loss.detach()), parts, grads(m)))
    (a, pa, ga), (b, pb, gb) = values
    assert abs(a - b) < 1e-5 and pa["frac_changed"] == pb["frac_changed"] > 0
    assert abs(pa["noise_ratio"] - pb["noise_ratio"]) < 1e-6 and pa["noise_ratio"] > 0
    assert all(torch.allclose(ga[k], gb[k], atol=1e-5) for k in ga)


def test_regions_are_the_encoder_layers_or_the_whole_model_and_hooks_stay_eager():
    t = transformer(layers=3)
    assert compile_regions(t) == list(t.model.base_model.encoder.layer)
    m = lstm()
    assert compile_regions(m) == [m]
    compile_model(t, backend="eager")
    with pytest.raises(ValueError, match="compiled"):
        compile_model(t, backend="eager")
    calls = []
    last = t.model.base_model.encoder.layer[-1]
    handle = last.register_forward_pre_hook(lambda mod, args: calls.append(1))  # added after compiling
    forward_batch(t.eval(), bert_batch())
    forward_batch(t, bert_batch(lengths=(4, 2)))
    handle.remove()
    assert len(calls) == 2  # a pre-hook runs in the module's eager __call__, around the compiled forward


def test_masked_lm_shortcut_and_training_loss_work_compiled():
    """The MLM's last-layer shortcut stops the pass with a pre-hook: compiling the layers keeps it exact."""
    from transformers import BertForMaskedLM

    from xaicore.models.masked_lm import masked_accuracy, masked_lm_loss

    torch.manual_seed(0)
    eager = BertForMaskedLM(_mlm_config())
    compiled = copy.deepcopy(eager)
    counter = compile_model(compiled, backend="aot_eager")
    held = [bert_batch(seed=s, labels=False) for s in range(3)]
    acc = [masked_accuracy(m, held, mask_token_id=5, special_ids=(0, 2, 3, 4, 5), prob=0.5, seed=1)
           for m in (eager, compiled)]
    assert acc[0]["loss"] == pytest.approx(acc[1]["loss"], abs=1e-5) and acc[0]["n_masked"] == acc[1]["n_masked"] > 0
    batch = held[0]
    labels = batch.input_ids.masked_fill(~batch.content_mask, -100)
    losses = []
    for m in (eager, compiled):
        m.train()
        loss, _ = masked_lm_loss(m, batch.replace(labels=labels))
        losses.append(float(loss.detach()))
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    assert counter.graphs >= 1


def _mlm_config():
    cfg = bert_config()
    cfg.num_hidden_layers = 2
    return cfg


# ----------------------------------------------------------------------------- (d) padding is invisible
@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_padding_to_a_multiple_of_8_leaves_eval_outputs_unchanged(kind):
    model = (lstm() if kind == "lstm" else transformer()).eval()
    batch = word_batch(lengths=(11, 5, 3, 9)) if kind == "lstm" else bert_batch(lengths=(11, 5, 3))
    wide = padded(batch, padded_width(batch.input_ids.shape[1], 8))
    assert wide.input_ids.shape[1] == 16
    with torch.no_grad():
        a, b = forward_batch(model, batch), forward_batch(model, wide)
    assert torch.allclose(a.logits, b.logits, atol=1e-6)
    assert abs(float(F.cross_entropy(a.logits, batch.labels) - F.cross_entropy(b.logits, batch.labels))) < 1e-6
    assert torch.equal(a.logits.argmax(-1), b.logits.argmax(-1))
    if kind == "lstm":  # the attention puts exactly 0 on the extra padding and the same weights elsewhere
        assert torch.equal(b.attention[:, 11:], torch.zeros_like(b.attention[:, 11:]))
        assert torch.allclose(a.attention, b.attention[:, :11], atol=1e-7)


def test_padding_leaves_the_regularised_training_loss_unchanged():
    """Training mode too (no dropout; perturbation draws differ with the shape, so a deterministic one)."""
    reg = make_regularizer("word_at", eps=1.0, xi=0.1, neighbours=2, word_neighbours=3, refresh_every=1)
    model = lstm()
    batch = word_batch(lengths=(11, 5, 3, 9))
    a, _ = compute_loss(model, batch, regularizer=reg)
    b, _ = compute_loss(model, padded(batch, 16), regularizer=reg)
    assert abs(float((a - b).detach())) < 1e-6


# ----------------------------------------------------------------------------- (c) today's batches
def _texts(n=60, seed=0):
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "film", "movie", "a", "the", "is", "was", "dull", "fun"]
    texts = tuple(" ".join(rng.choice(words, size=int(rng.integers(1, 30))).tolist()) for _ in range(n))
    return TextDataset(texts=texts, labels=tuple(i % 2 for i in range(n)), name="t")


def _same(a: Batch, b: Batch) -> bool:
    return all((getattr(a, f.name) is None and getattr(b, f.name) is None)
               or torch.equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))


def test_without_compile_the_batches_are_todays_and_with_it_only_padding_is_added():
    data = _texts()
    enc = WordEncoder(WordVocab.build(data.texts), max_length=24)
    encoded = encode_dataset(data, enc)
    kw = dict(batch_size=8, shuffle=True, seed=2, epoch=1, bucket_pool=3)
    plan = batch_indices(len(data), lengths=encoded.lengths, **{k: v for k, v in kw.items()})
    today = [collate_indices(data, enc, idx) for idx in plan]  # tokenised per batch: the reference path
    off = list(batches(encoded, enc, **kw, pad_multiple=EAGER.pad_multiple))
    on = list(batches(encoded, enc, **kw, pad_multiple=Compilation(enabled=True).pad_multiple))
    assert len(today) == len(off) == len(on) and all(_same(a, b) for a, b in zip(today, off))
    widths = set()
    for a, b in zip(off, on):
        T, W = a.input_ids.shape[1], b.input_ids.shape[1]
        assert W % 8 == 0 or W == 24  # the multiple of 8, capped at max_length (24 is one, too)
        assert W == min(-(-T // 8) * 8, 24) and W >= T
        assert _same(a, Batch(**{f.name: (None if getattr(b, f.name) is None or getattr(b, f.name).dim() < 2
                                          else getattr(b, f.name)[:, :T]) if f.name not in ("labels", "index")
                                 else getattr(b, f.name) for f in dataclasses.fields(b)}))
        assert not b.attention_mask[:, T:].any() and (b.input_ids[:, T:] == enc.pad_token_id).all()
        widths.add(W)
    assert widths <= {8, 16, 24}
    with pytest.raises(ValueError, match="encode_dataset"):
        next(batches(data, enc, batch_size=8, shuffle=False, seed=0, pad_multiple=8))


def test_hf_pairs_padded_to_8_keep_types_specials_and_padding_side(tmp_path):
    from tests.test_batching import _hf_encoder, _pair_data

    data = _pair_data()
    for side in ("right", "left"):
        enc = _hf_encoder(tmp_path / side, max_length=12, padding_side=side)
        rows = encode_dataset(data, enc).examples[:5]
        a, b = collate_encoded(enc, rows), collate_encoded(enc, rows, pad_multiple=8)
        T, W = a.input_ids.shape[1], b.input_ids.shape[1]
        assert W == min(-(-T // 8) * 8, 12)
        keep = slice(W - T, W) if side == "left" else slice(0, T)
        extra = slice(0, W - T) if side == "left" else slice(T, W)
        for name in ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask"):
            assert torch.equal(getattr(a, name), getattr(b, name)[:, keep]), name
        assert not b.attention_mask[:, extra].any() and not b.special_tokens_mask[:, extra].any()


def test_classifier_setup_batches_without_compile_are_unchanged():
    from trainables.classifier.config import parse_config
    from trainables.classifier.setup import ClassifierSetup

    base = dict(dataset="synthetic", synthetic_size=120, embedding_dim=8, hidden_dim=8, attention_dim=8)
    off = ClassifierSetup(parse_config(base))
    on = ClassifierSetup(parse_config({**base, "compile": True, "compile_backend": "eager"}))
    assert off.trainer.compiled is None and on.trainer.compiled is not None
    enc = off.encoder
    plan = batch_indices(len(off.encoded["train"]), batch_size=32, shuffle=True, seed=0, epoch=0,
                         lengths=off.encoded["train"].lengths, bucket_pool=100)
    today = [collate_indices(off.splits.train, enc, idx) for idx in plan]
    got = [b for b, _ in off.epoch_batches(0)]
    assert len(got) == len(today) and all(_same(a, b) for a, b in zip(today, got))
    n = len(off.splits.valid)
    ref_valid = [collate_indices(off.splits.valid, enc, idx) for idx in batch_indices(
        n, batch_size=256, shuffle=False, seed=0, lengths=off.encoded["valid"].lengths, bucket_pool=-(-n // 256))]
    assert len(ref_valid) == len(off.valid_batches)
    assert all(_same(a, b) for a, b in zip(ref_valid, off.valid_batches))
    assert all(b.input_ids.shape[1] % 8 == 0 for b, _ in on.epoch_batches(0))
    assert all(b.input_ids.shape[1] % 8 == 0 for b in on.valid_batches + on.test_batches)


# ----------------------------------------------------------------------------- (b) bounded recompiles
def _varied(n=1600, max_len=200, seed=0):
    rng = np.random.default_rng(seed)
    texts = tuple(" ".join(f"w{int(x)}" for x in rng.integers(0, 30, size=int(rng.integers(1, max_len + 1))))
                  for _ in range(n))
    return TextDataset(texts=texts, labels=tuple(int(x) for x in rng.integers(0, 2, size=n)), name="varied")


def test_recompiles_of_a_bilstm_epoch_stay_far_below_the_distinct_lengths():
    data = _varied()
    enc = WordEncoder(WordVocab.build(data.texts), max_length=200)
    encoded = encode_dataset(data, enc)
    pad = Compilation(enabled=True, backend="eager")
    model = lstm(vocab=len(enc.vocab))
    trainer = Trainer(model, TrainConfig(epochs=2, lr=1e-3), steps_per_epoch=100, compilation=pad)
    kw = dict(batch_size=16, shuffle=True, seed=0, bucket_pool=100)  # length-sorted: widths spread over 1..200

    def epoch(e):
        return ((b, None) for b in batches(encoded, enc, epoch=e, pad_multiple=pad.pad_multiple, **kw))

    raw = {b.input_ids.shape[1] for e in (0, 1) for b in batches(encoded, enc, epoch=e, **kw)}
    rounded = {b.input_ids.shape[1] for e in (0, 1) for b, _ in epoch(e)}
    assert len(raw) > 60 and len(rounded) <= 25 and all(w % 8 == 0 for w in rounded)
    ev = eval_batches(encoded, enc, batch_size=64, pad_multiple=pad.pad_multiple)

    def evaluate(m):
        m.eval()
        with torch.no_grad():
            for b in ev:
                forward_batch(m, b)
        return {"f1": 0.0}

    trainer.fit(epoch, evaluate)
    first, second = (r.train["recompiles"] for r in trainer.result.history)
    assert 1 <= first <= len(rounded) < len(raw)
    assert second == 0  # the second epoch meets no new shape: nothing compiled
    assert trainer.compiled.graphs == first


def test_static_shapes_compile_once_per_distinct_rounded_shape():
    """``dynamic=False``: one graph per distinct padded ``(B, T)``; rounding to 8 bounds them."""
    model = transformer(layers=2)
    counter = compile_model(model, backend="eager", dynamic=False)
    lengths = list(range(3, 50))  # 47 distinct raw lengths -> 7 padded ones (8, 16, ..., 56)
    shapes = set()
    model.train()
    for n in lengths:
        b = bert_batch(lengths=(n, max(2, n - 1)))
        b = padded(b, padded_width(n, 8))
        shapes.add(tuple(b.input_ids.shape))
        forward_batch(model, b).logits.sum().backward()
    assert counter.graphs == len(shapes) == len({padded_width(n, 8) for n in lengths}) < len(lengths)


# ----------------------------------------------------------------------------- the config key, every trainable
def test_compile_key_is_checked_before_any_trial():
    from trainables.classifier.config import parse_config

    with pytest.raises(ConfigError, match="compile: expected true/false"):
        parse_config({"compile": "yes"})
    with pytest.raises(ConfigError, match="compile_backend: unknown torch.compile backend 'nope'.*inductor"):
        parse_config({"compile": True, "compile_backend": "nope"})
    with pytest.raises(ConfigError, match="compile: attention_iat differentiates .* attention scores"):
        parse_config({"compile": True, "compile_backend": "eager", "regularizer": "attention_iat"})
    parse_config({"compile": False, "regularizer": "attention_at"})  # fine eager
    assert runtime_compilation(parse_config({})) is EAGER
    on = runtime_compilation(parse_config({"compile": True, "compile_backend": "aot_eager"}))
    assert on == Compilation(enabled=True, backend="aot_eager") and on.pad_multiple == 8


@pytest.mark.parametrize("name", sorted(TRAINABLES))
def test_every_trainable_runs_compiled_and_reports_its_recompiles(name, assets, tmp_path):  # noqa: F811
    entry = TRAINABLES[name]
    config = {**base_config(name, assets), **entry.smoke, "compile": True, "compile_backend": "eager"}
    trial = run(entry, config, out_dir=tmp_path)
    declared = set(entry.metrics)
    reported = {k for metrics, _ in trial.interim + trial.finals for k in metrics}
    assert not {k for k in reported if k not in declared and not is_bookkeeping(k)}
    final = trial.finals[0][0]
    counts = {k: v for k, v in final.items() if k.endswith("/recompiles")}
    assert counts and all(v >= 0 for v in counts.values()), counts
    # a one-layer masked LM runs no compiled layer in restorability: the last layer is its query-only shortcut
    assert sum(counts.values()) >= 1 or name == "restorability", counts


def test_restorability_compiled_and_padded_equals_eager(assets, tmp_path):  # noqa: F811
    from transformers import BertForMaskedLM, BertTokenizerFast

    mlm = tmp_path / "mlm"  # the contract's tokenizer, three layers (two run compiled, the last is the shortcut)
    BertTokenizerFast.from_pretrained(str(assets["model"])).save_pretrained(mlm)
    torch.manual_seed(0)
    cfg = BertForMaskedLM.from_pretrained(str(assets["model"])).config
    cfg.num_hidden_layers = 3
    BertForMaskedLM(cfg).save_pretrained(mlm)
    entry = TRAINABLES["restorability"]
    config = {**base_config("restorability", assets), **entry.smoke, "mlm": str(mlm)}
    eager = run(entry, config).finals[0][0]
    compiled = run(entry, {**config, "compile": True, "compile_backend": "aot_eager"}).finals[0][0]
    stats = [k for k in eager if k.startswith("restore/p_")]
    assert stats and all(eager[k] == pytest.approx(compiled[k], abs=1e-5) for k in stats)
    assert compiled["restore/recompiles"] >= 1 and "restore/recompiles" not in eager


# ----------------------------------------------------------------------------- inductor (slow)
@pytest.mark.slow
def test_inductor_backend_matches_eager_within_1e5():
    """The default backend generates C++ here: about 40 s with a cold inductor cache on the shared 2-core box."""
    eager = transformer(layers=1).eval()
    compiled = copy.deepcopy(eager)
    counter = compile_model(compiled)  # the default: inductor
    batch = bert_batch()
    with torch.no_grad():
        a, b = forward_batch(eager, batch).logits, forward_batch(compiled, batch).logits
    assert torch.allclose(a, b, atol=1e-5) and counter.graphs == 1 and counter.backend == "inductor"

