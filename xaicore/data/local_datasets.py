"""Registered local datasets: recipes that build train / valid / test from files under a data folder.

A :class:`LocalDatasetSpec` names the file(s) relative to a ``data_dir`` (the project's
``../shared/data`` layout, see its PROVENANCE.md files), the column roles, a row filter and
how the three splits are made. :func:`load_local_splits` applies it; every split is a
:class:`~xaicore.data.text_dataset.TextDataset` with one label map.

Splits: a spec with ``"{split}"`` in its path reads one file per split (``valid=None``: a
seeded ``valid_fraction`` of train is held out); a single-file spec (``held_out``) draws a
seeded, label-stratified valid and test part from the filtered rows (the rest is train).
The same ``seed`` always gives the same split.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional, Union

from xaicore.data.loading import load_dataset
from xaicore.data.text_dataset import TextDataset

__all__ = ["LOCAL_PREFIX", "LocalDatasetSpec", "LOCAL_DATASETS", "local_dataset_spec", "local_files",
           "load_local_splits", "stratified_split"]

#: dataset values ``local:<name>`` refer to :data:`LOCAL_DATASETS`
LOCAL_PREFIX = "local:"
_NONE: Mapping = MappingProxyType({})


@dataclass(frozen=True)
class LocalDatasetSpec:
    """How to build one dataset's splits from files under a data folder.

    Attributes:
        path: relative to ``data_dir``; ``"{split}"`` placeholder for one file per split,
            else one file that is split (``held_out``).
        train / valid / test: the split names filled into ``path`` (``valid=None``: hold out
            ``valid_fraction`` of train).
        columns: role -> column (see :func:`xaicore.data.loading.load_dataset`).
        keep: row filter, column -> allowed raw values (applied before labels are encoded).
        label_names: class names (string labels map to their index here).
        held_out: single-file specs: (valid fraction, test fraction), drawn per label.
        note: provenance and conventions, shown in docs.
    """

    path: str
    train: str = "train"
    valid: Optional[str] = None
    test: str = "test"
    columns: Mapping[str, Optional[str]] = field(default_factory=lambda: _NONE)
    keep: Mapping[str, tuple] = field(default_factory=lambda: _NONE)
    label_names: Optional[tuple[str, ...]] = None
    held_out: Optional[tuple[float, float]] = None
    note: str = ""


LOCAL_DATASETS: Mapping[str, LocalDatasetSpec] = MappingProxyType({
    "sst": LocalDatasetSpec(
        path="sst/{split}.tsv", valid="dev",
        note="Jain & Wallace / Kim (2014) sentence-level SST binary split: train 6,920 / dev 872 / test 1,821."),
    "imdb": LocalDatasetSpec(
        path="imdb/{split}.tsv", columns=MappingProxyType({"text": "text", "label": "label"}),
        note="IMDB (Maas et al. 2011): all 25,000 train reviews (valid: a seeded 10% of them) and a fixed "
             "4,000-review test subsample (see imdb/PROVENANCE.md)."),
    "20news_baseball_hockey": LocalDatasetSpec(
        path="20news-baseball-hockey/{split}.jsonl",
        note="20 Newsgroups bydate, rec.sport.baseball (0) vs rec.sport.hockey (1): train 1,197 (valid: a "
             "seeded 10%) / test 796; raw posts with headers."),
    "agnews_world_business": LocalDatasetSpec(
        path="agnews/test.tsv", columns=MappingProxyType({"text": "text", "label": "label_name"}),
        keep=MappingProxyType({"label_name": ("World", "Business")}), label_names=("World", "Business"),
        held_out=(0.1, 0.2),
        note="AG News World (0) vs Business (1), built from the 7,600-article AG News test split (the only "
             "local copy; agnews/PROVENANCE.md): its 3,800 World/Business rows are split per label, seeded by "
             "the data seed, into train 70% / valid 10% / test 20% (2,660 / 380 / 760)."),
})


def local_dataset_spec(source: str) -> LocalDatasetSpec:
    """The spec of ``local:<name>``; a :class:`ValueError` lists the known names."""
    name = source[len(LOCAL_PREFIX):] if source.startswith(LOCAL_PREFIX) else source
    if name not in LOCAL_DATASETS:
        raise ValueError(f"unknown local dataset {source!r}; known: "
                         + ", ".join(LOCAL_PREFIX + k for k in LOCAL_DATASETS))
    return LOCAL_DATASETS[name]


def local_files(spec: LocalDatasetSpec, data_dir: Union[str, Path]) -> dict[str, Path]:
    """role (train / valid / test) -> file the spec reads (one file for a single-file spec)."""
    root = Path(data_dir)
    if "{split}" not in spec.path:
        return {"all": root / spec.path}
    roles = {"train": spec.train, "valid": spec.valid, "test": spec.test}
    return {role: root / spec.path.replace("{split}", s) for role, s in roles.items() if s is not None}


def stratified_split(labels: tuple[int, ...], fractions: tuple[float, ...], seed: int) -> list[list[int]]:
    """Seeded per-label split of ``range(len(labels))``: one index list per fraction, then the rest.

    Within each label the indices are shuffled with ``random.Random(seed)`` and the first
    ``round(f * n_label)`` go to each part in turn; every list is sorted (file order kept).
    """
    rng = random.Random(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for label in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == label]
        rng.shuffle(idx)
        start = 0
        for k, f in enumerate(fractions):
            n = int(round(f * len(idx)))
            parts[k] += idx[start:start + n]
            start += n
        parts[-1] += idx[start:]
    return [sorted(p) for p in parts]


def load_local_splits(
    source: str, data_dir: Union[str, Path], *, seed: int = 0, valid_fraction: float = 0.1,
    max_rows: Optional[int] = None, drop_empty: bool = False,
) -> dict[str, TextDataset]:
    """``{"train", "valid", "test"}`` of the registered local dataset ``source`` (``local:<name>``).

    Args:
        source: ``local:<name>`` (or ``<name>``), a key of :data:`LOCAL_DATASETS`.
        data_dir: the folder the spec's paths are relative to (e.g. ``../shared/data``).
        seed: draws the held-out parts (the trainables pass ``data_seed``).
        valid_fraction: for ``{split}`` specs without a validation file.
        max_rows: read at most this many rows per file (a dry run; splits may then be tiny).
        drop_empty: drop rows with an empty text (each part's ``dropped_empty`` counts those of its file).
    """
    spec = local_dataset_spec(source)
    files = local_files(spec, data_dir)
    for path in files.values():
        if not path.is_file():
            raise ValueError(f"{source}: no file {str(path)!r} (data_dir {str(data_dir)!r})")
    kw = dict(columns=dict(spec.columns) or None, label_names=spec.label_names, max_rows=max_rows,
              drop_empty=drop_empty, **spec.keep)
    if "all" in files:
        data = load_dataset(files["all"], **kw)
        if data.labels is None:
            raise ValueError(f"{source}: {files['all']} has no labels")
        valid_idx, test_idx, train_idx = stratified_split(data.labels, spec.held_out or (0.1, 0.1), seed)
        return {"train": data.subset(train_idx, name=f"{source}:train"),
                "valid": data.subset(valid_idx, name=f"{source}:valid"),
                "test": data.subset(test_idx, name=f"{source}:test")}
    train = load_dataset(files["train"], **kw)
    kw["label_names"] = train.label_names
    test = load_dataset(files["test"], **kw)
    if "valid" in files:
        valid = load_dataset(files["valid"], **kw)
    else:
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        n = min(len(train) - 1, max(1, int(round(valid_fraction * len(train)))))
        valid, train = train.subset(sorted(order[:n])), train.subset(sorted(order[n:]))
    return {"train": train, "valid": valid, "test": test}
