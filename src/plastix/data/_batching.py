"""Stratified train/test splits and seeded mini-batch iteration over in-memory arrays."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["batches", "num_batches", "stratified_split", "train_test_split"]


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, got {seed!r}")


def stratified_split(labels, test_fraction: float = 0.2, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` holding out ``round(test_fraction * n_c)`` samples of every class ``c``.

    Each class is shuffled with a generator seeded by ``seed``; both index arrays come back sorted.
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


def train_test_split(xs, labels, test_fraction: float = 0.2, *, seed: int = 0):
    """Stratified split of ``(xs, labels)``: returns ``(x_train, y_train), (x_test, y_test)``."""
    xs, labels = np.asarray(xs), np.asarray(labels)
    if xs.shape[:1] != labels.shape[:1]:
        raise ValueError(f"xs and labels disagree on the number of samples: {xs.shape[0]} vs {labels.shape[0]}")
    train, test = stratified_split(labels, test_fraction, seed=seed)
    return (xs[train], labels[train]), (xs[test], labels[test])


def num_batches(n: int, batch_size: int, *, drop_last: bool = False) -> int:
    """How many batches :func:`batches` yields for ``n`` samples."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(xs, labels, batch_size: int, *, shuffle: bool = True, seed: int = 0,
            drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x_batch, y_batch)`` pairs covering the data once.

    Args:
        xs, labels: arrays with the same leading length.
        batch_size: samples per batch.
        shuffle: visit samples in an order drawn from ``seed`` (else in order).
        seed: seed of the shuffle; use a different one per epoch (e.g. ``seed + epoch``).
        drop_last: skip the final batch when it is smaller than ``batch_size``.
    """
    xs, labels = np.asarray(xs), np.asarray(labels)
    if xs.shape[:1] != labels.shape[:1]:
        raise ValueError(f"xs and labels disagree on the number of samples: {xs.shape[0]} vs {labels.shape[0]}")
    n = labels.shape[0]
    count = num_batches(n, batch_size, drop_last=drop_last)
    if shuffle:
        _check_seed(seed)
        order = np.random.default_rng(seed).permutation(n)
    else:
        order = np.arange(n)
    for b in range(count):
        idx = order[b * batch_size:(b + 1) * batch_size]
        yield xs[idx], labels[idx]
