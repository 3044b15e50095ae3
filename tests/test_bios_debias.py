"""bios_debias trainable (finetune + cancel-out hook) and section 4.1's greedy two-sentence filling."""
import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from xaicore.cancel_out.methods import propose_candidates
from xaicore.types import Batch


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from xaicore.bias.bios import synthetic_vocabulary

    d = tmp_path_factory.mktemp("tiny")
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + synthetic_vocabulary()) + "\n")
    BertTokenizerFast(vocab=str(d / "vocab.txt")).save_pretrained(d)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=5 + len(synthetic_vocabulary()), hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)).save_pretrained(d)
    return d


@pytest.mark.parametrize("method", ["uniform_marginalize"])
def test_trial_reports_the_gap_correlation_and_writes_fig7(tiny_dir, tmp_path, method):
    from trainables.bios_debias.trial import run_trial

    reports = []
    cfg = dict(dataset="synthetic_bios", model=str(tiny_dir), local_files_only=True, cancel_out=method, k=2,
               synthetic_per_profession=8, epochs=1, batch_size=8, max_length=40, step_log=False)
    result = run_trial(cfg, lambda m, c: reports.append(m), out_dir=tmp_path)
    final = reports[-1]
    assert final["bias/n_professions"] == 8 and "test/accuracy" in final
    assert final["train/cancelled"] >= 4  # names, pronouns and a title in every synthetic bio
    names = {p.name for p in result.artifacts}
    assert {"fig7_gap_vs_female_rate.png", "tpr_gap.csv"} <= names


class ContextMLM(nn.Module):
    """Top-2 at a mask with no filled gender word: A (best), B; afterwards it repeats whichever was filled."""

    A, B, MASK, V = 7, 8, 4, 12

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(self.V, 2)

    def get_input_embeddings(self):
        return self.emb

    def forward(self, input_ids=None, attention_mask=None, **_):
        logits = torch.zeros(*input_ids.shape, self.V)
        for r, row in enumerate(input_ids):
            if (row == self.A).any():
                logits[r, :, self.A] = 9.0
            elif (row == self.B).any():
                logits[r, :, self.B] = 9.0
            else:
                logits[r, :, self.A], logits[r, :, self.B] = 5.0, 4.0
        return SimpleNamespace(logits=logits)


def test_greedy_filling_gives_the_two_sentences_of_section_4_1():
    ids = torch.tensor([[2, 9, 5, 10, 6, 3], [2, 5, 9, 9, 10, 3]])  # 5, 6 = gender words to cancel
    remove = (ids == 5) | (ids == 6)
    batch = Batch(input_ids=ids, attention_mask=torch.ones_like(ids, dtype=torch.bool))
    out, w = propose_candidates(ContextMLM(), batch, remove, k=2, mask_token_id=4, weighting="uniform")
    A, B = ContextMLM.A, ContextMLM.B
    assert out[0].tolist() == [2, 9, A, 10, A, 3] and out[1].tolist() == [2, 9, B, 10, B, 3]  # s1, s2
    assert out[2].tolist() == [2, A, 9, 9, 10, 3] and out[3].tolist() == [2, B, 9, 9, 10, 3]
    assert torch.allclose(w, torch.full((2, 2), 0.5))


def test_bad_input_before_ray(tmp_path, tiny_dir):
    from trainables.bios_debias.config import parse_config, preflight

    with pytest.raises(ValueError) as err:
        parse_config({"cancel_out": "blank", "k": 0})
    assert "cancel_out: must be one of" in str(err.value) and "k: the number of marginalization" in str(err.value)
    f = tmp_path / "bios.jsonl"
    f.write_text(json.dumps({"text": "She is a nurse.", "profession": "nurse"}) + "\n")
    problems = preflight(parse_config({"dataset": str(f), "model": str(tiny_dir), "local_files_only": True}))
    assert any("no 'gender' column" in p for p in problems)
    missing = preflight(parse_config({"model": str(tmp_path / "nowhere"), "cancel_out": "uniform_marginalize"}))
    assert any("does not exist" in p for p in missing)
