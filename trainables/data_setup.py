"""Config-level data preparation shared by the trainables (train/valid/test + unlabeled pool),
and the preflight checks of those data sources (:func:`data_source_problems`,
:func:`unlabeled_source_problems`), which trainables' ``preflight`` hooks call.

One label map for every split: the classes are those of the training split; valid/test
rows with a label the training split lacks are an error naming the file and value.
"""
from __future__ import annotations

import functools
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from trainables.hub_checks import hub_dataset_problems
from trainables.protocol import DATA_COUNT_PREFIX
from xaicore.data.loading import KNOWN_DATASETS, TableCheck, TextDataset, load_dataset, load_unlabeled_text, validate_table
from xaicore.data.local_datasets import LOCAL_PREFIX, load_local_splits, local_dataset_spec, local_files
from xaicore.data.sentences import sentence_dataset
from xaicore.data.synthetic import synthetic_splits

SYNTHETIC = "synthetic"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Splits:
    """The three splits; ``dropped_empty``: file role (``train`` / ``valid`` / ``test``, ``all`` for one
    file that is split) -> rows ``drop_empty`` dropped from it (empty unless ``drop_empty``)."""

    train: TextDataset
    valid: TextDataset
    test: TextDataset
    dropped_empty: Mapping[str, int] = field(default_factory=dict)


def dropped_metrics(counts: Mapping[str, int]) -> dict[str, int]:
    """``{"data/dropped_empty.<split>": n}``: the rows ``drop_empty`` dropped, as trial metrics."""
    return {f"{DATA_COUNT_PREFIX}{k}": int(v) for k, v in counts.items()}


def log_dropped(counts: Mapping[str, int], source: str) -> None:
    """One log line per file ``drop_empty`` dropped rows from."""
    for role, n in counts.items():
        if n:
            logger.warning("drop_empty: dropped %d row(s) with an empty text from %s (%s)", n, source, role)


def _has_split(source: str, split: str) -> bool:
    spec = KNOWN_DATASETS.get(source)
    return spec is None or split in spec.splits


def hold_out(data: TextDataset, fraction: float, seed: int) -> tuple[TextDataset, TextDataset]:
    """Split off a seeded random ``fraction`` of ``data``: ``(held_out, rest)``, order preserved."""
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    n = min(len(data) - 1, max(1, int(round(fraction * len(data)))))
    return data.subset(sorted(order[:n])), data.subset(sorted(order[n:]))


def load_splits(
    source: str,
    *,
    columns: Optional[Mapping[str, Any]] = None,
    train_split: str = "train",
    valid_split: Optional[str] = "validation",
    test_split: str = "test",
    valid_fraction: float = 0.1,
    synthetic_size: int = 1000,
    seed: int = 0,
    max_train_examples: Optional[int] = None,
    require_labels: bool = True,
    data_dir: Optional[str] = None,
    drop_empty: bool = False,
) -> Splits:
    """Load train/valid/test of ``source``.

    ``source`` is ``"synthetic"`` (the built-in planted-cue task, generated
    from ``seed``, train size ``synthetic_size``, dev/test a quarter each), a key
    of :data:`xaicore.data.loading.KNOWN_DATASETS`, or a local path (use ``{split}``
    in it for one file per split; a single file without it is split into
    seeded disjoint train / valid / test with ``valid_fraction`` each for
    valid and test). When ``valid_split`` is ``None`` or the hub dataset has
    no such split, a seeded ``valid_fraction`` of train is held out.
    ``max_train_examples`` keeps a seeded random subset of train.
    ``seed`` draws every split and subset here (the trainables pass ``data_seed``).
    ``require_labels``: a training split without labels is an error that names the
    file's columns (a label column under another name would otherwise load unlabeled).
    ``local:<name>``: a recipe of :data:`xaicore.data.local_datasets.LOCAL_DATASETS` applied to files
    under ``data_dir`` (its own splits; ``columns`` and the split names are the recipe's).
    ``drop_empty``: rows with an empty text (or text pair) are dropped (``Splits.dropped_empty`` counts
    them per file, and a log line says so) instead of being an error naming the line.
    """
    dropped: dict[str, int] = {}
    if source.startswith(LOCAL_PREFIX):
        if data_dir is None:
            raise ValueError(f"dataset {source!r} needs data_dir (the folder of the local data, e.g. ../shared/data)")
        parts = load_local_splits(source, data_dir, seed=seed, valid_fraction=valid_fraction, drop_empty=drop_empty)
        train, valid, test = parts["train"], parts["valid"], parts["test"]
        if drop_empty:  # one count per file read (a part drawn from a file keeps its file's count)
            dropped = {role: parts["train" if role == "all" else role].dropped_empty
                       for role in local_files(local_dataset_spec(source), data_dir)}
    elif source == SYNTHETIC:
        quarter = max(8, synthetic_size // 4)
        parts = synthetic_splits(seed, n_train=synthetic_size, n_dev=quarter, n_test=quarter)
        train, valid, test = parts["train"], parts["dev"], parts["test"]
    elif source not in KNOWN_DATASETS and "{split}" not in source:
        # one local file: seeded held-out valid and test fractions (never the same rows twice)
        data = load_dataset(source, columns=columns, drop_empty=drop_empty)
        if drop_empty:
            dropped["all"] = data.dropped_empty
        if require_labels:
            _check_labeled(data, source, columns)
        valid, rest = hold_out(data, valid_fraction, seed)
        test, train = hold_out(rest, valid_fraction / (1 - valid_fraction), seed + 1)
    else:
        train = load_dataset(source, split=train_split, columns=columns, drop_empty=drop_empty)
        if drop_empty:
            dropped["train"] = train.dropped_empty
        if require_labels:
            _check_labeled(train, source, columns)

        def load(split: str) -> TextDataset:
            # the training split's label map for every split (string labels; hub ClassLabel names)
            try:
                data = load_dataset(source, split=split, columns=columns, label_names=train.label_names,
                                    drop_empty=drop_empty)
            except ValueError as err:
                if train.label_names is not None and "is not among the classes" in str(err):
                    raise ValueError(f"{err} (the classes of the training split {train_split!r}: every split "
                                     f"uses its label map)") from None
                raise
            if train.labels is not None and data.labels is not None and train.label_names is None and data.labels:
                n = train.num_classes
                if max(data.labels) >= n:
                    where = source.replace("{split}", split) if "{split}" in source else f"{source}:{split}"
                    raise ValueError(f"{where}: label {max(data.labels)} does not occur in the training split "
                                     f"(its labels are 0..{n - 1})")
            if require_labels and train.labels is not None and data.labels is None:
                where = source.replace("{split}", split) if "{split}" in source else f"{source}:{split}"
                _check_labeled(data, where, columns)
            return data

        test = load(test_split)
        if drop_empty:
            dropped["test"] = test.dropped_empty
        if valid_split is not None and _has_split(source, valid_split):
            valid = load(valid_split)
            if drop_empty:
                dropped["valid"] = valid.dropped_empty
        else:
            valid, train = hold_out(train, valid_fraction, seed)
    if max_train_examples is not None and len(train) > max_train_examples:
        order = list(range(len(train)))
        random.Random(seed + 1).shuffle(order)
        train = train.subset(sorted(order[:max_train_examples]))
    log_dropped(dropped, source)
    return Splits(train=train, valid=valid, test=test, dropped_empty=dropped)


def load_unlabeled(
    source: str,
    *,
    seed: int = 0,
    size: int = 4000,
    columns: Optional[Mapping[str, Any]] = None,
    max_examples: Optional[int] = None,
    sentences: bool = False,
    drop_empty: bool = False,
) -> TextDataset:
    """The unlabeled pool: ``"synthetic"`` (``size`` fresh synthetic texts, labels dropped), a ``.txt``
    file with one sentence per line, a known hub key (``wikitext``, ``lm1b``) or a data file (its
    ``train`` split when the path has ``{split}``; labels dropped).
    ``sentences``: split every text into sentences first (:func:`xaicore.data.sentences.split_sentences`),
    e.g. the IMDB training reviews as a pool of about 316,000 sentences.
    ``drop_empty``: a data file's rows with an empty text are dropped (a ``.txt`` file skips blank lines anyway).
    ``max_examples`` keeps a seeded random subset (the paper used 1% of One Billion Word)."""
    if source == SYNTHETIC:
        data = synthetic_splits(seed + 10_000, n_train=size, n_dev=8, n_test=8)["train"].without_labels()
    elif str(source).endswith(".txt"):
        data = load_unlabeled_text(source)
    else:
        data = load_dataset(source, split="train", columns=columns, drop_empty=drop_empty)
        if drop_empty:
            log_dropped({"train": data.dropped_empty}, str(source))
        data = data.without_labels() if data.labels is not None else data
    if sentences:
        data = sentence_dataset(data.texts, name=f"{data.name}:sentences")
    if max_examples is not None and len(data) > max_examples:
        order = list(range(len(data)))
        random.Random(seed + 2).shuffle(order)
        data = data.subset(sorted(order[:max_examples]))
    return data


def _check_labeled(data: TextDataset, source: str, columns: Optional[Mapping[str, Any]]) -> None:
    if data.labels is None:
        raise ValueError(_unlabeled_message(data, source, columns))


def _unlabeled_message(data: TextDataset | list[str], source: str, columns: Optional[Mapping[str, Any]]) -> str:
    cols = list(data) if isinstance(data, list) else ["text"] + list(data.extras)
    if columns and columns.get("label") is None and "label" in (columns or {}):
        return f"{source}: the label role is disabled (columns: {{label: null}}) but training needs labels"
    return (f"{source}: no label column (the file has columns {cols}); name the label column in the "
            f"config, e.g. columns: {{label: <column>}}")


LOCAL_DATA_HINT = "config.dataset: /path/to/data/{split}.csv (one file per split; columns: {text: ..., label: ...})"


@functools.lru_cache(maxsize=256)
def _cached_check(path: str, stamp: tuple, columns: Optional[tuple], label_names: Optional[tuple], drop_empty: bool,
                  filters: tuple, max_rows: Optional[int]) -> TableCheck:
    return validate_table(path, columns=dict(columns) if columns is not None else None, label_names=label_names,
                          drop_empty=drop_empty, filters=dict(filters), max_rows=max_rows)


def check_file(
    path: str | Path, *, columns: Optional[Mapping[str, Any]] = None, label_names=None, drop_empty: bool = False,
    filters: Optional[Mapping[str, Any]] = None, max_rows: Optional[int] = None,
) -> TableCheck:
    """:func:`xaicore.data.loading.validate_table` of one file, once per distinct file and options: the result is
    cached by path, modification time, size, columns and the other options, so a preflight over many
    search-space points reads each file once (a changed file is read again)."""
    st = Path(path).stat()
    freeze = lambda m: None if m is None else tuple(sorted((k, _hashable(v)) for k, v in m.items()))  # noqa: E731
    return _cached_check(str(path), (st.st_mtime_ns, st.st_size), freeze(columns),
                         None if label_names is None else tuple(label_names), bool(drop_empty),
                         freeze(filters) or (), max_rows)


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, (list, set, frozenset)) else v


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


def _held_out(n: int, fraction: float) -> int:
    """Rows :func:`hold_out` takes from ``n`` rows."""
    return min(n - 1, max(1, int(round(fraction * n)))) if n > 1 else 0


def split_problems(
    checks: Mapping[str, TableCheck], *, batch_size: Optional[int] = None, valid_fraction: float = 0.1,
    what: str = "dataset",
) -> list[str]:
    """Consistency of the splits a trial reads (``checks``: role ``train`` / ``valid`` / ``test``, or ``all``
    for one file that is split), from their :class:`~xaicore.data.loading.TableCheck`.

    Errors (the trial would fail, or train on nothing to learn): a valid/test label that the training split
    lacks (named with its file and first line), a training split with a single class. An empty split is
    already a problem of its file. A warning (logged once, the sweep still starts): a training split smaller
    than one batch (``batch_size``) -- it trains, on one short batch per epoch.
    """
    problems: list[str] = []
    train = checks.get("train") or checks.get("all")
    if train is None or train.problems or train.labels is None:
        return problems
    role = "train" if "train" in checks else "all"
    if len(train.labels) == 1:
        (only,) = train.labels
        problems.append(f"{what}: {train.path}: the training split has a single class (label {only!r} on all "
                        f"{train.rows} rows); a classifier needs at least two")
    for split in ("valid", "test"):
        other = checks.get(split)
        if other is None or other.problems or other.labels is None:
            continue
        absent = [y for y in other.labels if y not in train.labels]
        if absent:
            y = absent[0]
            more = f" (and {len(absent) - 1} more: {absent[1:6]!r})" if len(absent) > 1 else ""
            problems.append(f"{what}: {other.path}: label {y!r} at {other.first_lines.get(y, '?')} does not occur "
                            f"in the training split {train.path} (its labels: {sorted(train.labels, key=str)!r}){more}")
    n_train = train.rows
    if role == "all":
        n_train -= _held_out(n_train, valid_fraction)
        n_train -= _held_out(n_train, valid_fraction / (1 - valid_fraction))
    elif "valid" not in checks:
        n_train -= _held_out(n_train, valid_fraction)
    if batch_size is not None and 0 < n_train < batch_size:
        _warn_once(f"{what}: {train.path}: the training split has {n_train} rows, fewer than one batch "
                   f"(batch_size {batch_size}); each epoch is one short batch")
    return problems


def data_source_problems(
    source: str,
    *,
    columns: Optional[Mapping[str, Any]] = None,
    train_split: str = "train",
    valid_split: Optional[str] = "validation",
    test_split: str = "test",
    require_labels: bool = True,
    what: str = "dataset",
    max_rows: Optional[int] = None,
    data_dir: Optional[str] = None,
    drop_empty: bool = False,
    batch_size: Optional[int] = None,
    valid_fraction: float = 0.1,
) -> list[str]:
    """Check every split :func:`load_splits` would read; ``[]`` if they load.

    Local files: each split file exists (with ``{split}``, a missing validation file
    names the files there and the ``valid_split`` choices) and every line of it loads
    (:func:`check_file`: encoding, header, field counts, columns, labels, empty texts
    unless ``drop_empty``, rationales; up to 10 problems per file plus a count); every
    split is labeled when ``require_labels`` (training and evaluation need labels), and
    then the splits agree (:func:`split_problems`; ``batch_size``: the trial's).
    ``max_rows``: check only the first rows of each file (``None``: every line). Hub
    datasets: in the local cache or the hub answers
    (:func:`trainables.hub_checks.hub_dataset_problems`).
    """
    if source == SYNTHETIC:
        return []
    if source in KNOWN_DATASETS:
        return hub_dataset_problems(source, KNOWN_DATASETS[source].hub_id, what=what, local_hint=LOCAL_DATA_HINT)
    opts = dict(drop_empty=drop_empty, max_rows=max_rows)
    if source.startswith(LOCAL_PREFIX):
        if data_dir is None:
            return [f"{what}: {source!r} needs data_dir (the folder of the local data, e.g. ../shared/data)"]
        try:
            spec = local_dataset_spec(source)
        except ValueError as err:
            return [f"{what}: {err}"]
        files = local_files(spec, data_dir)
        problems = [f"{what}: {source}: no file {str(p)!r} (data_dir {str(data_dir)!r})"
                    for p in files.values() if not p.is_file()]
        if problems:
            return problems
        checks = {role: check_file(p, columns=dict(spec.columns) or None, label_names=spec.label_names,
                                   filters=spec.keep, **opts) for role, p in files.items()}
        problems = [f"{what}: {line}" for c in checks.values() for line in c.problems]
        return problems + split_problems(checks, batch_size=batch_size, valid_fraction=valid_fraction, what=what)
    if "{split}" in source:
        wanted = [("train_split", train_split), ("test_split", test_split)]
        if valid_split is not None:
            wanted.insert(1, ("valid_split", valid_split))
    else:
        wanted = [("", None)]
    roles = {"train_split": "train", "valid_split": "valid", "test_split": "test", "": "all"}
    problems: list[str] = []
    checks: dict[str, TableCheck] = {}
    for key, split in wanted:
        path = Path(source.replace("{split}", split) if split is not None else source)
        if not path.is_file():
            folder = path.parent
            found = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
            where = f" (files in {folder}: {', '.join(found[:12])})" if found else f" ({folder} has no files)"
            msg = f"{what}: no file {str(path)!r} for {key} {split!r}{where}" if key else f"{what}: no file {str(path)!r}"
            if key == "valid_split":
                msg += ("; set valid_split to the split's name in the config (e.g. valid_split: dev), or "
                        "valid_split: null to hold out valid_fraction of train")
            problems.append(msg)
            continue
        try:
            check = check_file(path, columns=columns, **opts)
        except ValueError as err:  # unknown column roles, a disabled text role
            problems.append(f"{what}: {err}")
            continue
        if check.problems:
            problems += [f"{what}: {line}" for line in check.problems]
            continue
        if require_labels and check.labels is None:  # training needs labels, evaluation too
            problems.append(f"{what}: {_unlabeled_message(list(check.columns), str(path), columns)}")
            continue
        checks[roles[key]] = check
    if require_labels:
        problems += split_problems(checks, batch_size=batch_size, valid_fraction=valid_fraction, what=what)
    return problems


def unlabeled_source_problems(
    source: Optional[str], *, columns: Optional[Mapping[str, Any]] = None, what: str = "unlabeled",
    max_rows: Optional[int] = None, drop_empty: bool = False,
) -> list[str]:
    """Check of an unlabeled pool source (see :func:`load_unlabeled`): every line of a data file
    (:func:`check_file`; ``max_rows``: only the first rows)."""
    if source is None or source == SYNTHETIC:
        return []
    if source in KNOWN_DATASETS:
        return hub_dataset_problems(source, KNOWN_DATASETS[source].hub_id, what=what,
                                    local_hint=f"config.{what}: /path/to/sentences.txt (one sentence per line)")
    path = Path(source)
    if not path.is_file():
        return [f"{what}: no such file or known dataset {source!r}"]
    if source.endswith(".txt"):
        try:
            load_unlabeled_text(path)
        except ValueError as err:
            return [f"{what}: {err}"]
        return []
    try:
        check = check_file(path, columns=columns, drop_empty=drop_empty, max_rows=max_rows)
    except ValueError as err:
        return [f"{what}: {err}"]
    return [f"{what}: {line}" for line in check.problems]


def subsample(data: TextDataset, n: Optional[int], seed: int) -> TextDataset:
    """A seeded random subset of ``n`` examples of ``data`` in file order (``data`` itself when ``n`` is None
    or >= its size). Files sorted by label (the local IMDB and 20News test splits, the hub's IMDB) make the
    first ``n`` examples one class; a random subset keeps both."""
    if n is None or len(data) <= n:
        return data
    order = np.random.default_rng([seed, 7]).permutation(len(data))[:n]
    return data.subset(sorted(order.tolist()))
