"""A metadata-only mirror of a :class:`Graph` for fast multiplication counting.

Every edge of a :class:`CostGraph` is a *structure id*: an interned :class:`Partial` whose stored values are
replaced by a placeholder (labels, per-axis index maps, label sizes and whether values are stored; no arrays).
Composition and addition of structures run the same code as :func:`plastix.ad._partial.compose` and
:func:`plastix.ad._partial.add` (the :class:`_Composer` that unifies the contracted axes, and the same label and
count bookkeeping), so every count equals :func:`plastix.count_muls`. Both are memoised per pair of structure
ids, which makes a vertex elimination a handful of dictionary operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._graph import Graph
from ._partial import Axis, Partial, _Composer, canonical, structure_key

__all__ = ["CostGraph", "CostState"]


class _Stored:
    """Placeholder for stored values: indexing (a gather of values) keeps it a placeholder."""

    def __getitem__(self, index) -> _Stored:
        return self

    def __repr__(self) -> str:
        return "<values>"


_STORED = _Stored()
_NONE = -1  # structure id of a structurally zero product


class _Structures:
    """Interned edge structures with memoised composition (muls and result) and addition."""

    def __init__(self):
        self.ids: dict[tuple, int] = {}
        self.items: list[Partial] = []
        self.compose_memo: dict[int, tuple[int, int]] = {}
        self.contracts_memo: dict[int, bool] = {}
        self.add_memo: dict[int, int] = {}

    def intern(self, p: Partial) -> int:
        p = canonical(p, structure_only=True)
        key = (structure_key(p), p.val_labels, p.val is None)
        sid = self.ids.get(key)
        if sid is None:
            sid = self.ids[key] = len(self.items)
            self.items.append(p)
        return sid

    def of(self, p: Partial) -> int:
        """The structure id of a real partial (its values dropped)."""
        stored = None if p.val is None else _STORED
        return self.intern(p.replace(val=stored))

    def compose(self, outer: int, inner: int) -> tuple[int, int]:
        """``(result id or -1 when structurally zero, multiplications)`` of ``outer @ inner``; memoised."""
        key = (outer << 32) | inner
        hit = self.compose_memo.get(key)
        if hit is None:
            hit = self.compose_memo[key] = self._compose(self.items[outer], self.items[inner])
        return hit

    def _compose(self, outer: Partial, inner: Partial) -> tuple[int, int]:
        # The structural half of plastix.ad._partial.compose.
        work = _Composer(outer, inner)
        chained = work.chain()
        if chained is None:
            return _NONE, 0
        out_axes, in_axes, in_positions, in_vals, factor, muls = chained
        n_present = sum(v is not None for _, v in work.vals)
        if not n_present:
            val_labels, stored = (), (None if factor == 1 else _STORED)
        else:
            val_labels, stored = tuple(sorted(in_vals & in_positions)), _STORED
        result = Partial(outer.out_shape, inner.in_shape, work.sizes, out_axes, in_axes, val_labels, stored,
                         outer.dtype)
        return self.intern(result), muls

    def contracts(self, outer: int, inner: int) -> bool:
        """Whether ``outer @ inner`` sums over a label of stored values on both sides (a matrix-product-like
        contraction: a ``dot_general`` in :func:`plastix.jacve`, not an elementwise product); memoised."""
        key = (outer << 32) | inner
        hit = self.contracts_memo.get(key)
        if hit is None:
            a, b = self.items[outer], self.items[inner]
            chained = _Composer(a, b).chain() if a.val is not None and b.val is not None else None
            hit = self.contracts_memo[key] = chained is not None and bool(chained[3] - chained[2])
        return hit

    def add(self, a: int, b: int) -> int:
        """The structure id of ``a + b`` (as :func:`plastix.ad._partial.add`); memoised."""
        key = (a << 32) | b
        hit = self.add_memo.get(key)
        if hit is None:
            hit = self.add_memo[key] = self._add(self.items[a], self.items[b])
        return hit

    def _add(self, a: Partial, b: Partial) -> int:
        if structure_key(a) != structure_key(b):
            n_out = len(a.out_shape)
            labels = tuple(range(n_out + len(a.in_shape)))
            sizes = dict(zip(labels, a.out_shape + a.in_shape))
            return self.intern(Partial(a.out_shape, a.in_shape, sizes, [Axis((x,)) for x in labels[:n_out]],
                                       [Axis((x,)) for x in labels[n_out:]], labels, _STORED, a.dtype))
        labels = tuple(sorted(set(a.val_labels) | set(b.val_labels)))
        return self.intern(a.replace(val_labels=labels, val=_STORED))


class CostState:
    """A partially eliminated cost graph: edge structures in the adjacency of :func:`eliminate`.

    Attributes:
        succ: ``{u: {w: structure id}}`` in the insertion order :func:`plastix.ad.eliminate` uses.
        pred: ``{w: {u: None}}`` likewise.
        muls: multiplications performed so far.
    """

    __slots__ = ("graph", "succ", "pred", "muls")

    def __init__(self, graph: CostGraph, succ, pred, muls: int = 0):
        self.graph = graph
        self.succ = succ
        self.pred = pred
        self.muls = muls

    def copy(self) -> CostState:
        return CostState(self.graph, {u: dict(d) for u, d in self.succ.items()},
                         {w: dict(d) for w, d in self.pred.items()}, self.muls)

    def cost(self, v: int) -> int:
        """Multiplications that eliminating ``v`` now would perform (without eliminating it)."""
        compose = self.graph.structures.compose
        succ = self.succ
        total = 0
        for outer in succ[v].values():
            for u in self.pred[v]:
                total += compose(outer, succ[u][v])[1]
        return total

    def fill(self, v: int) -> int:
        """Number of edges that eliminating ``v`` now would add (pairs ``u -> w`` not yet connected)."""
        succ = self.succ
        outs = succ[v]
        return sum(1 for u in self.pred[v] for w in outs if w not in succ[u])

    def eliminate(self, v: int) -> int:
        """Eliminate ``v``; returns its multiplications (also added to ``muls``)."""
        structures = self.graph.structures
        compose, add = structures.compose, structures.add
        succ, pred = self.succ, self.pred
        ins = pred.pop(v)
        outs = succ.pop(v)
        total = 0
        for w, outer in outs.items():
            pw = pred[w]
            del pw[v]
            for u in ins:
                su = succ[u]
                product, count = compose(outer, su[v])
                total += count
                if product < 0:
                    continue
                old = su.get(w)
                if old is None:
                    su[w] = product
                    pw[u] = None
                else:
                    su[w] = add(old, product)
        for u in ins:
            del succ[u][v]
        self.muls += total
        return total

    def remaining(self) -> list[int]:
        """Intermediate vertices not yet eliminated, in forward order."""
        return [v for v in self.graph.vertices if v in self.succ]


class CostGraph:
    """The structure of a :class:`Graph` without arrays; counts multiplications of any elimination order fast.

    Example:
        >>> cg = CostGraph(plastix.graph(f)(x))
        >>> cg.count(cg.vertices[::-1])  # == plastix.count_muls(f, order="rev")(x)
    """

    def __init__(self, graph: Graph):
        self.vertices: tuple[int, ...] = tuple(graph.vertices)
        self.fingerprint: str = graph.fingerprint()
        self.structures = _Structures()
        succ: dict[int, dict[int, int]] = {i: {} for i in graph.info}
        pred: dict[int, dict[int, None]] = {i: {} for i in graph.info}
        for (u, w), p in graph.edges.items():
            succ[u][w] = self.structures.of(p)
            pred[w][u] = None
        self._start = CostState(self, succ, pred)

    def start(self) -> CostState:
        """A fresh state with no vertex eliminated."""
        return self._start.copy()

    def count(self, order: Iterable[int]) -> int:
        """Multiplications of eliminating the vertices in ``order`` (a permutation of ``vertices``)."""
        state = self.start()
        for v in order:
            state.eliminate(v)
        return state.muls

    def contractions(self, order: Iterable[int]) -> int:
        """Number of products in eliminating ``order`` that contract a label of both stored values.

        The multiplication count prices such a product by its size alone; under ``jax.vmap`` on CPU a small one
        costs far more (XLA runs a batched ``dot_general`` of tiny matrices ~1 us per example, while elementwise
        products fuse), so among orders with nearly the same count fewer contractions tend to run faster.
        """
        state = self.start()
        contracts = self.structures.contracts
        total = 0
        for v in order:
            succ = state.succ
            total += sum(contracts(outer, succ[u][v]) for outer in succ[v].values() for u in state.pred[v])
            state.eliminate(v)
        return total

    def prefix_counts(self, order: Sequence[int]) -> list[int]:
        """Multiplications of each elimination step of ``order``."""
        state = self.start()
        return [state.eliminate(v) for v in order]
