"""Tests for xaicore.data.loading: TextDataset, local-file and (faked) hub loading."""
from __future__ import annotations

import csv
import json

import pytest

from xaicore.data.loading import (
    KNOWN_DATASETS,
    HubDatasetSpec,
    TextDataset,
    evidence_to_rationale,
    load_dataset,
    load_unlabeled_text,
)

ROWS = [
    {"text": "A fine film.", "label": "pos", "source": "web"},
    {"text": 'He said "meh"', "label": "neg", "source": "paper"},
    {"text": "Great, great fun", "label": "pos", "source": "web"},
]


def _write(path, rows, fmt):
    keys = list(rows[0])
    if fmt in ("csv", "tsv"):
        with path.open("w", newline="", encoding="utf-8") as f:
            if fmt == "csv":
                w = csv.writer(f)
            else:
                w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar=None, quotechar=None)
            w.writerow(keys)
            for r in rows:
                w.writerow([r[k] for k in keys])
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "parquet"])
def test_local_formats_agree(tmp_path, fmt):
    ds = load_dataset(_write(tmp_path / f"data.{fmt}", ROWS, fmt))
    assert ds.texts == tuple(r["text"] for r in ROWS)  # quotes survive in every format
    assert ds.label_names == ("neg", "pos")  # sorted unique strings
    assert ds.labels == (1, 0, 1)
    assert dict(ds.extras) == {"source": ("web", "paper", "web")}
    assert ds.num_classes == 2 and len(ds) == 3 and ds.name == "data"


def test_json_column_object(tmp_path):
    p = tmp_path / "cols.json"
    p.write_text(json.dumps({"text": ["a", "b"], "label": [1, 0]}))
    ds = load_dataset(p)
    assert ds.labels == (1, 0) and ds.label_names is None and ds.num_classes == 2


def test_integer_literals_in_csv_are_ids(tmp_path):
    p = _write(tmp_path / "d.csv", [{"text": "x", "label": "2"}, {"text": "y", "label": "0"}], "csv")
    ds = load_dataset(p)
    assert ds.labels == (2, 0) and ds.num_classes == 3


def test_given_label_names_fix_the_mapping(tmp_path):
    p = _write(tmp_path / "d.jsonl", ROWS, "jsonl")
    ds = load_dataset(p, label_names=["pos", "neg"])
    assert ds.labels == (0, 1, 0) and ds.label_names == ("pos", "neg")


def test_columns_roles_pairs_rationales_and_unlabeled(tmp_path):
    rows = [
        {"premise": "the cat sat", "hyp": "a cat", "y": 0, "ev": [0, 1], "id": "a"},
        {"premise": "dogs don't fly", "hyp": "dogs fly", "y": 2, "ev": ["don't fly"], "id": "b"},
    ]
    p = _write(tmp_path / "nli.jsonl", rows, "jsonl")
    ds = load_dataset(p, columns={"text": "premise", "text_pair": "hyp", "label": "y", "rationale": "ev"})
    assert ds.texts == ("the cat sat", "dogs don't fly") and ds.text_pairs == ("a cat", "dogs fly")
    assert ds.labels == (0, 2) and ds.rationales == ((0, 1), (1, 2))
    assert dict(ds.extras) == {"id": ("a", "b")}
    unl = load_dataset(p, columns={"text": "premise"})
    assert unl.labels is None and set(unl.extras) == {"hyp", "y", "ev", "id"}
    with pytest.raises(ValueError, match="unlabeled"):
        unl.num_classes


def test_rationale_strings_in_csv(tmp_path):
    rows = [{"text": "a b c d", "label": "1", "r": "[0, 3]"}, {"text": "a b", "label": "0", "r": "1"}, {"text": "x", "label": "0", "r": ""}]
    ds = load_dataset(_write(tmp_path / "r.csv", rows, "csv"), columns={"rationale": "r"})
    assert ds.rationales == ((0, 3), (1,), ())


def test_split_placeholder_and_filters(tmp_path):
    _write(tmp_path / "train.csv", ROWS, "csv")
    ds = load_dataset(str(tmp_path / "{split}.csv"), split="train", source="web")
    assert ds.texts == ("A fine film.", "Great, great fun") and ds.name == "train:train"
    assert load_dataset(tmp_path / "train.csv", label="neg").labels == (0,)  # only "neg" row left
    assert len(load_dataset(tmp_path / "train.csv", source=["web", "paper"])) == 3


def test_load_unlabeled_text(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("first line\n\n  second line  \n\n")
    ds = load_unlabeled_text(p)
    assert ds.texts == ("first line", "second line") and ds.labels is None and ds.name == "s"


def _bad_case(tmp_path, case):
    """Build the inputs for one error case; returns (callable, expected message regex)."""
    good = _write(tmp_path / "good.csv", ROWS, "csv")
    if case == "unknown_key":
        return lambda: load_dataset("sst-5", split="train"), r"unknown dataset 'sst-5'.*sst2"
    if case == "not_found":
        return lambda: load_dataset(tmp_path / "missing.csv"), "file not found"
    if case == "extension":
        (tmp_path / "d.xlsx").write_text("x")
        return lambda: load_dataset(tmp_path / "d.xlsx"), r"unsupported file extension '\.xlsx'"
    if case == "missing_column":
        return lambda: load_dataset(good, columns={"text": "sentence"}), r"missing column 'sentence'.*\['text', 'label', 'source'\]"
    if case == "missing_filter_column":
        return lambda: load_dataset(good, gender=1), r"missing column 'gender'"
    if case == "empty_file":
        (tmp_path / "e.csv").write_text("text,label\n")
        return lambda: load_dataset(tmp_path / "e.csv"), "empty dataset"
    if case == "filtered_empty":
        return lambda: load_dataset(good, source="tv"), "empty dataset"
    if case == "float_labels":
        p = _write(tmp_path / "f.jsonl", [{"text": "a", "label": 0.5}], "jsonl")
        return lambda: load_dataset(p), "labels must be all ints or all strings"
    if case == "mixed_labels":
        p = _write(tmp_path / "m.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": "pos"}], "jsonl")
        return lambda: load_dataset(p), "labels must be all ints or all strings"
    if case == "missing_label":
        p = _write(tmp_path / "n.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": None}], "jsonl")
        return lambda: load_dataset(p), r"n\.jsonl: missing label at line 2"
    if case == "negative_label":
        p = _write(tmp_path / "neg.jsonl", [{"text": "a", "label": -1}], "jsonl")
        return lambda: load_dataset(p), "negative label"
    if case == "unknown_label_name":
        return lambda: load_dataset(good, label_names=["pos"]), r"label 'neg' at line 3 is not among the classes \['pos'\]"
    if case == "empty_text":
        p = _write(tmp_path / "t.jsonl", [{"text": " ", "label": 1}], "jsonl")
        return lambda: load_dataset(p), r"t\.jsonl: empty text in column 'text' at line 1"
    if case == "non_string_text":
        p = _write(tmp_path / "i.jsonl", [{"text": 3, "label": 1}], "jsonl")
        return lambda: load_dataset(p), "must hold strings"
    if case == "bad_rationale":
        p = _write(tmp_path / "r.jsonl", [{"text": "a b", "label": 1, "r": [5]}], "jsonl")
        return lambda: load_dataset(p, columns={"rationale": "r"}), "rationale index 5 out of range"
    if case == "bad_role":
        return lambda: load_dataset(good, columns={"txt": "text"}), "unknown column roles"
    if case == "ragged_csv":
        (tmp_path / "rg.csv").write_text("text,label\na,1,extra\n")
        return lambda: load_dataset(tmp_path / "rg.csv"), r"rg\.csv: line 2 has 3 fields"
    if case == "unknown_split":
        return lambda: load_dataset("sst2", split="validation"), r"unknown split 'validation'.*\['train', 'test'\]"
    if case == "non_utf8":
        (tmp_path / "latin.csv").write_bytes("text,label\nfine,1\ncaf\xe9 au lait,0\n".encode("latin-1"))
        return lambda: load_dataset(tmp_path / "latin.csv"), r"latin\.csv: line 3, column 4: byte 0xe9 is not valid UTF-8"
    if case == "zero_byte_file":
        (tmp_path / "z.csv").write_text("")
        return lambda: load_dataset(tmp_path / "z.csv"), r"z\.csv: empty file"
    if case == "empty_jsonl":
        (tmp_path / "z.jsonl").write_text("\n")
        return lambda: load_dataset(tmp_path / "z.jsonl"), r"z\.jsonl: empty file"
    if case == "unlabeled_non_utf8":
        (tmp_path / "u.txt").write_bytes(b"ok\n\xff\n")
        return lambda: load_unlabeled_text(tmp_path / "u.txt"), r"u\.txt: line 2, column 1: byte 0xff"
    if case == "split_placeholder":
        return lambda: load_dataset(str(tmp_path / "{split}.csv")), "no split was given"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "unknown_key", "not_found", "extension", "missing_column", "missing_filter_column", "empty_file",
        "filtered_empty", "float_labels", "mixed_labels", "missing_label", "negative_label",
        "unknown_label_name", "empty_text", "non_string_text", "bad_rationale", "bad_role",
        "ragged_csv", "unknown_split", "split_placeholder", "non_utf8", "zero_byte_file", "empty_jsonl",
        "unlabeled_non_utf8",
    ],
)
def test_bad_input_raises_value_error(tmp_path, case):
    call, message = _bad_case(tmp_path, case)
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------- TextDataset


def test_textdataset_subset_and_validation():
    ds = TextDataset(
        texts=("a", "b", "c"),
        labels=(0, 1, 1),
        rationales=((0,), (), (0,)),
        extras={"g": (1, 2, 3)},
        label_names=("n", "p"),
        name="toy",
    )
    sub = ds.subset([2, 0])
    assert sub.texts == ("c", "a") and sub.labels == (1, 0) and sub.rationales == ((0,), (0,))
    assert sub.extras["g"] == (3, 1) and sub.label_names == ("n", "p") and sub.name == "toy"
    assert ds[1] == {"text": "b", "text_pair": None, "label": 1, "rationale": (), "g": 2}
    assert ds.without_labels().labels is None and ds.num_classes == 2
    assert TextDataset(texts=("a", "b"), labels=(0, 4)).num_classes == 5
    for bad in (
        dict(texts=("a",), labels=(0, 1)),
        dict(texts=("a",), labels=(-1,)),
        dict(texts=("a",), labels=(2,), label_names=("x", "y")),
        dict(texts=("a",), extras={"g": (1, 2)}),
        dict(texts=("a",), text_pairs=()),
    ):
        with pytest.raises(ValueError):
            TextDataset(**bad)


def test_evidence_to_rationale_marks_every_occurrence():
    text = "It was fun. Really fun, and very fun indeed!"
    # it was fun . really fun , and very fun indeed !
    # 0  1   2   3 4      5   6 7   8    9   10     11
    assert evidence_to_rationale(text, ["very fun", "Really"]) == (4, 8, 9)
    assert evidence_to_rationale(text, ["fun"]) == (2, 5, 9)
    assert evidence_to_rationale(text, ["not there", ""]) == ()


# ------------------------------------------------------------ hub (faked)


class FakeHub:
    """Stands in for datasets.load_dataset: records calls, returns a small Dataset."""

    def __init__(self, datasets_mod, tables):
        self.datasets, self.tables, self.calls = datasets_mod, tables, []

    def __call__(self, path, name=None, **kwargs):
        self.calls.append((path, name, kwargs))
        data, features = self.tables[(path, kwargs["split"])]
        return self.datasets.Dataset.from_dict(data, features=features)


@pytest.fixture
def fake_hub(monkeypatch):
    datasets = pytest.importorskip("datasets")
    F, V, C = datasets.Features, datasets.Value, datasets.ClassLabel
    S = lambda: datasets.Sequence(V("string"))  # noqa: E731
    tables = {
        ("stanfordnlp/sst2", "validation"): (
            {"idx": [0, 1], "sentence": ["good .", "bad ."], "label": [1, 0]},
            F({"idx": V("int32"), "sentence": V("string"), "label": C(names=["negative", "positive"])}),
        ),
        ("stanfordnlp/imdb", "unsupervised"): ({"text": ["some review"], "label": [-1]}, None),
        ("fancyzhx/ag_news", "train"): (
            {"text": ["w", "s", "b", "t", "w2"], "label": [0, 1, 2, 3, 0]},
            F({"text": V("string"), "label": C(names=["World", "Sports", "Business", "Sci/Tech"])}),
        ),
        ("SetFit/20_newsgroups", "test"): (
            {
                "text": ["bats", "pucks", "cpus", "", "gloves"],
                "label": [9, 10, 2, 10, 9],
                "label_text": ["rec.sport.baseball", "rec.sport.hockey", "comp.graphics", "rec.sport.hockey", "rec.sport.baseball"],
            },
            None,
        ),
        ("facebook/anli", "dev_r2"): (
            {"uid": ["u"], "premise": ["P."], "hypothesis": ["H."], "label": [2], "reason": [""]},
            F({"uid": V("string"), "premise": V("string"), "hypothesis": V("string"),
               "label": C(names=["entailment", "neutral", "contradiction"]), "reason": V("string")}),
        ),
        ("LabHC/bias_in_bios", "dev"): ({"hard_text": ["She codes."], "profession": [19], "gender": [1]}, None),
        ("eraser-benchmark/movie_rationales", "validation"): (
            {"review": ["Fun movie , truly fun .\n"], "label": [1], "evidences": [["truly fun"]]},
            F({"review": V("string"), "label": C(names=["NEG", "POS"]), "evidences": S()}),
        ),
        ("Salesforce/wikitext", "test"): ({"text": ["", " = Title = \n", " some words \n", "\n"]}, None),
        ("billion-word-benchmark/lm1b", "train"): ({"text": ["One sentence .", "Two ."]}, None),
    }
    fake = FakeHub(datasets, tables)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    return fake


def test_hub_sst2_test_reads_validation(fake_hub):
    ds = load_dataset("sst2", split="test")
    assert fake_hub.calls == [("stanfordnlp/sst2", None, {"split": "validation"})]
    assert ds.texts == ("good .", "bad .") and ds.labels == (1, 0)
    assert ds.label_names == ("negative", "positive") and ds.extras["idx"] == (0, 1) and ds.name == "sst2:test"


def test_hub_imdb_unsupervised_is_unlabeled(fake_hub):
    ds = load_dataset("imdb", split="unsupervised")
    assert ds.labels is None and ds.texts == ("some review",)


def test_hub_ag_news_binary_relabels(fake_hub):
    ds = load_dataset("ag_news_binary", split="train")
    assert ds.texts == ("w", "b", "w2") and ds.labels == (0, 1, 0) and ds.label_names == ("World", "Business")
    full = load_dataset("ag_news", split="train")
    assert full.labels == (0, 1, 2, 3, 0) and full.num_classes == 4


def test_hub_20newsgroups_binary(fake_hub):
    ds = load_dataset("20newsgroups_binary", split="test")
    assert ds.texts == ("bats", "pucks", "gloves")  # other groups and empty posts dropped
    assert ds.labels == (0, 1, 0) and ds.extras["label"] == (9, 10, 9)


def test_hub_anli_pairs(fake_hub):
    ds = load_dataset("anli", split="dev_r2")
    assert ds.texts == ("P.",) and ds.text_pairs == ("H.",) and ds.labels == (2,) and ds.num_classes == 3
    assert set(ds.extras) == {"uid", "reason"}


def test_hub_bias_in_bios_keeps_gender_and_filters(fake_hub):
    ds = load_dataset("bias_in_bios", split="dev", gender=1)
    assert ds.labels == (19,) and ds.extras["gender"] == (1,)
    with pytest.raises(ValueError, match="empty dataset"):
        load_dataset("bias_in_bios", split="dev", gender=0)


def test_hub_movie_rationales_evidence(fake_hub):
    ds = load_dataset("movie_rationales", split="dev")
    assert ds.rationales == ((3, 4),) and ds.label_names == ("NEG", "POS") and "evidences" not in ds.extras


def test_hub_unlabeled_corpora(fake_hub):
    wt = load_dataset("wikitext", split="test")
    assert wt.texts == (" = Title = \n", " some words \n") and wt.labels is None
    assert fake_hub.calls[-1] == ("Salesforce/wikitext", "wikitext-103-raw-v1", {"split": "test"})
    lm = load_dataset("lm1b", split="train")
    assert lm.labels is None and len(lm) == 2
    assert fake_hub.calls[-1][2] == {"split": "train", "revision": "refs/convert/parquet", "data_dir": "plain_text"}


def test_hub_custom_spec(fake_hub):
    spec = HubDatasetSpec(hub_id="stanfordnlp/sst2", text="sentence", splits={"dev": "validation"})
    assert load_dataset(spec, split="dev").labels == (1, 0)


def test_registry_contents():
    expected = {"sst2", "imdb", "ag_news", "ag_news_binary", "20newsgroups_binary", "anli", "bias_in_bios",
                "movie_rationales", "wikitext", "lm1b"}
    assert expected <= set(KNOWN_DATASETS)
    assert KNOWN_DATASETS["sst2"].splits["test"] == "validation"
    assert "test_r3" in KNOWN_DATASETS["anli"].splits


def test_dry_run_reads_only_the_first_rows_but_checks_the_whole_encoding(tmp_path):
    rows = "".join(f"row {i},{i % 2}\n" for i in range(50))
    path = tmp_path / "big.csv"
    path.write_text("text,label\n" + rows)
    assert len(load_dataset(path, max_rows=10)) == 10
    path.write_bytes(("text,label\n" + rows).encode() + b"bad \xff,1\n")
    with pytest.raises(ValueError, match=r"line 52, column 5"):
        load_dataset(path, max_rows=10)


def _eraser_row(doc_id, label, document, spans):
    """One ERASER movies record: evidences are groups (lists) of token-offset spans over document.split()."""
    words = document.split()
    groups = [[{"docid": doc_id, "start_token": s, "end_token": e, "start_sentence": -1, "end_sentence": -1,
                "text": " ".join(words[s:e])}] for s, e in spans]
    return {"id": doc_id, "label": label, "classification": "POS" if label else "NEG",
            "document": document, "evidences": groups, "query": "What is the sentiment of this review?"}


ERASER_DOCS = [
    # "great," and "plot-line" are one whitespace token but two / three word tokens; "n't", "film's" stay one
    ("posR_1.txt", 1, "a great, moving film .\nit does n't drag", [(1, 3), (8, 9)]),
    ("negR_2.txt", 0, "dull .\nthe film's plot-line is thin", [(0, 1), (3, 6)]),
    ("negR_3.txt", 0, "no evidence here", []),
]


def test_eraser_token_offset_evidences_jsonl(tmp_path):
    """ERASER's evidences (groups of {start_token, end_token} spans over document.split(), end exclusive) become
    word_tokenize indices; whitespace tokens that split into several word tokens are covered whole."""
    p = tmp_path / "test.jsonl"
    p.write_text("\n".join(json.dumps(_eraser_row(*d)) for d in ERASER_DOCS) + "\n", encoding="utf-8")
    ds = load_dataset(tmp_path / "{split}.jsonl", split="test", columns={"text": "document", "rationale": "evidences"})
    # doc 1 word tokens: a great , moving film . it does n't drag -> "great, moving" = 1..3, "drag" = 9
    # doc 2: dull . the film's plot - line is thin -> "dull" = 0, "film's plot-line is" = 3..7
    assert ds.rationales == ((1, 2, 3, 9), (0, 3, 4, 5, 6, 7), ())
    assert ds.labels == (1, 0, 0)


def test_eraser_evidences_as_python_repr_string(tmp_path):
    """A table that stores evidences as Python-repr text (single quotes, e.g. a pandas CSV export) is read with
    ast.literal_eval; code inside the cell is never run; mismatched evidence text is an error."""
    rows = []
    for doc_id, label, document, spans in ERASER_DOCS:
        r = _eraser_row(doc_id, label, document, spans)
        rows.append({"document": document, "label": label, "evidences": repr(r["evidences"])})
    p = _write(tmp_path / "r.csv", rows, "csv")
    ds = load_dataset(p, columns={"text": "document", "rationale": "evidences"})
    assert ds.rationales == ((1, 2, 3, 9), (0, 3, 4, 5, 6, 7), ())
    bad = _write(tmp_path / "bad.csv", [{"document": "a b", "label": 0, "evidences": "[__import__('os')]"}], "csv")
    with pytest.raises(ValueError, match="cannot parse rationale"):
        load_dataset(bad, columns={"text": "document", "rationale": "evidences"})
    wrong = [[{"start_token": 0, "end_token": 1, "text": "b"}]]
    bad = _write(tmp_path / "bad2.csv", [{"document": "a b", "label": 0, "evidences": repr(wrong)}], "csv")
    with pytest.raises(ValueError, match="does not match tokens"):
        load_dataset(bad, columns={"text": "document", "rationale": "evidences"})
    far = [{"start_token": 1, "end_token": 5}]
    bad = _write(tmp_path / "bad3.csv", [{"document": "a b", "label": 0, "evidences": json.dumps(far)}], "csv")
    with pytest.raises(ValueError, match="out of range"):
        load_dataset(bad, columns={"text": "document", "rationale": "evidences"})
