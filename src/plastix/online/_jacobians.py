"""The sparse Jacobians of one time step: H = ds'/ds, F = ds'/dθ and the readout's ∂out/∂s, ∂out/∂θ."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.extend.core import Literal

from ..ad._eliminate import eliminate, resolve_order
from ..ad._graph import Graph, reachable
from ..ad._partial import Axis, Partial, compose
from ..ad.api import _Traced

__all__ = ["StepJacobians", "step_jacobians", "is_local", "diagonal_part", "batch_vjp", "split_step"]


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


def split_step(step, params, state, x):
    """``step`` split at its new state: ``out = readout(θ, s, x, s')`` with ``s' = new_state(θ, s, x)``.

    ``readout`` evaluates the step's jaxpr with every use of a new-state value read from its argument ``s'``
    instead, so its derivative in ``s'`` is the cotangent of the new state (``δ = ∂ℓ/∂s'``) and its derivatives
    in ``θ``, ``s`` and ``x`` are the paths that bypass the new state. ``readout(θ, s, x, new_state(θ, s, x))``
    equals ``out`` for any step, so the chain rule through the two pieces is exact.

    Args:
        step: ``step(params, state, x) -> (new_state, out)`` for one example.
        params, state, x: arguments of one example (arrays or ``jax.ShapeDtypeStruct``).

    Returns:
        ``(new_state_fn, readout_fn)``: ``new_state_fn(params, state, x)`` and
        ``readout_fn(params, state, x, new_state) -> out``.
    """
    flat, in_tree = jax.tree.flatten((params, state, x))
    closed, shapes = jax.make_jaxpr(lambda *a: step(*jax.tree.unflatten(in_tree, a)), return_shape=True)(*flat)
    state_tree, out_tree = jax.tree.structure(shapes[0]), jax.tree.structure(shapes[1])
    jaxpr, n_state = closed.jaxpr, state_tree.num_leaves
    overrides = {}
    for k, var in enumerate(jaxpr.outvars[:n_state]):
        if not isinstance(var, Literal):
            overrides.setdefault(var, k)

    def readout(params, state, x, new_state):
        new_leaves = jax.tree.leaves(new_state)
        env = {}

        def write(var, value):
            env[var] = new_leaves[overrides[var]] if var in overrides else value

        def read(var):
            return var.val if isinstance(var, Literal) else env[var]

        for var, value in zip(jaxpr.constvars, closed.consts):
            write(var, value)
        for var, value in zip(jaxpr.invars, jax.tree.leaves((params, state, x))):
            write(var, value)
        for eqn in jaxpr.eqns:
            outs = eqn.primitive.bind(*map(read, eqn.invars), **eqn.primitive.get_bind_params(eqn.params))
            for var, value in zip(eqn.outvars, outs if eqn.primitive.multiple_results else [outs]):
                write(var, value)
        return jax.tree.unflatten(out_tree, [read(v) for v in jaxpr.outvars[n_state:]])

    return (lambda params, state, x: step(params, state, x)[0]), readout
