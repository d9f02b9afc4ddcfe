"""Sigma-delta neurons: integrate input changes, emit graded events when the activation has moved enough."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from .lif import _current, _default_spike

__all__ = ["sigma_delta_step"]


def sigma_delta_step(params, state: tuple[jax.Array, jax.Array], x: jax.Array, *, threshold: float = 0.1,
                     spike_fn: Callable | None = None) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """One step of a sigma-delta layer (as in Loihi 2's sigma-delta neurons).

    ``σ' = σ + W@x`` (the sigma unit integrates incoming deltas); ``d = relu(σ') - r`` is the change of the
    activation since the last event; an event ``e = d * spike(|d| - threshold)`` is sent when it exceeds the
    threshold and the reference follows it, ``r' = r + e``.

    Args:
        params: ``{"W": (n, m)}`` plus optional trainable ``threshold``.
        state: ``(σ, r)``, each ``(..., n)``.
        x: input deltas ``(..., m)``.

    Returns:
        ``((σ', r'), e)``: the graded events.
    """
    threshold = params.get("threshold", threshold)
    spike_fn = spike_fn or _default_spike()
    sigma, ref = state
    sigma = sigma + _current(params, x)
    delta = jax.nn.relu(sigma) - ref
    events = delta * spike_fn(jnp.abs(delta) - threshold)
    return (sigma, ref + events), events
