"""Black-Scholes: the first-order greeks as computed by reverse vertex elimination (TASKS.md section 6).

The task function is itself a Jacobian: the five partials of the Black-Scholes call price, accumulated in
plain JAX by eliminating the intermediate vertices of the price's graph from last to first, as the
reference (Graphax's ``jacve(..., order="rev")``) does. Its own Jacobian is the matrix of second-order
greeks. The elemental partials are the ones the reference attaches (TASKS.md, table in 6b).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["black_scholes", "black_scholes_jacobian", "black_scholes_jacobian_single", "black_scholes_jacobian_args"]

SQRT2 = math.sqrt(2.0)  # a constant, not a graph operation
_SQRT_PI = math.sqrt(math.pi)


def black_scholes(S, K, r, sigma, T):
    """The Black-76 form of the call price V (scalars), in the reference's trace order."""
    F = jnp.exp(r * T) * S
    d1 = (jnp.log(F / K) + (sigma**2 / 2.0) * T) / (sigma * jnp.sqrt(T))
    d2 = d1 - sigma * jnp.sqrt(T)  # sqrt(T) recomputed
    disc = jnp.exp((-r) * T)
    return disc * (F * ((1.0 + lax.erf(d1 / SQRT2)) / 2.0) - K * ((1.0 + lax.erf(d2 / SQRT2)) / 2.0))


class _Graph:
    """Vertices (values) and edges ``(i, j) -> dj/di`` of a scalar computation, for the elimination."""

    def __init__(self, inputs):
        self.values = list(inputs)
        self.n_inputs = len(inputs)
        self.edges: dict[tuple[int, int], object] = {}

    def op(self, value, *partials):
        """Add a vertex; ``partials`` are ``(predecessor id or None for a literal, elemental partial)``."""
        j = len(self.values)
        self.values.append(value)
        for i, p in partials:
            if i is not None:  # no partial for Python-float literal operands
                self.edges[(i, j)] = p
        return j

    # elemental operations with the reference's elemental partials
    def mul(self, i, k):
        x, y = self.values[i], self.values[k]
        return self.op(x * y, (i, y), (k, x))

    def div(self, i, k):
        x, y = self._val(i), self._val(k)
        dy = None if self._id(k) is None else -x / y**2  # nothing is computed for a literal divisor
        return self.op(x / y, (self._id(i), 1.0 / y), (self._id(k), dy))

    def add(self, i, k):
        return self.op(self._val(i) + self._val(k), (self._id(i), 1.0), (self._id(k), 1.0))

    def sub(self, i, k):
        return self.op(self._val(i) - self._val(k), (self._id(i), 1.0), (self._id(k), -1.0))

    def neg(self, i):
        return self.op(-self.values[i], (i, -1.0))

    def exp(self, i):
        out = jnp.exp(self.values[i])
        return self.op(out, (i, out))

    def log(self, i):
        x = self.values[i]
        return self.op(jnp.log(x), (i, 1.0 / x))

    def square(self, i):
        x = self.values[i]
        return self.op(x**2, (i, 2.0 * lax.integer_pow(x, 1)))  # the reference's 2*x^1

    def sqrt(self, i):
        out = jnp.sqrt(self.values[i])
        return self.op(out, (i, 0.5 / out))

    def erf(self, i):
        x = self.values[i]
        return self.op(lax.erf(x), (i, 2.0 * jnp.exp(-(x**2)) / _SQRT_PI))

    # operands are vertex ids (int) or Python-float literals (float)
    def _val(self, i):
        return i if isinstance(i, float) else self.values[i]

    @staticmethod
    def _id(i):
        return None if isinstance(i, float) else i

    def eliminate_reverse(self, output):
        """Eliminate the intermediate vertices from last to first; return the input-to-output edges."""
        for j in reversed(range(self.n_inputs, output)):
            preds = [i for (i, k) in self.edges if k == j]
            succs = [k for (i, k) in self.edges if i == j]
            for i in preds:
                for k in succs:
                    prod = self.edges[(j, k)] * self.edges[(i, j)]
                    self.edges[(i, k)] = self.edges[(i, k)] + prod if (i, k) in self.edges else prod
            for i in preds:
                del self.edges[(i, j)]
            for k in succs:
                del self.edges[(j, k)]
        return tuple(self.edges.get((i, output), 0.0) for i in range(self.n_inputs))


def black_scholes_jacobian_single(S, K, r, sigma, T):
    """(dV/dS, dV/dK, dV/dr, dV/dsigma, dV/dT) of the Black-Scholes price, scalars, by reverse elimination."""
    g = _Graph([S, K, r, sigma, T])
    S, K, r, sigma, T = range(5)
    t1 = g.mul(r, T)
    t2 = g.exp(t1)
    F = g.mul(t2, S)
    t3 = g.div(F, K)
    t4 = g.log(t3)
    t5 = g.square(sigma)
    t6 = g.div(t5, 2.0)
    t7 = g.mul(t6, T)
    t8 = g.add(t4, t7)
    t9 = g.sqrt(T)
    t10 = g.mul(sigma, t9)
    d1 = g.div(t8, t10)
    t11 = g.sqrt(T)  # recomputed
    t12 = g.mul(sigma, t11)
    d2 = g.sub(d1, t12)
    t13 = g.neg(r)
    t14 = g.mul(t13, T)
    disc = g.exp(t14)
    t16 = g.div(d1, SQRT2)
    t17 = g.erf(t16)
    t18 = g.add(1.0, t17)
    P1 = g.div(t18, 2.0)
    t19 = g.mul(F, P1)
    t20 = g.div(d2, SQRT2)
    t21 = g.erf(t20)
    t22 = g.add(1.0, t21)
    P2 = g.div(t22, 2.0)
    t23 = g.mul(K, P2)
    t24 = g.sub(t19, t23)
    V = g.mul(disc, t24)
    return g.eliminate_reverse(V)


# AlphaGrad differentiates the vmapped function (batch 1).
black_scholes_jacobian = jax.vmap(black_scholes_jacobian_single)


def black_scholes_jacobian_args():
    """The example input with the batch axis: five float32 arrays of shape (1,), all 1.0."""
    return tuple(jnp.ones((1,), jnp.float32) for _ in range(5))
