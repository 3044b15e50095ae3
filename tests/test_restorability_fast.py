"""Known answer for the fast restorability path: it computes exactly what the full MLM pass computes.

The fast path (:func:`xaicore.models.masked_lm._last_layer_at`) evaluates the last
encoder layer only at the read positions. The reference is the plain HF pass
``mlm(...).logits[row, position]`` (every position, full vocabulary), and for
:func:`xaicore.cancel_out.restorability.restorability` the previous code path (full last
layer, head at the position), forced by disabling the shortcut.
"""
from __future__ import annotations

import pytest
import torch

import xaicore.models.masked_lm as masked_lm
from xaicore.cancel_out.restorability import RESTORABILITY_METHODS, restorability
from xaicore.types import Batch

V, MASK, PAD, CLS, SEP = 40, 3, 0, 1, 2


def tiny_mlm(attn: str, layers: int):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(layers)
    cfg = BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=32, pad_token_id=PAD, mask_token_id=MASK)
    cfg._attn_implementation = attn
    mlm = BertForMaskedLM(cfg).eval()
    with torch.no_grad():  # larger weights than the default init, so differences would show
        for p in mlm.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    return mlm


def padded_batch() -> tuple[Batch, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    lengths = [9, 5, 7, 9, 6, 9, 5]
    T = max(lengths)
    ids = torch.full((len(lengths), T), PAD)
    att = torch.zeros((len(lengths), T), dtype=torch.bool)
    for r, n in enumerate(lengths):
        ids[r, :n] = torch.randint(4, V, (n,), generator=g)
        ids[r, 0], ids[r, n - 1] = CLS, SEP
        att[r, :n] = True
    ids[5], ids[6] = ids[0], ids[1]  # two tokens of one sentence, as the benchmark samples them
    special = (ids == CLS) | (ids == SEP)
    pos = torch.tensor([1, 3, 5, 7, 2, 6, 1])
    return Batch(input_ids=ids, attention_mask=att, special_tokens_mask=special), pos


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("layers", [1, 2])
def test_position_logits_equal_the_full_pass(attn, layers):
    mlm = tiny_mlm(attn, layers)
    batch, pos = padded_batch()
    assert masked_lm._last_bert_layer(mlm) is not None  # the shortcut is the one under test
    rows = torch.arange(len(pos))
    with torch.no_grad():
        full = mlm(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long()).logits[rows, pos]
        fast = masked_lm.position_logits(mlm, batch.input_ids, batch.attention_mask, pos)
        # several positions per row (the masked-LM accuracy path), including an attention mask with a hole
        att = batch.attention_mask.clone()
        att[0, 4] = False
        hole = batch.replace(attention_mask=att)
        where = torch.tensor([[0, 1], [0, 2], [0, 4], [2, 3], [3, 8], [3, 0]])
        full2 = mlm(input_ids=hole.input_ids, attention_mask=att.long()).logits[where[:, 0], where[:, 1]]
        fast2 = masked_lm._scored_logits(mlm, hole, where)
    assert full.shape == fast.shape == (len(pos), V)
    assert (fast - full).abs().max() < 1e-5
    assert (fast2 - full2).abs().max() < 1e-5


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_restorability_fast_equals_previous_computation_for_every_method(attn, monkeypatch):
    mlm = tiny_mlm(attn, 2)
    batch, pos = padded_batch()
    kw = dict(k=4, mask_token_id=MASK, exclude_ids=(PAD, CLS, SEP, MASK))
    fast = restorability(mlm, batch, pos, RESTORABILITY_METHODS, **kw)
    monkeypatch.setattr(masked_lm, "_last_bert_layer", lambda m: None)  # the previous path: full last layer
    slow = restorability(mlm, batch, pos, RESTORABILITY_METHODS, **kw)
    for m in RESTORABILITY_METHODS:
        for q in ("p_original", "p_max"):
            assert fast[m][q].shape == (len(pos),)
            assert (fast[m][q] - slow[m][q]).abs().max() < 1e-5, (m, q)
    # not a degenerate comparison: the methods differ from one another
    assert (fast["zero_vector"]["p_original"] - fast["original"]["p_original"]).abs().max() > 1e-3


def brute_force(mlm, batch, pos, k, exclude):
    """Every method from the plain HF pass (all positions, full vocabulary) and the shared cancel-out code."""
    from xaicore.cancel_out.methods import CancelOut, propose_candidates

    B, T = batch.input_ids.shape
    rows = torch.arange(B)
    orig = batch.input_ids[rows, pos]
    remove = torch.zeros((B, T), dtype=torch.bool)
    remove[rows, pos] = True

    def probs(b, embeds=None, r=rows, p=pos):
        kw = dict(attention_mask=b.attention_mask.long())
        kw.update(inputs_embeds=embeds) if embeds is not None else kw.update(input_ids=b.input_ids)
        return torch.softmax(mlm(**kw).logits[r, p].float(), -1)

    out = {}
    with torch.no_grad():
        for m in RESTORABILITY_METHODS:
            if m == "original":
                pr, w = probs(batch), None
            elif m.endswith("marginalize"):
                ids, w = propose_candidates(mlm, batch, remove, k=k, mask_token_id=MASK, weighting=m.split("_")[0],
                                            exclude_ids=exclude)
                cand = batch.replace(input_ids=ids, attention_mask=batch.attention_mask.repeat_interleave(k, 0),
                                     special_tokens_mask=None)
                pr = probs(cand, r=torch.arange(B * k), p=pos.repeat_interleave(k))
            else:
                c = CancelOut(m, mask_token_id=MASK).apply(mlm, batch, remove)
                pr, w = probs(c.batch, c.inputs_embeds), None
            po = pr.gather(1, orig.repeat_interleave(pr.shape[0] // B)[:, None]).squeeze(1)
            pm = pr.max(1).values
            if w is not None:
                po, pm = (po.view(B, k) * w).sum(1), (pm.view(B, k) * w).sum(1)
            out[m] = {"p_original": po, "p_max": pm}
    return out


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_restorability_equals_brute_force_for_every_method(attn):
    mlm = tiny_mlm(attn, 2)
    batch, pos = padded_batch()
    exclude = (PAD, CLS, SEP, MASK)
    seconds = {}
    fast = restorability(mlm, batch, pos, RESTORABILITY_METHODS, k=4, mask_token_id=MASK, exclude_ids=exclude,
                         seconds=seconds)
    ref = brute_force(mlm, batch, pos, 4, exclude)
    for m in RESTORABILITY_METHODS:
        for q in ("p_original", "p_max"):
            assert (fast[m][q] - ref[m][q]).abs().max() < 1e-5, (m, q)
    assert set(seconds) == set(RESTORABILITY_METHODS) and all(v >= 0 for v in seconds.values())
    # only marginalize methods requested: the proposal pass runs on its own and gives the same numbers
    alone = restorability(mlm, batch, pos, ["uniform_marginalize"], k=4, mask_token_id=MASK, exclude_ids=exclude)
    assert (alone["uniform_marginalize"]["p_original"] - ref["uniform_marginalize"]["p_original"]).abs().max() < 1e-5


def test_shortcut_is_off_in_training_mode():
    mlm = tiny_mlm("eager", 1).train()
    assert masked_lm._last_bert_layer(mlm) is None
    assert masked_lm._last_bert_layer(mlm.eval()) is not None
