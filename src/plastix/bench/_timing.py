"""Side-by-side timing helpers: interleaved repetitions, medians, first-call times."""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import numpy as np

__all__ = ["first_call", "interleaved_medians"]


def first_call(fn: Callable, *args) -> tuple[float, object]:
    """Seconds of the first call (trace + compile + run) and its result."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - start, out


def interleaved_medians(fns: dict[str, Callable], args: tuple, repeats: int) -> dict[str, float]:
    """Median seconds per call of each (already compiled) function, calls interleaved round-robin."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}
