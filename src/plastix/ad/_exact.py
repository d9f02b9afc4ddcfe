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
    flow = _Flow(adj, target, blocked)
    starts = [s for s in sources if s not in blocked and s != target]
    count = 0
    while count < limit:
        path = flow.augmenting_path(starts)
        if path is None:
            break
        flow.augment(path)
        count += 1
    return count


class _Flow:
    """A unit flow of vertex-disjoint paths to ``target``, grown one augmenting path at a time.

    Residual-graph nodes are ``(x, 1)`` (x's out-side) and ``(x, 0)`` (x's in-side).
    """

    def __init__(self, adj, target: int, blocked: set[int]):
        self.adj, self.target, self.blocked = adj, target, blocked
        self.via: dict[int, int] = {}  # x -> y: one unit of flow on the edge x -> y
        self.prev: dict[int, int] = {}  # y -> x for the same edges (y != target)
        self.used: set[int] = set()  # vertices that carry flow

    def augmenting_path(self, starts) -> list[tuple[int, int]] | None:
        """A shortest path in the residual graph from an unused source to the target (BFS), or ``None``."""
        parent: dict[tuple[int, int], tuple[int, int] | None] = {}
        queue: deque[tuple[int, int]] = deque()
        for s in starts:
            if s not in self.used:
                parent[(s, 1)] = None
                queue.append((s, 1))
        end = None
        while queue and end is None:
            x, side = node = queue.popleft()
            if side:
                end = self._from_out_side(x, node, parent, queue)
            else:
                self._from_in_side(x, node, parent, queue)
        if end is None:
            return None
        path = [end]
        while parent[path[-1]] is not None:
            path.append(parent[path[-1]])
        return path[::-1]

    def _from_out_side(self, x, node, parent, queue) -> tuple[int, int] | None:
        for y in self.adj[x]:
            if y in self.blocked or self.via.get(x) == y:
                continue
            if y == self.target:
                parent[(y, 0)] = node
                return (y, 0)
            if (y, 0) not in parent:
                parent[(y, 0)] = node
                queue.append((y, 0))
        if x in self.used and x in self.prev and (x, 0) not in parent:
            parent[(x, 0)] = node  # undo the flow through x
            queue.append((x, 0))
        return None

    def _from_in_side(self, x, node, parent, queue) -> None:
        if x not in self.used and (x, 1) not in parent:
            parent[(x, 1)] = node
            queue.append((x, 1))
        p = self.prev.get(x)
        if p is not None and (p, 1) not in parent:
            parent[(p, 1)] = node  # cancel the flow p -> x
            queue.append((p, 1))

    def augment(self, path: list[tuple[int, int]]) -> None:
        """Push one unit of flow along ``path``."""
        via, prev, used = self.via, self.prev, self.used
        used.add(path[0][0])
        for (a, sa), (b, sb) in zip(path, path[1:]):
            if sa and not sb and a != b:  # flow a -> b
                via[a] = b
                if b != self.target:
                    prev[b] = a
            elif not sa and sb and a == b:
                used.add(a)
            elif sa and not sb:  # a == b: a loses its flow
                used.discard(a)
            else:  # a's in-side to b's out-side: cancel b -> a
                if via.get(b) == a:
                    del via[b]
                del prev[a]


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
    search = _AStar(cg, incumbent)
    expanded = 0
    while search.heap and search.heap[0][0] < search.best:
        if expanded >= budget or time.perf_counter() > deadline:
            break
        expanded += search.step()
    best = search.best
    lower = best if not search.heap else min(best, search.heap[0][0])
    return Exact(search.best_order, int(best), lower >= best, int(lower)), expanded


class _AStar:
    """The open and closed states of :func:`solve` and the best order so far.

    An open state is ``(f, -g, tie, order, singles, values, refined)``: its bound ``f = g + h``, the
    multiplications ``g`` of eliminating ``order``, a tie-breaker, the vertex bounds ``singles`` and group bounds
    ``values`` it inherited, and whether they were refined for it.
    """

    def __init__(self, cg: CostGraph, incumbent: Sequence[int]):
        self.cg = cg
        self.best_order, self.best = list(incumbent), cg.count(incumbent)
        self.bounds = _Bounds(cg)
        start = cg.start()
        singles = {v: self.bounds.vertex(start, v) for v in cg.vertices}
        self.groups = _groups(self.bounds, start)
        self.of = {v: k for k, group in enumerate(self.groups) for v in group.members}
        values = {k: group.value(frozenset(), singles) for k, group in enumerate(self.groups)}
        self.heap = [(sum(values.values()), 0, 0, (), singles, values, True)]
        self.closed: dict[tuple[frozenset[int], bytes], int] = {}
        self.count = 0

    def push(self, f, neg_g: int, order: tuple[int, ...], singles, values, refined: bool) -> None:
        self.count += 1
        if f < self.best:
            heapq.heappush(self.heap, (f, neg_g, self.count, order, singles, values, refined))

    def step(self) -> int:
        """Pop the best open state and expand it; returns 1, or 0 when it was closed already or its refined
        bound sent it back to the heap."""
        f, neg_g, _, order, singles, values, refined = heapq.heappop(self.heap)
        g = -neg_g
        state = self.cg.start()
        for v in order[:-1]:
            state.eliminate(v)
        touched: set[int] = set()
        if order:
            touched = set(state.pred[order[-1]]) | set(state.succ[order[-1]])
            state.eliminate(order[-1])
        gone = frozenset(order)
        key = _key(state, gone)
        if self.closed.get(key, math.inf) <= g:
            return 0
        if not refined:
            singles, values, raised = self._refine(state, gone, touched, singles, values)
            if raised and g + sum(values.values()) > f:
                self.push(g + sum(values.values()), neg_g, order, singles, values, True)
                return 0
        self.closed[key] = g
        self._expand(state, order, gone, f - g, g, singles, values)
        return 1

    def _refine(self, state: CostState, gone, touched: set[int], singles, values):
        """The bounds of the state, re-evaluated around the last eliminated vertex: ``(singles, values, raised)``."""
        singles = dict(singles)
        raised = set()
        for v in touched & self.of.keys() - gone:
            if singles[v] < state.cost(v):
                b = self.bounds.vertex(state, v)
                if b > singles[v]:
                    singles[v] = b
                    raised.add(self.of[v])
        if raised:
            values = dict(values)
            for k in raised:
                values[k] = self.groups[k].value(gone, singles)
        return singles, values, bool(raised)

    def _expand(self, state: CostState, order, gone, h, g: int, singles, values) -> None:
        remaining = [v for v in self.cg.vertices if v not in gone]
        if not remaining:
            self.best_order, self.best = list(order), g
            return
        for x in remaining:
            child_g = g + state.cost(x)
            k = self.of[x]
            new = self.groups[k].value(gone | {x}, singles)
            child_f = child_g + h - values[k] + new
            if child_f < self.best:
                child_values = dict(values)
                child_values[k] = new
                self.push(child_f, -child_g, order + (x,), singles, child_values, False)
