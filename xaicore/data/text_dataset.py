"""The immutable text-classification dataset container, :class:`TextDataset`."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional

__all__ = ["EMPTY_COLUMNS", "TextDataset", "is_int"]

#: the empty read-only ``{column: values}`` mapping: the default of every immutable mapping field
#: (``TextDataset.extras``, a hub spec's ``keep``), shared, never mutated
EMPTY_COLUMNS: Mapping[str, tuple] = MappingProxyType({})


def is_int(v: Any) -> bool:
    """Whether ``v`` is an integer (any :class:`numbers.Integral`) and not a ``bool``: a valid class id type."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


@dataclass(frozen=True)
class TextDataset:
    """An immutable text-classification dataset.

    Attributes:
        texts: ``N`` first texts.
        labels: ``N`` class ids in ``[0, num_classes)``, or ``None`` (unlabeled).
        text_pairs: ``N`` second texts (sentence-pair tasks) or ``None``.
        rationales: per example, sorted indices of :func:`xaicore.data.vocab.word_tokenize`
            tokens of the first text that are human / planted evidence (an
            empty tuple when an example has none), or ``None`` when unknown.
        extras: other columns, each a tuple of ``N`` values.
        label_names: name of each class id, or ``None``.
        name: a human-readable identifier (e.g. ``"sst2:train"``).
        dropped_empty: rows of the source file left out for an empty text (``drop_empty``);
            a subset keeps the count of the file it was drawn from.
    """

    texts: tuple[str, ...]
    labels: Optional[tuple[int, ...]] = None
    text_pairs: Optional[tuple[str, ...]] = None
    rationales: Optional[tuple[tuple[int, ...], ...]] = None
    extras: Mapping[str, tuple] = field(default_factory=lambda: EMPTY_COLUMNS)
    label_names: Optional[tuple[str, ...]] = None
    name: str = "dataset"
    dropped_empty: int = 0

    def __post_init__(self) -> None:
        n = len(self.texts)
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("texts", tuple(self.texts))
        if any(not isinstance(t, str) for t in self.texts):
            raise ValueError(f"{self.name}: every text must be a str")
        if self.text_pairs is not None:
            set_("text_pairs", tuple(self.text_pairs))
            if len(self.text_pairs) != n or any(not isinstance(t, str) for t in self.text_pairs):
                raise ValueError(f"{self.name}: text_pairs must be {n} strings")
        if self.labels is not None:
            labels = tuple(self.labels)
            if len(labels) != n:
                raise ValueError(f"{self.name}: {len(labels)} labels for {n} texts")
            if any(not is_int(y) or y < 0 for y in labels):
                raise ValueError(f"{self.name}: labels must be non-negative ints")
            labels = tuple(int(y) for y in labels)
            if self.label_names is not None and labels and max(labels) >= len(self.label_names):
                raise ValueError(
                    f"{self.name}: label {max(labels)} out of range for {len(self.label_names)} label_names"
                )
            set_("labels", labels)
        if self.label_names is not None:
            set_("label_names", tuple(str(x) for x in self.label_names))
        if self.rationales is not None:
            rats = tuple(tuple(sorted({int(i) for i in r})) for r in self.rationales)
            if len(rats) != n:
                raise ValueError(f"{self.name}: {len(rats)} rationales for {n} texts")
            set_("rationales", rats)
        extras = {}
        for key, col in dict(self.extras).items():
            col = tuple(col)
            if len(col) != n:
                raise ValueError(f"{self.name}: extra column {key!r} has {len(col)} values for {n} texts")
            extras[key] = col
        set_("extras", MappingProxyType(extras))

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Example ``i`` as a dict (``text``, ``text_pair``, ``label``, ``rationale`` and extras)."""
        return {
            "text": self.texts[i],
            "text_pair": None if self.text_pairs is None else self.text_pairs[i],
            "label": None if self.labels is None else self.labels[i],
            "rationale": None if self.rationales is None else self.rationales[i],
            **{k: v[i] for k, v in self.extras.items()},
        }

    @property
    def is_labeled(self) -> bool:
        return self.labels is not None

    @property
    def num_classes(self) -> int:
        """``len(label_names)`` if known, else ``max(labels) + 1``; ValueError if unlabeled."""
        if self.label_names is not None:
            return len(self.label_names)
        if self.labels is None:
            raise ValueError(f"{self.name} is unlabeled: it has no classes")
        return max(self.labels, default=-1) + 1

    def subset(self, indices: Iterable[int], *, name: Optional[str] = None) -> "TextDataset":
        """A new dataset with the examples at ``indices`` (in that order; repeats allowed).

        Args:
            indices: positions into this dataset.
            name: name of the result (default: this dataset's name).
        """
        idx = [int(i) for i in indices]
        pick = lambda col: None if col is None else tuple(col[i] for i in idx)  # noqa: E731
        return TextDataset(
            texts=pick(self.texts),
            labels=pick(self.labels),
            text_pairs=pick(self.text_pairs),
            rationales=pick(self.rationales),
            extras={k: pick(v) for k, v in self.extras.items()},
            label_names=self.label_names,
            name=self.name if name is None else name,
            dropped_empty=self.dropped_empty,
        )

    def without_labels(self) -> "TextDataset":
        """The same texts with ``labels=None`` (e.g. to reuse a train set as an unlabeled pool)."""
        return replace(self, labels=None)

