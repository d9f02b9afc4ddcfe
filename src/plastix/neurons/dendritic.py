"""A two-compartment neuron: a leaky dendrite drives a spiking soma through a saturating coupling."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from .lif import _current, _default_spike

__all__ = ["dendritic_step"]


def dendritic_step(params, state: tuple[jax.Array, jax.Array], x: jax.Array, *, alpha: float = 0.8,
                   beta: float = 0.9, coupling: float = 1.5, threshold: float = 1.0,
                   spike_fn: Callable | None = None,
                   detach_reset: bool = True) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """One step of a two-compartment (dendrite + soma) spiking layer.

    ``d' = alpha*d + W@x``; ``u' = beta*u + coupling*tanh(d')``; ``z = spike(u' - threshold)``;
    ``u' -= threshold*z``. ``alpha``, ``beta``, ``coupling`` (scalars or per neuron) and ``threshold`` are
    trained when present in ``params``.

    Args:
        params: ``{"W": (n, m)}`` plus optional trainable hyper-parameters.
        state: ``(d, u)``, dendritic and somatic potentials, each ``(..., n)``.
        x: input ``(..., m)``.

    Returns:
        ``((d', u'), z)``.
    """
    alpha, beta = params.get("alpha", alpha), params.get("beta", beta)
    coupling, threshold = params.get("coupling", coupling), params.get("threshold", threshold)
    spike_fn = spike_fn or _default_spike()
    d, u = state
    d = alpha * d + _current(params, x)
    u = beta * u + coupling * jnp.tanh(d)
    z = spike_fn(u - threshold)
    zr = lax.stop_gradient(z) if detach_reset else z
    return (d, u - threshold * zr), z
