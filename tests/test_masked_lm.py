"""Masked LM: BERT masking, MLM head on a plain encoder, the `mlm` trainable end to end (tiny, offline)."""
import pytest
import torch

from xaicore.models.masked_lm import load_masked_lm, mask_tokens_for_mlm, masked_lm_from_encoder
from xaicore.types import Batch

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A tiny BERT *encoder* (no MLM head) + WordPiece tokenizer saved as an HF directory."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    d = tmp_path_factory.mktemp("enc")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab=str(d / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(d)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """Each sentence repeats one word: a masked word is determined by any other word of its sentence."""
    import random

    rng = random.Random(0)
    lines = []
    for _ in range(600):
        lines.append(" ".join([rng.choice(WORDS)] * rng.randint(4, 9)))
    p = tmp_path_factory.mktemp("txt") / "cyclic.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_bert_masking_never_touches_specials_and_keeps_80_10_10():
    torch.manual_seed(0)
    ids = torch.randint(5, 50, (400, 30))
    ids[:, 0], ids[:, 20:] = 2, 0
    ids[:, 19] = 3
    special = (ids == 2) | (ids == 3)
    b = Batch(input_ids=ids, attention_mask=ids != 0, special_tokens_mask=special)
    g = torch.Generator().manual_seed(1)
    m = mask_tokens_for_mlm(b, mask_token_id=4, vocab_size=50, special_ids=(0, 1, 2, 3, 4), generator=g)
    chosen = m.labels != -100
    assert not chosen[~b.content_mask].any()
    assert torch.equal(m.input_ids[~chosen], ids[~chosen])
    assert torch.equal(m.labels[chosen], ids[chosen])
    assert chosen.any(dim=1).all()
    share = chosen[b.content_mask].float().mean()
    assert 0.13 < share < 0.17
    masked = (m.input_ids == 4) & chosen
    kept = (m.input_ids == ids) & chosen
    assert 0.76 < masked.sum() / chosen.sum() < 0.84
    assert 0.07 < kept.sum() / chosen.sum() < 0.14  # 10 % kept + random draws of the same id
    again = mask_tokens_for_mlm(b, mask_token_id=4, vocab_size=50, special_ids=(0, 1, 2, 3, 4),
                                generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.input_ids, m.input_ids)
    assert not torch.isin(m.input_ids[chosen & ~masked & ~kept], torch.tensor([0, 1, 2, 3, 4])).any()


def test_mlm_head_on_an_encoder_keeps_its_weights_and_ties_the_decoder(encoder_dir):
    from transformers import BertModel

    mlm, tok = masked_lm_from_encoder(str(encoder_dir), num_layers=1)
    enc = BertModel.from_pretrained(str(encoder_dir))
    assert mlm.config.num_hidden_layers == 1
    assert torch.equal(mlm.bert.embeddings.word_embeddings.weight, enc.embeddings.word_embeddings.weight)
    assert torch.equal(mlm.bert.encoder.layer[0].attention.self.query.weight,
                       enc.encoder.layer[0].attention.self.query.weight)
    assert mlm.cls.predictions.decoder.weight.data_ptr() == mlm.bert.embeddings.word_embeddings.weight.data_ptr()
    with pytest.raises(ValueError, match="num_layers"):
        masked_lm_from_encoder(str(encoder_dir), num_layers=5)


def test_mlm_trainable_learns_and_saves_a_loadable_hf_directory(encoder_dir, text_file, tmp_path):
    from transformers import AutoModelForMaskedLM

    from trainables.mlm.trial import run_trial

    reports = []
    cfg = dict(base_model=str(encoder_dir), texts=str(text_file), heldout=100, epochs=3, batch_size=16, lr=3e-3,
               warmup_ratio=0.0, max_length=16)
    result = run_trial(cfg, lambda m, c: reports.append(m), out_dir=tmp_path)
    final = reports[-1]
    assert len(reports) == 3  # declared metrics: tests/test_trainable_contract.py
    assert final["heldout/accuracy"] > final["heldout/initial_accuracy"] + 0.3
    assert final["heldout/accuracy"] > 0.8
    mlm = AutoModelForMaskedLM.from_pretrained(tmp_path / "mlm")
    again, tok = load_masked_lm(str(tmp_path / "mlm"))
    assert tok.mask_token_id == 4 and any(p.name == "config.json" for p in result.artifacts)
    ids = tok("delta delta delta delta delta", return_tensors="pt")["input_ids"]
    ids[0, 3] = tok.mask_token_id
    with torch.no_grad():
        assert mlm(input_ids=ids).logits.argmax(-1)[0, 3] == tok.convert_tokens_to_ids("delta")


def test_mlm_bad_config_and_preflight(tmp_path):
    from trainables.mlm.config import parse_config, preflight

    with pytest.raises(ValueError) as err:
        parse_config({"num_layers": 0, "mask_prob": 0, "texts": ""})
    text = str(err.value)
    assert "num_layers" in text and "mask_prob" in text and "texts" in text
    problems = preflight(parse_config({"base_model": str(tmp_path), "texts": str(tmp_path / "missing.txt")}))
    assert any("config.json" in p for p in problems) and any("missing.txt" in p for p in problems)


def test_mlm_length_batches_pooled_like_the_classifiers():
    import random

    from trainables.mlm.config import parse_config
    from trainables.mlm.setup import length_batches

    rng = random.Random(0)
    ids = [[2] + [7] * rng.randint(1, 40) + [3] for _ in range(300)]
    rows = [(i, [1] + [0] * (len(i) - 2) + [1]) for i in ids]
    real = sum(len(r[0]) for r in rows)

    def eff(bs):
        return real / sum(b.input_ids.numel() for b in bs)

    pooled = lambda seed: length_batches(rows, 8, 0, seed=seed, bucket_pool=20)  # noqa: E731
    assert sum(b.size for b in pooled(1)) == 300 and eff(pooled(1)) > 0.9
    key = lambda bs: [b.input_ids.tolist() for b in bs]  # noqa: E731
    assert key(pooled(1)) == key(pooled(1)) and key(pooled(1)) != key(pooled(2))
    # null: today's one global sort (the same batches each epoch, shuffled order)
    assert sorted(map(str, key(length_batches(rows, 8, 0, seed=1, bucket_pool=None)))) == \
        sorted(map(str, key(length_batches(rows, 8, 0, seed=2, bucket_pool=None))))
    assert parse_config({}).bucket_pool == 100
    with pytest.raises(ValueError, match="bucket_pool: must be an int >= 1"):
        parse_config({"bucket_pool": 0})
