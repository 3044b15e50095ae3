"""Text-classification datasets: an immutable container and loaders.

* :class:`TextDataset` holds texts (optionally pairs), integer labels,
  word-level rationales and extra columns.
* :func:`load_dataset` reads either a Hugging Face hub dataset registered in
  :data:`KNOWN_DATASETS` (through ``datasets.load_dataset``; needs network or
  a warm ``datasets`` cache) or a local ``.csv`` / ``.tsv`` / ``.jsonl`` /
  ``.json`` / ``.parquet`` file.
* :func:`load_unlabeled_text` reads one-sentence-per-line text files.

Every problem with the input raises :class:`ValueError` naming it.
"""
from __future__ import annotations

import csv
import json
import math
import numbers
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from xaicore.vocab import word_tokenize

__all__ = [
    "TextDataset",
    "HubDatasetSpec",
    "KNOWN_DATASETS",
    "load_dataset",
    "load_unlabeled_text",
    "evidence_to_rationale",
]

_EMPTY: Mapping[str, tuple] = MappingProxyType({})


@dataclass(frozen=True)
class TextDataset:
    """An immutable text-classification dataset.

    Attributes:
        texts: ``N`` first texts.
        labels: ``N`` class ids in ``[0, num_classes)``, or ``None`` (unlabeled).
        text_pairs: ``N`` second texts (sentence-pair tasks) or ``None``.
        rationales: per example, sorted indices of :func:`xaicore.vocab.word_tokenize`
            tokens of the first text that are human / planted evidence (an
            empty tuple when an example has none), or ``None`` when unknown.
        extras: other columns, each a tuple of ``N`` values.
        label_names: name of each class id, or ``None``.
        name: a human-readable identifier (e.g. ``"sst2:train"``).
    """

    texts: tuple[str, ...]
    labels: Optional[tuple[int, ...]] = None
    text_pairs: Optional[tuple[str, ...]] = None
    rationales: Optional[tuple[tuple[int, ...], ...]] = None
    extras: Mapping[str, tuple] = field(default_factory=lambda: _EMPTY)
    label_names: Optional[tuple[str, ...]] = None
    name: str = "dataset"

    def __post_init__(self) -> None:
        n = len(self.texts)
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("texts", tuple(self.texts))
        if any(not isinstance(t, str) for t in self.texts):
            raise ValueError(f"{self.name}: every text must be a str")
        if self.text_pairs is not None:
            set_("text_pairs", tuple(self.text_pairs))
            if len(self.text_pairs) != n or any(not isinstance(t, str) for t in self.text_pairs):
                raise ValueError(f"{self.name}: text_pairs must be {n} strings")
        if self.labels is not None:
            labels = tuple(self.labels)
            if len(labels) != n:
                raise ValueError(f"{self.name}: {len(labels)} labels for {n} texts")
            if any(not _is_int(y) or y < 0 for y in labels):
                raise ValueError(f"{self.name}: labels must be non-negative ints")
            labels = tuple(int(y) for y in labels)
            if self.label_names is not None and labels and max(labels) >= len(self.label_names):
                raise ValueError(
                    f"{self.name}: label {max(labels)} out of range for {len(self.label_names)} label_names"
                )
            set_("labels", labels)
        if self.label_names is not None:
            set_("label_names", tuple(str(x) for x in self.label_names))
        if self.rationales is not None:
            rats = tuple(tuple(sorted({int(i) for i in r})) for r in self.rationales)
            if len(rats) != n:
                raise ValueError(f"{self.name}: {len(rats)} rationales for {n} texts")
            set_("rationales", rats)
        extras = {}
        for key, col in dict(self.extras).items():
            col = tuple(col)
            if len(col) != n:
                raise ValueError(f"{self.name}: extra column {key!r} has {len(col)} values for {n} texts")
            extras[key] = col
        set_("extras", MappingProxyType(extras))

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Example ``i`` as a dict (``text``, ``text_pair``, ``label``, ``rationale`` and extras)."""
        return {
            "text": self.texts[i],
            "text_pair": None if self.text_pairs is None else self.text_pairs[i],
            "label": None if self.labels is None else self.labels[i],
            "rationale": None if self.rationales is None else self.rationales[i],
            **{k: v[i] for k, v in self.extras.items()},
        }

    @property
    def is_labeled(self) -> bool:
        return self.labels is not None

    @property
    def num_classes(self) -> int:
        """``len(label_names)`` if known, else ``max(labels) + 1``; ValueError if unlabeled."""
        if self.label_names is not None:
            return len(self.label_names)
        if self.labels is None:
            raise ValueError(f"{self.name} is unlabeled: it has no classes")
        return max(self.labels, default=-1) + 1

    def subset(self, indices: Iterable[int], *, name: Optional[str] = None) -> "TextDataset":
        """A new dataset with the examples at ``indices`` (in that order; repeats allowed).

        Args:
            indices: positions into this dataset.
            name: name of the result (default: this dataset's name).
        """
        idx = [int(i) for i in indices]
        pick = lambda col: None if col is None else tuple(col[i] for i in idx)  # noqa: E731
        return TextDataset(
            texts=pick(self.texts),
            labels=pick(self.labels),
            text_pairs=pick(self.text_pairs),
            rationales=pick(self.rationales),
            extras={k: pick(v) for k, v in self.extras.items()},
            label_names=self.label_names,
            name=self.name if name is None else name,
        )

    def without_labels(self) -> "TextDataset":
        """The same texts with ``labels=None`` (e.g. to reuse a train set as an unlabeled pool)."""
        return replace(self, labels=None)


# ---------------------------------------------------------------------------
# Hub registry


@dataclass(frozen=True)
class HubDatasetSpec:
    """How to read one Hugging Face hub dataset into a :class:`TextDataset`.

    Attributes:
        hub_id: repository id, passed to ``datasets.load_dataset``.
        config: configuration name (``name=`` argument) or ``None``.
        splits: our split name -> hub split name.
        text: hub column with the (first) text.
        text_pair: hub column with the second text, or ``None``.
        label: hub column with the label, or ``None`` for unlabeled corpora.
        rationale: hub column with evidence strings, converted to word-index
            rationales with :func:`evidence_to_rationale`; or ``None``.
        unlabeled_splits: hub splits whose label column is a placeholder
            (e.g. ``-1``): read with ``labels=None``.
        keep: row filter applied before relabelling: column -> allowed values.
        label_map: raw label value -> new class id (applied after ``keep``).
        label_names: class names; if ``None`` they are read from a
            ``ClassLabel`` feature when there is one.
        drop_empty: drop rows whose text (or pair) is empty / whitespace.
        revision: hub revision (e.g. ``"refs/convert/parquet"``) or ``None``.
        data_dir: sub-directory of the repository, or ``None``.
        note: caveats.
    """

    hub_id: str
    splits: Mapping[str, str]
    config: Optional[str] = None
    text: str = "text"
    text_pair: Optional[str] = None
    label: Optional[str] = "label"
    rationale: Optional[str] = None
    unlabeled_splits: tuple[str, ...] = ()
    keep: Mapping[str, tuple] = field(default_factory=lambda: _EMPTY)
    label_map: Optional[Mapping[Any, int]] = None
    label_names: Optional[tuple[str, ...]] = None
    drop_empty: bool = True
    revision: Optional[str] = None
    data_dir: Optional[str] = None
    note: str = ""


def _same(*names: str) -> Mapping[str, str]:
    return MappingProxyType({n: n for n in names})


_ANLI_SPLITS = tuple(f"{s}_r{r}" for s in ("train", "dev", "test") for r in (1, 2, 3))

#: Registered hub datasets, by key. Pass a key (or a :class:`HubDatasetSpec`) to :func:`load_dataset`.
KNOWN_DATASETS: Mapping[str, HubDatasetSpec] = MappingProxyType(
    {
        "sst2": HubDatasetSpec(
            hub_id="stanfordnlp/sst2",
            text="sentence",
            splits=MappingProxyType({"train": "train", "test": "validation"}),
            note="The hub 'test' split has no labels (-1): our 'test' is the hub 'validation' split "
            "(872 sentences), and there is no separate dev split (carve one from train).",
        ),
        "imdb": HubDatasetSpec(
            hub_id="stanfordnlp/imdb",
            splits=_same("train", "test", "unsupervised"),
            unlabeled_splits=("unsupervised",),
            note="'unsupervised' holds 50k unlabeled reviews (label -1), read with labels=None.",
        ),
        "ag_news": HubDatasetSpec(hub_id="fancyzhx/ag_news", splits=_same("train", "test")),
        "ag_news_binary": HubDatasetSpec(
            hub_id="fancyzhx/ag_news",
            splits=_same("train", "test"),
            keep=MappingProxyType({"label": (0, 2)}),
            label_map=MappingProxyType({0: 0, 2: 1}),
            label_names=("World", "Business"),
            note="Jain & Wallace (2019) binary AG News: World (0) vs Business (2), relabelled 0/1.",
        ),
        "20newsgroups_binary": HubDatasetSpec(
            hub_id="SetFit/20_newsgroups",
            splits=_same("train", "test"),
            label="label_text",
            keep=MappingProxyType({"label_text": ("rec.sport.baseball", "rec.sport.hockey")}),
            label_map=MappingProxyType({"rec.sport.baseball": 0, "rec.sport.hockey": 1}),
            label_names=("rec.sport.baseball", "rec.sport.hockey"),
            note="Jain & Wallace (2019) binary 20 Newsgroups: baseball (0) vs hockey (1); empty posts dropped; "
            "the original 20-way 'label' is kept as an extra column.",
        ),
        "anli": HubDatasetSpec(
            hub_id="facebook/anli",
            text="premise",
            text_pair="hypothesis",
            splits=_same(*_ANLI_SPLITS),
            note="Splits are per round: train_r1..train_r3, dev_r1..dev_r3, test_r1..test_r3.",
        ),
        "bias_in_bios": HubDatasetSpec(
            hub_id="LabHC/bias_in_bios",
            text="hard_text",
            label="profession",
            splits=MappingProxyType({"train": "train", "dev": "dev", "validation": "dev", "test": "test"}),
            note="Label is the profession (28 classes); 'gender' is kept in extras.",
        ),
        "movie_rationales": HubDatasetSpec(
            hub_id="eraser-benchmark/movie_rationales",
            text="review",
            rationale="evidences",
            splits=MappingProxyType({"train": "train", "dev": "validation", "validation": "validation", "test": "test"}),
            note="ERASER movie reviews; evidence strings become word-index rationales (every occurrence "
            "of each evidence token sequence is marked). If the hub repository is still script-based, "
            "load it with dataclasses.replace(spec, revision='refs/convert/parquet').",
        ),
        "wikitext": HubDatasetSpec(
            hub_id="Salesforce/wikitext",
            config="wikitext-103-raw-v1",
            label=None,
            splits=MappingProxyType({"train": "train", "dev": "validation", "validation": "validation", "test": "test"}),
            note="Unlabeled; one example per non-empty line (section headings included).",
        ),
        "lm1b": HubDatasetSpec(
            hub_id="billion-word-benchmark/lm1b",
            label=None,
            splits=_same("train", "test"),
            revision="refs/convert/parquet",
            data_dir="plain_text",
            note="Unlabeled One Billion Word benchmark (30M sentences in train). The repository is "
            "script-based, which datasets>=4 cannot run, so the parquet conversion branch is read.",
        ),
    }
)


# ---------------------------------------------------------------------------
# Helpers


def evidence_to_rationale(text: str, evidences: Iterable[str]) -> tuple[int, ...]:
    """Word-token indices of ``text`` covered by evidence strings.

    Both ``text`` and every evidence are tokenised with
    :func:`xaicore.vocab.word_tokenize`; every occurrence of an evidence's
    token sequence in the text's tokens is marked. Evidences that do not occur
    are ignored.

    Args:
        text: the document.
        evidences: evidence snippets taken from ``text``.

    Returns:
        Sorted unique token indices.
    """
    tokens = word_tokenize(text)
    marked: set[int] = set()
    for ev in evidences:
        ev_toks = word_tokenize(ev or "")
        k = len(ev_toks)
        if k == 0:
            continue
        for start in range(len(tokens) - k + 1):
            if tokens[start : start + k] == ev_toks:
                marked.update(range(start, start + k))
    return tuple(sorted(marked))


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


_INT_RE = re.compile(r"^\s*-?\d+\s*$")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _encode_labels(
    raw: Sequence[Any], label_names: Optional[Sequence[str]], where: str
) -> tuple[tuple[int, ...], Optional[tuple[str, ...]]]:
    """Map raw labels to ids; see :func:`load_dataset` for the rules."""
    for i, v in enumerate(raw):
        if _is_missing(v) or (isinstance(v, str) and not v.strip()):
            raise ValueError(f"{where}: missing label at row {i}")
    if all(isinstance(v, str) for v in raw) and all(_INT_RE.match(v) for v in raw):
        raw = [int(v) for v in raw]  # integer literals in a text file
    if all(_is_int(v) for v in raw):
        ids = tuple(int(v) for v in raw)
        if min(ids) < 0:
            raise ValueError(f"{where}: negative label {min(ids)} (labels must be ids >= 0)")
        if label_names is not None and max(ids) >= len(label_names):
            raise ValueError(f"{where}: label {max(ids)} out of range for {len(label_names)} label_names")
        return ids, None if label_names is None else tuple(label_names)
    if all(isinstance(v, str) for v in raw):
        names = tuple(label_names) if label_names is not None else tuple(sorted(set(raw)))
        lookup = {n: i for i, n in enumerate(names)}
        unknown = sorted(set(raw) - set(lookup))
        if unknown:
            raise ValueError(f"{where}: labels {unknown[:5]!r} are not in label_names {list(names)!r}")
        return tuple(lookup[v] for v in raw), names
    bad = next((v for v in raw if not (_is_int(v) or isinstance(v, str))), raw[0])
    kinds = sorted({type(v).__name__ for v in raw})
    raise ValueError(
        f"{where}: labels must be all ints or all strings, got types {kinds} (e.g. {bad!r})"
    )


def _parse_rationale(value: Any, text: str, where: str) -> tuple[int, ...]:
    """A rationale cell -> word indices: ints, evidence strings, JSON or "1 2 3" strings."""
    if _is_missing(value):
        return ()
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return ()
        if s.startswith("["):
            try:
                value = json.loads(s)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: cannot parse rationale {value!r}: {e}") from None
        else:
            parts = [p for p in re.split(r"[\s,]+", s) if p]
            if not all(_INT_RE.match(p) for p in parts):
                raise ValueError(f"{where}: rationale {value!r} is not a list of word indices")
            value = [int(p) for p in parts]
    value = list(value)
    if value and all(isinstance(v, str) for v in value):
        return evidence_to_rationale(text, value)
    n = len(word_tokenize(text))
    out = []
    for v in value:
        if not _is_int(v):
            raise ValueError(f"{where}: rationale entries must be word indices or evidence strings, got {v!r}")
        if not 0 <= int(v) < n:
            raise ValueError(f"{where}: rationale index {int(v)} out of range for a text of {n} word tokens")
        out.append(int(v))
    return tuple(out)


def _matches(raw: Any, wanted: Any) -> bool:
    options = wanted if isinstance(wanted, (list, tuple, set, frozenset)) else (wanted,)
    return any(raw == w or (isinstance(raw, str) and not isinstance(w, str) and raw == str(w)) for w in options)


def _build(
    columns: dict[str, list],
    roles: Mapping[str, Optional[str]],
    *,
    name: str,
    label_names: Optional[Sequence[str]],
    filters: Mapping[str, Any],
    keep: Mapping[str, tuple] = _EMPTY,
    label_map: Optional[Mapping[Any, int]] = None,
    drop_empty: bool = False,
) -> TextDataset:
    """Columns (dict of equal-length lists) -> TextDataset, applying filters and roles."""
    available = list(columns)
    for role, col in roles.items():
        if col is not None and col not in columns:
            raise ValueError(f"{name}: missing column {col!r} (for {role!r}); available columns: {available}")
    for col in {**keep, **filters}:
        if col not in columns:
            raise ValueError(f"{name}: missing column {col!r} (used as a filter); available columns: {available}")
    n = len(columns[roles["text"]])
    rows = [
        i
        for i in range(n)
        if all(_matches(columns[c][i], v) for c, v in {**keep, **filters}.items())
    ]
    text_col, pair_col = roles["text"], roles.get("text_pair")
    for col in (text_col, pair_col):
        if col is None:
            continue
        for i in rows:
            v = columns[col][i]
            if _is_missing(v):
                raise ValueError(f"{name}: missing value in column {col!r} at row {i}")
            if not isinstance(v, str):
                raise ValueError(f"{name}: column {col!r} must hold strings, got {type(v).__name__} at row {i}")
    if drop_empty:
        rows = [i for i in rows if all(not c or columns[c][i].strip() for c in (text_col, pair_col))]
    else:
        for i in rows:
            for c in (text_col, pair_col):
                if c and not columns[c][i].strip():
                    raise ValueError(f"{name}: empty text in column {c!r} at row {i}")
    if not rows:
        raise ValueError(f"{name}: empty dataset (no rows left after reading and filtering)")
    texts = [columns[text_col][i] for i in rows]
    labels = names = None
    if roles.get("label") is not None:
        raw = [columns[roles["label"]][i] for i in rows]
        if label_map is not None:
            unmapped = sorted({repr(v) for v in raw if v not in label_map})
            if unmapped:
                raise ValueError(f"{name}: labels {unmapped[:5]} have no entry in the spec's label_map")
            raw = [label_map[v] for v in raw]
        labels, names = _encode_labels(raw, label_names, name)
    rationales = None
    if roles.get("rationale") is not None:
        rationales = [
            _parse_rationale(columns[roles["rationale"]][i], columns[text_col][i], f"{name} row {i}") for i in rows
        ]
    used = {c for c in roles.values() if c is not None}
    extras = {c: tuple(columns[c][i] for i in rows) for c in columns if c not in used}
    return TextDataset(
        texts=tuple(texts),
        labels=labels,
        text_pairs=None if pair_col is None else tuple(columns[pair_col][i] for i in rows),
        rationales=None if rationales is None else tuple(rationales),
        extras=extras,
        label_names=names,
        name=name,
    )


# ---------------------------------------------------------------------------
# Readers

_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def _records_to_columns(records: list[Any], where: str) -> dict[str, list]:
    if not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{where}: expected one JSON object per record")
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r))
    return {k: [r.get(k) for r in records] for k in keys}


def _read_file(path: Path) -> dict[str, list]:
    ext = path.suffix.lower()
    where = str(path)
    if ext in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8") as f:
            if ext == ".csv":
                reader = csv.reader(f)
            else:
                reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            rows = list(reader)
        if not rows:
            raise ValueError(f"{where}: empty file (no header row)")
        header, body = rows[0], [r for r in rows[1:] if r]
        for j, r in enumerate(body):
            if len(r) != len(header):
                raise ValueError(f"{where}: row {j} has {len(r)} fields but the header has {len(header)}")
        return {h: [r[k] for r in body] for k, h in enumerate(header)}
    if ext == ".jsonl":
        records = []
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{where}: invalid JSON on line {lineno}: {e}") from None
        return _records_to_columns(records, where)
    if ext == ".json":
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: invalid JSON: {e}") from None
        if isinstance(obj, list):
            return _records_to_columns(obj, where)
        if isinstance(obj, dict) and all(isinstance(v, list) for v in obj.values()):
            if len({len(v) for v in obj.values()}) > 1:
                raise ValueError(f"{where}: JSON columns have different lengths")
            return {k: list(v) for k, v in obj.items()}
        raise ValueError(f"{where}: JSON must be a list of records or an object of equal-length column lists")
    if ext == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pydict()
    raise ValueError(f"{where}: unsupported file extension {ext!r}; supported: {list(_EXTENSIONS)}")


_ROLES = ("text", "text_pair", "label", "rationale")


def load_dataset(
    source: Union[str, os.PathLike, HubDatasetSpec],
    /,
    *,
    split: Optional[str] = None,
    columns: Optional[Mapping[str, Optional[str]]] = None,
    label_names: Optional[Sequence[str]] = None,
    **filters: Any,
) -> TextDataset:
    """Load a registered hub dataset or a local file as a :class:`TextDataset`.

    Args:
        source: a key of :data:`KNOWN_DATASETS`, a :class:`HubDatasetSpec`, or
            a path to a ``.csv`` (comma, standard quoting), ``.tsv`` (tab, no
            quoting: quotes are literal text), ``.jsonl``, ``.json`` (list of
            records or object of column lists) or ``.parquet`` file with a
            header / named columns.
        split: for hub datasets, one of the spec's ``splits`` (required). For a
            local path containing ``"{split}"`` (e.g. ``"data/sst/{split}.tsv"``)
            the placeholder is replaced by ``split`` (then required); otherwise
            ``split`` is ignored.
        columns: local files only: role -> column name for roles ``text``,
            ``text_pair``, ``label``, ``rationale``. Defaults: ``text`` ->
            ``"text"``; ``label`` -> ``"label"`` if such a column exists, else
            unlabeled; ``text_pair`` / ``rationale`` -> absent. Map a role to
            ``None`` to disable it (e.g. ``{"label": None}``).
        label_names: class names. String labels are mapped to their index in
            this list; without it, string labels get the ids of their sorted
            unique values (stored in ``label_names``). Integer labels (and
            integer literals in CSV/TSV) are kept as ids.
        **filters: keep rows where ``column == value`` (or ``value`` contains
            the column's value, for a list / tuple / set), applied to raw
            column values before labels are mapped; for CSV/TSV strings,
            ``1`` matches ``"1"``. Columns named ``split``, ``columns`` or
            ``label_names`` cannot be filtered this way.

    Returns:
        The dataset; columns not used by a role are kept in ``extras``.
        Rationale cells may hold word indices (list or ``"1 2 3"`` / JSON
        string) or evidence strings (see :func:`evidence_to_rationale`).

    Raises:
        ValueError: unknown dataset key or split, file not found, unsupported
            extension, missing column, empty text, empty dataset, labels that
            are not all ints or all strings, unknown / out-of-range labels.
    """
    if isinstance(source, HubDatasetSpec) or (isinstance(source, str) and source in KNOWN_DATASETS):
        if columns is not None:
            raise ValueError("columns= applies to local files only; hub datasets use their HubDatasetSpec")
        return _load_hub(source, split=split, label_names=label_names, filters=filters)
    path_str = os.fspath(source)
    if "{split}" in path_str:
        if split is None:
            raise ValueError(f"path {path_str!r} has a '{{split}}' placeholder but no split was given")
        path_str = path_str.replace("{split}", split)
    path = Path(path_str)
    if path.suffix.lower() not in _EXTENSIONS:
        if isinstance(source, str) and not path.suffix and not path.exists():
            raise ValueError(
                f"unknown dataset {path_str!r}: not a key of KNOWN_DATASETS {sorted(KNOWN_DATASETS)} "
                f"and not a file path with extension in {list(_EXTENSIONS)}"
            )
        raise ValueError(f"{path_str}: unsupported file extension {path.suffix!r}; supported: {list(_EXTENSIONS)}")
    if not path.is_file():
        raise ValueError(f"file not found: {path_str}")
    data = _read_file(path)
    roles: dict[str, Optional[str]] = {"text": "text", "text_pair": None, "label": "label" if "label" in data else None, "rationale": None}
    if columns is not None:
        bad = sorted(set(columns) - set(_ROLES))
        if bad:
            raise ValueError(f"unknown column roles {bad}; roles are {list(_ROLES)}")
        roles.update(columns)
    if roles["text"] is None:
        raise ValueError("the 'text' role cannot be disabled")
    name = path.stem if split is None else f"{path.stem}:{split}"
    return _build(data, roles, name=name, label_names=label_names, filters=filters)


def _load_hub(
    source: Union[str, HubDatasetSpec], *, split: Optional[str], label_names: Optional[Sequence[str]], filters: Mapping[str, Any]
) -> TextDataset:
    spec = KNOWN_DATASETS[source] if isinstance(source, str) else source
    key = source if isinstance(source, str) else spec.hub_id
    if split not in spec.splits:
        raise ValueError(f"{key}: unknown split {split!r}; available splits: {list(spec.splits)}")
    hub_split = spec.splits[split]
    import datasets  # deferred: heavy import, and lets tests monkeypatch datasets.load_dataset

    kwargs: dict[str, Any] = {"split": hub_split}
    if spec.revision is not None:
        kwargs["revision"] = spec.revision
    if spec.data_dir is not None:
        kwargs["data_dir"] = spec.data_dir
    ds = datasets.load_dataset(spec.hub_id, spec.config, **kwargs)
    data = ds.to_dict()
    label_col = None if hub_split in spec.unlabeled_splits else spec.label
    names = label_names if label_names is not None else spec.label_names
    if names is None and label_col is not None and spec.label_map is None:
        feature = getattr(ds, "features", {}).get(label_col)
        if isinstance(feature, datasets.ClassLabel):
            names = tuple(feature.names)
    roles = {"text": spec.text, "text_pair": spec.text_pair, "label": label_col, "rationale": spec.rationale}
    return _build(
        data,
        roles,
        name=f"{key}:{split}",
        label_names=names,
        filters=filters,
        keep=spec.keep,
        label_map=spec.label_map,
        drop_empty=spec.drop_empty,
    )


def load_unlabeled_text(path: Union[str, os.PathLike], *, name: Optional[str] = None) -> TextDataset:
    """Read a one-example-per-line UTF-8 text file as an unlabeled dataset.

    Lines are stripped of surrounding whitespace; blank lines are skipped.

    Args:
        path: the text file.
        name: dataset name (default: the file's stem).

    Returns:
        A :class:`TextDataset` with ``labels=None``.

    Raises:
        ValueError: file not found, or no non-blank line.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"file not found: {p}")
    with p.open(encoding="utf-8") as f:
        texts = tuple(s for s in (line.strip() for line in f) if s)
    if not texts:
        raise ValueError(f"{p}: empty dataset (no non-blank lines)")
    return TextDataset(texts=texts, labels=None, name=name or p.stem)
