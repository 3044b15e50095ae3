"""The restorability trial on a tiny MLM directory built in the test (no download)."""
import pytest
import torch

from trainables.restorability.config import parse_config, preflight
from trainables.restorability.setup import sample_pairs
from trainables.restorability.trial import run_trial


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    d = tmp_path_factory.mktemp("mlm")
    words = ["the", "film", "is", "good", "bad", "a", "movie", "very", "not", "plot"]
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    BertTokenizerFast(vocab=str(d / "vocab.txt")).save_pretrained(d)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=15, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=32)).save_pretrained(d)
    texts = d / "data.tsv"
    texts.write_text("text\tlabel\nthe film is good\t1\na very bad movie\t0\nthe plot is not good zzz\t0\n")
    return d


def test_trial_reports_every_method_and_writes_the_figures(mlm_dir, tmp_path):
    reports = []
    cfg = dict(mlm=str(mlm_dir), dataset=str(mlm_dir / "data.tsv"), n_tokens=12, k=3, batch_size=4)
    result = run_trial(cfg, lambda m, c: reports.append(m), out_dir=tmp_path)
    final = reports[-1]
    for m in ("original", "attention_mask", "mask_token", "weighted_marginalize", "uniform_marginalize",
              "zero_vector"):
        assert 0 <= final[f"restore/p_original_mean/{m}"] <= final[f"restore/p_max_mean/{m}"] <= 1
    assert final["restore/n_tokens"] == 12
    names = {p.name for p in result.artifacts}
    assert {"fig3_p_original.png", "fig4_p_max.png", "restorability_table.md"} <= names


def test_sampling_is_seeded_and_skips_special_and_unknown_tokens(mlm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(mlm_dir)
    texts = ["the film is good", "a very bad movie", "the plot is not good zzz"]
    ids, a = sample_pairs(texts, tok, 10, 32, seed=1)
    _, b = sample_pairs(texts, tok, 10, 32, seed=1)
    assert a == b and len(set(a)) == 10
    assert all(ids[i][j] not in tok.all_special_ids for i, j in a)


def test_bad_input(mlm_dir, tmp_path):
    with pytest.raises(ValueError) as err:
        parse_config({"k": 0, "methods": ["delete"]})
    assert "k: the number of marginalization candidates must be >= 1" in str(err.value)
    assert "delete" in str(err.value)
    problems = preflight(parse_config({"mlm": str(tmp_path), "dataset": str(tmp_path / "none_{split}.tsv")}))
    assert any("config.json" in p for p in problems) and any("dataset" in p for p in problems)
    assert preflight(parse_config({"mlm": str(mlm_dir), "dataset": str(mlm_dir / "data.tsv")})) == []
