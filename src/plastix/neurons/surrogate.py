"""Surrogate-gradient spike functions.

``spike = make_spike(name, slope)`` is the Heaviside step ``H(x) = 1 if x > 0 else 0`` in the forward pass;
its derivative (defined with :func:`jax.custom_jvp`, so forward and reverse mode and ``plastix.ad`` all see
it) is a smooth pseudo-derivative. Each pseudo-derivative is the exact derivative of a smooth step that rises
from 0 to 1 (so it integrates to 1) with steepness ``slope`` at the threshold:

================  ==================================  ==========================================
name              smooth step                         derivative
================  ==================================  ==========================================
``sigmoid``       ``σ(s·x)``                          ``s·σ(s·x)·(1 − σ(s·x))``
``fast_sigmoid``  ``(1 + s·x / (1 + s·|x|)) / 2``     ``s / (2·(1 + s·|x|)²)``
``triangle``      piecewise-linear ramp               ``s·max(0, 1 − s·|x|)``
``arctan``        ``1/2 + arctan(π/2·s·x) / π``       ``(s/2) / (1 + (π/2·s·x)²)``
================  ==================================  ==========================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["SURROGATES", "heaviside", "make_spike", "surrogate_derivative"]


def heaviside(x: jax.Array) -> jax.Array:
    """``1`` where ``x > 0``, else ``0``, in ``x``'s dtype."""
    return (x > 0).astype(jnp.result_type(x))


def _sigmoid(x, s):
    sig = jax.nn.sigmoid(s * x)
    return s * sig * (1.0 - sig)


def _fast_sigmoid(x, s):
    return s / (2.0 * (1.0 + s * jnp.abs(x)) ** 2)


def _triangle(x, s):
    return s * jnp.maximum(0.0, 1.0 - s * jnp.abs(x))


def _arctan(x, s):
    return (s / 2.0) / (1.0 + (math.pi / 2.0 * s * x) ** 2)


_DERIVATIVES: dict[str, Callable] = {
    "sigmoid": _sigmoid,
    "fast_sigmoid": _fast_sigmoid,
    "triangle": _triangle,
    "arctan": _arctan,
}
SURROGATES = tuple(_DERIVATIVES)


def _check(name: str, slope: float) -> None:
    if name not in _DERIVATIVES:
        raise ValueError(f"unknown surrogate {name!r}; expected one of {', '.join(map(repr, SURROGATES))}")
    if not (isinstance(slope, int | float) and not isinstance(slope, bool) and math.isfinite(slope) and slope > 0):
        raise ValueError(f"slope must be a positive finite number, got {slope!r}")


def surrogate_derivative(name: str = "fast_sigmoid", slope: float = 25.0) -> Callable[[jax.Array], jax.Array]:
    """The pseudo-derivative ``x -> dH/dx`` that :func:`make_spike` uses (see the module docstring).

    Args:
        name: one of :data:`SURROGATES`: ``"sigmoid"``, ``"fast_sigmoid"``, ``"triangle"``, ``"arctan"``.
        slope: steepness ``s`` at the threshold (a positive finite number).

    Returns:
        An elementwise function of an array returning the pseudo-derivative in the input's dtype and shape.

    Raises:
        ValueError: unknown ``name``, or ``slope`` not a positive finite number.
    """
    _check(name, slope)
    fn, slope = _DERIVATIVES[name], float(slope)
    return lambda x: fn(x, slope).astype(jnp.result_type(x))


def make_spike(name: str = "fast_sigmoid", slope: float = 25.0) -> Callable[[jax.Array], jax.Array]:
    """A spike function: Heaviside forward, the named surrogate derivative backward.

    Defined with :func:`jax.custom_jvp`, so ``jax.grad``, ``jax.jacfwd`` and :mod:`plastix.ad` all use the
    surrogate.

    Args:
        name: one of :data:`SURROGATES`: ``"sigmoid"``, ``"fast_sigmoid"``, ``"triangle"``, ``"arctan"``.
        slope: steepness ``s`` of the surrogate at the threshold (a positive finite number).

    Returns:
        ``spike(x) -> array``: ``1`` where ``x > 0``, else ``0``, elementwise in ``x``'s dtype and shape, with
        derivative ``surrogate_derivative(name, slope)(x)``.

    Raises:
        ValueError: unknown ``name``, or ``slope`` not a positive finite number.

    Example:
        >>> spike = make_spike("fast_sigmoid", slope=25.0)
        >>> z = spike(u - threshold)
    """
    deriv = surrogate_derivative(name, slope)

    @jax.custom_jvp
    def spike(x):
        return heaviside(x)

    @spike.defjvp
    def _spike_jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        return heaviside(x), deriv(x) * dx

    spike.__name__ = spike.__qualname__ = f"spike_{name}"
    spike.__doc__ = f"Heaviside spike with a {name!r} surrogate derivative (slope {slope:g})."
    return spike
