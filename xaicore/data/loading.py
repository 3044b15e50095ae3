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

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from xaicore.data.hub_datasets import KNOWN_DATASETS, HubDatasetSpec, load_hub_dataset
from xaicore.data.table_check import MAX_PROBLEMS_PER_FILE, TableCheck, validate_table
from xaicore.data.table_files import EXTENSIONS, read_table, utf8_problem
from xaicore.data.tables import build_dataset, evidence_to_rationale, resolve_roles
from xaicore.data.text_dataset import TextDataset

__all__ = [
    "TextDataset",
    "HubDatasetSpec",
    "KNOWN_DATASETS",
    "load_dataset",
    "load_unlabeled_text",
    "evidence_to_rationale",
    "utf8_problem",
    "validate_table",
    "TableCheck",
    "MAX_PROBLEMS_PER_FILE",
]


def load_dataset(
    source: Union[str, os.PathLike, HubDatasetSpec],
    /,
    *,
    split: Optional[str] = None,
    columns: Optional[Mapping[str, Optional[str]]] = None,
    label_names: Optional[Sequence[str]] = None,
    max_rows: Optional[int] = None,
    drop_empty: bool = False,
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
        max_rows: local files only: read at most this many data rows (a dry run
            that checks the encoding of the whole file, the header, the columns and
            the first rows).
        drop_empty: local files only: drop rows whose text (or text pair) is empty or
            whitespace (their number is the result's ``dropped_empty``); ``False``: such a
            row is an error naming its line.
        **filters: keep rows where ``column == value`` (or ``value`` contains
            the column's value, for a list / tuple / set), applied to raw
            column values before labels are mapped; for CSV/TSV strings,
            ``1`` matches ``"1"``. Columns named ``split``, ``columns`` or
            ``label_names`` / ``max_rows`` / ``drop_empty`` cannot be filtered this way.

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
        return load_hub_dataset(source, split=split, label_names=label_names, filters=filters)
    path_str = os.fspath(source)
    if "{split}" in path_str:
        if split is None:
            raise ValueError(f"path {path_str!r} has a '{{split}}' placeholder but no split was given")
        path_str = path_str.replace("{split}", split)
    path = Path(path_str)
    if path.suffix.lower() not in EXTENSIONS:
        if isinstance(source, str) and not path.suffix and not path.exists():
            raise ValueError(
                f"unknown dataset {path_str!r}: not a key of KNOWN_DATASETS {sorted(KNOWN_DATASETS)} "
                f"and not a file path with extension in {list(EXTENSIONS)}"
            )
        raise ValueError(f"{path_str}: unsupported file extension {path.suffix!r}; supported: {list(EXTENSIONS)}")
    if not path.is_file():
        raise ValueError(f"file not found: {path_str}")
    data, lines = read_table(path, max_rows=max_rows)
    roles = resolve_roles(columns, "label" in data)
    name = path.stem if split is None else f"{path.stem}:{split}"
    return build_dataset(data, roles, name=name, label_names=label_names, filters=filters, where=str(path), lines=lines,
                  drop_empty=drop_empty)


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
    bad = utf8_problem(p)
    if bad:
        raise ValueError(bad)
    with p.open(encoding="utf-8") as f:
        texts = tuple(s for s in (line.strip() for line in f) if s)
    if not texts:
        raise ValueError(f"{p}: empty dataset (no non-blank lines)")
    return TextDataset(texts=texts, labels=None, name=name or p.stem)
