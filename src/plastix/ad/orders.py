"""Vertex elimination orders: classic heuristics, an anytime search, and saved orders tied to their graph.

Every function takes a :class:`~plastix.ad.Graph` (from ``plastix.graph(f)(*args)``) or its
:class:`~plastix.ad.CostGraph` and returns a permutation of ``graph.vertices``. Multiplications are counted on the
cost graph with the convention of :func:`plastix.count_muls`.

Heuristics (also accepted by name as ``plastix.jacve(f, order=...)``):

* ``forward`` / ``reverse``: increasing / decreasing vertex id.
* ``markowitz``: AlphaGrad's "minimal Markowitz" with structure-aware weights: after pre-eliminating the vertices
  of Markowitz degree < 2 (one predecessor and one successor), repeatedly eliminate the vertex whose elimination
  costs the fewest multiplications now (for scalar partials this is |predecessors| x |successors|, the Markowitz
  degree; for tensors the products' sizes), ties to the lowest id.
* ``reverse_markowitz``: the same, ties to the highest id (reverse mode's preference).
* ``min_fill``: lowest fill-in first (fewest new edges), ties by cost, then lowest id.

:func:`optimal` finds the minimum-multiplication order by best-first search with admissible lower bounds
(proving it optimal, or returning a proven lower bound when its budget runs out). :func:`search` runs it briefly
first, then improves on the best order by randomised greedy rollouts and simulated annealing.
``order="search"`` in :func:`plastix.jacve` runs it once per graph fingerprint and keeps the result in a cache
directory (:func:`cache_dir`); an :class:`Order` carries its graph's fingerprint and refuses other graphs.

:func:`resolve` (exported as :func:`plastix.ad.resolve_order`) is the one place where an order given to
:func:`plastix.jacve` (an :data:`OrderSpec`: a name, an :class:`Order` or vertex ids) becomes a validated vertex order.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import _exact
from ._cost import CostGraph, CostState
from ._exact import Exact
from ._graph import Graph

__all__ = ["HEURISTICS", "NAMES", "Exact", "Order", "OrderSpec", "SEARCH_SECONDS", "cache_dir", "cached",
           "cached_search", "forward", "load_order", "markowitz", "min_fill", "optimal", "resolve", "reverse",
           "reverse_markowitz", "search", "store"]

GraphLike = Graph | CostGraph

SEARCH_SECONDS = 10.0  # budget of ``order="search"`` when the cache has no order for the graph yet
EXACT_STATES = 2000  # states expanded by the exact phase of :func:`search` (at most)
EXACT_SHARE = 0.25  # and its share of the search's seconds


def _cost_graph(graph: GraphLike) -> CostGraph:
    return graph if isinstance(graph, CostGraph) else CostGraph(graph)


def forward(graph: GraphLike) -> list[int]:
    """Forward mode: vertices in increasing id (the order of the traced program)."""
    return list(graph.vertices)


def reverse(graph: GraphLike) -> list[int]:
    """Reverse mode: vertices in decreasing id."""
    return list(reversed(graph.vertices))


def _pre_eliminate(state: CostState, order: list[int]) -> None:
    """Eliminate vertices with one predecessor and one successor (Markowitz degree < 2), in forward sweeps."""
    changed = True
    while changed:
        changed = False
        for v in state.remaining():
            if len(state.pred[v]) * len(state.succ[v]) < 2:
                state.eliminate(v)
                order.append(v)
                changed = True


def _greedy(graph: GraphLike, score: Callable[[CostState, int], tuple]) -> list[int]:
    """Repeatedly eliminate the remaining vertex with the smallest ``score(state, v)``."""
    state = _cost_graph(graph).start()
    order: list[int] = []
    _pre_eliminate(state, order)
    remaining = set(state.remaining())
    while remaining:
        v = min(remaining, key=lambda x: score(state, x))
        state.eliminate(v)
        remaining.discard(v)
        order.append(v)
    return order


def markowitz(graph: GraphLike) -> list[int]:
    """Lowest Markowitz degree first, with structure-aware weights (see the module docstring)."""
    return _greedy(graph, lambda s, v: (s.cost(v), v))


def reverse_markowitz(graph: GraphLike) -> list[int]:
    """Lowest Markowitz degree first, ties to the highest vertex id."""
    return _greedy(graph, lambda s, v: (s.cost(v), -v))


def min_fill(graph: GraphLike) -> list[int]:
    """Lowest fill-in first (fewest new edges), ties by multiplications, then lowest id."""
    return _greedy(graph, lambda s, v: (s.fill(v), s.cost(v), v))


HEURISTICS: dict[str, Callable[[GraphLike], list[int]]] = {
    "fwd": forward,
    "rev": reverse,
    "markowitz": markowitz,
    "reverse_markowitz": reverse_markowitz,
    "min_fill": min_fill,
}
# every order name plastix.jacve accepts ("forward"/"reverse" are aliases of "fwd"/"rev")
NAMES = (*HEURISTICS, "search")


# ---------------------------------------------------------------------------------------------------------------
# Exact


def optimal(graph: GraphLike, *, seconds: float = 10.0, max_states: int | None = None) -> Exact:
    """The minimum-multiplication elimination order, by A* search from the best heuristic.

    States are partially eliminated graphs; the lower bounds are vertex cuts (how many stored partials must meet
    at each vertex) raised over small groups of vertices joined by index maps (see :mod:`plastix.ad._exact`).
    Graphs whose partials carry index arrays (gathers, slices) get the trivial bound and only small ones finish.

    Args:
        graph: a :class:`~plastix.ad.Graph` or its :class:`~plastix.ad.CostGraph`.
        seconds: wall-clock budget.
        max_states: also stop after expanding this many states (then the result is deterministic).

    Returns:
        :class:`~plastix.ad.orders.Exact` ``(order, muls, proven_optimal, lower_bound)``: the best order found,
        its count, whether it is proven optimal and a proven lower bound on the optimum.
    """
    cg = _cost_graph(graph)
    return _exact.solve(cg, _best_heuristic(cg)[0], seconds=seconds, max_states=max_states)[0]


# ---------------------------------------------------------------------------------------------------------------
# Search


def _rollout(cg: CostGraph, rng: random.Random, noise: float, bound: float) -> tuple[list[int], int]:
    """A greedy Markowitz rollout with each score scaled by a log-normal factor of spread ``noise``.

    Stops early (returns muls > bound) once the running count exceeds ``bound``.
    """
    state = cg.start()
    order: list[int] = []
    _pre_eliminate(state, order)
    remaining = set(state.remaining())
    cost = {v: state.cost(v) for v in remaining}
    gauss = rng.gauss
    while remaining:
        v = min(remaining, key=lambda x: ((cost[x] + 1) * math.exp(noise * gauss(0.0, 1.0)), x))
        ins, outs = list(state.pred[v]), list(state.succ[v])
        state.eliminate(v)
        remaining.discard(v)
        order.append(v)
        if state.muls > bound:
            order += sorted(remaining)
            return order, state.muls
        for x in ins + outs:
            if x in remaining:
                cost[x] = state.cost(x)
    return order, state.muls


class _Annealer:
    """Simulated annealing on a permutation, counted on the cost graph from snapshots of the current order.

    A candidate differs from the current order only in positions ``first..last``; it is counted from the snapshot
    before ``first`` until its state equals the current order's snapshot at a later position (the same vertices
    eliminated with the same edge structures), then the current order's remaining count is reused. The count
    stops early once it exceeds the acceptance threshold.
    """

    STRIDE = 8  # snaps[k]: the elimination state of the current order before position k * STRIDE
    GLOBAL = 0.5  # probability of a proposal between two uniformly drawn positions (else a local one)

    def __init__(self, cg: CostGraph, order: list[int], rng: random.Random):
        self.cg, self.rng = cg, rng
        self.reset(order)

    def reset(self, order: list[int]) -> None:
        """Make ``order`` the current order (recounted from scratch)."""
        state, snaps = self.cg.start(), []
        for pos, v in enumerate(order):
            if pos % self.STRIDE == 0:
                snaps.append(state.copy())
            state.eliminate(v)
        self.order, self.snaps, self.muls = list(order), snaps, state.muls

    def _count(self, order: list[int], first: int, last: int, bound: float) -> int:
        """Multiplications of ``order`` (equal to the current order outside ``first..last``); > bound: gave up."""
        stride, snaps = self.STRIDE, self.snaps
        state = snaps[first // stride].copy()
        for pos in range(first // stride * stride, len(order)):
            if pos > last and pos % stride == 0:
                snap = snaps[pos // stride]
                if state.succ == snap.succ:
                    return state.muls + self.muls - snap.muls
            state.eliminate(order[pos])
            if state.muls > bound:
                break
        return state.muls

    def _accept(self, order: list[int], first: int, last: int, muls: int) -> None:
        stride, snaps = self.STRIDE, self.snaps
        k = first // stride
        state = snaps[k].copy()
        for pos in range(k * stride, len(order)):
            if pos > k * stride and pos % stride == 0:
                q = pos // stride
                if pos > last and state.succ == snaps[q].succ:
                    for snap in snaps[q:]:
                        snap.muls += muls - self.muls
                    break
                snaps[q] = state.copy()
            state.eliminate(order[pos])
        self.order, self.muls = order, muls

    def _propose(self) -> tuple[list[int], int, int]:
        """A neighbour of the current order and the first and last positions where it may differ."""
        n, rng = len(self.order), self.rng
        if rng.random() < self.GLOBAL:
            i, j = sorted(rng.sample(range(n), 2))
        else:  # a local move
            i = rng.randrange(n - 1)
            j = min(n - 1, i + 1 + int(rng.expovariate(0.25)))
        new = self.order[:]
        move = rng.random()
        if move < 0.4:  # move one vertex
            if rng.random() < 0.5:
                new.insert(j, new.pop(i))
            else:
                new.insert(i, new.pop(j))
        elif move < 0.8:  # swap two
            new[i], new[j] = new[j], new[i]
        else:  # reverse a short segment
            j = min(j, i + 6)
            new[i:j + 1] = new[i:j + 1][::-1]
        return new, i, j

    def step(self, temperature: float) -> None:
        """One proposal: accepted by the Metropolis rule (a threshold drawn first, so a bad count stops early)."""
        new, first, last = self._propose()
        u = self.rng.random()
        bound = self.muls - temperature * math.log(u) if temperature > 0 and u > 0 else self.muls
        muls = self._count(new, first, last, bound)
        if muls <= bound:
            self._accept(new, first, last, muls)


def search(graph: GraphLike, *, seconds: float = 60.0, seed: int = 0,
           max_evals: int | None = None) -> tuple[list[int], int]:
    """An anytime search for an elimination order with few multiplications.

    Starts from the best heuristic of :data:`HEURISTICS` and a short exact search (:func:`optimal`, at most
    :data:`EXACT_STATES` states and :data:`EXACT_SHARE` of the time; returns at once when that proves the order
    optimal), then alternates randomised greedy Markowitz rollouts
    (log-normal noise on the scores) with simulated-annealing runs (move / swap / reverse-segment proposals)
    started from the best order so far. Never worse than the best heuristic. The same ``seed`` and the same
    number of evaluations give the same result (an expanded state of the exact search counts as one); with
    ``max_evals`` the search is deterministic.

    Args:
        graph: a :class:`~plastix.ad.Graph` or its :class:`~plastix.ad.CostGraph`.
        seconds: wall-clock budget (the search stops at the first evaluation past it).
        seed: seeds the search's random numbers.
        max_evals: also stop after this many evaluated orders (rollouts and annealing proposals).

    Returns:
        ``(order, muls)``: the best order found and its multiplication count.
    """
    deadline = time.perf_counter() + seconds
    cg = _cost_graph(graph)
    best_order, best = _best_heuristic(cg)
    if len(cg.vertices) < 2:
        return best_order, best
    max_evals = math.inf if max_evals is None else max_evals
    exact, evals = _exact.solve(cg, best_order, seconds=EXACT_SHARE * seconds,
                                max_states=min(EXACT_STATES, max_evals))
    if exact.muls < best:
        best_order, best = exact.order, exact.muls
    if exact.proven_optimal:
        return best_order, best
    rng = random.Random(seed)
    budget = _Budget(evals, max_evals, deadline)
    run = 0
    while budget.more():
        # a round: rollouts, then annealing from the best order (restart) with a cooling schedule
        best_order, best = _rollouts(cg, rng, best_order, best, budget)
        best_order, best = _annealing(cg, rng, best_order, best, budget, (0.002, 0.004, 0.008)[run % 3])
        run += 1
    return best_order, int(best)


def _best_heuristic(cg: CostGraph) -> tuple[list[int], int]:
    """The order of :data:`HEURISTICS` with the fewest multiplications (the first of equals) and its count."""
    best_order, best = None, math.inf
    for heuristic in HEURISTICS.values():
        order = heuristic(cg)
        muls = cg.count(order)
        if muls < best:
            best_order, best = order, muls
    return best_order, best


class _Budget:
    """The evaluations and wall-clock time of a search: ``evals`` so far, at most ``max_evals``, until ``deadline``."""

    def __init__(self, evals: int, max_evals: float, deadline: float):
        self.evals, self.max_evals, self.deadline = evals, max_evals, deadline

    def more(self) -> bool:
        return self.evals < self.max_evals and time.perf_counter() < self.deadline


def _rollouts(cg: CostGraph, rng: random.Random, best_order: list[int], best: int, budget: _Budget,
              n: int = 10) -> tuple[list[int], int]:
    """``n`` randomised greedy rollouts (:func:`_rollout`); the best order so far and its count."""
    for _ in range(n):
        if not budget.more():
            break
        order, muls = _rollout(cg, rng, rng.choice((0.1, 0.3, 0.6, 1.0)), best)
        budget.evals += 1
        if muls < best:
            best_order, best = order, muls
    return best_order, best


def _annealing(cg: CostGraph, rng: random.Random, best_order: list[int], best: int, budget: _Budget,
               temperature: float, steps: int = 3000) -> tuple[list[int], int]:
    """One simulated-annealing run from ``best_order``, cooling linearly from ``temperature * best`` to zero over
    ``steps`` proposals; the best order so far and its count."""
    annealer = _Annealer(cg, best_order, rng)
    t0 = temperature * best
    for k in range(steps):
        if not budget.more():
            break
        annealer.step(t0 * (1.0 - k / steps))
        budget.evals += 1
        if annealer.muls < best:
            exact = cg.count(annealer.order)  # the reused suffix counts assume order-free edge merges
            if exact < best:
                best_order, best = list(annealer.order), exact
            if exact != annealer.muls:
                annealer.reset(annealer.order)
    return best_order, best


# ---------------------------------------------------------------------------------------------------------------
# Saved orders


@dataclass(frozen=True)
class Order:
    """An elimination order bound to the graph it was made for.

    ``plastix.jacve(f, order=saved)`` accepts it and refuses a graph with another fingerprint.

    Attributes:
        vertices: the elimination order (vertex ids).
        fingerprint: :meth:`Graph.fingerprint` of the graph it belongs to.
        muls: its multiplication count.
        method: how it was made (``"search"``, a heuristic name, ...).
        info: free-form metadata (search seconds, seed, evaluations).
    """

    vertices: tuple[int, ...]
    fingerprint: str
    muls: int
    method: str = ""
    info: dict | None = None

    @classmethod
    def of(cls, graph: GraphLike, vertices, method: str = "", info: dict | None = None) -> Order:
        """The order ``vertices`` for ``graph``, with its fingerprint and multiplication count."""
        cg = _cost_graph(graph)
        vertices = tuple(int(v) for v in vertices)
        return cls(vertices, cg.fingerprint, cg.count(vertices), method, info)

    def check(self, graph: GraphLike) -> list[int]:
        """The vertex list, after checking that ``graph`` is the graph this order was made for.

        Raises:
            ValueError: the graph's fingerprint differs.
        """
        got = graph.fingerprint if isinstance(graph, CostGraph) else graph.fingerprint()
        if got != self.fingerprint:
            raise ValueError(f"elimination order made for graph {self.fingerprint} ({self.method or 'saved'}, "
                             f"{len(self.vertices)} vertices) cannot be applied to graph {got} "
                             f"({len(graph.vertices)} vertices): the traced program, shapes or dtypes differ; "
                             f"make a new order for this graph")
        return list(self.vertices)

    def to_json(self) -> dict:
        return {"fingerprint": self.fingerprint, "vertices": list(self.vertices), "muls": self.muls,
                "method": self.method, "info": self.info or {}}

    def save(self, path: str | os.PathLike) -> None:
        """Write the order as JSON, atomically (a temporary file, then ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_json(), f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def load_order(path: str | os.PathLike) -> Order:
    """Read an :class:`Order` written by :meth:`Order.save`.

    Raises:
        ValueError: the file is not a saved order.
    """
    try:
        data = json.loads(Path(path).read_text())
        return Order(tuple(int(v) for v in data["vertices"]), str(data["fingerprint"]), int(data["muls"]),
                     str(data.get("method", "")), dict(data.get("info") or {}))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a saved elimination order (expected JSON with 'fingerprint', "
                         f"'vertices', 'muls'): {type(e).__name__}: {e}") from None


def cache_dir() -> Path:
    """Where searched orders are cached: ``$PLASTIX_CACHE_DIR``, else ``$XDG_CACHE_HOME/plastix/orders``, else
    ``~/.cache/plastix/orders``."""
    if os.environ.get("PLASTIX_CACHE_DIR"):
        return Path(os.environ["PLASTIX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "plastix" / "orders"


def _cache_path(fingerprint: str) -> Path:
    return cache_dir() / f"{fingerprint}.json"


def cached(graph: GraphLike) -> Order | None:
    """The cached searched order of ``graph``, or ``None`` (also for an unreadable cache file)."""
    fingerprint = graph.fingerprint if isinstance(graph, CostGraph) else graph.fingerprint()
    path = _cache_path(fingerprint)
    if not path.exists():
        return None
    try:
        order = load_order(path)
    except ValueError:
        return None
    return order if order.fingerprint == fingerprint else None


def store(order: Order) -> Order:
    """Cache ``order`` unless the cache holds one with fewer multiplications; returns the cached one."""
    path = _cache_path(order.fingerprint)
    old = None
    if path.exists():
        try:
            old = load_order(path)
        except ValueError:
            old = None
    if old is not None and old.fingerprint == order.fingerprint and old.muls <= order.muls:
        return old
    order.save(path)
    return order


def cached_search(graph: GraphLike, *, seconds: float | None = None, seed: int = 0) -> Order:
    """The searched order of ``graph`` from the cache, or a :func:`search` of ``seconds`` (default
    :data:`SEARCH_SECONDS`) stored in the cache."""
    cg = _cost_graph(graph)
    hit = cached(cg)
    if hit is not None:
        return hit
    seconds = SEARCH_SECONDS if seconds is None else seconds
    start = time.perf_counter()
    vertices, _ = search(cg, seconds=seconds, seed=seed)
    info = {"seconds": round(time.perf_counter() - start, 3), "seed": seed}
    return store(Order.of(cg, vertices, "search", info))


OrderSpec = str | Order | Sequence[int]  # or a 1-d integer NumPy/JAX array: what plastix.jacve's ``order`` takes


def resolve(graph: GraphLike, order: OrderSpec) -> list[int]:
    """Turn an order name, a saved :class:`Order` or a sequence of vertex ids into a validated elimination order.

    Exported as :func:`plastix.ad.resolve_order`. Names: ``"fwd"``/``"forward"``, ``"rev"``/``"reverse"``,
    ``"markowitz"``, ``"reverse_markowitz"``, ``"min_fill"`` and ``"search"`` (computed here, outside any jit).

    Args:
        graph: the :class:`plastix.ad.Graph` to eliminate (e.g. from :func:`plastix.graph`) or its
            :class:`~plastix.ad.CostGraph`.
        order: an order name, a saved :class:`Order`, or a sequence of vertex ids.

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
    if isinstance(order, Order):
        ids = order.check(graph)
    elif isinstance(order, str):
        ids = _named(graph, order)
    else:
        ids = _vertex_ids(order)
    _check_permutation(graph.vertices, ids)
    return ids


def _named(graph: GraphLike, name: str) -> list[int]:
    if name == "search":
        return list(cached_search(graph).vertices)
    heuristic = HEURISTICS.get({"forward": "fwd", "reverse": "rev"}.get(name, name))
    if heuristic is None:
        raise ValueError(f"unknown elimination order {name!r}; expected one of {', '.join(map(repr, NAMES))}, "
                         f"'forward', 'reverse', a plastix.ad.orders.Order or a sequence of vertex ids")
    return heuristic(graph)


def _check_permutation(vertices: Sequence[int], order: list[int]) -> None:
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

