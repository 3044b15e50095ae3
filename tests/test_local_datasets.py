"""Registered local datasets (xaicore.data.local_datasets) and their use by the classifier config; tiny files in tmp."""
from __future__ import annotations

import json

import pytest

from trainables.config import ConfigError
from trainables.data_setup import data_source_problems, load_splits
from xaicore.data.local_datasets import LOCAL_DATASETS, load_local_splits, stratified_split

NAMES = ("World", "Sports", "Business", "Sci/Tech")


def _agnews(root, per_class=20):
    d = root / "agnews"
    d.mkdir(parents=True)
    rows = ["text\tlabel\tlabel_name\ttitle\tdescription"]
    for i in range(per_class * 4):
        c = i % 4
        rows.append(f"{NAMES[c]} story {i}\t{c}\t{NAMES[c]}\tt\td")
    (d / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def _20news(root, n=30):
    d = root / "20news-baseball-hockey"
    d.mkdir(parents=True)
    for split in ("train", "test"):
        (d / f"{split}.jsonl").write_text("".join(json.dumps({"text": f"post {split} {i}", "label": i % 2}) + "\n"
                                                  for i in range(n)), encoding="utf-8")


def test_stratified_split_is_seeded_disjoint_and_per_label():
    labels = tuple([0] * 10 + [1] * 30)
    a = stratified_split(labels, (0.1, 0.2), seed=3)
    assert a == stratified_split(labels, (0.1, 0.2), seed=3) != stratified_split(labels, (0.1, 0.2), seed=4)
    assert sorted(i for part in a for i in part) == list(range(40))
    assert [sum(labels[i] == 0 for i in p) for p in a] == [1, 2, 7]
    assert [sum(labels[i] == 1 for i in p) for p in a] == [3, 6, 21]


def test_agnews_world_business_is_built_from_the_test_file(tmp_path):
    _agnews(tmp_path)
    parts = load_local_splits("local:agnews_world_business", tmp_path, seed=0)
    assert {k: len(v) for k, v in parts.items()} == {"train": 28, "valid": 4, "test": 8}
    for part in parts.values():
        assert part.label_names == ("World", "Business") and set(part.labels) == {0, 1}
        assert all(t.split()[0] == part.label_names[y] for t, y in zip(part.texts, part.labels))
    texts = [set(p.texts) for p in parts.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    again = load_local_splits("local:agnews_world_business", tmp_path, seed=0)
    assert again["test"].texts == parts["test"].texts
    assert load_local_splits("local:agnews_world_business", tmp_path, seed=1)["test"].texts != parts["test"].texts


def test_split_files_without_valid_hold_out_train_and_the_trainable_reads_them(tmp_path):
    _20news(tmp_path)
    s = load_splits("local:20news_baseball_hockey", data_dir=str(tmp_path), seed=0, valid_fraction=0.1)
    assert (len(s.train), len(s.valid), len(s.test)) == (27, 3, 30)
    assert not set(s.train.texts) & set(s.valid.texts)
    assert data_source_problems("local:20news_baseball_hockey", data_dir=str(tmp_path)) == []
    missing = data_source_problems("local:agnews_world_business", data_dir=str(tmp_path))
    assert len(missing) == 1 and "agnews/test.tsv" in missing[0]
    assert "needs data_dir" in data_source_problems("local:sst")[0]


def test_classifier_config_checks_local_names_and_data_dir(tmp_path):
    from trainables.classifier.config import parse_config, preflight

    with pytest.raises(ConfigError, match="unknown local dataset 'local:nope'.*local:sst"):
        parse_config({"dataset": "local:nope", "data_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="needs the folder of the local data"):
        parse_config({"dataset": "local:sst"})
    _20news(tmp_path)
    cfg = parse_config({"dataset": "local:20news_baseball_hockey", "data_dir": str(tmp_path)})
    assert preflight(cfg) == []
    assert set(LOCAL_DATASETS) == {"sst", "imdb", "20news_baseball_hockey", "agnews_world_business"}
