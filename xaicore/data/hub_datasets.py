"""Hugging Face hub datasets: the :class:`HubDatasetSpec` registry and its loader.

Loading needs network or a warm ``datasets`` cache.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Optional, Sequence, Union

from xaicore.data.tables import build_dataset
from xaicore.data.text_dataset import EMPTY_COLUMNS, TextDataset

__all__ = ["HubDatasetSpec", "KNOWN_DATASETS", "load_hub_dataset"]


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
    keep: Mapping[str, tuple] = field(default_factory=lambda: EMPTY_COLUMNS)
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


def load_hub_dataset(
    source: Union[str, HubDatasetSpec], *, split: Optional[str], label_names: Optional[Sequence[str]], filters: Mapping[str, Any]
) -> TextDataset:
    """Split ``split`` of a Hugging Face hub dataset (a :data:`KNOWN_DATASETS` key or a spec) as a
    :class:`TextDataset` (via :func:`xaicore.data.tables.build_dataset`); ``label_names`` overrides the spec's."""
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
    return build_dataset(
        data,
        roles,
        name=f"{key}:{split}",
        label_names=names,
        filters=filters,
        keep=spec.keep,
        label_map=spec.label_map,
        drop_empty=spec.drop_empty,
    )

