"""Adaptive LIF (ALIF): a LIF neuron whose threshold rises with each spike and decays back."""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax import lax

from .lif import _current, _default_spike

__all__ = ["alif_step"]


def alif_step(params, state: tuple[jax.Array, jax.Array], x: jax.Array, *, beta: float = 0.9, rho: float = 0.95,
              adaptation: float = 0.5, threshold: float = 1.0, spike_fn: Callable | None = None,
              detach_reset: bool = True) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """One step of an adaptive-threshold LIF layer (Bellec et al. 2018), two state variables per neuron.

    ``u' = beta*u + W@x``; ``θ = threshold + adaptation*a``; ``z = spike(u' - θ)``; ``u' -= θ*z``;
    ``a' = rho*a + (1 - rho)*z``. Any of ``beta``, ``rho``, ``adaptation``, ``threshold`` found in
    ``params`` is used from there (and so trained).

    Args:
        params: ``{"W": (n, m)}`` plus optional trainable ``beta``, ``rho``, ``adaptation``, ``threshold``.
        state: ``(u, a)``, membrane potential and threshold adaptation, each ``(..., n)``.
        x: input ``(..., m)``.

    Returns:
        ``((u', a'), z)``.
    """
    beta, rho = params.get("beta", beta), params.get("rho", rho)
    adaptation, threshold = params.get("adaptation", adaptation), params.get("threshold", threshold)
    spike_fn = spike_fn or _default_spike()
    u, a = state
    u = beta * u + _current(params, x)
    theta = threshold + adaptation * a
    z = spike_fn(u - theta)
    zr = lax.stop_gradient(z) if detach_reset else z
    u = u - theta * zr
    a = rho * a + (1.0 - rho) * z
    return (u, a), z
