"""Whole-file validation of a local table (the preflight before a sweep): :func:`validate_table`.

It streams the file through the loader's readers (:mod:`xaicore.data.table_files`) and applies the loader's
row checks (:mod:`xaicore.data.tables`), so a file that validates loads, with the loader's messages.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Optional, Sequence, Union

from xaicore.data.table_files import EXTENSIONS, csv_rows, jsonl_records, read_table, utf8_problem
from xaicore.data.tables import encode_labels, is_missing, matches, parse_rationale, resolve_roles, text_checks
from xaicore.data.text_dataset import EMPTY_COLUMNS

__all__ = ["MAX_PROBLEMS_PER_FILE", "TableCheck", "validate_table"]

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
    first_lines: Mapping[Any, str] = field(default_factory=lambda: EMPTY_COLUMNS)


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
    """Check every line of a local file the way :func:`xaicore.data.loading.load_dataset` reads it, streaming.

    The same readers (:func:`csv_rows`, :func:`jsonl_records`) and row checks (:func:`text_checks`,
    :func:`parse_rationale`, :func:`encode_labels`) as the loader, so a file that validates loads, and
    the problems are the loader's messages: encoding, header (empty, duplicate column), field counts,
    invalid JSON / duplicate keys, missing columns, missing / empty texts (unless ``drop_empty``),
    missing / unknown labels, unparsable rationales. Rows are checked ``chunk_rows`` at a time; only the
    label column is kept for the whole file. Arguments as for :func:`xaicore.data.loading.load_dataset`
    (``filters``: its ``**filters``); ``max_rows`` checks only the first rows (a dry run).
    """
    path = Path(path)
    where = str(path)
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        return TableCheck(where, (f"{where}: unsupported file extension {ext!r}; supported: {list(EXTENSIONS)}",))
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
            header, body = csv_rows(path, read_problem, max_rows)
            roles = resolve_roles(columns, "label" in header)
            keys: Optional[set] = set(header)
            records = ((line, dict(zip(header, r))) for line, r in body)
        elif ext == ".jsonl":
            roles = resolve_roles(columns, True)  # a label column is known only at the end
            keys = None
            records = jsonl_records(path, read_problem, max_rows)
        else:
            table, _ = read_table(path, max_rows)
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

            rows = [i for i in range(len(chunk)) if all(matches(cols[c][i], v) for c, v in filters.items())]
            kept, bad_rows, dropped = text_checks(cols, rows, text_col, pair_col, drop_empty=drop_empty, at=at,
                                                   src=where)
            order = lambda i: lines[i] if lines[i] is not None else base + i  # noqa: E731
            bad = [(order(i), message) for i, message in bad_rows] + pending
            pending.clear()
            counts["dropped"] += dropped
            for i in kept:
                if rationale_col is not None:
                    try:
                        parse_rationale(cols[rationale_col][i], cols[text_col][i], f"{where} {at(i)}")
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
                   if not (is_missing(v) or (isinstance(v, str) and not v.strip()))]
        for v, loc in zip(raw_labels, label_locs):
            if is_missing(v) or (isinstance(v, str) and not v.strip()):
                problem(f"{where}: missing label at {loc}")
        if present:
            try:
                ids, names = encode_labels([v for v, _ in present], label_names, where, [loc for _, loc in present])
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

