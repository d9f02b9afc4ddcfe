"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) from their official HDF5 files.

The layout (Cramer et al. 2020): ``spikes/times`` holds one variable-length float array per sample (spike
times in seconds), ``spikes/units`` one variable-length integer array of the same length (channel indices,
0..699), ``labels`` one integer class per sample. Samples are read from the file one batch at a time
(:meth:`SpikeFile.take`) and binned into ``steps`` time bins of ``duration / steps`` seconds each; spikes at
or after ``duration`` are dropped and a bin holds 1 however many spikes fall into it. Nothing is downloaded:
point ``--data-path`` at a directory with ``shd_train.h5`` and ``shd_test.h5`` (or ``ssc_*``), or at one file
to split it.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np

from ._batching import DataError, Subset, split

__all__ = ["KEYS", "SpikeFile", "load_shd", "train_test"]

KEYS = ("spikes/times", "spikes/units", "labels")
_PREFIXES = ("shd", "ssc")


class SpikeFile:
    """One SHD/SSC HDF5 file as a :class:`~plastix.data.SpikeDataset` (kept open; samples read on demand).

    Args:
        path: the ``.h5`` file.
        steps: number of time bins ``T``.
        duration: seconds covered by the ``T`` bins.
        channels: number of input channels (700 for SHD and SSC); a unit index ``>= channels`` is an error.
        num_classes: number of classes (default: the largest label in the file plus one).

    Raises:
        ValueError: ``steps`` not a positive integer, or ``duration`` not a positive finite number.
        FileNotFoundError: no such file.
        DataError: not HDF5, a missing key, a wrong dtype or shape, or a label ``>= num_classes``.
    """

    def __init__(self, path: str | Path, *, steps: int = 100, duration: float = 1.4, channels: int = 700,
                 num_classes: int | None = None):
        self.path = Path(path)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file (expected an SHD/SSC HDF5 file)")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise DataError(f"{self.path}: not a readable HDF5 file ({e})") from None
        for key in KEYS:
            if key not in self._file:
                raise DataError(f"{self.path}: missing key {key!r}; expected the SHD/SSC layout with "
                                f"{', '.join(map(repr, KEYS))}")
        self._times, self._units = self._file["spikes/times"], self._file["spikes/units"]
        self._check_vlen("spikes/times", self._times, "f", "variable-length float arrays (spike times in seconds)")
        self._check_vlen("spikes/units", self._units, "iu", "variable-length integer arrays (channel indices)")
        labels = self._file["labels"]
        if labels.dtype.kind not in "iu" or labels.ndim != 1:
            raise DataError(f"{self.path}: key 'labels' has dtype {labels.dtype} and shape {labels.shape}; "
                            f"expected a 1-d integer array")
        n = labels.shape[0]
        for key, ds in (("spikes/times", self._times), ("spikes/units", self._units)):
            if ds.shape != (n,):
                raise DataError(f"{self.path}: key {key!r} has shape {ds.shape}; expected ({n},), one entry per label")
        self.labels = labels[()].astype(np.int32)
        self.num_classes = int(num_classes if num_classes is not None else self.labels.max(initial=-1) + 1)
        if n and (self.labels.min() < 0 or self.labels.max() >= self.num_classes):
            raise DataError(f"{self.path}: key 'labels' holds values in [{self.labels.min()}, {self.labels.max()}]; "
                            f"expected 0 <= label < {self.num_classes}")
        self.steps, self.duration, self.num_inputs = steps, float(duration), int(channels)

    def _check_vlen(self, key: str, ds, kinds: str, expected: str) -> None:
        base = h5py.check_vlen_dtype(ds.dtype)
        if base is None or base.kind not in kinds:
            raise DataError(f"{self.path}: key {key!r} has dtype {base or ds.dtype}"
                            f"{' (variable length)' if base is not None else ''}; expected {expected}")

    def __len__(self) -> int:
        return self.labels.shape[0]

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Binned spikes ``(len(indices), steps, channels)`` float32 of the given samples, read from the file.

        Raises:
            DataError: a sample whose times and units differ in length, or a unit index out of range.
        """
        indices = np.asarray(indices, np.int64)
        out = np.zeros((indices.shape[0], self.steps, self.num_inputs), np.float32)
        for row, i in enumerate(indices):
            times, units = np.asarray(self._times[i]), np.asarray(self._units[i])
            if times.shape != units.shape:
                raise DataError(f"{self.path}: sample {i} has {times.size} entries in 'spikes/times' but "
                                f"{units.size} in 'spikes/units'; expected equal lengths")
            if units.size and (units.min() < 0 or units.max() >= self.num_inputs):
                bad = units.max() if units.max() >= self.num_inputs else units.min()
                raise DataError(f"{self.path}: key 'spikes/units' of sample {i} holds unit index {bad}; expected "
                                f"0 <= unit < channels={self.num_inputs}")
            bins = np.floor(times * (self.steps / self.duration)).astype(np.int64)
            keep = (bins >= 0) & (bins < self.steps)
            out[row, bins[keep], units[keep]] = 1.0
        return out

    def close(self) -> None:
        """Close the HDF5 file."""
        self._file.close()


def load_shd(path: str | Path, *, steps: int = 100, duration: float = 1.4, channels: int = 700,
             test_fraction: float = 0.2, seed: int = 0) -> tuple[SpikeFile | Subset, SpikeFile | Subset]:
    """``(train, test)`` datasets from a directory with ``shd_train.h5``/``shd_test.h5`` (or ``ssc_train.h5``/
    ``ssc_test.h5``), or from a single file split stratified by ``test_fraction`` and ``seed``.

    Both sets share ``num_classes`` (the largest label of either file plus one). Samples are read from the
    files on demand, one batch at a time (see :func:`plastix.data.iterate`).

    Args:
        path: a directory holding a train/test pair of ``.h5`` files, or a single ``.h5`` file.
        steps: number of time bins ``T`` (see :class:`SpikeFile`).
        duration: seconds covered by the ``T`` bins.
        channels: number of input channels (700 for SHD and SSC).
        test_fraction: fraction of each class held out when ``path`` is a single file (else unused).
        seed: seed of the stratified split of a single file (else unused).

    Returns:
        ``(train, test)``: two :class:`SpikeFile` for a directory, two :class:`~plastix.data.Subset` views
        of one :class:`SpikeFile` for a single file; samples are ``(steps, channels)`` float32 0/1 spikes.

    Raises:
        FileNotFoundError: the path does not exist, or a directory without a train/test pair.
        ValueError: bad ``steps`` or ``duration``, or (single file) bad ``test_fraction`` or ``seed``.
        DataError: a file without the expected layout.

    Example:
        >>> train, test = load_shd("data/shd", steps=100)
        >>> for batch in iterate(train, 64, seed=epoch):
        ...     ...
    """
    path = Path(path)
    options = {"steps": steps, "duration": duration, "channels": channels}
    if path.is_file():
        return split(SpikeFile(path, **options), test_fraction, seed=seed)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or directory (expected SHD/SSC .h5 files)")
    for prefix in _PREFIXES:
        train_path, test_path = path / f"{prefix}_train.h5", path / f"{prefix}_test.h5"
        if train_path.is_file() and test_path.is_file():
            train, test = SpikeFile(train_path, **options), SpikeFile(test_path, **options)
            classes = max(train.num_classes, test.num_classes)
            train.num_classes = test.num_classes = classes
            return train, test
    expected = " or ".join(f"{p}_train.h5 and {p}_test.h5" for p in _PREFIXES)
    raise FileNotFoundError(f"{path}: directory holds no {expected}")


def train_test(options) -> tuple[SpikeFile | Subset, SpikeFile | Subset]:
    """The registry's loader (:data:`plastix.data.DATASETS`): :func:`load_shd` of ``options.data_path`` with
    ``steps``, ``duration``, ``channels``, ``test_fraction`` and ``seed``."""
    return load_shd(options.data_path, steps=options.steps, duration=options.duration, channels=options.channels,
                    test_fraction=options.test_fraction, seed=options.seed)
