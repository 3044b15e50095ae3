"""Column tables -> :class:`~xaicore.data.text_dataset.TextDataset`: roles, label encoding, rationales.

* :func:`xaicore.data.table_files.read_table` reads a local ``.csv`` / ``.tsv`` / ``.jsonl`` /
  ``.json`` / ``.parquet`` file into columns (dict of equal-length lists).
* :func:`xaicore.data.table_check.validate_table` checks every line of such a file with the
  same readers and the row checks here, listing every problem (the preflight before a sweep).
* :func:`build_dataset` applies column roles, row filters, label encoding and
  rationale parsing to such columns (used for local files and hub datasets).

Every problem with the input raises :class:`ValueError` naming it.
"""
from __future__ import annotations

import ast
import json
import math
import re
from typing import Any, Iterable, Mapping, Optional, Sequence

from xaicore.data.text_dataset import EMPTY_COLUMNS, TextDataset, is_int
from xaicore.data.vocab import word_tokenize

__all__ = ["build_dataset", "encode_labels", "evidence_to_rationale", "is_missing", "matches", "parse_rationale",
           "resolve_roles", "text_checks"]


def evidence_to_rationale(text: str, evidences: Iterable[str]) -> tuple[int, ...]:
    """Word-token indices of ``text`` covered by evidence strings.

    Both ``text`` and every evidence are tokenised with
    :func:`xaicore.data.vocab.word_tokenize`; every occurrence of an evidence's
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


def is_missing(v: Any) -> bool:
    """Whether a cell is empty: ``None`` or NaN (what a missing CSV/parquet value reads as)."""
    return v is None or (isinstance(v, float) and math.isnan(v))


_INT_RE = re.compile(r"^\s*-?\d+\s*$")


def encode_labels(
    raw: Sequence[Any], label_names: Optional[Sequence[str]], where: str, locs: Optional[Sequence[str]] = None
) -> tuple[tuple[int, ...], Optional[tuple[str, ...]]]:
    """Map raw labels to ids; see :func:`load_dataset` for the rules (``locs[i]``: where row ``i`` is)."""
    loc = (lambda i: locs[i]) if locs is not None else (lambda i: f"row {i}")  # noqa: E731
    for i, v in enumerate(raw):
        if is_missing(v) or (isinstance(v, str) and not v.strip()):
            raise ValueError(f"{where}: missing label at {loc(i)}")
    if all(isinstance(v, str) for v in raw) and all(_INT_RE.match(v) for v in raw):
        raw = [int(v) for v in raw]  # integer literals in a text file
    if all(is_int(v) for v in raw):
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
    bad = next((v for v in raw if not (is_int(v) or isinstance(v, str))), raw[0])
    kinds = sorted({type(v).__name__ for v in raw})
    raise ValueError(
        f"{where}: labels must be all ints or all strings, got types {kinds} (e.g. {bad!r})"
    )


def _offsets_to_rationale(text: str, spans: Sequence[Mapping[str, Any]], where: str) -> set[int]:
    """ERASER evidence spans -> word-token indices of ``text``.

    ERASER's ``start_token`` / ``end_token`` (end exclusive) index ``text.split()``
    (whitespace tokens of the pre-tokenised document); each whitespace token is mapped
    to the :func:`xaicore.data.vocab.word_tokenize` tokens it yields (``word_tokenize`` never
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
        if not (is_int(start) and is_int(end) and 0 <= int(start) <= int(end) <= len(pieces)):
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


def parse_rationale(value: Any, text: str, where: str) -> tuple[int, ...]:
    """A rationale cell -> sorted word indices.

    Accepted: word indices (a list, ``"1 2 3"`` or a JSON list string), evidence
    strings (:func:`evidence_to_rationale`), ERASER evidence spans (dicts with
    ``start_token`` / ``end_token``, possibly grouped in lists, as in ERASER's
    ``evidences``; see :func:`_offsets_to_rationale`). A string cell starting with
    ``[`` is read as JSON or else as a Python literal (``ast.literal_eval``, never
    ``eval``: e.g. a CSV export of a list of dicts with single quotes).
    """
    if is_missing(value):
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
        if not is_int(v):
            raise ValueError(f"{where}: rationale entries must be word indices, evidence strings or evidence "
                             f"spans (start_token/end_token), got {str(v)[:200]!r}")
        if not 0 <= int(v) < n:
            raise ValueError(f"{where}: rationale index {int(v)} out of range for a text of {n} word tokens")
        out.append(int(v))
    return tuple(out)


def matches(raw: Any, wanted: Any) -> bool:
    """Whether a cell passes a row filter: equal to ``wanted`` (or one of a list), ``"3"`` matching ``3``."""
    options = wanted if isinstance(wanted, (list, tuple, set, frozenset)) else (wanted,)
    return any(raw == w or (isinstance(raw, str) and not isinstance(w, str) and raw == str(w)) for w in options)


def build_dataset(
    columns: dict[str, list],
    roles: Mapping[str, Optional[str]],
    *,
    name: str,
    label_names: Optional[Sequence[str]],
    filters: Mapping[str, Any],
    keep: Mapping[str, tuple] = EMPTY_COLUMNS,
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
        if all(matches(columns[c][i], v) for c, v in {**keep, **filters}.items())
    ]
    text_col, pair_col = roles["text"], roles.get("text_pair")
    rows, problems, dropped = text_checks(columns, rows, text_col, pair_col, drop_empty=drop_empty, at=at, src=src)
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
        labels, names = encode_labels(raw, label_names, src, [at(i) for i in rows])
    rationales = None
    if roles.get("rationale") is not None:
        rationales = [
            parse_rationale(columns[roles["rationale"]][i], columns[text_col][i], f"{src} {at(i)}") for i in rows
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


def text_checks(
    columns: Mapping[str, Sequence[Any]], rows: Iterable[int], text_col: str, pair_col: Optional[str], *,
    drop_empty: bool, at, src: str,
) -> tuple[list[int], list[tuple[int, str]], int]:
    """The per-row text checks of :func:`build_dataset` and :func:`validate_table`: ``(kept rows, problems, dropped)``
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
            if is_missing(v):
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


_ROLES = ("text", "text_pair", "label", "rationale")


def resolve_roles(columns: Optional[Mapping[str, Optional[str]]], has_label: bool) -> dict[str, Optional[str]]:
    """Role -> column of a local file (see :func:`xaicore.data.loading.load_dataset`): ``text`` -> ``"text"``,
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
