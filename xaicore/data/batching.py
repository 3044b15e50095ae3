"""Deterministic mini-batch iteration over :class:`TextDataset` s.

Randomness: epoch ``e`` of a run with seed ``s`` uses
``numpy.random.default_rng([s, e])`` (and ``[s, e, 1]`` for the unlabeled
stream of :class:`SemiSupervisedBatches`), so an epoch's order depends only on
``(seed, epoch)``, never on global RNG state or on earlier epochs.

Tokenise once: :func:`encode_dataset` tokenises a split up front into an
:class:`EncodedDataset`; :func:`batches`, :func:`eval_batches` and
:class:`SemiSupervisedBatches` over it only pad and collate per batch (and bucket by
token length). Over a plain :class:`TextDataset` they tokenise each batch as before.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from xaicore.data.loading import TextDataset
from xaicore.types import Batch
from xaicore.data.encoded import EncodedExample, collate_encoded, encode_examples
from xaicore.data.vocab import Encoder

__all__ = ["batch_indices", "collate_indices", "batches", "SemiSupervisedBatches", "EncodedDataset",
           "encode_dataset", "eval_batches", "pad_counts"]


@dataclass(frozen=True)
class EncodedDataset:
    """A :class:`TextDataset` tokenised once (:func:`encode_dataset`): one unpadded
    :class:`~xaicore.data.encoded.EncodedExample` per example, plus the labels.

    Attributes:
        examples: the encoded examples, in dataset order.
        labels: class ids, or ``None``.
        name: the dataset's name.
    """

    examples: tuple[EncodedExample, ...]
    labels: Optional[tuple[int, ...]] = None
    name: str = ""

    def __len__(self) -> int:
        return len(self.examples)

    @cached_property
    def lengths(self) -> np.ndarray:
        """Token count of every example (special tokens included): the bucketing key."""
        return np.asarray([len(e) for e in self.examples], dtype=np.int64)


Data = Union[TextDataset, EncodedDataset]


def encode_dataset(dataset: TextDataset, encoder: Encoder) -> EncodedDataset:
    """Tokenise every example of ``dataset`` once (:func:`xaicore.data.encoded.encode_examples`: texts, pairs,
    rationales); batches of the result equal :func:`collate_indices` batches of the same positions."""
    rows = encode_examples(encoder, dataset.texts, text_pairs=dataset.text_pairs, rationales=dataset.rationales)
    labels = None if dataset.labels is None else tuple(int(x) for x in dataset.labels)
    return EncodedDataset(tuple(rows), labels, dataset.name)


def _collate(data: Data, encoder: Encoder, idx: Sequence[int], *, with_labels: bool = True,
             pad_multiple: Optional[int] = None) -> Batch:
    if not isinstance(data, EncodedDataset):
        if pad_multiple is not None:
            raise ValueError("pad_multiple needs a tokenised dataset: pass encode_dataset(dataset, encoder)")
        return collate_indices(data, encoder, idx, with_labels=with_labels)
    idx = [int(i) for i in idx]
    labels = [data.labels[i] for i in idx] if with_labels and data.labels is not None else None
    return collate_encoded(encoder, [data.examples[i] for i in idx], labels=labels, index=idx,
                           pad_multiple=pad_multiple)


def pad_counts(batch: Batch) -> tuple[int, int]:
    """``(real tokens, padded positions)`` of ``batch``: ``attention_mask`` sum and size."""
    mask = batch.attention_mask
    return int(mask.sum()), int(mask.numel())


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def batch_indices(
    n: int,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    epoch: int = 0,
    drop_last: bool = False,
    lengths: Optional[Sequence[int]] = None,
    bucket_pool: Optional[int] = None,
) -> list[np.ndarray]:
    """Split ``range(n)`` into batches of dataset positions.

    Without bucketing: a permutation (``shuffle``) or ``0..n-1`` cut into
    consecutive chunks of ``batch_size``. With ``bucket_pool=k``: the order is
    cut into pools of ``k * batch_size`` examples, each pool is stably sorted
    by ``lengths`` and cut into batches, and (if ``shuffle``) the batch order
    is permuted, so batches hold examples of similar length.

    Args:
        n: dataset size.
        batch_size: examples per batch (>= 1).
        shuffle: permute examples (and batches, with bucketing).
        seed: non-negative int; with ``epoch`` it fixes the order.
        epoch: epoch number (>= 0).
        drop_last: drop the (single) batch smaller than ``batch_size``.
        lengths: per-example lengths, required with ``bucket_pool``.
        bucket_pool: number of batches per length-sorting pool, or ``None``.

    Returns:
        List of 1-D int64 arrays; each position appears exactly once (except
        those dropped by ``drop_last``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    _check_seed(seed)
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(n) if shuffle else np.arange(n)
    if bucket_pool is None:
        out = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    else:
        if bucket_pool < 1:
            raise ValueError(f"bucket_pool must be >= 1, got {bucket_pool}")
        if lengths is None or len(lengths) != n:
            raise ValueError("bucket_pool needs one length per example")
        lens = np.asarray(lengths)
        pool = bucket_pool * batch_size
        out = []
        for start in range(0, n, pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(lens[chunk], kind="stable")]
            out.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    if drop_last:
        out = [b for b in out if len(b) == batch_size]
    if shuffle and bucket_pool is not None:
        out = [out[i] for i in rng.permutation(len(out))]
    return [np.asarray(b, dtype=np.int64) for b in out]


def collate_indices(dataset: TextDataset, encoder: Encoder, idx: Sequence[int], *, with_labels: bool = True) -> Batch:
    """Encode the examples of ``dataset`` at positions ``idx`` into one :class:`Batch`.

    Args:
        dataset: the dataset.
        encoder: any :class:`~xaicore.data.vocab.Encoder`.
        idx: dataset positions (``index`` of the batch).
        with_labels: pass the dataset's labels (if any); ``False`` gives
            ``labels=None``.
    """
    idx = [int(i) for i in idx]
    pick = lambda col: None if col is None else [col[i] for i in idx]  # noqa: E731
    return encoder.collate(
        pick(dataset.texts),
        text_pairs=pick(dataset.text_pairs),
        labels=pick(dataset.labels) if with_labels else None,
        rationales=pick(dataset.rationales),
        index=idx,
    )


def _lengths(dataset: TextDataset) -> list[int]:
    pairs = dataset.text_pairs or ("",) * len(dataset)
    return [len(t) + len(p) for t, p in zip(dataset.texts, pairs)]


def batches(
    dataset: Data,
    encoder: Encoder,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    epoch: int = 0,
    drop_last: bool = False,
    bucket_pool: Optional[int] = None,
    pad_multiple: Optional[int] = None,
) -> Iterator[Batch]:
    """Iterate over padded batches of ``dataset``.

    Args:
        dataset: the dataset; its labels (or ``None``), pairs, rationales and
            positions (``Batch.index``) are passed to the encoder.
        encoder: builds each :class:`Batch`.
        batch_size, shuffle, seed, epoch, drop_last, bucket_pool: see
            :func:`batch_indices`; bucketing sorts by token length for an
            :class:`EncodedDataset`, by character length of the text (plus pair)
            for a :class:`TextDataset`.
        pad_multiple: pad each batch to a multiple of this many positions
            (:func:`xaicore.data.encoded.padded_width`; compiled runs); ``None``: to
            its longest example. Needs an :class:`EncodedDataset`.

    Yields:
        :class:`Batch` es of at most ``batch_size`` examples.
    """
    plan = batch_indices(
        len(dataset),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        epoch=epoch,
        drop_last=drop_last,
        lengths=_data_lengths(dataset) if bucket_pool is not None else None,
        bucket_pool=bucket_pool,
    )
    for idx in plan:
        yield _collate(dataset, encoder, idx, pad_multiple=pad_multiple)


def _data_lengths(data: Data):
    return data.lengths if isinstance(data, EncodedDataset) else _lengths(data)


def eval_batches(dataset: Data, encoder: Encoder, *, batch_size: int, sort: bool = True,
                 pad_multiple: Optional[int] = None) -> list[Batch]:
    """Evaluation batches: with ``sort``, the examples ordered by length (stable) and cut into
    batches (least padding); else in dataset order. Every batch carries ``index`` (dataset
    positions): :func:`xaicore.metrics.predict` puts its rows back in dataset order by it.
    ``pad_multiple``: as in :func:`batches`."""
    n = len(dataset)
    pool = max(1, math.ceil(n / batch_size)) if sort else None
    return list(batches(dataset, encoder, batch_size=batch_size, shuffle=False, seed=0, bucket_pool=pool,
                        pad_multiple=pad_multiple))


class SemiSupervisedBatches:
    """Pairs each labeled batch with an unlabeled batch ``ratio`` times its size.

    For every labeled batch of size ``B`` (epoch order as in :func:`batches`),
    the unlabeled batch has ``round(ratio * B)`` examples (Python's ``round``,
    half to even) drawn without replacement from a shuffled unlabeled stream;
    when the pool is exhausted it is reshuffled and the stream continues, so
    a batch may straddle two passes. ``ratio`` is the paper's
    ``r = N_ul / N_l``. With ``ratio == 0`` (or when ``round`` gives 0) the
    second element is ``None`` (purely supervised step). Unlabeled batches
    always have ``labels=None``. The stream restarts for every epoch from
    ``default_rng([seed, epoch, 1])``.

    Iterate with :meth:`iter_epoch` (alias :meth:`epoch`) or,
    DataLoader-style, call :meth:`set_epoch` and iterate the object.

    Args:
        labeled: labeled dataset.
        unlabeled: unlabeled pool (its labels, if any, are ignored); may be
            ``None`` only when ``ratio == 0``.
        encoder: builds the batches.
        batch_size: labeled batch size.
        ratio: ``>= 0`` unlabeled-to-labeled ratio.
        seed: non-negative int.
        shuffle, drop_last, bucket_pool: for the labeled batches, see
            :func:`batch_indices`; with ``bucket_pool=k`` the unlabeled stream is
            length-grouped too: each pass is cut into pools of ``k`` unlabeled
            batches, each pool sorted by length and cut into batches whose order
            within the pool is shuffled (same seeds; ``None``: the plain stream).
        pad_multiple: labeled and unlabeled batches padded to a multiple of this
            (see :func:`batches`); ``None``: to their longest example.
    """

    def __init__(
        self,
        labeled: Data,
        unlabeled: Optional[Data],
        encoder: Encoder,
        *,
        batch_size: int,
        ratio: float,
        seed: int,
        shuffle: bool = True,
        drop_last: bool = False,
        bucket_pool: Optional[int] = None,
        pad_multiple: Optional[int] = None,
    ) -> None:
        if not isinstance(ratio, numbers.Real) or math.isnan(ratio) or ratio < 0:
            raise ValueError(f"ratio must be a number >= 0, got {ratio!r}")
        if labeled.labels is None:
            raise ValueError(f"labeled dataset {labeled.name!r} has no labels")
        if ratio > 0 and (unlabeled is None or len(unlabeled) == 0):
            raise ValueError("ratio > 0 needs a non-empty unlabeled dataset")
        if bucket_pool is not None and bucket_pool < 1:
            raise ValueError(f"bucket_pool must be >= 1, got {bucket_pool}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        _check_seed(seed)
        self.labeled, self.unlabeled, self.encoder = labeled, unlabeled, encoder
        self.batch_size, self.ratio, self.seed = batch_size, float(ratio), seed
        self.shuffle, self.drop_last, self.bucket_pool = shuffle, drop_last, bucket_pool
        self.pad_multiple = pad_multiple
        self._epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch used by ``iter(self)``."""
        self._epoch = int(epoch)

    def unlabeled_size(self, labeled_size: int) -> int:
        """Number of unlabeled examples paired with a labeled batch of ``labeled_size``."""
        return round(self.ratio * labeled_size)

    def __len__(self) -> int:
        n = len(self.labeled)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Batch, Optional[Batch]]]:
        return self.iter_epoch(self._epoch)

    def _stream(self, epoch: int) -> Iterator[int]:
        rng = np.random.default_rng([int(self.seed), int(epoch), 1])
        k = max(1, self.unlabeled_size(self.batch_size))
        while True:
            perm = rng.permutation(len(self.unlabeled))
            if self.bucket_pool is None:
                yield from perm.tolist()
                continue
            lens = np.asarray(_data_lengths(self.unlabeled))
            pool = self.bucket_pool * k
            for start in range(0, len(perm), pool):
                chunk = perm[start : start + pool]
                chunk = chunk[np.argsort(lens[chunk], kind="stable")]
                parts = [chunk[i : i + k] for i in range(0, len(chunk), k)]
                for j in rng.permutation(len(parts)):
                    yield from parts[j].tolist()

    def iter_epoch(self, epoch: int) -> Iterator[tuple[Batch, Optional[Batch]]]:
        """Yield ``(labeled_batch, unlabeled_batch_or_None)`` for ``epoch``."""
        lab = batches(
            self.labeled,
            self.encoder,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=epoch,
            drop_last=self.drop_last,
            bucket_pool=self.bucket_pool,
            pad_multiple=self.pad_multiple,
        )
        stream = self._stream(epoch) if self.ratio > 0 else None
        for lb in lab:
            k = self.unlabeled_size(lb.size)
            if stream is None or k == 0:
                yield lb, None
                continue
            idx = [next(stream) for _ in range(k)]
            yield lb, _collate(self.unlabeled, self.encoder, idx, with_labels=False, pad_multiple=self.pad_multiple)

    def epoch(self, epoch: int) -> Iterator[tuple[Batch, Optional[Batch]]]:
        """Alias of :meth:`iter_epoch`."""
        return self.iter_epoch(epoch)
