"""Randman: random smooth manifolds turned into spike times (after Zenke & Vogels 2021), generated, no download.

Each class ``c`` is a random smooth map from the unit cube ``[0, 1]^D`` (``D = dimensions``) into
``channels`` embedding dimensions. Embedding dimension ``i`` is a sum of random Fourier components over
the intrinsic coordinates ``x_j``::

    f_ci(x) = sum_j sum_{k=1..K} a_cijk / k^alpha * sin(2 pi (k b_cijk x_j + p_cijk))

with ``a, b, p`` uniform in ``[0, 1)``; larger ``alpha`` damps high frequencies (a smoother manifold). A
sample of class ``c`` is a uniform random point ``x``; each of its channels fires exactly one spike, at the
step ``floor(steps * g_ci(x))`` where ``g_ci`` is ``f_ci`` rescaled to ``[0, 1]`` by its range over the
samples of the class. Samples are stored as spike *times* ``(N, channels)`` and densified per batch.
"""

from __future__ import annotations

import numpy as np

from ._batching import DataError, Subset, split

__all__ = ["Randman", "randman", "train_test"]


class Randman:
    """A Randman dataset: one spike per channel per sample, stored as integer spike steps.

    Attributes:
        times: ``(N, channels)`` int16 spike step of every channel.
        labels: ``(N,)`` int32 classes.
    """

    def __init__(self, times: np.ndarray, labels: np.ndarray, steps: int, num_classes: int):
        times = np.asarray(times)
        if times.ndim != 2 or times.shape[0] != np.shape(labels)[0]:
            raise DataError(f"times must have shape (N, channels) with N = {np.shape(labels)[0]} labels, "
                            f"got {times.shape}")
        if times.size and (times.min() < 0 or times.max() >= steps):
            raise DataError(f"spike steps must lie in [0, {steps}), got [{times.min()}, {times.max()}]")
        self.times, self.labels = times, np.asarray(labels, np.int32)
        self.steps, self.num_inputs, self.num_classes = int(steps), times.shape[1], int(num_classes)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Dense spikes ``(len(indices), steps, channels)`` float32."""
        times = self.times[np.asarray(indices, np.int64)]
        out = np.zeros((times.shape[0], self.steps, self.num_inputs), np.float32)
        rows, cols = np.indices(times.shape)
        out[rows, times, cols] = 1.0
        return out


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def randman(*, classes: int = 10, samples_per_class: int = 100, dimensions: int = 20, channels: int = 700,
            steps: int = 50, alpha: float = 2.0, components: int = 3, seed: int = 0) -> Randman:
    """Generate a Randman dataset.

    Args:
        classes: number of manifolds (one per class).
        samples_per_class: points drawn on each manifold.
        dimensions: intrinsic dimension ``D`` of each manifold.
        channels: embedding dimension = number of input channels (one spike each per sample).
        steps: number of time steps; spike steps lie in ``[0, steps)``.
        alpha: smoothness: component ``k`` is damped by ``k^-alpha``.
        components: Fourier components ``K`` per intrinsic coordinate.
        seed: seed of the manifolds and the sample points.

    Returns:
        A :class:`Randman` dataset with samples ordered by class.

    Raises:
        ValueError: a size argument that is not a positive integer, ``steps`` above 32767 (spike times are
            stored as int16), or a negative ``alpha``.

    Example:
        >>> train, test = split(randman(classes=10, samples_per_class=100, seed=0), 0.2)
    """
    classes, samples = _positive_int("classes", classes), _positive_int("samples_per_class", samples_per_class)
    dimensions, channels = _positive_int("dimensions", dimensions), _positive_int("channels", channels)
    steps, components = _positive_int("steps", steps), _positive_int("components", components)
    if steps > np.iinfo(np.int16).max:
        raise ValueError(f"steps must be at most {np.iinfo(np.int16).max}, got {steps}")
    if not alpha >= 0:
        raise ValueError(f"alpha must be a non-negative number, got {alpha!r}")
    rng = np.random.default_rng(seed)
    k = np.arange(1, components + 1, dtype=np.float32)
    times = np.empty((classes * samples, channels), np.int16)
    for c in range(classes):
        amp, freq, phase = (rng.random((dimensions, components, channels), dtype=np.float32) for _ in range(3))
        amp = amp / (k ** alpha)[:, None]
        freq = freq * k[:, None]
        x = rng.random((samples, dimensions), dtype=np.float32)
        f = np.zeros((samples, channels), np.float32)
        for j in range(dimensions):  # one intrinsic coordinate at a time keeps the temporaries (S, K, C)
            f += np.einsum("kc,skc->sc", amp[j], np.sin(2 * np.pi * (x[:, j, None, None] * freq[j] + phase[j])))
        lo, hi = f.min(axis=0), f.max(axis=0)
        g = (f - lo) / np.where(hi > lo, hi - lo, 1.0)
        times[c * samples:(c + 1) * samples] = np.minimum(np.floor(g * steps), steps - 1).astype(np.int16)
    return Randman(times, np.repeat(np.arange(classes, dtype=np.int32), samples), steps, classes)


def train_test(options) -> tuple[Subset, Subset]:
    """The registry's loader (:data:`plastix.data.DATASETS`): ``randman`` with ``options.randman_classes``,
    ``randman_samples``, ``randman_dim``, ``channels``, ``steps``, ``randman_alpha`` and ``seed``, split
    stratified by ``options.test_fraction`` and ``seed``."""
    full = randman(classes=options.randman_classes, samples_per_class=options.randman_samples,
                   dimensions=options.randman_dim, channels=options.channels, steps=options.steps,
                   alpha=options.randman_alpha, seed=options.seed)
    return split(full, options.test_fraction, seed=options.seed)
