"""Config-level data preparation shared by the trainables (train/valid/test + unlabeled pool)."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from xaicore.data import KNOWN_DATASETS, TextDataset, load_dataset, load_unlabeled_text
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
    """
    if source == SYNTHETIC:
        quarter = max(8, synthetic_size // 4)
        parts = synthetic_splits(seed, n_train=synthetic_size, n_dev=quarter, n_test=quarter)
        train, valid, test = parts["train"], parts["dev"], parts["test"]
    elif source not in KNOWN_DATASETS and "{split}" not in source:
        # one local file: seeded held-out valid and test fractions (never the same rows twice)
        data = load_dataset(source, columns=columns)
        valid, rest = _hold_out(data, valid_fraction, seed)
        test, train = _hold_out(rest, valid_fraction / (1 - valid_fraction), seed + 1)
    else:
        def load(split: str) -> TextDataset:
            return load_dataset(source, split=split, columns=columns)

        train, test = load(train_split), load(test_split)
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
) -> TextDataset:
    """The unlabeled pool: ``"synthetic"`` (``size`` fresh synthetic texts, labels dropped), a ``.txt``
    file with one sentence per line, a known hub key (``wikitext``, ``lm1b``) or a data file.
    ``max_examples`` keeps a seeded random subset (the paper used 1% of One Billion Word)."""
    if source == SYNTHETIC:
        data = synthetic_splits(seed + 10_000, n_train=size, n_dev=8, n_test=8)["train"].without_labels()
    elif str(source).endswith(".txt"):
        data = load_unlabeled_text(source)
    else:
        data = load_dataset(source, split="train", columns=columns)
        data = data.without_labels() if data.labels is not None else data
    if max_examples is not None and len(data) > max_examples:
        order = list(range(len(data)))
        random.Random(seed + 2).shuffle(order)
        data = data.subset(sorted(order[:max_examples]))
    return data
