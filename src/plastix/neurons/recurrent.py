"""Recurrent layers: LIF with recurrent spikes, and a non-spiking leaky RNN."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from .lif import _current, _default_spike

__all__ = ["recurrent_lif_step", "leaky_rnn_step"]


def recurrent_lif_step(params, state: tuple[jax.Array, jax.Array], x: jax.Array, *, beta: float = 0.9,
                       threshold: float = 1.0, reset: str = "subtract", spike_fn: Callable | None = None,
                       detach_reset: bool = True) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """One step of a recurrent LIF layer: ``u' = beta*u + W@x + R@z``, then spike and reset.

    Args:
        params: ``{"W": (n, m), "R": (n, n)}`` plus optional trainable ``beta``, ``threshold``.
        state: ``(u, z)``, membrane potentials and the previous step's spikes, each ``(..., n)``.
        x: input ``(..., m)``.

    Returns:
        ``((u', z'), z')``.
    """
    beta, threshold = params.get("beta", beta), params.get("threshold", threshold)
    spike_fn = spike_fn or _default_spike()
    u, z = state
    u = beta * u + _current(params, x) + z @ params["R"].T
    z = spike_fn(u - threshold)
    zr = lax.stop_gradient(z) if detach_reset else z
    u = u - threshold * zr if reset == "subtract" else u * (1.0 - zr)
    return (u, z), z


def leaky_rnn_step(params, state: jax.Array, x: jax.Array, *, alpha: float = 0.1) -> tuple[jax.Array, jax.Array]:
    """One step of a non-spiking leaky RNN: ``h' = (1 - alpha)*h + alpha*tanh(W@x + R@h + b)``.

    ``R`` and ``b`` are optional (without ``R`` the layer is a leaky feed-forward integrator); ``alpha`` may
    be given in ``params`` to train it.

    Returns:
        ``(h', h')``.
    """
    alpha = params.get("alpha", alpha)
    drive = _current(params, x)
    if "R" in params:
        drive = drive + state @ params["R"].T
    if "b" in params:
        drive = drive + params["b"]
    h = (1.0 - alpha) * state + alpha * jnp.tanh(drive)
    return h, h
