"""The sparse Jacobians of one time step: H = ds'/ds, F = ds'/dθ and the readout's ∂out/∂s, ∂out/∂θ."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..ad._eliminate import eliminate, resolve_order
from ..ad._graph import Graph, reachable
from ..ad._partial import Axis, Partial, compose
from ..ad.api import _Traced

__all__ = ["StepJacobians", "step_jacobians", "is_local", "diagonal_part", "batch_vjp"]


@dataclass
class StepJacobians:
    """Blocks of one step's state Jacobians, indexed by flat leaf positions (``None`` = structurally zero).

    ``H[a][b] = ds'_a/ds_b`` and ``F[a][p] = ds'_a/dθ_p``; ``H_local`` is ``H`` accumulated without the edges
    that couple different neurons (used by ``eprop``).
    """

    H: list[list[Partial | None]]
    F: list[list[Partial | None]]
    H_local: list[list[Partial | None]] | None


def is_local(p: Partial) -> bool:
    """True when ``p`` maps every element to the element at the same index (a neuron to itself)."""
    if p.out_shape != p.in_shape:
        return False
    return all(a.index is None and b.index is None and a.labels == b.labels for a, b in zip(p.out_axes, p.in_axes))


def diagonal_part(p: Partial) -> Partial:
    """The same-index (per-neuron) part of a square partial, as a diagonal partial."""
    if is_local(p):
        return p
    n = max(1, int(jnp.size(jnp.zeros(p.out_shape, jnp.int8))))
    diag = jnp.diagonal(p.todense().reshape(n, n)).reshape(p.out_shape)
    return Partial.elementwise(diag, p.in_shape, p.out_shape, p.dtype)


def batch_vjp(cotangents, p: Partial):
    """``sum_b cotangents[b] · p_b`` for a partial whose stored values have a leading batch axis ``b``.

    Args:
        cotangents: array of shape ``(batch,) + p.out_shape``.
        p: a partial with ``val`` of shape ``(batch,) + per-example value shape``.

    Returns:
        A dense array of ``p.in_shape``: the products summed over the batch in one contraction.
    """
    ct = jnp.asarray(cotangents, p.dtype)
    labels = tuple(range(len(p.out_shape)))
    ct = Partial((), p.out_shape, dict(zip(labels, p.out_shape)), (),
                 tuple(Axis((x,)) for x in labels), labels, ct, p.dtype)
    product, _ = compose(ct, p, batch_sum=True)
    return jnp.zeros(p.in_shape, p.dtype) if product is None else product.todense()


def step_jacobians(step, params, state, x, *, order="rev", local: bool = False) -> StepJacobians:
    """Trace ``step(params, state, x) -> (new_state, out)`` and eliminate the graph of its new state once.

    Args:
        local: also accumulate ``H_local`` (paths from state to new state that never cross between neurons).
    """
    traced = _Traced(lambda p, s, x: step(p, s, x)[0], (0, 1), False, (params, state, x), {}, "plastix.online")
    g = traced.graph
    n_params = len(jax.tree.leaves(params))
    n_state = len(jax.tree.leaves(state))
    edges, _ = eliminate(g, resolve_order(g, order))
    H = [[edges.get((g.inputs[n_params + b], g.outputs[a])) for b in range(n_state)] for a in range(n_state)]
    F = [[edges.get((g.inputs[p], g.outputs[a])) for p in range(n_params)] for a in range(n_state)]
    H_local = None
    if local:
        state_ids = g.inputs[n_params:]
        derived = reachable(g.edges, state_ids)
        kept = {k: p for k, p in g.edges.items() if k[0] in derived and is_local(p)}
        pruned = Graph(state_ids, g.outputs, kept, g.info, g.values)
        local_edges, _ = eliminate(pruned, resolve_order(pruned, order))
        H_local = [[local_edges.get((state_ids[b], g.outputs[a])) for b in range(n_state)] for a in range(n_state)]
    return StepJacobians(H, F, H_local)
