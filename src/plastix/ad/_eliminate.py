"""Cross-country vertex elimination on a :class:`Graph`."""

from __future__ import annotations

from collections.abc import Sequence

from ._graph import Graph
from ._partial import Partial, add, compose
from ._rules import Rounding

__all__ = ["eliminate"]


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
