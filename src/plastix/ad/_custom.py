"""Rules of ``custom_jvp`` and ``custom_vjp`` calls: structured partials from the user's derivative rule.

Their partials are the Jacobian blocks of another function (the JVP, or the VJP's pullback), found by building
and eliminating that function's own graph, so these entries of the rule table sit above graph building and
elimination; importing :mod:`plastix.ad` registers them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._eliminate import eliminate
from ._graph import build_graph
from ._partial import Partial, is_local
from ._rules import P, active_call, defrule, is_inexact

__all__ = ["sub_jacobian"]


def sub_jacobian(fun: Callable, args: Sequence) -> list[list[Partial | None]]:
    """Structured Jacobian blocks ``[output][input]`` of ``fun(*args)`` (a flat list of arrays), eliminated in
    reverse order."""
    closed = jax.make_jaxpr(fun)(*args)
    graph = build_graph(closed, list(args))
    edges, _ = eliminate(graph, list(reversed(graph.vertices)))
    return [[edges.get((i, o)) for i in graph.inputs] for o in graph.outputs]



def _custom_jvp_partials(invals, outvals, active, **params):
    """Partials of a ``custom_jvp`` function from its JVP rule (not from its primal implementation)."""
    f, idx, primals = active_call(P.custom_jvp_call_p, params, invals, active)
    blocks = sub_jacobian(lambda *tangents: jax.jvp(f, primals, list(tangents))[1], primals)
    result: list = [None] * len(invals)
    for j, k in enumerate(idx):
        result[k] = [blocks[o][j] for o in range(len(outvals))]
    return result


def _custom_vjp_partials(invals, outvals, active, **params):
    """Partials of a ``custom_vjp`` function from its backward rule, as ``jax.jacrev`` takes them: row ``i`` of
    a block is the rule applied to the basis cotangent ``e_i`` (a rule need not be linear, e.g. clipping).

    Where the rule's structure gives each input entry at most one contributing output entry (elementwise
    surrogate gradients), one application to all-ones cotangents gives every row at once and the block stays
    diagonal (exact for any rule that maps a zero cotangent to zero); otherwise the rule is applied to every
    basis vector (a dense block). Partials are composed linearly, so where a rule that is not linear in its
    cotangent (clipping) is chained with other operations, ``jax.jacrev`` (which feeds it the actual cotangents)
    can differ.
    """
    f, idx, primals = active_call(P.custom_vjp_call_p, params, invals, active)
    outs, vjp = jax.vjp(f, *primals)

    def pullback(o, ct):
        full = [jnp.zeros_like(out) for out in outs]
        full[o] = ct
        return list(vjp(full))

    result: list = [[None] * len(outvals) if active[k] else None for k in range(len(invals))]
    for o in (o for o, out in enumerate(outs) if is_inexact(out)):
        structure = sub_jacobian(functools.partial(pullback, o), [outs[o]])
        at_ones = None
        for j, k in enumerate(idx):
            p = structure[j][0]
            if p is None:
                continue
            if is_local(p):
                at_ones = pullback(o, jnp.ones_like(outs[o])) if at_ones is None else at_ones
                result[k][o] = Partial.elementwise(at_ones[j], np.shape(primals[j]), np.shape(outs[o]),
                                                   jnp.result_type(outs[o]))
            else:
                result[k][o] = _dense_vjp_block(lambda ct, o=o, j=j: pullback(o, ct)[j], outs[o], primals[j])
    return result


def _dense_vjp_block(pullback, out, x) -> Partial:
    basis = jnp.eye(int(np.size(out)), dtype=jnp.result_type(out)).reshape((-1,) + np.shape(out))
    rows = jax.vmap(pullback)(basis).astype(jnp.result_type(out))
    return Partial.dense(rows.reshape(np.shape(out) + np.shape(x)), np.shape(out), np.shape(x))


defrule(P.custom_jvp_call_p, _custom_jvp_partials)
defrule(P.custom_vjp_call_p, _custom_vjp_partials)
