"""Real-world data files (issue 16): UTF-8 BOM, duplicate columns, whole-file validation before Ray,
split consistency before Ray, ``drop_empty``."""
from __future__ import annotations

import json
import logging

import pytest

import trainables.data_setup as data_setup
from sweeps.launch.preflight import check_trial_io
from sweeps.spec.parse import parse_spec
from trainables.classifier.config import parse_config as classifier_config
from trainables.classifier.config import preflight as classifier_preflight
from trainables.classifier.trial import run_trial as classifier_trial
from trainables.config import ConfigError
from trainables.data_setup import data_source_problems, load_splits
from trainables.finetune.config import parse_config as finetune_config
from trainables.mlm.config import parse_config as mlm_config
from trainables.restorability.config import parse_config as restorability_config
from trainables.restorability.config import preflight as restorability_preflight
from xaicore.data.loading import MAX_PROBLEMS_PER_FILE, load_dataset, validate_table
from xaicore.data.local_datasets import load_local_splits

TINY = dict(dataset="synthetic", epochs=1, batch_size=4, embedding_dim=8, hidden_dim=8, attention_dim=8, heatmaps=0)


def write_tsv(path, rows, header="text\tlabel"):
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def reviews(n, start=0):
    return [f"review number {i} is {'good' if i % 2 else 'bad'}\t{i % 2}" for i in range(start, start + n)]


# ------------------------------------------------------------------ 3. UTF-8 byte-order mark
@pytest.mark.parametrize("ext, body", [
    (".csv", "text,label\ngood film,1\nbad film,0\n"),
    (".tsv", "text\tlabel\ngood film\t1\nbad film\t0\n"),
    (".jsonl", '{"text": "good film", "label": 1}\n{"text": "bad film", "label": 0}\n'),
    (".json", '[{"text": "good film", "label": 1}, {"text": "bad film", "label": 0}]'),
])
def test_a_utf8_bom_loads_as_if_it_were_absent(tmp_path, ext, body):
    plain, bom = tmp_path / f"plain{ext}", tmp_path / f"bom{ext}"
    plain.write_text(body, encoding="utf-8")
    bom.write_text(body, encoding="utf-8-sig")  # what spreadsheet programs write
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf")
    a, b = load_dataset(plain), load_dataset(bom)
    assert (b.texts, b.labels, dict(b.extras)) == (a.texts, a.labels, dict(a.extras)) == (
        ("good film", "bad film"), (1, 0), {})
    check = validate_table(bom)  # the preflight path
    assert check.problems == () and check.rows == 2 and set(check.columns) == {"text", "label"}


def test_a_bom_split_file_passes_the_preflight(tmp_path):
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.tsv").write_text("text\tlabel\ngood\t1\nbad\t0\n", encoding="utf-8-sig")
    assert data_source_problems(str(tmp_path / "{split}.tsv")) == []


# ------------------------------------------------------------------ 4. duplicate column names
@pytest.mark.parametrize("ext, sep", [(".tsv", "\t"), (".csv", ",")])
def test_a_duplicate_column_name_is_an_error_naming_column_file_and_line(tmp_path, ext, sep):
    path = tmp_path / f"dup{ext}"
    path.write_text(sep.join(["text", "label", "label"]) + "\n" + sep.join(["good", "1", "0"]) + "\n")
    with pytest.raises(ValueError, match=rf"dup\{ext}: line 1: duplicate column 'label' .*fields 2 and 3"):
        load_dataset(path)
    (line,) = validate_table(path).problems
    assert str(path) in line and "duplicate column 'label'" in line


def test_a_duplicate_key_in_a_jsonl_record_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text('{"text": "good", "label": 1}\n{"text": "bad", "label": 0, "label": 1}\n')
    with pytest.raises(ValueError, match=r"dup\.jsonl: line 2: duplicate key 'label'"):
        load_dataset(path)
    assert validate_table(path).problems == (f"{path}: line 2: duplicate key 'label' in one JSON record",)


# ------------------------------------------------------------------ 5. whole-file validation before Ray
def test_a_bad_line_past_the_first_rows_is_found_before_ray(tmp_path):
    rows = reviews(400)
    rows[300] = "a line with one field too few"  # line 302 of the file (line 1 is the header)
    write_tsv(tmp_path / "train.tsv", rows)
    write_tsv(tmp_path / "validation.tsv", reviews(4))
    write_tsv(tmp_path / "test.tsv", reviews(4))
    problems = data_source_problems(str(tmp_path / "{split}.tsv"))
    assert problems == [f"dataset: {tmp_path / 'train.tsv'}: line 302 has 1 fields but the header has 2"]
    cfg = classifier_config({**TINY, "dataset": str(tmp_path / "{split}.tsv")})
    assert classifier_preflight(cfg) == problems  # the trainable's hook, what `xaisweep run` calls


def test_every_problem_of_every_file_is_listed_at_once_capped_per_file(tmp_path):
    train = reviews(300)
    for i in range(5, 5 + 14):  # 14 empty texts
        train[i] = f"\t{i % 2}"
    train[250] = "no tab here"
    write_tsv(tmp_path / "train.tsv", train)
    valid = reviews(20)
    valid[12] = "bad label\t"
    write_tsv(tmp_path / "validation.tsv", valid)
    write_tsv(tmp_path / "test.tsv", reviews(5))
    problems = data_source_problems(str(tmp_path / "{split}.tsv"))
    train_lines = [p for p in problems if "train.tsv" in p]
    assert len(train_lines) == MAX_PROBLEMS_PER_FILE + 1
    assert "empty text in column 'text' at line 7" in train_lines[0]
    assert train_lines[-1].endswith("... and 5 more problems (the first 10 are listed)")  # 15 bad lines
    assert [p for p in problems if "validation.tsv" in p] == [
        f"dataset: {tmp_path / 'validation.tsv'}: missing label at line 14"]


def test_rationales_and_labels_are_checked_on_every_line(tmp_path):
    path = tmp_path / "r.jsonl"
    rows = [{"text": f"word {i} here", "label": "pos", "ev": [0]} for i in range(250)]
    rows[230]["ev"] = [7]  # out of range for a 3-token text
    rows[240]["label"] = 3  # ints among strings
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    check = validate_table(path, columns={"rationale": "ev"})
    assert any("line 231" in p and "rationale index 7 out of range" in p for p in check.problems), check.problems
    assert any("labels must be all ints or all strings" in p for p in check.problems), check.problems
    rows[240]["label"] = "pos"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert validate_table(path, columns={"rationale": "ev"}).problems == (
        f"{path} line 231: rationale index 7 out of range for a text of 3 word tokens",)
    with pytest.raises(ValueError, match="line 231: rationale index 7"):  # the loader agrees
        load_dataset(path, columns={"rationale": "ev"})


def test_validation_and_loading_agree_on_a_clean_file(tmp_path):
    path = write_tsv(tmp_path / "ok.tsv", reviews(50) + ["\t1", "last one\t0"])
    check = validate_table(path, drop_empty=True)
    data = load_dataset(path, drop_empty=True)
    assert check.problems == () and check.rows == len(data) == 51 and check.dropped_empty == data.dropped_empty == 1
    assert check.labels == {0: 26, 1: 25}


def test_each_file_is_validated_once_per_preflight(tmp_path, monkeypatch):
    for split in ("train", "validation", "test"):
        write_tsv(tmp_path / f"{split}.tsv", reviews(40))
    calls = []
    real = data_setup.validate_table
    monkeypatch.setattr(data_setup, "validate_table", lambda path, **kw: calls.append(path) or real(path, **kw))
    s = parse_spec({"name": "pf", "trainable": "classifier", "metric": "best/valid_f1", "mode": "max",
                    "num_samples": 2, "config": {**TINY, "dataset": str(tmp_path / "{split}.tsv")},
                    "search_space": {"lr": {"type": "choice", "values": [0.1, 0.01, 0.001]},
                                     "dropout": {"type": "choice", "values": [0.0, 0.5]}}})
    assert check_trial_io(s) == []
    assert sorted(map(str, calls)) == sorted(str(tmp_path / f"{s}.tsv") for s in ("test", "train", "validation"))


def test_imdb_sized_file_validates_quickly(tmp_path):
    """25,000 reviews of ~1.3 kB (the local IMDB train file's size): well under the 2 s budget here."""
    import time

    body = "".join(f"{'a fairly long review text ' * 50} number {i}\t{i % 2}\n" for i in range(25_000))
    path = tmp_path / "big.tsv"
    path.write_text("text\tlabel\n" + body)
    t = time.perf_counter()
    check = validate_table(path)
    assert check.problems == () and check.rows == 25_000
    assert time.perf_counter() - t < 6  # generous for a loaded CI box; measured ~1.4 s on the real file


# ------------------------------------------------------------------ 6. split consistency before Ray
def test_a_test_label_absent_from_train_is_an_error_before_ray(tmp_path):
    write_tsv(tmp_path / "train.tsv", ["one\t0", "two\t0", "three\t2"])
    write_tsv(tmp_path / "validation.tsv", ["ok\t0"])
    write_tsv(tmp_path / "test.tsv", ["fine\t0", "other\t1"])
    assert data_source_problems(str(tmp_path / "{split}.tsv")) == [
        f"dataset: {tmp_path / 'test.tsv'}: label 1 at line 3 does not occur in the training split "
        f"{tmp_path / 'train.tsv'} (its labels: [0, 2])"]


def test_a_one_row_training_split_fails_the_preflight_not_the_trial(tmp_path, caplog):
    write_tsv(tmp_path / "train.tsv", ["only row\t0"])
    write_tsv(tmp_path / "validation.tsv", ["x\t0"])
    write_tsv(tmp_path / "test.tsv", ["other\t1"])
    cfg = classifier_config({**TINY, "dataset": str(tmp_path / "{split}.tsv"), "batch_size": 8})
    with caplog.at_level(logging.WARNING, logger="trainables.data_setup"):
        problems = classifier_preflight(cfg)
    assert any("single class" in p and "train.tsv" in p for p in problems), problems
    assert any("label 1 at line 2 does not occur in the training split" in p for p in problems), problems
    assert "fewer than one batch (batch_size 8)" in caplog.text  # a warning: the sweep could still start


def test_string_labels_and_an_empty_split(tmp_path):
    write_tsv(tmp_path / "train.tsv", ["a\tpos", "b\tneg"])
    write_tsv(tmp_path / "validation.tsv", ["c\tneutral"])
    write_tsv(tmp_path / "test.tsv", [])
    problems = data_source_problems(str(tmp_path / "{split}.tsv"))
    assert problems == [
        f"dataset: {tmp_path / 'test.tsv'}: empty dataset (no rows left after reading and filtering)",
        f"dataset: {tmp_path / 'validation.tsv'}: label 'neutral' at line 2 does not occur in the training split "
        f"{tmp_path / 'train.tsv'} (its labels: ['neg', 'pos'])"]


def test_a_smaller_than_batch_training_split_is_only_a_warning(tmp_path, caplog):
    for split in ("train", "validation", "test"):
        write_tsv(tmp_path / f"{split}.tsv", reviews(6))
    with caplog.at_level(logging.WARNING, logger="trainables.data_setup"):
        assert data_source_problems(str(tmp_path / "{split}.tsv"), batch_size=32) == []
    assert "has 6 rows, fewer than one batch (batch_size 32)" in caplog.text


# ------------------------------------------------------------------ 7. drop_empty
def test_drop_empty_drops_and_counts_the_default_names_file_and_line(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", ["good\t1", "  \t0", "bad\t0"])
    with pytest.raises(ValueError, match=r"t\.tsv: empty text in column 'text' at line 3"):
        load_dataset(path)
    data = load_dataset(path, drop_empty=True)
    assert data.texts == ("good", "bad") and data.dropped_empty == 1
    pair = write_tsv(tmp_path / "p.tsv", ["a\tb\t1", "c\t\t0"], header="premise\thypothesis\tlabel")
    cols = {"text": "premise", "text_pair": "hypothesis"}
    with pytest.raises(ValueError, match="empty text in column 'hypothesis' at line 3"):
        load_dataset(pair, columns=cols)
    assert load_dataset(pair, columns=cols, drop_empty=True).text_pairs == ("b",)


def test_drop_empty_through_splits_and_local_recipes(tmp_path):
    write_tsv(tmp_path / "train.tsv", reviews(10) + ["\t1", "\t0"])
    write_tsv(tmp_path / "validation.tsv", reviews(4))
    write_tsv(tmp_path / "test.tsv", reviews(4) + ["\t1"])
    source = str(tmp_path / "{split}.tsv")
    assert data_source_problems(source) and data_source_problems(source, drop_empty=True) == []
    splits = load_splits(source, drop_empty=True)
    assert dict(splits.dropped_empty) == {"train": 2, "test": 1, "valid": 0} and len(splits.train) == 10
    (tmp_path / "sst").mkdir()
    for split in ("train", "dev", "test"):
        write_tsv(tmp_path / "sst" / f"{split}.tsv", reviews(6) + ["\t0"])
    assert data_source_problems("local:sst", data_dir=str(tmp_path))
    assert data_source_problems("local:sst", data_dir=str(tmp_path), drop_empty=True) == []
    assert load_local_splits("local:sst", tmp_path, drop_empty=True)["valid"].dropped_empty == 1
    assert dict(load_splits("local:sst", data_dir=str(tmp_path), drop_empty=True).dropped_empty) == {
        "train": 1, "valid": 1, "test": 1}


def test_drop_empty_is_a_validated_key_of_every_text_trainable():
    for parse in (classifier_config, finetune_config, restorability_config, mlm_config):
        assert parse({"drop_empty": True}).drop_empty is True
        with pytest.raises(ConfigError, match="drop_empty: expected true/false"):
            parse({"drop_empty": "yes"})
    from trainables.bios_debias.config import parse_config as bios_config
    from trainables.faithfulness.config import parse_config as faith_config

    assert bios_config({"drop_empty": True}).drop_empty and faith_config({"drop_empty": True}).drop_empty


def test_a_classifier_trial_reports_the_dropped_rows(tmp_path, caplog):
    write_tsv(tmp_path / "train.tsv", reviews(24) + ["\t1"])
    write_tsv(tmp_path / "validation.tsv", reviews(8))
    write_tsv(tmp_path / "test.tsv", ["  \t0"] + reviews(8))
    cfg = {**TINY, "dataset": str(tmp_path / "{split}.tsv"), "drop_empty": True}
    with caplog.at_level(logging.WARNING, logger="trainables.data_setup"):
        result = classifier_trial(cfg, lambda *_: None)
    assert result.metrics["data/dropped_empty.train"] == 1 and result.metrics["data/dropped_empty.test"] == 1
    assert result.metrics["data/dropped_empty.valid"] == 0
    assert "dropped 1 row(s) with an empty text" in caplog.text
    # declared as a family of the trial protocol: every emitted key is a declared metric or bookkeeping
    from trainables import TRAINABLES
    from trainables.protocol import is_bookkeeping

    assert all(k in TRAINABLES["classifier"].metrics or is_bookkeeping(k) for k in result.metrics)


def test_restorability_preflight_checks_every_line(tmp_path, monkeypatch):
    import trainables.restorability.config as restorability

    monkeypatch.setattr(restorability, "mlm_problems", lambda *a, **k: [])  # no model here
    path = write_tsv(tmp_path / "s.tsv", reviews(300) + ["\t0"], header="sentence\tlabel")
    base = {"mlm": str(tmp_path), "dataset": str(path), "text_column": "sentence"}
    problems = restorability_preflight(restorability.parse_config(base))
    assert any("empty text in column 'sentence' at line 302" in p for p in problems), problems
    assert not any("line 302" in p for p in restorability_preflight(restorability.parse_config({**base, "drop_empty": True})))
