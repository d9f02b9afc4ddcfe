"""Feed-forward leaky integrate-and-fire (LIF) layer and leaky readout, as pure step functions.

Every step function here has the signature ``step(params, state, x, **hyper) -> (new_state, out)`` and is
plain JAX without side effects, so it can be scanned over time (BPTT with ``jax.grad`` through
``lax.scan``) or handed to ``plastix.online`` / ``plastix.ad``, which differentiate exactly these functions.

Conventions: a layer with ``m`` inputs and ``n`` neurons has ``params = {"W": W}`` with ``W`` of shape
``(n, m)``; the input current of one example is ``W @ x``. ``x`` may carry leading batch axes (the current
is then computed as ``x @ W.T``, the same thing row by row), and ``state`` has the matching leading axes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from .surrogate import make_spike

__all__ = ["RESETS", "init_linear", "lif_step", "readout_step"]

RESETS = ("subtract", "zero")


def init_linear(key: jax.Array, n_in: int, n_out: int, *, gain: float = 1.0) -> dict[str, jax.Array]:
    """``{"W": W}`` with ``W`` of shape ``(n_out, n_in)`` drawn from ``N(0, gain² / n_in)``.

    Args:
        key: PRNG key.
        n_in: number of inputs (columns of ``W``).
        n_out: number of neurons (rows of ``W``).
        gain: scale of the standard deviation ``gain / sqrt(n_in)``.

    Returns:
        ``{"W": W}`` with ``W`` a float32 array of shape ``(n_out, n_in)``.

    Raises:
        ValueError: ``n_in`` or ``n_out`` below 1.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"layer sizes must be positive, got n_in={n_in}, n_out={n_out}")
    return {"W": gain / math.sqrt(n_in) * jax.random.normal(key, (n_out, n_in), jnp.float32)}


def _current(params, x):
    return x @ params["W"].T


def lif_step(params, state: jax.Array, x: jax.Array, *, beta: float = 0.9, threshold: float = 1.0,
             reset: str = "subtract", spike_fn: Callable | None = None,
             detach_reset: bool = True) -> tuple[jax.Array, jax.Array]:
    """One time step of a feed-forward LIF layer.

    ``u' = beta * u + W @ x``; ``z = spike_fn(u' - threshold)``; then the reset, applied after spiking:
    ``"subtract"`` gives ``u' - threshold * z``, ``"zero"`` gives ``u' * (1 - z)``.

    Args:
        params: ``{"W": (n, m)}``, plus optional ``"beta"`` and ``"threshold"`` (scalars or per neuron), which
            then replace the keyword arguments and are trained with the weights.
        state: membrane potentials ``u`` of shape ``(..., n)``.
        x: input of shape ``(..., m)`` (spikes or currents).
        beta: membrane decay per step, in [0, 1].
        threshold: firing threshold.
        reset: ``"subtract"`` or ``"zero"``.
        spike_fn: spike nonlinearity with a surrogate derivative; default ``make_spike("fast_sigmoid", 25)``.
        detach_reset: stop gradients through the reset term (the usual choice; it keeps
            ``∂u_t/∂u_{t-1}`` a per-neuron factor instead of running through the surrogate).

    Returns:
        ``(new_state, spikes)``, both of shape ``(..., n)``.

    Raises:
        ValueError: ``reset`` is not one of :data:`RESETS`.
    """
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; expected one of {', '.join(map(repr, RESETS))}")
    if spike_fn is None:
        spike_fn = _default_spike()
    beta, threshold = params.get("beta", beta), params.get("threshold", threshold)
    u = beta * state + _current(params, x)
    z = spike_fn(u - threshold)
    zr = lax.stop_gradient(z) if detach_reset else z
    u = u - threshold * zr if reset == "subtract" else u * (1.0 - zr)
    return u, z


def readout_step(params, state: jax.Array, z: jax.Array, *, kappa: float = 0.9) -> tuple[jax.Array, jax.Array]:
    """One step of a leaky, non-spiking readout: ``v' = kappa * v + W_out @ z``.

    Args:
        params: ``{"W": (k, n)}``.
        state: readout potentials ``v`` of shape ``(..., k)``.
        z: presynaptic spikes of shape ``(..., n)``.
        kappa: leak per step (``0`` makes the readout memoryless).

    Returns:
        ``(v', v')``: the new state and, as the output, the same potentials (used as logits).
    """
    v = kappa * state + _current(params, z)
    return v, v


_SPIKE_CACHE: dict[str, Callable] = {}


def _default_spike() -> Callable:
    if "default" not in _SPIKE_CACHE:
        _SPIKE_CACHE["default"] = make_spike("fast_sigmoid", 25.0)
    return _SPIKE_CACHE["default"]
