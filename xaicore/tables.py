"""Column tables -> :class:`~xaicore.text_dataset.TextDataset`: file readers, label encoding, rationales.

* ``_read_file`` reads a local ``.csv`` / ``.tsv`` / ``.jsonl`` / ``.json`` /
  ``.parquet`` file into columns (dict of equal-length lists).
* :func:`validate_table` checks every line of such a file with the same readers and
  row checks, listing every problem (the preflight before a sweep).
* ``_build`` applies column roles, row filters, label encoding and
  rationale parsing to such columns (used for local files and hub datasets).

Every problem with the input raises :class:`ValueError` naming it.
"""
from __future__ import annotations

import ast
import csv
import json
import math
import re
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from xaicore.text_dataset import _EMPTY, TextDataset, _is_int
from xaicore.vocab import word_tokenize

__all__ = ["evidence_to_rationale", "utf8_problem", "validate_table", "TableCheck", "MAX_PROBLEMS_PER_FILE"]


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


def _encode_labels(
    raw: Sequence[Any], label_names: Optional[Sequence[str]], where: str, locs: Optional[Sequence[str]] = None
) -> tuple[tuple[int, ...], Optional[tuple[str, ...]]]:
    """Map raw labels to ids; see :func:`load_dataset` for the rules (``locs[i]``: where row ``i`` is)."""
    loc = (lambda i: locs[i]) if locs is not None else (lambda i: f"row {i}")  # noqa: E731
    for i, v in enumerate(raw):
        if _is_missing(v) or (isinstance(v, str) and not v.strip()):
            raise ValueError(f"{where}: missing label at {loc(i)}")
    if all(isinstance(v, str) for v in raw) and all(_INT_RE.match(v) for v in raw):
        raw = [int(v) for v in raw]  # integer literals in a text file
    if all(_is_int(v) for v in raw):
        ids = tuple(int(v) for v in raw)
        if min(ids) < 0:
            raise ValueError(f"{where}: negative label {min(ids)} (labels must be ids >= 0)")
        if label_names is not None and max(ids) >= len(label_names):
            i = ids.index(max(ids))
            raise ValueError(f"{where}: label {max(ids)} at {loc(i)} out of range for the {len(label_names)} "
                             f"classes {list(label_names)!r}")
        return ids, None if label_names is None else tuple(label_names)
    if all(isinstance(v, str) for v in raw):
        names = tuple(label_names) if label_names is not None else tuple(sorted(set(raw)))
        lookup = {n: i for i, n in enumerate(names)}
        unknown = sorted(set(raw) - set(lookup))
        if unknown:
            i = next(i for i, v in enumerate(raw) if v == unknown[0])
            raise ValueError(f"{where}: label {unknown[0]!r} at {loc(i)} is not among the classes {list(names)!r}"
                             + (f" (other unknown labels: {unknown[1:5]!r})" if len(unknown) > 1 else ""))
        return tuple(lookup[v] for v in raw), names
    bad = next((v for v in raw if not (_is_int(v) or isinstance(v, str))), raw[0])
    kinds = sorted({type(v).__name__ for v in raw})
    raise ValueError(
        f"{where}: labels must be all ints or all strings, got types {kinds} (e.g. {bad!r})"
    )


def _offsets_to_rationale(text: str, spans: Sequence[Mapping[str, Any]], where: str) -> set[int]:
    """ERASER evidence spans -> word-token indices of ``text``.

    ERASER's ``start_token`` / ``end_token`` (end exclusive) index ``text.split()``
    (whitespace tokens of the pre-tokenised document); each whitespace token is mapped
    to the :func:`xaicore.vocab.word_tokenize` tokens it yields (``word_tokenize`` never
    joins across whitespace, so the mapping is exact). A span's ``text``, when given,
    must equal ``" ".join(text.split()[start:end])``; a span without offsets is matched
    as an evidence string (:func:`evidence_to_rationale`).
    """
    pieces = text.split()
    first, pos = [], 0  # first[j]: index of the first word token of whitespace token j
    for piece in pieces:
        first.append(pos)
        pos += len(word_tokenize(piece))
    first.append(pos)
    marked: set[int] = set()
    for span in spans:
        if "start_token" not in span or "end_token" not in span:
            if isinstance(span.get("text"), str):
                marked.update(evidence_to_rationale(text, [span["text"]]))
                continue
            raise ValueError(f"{where}: evidence {span!r} has neither start_token/end_token nor text")
        start, end = span["start_token"], span["end_token"]
        if not (_is_int(start) and _is_int(end) and 0 <= int(start) <= int(end) <= len(pieces)):
            raise ValueError(f"{where}: evidence token span [{start}, {end}) out of range for a text of "
                             f"{len(pieces)} whitespace tokens")
        start, end = int(start), int(end)
        quoted = span.get("text")
        if isinstance(quoted, str) and quoted.split() != pieces[start:end]:
            raise ValueError(f"{where}: evidence text {quoted!r} does not match tokens [{start}, {end}) of the "
                             f"text ({' '.join(pieces[start:end])!r}); is the rationale column's text column right?")
        marked.update(range(first[start], first[end]))
    return marked


def _flatten_evidence(value: list) -> list:
    """ERASER nests evidences as groups (a list of lists of spans): one level of lists is flattened."""
    out: list = []
    for v in value:
        if isinstance(v, (list, tuple)):
            out.extend(v)
        else:
            out.append(v)
    return out


def _parse_rationale(value: Any, text: str, where: str) -> tuple[int, ...]:
    """A rationale cell -> sorted word indices.

    Accepted: word indices (a list, ``"1 2 3"`` or a JSON list string), evidence
    strings (:func:`evidence_to_rationale`), ERASER evidence spans (dicts with
    ``start_token`` / ``end_token``, possibly grouped in lists, as in ERASER's
    ``evidences``; see :func:`_offsets_to_rationale`). A string cell starting with
    ``[`` is read as JSON or else as a Python literal (``ast.literal_eval``, never
    ``eval``: e.g. a CSV export of a list of dicts with single quotes).
    """
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
                try:
                    value = ast.literal_eval(s)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    raise ValueError(f"{where}: cannot parse rationale {value[:200]!r} as JSON ({e}) "
                                     f"or as a Python literal") from None
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{where}: rationale {s[:200]!r} is not a list")
        else:
            parts = [p for p in re.split(r"[\s,]+", s) if p]
            if not all(_INT_RE.match(p) for p in parts):
                raise ValueError(f"{where}: rationale {value!r} is not a list of word indices")
            value = [int(p) for p in parts]
    value = _flatten_evidence(list(value))
    if value and all(isinstance(v, Mapping) for v in value):
        return tuple(sorted(_offsets_to_rationale(text, value, where)))
    if value and all(isinstance(v, str) for v in value):
        return evidence_to_rationale(text, value)
    n = len(word_tokenize(text))
    out = []
    for v in value:
        if not _is_int(v):
            raise ValueError(f"{where}: rationale entries must be word indices, evidence strings or evidence "
                             f"spans (start_token/end_token), got {str(v)[:200]!r}")
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
    where: Optional[str] = None,
    lines: Optional[Sequence[int]] = None,
) -> TextDataset:
    """Columns (dict of equal-length lists) -> TextDataset, applying filters and roles.

    ``where`` names the source in errors (default ``name``; the file path for local
    files); ``lines[i]`` is the file line of row ``i`` (errors then say "line N").
    """
    available = list(columns)
    at = (lambda i: f"line {lines[i]}") if lines is not None else (lambda i: f"row {i}")  # noqa: E731
    src = where or name
    for role, col in roles.items():
        if col is not None and col not in columns:
            raise ValueError(f"{src}: missing column {col!r} (for {role!r}); available columns: {available}")
    for col in {**keep, **filters}:
        if col not in columns:
            raise ValueError(f"{src}: missing column {col!r} (used as a filter); available columns: {available}")
    n = len(columns[roles["text"]])
    rows = [
        i
        for i in range(n)
        if all(_matches(columns[c][i], v) for c, v in {**keep, **filters}.items())
    ]
    text_col, pair_col = roles["text"], roles.get("text_pair")
    rows, problems, dropped = _text_checks(columns, rows, text_col, pair_col, drop_empty=drop_empty, at=at, src=src)
    if problems:
        raise ValueError(problems[0][1])
    if not rows:
        raise ValueError(f"{src}: empty dataset (no rows left after reading and filtering)")
    texts = [columns[text_col][i] for i in rows]
    labels = names = None
    if roles.get("label") is not None:
        raw = [columns[roles["label"]][i] for i in rows]
        if label_map is not None:
            unmapped = sorted({repr(v) for v in raw if v not in label_map})
            if unmapped:
                raise ValueError(f"{src}: labels {unmapped[:5]} have no entry in the spec's label_map")
            raw = [label_map[v] for v in raw]
        labels, names = _encode_labels(raw, label_names, src, [at(i) for i in rows])
    rationales = None
    if roles.get("rationale") is not None:
        rationales = [
            _parse_rationale(columns[roles["rationale"]][i], columns[text_col][i], f"{src} {at(i)}") for i in rows
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
        dropped_empty=dropped,
    )


def _text_checks(
    columns: Mapping[str, Sequence[Any]], rows: Iterable[int], text_col: str, pair_col: Optional[str], *,
    drop_empty: bool, at, src: str,
) -> tuple[list[int], list[tuple[int, str]], int]:
    """The per-row text checks of :func:`_build` and :func:`validate_table`: ``(kept rows, problems, dropped)``
    (a problem is ``(row, message)``).

    A text (or text pair) cell must be a string; an empty / whitespace-only one is a problem
    naming the line, or, with ``drop_empty``, the row is dropped (and counted).
    """
    kept: list[int] = []
    problems: list[tuple[int, str]] = []
    dropped = 0
    for i in rows:
        bad, empty = None, False
        for col in (text_col, pair_col):
            if col is None:
                continue
            v = columns[col][i]
            if _is_missing(v):
                bad = f"{src}: missing value in column {col!r} at {at(i)}"
            elif not isinstance(v, str):
                bad = f"{src}: column {col!r} must hold strings, got {type(v).__name__} at {at(i)}"
            elif not v.strip():
                if not drop_empty:
                    bad = (f"{src}: empty text in column {col!r} at {at(i)} (drop_empty: true drops such rows)")
                empty = True
            if bad:
                break
        if bad:
            problems.append((i, bad))
        elif empty:
            dropped += 1
        else:
            kept.append(i)
    return kept, problems, dropped


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


def utf8_problem(path: Path) -> Optional[str]:
    """``None`` if ``path`` is valid UTF-8, else a message naming the file, line, column and byte."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        return (f"{path}: line {line}, column {column}: byte 0x{data[err.start]:02x} is not valid UTF-8 "
                f"(re-save the file as UTF-8)")
    return None


def _read_file(path: Path) -> dict[str, list]:
    return _read_table(path)[0]


def _raise(line: int, message: str) -> None:
    raise ValueError(message)


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of the JSON readers: a key given twice in one object is an error."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _DuplicateKey(dup)
    return out


def _header_problem(header: Sequence[str], line: int, where: str) -> Optional[str]:
    """``None``, or the message naming the first duplicate column name of a csv/tsv header."""
    first: dict[str, int] = {}
    for k, h in enumerate(header):
        if h in first:
            return (f"{where}: line {line}: duplicate column {h!r} in the header (fields {first[h] + 1} and "
                    f"{k + 1}); rename one of them")
        first[h] = k
    return None


def _csv_rows(path: Path, problem, max_rows: Optional[int] = None):
    """``(header, rows)`` of a .csv / .tsv file: ``rows`` yields ``(line, fields)`` of every data row.

    A UTF-8 byte-order mark is dropped; blank lines are skipped; a row whose field count differs
    from the header's goes to ``problem(line, message)`` (which raises, or collects and the row is
    skipped). An empty file or a duplicate column name raises :class:`ValueError`.
    """
    f = path.open(newline="", encoding="utf-8-sig")
    where = str(path)
    if path.suffix.lower() == ".csv":
        reader = csv.reader(f)
    else:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        header = next(reader, None)
        header_line = 1
    except BaseException:
        f.close()
        raise
    if not header or not any(header):
        f.close()
        raise ValueError(f"{where}: empty file (no header row)")
    bad = _header_problem(header, header_line, where)
    if bad:
        f.close()
        raise ValueError(bad)

    def rows():
        with f:
            last, n, width = reader.line_num, 0, len(header)
            for r in reader:
                start, last = last + 1, reader.line_num
                if not r:
                    continue
                if len(r) != width:
                    problem(start, f"{where}: line {start} has {len(r)} fields but the header has {width}")
                    continue
                yield start, r
                n += 1
                if max_rows is not None and n >= max_rows:
                    return

    return header, rows()


def _jsonl_records(path: Path, problem, max_rows: Optional[int] = None):
    """``(line, record)`` of every non-blank line of a .jsonl file (a UTF-8 byte-order mark is dropped).

    Invalid JSON, a record that is not an object and a key given twice in one object go to
    ``problem(line, message)`` (which raises, or collects and the line is skipped).
    """
    where, n = str(path), 0
    with path.open(encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=_no_duplicate_keys)
            except _DuplicateKey as dup:
                problem(lineno, f"{where}: line {lineno}: duplicate key {str(dup)!r} in one JSON record")
                continue
            except json.JSONDecodeError as e:
                problem(lineno, f"{where}: invalid JSON on line {lineno}: {e}")
                continue
            if not isinstance(record, dict):
                problem(lineno, f"{where}: line {lineno}: expected one JSON object per record, got {type(record).__name__}")
                continue
            yield lineno, record
            n += 1
            if max_rows is not None and n >= max_rows:
                return


def _read_json(path: Path, max_rows: Optional[int] = None) -> dict[str, list]:
    where = str(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as dup:
        raise ValueError(f"{where}: duplicate key {str(dup)!r} in one JSON object") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: invalid JSON: {e}") from None
    if isinstance(obj, list):
        if not obj:
            raise ValueError(f"{where}: empty file (no JSON records)")
        return _records_to_columns(obj[:max_rows] if max_rows else obj, where)
    if isinstance(obj, dict) and all(isinstance(v, list) for v in obj.values()):
        if len({len(v) for v in obj.values()}) > 1:
            raise ValueError(f"{where}: JSON columns have different lengths")
        return {k: list(v)[:max_rows] if max_rows else list(v) for k, v in obj.items()}
    raise ValueError(f"{where}: JSON must be a list of records or an object of equal-length column lists")


def _read_table(path: Path, max_rows: Optional[int] = None) -> tuple[dict[str, list], Optional[list[int]]]:
    """Columns of a local file and the file line where each row starts (``None`` for .json/.parquet).

    ``max_rows`` stops after that many data rows (a dry run); text files are first
    checked to be UTF-8 (an error names line and column of the first bad byte); a
    UTF-8 byte-order mark (what spreadsheet programs write) is dropped. The first
    problem raises :class:`ValueError` (:func:`validate_table` lists them all).
    """
    ext = path.suffix.lower()
    where = str(path)
    if ext in (".csv", ".tsv", ".jsonl", ".json"):
        bad = utf8_problem(path)
        if bad:
            raise ValueError(bad)
    if ext in (".csv", ".tsv"):
        header, rows = _csv_rows(path, _raise, max_rows)
        body, lines = [], []
        for line, r in rows:
            body.append(r)
            lines.append(line)
        return {h: [r[k] for r in body] for k, h in enumerate(header)}, lines
    if ext == ".jsonl":
        records, lines = [], []
        for line, record in _jsonl_records(path, _raise, max_rows):
            records.append(record)
            lines.append(line)
        if not records:
            raise ValueError(f"{where}: empty file (no JSON records)")
        return _records_to_columns(records, where), lines
    if ext == ".json":
        return _read_json(path, max_rows), None
    if ext == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if max_rows is not None:
            table = table.slice(0, max_rows)
        return table.to_pydict(), None
    raise ValueError(f"{where}: unsupported file extension {ext!r}; supported: {list(_EXTENSIONS)}")


_ROLES = ("text", "text_pair", "label", "rationale")


def resolve_roles(columns: Optional[Mapping[str, Optional[str]]], has_label: bool) -> dict[str, Optional[str]]:
    """Role -> column of a local file (see :func:`xaicore.data.load_dataset`): ``text`` -> ``"text"``,
    ``label`` -> ``"label"`` when the file has such a column (``has_label``), overridden by ``columns``."""
    roles: dict[str, Optional[str]] = {"text": "text", "text_pair": None, "label": "label" if has_label else None,
                                       "rationale": None}
    if columns is not None:
        bad = sorted(set(columns) - set(_ROLES))
        if bad:
            raise ValueError(f"unknown column roles {bad}; roles are {list(_ROLES)}")
        roles.update(columns)
    if roles["text"] is None:
        raise ValueError("the 'text' role cannot be disabled")
    return roles


#: problems :func:`validate_table` lists per file (then a count of the rest)
MAX_PROBLEMS_PER_FILE = 10


@dataclass(frozen=True)
class TableCheck:
    """What :func:`validate_table` found in one file.

    Attributes:
        path: the file.
        problems: every problem, capped at ``max_problems`` lines plus one line counting the rest
            (empty: the file loads).
        rows: rows that load (after filters and ``drop_empty``; bad rows not counted).
        dropped_empty: rows ``drop_empty`` drops.
        labels: label -> number of rows (class names for string labels, ids for integer labels),
            ``None`` when the file is unlabeled.
        first_lines: label -> where it first occurs (``"line N"`` / ``"row N"``).
        columns: the file's columns (header, or every key of the records).
    """

    path: str
    problems: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    rows: int = 0
    dropped_empty: int = 0
    labels: Optional[Mapping[Any, int]] = None
    first_lines: Mapping[Any, str] = field(default_factory=lambda: _EMPTY)


def validate_table(
    path: Union[str, "os.PathLike[str]"],
    *,
    columns: Optional[Mapping[str, Optional[str]]] = None,
    label_names: Optional[Sequence[str]] = None,
    drop_empty: bool = False,
    filters: Optional[Mapping[str, Any]] = None,
    max_problems: int = MAX_PROBLEMS_PER_FILE,
    max_rows: Optional[int] = None,
    chunk_rows: int = 4096,
) -> TableCheck:
    """Check every line of a local file the way :func:`xaicore.data.load_dataset` reads it, streaming.

    The same readers (:func:`_csv_rows`, :func:`_jsonl_records`) and row checks (:func:`_text_checks`,
    :func:`_parse_rationale`, :func:`_encode_labels`) as the loader, so a file that validates loads, and
    the problems are the loader's messages: encoding, header (empty, duplicate column), field counts,
    invalid JSON / duplicate keys, missing columns, missing / empty texts (unless ``drop_empty``),
    missing / unknown labels, unparsable rationales. Rows are checked ``chunk_rows`` at a time; only the
    label column is kept for the whole file. Arguments as for :func:`xaicore.data.load_dataset`
    (``filters``: its ``**filters``); ``max_rows`` checks only the first rows (a dry run).
    """
    path = Path(path)
    where = str(path)
    ext = path.suffix.lower()
    if ext not in _EXTENSIONS:
        return TableCheck(where, (f"{where}: unsupported file extension {ext!r}; supported: {list(_EXTENSIONS)}",))
    if not path.is_file():
        return TableCheck(where, (f"file not found: {where}",))
    filters = dict(filters or {})
    found: list[str] = []
    n_bad = 0

    def problem(message: str) -> None:
        nonlocal n_bad
        n_bad += 1
        if len(found) < max_problems:
            found.append(message)

    pending: list[tuple[int, str]] = []  # reader problems of the current chunk, reported in line order with its rows

    def read_problem(line: int, message: str) -> None:
        pending.append((line, message))

    try:
        if ext in (".csv", ".tsv", ".jsonl", ".json"):
            bad = utf8_problem(path)
            if bad:
                raise ValueError(bad)
        if ext in (".csv", ".tsv"):
            header, body = _csv_rows(path, read_problem, max_rows)
            roles = resolve_roles(columns, "label" in header)
            keys: Optional[set] = set(header)
            records = ((line, dict(zip(header, r))) for line, r in body)
        elif ext == ".jsonl":
            roles = resolve_roles(columns, True)  # a label column is known only at the end
            keys = None
            records = _jsonl_records(path, read_problem, max_rows)
        else:
            table, _ = _read_table(path, max_rows)
            roles = resolve_roles(columns, "label" in table)
            keys = set(table)
            n = len(next(iter(table.values()), ()))
            records = ((None, {k: v[i] for k, v in table.items()}) for i in range(n))
        wanted = {c for c in roles.values() if c is not None} | set(filters)
        label_tentative = ext == ".jsonl" and (columns is None or "label" not in columns)
        if keys is not None:
            for role, col in roles.items():
                if col is not None and col not in keys:
                    raise ValueError(f"{where}: missing column {col!r} (for {role!r}); available columns: "
                                     f"{list(keys) if ext not in ('.csv', '.tsv') else header}")
            for col in filters:
                if col not in keys:
                    raise ValueError(f"{where}: missing column {col!r} (used as a filter); available columns: "
                                     f"{header if ext in ('.csv', '.tsv') else list(keys)}")
        text_col, pair_col = roles["text"], roles.get("text_pair")
        label_col, rationale_col = roles.get("label"), roles.get("rationale")
        seen: set = set()
        raw_labels: list = []
        label_locs: list[str] = []
        counts = {"rows": 0, "dropped": 0, "read": 0}

        def check(chunk: list[tuple[Optional[int], dict]]) -> None:
            base = counts["read"]
            cols = {c: [r.get(c) for _, r in chunk] for c in wanted}
            lines = [line for line, _ in chunk]

            def at(i: int) -> str:
                return f"line {lines[i]}" if lines[i] is not None else f"row {base + i}"

            rows = [i for i in range(len(chunk)) if all(_matches(cols[c][i], v) for c, v in filters.items())]
            kept, bad_rows, dropped = _text_checks(cols, rows, text_col, pair_col, drop_empty=drop_empty, at=at,
                                                   src=where)
            order = lambda i: lines[i] if lines[i] is not None else base + i  # noqa: E731
            bad = [(order(i), message) for i, message in bad_rows] + pending
            pending.clear()
            counts["dropped"] += dropped
            for i in kept:
                if rationale_col is not None:
                    try:
                        _parse_rationale(cols[rationale_col][i], cols[text_col][i], f"{where} {at(i)}")
                    except ValueError as err:
                        bad.append((order(i), str(err)))
                        continue
                if label_col is not None:
                    raw_labels.append(cols[label_col][i])
                    label_locs.append(at(i))
                counts["rows"] += 1
            counts["read"] += len(chunk)
            for _, message in sorted(bad, key=lambda b: b[0]):
                problem(message)

        chunk: list = []
        for line, record in records:
            if keys is None:
                seen.update(record)
            chunk.append((line, record))
            if len(chunk) >= chunk_rows:
                check(chunk)
                chunk = []
        check(chunk)
        if keys is None:  # jsonl: the columns are the keys of every record
            if not counts["read"] and not n_bad:
                raise ValueError(f"{where}: empty file (no JSON records)")
            if label_tentative and "label" not in seen:
                label_col = None
            for role, col in roles.items():
                if col is not None and col not in seen and not (role == "label" and label_col is None) and counts["read"]:
                    raise ValueError(f"{where}: missing column {col!r} (for {role!r}); available columns: "
                                     f"{sorted(seen)}")
    except ValueError as err:
        return TableCheck(where, (str(err),))
    labels: Optional[dict] = None
    first_lines: dict = {}
    if label_col is not None:
        present = [(v, loc) for v, loc in zip(raw_labels, label_locs)
                   if not (_is_missing(v) or (isinstance(v, str) and not v.strip()))]
        for v, loc in zip(raw_labels, label_locs):
            if _is_missing(v) or (isinstance(v, str) and not v.strip()):
                problem(f"{where}: missing label at {loc}")
        if present:
            try:
                ids, names = _encode_labels([v for v, _ in present], label_names, where, [loc for _, loc in present])
            except ValueError as err:
                problem(str(err))
            else:
                labels = {}
                for y, (_, loc) in zip(ids, present):
                    key = names[y] if names is not None else y
                    labels[key] = labels.get(key, 0) + 1
                    first_lines.setdefault(key, loc)
    if not counts["rows"] and not n_bad:
        problem(f"{where}: empty dataset (no rows left after reading and filtering)")
    if n_bad > len(found):
        found.append(f"{where}: ... and {n_bad - len(found)} more problems (the first {len(found)} are listed)")
    names_seen = tuple(header) if ext in (".csv", ".tsv") else tuple(sorted(keys if keys is not None else seen))
    return TableCheck(where, tuple(found), columns=names_seen, rows=counts["rows"], dropped_empty=counts["dropped"], labels=labels,
                      first_lines=MappingProxyType(first_lines))

