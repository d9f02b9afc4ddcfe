"""MNIST-1D (Greydanus & Kobak 2020), generated procedurally on this machine, never downloaded.

The ``mnist1d`` package builds every sample from one of ten 1-d digit templates by padding, dilation, scaling,
translation, correlated and i.i.d. noise, shear and resampling to 40 points (:func:`mnist1d.data.make_dataset`
with the arguments of :func:`mnist1d.data.get_dataset_args`: 5000 samples, 500 per class, seed 42; the first
4000 of its shuffled order are the training set, the last 1000 the test set, exactly the published split). The
whole set is standardised (mean 0, standard deviation 1). Generation takes 2-3 s on one core and is cached in
memory per set of arguments; :func:`mnist1d.data.get_dataset`, which downloads, is never called.

Encoding (:func:`encode`): the signal is read left to right, one point per time step (40 steps), and at each
step two numbers are presented as input *currents* to two populations of ``channels`` input units each (64 inputs
by default): the value ``x_t`` and its change ``x_t - x_{t-1}`` (with ``x_{-1} = 0``; divided by the standard
deviation of the changes over the training set). Each population has Gaussian tuning curves over its number
(:func:`population_code`): unit ``k`` receives ``exp(-(v - c_k)² / (2 σ²))`` with centres ``c_k`` evenly spaced
over ``[-3, 3]`` (three standard deviations, which hold 99.9 % of the values; a value further out drives the edge
unit) and ``σ`` the spacing of the centres, so every value drives two or three units strongly. Why this code:

* A scalar current ``W x_t`` reaches a hidden neuron only as a signed multiple of the amplitude, so a LIF neuron
  can tell "high" from "low" but cannot respond to a band of amplitudes; the population code lets the first
  weight matrix learn any tuning over the amplitude (a smooth basis-function expansion), so the network's
  nonlinearity goes into detecting the *temporal* pattern, which is what the task is about.
* The change population hands the network the local slope directly. The digits differ in the *shape* of their
  templates (rising, falling, bumps), and a LIF neuron with a short membrane time constant would otherwise
  have to form the difference of two steps itself; with it, the recommended two-layer LIF network trained with
  BPTT went from 87 % to 92 % test accuracy in pilot runs of 60 epochs (docs/training.md).
* Currents instead of spikes: with only 40 steps there is no time to build a rate code, and Bernoulli sampling
  would add noise on top of the dataset's own; the currents are deterministic, so one sample is one input
  sequence.
* Two or three active units per population and step keep the input sparse, like the spike inputs of the other
  datasets, and its magnitude bounded (every channel in ``(0, 1]``), independent of ``channels``.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np

from ._batching import DataError

__all__ = ["CHANNELS", "NUM_CLASSES", "NUM_INPUTS", "STEPS", "TEST_SAMPLES", "TRAIN_SAMPLES", "Mnist1d", "changes",
           "encode", "load_mnist1d", "mnist1d_signals", "population_code", "train_test"]

STEPS = 40  # points per signal (``final_seq_length``)
NUM_CLASSES = 10
TRAIN_SAMPLES, TEST_SAMPLES = 4000, 1000  # the published split of the default 5000 samples
CHANNELS = 32  # input units of each population code (value and change)
NUM_INPUTS = 2 * CHANNELS
SEED = 42  # the seed of the published dataset
SPAN = 3.0  # tuning-curve centres cover [-SPAN, SPAN] (standard deviations of the standardised signal)


def population_code(signals, channels: int = CHANNELS, span: float = SPAN) -> np.ndarray:
    """Gaussian population code: signals ``(..., T)`` -> currents ``(..., T, channels)`` float32 in ``(0, 1]``.

    Unit ``k`` has its centre at ``c_k = -span + 2 span k / (channels - 1)`` and width ``σ = c_1 - c_0``;
    its current at step ``t`` is ``exp(-(x_t - c_k)² / (2 σ²))``.

    Raises:
        ValueError: ``channels`` below 2 or ``span`` not positive.
    """
    if isinstance(channels, bool) or not isinstance(channels, int | np.integer) or channels < 2:
        raise ValueError(f"channels must be an integer of at least 2, got {channels!r}")
    if not span > 0:
        raise ValueError(f"span must be positive, got {span!r}")
    centres = np.linspace(-span, span, channels, dtype=np.float32)
    sigma = centres[1] - centres[0]
    x = np.asarray(signals, np.float32)[..., None]
    return np.exp(-0.5 * np.square((x - centres) / sigma)).astype(np.float32)


def changes(signals) -> np.ndarray:
    """``x_t - x_{t-1}`` along the last axis of ``(..., T)`` signals, with ``x_{-1} = 0``."""
    signals = np.asarray(signals, np.float32)
    return np.diff(signals, axis=-1, prepend=np.zeros_like(signals[..., :1]))


def encode(signals, channels: int = CHANNELS, change_scale: float = 1.0) -> np.ndarray:
    """The network input of signals ``(..., T)``: currents ``(..., T, 2 channels)`` float32 in ``(0, 1]``, the
    population code of the value (first ``channels``) and of the change ``changes(signals) / change_scale``."""
    return np.concatenate([population_code(signals, channels),
                           population_code(changes(signals) / change_scale, channels)], axis=-1)


class Mnist1d:
    """MNIST-1D signals as a :class:`~plastix.data.SpikeDataset`: stored as ``(N, 40)`` signals, encoded per batch
    (:meth:`take`, :func:`encode`).

    Attributes:
        signals: ``(N, 40)`` float32 standardised signals.
        labels: ``(N,)`` int32 digit classes.
        channels: units per population; ``num_inputs = 2 * channels``.
        change_scale: the changes are divided by this (the standard deviation of the training set's changes).
    """

    num_classes = NUM_CLASSES

    def __init__(self, signals, labels, channels: int = CHANNELS, change_scale: float = 1.0):
        signals, labels = np.asarray(signals, np.float32), np.asarray(labels)
        if signals.ndim != 2 or labels.shape != signals.shape[:1]:
            raise DataError(f"signals must have shape (N, steps) and labels (N,), got {signals.shape} and "
                            f"{labels.shape}")
        population_code(np.zeros(1), channels)  # validates channels
        if not (np.isfinite(change_scale) and change_scale > 0):
            raise ValueError(f"change_scale must be a positive number, got {change_scale!r}")
        self.signals, self.labels = signals, labels.astype(np.int32)
        self.channels, self.change_scale = int(channels), float(change_scale)
        self.steps, self.num_inputs = signals.shape[1], 2 * self.channels

    def __len__(self) -> int:
        return self.labels.shape[0]

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Input currents ``(len(indices), steps, 2 channels)`` float32 (:func:`encode`)."""
        return encode(self.signals[np.asarray(indices, np.int64)], self.channels, self.change_scale)


@lru_cache(maxsize=4)
def _generate(num_samples: int, seed: int) -> tuple[np.ndarray, ...]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    # make_dataset seeds and draws from the global `random` and `np.random` generators: leave them as they were
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = (d["x"], d["y"], d["x_test"], d["y_test"])
    arrays = tuple(np.asarray(a, np.float32 if i % 2 == 0 else np.int32) for i, a in enumerate(arrays))
    for a in arrays:
        a.setflags(write=False)
    return arrays


def mnist1d_signals(*, num_samples: int = TRAIN_SAMPLES + TEST_SAMPLES,
                    seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The raw MNIST-1D arrays ``(x_train, y_train, x_test, y_test)``: signals ``(N, 40)`` float32, labels int32.

    Generated by :func:`mnist1d.data.make_dataset` (``num_samples`` divided evenly among the 10 classes, 80/20
    split of its shuffled order) and cached in memory; the arrays are read-only. The defaults give the
    published dataset: 4000 training and 1000 test samples. The global ``random`` and ``np.random`` states are
    restored afterwards.

    Raises:
        ValueError: ``num_samples`` below 20 or ``seed`` not an integer.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer) or num_samples < 20:
        raise ValueError(f"num_samples must be an integer of at least 20, got {num_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return _generate(int(num_samples), int(seed))


def load_mnist1d(*, channels: int = CHANNELS, num_samples: int = TRAIN_SAMPLES + TEST_SAMPLES,
                 seed: int = SEED) -> tuple[Mnist1d, Mnist1d]:
    """MNIST-1D as ``(train, test)`` datasets of population-coded currents (see the module docstring).

    Args:
        channels: input units of each population code (at least 2); ``2 * channels`` inputs.
        num_samples: samples generated (500 per class by default); 80 % train, 20 % test.
        seed: seed of the generator (42 is the published dataset).

    Returns:
        ``(train, test)``: :class:`Mnist1d` datasets, 40 steps, ``2 * channels`` inputs, 10 classes; the changes
        of both are scaled by the standard deviation of the training set's changes.

    Example:
        >>> train, test = load_mnist1d()
        >>> len(train), len(test), train.take(np.arange(2)).shape
        (4000, 1000, (2, 40, 64))
    """
    x, y, x_test, y_test = mnist1d_signals(num_samples=num_samples, seed=seed)
    scale = float(changes(x).std())
    return Mnist1d(x, y, channels, scale), Mnist1d(x_test, y_test, channels, scale)


def train_test(options) -> tuple[Mnist1d, Mnist1d]:
    """The registry's loader (:data:`plastix.data.DATASETS`): the published dataset (seed 42, 4000 / 1000),
    :data:`NUM_INPUTS` input units; ``options.steps`` must be :data:`STEPS` (``seed`` and ``test_fraction`` are not
    used: the split is the published one).

    Raises:
        DataError: ``options.steps`` is not :data:`STEPS`.
    """
    if options.steps != STEPS:
        raise DataError(f"mnist1d has {STEPS} steps per sample (one per point of the signal); got steps "
                        f"{options.steps!r}: leave --steps out or give {STEPS}")
    return load_mnist1d()
