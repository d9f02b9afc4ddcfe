"""Hessian by nested vertex elimination: ``plastix.jacve(plastix.jacve(f))``, checked against ``jax.hessian``.

The inner ``jacve`` is itself a plain JAX function (the elimination is traced like any other code), so the
outer ``jacve`` differentiates it again. Inner and outer orders are independent; this script uses reverse
inside (a gradient) and forward outside (forward-over-reverse, the usual Hessian strategy).

Run: ``python examples/hessian.py [--n 32] [--quick]``
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import plastix


def make_loss(n: int, seed: int = 0):
    """A small smooth scalar function of a vector: a one-hidden-layer net's loss plus a product term."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    W = jax.random.normal(k1, (2 * n, n)) / jnp.sqrt(n)
    target = jax.random.normal(k2, (2 * n,))

    def loss(x):
        h = jnp.tanh(W @ x)
        return 0.5 * jnp.sum((h - target) ** 2) + jnp.prod(jnp.sin(x[:3])) + jnp.sum(jnp.exp(-x * x))

    return loss


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="input dimension (default 32)")
    parser.add_argument("--quick", action="store_true", help="tiny size for tests (n=6)")
    args = parser.parse_args(argv)
    n = 6 if args.quick else args.n

    loss = make_loss(n)
    x = jnp.linspace(-1.0, 1.0, n)

    t0 = time.perf_counter()
    hess = plastix.jacve(plastix.jacve(loss, order="rev"), order="fwd")(x)
    hess = jax.block_until_ready(hess)
    seconds = time.perf_counter() - t0
    reference = jax.jit(jax.hessian(loss))(x)
    err = float(jnp.max(jnp.abs(hess - reference)))
    scale = float(jnp.max(jnp.abs(reference)))
    sym = float(jnp.max(jnp.abs(hess - hess.T)))
    print(f"Hessian of a function of {n} inputs: shape {tuple(hess.shape)}, computed in {seconds:.2f} s "
          f"(trace + compile + run)")
    print(f"max |jacve(jacve) - jax.hessian| = {err:.2e} (max |H| = {scale:.2f}); max asymmetry {sym:.2e}")
    return {"n": n, "max_error": err, "max_abs": scale, "asymmetry": sym}


if __name__ == "__main__":
    main()
