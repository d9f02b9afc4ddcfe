"""The batching interface every dataset shares: stratified train/test splits and seeded mini-batches.

A *dataset* (:class:`SpikeDataset`) knows its labels, its shape ``(steps, num_inputs)`` per sample and its
number of classes, and materialises dense spike trains only for the samples of one batch
(:meth:`SpikeDataset.take`), so a large dataset (SHD, a big Randman set) is never densified as a whole.
:func:`iterate` walks a dataset once in a seeded order, and drops, pads or keeps a short last batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "LAST_BATCH",
    "ArrayDataset",
    "Batch",
    "DataError",
    "SpikeDataset",
    "Subset",
    "batches",
    "iterate",
    "num_batches",
    "split",
    "stratified_split",
    "train_test_split",
]

LAST_BATCH = ("drop", "pad", "keep")


class DataError(ValueError):
    """A dataset file or array that does not have the expected layout (the message names file, key and what
    was expected)."""


@runtime_checkable
class SpikeDataset(Protocol):
    """What the training loop needs from a dataset."""

    labels: np.ndarray  # (N,) int32 class indices
    num_classes: int
    steps: int
    num_inputs: int

    def __len__(self) -> int: ...

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Dense spikes ``(len(indices), steps, num_inputs)`` float32 of the given samples."""
        ...


class ArrayDataset:
    """A dataset held in memory as a dense array ``xs`` of shape ``(N, steps, num_inputs)``."""

    def __init__(self, xs, labels, num_classes: int | None = None):
        xs, labels = np.asarray(xs, np.float32), np.asarray(labels)
        if xs.ndim != 3:
            raise DataError(f"xs must have shape (N, steps, inputs), got {xs.shape}")
        _check_labels(xs.shape[0], labels)
        self.xs, self.labels = xs, labels.astype(np.int32)
        self.num_classes = int(num_classes if num_classes is not None else labels.max(initial=-1) + 1)
        self.steps, self.num_inputs = xs.shape[1], xs.shape[2]

    def __len__(self) -> int:
        return self.labels.shape[0]

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.xs[np.asarray(indices)]


class Subset:
    """The samples ``indices`` of another dataset (a view: nothing is copied or densified)."""

    def __init__(self, dataset: SpikeDataset, indices):
        self.dataset, self.indices = dataset, np.asarray(indices, np.int64)
        self.labels = dataset.labels[self.indices]
        self.num_classes, self.steps, self.num_inputs = dataset.num_classes, dataset.steps, dataset.num_inputs

    def __len__(self) -> int:
        return self.indices.shape[0]

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.dataset.take(self.indices[np.asarray(indices)])


class Batch(NamedTuple):
    """One mini-batch: spikes ``(B, steps, inputs)``, labels ``(B,)`` and which rows are real samples."""

    xs: np.ndarray
    labels: np.ndarray
    mask: np.ndarray


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, got {seed!r}")


def _order(n: int, shuffle: bool, seed: int) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    _check_seed(seed)
    return np.random.default_rng(seed).permutation(n)


def _check_labels(n: int, labels: np.ndarray) -> None:
    if labels.shape != (n,):
        raise DataError(f"xs and labels disagree on the number of samples: {n} vs labels of shape {labels.shape}")


def stratified_split(labels, test_fraction: float = 0.2, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` holding out ``round(test_fraction * n_c)`` samples of every class ``c``.

    Each class is shuffled with a generator seeded by ``seed``; both index arrays come back sorted. A class
    with at least two samples keeps at least one on each side.

    Args:
        labels: ``(N,)`` class labels (any values :func:`numpy.unique` can sort).
        test_fraction: fraction of each class held out, strictly between 0 and 1.
        seed: integer seed of the per-class shuffles.

    Returns:
        ``(train, test)``: sorted ``int64`` index arrays into ``labels`` that partition ``range(N)``.

    Raises:
        ValueError: ``seed`` not an integer, ``test_fraction`` outside ``(0, 1)``, or ``labels`` not a
            non-empty 1-d array.

    Example:
        >>> train_idx, test_idx = stratified_split(labels, 0.2, seed=0)
    """
    _check_seed(seed)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-d array, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * idx.size))
        if idx.size >= 2:  # keep every class on both sides when it has at least two samples
            n_test = min(max(n_test, 1), idx.size - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def split(dataset: SpikeDataset, test_fraction: float = 0.2, *, seed: int = 0) -> tuple[Subset, Subset]:
    """Stratified ``(train, test)`` views of a dataset (see :func:`stratified_split`).

    Args:
        dataset: any :class:`SpikeDataset`.
        test_fraction: fraction of each class held out, strictly between 0 and 1.
        seed: integer seed of the per-class shuffles.

    Returns:
        ``(train, test)`` :class:`Subset` views (nothing is copied or densified).

    Raises:
        ValueError: as :func:`stratified_split`.

    Example:
        >>> train, test = split(load_digits(), 0.2, seed=0)
    """
    train, test = stratified_split(dataset.labels, test_fraction, seed=seed)
    return Subset(dataset, train), Subset(dataset, test)


def train_test_split(xs, labels, test_fraction: float = 0.2, *, seed: int = 0):
    """Stratified split of in-memory arrays (see :func:`stratified_split`).

    Args:
        xs: array with the samples on the leading axis, ``(N, ...)``.
        labels: ``(N,)`` class labels.
        test_fraction: fraction of each class held out, strictly between 0 and 1.
        seed: integer seed of the per-class shuffles.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: the rows of ``xs`` and ``labels``, in their original order.

    Raises:
        ValueError: ``xs`` and ``labels`` differ in length, or as :func:`stratified_split`.
    """
    xs, labels = np.asarray(xs), np.asarray(labels)
    if xs.shape[:1] != labels.shape[:1]:
        raise ValueError(f"xs and labels disagree on the number of samples: {xs.shape[0]} vs {labels.shape[0]}")
    train, test = stratified_split(labels, test_fraction, seed=seed)
    return (xs[train], labels[train]), (xs[test], labels[test])


def num_batches(n: int, batch_size: int, *, drop_last: bool = False) -> int:
    """How many batches :func:`iterate` (or :func:`batches`) yields for ``n`` samples.

    Args:
        n: number of samples.
        batch_size: samples per batch (a positive integer).
        drop_last: a short final batch is dropped (else counted).

    Returns:
        ``n // batch_size`` with ``drop_last``, else ``ceil(n / batch_size)``.

    Raises:
        ValueError: ``batch_size`` not a positive integer.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate(dataset: SpikeDataset, batch_size: int, *, shuffle: bool = True, seed: int = 0, last: str = "drop",
            shard: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
    """Walk a dataset once in mini-batches, materialising one batch at a time.

    Args:
        dataset: any :class:`SpikeDataset`.
        batch_size: samples per batch.
        shuffle: visit samples in an order drawn from ``seed`` (else in order).
        seed: seed of the shuffle; use a different one per epoch (e.g. ``seed + epoch``).
        last: a short final batch is dropped (``"drop"``), padded with silent samples of label 0 whose
            ``mask`` is ``False`` (``"pad"``), or yielded as it is (``"keep"``).
        shard: ``(index, count)``: yield only the ``index``-th of ``count`` equal row blocks of every batch (one
            process's part of a global batch); ``batch_size`` must be divisible by ``count``.

    Yields:
        :class:`Batch` ``(xs, labels, mask)``: float32 spikes ``(B, steps, num_inputs)``, int32 labels ``(B,)``
        and a bool ``mask`` ``(B,)`` of real samples, with ``B = batch_size // shard[1]`` (fewer for a kept
        short last batch).

    Raises:
        ValueError: bad ``batch_size``, ``last``, ``seed`` or ``shard`` (on the first ``next``, as this is a
            generator).
    """
    if last not in LAST_BATCH:
        raise ValueError(f"last must be one of {', '.join(map(repr, LAST_BATCH))}, got {last!r}")
    n = len(dataset)
    count = num_batches(n, batch_size, drop_last=last == "drop")
    index, parts = shard
    if not 0 <= index < parts or batch_size % parts:
        raise ValueError(f"shard {shard!r} must be (index, count) with 0 <= index < count and count dividing "
                         f"batch_size {batch_size}")
    order = _order(n, shuffle, seed)
    rows = batch_size // parts
    for b in range(count):
        idx = order[b * batch_size:(b + 1) * batch_size]
        mask = np.ones(idx.shape[0], bool)
        if last == "pad" and idx.shape[0] < batch_size:
            mask = np.arange(batch_size) < idx.shape[0]
            idx = np.concatenate([idx, np.zeros(batch_size - idx.shape[0], idx.dtype)])
        if parts > 1:
            idx, mask = idx[index * rows:(index + 1) * rows], mask[index * rows:(index + 1) * rows]
        xs = np.asarray(dataset.take(idx), np.float32)
        if not mask.all():
            xs = xs * mask[:, None, None]
        yield Batch(xs, np.where(mask, dataset.labels[idx], 0).astype(np.int32), mask)


def batches(xs, labels, batch_size: int, *, shuffle: bool = True, seed: int = 0,
            drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x_batch, y_batch)`` pairs of in-memory arrays covering the data once (see :func:`iterate`).

    Args:
        xs: array with the samples on the leading axis, ``(N, ...)``.
        labels: ``(N,)`` labels.
        batch_size: samples per batch (a positive integer).
        shuffle: visit samples in an order drawn from ``seed`` (else in order).
        seed: integer seed of the shuffle.
        drop_last: drop a short final batch (else yield it as it is).

    Yields:
        ``(xs[idx], labels[idx])`` for consecutive index blocks of the (shuffled) order.

    Raises:
        ValueError: ``xs`` and ``labels`` differ in length, ``batch_size`` not a positive integer, or
            ``seed`` not an integer with ``shuffle`` (on the first ``next``, as this is a generator).

    Example:
        >>> for xb, yb in batches(xs, ys, 32, seed=epoch):
        ...     ...
    """
    xs, labels = np.asarray(xs), np.asarray(labels)
    if xs.shape[:1] != labels.shape[:1]:
        raise ValueError(f"xs and labels disagree on the number of samples: {xs.shape[0]} vs {labels.shape[0]}")
    count = num_batches(labels.shape[0], batch_size, drop_last=drop_last)
    order = _order(labels.shape[0], shuffle, seed)
    for b in range(count):
        idx = order[b * batch_size:(b + 1) * batch_size]
        yield xs[idx], labels[idx]
