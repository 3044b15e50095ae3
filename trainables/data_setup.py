"""Config-level data preparation shared by the trainables (train/valid/test + unlabeled pool),
and the preflight checks of those data sources (:func:`data_source_problems`,
:func:`unlabeled_source_problems`), which trainables' ``preflight`` hooks call.

One label map for every split: the classes are those of the training split; valid/test
rows with a label the training split lacks are an error naming the file and value.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from trainables.hub_checks import hub_dataset_problems
from xaicore.data import KNOWN_DATASETS, TextDataset, load_dataset, load_unlabeled_text
from xaicore.local_datasets import LOCAL_PREFIX, load_local_splits
from xaicore.sentences import sentence_dataset
from xaicore.synthetic import synthetic_splits

SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class Splits:
    train: TextDataset
    valid: TextDataset
    test: TextDataset


def _has_split(source: str, split: str) -> bool:
    spec = KNOWN_DATASETS.get(source)
    return spec is None or split in spec.splits


def _hold_out(data: TextDataset, fraction: float, seed: int) -> tuple[TextDataset, TextDataset]:
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
) -> Splits:
    """Load train/valid/test of ``source``.

    ``source`` is ``"synthetic"`` (the built-in planted-cue task, generated
    from ``seed``, train size ``synthetic_size``, dev/test a quarter each), a key
    of :data:`xaicore.data.KNOWN_DATASETS`, or a local path (use ``{split}``
    in it for one file per split; a single file without it is split into
    seeded disjoint train / valid / test with ``valid_fraction`` each for
    valid and test). When ``valid_split`` is ``None`` or the hub dataset has
    no such split, a seeded ``valid_fraction`` of train is held out.
    ``max_train_examples`` keeps a seeded random subset of train.
    ``seed`` draws every split and subset here (the trainables pass ``data_seed``).
    ``require_labels``: a training split without labels is an error that names the
    file's columns (a label column under another name would otherwise load unlabeled).
    ``local:<name>``: a recipe of :data:`xaicore.local_datasets.LOCAL_DATASETS` applied to files
    under ``data_dir`` (its own splits; ``columns`` and the split names are the recipe's).
    """
    if source.startswith(LOCAL_PREFIX):
        if data_dir is None:
            raise ValueError(f"dataset {source!r} needs data_dir (the folder of the local data, e.g. ../shared/data)")
        parts = load_local_splits(source, data_dir, seed=seed, valid_fraction=valid_fraction)
        train, valid, test = parts["train"], parts["valid"], parts["test"]
    elif source == SYNTHETIC:
        quarter = max(8, synthetic_size // 4)
        parts = synthetic_splits(seed, n_train=synthetic_size, n_dev=quarter, n_test=quarter)
        train, valid, test = parts["train"], parts["dev"], parts["test"]
    elif source not in KNOWN_DATASETS and "{split}" not in source:
        # one local file: seeded held-out valid and test fractions (never the same rows twice)
        data = load_dataset(source, columns=columns)
        if require_labels:
            _check_labeled(data, source, columns)
        valid, rest = _hold_out(data, valid_fraction, seed)
        test, train = _hold_out(rest, valid_fraction / (1 - valid_fraction), seed + 1)
    else:
        train = load_dataset(source, split=train_split, columns=columns)
        if require_labels:
            _check_labeled(train, source, columns)

        def load(split: str) -> TextDataset:
            # the training split's label map for every split (string labels; hub ClassLabel names)
            try:
                data = load_dataset(source, split=split, columns=columns, label_names=train.label_names)
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
        if valid_split is not None and _has_split(source, valid_split):
            valid = load(valid_split)
        else:
            valid, train = _hold_out(train, valid_fraction, seed)
    if max_train_examples is not None and len(train) > max_train_examples:
        order = list(range(len(train)))
        random.Random(seed + 1).shuffle(order)
        train = train.subset(sorted(order[:max_train_examples]))
    return Splits(train=train, valid=valid, test=test)


def load_unlabeled(
    source: str,
    *,
    seed: int = 0,
    size: int = 4000,
    columns: Optional[Mapping[str, Any]] = None,
    max_examples: Optional[int] = None,
    sentences: bool = False,
) -> TextDataset:
    """The unlabeled pool: ``"synthetic"`` (``size`` fresh synthetic texts, labels dropped), a ``.txt``
    file with one sentence per line, a known hub key (``wikitext``, ``lm1b``) or a data file (its
    ``train`` split when the path has ``{split}``; labels dropped).
    ``sentences``: split every text into sentences first (:func:`xaicore.sentences.split_sentences`),
    e.g. the IMDB training reviews as a pool of about 316,000 sentences.
    ``max_examples`` keeps a seeded random subset (the paper used 1% of One Billion Word)."""
    if source == SYNTHETIC:
        data = synthetic_splits(seed + 10_000, n_train=size, n_dev=8, n_test=8)["train"].without_labels()
    elif str(source).endswith(".txt"):
        data = load_unlabeled_text(source)
    else:
        data = load_dataset(source, split="train", columns=columns)
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


def _unlabeled_message(data: TextDataset, source: str, columns: Optional[Mapping[str, Any]]) -> str:
    cols = ["text"] + list(data.extras)
    if columns and columns.get("label") is None and "label" in (columns or {}):
        return f"{source}: the label role is disabled (columns: {{label: null}}) but training needs labels"
    return (f"{source}: no label column (the file has columns {cols}); name the label column in the "
            f"config, e.g. columns: {{label: <column>}}")


LOCAL_DATA_HINT = "config.dataset: /path/to/data/{split}.csv (one file per split; columns: {text: ..., label: ...})"


def data_source_problems(
    source: str,
    *,
    columns: Optional[Mapping[str, Any]] = None,
    train_split: str = "train",
    valid_split: Optional[str] = "validation",
    test_split: str = "test",
    require_labels: bool = True,
    what: str = "dataset",
    max_rows: int = 200,
    data_dir: Optional[str] = None,
) -> list[str]:
    """Dry-load every split :func:`load_splits` would read; ``[]`` if they look loadable.

    Local files: each split file exists (with ``{split}``, a missing validation file
    names the files there and the ``valid_split`` choices), is UTF-8 throughout, has a
    header with the columns the roles name and a first ``max_rows`` rows that parse;
    every split is labeled when ``require_labels`` (training and evaluation need labels). Hub datasets: in the local
    cache or the hub answers (:func:`trainables.hub_checks.hub_dataset_problems`).
    """
    if source == SYNTHETIC:
        return []
    if source in KNOWN_DATASETS:
        return hub_dataset_problems(source, KNOWN_DATASETS[source].hub_id, what=what, local_hint=LOCAL_DATA_HINT)
    if source.startswith(LOCAL_PREFIX):
        if data_dir is None:
            return [f"{what}: {source!r} needs data_dir (the folder of the local data, e.g. ../shared/data)"]
        try:
            load_local_splits(source, data_dir, max_rows=max_rows)
        except ValueError as err:
            return [f"{what}: {err}"]
        return []
    if "{split}" in source:
        wanted = [("train_split", train_split), ("test_split", test_split)]
        if valid_split is not None:
            wanted.insert(1, ("valid_split", valid_split))
    else:
        wanted = [("", None)]
    problems: list[str] = []
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
            data = load_dataset(str(path), columns=columns, max_rows=max_rows)
        except ValueError as err:
            problems.append(f"{what}: {err}")
            continue
        if require_labels and data.labels is None:  # training needs labels, evaluation too
            problems.append(f"{what}: {_unlabeled_message(data, str(path), columns)}")
    return problems


def unlabeled_source_problems(
    source: Optional[str], *, columns: Optional[Mapping[str, Any]] = None, what: str = "unlabeled", max_rows: int = 200
) -> list[str]:
    """Dry-load check of an unlabeled pool source (see :func:`load_unlabeled`)."""
    if source is None or source == SYNTHETIC:
        return []
    if source in KNOWN_DATASETS:
        return hub_dataset_problems(source, KNOWN_DATASETS[source].hub_id, what=what,
                                    local_hint=f"config.{what}: /path/to/sentences.txt (one sentence per line)")
    path = Path(source)
    if not path.is_file():
        return [f"{what}: no such file or known dataset {source!r}"]
    try:
        if source.endswith(".txt"):
            load_unlabeled_text(path)
        else:
            load_dataset(path, split="train", columns=columns, max_rows=max_rows)
    except ValueError as err:
        return [f"{what}: {err}"]
    return []


def subsample(data: TextDataset, n: Optional[int], seed: int) -> TextDataset:
    """A seeded random subset of ``n`` examples of ``data`` in file order (``data`` itself when ``n`` is None
    or >= its size). Files sorted by label (the local IMDB and 20News test splits, the hub's IMDB) make the
    first ``n`` examples one class; a random subset keeps both."""
    if n is None or len(data) <= n:
        return data
    order = np.random.default_rng([seed, 7]).permutation(len(data))[:n]
    return data.subset(sorted(order.tolist()))
