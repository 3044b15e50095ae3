"""trainables.data_setup: one label map for all splits, labeled training data, seeded splits."""
from __future__ import annotations

from pathlib import Path

import pytest

from trainables.data_setup import data_source_problems, load_splits


def _csv(path: Path, rows: list[tuple[str, object]], header: str = "text,label") -> Path:
    path.write_text(header + "\n" + "".join(f"{t},{y}\n" for t, y in rows))
    return path


def test_string_labels_use_the_training_label_map_in_every_split(tmp_path):
    _csv(tmp_path / "train.csv", [("bad film", "neg"), ("good film", "pos"), ("awful", "neg"), ("great", "pos")])
    _csv(tmp_path / "validation.csv", [("fine", "pos"), ("dull", "neg")])
    _csv(tmp_path / "test.csv", [("lovely", "pos"), ("superb", "pos")])  # lacks 'neg'
    s = load_splits(str(tmp_path / "{split}.csv"))
    assert s.train.label_names == s.valid.label_names == s.test.label_names == ("neg", "pos")
    assert s.test.labels == (1, 1)  # 'pos' stays id 1 (it became 0 when each split had its own map)


def test_a_label_unseen_in_training_is_an_error_naming_file_and_value(tmp_path):
    _csv(tmp_path / "train.csv", [("bad film", "neg"), ("good film", "pos")])
    _csv(tmp_path / "validation.csv", [("fine", "pos")])
    _csv(tmp_path / "test.csv", [("meh", "neutral")])
    with pytest.raises(ValueError, match=r"test\.csv: label 'neutral' at line 2 is not among the classes "
                                         r"\['neg', 'pos'\].*training split"):
        load_splits(str(tmp_path / "{split}.csv"))


def test_an_integer_label_unseen_in_training_is_an_error(tmp_path):
    _csv(tmp_path / "train.csv", [("bad film", 0), ("good film", 1)])
    _csv(tmp_path / "validation.csv", [("fine", 1)])
    _csv(tmp_path / "test.csv", [("meh", 2)])
    with pytest.raises(ValueError, match=r"test\.csv: label 2 does not occur in the training split"):
        load_splits(str(tmp_path / "{split}.csv"))


def test_unlabeled_training_file_is_an_error_naming_its_columns(tmp_path):
    _csv(tmp_path / "one.csv", [(f"w{i}", i % 2) for i in range(30)], header="text,sentiment")
    with pytest.raises(ValueError, match=r"no label column \(the file has columns \['text', 'sentiment'\]\)"):
        load_splits(str(tmp_path / "one.csv"))
    assert len(load_splits(str(tmp_path / "one.csv"), columns={"label": "sentiment"}).train) > 0


def test_dry_load_of_good_data_finds_nothing(tmp_path):
    for split in ("train", "validation", "test"):
        _csv(tmp_path / f"{split}.csv", [("a b", "x"), ("c d", "y")])
    assert data_source_problems(str(tmp_path / "{split}.csv")) == []
    assert data_source_problems("synthetic") == []


@pytest.mark.parametrize("dataset", ["synthetic", "one_file"])
def test_seed_varies_initialisation_not_the_data_split(tmp_path, dataset):
    """``seed`` (repeats, reproduce --seeds) keeps the split; ``data_seed`` changes it."""
    from trainables.classifier.config import parse_config
    from trainables.classifier.setup import ClassifierSetup

    if dataset == "one_file":
        dataset = str(_csv(tmp_path / "one.csv", [(f"w{i} z{i % 7}", i % 2) for i in range(80)]))
    tiny = {"dataset": dataset, "synthetic_size": 200, "embedding_dim": 4, "hidden_dim": 4, "attention_dim": 4}
    a, b = (ClassifierSetup(parse_config({**tiny, "seed": s})) for s in (0, 1))
    c = ClassifierSetup(parse_config({**tiny, "seed": 0, "data_seed": 1}))
    assert a.splits.test.texts == b.splits.test.texts and a.splits.valid.texts == b.splits.valid.texts
    assert a.splits.train.texts == b.splits.train.texts
    assert a.splits.test.texts != c.splits.test.texts
