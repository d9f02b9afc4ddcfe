"""scikit-learn's bundled 8x8 handwritten digits (1797 samples, 10 classes) encoded as spike trains.

No download: the images ship with scikit-learn. Pixels are integers 0..16; both encodings work on the
normalised intensity ``p = pixel / 16``:

* ``"rate"``: at each of ``steps`` time steps a pixel spikes with probability ``p * max_rate``
  (independent Bernoulli draws from a seeded NumPy generator, so the result is reproducible);
* ``"latency"``: each non-zero pixel spikes exactly once, at ``t = round((1 - p) * (steps - 1))``
  (bright pixels early, faint ones late; ``round`` is NumPy's, halves to even); pixels of 0 never spike.

Arrays are time-major per sample: ``xs`` has shape ``(N, steps, 64)``, dtype float32, values 0 or 1.
"""

from __future__ import annotations

import numpy as np

from ._batching import ArrayDataset, Subset, split

__all__ = ["ENCODINGS", "NUM_CLASSES", "NUM_INPUTS", "digit_images", "latency_encode", "load_digits", "rate_encode",
           "train_test"]

ENCODINGS = ("rate", "latency")
NUM_INPUTS = 64
NUM_CLASSES = 10
_MAX_PIXEL = 16.0


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """The raw digits: pixels ``(1797, 64)`` float32 in 0..16 and labels ``(1797,)`` int32."""
    from sklearn.datasets import load_digits as _sk_load_digits

    data = _sk_load_digits()
    return data.data.astype(np.float32), data.target.astype(np.int32)


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def _intensity(pixels) -> np.ndarray:
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.size and (pixels.min() < 0 or pixels.max() > _MAX_PIXEL):
        raise ValueError(f"pixels must lie in [0, {_MAX_PIXEL:g}], got values in [{pixels.min()}, {pixels.max()}]")
    return pixels / _MAX_PIXEL


def rate_encode(pixels, steps: int, *, max_rate: float = 1.0, seed: int = 0) -> np.ndarray:
    """Bernoulli rate code: ``(..., F)`` pixels in 0..16 -> ``(..., steps, F)`` float32 spikes.

    A pixel spikes at each step with probability ``pixel / 16 * max_rate``, drawn with ``seed``.

    Args:
        pixels: ``(..., F)`` intensities in ``[0, 16]`` (any real dtype).
        steps: number of time steps ``T`` (a positive integer).
        max_rate: spike probability per step of a full-intensity pixel, in ``(0, 1]``.
        seed: seed of the NumPy generator for the Bernoulli draws.

    Returns:
        ``(..., steps, F)`` float32 array of 0s and 1s.

    Raises:
        ValueError: ``steps`` not a positive integer, ``max_rate`` outside ``(0, 1]``, or pixels outside
            ``[0, 16]``.

    Example:
        >>> pixels, labels = digit_images()
        >>> xs = rate_encode(pixels, 20, max_rate=0.5, seed=0)   # (1797, 20, 64)
    """
    _check_steps(steps)
    if not 0.0 < max_rate <= 1.0:
        raise ValueError(f"max_rate is a spike probability per step and must lie in (0, 1], got {max_rate!r}")
    p = _intensity(pixels) * max_rate
    rng = np.random.default_rng(seed)
    shape = p.shape[:-1] + (steps, p.shape[-1])
    draws = rng.random(shape, dtype=np.float32)
    return (draws < p[..., None, :]).astype(np.float32)


def latency_encode(pixels, steps: int) -> np.ndarray:
    """Time-to-first-spike code: ``(..., F)`` pixels in 0..16 -> ``(..., steps, F)`` float32 spikes.

    One spike per non-zero pixel at ``t = round((1 - pixel / 16) * (steps - 1))``; zero pixels stay silent.

    Args:
        pixels: ``(..., F)`` intensities in ``[0, 16]`` (any real dtype).
        steps: number of time steps ``T`` (a positive integer).

    Returns:
        ``(..., steps, F)`` float32 array of 0s and 1s, at most one spike per pixel.

    Raises:
        ValueError: ``steps`` not a positive integer, or pixels outside ``[0, 16]``.

    Example:
        >>> xs = latency_encode(digit_images()[0], 20)   # (1797, 20, 64)
    """
    _check_steps(steps)
    p = _intensity(pixels)
    t_spike = np.rint((1.0 - p) * (steps - 1)).astype(np.int64)
    t = np.arange(steps).reshape((steps, 1))
    return ((t == t_spike[..., None, :]) & (p[..., None, :] > 0)).astype(np.float32)


def load_digits(encoding: str = "rate", *, steps: int = 20, max_rate: float = 1.0,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The whole Digits set as spike trains.

    Args:
        encoding: ``"rate"`` or ``"latency"`` (see the module docstring).
        steps: number of time steps ``T``.
        max_rate: spike probability per step of a full-intensity pixel (rate coding only).
        seed: seed of the Bernoulli draws (rate coding only; latency coding is deterministic).

    Returns:
        ``xs`` of shape ``(1797, steps, 64)`` float32 and ``labels`` of shape ``(1797,)`` int32.

    Raises:
        ValueError: unknown ``encoding``, ``steps`` not a positive integer, or ``max_rate`` outside ``(0, 1]``
            (rate coding).

    Example:
        >>> xs, labels = load_digits("latency", steps=20)
        >>> train, test = split(ArrayDataset(xs, labels), 0.2, seed=0)
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {', '.join(map(repr, ENCODINGS))}")
    pixels, labels = digit_images()
    if encoding == "rate":
        xs = rate_encode(pixels, steps, max_rate=max_rate, seed=seed)
    else:
        xs = latency_encode(pixels, steps)
    return xs, labels


def train_test(options) -> tuple[Subset, Subset]:
    """The registry's loader (:data:`plastix.data.DATASETS`): the whole set encoded with ``options.encoding``,
    ``steps``, ``max_rate`` and ``seed``, split stratified by ``options.test_fraction`` and ``seed``."""
    xs, labels = load_digits(options.encoding, steps=options.steps, max_rate=options.max_rate, seed=options.seed)
    return split(ArrayDataset(xs, labels, NUM_CLASSES), options.test_fraction, seed=options.seed)
