"""Cross-country vertex elimination on a :class:`Graph`."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._graph import Graph, build_graph
from ._partial import Partial, add, compose
from ._rules import Rounding

__all__ = ["eliminate", "resolve_order", "sub_jacobian"]

Order = str | Sequence[int]  # or a plastix.ad.orders.Order, or a 1-d integer NumPy/JAX array


def resolve_order(graph: Graph, order: Order) -> list[int]:
    """Turn an order name, a saved :class:`plastix.ad.orders.Order` or a sequence of vertex ids into a validated
    elimination order.

    Names: ``"fwd"``/``"forward"``, ``"rev"``/``"reverse"``, ``"markowitz"``, ``"reverse_markowitz"``,
    ``"min_fill"`` and ``"search"`` (see :mod:`plastix.ad.orders`; computed here, outside any jit).

    Args:
        graph: the :class:`plastix.ad.Graph` to eliminate (e.g. from :func:`plastix.graph`).
        order: an order name, a saved :class:`plastix.ad.orders.Order`, or a sequence of vertex ids.

    Returns:
        The elimination order as a list of ``int`` vertex ids, a permutation of ``graph.vertices``.

    Raises:
        ValueError: for an unknown order name (the message lists the valid ones), a saved order made for another
            graph, or a sequence that is not a permutation of ``graph.vertices`` (the message lists the missing,
            repeated and unknown ids).
        TypeError: ``order`` is none of these (``None``, a number, a bool, a set, a float array, ...).

    Example:
        >>> g = plastix.graph(f)(x)
        >>> plastix.ad.resolve_order(g, "markowitz")     # list of vertex ids
        >>> plastix.jacve(f, order=plastix.ad.resolve_order(g, "min_fill"))(x)
    """
    from . import orders

    vertices = graph.vertices
    if isinstance(order, str | orders.Order):
        order = orders.resolve(graph, order)
    order = _vertex_ids(order)
    known = set(vertices)
    seen: set = set()
    repeated, unknown = [], []
    for v in order:
        if v not in known:
            unknown.append(v)
        elif v in seen:
            repeated.append(v)
        seen.add(v)
    missing = [v for v in vertices if v not in seen]
    if missing or repeated or unknown:
        problems = [f"{name} vertices {ids}" for name, ids in
                    (("missing", missing), ("repeated", sorted(set(repeated))), ("unknown", unknown)) if ids]
        span = f"{vertices[0]}..{vertices[-1]}" if vertices else "none"
        raise ValueError(f"invalid elimination order: {'; '.join(problems)} (expected a permutation of the "
                         f"{len(vertices)} ids in Graph.vertices: {span})")
    return order


_WHAT_AN_ORDER_IS = ("an elimination order is a name ('fwd', 'rev', 'markowitz', 'reverse_markowitz', 'min_fill', "
                     "'search', 'forward', 'reverse'), a plastix.ad.orders.Order, or a sequence (list, tuple, "
                     "1-d integer array) of integer vertex ids")


def _vertex_ids(order) -> list[int]:
    """``order`` as a list of Python ints; a ``TypeError`` saying what an order may be for anything else."""
    if isinstance(order, np.ndarray | jax.Array) and not isinstance(order, jax.core.Tracer):
        if order.ndim == 1 and (order.size == 0 or jnp.issubdtype(order.dtype, jnp.integer)):
            return [int(v) for v in np.asarray(order)]
    elif isinstance(order, Sequence) and not isinstance(order, str | bytes):
        ids = list(order)
        bad = [v for v in ids if not isinstance(v, int | np.integer) or isinstance(v, bool | np.bool_)]
        if not bad:
            return [int(v) for v in ids]
        raise TypeError(f"{_WHAT_AN_ORDER_IS}; got a sequence with {bad[0]!r} ({type(bad[0]).__name__})")
    raise TypeError(f"{_WHAT_AN_ORDER_IS}; got {_short(order)}")


def _short(x) -> str:
    if isinstance(x, np.ndarray | jax.Array):
        return f"a {x.dtype} array of shape {tuple(x.shape)}"
    text = repr(x)
    return (text if len(text) <= 60 else text[:57] + "...") + f" ({type(x).__name__})"


def eliminate(graph: Graph, order: Sequence[int]) -> tuple[dict[tuple[int, int], Partial], int]:
    """Eliminate the intermediate vertices of ``graph`` in ``order``.

    Eliminating ``v`` replaces every path ``u -> v -> w`` by the edge ``u -> w`` with partial
    ``dw/dv @ dv/du`` (added to an existing ``u -> w`` edge).

    Returns:
        The remaining input-to-output edges ``{(input_id, output_id): Partial}`` and the number of
        multiplications performed (see ``plastix.count_muls`` for the convention).
    """
    edges = dict(graph.edges)
    preds: dict[int, dict[int, None]] = {}
    succs: dict[int, dict[int, None]] = {}
    for (u, w) in edges:
        succs.setdefault(u, {})[w] = None
        preds.setdefault(w, {})[u] = None
    muls = 0
    for v in order:
        ins = list(preds.pop(v, {}))
        outs = list(succs.pop(v, {}))
        for w in outs:
            outer = edges.pop((v, w))
            del preds[w][v]
            for u in ins:
                product, count = _compose(outer, edges[(u, v)])
                muls += count
                if product is None:
                    continue
                if (u, w) in edges:
                    edges[(u, w)] = add(edges[(u, w)], product)
                else:
                    edges[(u, w)] = product
                    succs.setdefault(u, {})[w] = None
                    preds.setdefault(w, {})[u] = None
        for u in ins:
            del edges[(u, v)]
            del succs[u][v]
    return edges, muls


def _compose(outer: Partial, inner: Partial) -> tuple[Partial | None, int]:
    """:func:`compose`, where a :class:`Rounding` edge (``reduce_precision``) rounds the partial on its other side."""
    if isinstance(inner, Rounding):
        return inner.round(outer), 0
    if isinstance(outer, Rounding):
        return outer.round(inner), 0
    return compose(outer, inner)


def sub_jacobian(fun, args) -> list[list[Partial | None]]:
    """Structured Jacobian blocks ``[output][input]`` of ``fun(*args)`` (a flat list of arrays).

    Used for calls whose partials come from another function (the JVP of a ``custom_jvp``, the VJP of a
    ``custom_vjp``); eliminates in reverse order.
    """
    closed = jax.make_jaxpr(fun)(*args)
    graph = build_graph(closed, list(args))
    edges, _ = eliminate(graph, list(reversed(graph.vertices)))
    return [[edges.get((i, o)) for i in graph.inputs] for o in graph.outputs]
