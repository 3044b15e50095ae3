"""Tiny BERT classifiers, tokenizers and NLI files built on the fly (no network, no shared data)."""
import json
from pathlib import Path

import torch

from xaicore.models.transformer import TransformerClassifier
from xaicore.types import Batch

WORDS = ["good", "great", "nice", "bad", "awful", "movie", "film", "a", "the", "is", "was", "man", "dog",
         "runs", "sleeps", "happy", "glad", "sad", "car", "auto"]
VOCAB = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
SPECIAL = (0, 2, 3, 4, 5)


def bert_config(num_labels=2, hidden=32, dropout=0.0):
    from transformers import BertConfig

    return BertConfig(hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                      vocab_size=len(VOCAB), max_position_embeddings=64, num_labels=num_labels, pad_token_id=0,
                      hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)


def tiny_model(seed=0, num_labels=2, dropout=0.0):
    torch.manual_seed(seed)
    return TransformerClassifier.from_config(bert_config(num_labels, dropout=dropout))


def make_model_dir(path: Path, seed=0) -> Path:
    """A local HF model directory (config, random weights, WordPiece tokenizer) for `model: <dir>`."""
    from transformers import BertForSequenceClassification, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    BertForSequenceClassification(bert_config()).save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizerFast(vocab=str(path / "vocab.txt"), do_lower_case=True).save_pretrained(path)
    return path


def make_nli_files(directory: Path, n_train=48, n_eval=16, rounds=False) -> Path:
    """premise/hypothesis/label jsonl files; the label is readable from the hypothesis word."""
    directory.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)

    def rows(n, rnd):
        out = []
        for i in range(n):
            pos = bool(torch.randint(0, 2, (1,), generator=g))
            subj = WORDS[5 + int(torch.randint(0, 8, (1,), generator=g))]
            out.append({"premise": f"the {subj} was {'good' if pos else 'bad'}",
                        "hypothesis": "a great film" if pos else "the awful movie",
                        "label": "entailment" if pos else "not_entailment", "round": rnd})
        return out

    splits = {"train": n_train, "validation": n_eval, "test": n_eval}
    if rounds:
        splits = {"train": n_train, **{f"R{r}/dev": n_eval for r in (1, 2, 3)}, **{f"R{r}/test": n_eval for r in (1, 2, 3)}}
    for split, n in splits.items():
        f = directory / f"{split}.jsonl"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("\n".join(json.dumps(r) for r in rows(n, split.split("/")[0])) + "\n")
    return directory


def bert_batch(seed=0, lengths=(7, 5, 3), labels=True):
    """[CLS] w .. w [SEP] PAD .., with special-token mask and token types (second half type 1)."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.randint(len(VOCAB) - len(WORDS), len(VOCAB), (len(lengths), T), generator=g)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    special = torch.zeros_like(mask)
    ids[:, 0] = 3
    special[:, 0] = True
    for i, n in enumerate(lengths):
        ids[i, n - 1] = 4
        special[i, n - 1] = True
    ids = ids.masked_fill(~mask, 0)
    types = (torch.arange(T)[None, :] >= 3).long() * mask
    y = torch.randint(0, 2, (len(lengths),), generator=g) if labels else None
    return Batch(input_ids=ids, attention_mask=mask, labels=y, token_type_ids=types, special_tokens_mask=special)
