"""Jacobian of one LIF step's new membrane w.r.t. its weights: plastix vs jax.jacrev vs jax.jacfwd.

Run ``python -m plastix.bench.sparse``. For ``u' = reset(beta*u + W @ x)`` with ``W`` of shape (n, m), the
Jacobian ``du'/dW`` has n·n·m entries of which only n·m are structurally non-zero. Times are medians of
interleaved calls of jitted functions after warm-up, measured in one process.
"""

from __future__ import annotations

import argparse
import functools
import math

import jax
import jax.numpy as jnp

import plastix

from ._timing import first_call, interleaved_medians

__all__ = ["lif_membrane", "run"]


@jax.custom_jvp
def _spike(v):
    return (v > 0).astype(v.dtype)


@_spike.defjvp
def _spike_jvp(primals, tangents):
    (v,), (dv,) = primals, tangents
    return _spike(v), dv / (1.0 + 10.0 * jnp.abs(v)) ** 2


def lif_membrane(W, u, x, beta=0.9, threshold=1.0):
    """One LIF step with subtractive reset: the new membrane potential.

    The spike uses a fast-sigmoid surrogate derivative ``1 / (1 + 10|v|)²``.

    Args:
        W: weights of shape ``(n, m)``.
        u: membrane potentials of shape ``(n,)``.
        x: input of shape ``(m,)``.
        beta: membrane decay per step.
        threshold: firing threshold (also the size of the reset).

    Returns:
        The new membrane potential ``(n,)``: ``u' - threshold * H(u' - threshold)`` with ``u' = beta*u + W@x``.
    """
    u_new = beta * u + W @ x
    return u_new - _spike(u_new - threshold) * threshold


def _membrane_of_weights(W, *, u, x):
    return lif_membrane(W, u, x)


def run(sizes=((256, 700), (1024, 700)), repeats: int = 20, memory_limit_gib: float = 4.0) -> list[dict]:
    """Measure and print one table row per (n, m) and method; returns the rows.

    A dense method is skipped (and printed as such) when its Jacobian would exceed ``memory_limit_gib``:
    ``jax-jacrev`` at ``4·n·n·m`` bytes, ``jax-jacfwd`` at ``m`` times that.

    Args:
        sizes: ``(n, m)`` pairs: neurons and inputs.
        repeats: interleaved timed calls per method.
        memory_limit_gib: memory bound for the dense methods, in GiB.

    Returns:
        One row per measured ``(n, m, method)`` with keys ``n``, ``m``, ``method``, ``median_s``,
        ``first_call_s`` and ``stored`` (values stored: plastix's structured size, or ``n·n·m`` dense).
    """
    rows = []
    for n, m in sizes:
        key = jax.random.PRNGKey(n)
        kw, ku, kx = jax.random.split(key, 3)
        W = jax.random.normal(kw, (n, m)) / math.sqrt(m)
        u = jax.random.uniform(ku, (n,))
        x = (jax.random.uniform(kx, (m,)) < 0.05).astype(jnp.float32)
        f = functools.partial(_membrane_of_weights, u=u, x=x)
        dense_bytes = 4 * n * n * m
        methods = {"plastix-sparse": jax.jit(plastix.jacve(f, sparse=True))}
        if dense_bytes <= memory_limit_gib * 2 ** 30:
            methods["jax-jacrev"] = jax.jit(jax.jacrev(f))
        # jacfwd pushes n*m tangents of size n*m each through the step.
        if dense_bytes * m <= memory_limit_gib * 2 ** 30:
            methods["jax-jacfwd"] = jax.jit(jax.jacfwd(f))
        firsts, outs = {}, {}
        for name, fn in methods.items():
            firsts[name], outs[name] = first_call(fn, W)
        medians = interleaved_medians(methods, (W,), repeats)
        sparse = outs["plastix-sparse"]
        if "jax-jacrev" in outs:
            err = float(jnp.max(jnp.abs(sparse.todense() - outs["jax-jacrev"])))
        else:
            err = float("nan")
        print(f"\nn={n} m={m}: dense Jacobian {n * n * m:,} entries ({dense_bytes / 2 ** 30:.2f} GiB), "
              f"n*m = {n * m:,}; plastix stores {sparse.stored_size:,} values "
              f"({sparse.stored_size / (n * m):.2f} x n*m); max |plastix - jacrev| = {err:.2e}")
        print(f"  {'method':<16}{'median ms':>12}{'first call s':>14}{'vs plastix':>12}")
        base = medians["plastix-sparse"]
        for name in ("plastix-sparse", "jax-jacrev", "jax-jacfwd"):
            if name not in medians:
                need = dense_bytes * (m if name == "jax-jacfwd" else 1) / 2 ** 30
                print(f"  {name:<16}{'skipped':>12}  (needs about {need:,.0f} GiB)")
                continue
            print(f"  {name:<16}{medians[name] * 1e3:>12.3f}{firsts[name]:>14.2f}{medians[name] / base:>11.1f}x")
            rows.append({"n": n, "m": m, "method": name, "median_s": medians[name], "first_call_s": firsts[name],
                         "stored": sparse.stored_size if name == "plastix-sparse" else n * n * m})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--memory-limit-gib", type=float, default=4.0)
    args = parser.parse_args()
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s)")
    run(repeats=args.repeats, memory_limit_gib=args.memory_limit_gib)


if __name__ == "__main__":
    main()
