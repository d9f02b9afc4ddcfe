"""Cross-country vertex elimination on a :class:`Graph`."""

from __future__ import annotations

from collections.abc import Sequence

import jax

from ._graph import Graph, build_graph
from ._partial import Partial, add, compose

__all__ = ["eliminate", "resolve_order", "sub_jacobian"]

Order = str | Sequence[int]  # or a plastix.ad.orders.Order


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

    Example:
        >>> g = plastix.graph(f)(x)
        >>> plastix.ad.resolve_order(g, "markowitz")     # list of vertex ids
        >>> plastix.jacve(f, order=plastix.ad.resolve_order(g, "min_fill"))(x)
    """
    from . import orders

    vertices = graph.vertices
    if isinstance(order, str | orders.Order):
        order = orders.resolve(graph, order)
    order = list(order)
    known = set(vertices)
    seen: set = set()
    repeated, unknown = [], []
    for v in order:
        if not isinstance(v, int) or isinstance(v, bool) or v not in known:
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
    return [int(v) for v in order]


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
                product, count = compose(outer, edges[(u, v)])
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


def sub_jacobian(fun, args) -> list[list[Partial | None]]:
    """Structured Jacobian blocks ``[output][input]`` of ``fun(*args)`` (a flat list of arrays).

    Used for calls whose partials come from another function (the JVP of a ``custom_jvp``, the VJP of a
    ``custom_vjp``); eliminates in reverse order.
    """
    closed = jax.make_jaxpr(fun)(*args)
    graph = build_graph(closed, list(args))
    edges, _ = eliminate(graph, list(reversed(graph.vertices)))
    return [[edges.get((i, o)) for i in graph.inputs] for o in graph.outputs]
