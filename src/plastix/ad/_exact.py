"""Exact minimum-multiplication vertex elimination: best-first (A*) search over partially eliminated graphs.

A search state is the cost graph after eliminating a set of vertices; its key is the eliminated set and a 128-bit
digest of all edge structures (the edge *sets* do not depend on the order within the set, the structures in
general may). ``g`` is the multiplications spent so far, ``h`` an admissible lower bound on the rest:

* **Vertex bound.** When ``v`` is eliminated, its predecessors ``P`` are the remaining vertices with a path to
  ``v`` through eliminated ones, so ``P`` separates the inputs from ``v``. A predecessor costs nothing only if
  its edge to ``v`` is a pure index map, which needs an index-map path to ``v`` now. So the predecessors with
  stored values number at least the minimum vertex cut between the inputs and ``v`` in which vertices with an
  index-map path to ``v`` are free (a max-flow of vertex-disjoint paths); likewise for successors, and every
  product of two stored partials costs at least one multiplication. The cut only grows as vertices are
  eliminated, so a bound stays valid for every later state.
* **Group bound.** Vertices joined by index-map edges (sums, copies) interact most: eliminating one moves
  stored partials onto the other. The remaining vertices are split into such groups (at most ``GROUP`` each);
  whatever the order, the members of a group ``C`` go in some order ``c_1, c_2, ...`` and ``c_i`` is eliminated
  in a descendant of ``G/{c_1..c_{i-1}}``, so ``min`` over the orders of ``C`` of ``sum_i b_{G/{c_1..c_{i-1}}}
  (c_i)`` (a dynamic programme over the subsets of ``C``; ``b_{G/T}`` is the vertex bound after eliminating
  ``T``) bounds the group's cost, and the groups' bounds add up.

The cut argument needs every path product to be nonzero; a structurally zero product (two index maps selecting
disjoint entries) can only arise from partials with index arrays, so graphs with any are searched with the
trivial bound 0 (still exact, only slower). Bounds are refined lazily: a child inherits its parent's bounds and
is re-evaluated around the last eliminated vertex when popped (re-queued if its bound rose); the group tables
are computed once, at the start, and stay valid (raised by the refined vertex bounds) in every later state.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import time
from array import array
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

from ._cost import CostGraph, CostState

__all__ = ["Exact", "solve"]


class Exact(NamedTuple):
    """Result of an exact search.

    Attributes:
        order: the best elimination order found.
        muls: its multiplication count.
        proven_optimal: whether no order with fewer multiplications exists.
        lower_bound: a proven lower bound on the optimum (``== muls`` when proven optimal).
    """

    order: list[int]
    muls: int
    proven_optimal: bool
    lower_bound: int


def _disjoint_paths(adj, sources, target: int, blocked: set[int], limit: int) -> int:
    """Maximum number of vertex-disjoint paths from ``sources`` to ``target`` (``target`` uncapacitated) that
    avoid ``blocked``, following ``adj`` (``succ`` forwards or ``pred`` backwards); stops at ``limit``."""
    via: dict[int, int] = {}  # x -> y: one unit of flow on the edge x -> y
    prev: dict[int, int] = {}  # y -> x for the same edges (y != target)
    used: set[int] = set()  # vertices that carry flow
    starts = [s for s in sources if s not in blocked and s != target]
    flow = 0
    while flow < limit:
        # nodes (x, 1): x's out-side, (x, 0): x's in-side; parent pointers of a BFS in the residual graph
        parent: dict[tuple[int, int], tuple[int, int] | None] = {}
        queue: deque[tuple[int, int]] = deque()
        for s in starts:
            if s not in used:
                parent[(s, 1)] = None
                queue.append((s, 1))
        end = None
        while queue and end is None:
            x, side = node = queue.popleft()
            if side:
                for y in adj[x]:
                    if y in blocked or via.get(x) == y:
                        continue
                    if y == target:
                        end = (y, 0)
                        parent[end] = node
                        break
                    if (y, 0) not in parent:
                        parent[(y, 0)] = node
                        queue.append((y, 0))
                if end is None and x in used and x in prev and (x, 0) not in parent:
                    parent[(x, 0)] = node  # undo the flow through x
                    queue.append((x, 0))
            else:
                if x not in used and (x, 1) not in parent:
                    parent[(x, 1)] = node
                    queue.append((x, 1))
                p = prev.get(x)
                if p is not None and (p, 1) not in parent:
                    parent[(p, 1)] = node  # cancel the flow p -> x
                    queue.append((p, 1))
        if end is None:
            break
        path = [end]
        while parent[path[-1]] is not None:
            path.append(parent[path[-1]])
        path.reverse()
        used.add(path[0][0])
        for (a, sa), (b, sb) in zip(path, path[1:]):
            if sa and not sb and a != b:  # flow a -> b
                via[a] = b
                if b != target:
                    prev[b] = a
            elif not sa and sb and a == b:
                used.add(a)
            elif sa and not sb:  # a == b: a loses its flow
                used.discard(a)
            else:  # a's in-side to b's out-side: cancel b -> a
                if via.get(b) == a:
                    del via[b]
                del prev[a]
        flow += 1
    return flow


class _Bounds:
    """Admissible lower bounds on the multiplications still to come (see the module docstring)."""

    def __init__(self, cg: CostGraph):
        self.cg = cg
        start = cg.start()
        self.sources = tuple(u for u in start.succ if not start.pred[u])
        self.sinks = tuple(u for u in start.succ if not start.succ[u])
        items = cg.structures.items
        sids = {sid for d in start.succ.values() for sid in d.values()}
        self.cuts = all(all(a.index is None for a in items[sid].out_axes + items[sid].in_axes)
                        and all(n > 0 for n in items[sid].sizes.values()) for sid in sids)

    def _unit(self, sid: int) -> bool:
        return self.cg.structures.items[sid].val is None

    def _unit_reach(self, state: CostState, v: int, forward: bool) -> set[int]:
        """Vertices with a path of index maps to ``v`` (``forward``) or from ``v``."""
        succ, pred = state.succ, state.pred
        seen: set[int] = set()
        stack = [v]
        while stack:
            x = stack.pop()
            for y in (pred[x] if forward else succ[x]):
                if y not in seen and self._unit(succ[y][x] if forward else succ[x][y]):
                    seen.add(y)
                    stack.append(y)
        return seen

    def vertex(self, state: CostState, v: int) -> int:
        """A lower bound on the multiplications of eliminating ``v`` in any completion of ``state``."""
        if not self.cuts:
            return 0
        succ, pred = state.succ, state.pred
        free = self._unit_reach(state, v, True)
        n_in = _disjoint_paths(succ, self.sources, v, free, sum(u not in free for u in pred[v]))
        if not n_in:
            return 0
        free = self._unit_reach(state, v, False)
        return n_in * _disjoint_paths(pred, self.sinks, v, free, sum(w not in free for w in succ[v]))


GROUP = 7  # largest group of the group bound (its table has 2**GROUP * GROUP vertex bounds)


class _Group:
    """The vertex bounds of a group's members after eliminating each subset of the others (at the start)."""

    def __init__(self, bounds: _Bounds, state: CostState, members: Sequence[int]):
        self.members = tuple(members)
        n = len(self.members)
        states = {0: state}
        for mask in range(1, 1 << n):
            low = (mask & -mask).bit_length() - 1
            states[mask] = states[mask & (mask - 1)].copy()
            states[mask].eliminate(self.members[low])
        # table[mask][i]: bound of members[i] once the members in mask are eliminated
        self.table = [[bounds.vertex(states[mask], v) if not mask >> i & 1 else 0
                       for i, v in enumerate(self.members)] for mask in range(1 << n)]

    def value(self, gone: set[int] | frozenset[int], singles: dict[int, int]) -> int:
        """The group's bound once the members in ``gone`` are eliminated; ``singles`` are current vertex
        bounds (valid in every later state)."""
        n = len(self.members)
        start = sum(1 << i for i, v in enumerate(self.members) if v in gone)
        full = (1 << n) - 1
        if start == full:
            return 0
        live = [singles.get(v, 0) for v in self.members]
        best = {start: 0}
        for mask in range(start, full + 1):
            if mask & start != start or mask == start:
                continue
            table, value = self.table, math.inf
            for i in range(n):
                if mask >> i & 1 and not start >> i & 1:
                    prior = mask & ~(1 << i)
                    value = min(value, best[prior] + max(table[prior][i], live[i]))
            best[mask] = value
        return int(best[full])


def _groups(bounds: _Bounds, state: CostState) -> list[_Group]:
    """The remaining vertices in groups joined by index-map edges (at most :data:`GROUP` each)."""
    remaining = state.remaining()
    root = {v: v for v in remaining}
    size = dict.fromkeys(remaining, 1)

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = x = root[root[x]]
        return x

    if bounds.cuts:
        for u in remaining:
            for w, sid in state.succ[u].items():
                if w in root and bounds._unit(sid):
                    a, b = find(u), find(w)
                    if a != b and size[a] + size[b] <= GROUP:
                        root[a] = b
                        size[b] += size[a]
    members: dict[int, list[int]] = {}
    for v in remaining:
        members.setdefault(find(v), []).append(v)
    return [_Group(bounds, state, m) for m in members.values()]


def _key(state: CostState, eliminated: frozenset[int]) -> tuple[frozenset[int], bytes]:
    flat = array("q")
    for u in sorted(state.succ):
        d = state.succ[u]
        for w in sorted(d):
            flat.extend((u, w, d[w]))
    return eliminated, hashlib.blake2b(flat.tobytes(), digest_size=16).digest()


def solve(cg: CostGraph, incumbent: Sequence[int], *, seconds: float = 10.0,
          max_states: int | None = None) -> tuple[Exact, int]:
    """A* over elimination states from the order ``incumbent`` (an upper bound); see :func:`optimal`.

    Returns:
        ``(result, expanded)``: the :class:`Exact` result and the number of states expanded.
    """
    deadline = time.perf_counter() + seconds
    budget = math.inf if max_states is None else max_states
    best_order, best = list(incumbent), cg.count(incumbent)
    bounds = _Bounds(cg)
    start = cg.start()
    singles = {v: bounds.vertex(start, v) for v in cg.vertices}
    groups = _groups(bounds, start)
    of = {v: k for k, group in enumerate(groups) for v in group.members}
    values = {k: group.value(frozenset(), singles) for k, group in enumerate(groups)}
    heap = [(sum(values.values()), 0, 0, (), singles, values, True)]
    closed: dict[tuple[frozenset[int], bytes], int] = {}
    count = expanded = 0
    while heap and heap[0][0] < best:
        if expanded >= budget or time.perf_counter() > deadline:
            break
        f, neg_g, _, order, singles, values, refined = heapq.heappop(heap)
        g = -neg_g
        state = cg.start()
        for v in order[:-1]:
            state.eliminate(v)
        touched: set[int] = set()
        if order:
            touched = set(state.pred[order[-1]]) | set(state.succ[order[-1]])
            state.eliminate(order[-1])
        gone = frozenset(order)
        key = _key(state, gone)
        if closed.get(key, math.inf) <= g:
            continue
        if not refined:
            singles = dict(singles)
            raised = set()
            for v in touched & of.keys() - gone:
                if singles[v] < state.cost(v):
                    b = bounds.vertex(state, v)
                    if b > singles[v]:
                        singles[v] = b
                        raised.add(of[v])
            if raised:
                values = dict(values)
                for k in raised:
                    values[k] = groups[k].value(gone, singles)
                refined_f = g + sum(values.values())
                if refined_f > f:
                    count += 1
                    if refined_f < best:
                        heapq.heappush(heap, (refined_f, neg_g, count, order, singles, values, True))
                    continue
        closed[key] = g
        expanded += 1
        remaining = [v for v in cg.vertices if v not in gone]
        if not remaining:
            best_order, best = list(order), g
            continue
        h = f - g
        for x in remaining:
            child_g = g + state.cost(x)
            k = of[x]
            new = groups[k].value(gone | {x}, singles)
            child_f = child_g + h - values[k] + new
            if child_f < best:
                child_values = dict(values)
                child_values[k] = new
                count += 1
                heapq.heappush(heap, (child_f, -child_g, count, order + (x,), singles, child_values, False))
    lower = best if not heap else min(best, heap[0][0])
    return Exact(best_order, int(best), lower >= best, int(lower)), expanded
