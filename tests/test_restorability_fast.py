"""Known answer for the fast restorability path: it computes exactly what the full MLM pass computes.

The fast path (:func:`xaicore.masked_lm._last_layer_at`) evaluates the last
encoder layer only at the read positions. The reference is the plain HF pass
``mlm(...).logits[row, position]`` (every position, full vocabulary), and for
:func:`xaicore.restorability.restorability` the previous code path (full last
layer, head at the position), forced by disabling the shortcut.
"""
from __future__ import annotations

import pytest
import torch

import xaicore.masked_lm as masked_lm
from xaicore.restorability import RESTORABILITY_METHODS, restorability
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
    lengths = [9, 5, 7, 9, 6]
    T = max(lengths)
    ids = torch.full((len(lengths), T), PAD)
    att = torch.zeros((len(lengths), T), dtype=torch.bool)
    for r, n in enumerate(lengths):
        ids[r, :n] = torch.randint(4, V, (n,), generator=g)
        ids[r, 0], ids[r, n - 1] = CLS, SEP
        att[r, :n] = True
    special = (ids == CLS) | (ids == SEP)
    pos = torch.tensor([1, 3, 5, 7, 2])
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


def test_shortcut_is_off_in_training_mode():
    mlm = tiny_mlm("eager", 1).train()
    assert masked_lm._last_bert_layer(mlm) is None
    assert masked_lm._last_bert_layer(mlm.eval()) is not None
