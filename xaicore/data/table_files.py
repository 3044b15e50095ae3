"""Local table files -> columns: the one reader of ``.csv`` / ``.tsv`` / ``.jsonl`` / ``.json`` / ``.parquet``.

:func:`read_table` reads a whole file (the loader); :func:`csv_rows` and :func:`jsonl_records` stream
the rows of a text file, handing each bad row to a ``problem(line, message)`` callback that raises
(the loader) or collects (:func:`xaicore.data.table_check.validate_table`), so both read the same way.
A UTF-8 byte-order mark is dropped; a duplicate column name (or JSON key) is an error.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["EXTENSIONS", "csv_rows", "jsonl_records", "read_table", "records_to_columns", "utf8_problem"]

EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def records_to_columns(records: list[Any], where: str) -> dict[str, list]:
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


def csv_rows(path: Path, problem, max_rows: Optional[int] = None):
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


def jsonl_records(path: Path, problem, max_rows: Optional[int] = None):
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
        return records_to_columns(obj[:max_rows] if max_rows else obj, where)
    if isinstance(obj, dict) and all(isinstance(v, list) for v in obj.values()):
        if len({len(v) for v in obj.values()}) > 1:
            raise ValueError(f"{where}: JSON columns have different lengths")
        return {k: list(v)[:max_rows] if max_rows else list(v) for k, v in obj.items()}
    raise ValueError(f"{where}: JSON must be a list of records or an object of equal-length column lists")


def read_table(path: Path, max_rows: Optional[int] = None) -> tuple[dict[str, list], Optional[list[int]]]:
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
        header, rows = csv_rows(path, _raise, max_rows)
        body, lines = [], []
        for line, r in rows:
            body.append(r)
            lines.append(line)
        return {h: [r[k] for r in body] for k, h in enumerate(header)}, lines
    if ext == ".jsonl":
        records, lines = [], []
        for line, record in jsonl_records(path, _raise, max_rows):
            records.append(record)
            lines.append(line)
        if not records:
            raise ValueError(f"{where}: empty file (no JSON records)")
        return records_to_columns(records, where), lines
    if ext == ".json":
        return _read_json(path, max_rows), None
    if ext == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if max_rows is not None:
            table = table.slice(0, max_rows)
        return table.to_pydict(), None
    raise ValueError(f"{where}: unsupported file extension {ext!r}; supported: {list(EXTENSIONS)}")
