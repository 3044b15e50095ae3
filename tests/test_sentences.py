"""Sentence splitting (xaicore.data.sentences) and the IMDB-style sentence pool of the classifier (tiny tmp files)."""
from __future__ import annotations

import pytest

from xaicore.data.sentences import sentence_dataset, split_sentences


@pytest.mark.parametrize("text, expected", [
    ("I loved it. Really good stuff! Would I go again? Yes I would.",
     ["I loved it.", "Really good stuff!", "Would I go again?", "Yes I would."]),
    ('A great film.<br /><br />"Best of the year." The end... of it all', 
     ["A great film.", '"Best of the year."', "The end...", "of it all"]),
    ("line one here\nline two here", ["line one here", "line two here"]),
    ("It is fine. 10/10 ok. :)", ["It is fine.", "10/10 ok."]),  # ":)" has 2 word tokens < 3
    ("3.5 stars for this one", ["3.5 stars for this one"]),  # no whitespace after the dot: no break
])
def test_split_sentences_rule(text, expected):
    assert split_sentences(text) == expected


def test_sentence_dataset_is_unlabeled_and_ordered():
    ds = sentence_dataset(["First one here. Second one here.", "Third one here."])
    assert ds.texts == ("First one here.", "Second one here.", "Third one here.") and ds.labels is None
    with pytest.raises(ValueError, match="no sentence"):
        sentence_dataset(["ok", ":)"])


def test_classifier_pool_of_review_sentences(tmp_path):
    """unlabeled_sentences: the pool is N_ul = ratio * N_l sentences of the reviews, labels dropped."""
    from trainables.classifier.config import parse_config
    from trainables.classifier.setup import ClassifierSetup

    rows = ["text\tlabel\trating\tid"]
    for i in range(30):
        rows.append(f"Review {i} starts here. It goes on a while!<br /><br />Then it ends well. Truly it does.\t"
                    f"{i % 2}\t{1 + i % 10}\ttrain/{i}")
    path = tmp_path / "train.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = parse_config({"dataset": "synthetic", "synthetic_size": 40, "valid_split": None, "unlabeled": str(path),
                        "unlabeled_sentences": True, "ratio": 2.0, "epochs": 1, "embedding_dim": 8,
                        "hidden_dim": 8, "attention_dim": 8})
    setup = ClassifierSetup(cfg)
    n_l = len(setup.splits.train)
    assert len(setup.unlabeled) == round(2.0 * n_l) and setup.unlabeled.labels is None
    sentences = set(split_sentences(" ".join(r.split("\t")[0] for r in rows[1:])))
    assert set(setup.unlabeled.texts) <= sentences and len(sentences) == 30 + 3
    # the same source as whole reviews holds only 30 examples: ratio 2 is then an error naming both numbers
    with pytest.raises(ValueError, match="30"):
        ClassifierSetup(parse_config({**cfg.__dict__, "unlabeled_sentences": False}))
