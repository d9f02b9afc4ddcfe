"""The computational graph of a traced function: vertices are values, edges are structured partials.

One interpreter (:class:`_Builder`) evaluates the jaxpr; every equation takes its partials from the rule table of
:mod:`._rules`, or is replaced by the jaxpr of its expansion there (calls such as ``jit`` and ``checkpoint``,
fixed-length ``scan``, ``cond``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core

from ._partial import Partial, add, canonical, structure_key
from ._rules import bind, expansions, is_concrete, is_inexact, pair_shape, partials, real_dtype

__all__ = ["Graph", "VertexInfo", "build_graph", "reachable"]


@dataclass(frozen=True)
class VertexInfo:
    """What a vertex holds: the primitive that produced it, its shape and dtype, and its role."""

    id: int
    primitive: str
    shape: tuple[int, ...]
    dtype: np.dtype
    role: str  # "input" | "intermediate" | "output"
    note: str = ""


class Graph:
    """A computational graph with structured elemental partials on its edges.

    Vertex ids follow Griewank's numbering: the ``n`` inputs are ``1-n .. 0``, the eliminable intermediate
    vertices ``1 .. N`` in forward order (``Graph.vertices``), the outputs ``N+1 .. N+m``.

    Attributes:
        inputs: ids of the input vertices (flattened differentiated arguments), in order.
        outputs: ids of the output vertices (flattened outputs), in order.
        edges: ``{(u, v): Partial}`` with ``Partial = dv/du``.
        info: ``{id: VertexInfo}``.
        values: primal values of all outputs of the traced function (differentiated ones and auxiliary).
    """

    def __init__(self, inputs, outputs, edges, info, values):
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.edges = dict(edges)
        self.info = dict(info)
        self.values = list(values)

    @property
    def vertices(self) -> tuple[int, ...]:
        """The ids an elimination order must contain, in forward order."""
        return tuple(sorted(i for i, v in self.info.items() if v.role == "intermediate"))

    def fingerprint(self) -> str:
        """A digest of the graph's structure (shapes, primitives, edge structures); no values."""
        h = hashlib.sha256()
        for i in sorted(self.info):
            v = self.info[i]
            h.update(repr((i, v.primitive, v.shape, str(v.dtype), v.role)).encode())
        for (u, w) in sorted(self.edges):
            p = canonical(self.edges[(u, w)])
            h.update(repr((u, w, structure_key(p), p.val_labels, p.val is None)).encode())
        return h.hexdigest()[:16]

    def summary(self) -> str:
        """A table of vertices with primitive, shape and the structure of every incoming edge."""
        preds: dict[int, list[int]] = {}
        for (u, w) in sorted(self.edges):
            preds.setdefault(w, []).append(u)
        fallbacks = [v for v in self.info.values() if v.note]
        lines = [f"Graph: {len(self.inputs)} inputs, {len(self.vertices)} vertices, {len(self.outputs)} outputs, "
                 f"{len(self.edges)} edges"
                 + (f", {len(fallbacks)} dense fallback(s)" if fallbacks else "")]
        for i in sorted(self.info):
            v = self.info[i]
            shape = f"{jnp.dtype(v.dtype).name}{list(v.shape)}"
            note = f"  [{v.note}]" if v.note else ""
            lines.append(f"  {i:>5} {v.role:<12} {v.primitive:<20} {shape}{note}")
            for u in preds.get(i, []):
                lines.append(f"        <- {u:>5}: {self.edges[(u, i)]!r}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Graph(inputs={len(self.inputs)}, vertices={len(self.vertices)}, outputs={len(self.outputs)}, "
                f"edges={len(self.edges)})")


class _Builder:
    """Evaluates a jaxpr equation by equation and records vertices and partials."""

    def __init__(self):
        self.edges: dict[tuple[int, int], Partial] = {}
        self.info: dict[int, VertexInfo] = {}
        self.next_id = 1

    def vertex(self, primitive: str, value, role: str, note: str = "", vid: int | None = None) -> int:
        """A new vertex for ``value`` (a complex array as real (re, im) pairs: a trailing axis of 2)."""
        if vid is None:
            vid = self.next_id
            self.next_id += 1
        self.info[vid] = VertexInfo(vid, primitive, pair_shape(value), real_dtype(value), role, note)
        return vid

    def edge(self, u: int, v: int, p: Partial) -> None:
        self.edges[(u, v)] = add(self.edges[(u, v)], p) if (u, v) in self.edges else p

    def run(self, jaxpr, consts, args, ids):
        env, vid = {}, {}

        def read(v):
            return v.val if isinstance(v, core.Literal) else env[v]

        def read_id(v):
            return None if isinstance(v, core.Literal) else vid.get(v)

        for v, c in zip(jaxpr.constvars, consts):
            env[v] = c
        for v, a, i in zip(jaxpr.invars, args, ids):
            env[v] = a
            if i is not None:
                vid[v] = i
        for eqn in jaxpr.eqns:
            outvals, out_ids = self.equation(eqn, [read(v) for v in eqn.invars], [read_id(v) for v in eqn.invars])
            for v, val, i in zip(eqn.outvars, outvals, out_ids):
                env[v] = val
                if i is not None:
                    vid[v] = i
        return [read(v) for v in jaxpr.outvars], [read_id(v) for v in jaxpr.outvars]

    def equation(self, eqn, invals, in_ids):
        primitive = eqn.primitive
        active = [i is not None for i in in_ids]
        if not any(active):
            if all(is_concrete(x) for x in invals):
                with jax.ensure_compile_time_eval():
                    return bind(primitive, eqn.params, invals), [None] * len(eqn.outvars)
            return bind(primitive, eqn.params, invals), [None] * len(eqn.outvars)
        closed = expansions[primitive](invals, **eqn.params) if primitive in expansions else None
        if closed is not None:
            return self.run(closed.jaxpr, closed.consts, invals, in_ids)
        outvals = bind(primitive, eqn.params, invals)
        per_input, note = partials(primitive, eqn.params, invals, outvals, active)
        out_ids = []
        for o, out in enumerate(outvals):
            edges = [(in_ids[k], per_input[k][o]) for k in range(len(invals))
                     if active[k] and per_input[k] is not None and per_input[k][o] is not None]
            if not edges or not is_inexact(out):
                out_ids.append(None)
                continue
            v = self.vertex(primitive.name, out, "intermediate", note)
            for u, p in edges:
                self.edge(u, v, p)
            out_ids.append(v)
        return outvals, out_ids


def build_graph(closed_jaxpr: core.ClosedJaxpr, args: Sequence, n_outputs: int | None = None) -> Graph:
    """Trace-evaluate ``closed_jaxpr`` on ``args`` (all differentiated) and build its graph.

    Args:
        closed_jaxpr: the function's ``ClosedJaxpr``.
        args: one value per jaxpr input (concrete arrays or tracers).
        n_outputs: only the first ``n_outputs`` jaxpr outputs are differentiated (the rest are auxiliary).

    Returns:
        The pruned :class:`Graph` with renumbered vertex ids.
    """
    builder = _Builder()
    n_in = len(args)
    input_ids = [builder.vertex("input", a, "input", vid=-(10 ** 9) - k) for k, a in enumerate(args)]
    values, out_ids = builder.run(closed_jaxpr.jaxpr, closed_jaxpr.consts, args, input_ids)
    n_outputs = len(values) if n_outputs is None else n_outputs
    sinks = []
    for o in range(n_outputs):
        sink = builder.vertex("output", values[o], "output", vid=-(2 * 10 ** 9) - o)
        if out_ids[o] is not None and is_inexact(values[o]):
            builder.edge(out_ids[o], sink, Partial.identity(pair_shape(values[o]), real_dtype(values[o])))
        sinks.append(sink)
    return _prune_and_number(builder, input_ids, sinks, values, n_in)


def reachable(edges: Iterable[tuple[int, int]], start: Iterable[int], *, backward: bool = False) -> set[int]:
    """Vertices reachable from ``start`` along ``edges`` (``{(u, w): ...}``), or against them."""
    neighbours: dict[int, list[int]] = {}
    for (u, w) in edges:
        a, b = (w, u) if backward else (u, w)
        neighbours.setdefault(a, []).append(b)
    seen, stack = set(start), list(start)
    while stack:
        for v in neighbours.get(stack.pop(), []):
            if v not in seen:
                seen.add(v)
                stack.append(v)
    return seen


def _prune_and_number(builder, input_ids, sinks, values, n_in):
    live = reachable(builder.edges, sinks, backward=True)
    intermediates = sorted(i for i, v in builder.info.items() if v.role == "intermediate" and i in live)
    renumber = {old: k + 1 for k, old in enumerate(intermediates)}
    renumber |= {old: 1 - n_in + k for k, old in enumerate(input_ids)}
    renumber |= {old: len(intermediates) + 1 + k for k, old in enumerate(sinks)}
    info = {renumber[i]: VertexInfo(renumber[i], v.primitive, v.shape, v.dtype, v.role, v.note)
            for i, v in builder.info.items() if i in renumber}
    edges = {(renumber[u], renumber[w]): p for (u, w), p in builder.edges.items() if u in live and w in live}
    return Graph([renumber[i] for i in input_ids], [renumber[s] for s in sinks], edges, info, values)
