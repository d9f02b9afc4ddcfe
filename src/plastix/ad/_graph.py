"""The computational graph of a traced function: vertices are values, edges are structured partials."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core

from ._partial import Partial, add
from ._rules import P, active_call, bind, defrule, expansions, is_concrete, pair_shape, partials, real_dtype

__all__ = ["Graph", "VertexInfo", "build_graph", "reachable"]

_INLINE = {"jit", "pjit", "closed_call", "core_call", "checkpoint", "remat", "remat2", "name"}


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
        import hashlib

        from ._partial import canonical, structure_key

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


def _inexact(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def _inner_jaxpr(eqn):
    if eqn.primitive.name not in _INLINE:
        return None
    for key in ("jaxpr", "call_jaxpr"):
        if key in eqn.params:
            j = eqn.params[key]
            return (j.jaxpr, j.consts) if isinstance(j, core.ClosedJaxpr) else (j, [])
    return None


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
        inner = _inner_jaxpr(eqn)
        if inner is None and primitive in expansions:
            closed = expansions[primitive](invals, **eqn.params)
            inner = None if closed is None else (closed.jaxpr, closed.consts)
        if inner is not None:
            return self.run(inner[0], inner[1], invals, in_ids)
        outvals = bind(primitive, eqn.params, invals)
        per_input, note = partials(primitive, eqn.params, invals, outvals, active)
        out_ids = []
        for o, out in enumerate(outvals):
            edges = [(in_ids[k], per_input[k][o]) for k in range(len(invals))
                     if active[k] and per_input[k] is not None and per_input[k][o] is not None]
            if not edges or not _inexact(out):
                out_ids.append(None)
                continue
            v = self.vertex(primitive.name, out, "intermediate", note)
            for u, p in edges:
                self.edge(u, v, p)
            out_ids.append(v)
        return outvals, out_ids


def _custom_jvp_partials(invals, outvals, active, **params):
    """Partials of a ``custom_jvp`` function from its JVP rule (not from its primal implementation)."""
    from ._eliminate import sub_jacobian

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
    from ._eliminate import sub_jacobian

    f, idx, primals = active_call(P.custom_vjp_call_p, params, invals, active)
    outs, vjp = jax.vjp(f, *primals)
    diff = [o for o, out in enumerate(outs) if _inexact(out)]

    def pullback(o, ct):
        full = [jnp.zeros_like(out) for out in outs]
        full[o] = ct
        return list(vjp(full))

    result: list = [[None] * len(outvals) if active[k] else None for k in range(len(invals))]
    for o in diff:
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


def is_local(p: Partial) -> bool:
    """An elementwise partial: every axis the identity of one label shared by input and output."""
    return p.out_shape == p.in_shape and all(
        a.index is None and b.index is None and a.labels == b.labels for a, b in zip(p.out_axes, p.in_axes))


defrule(P.custom_jvp_call_p, _custom_jvp_partials)
defrule(P.custom_vjp_call_p, _custom_vjp_partials)


def build_graph(closed_jaxpr, args, n_outputs: int | None = None) -> Graph:
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
        if out_ids[o] is not None and _inexact(values[o]):
            builder.edge(out_ids[o], sink, Partial.identity(pair_shape(values[o]), real_dtype(values[o])))
        sinks.append(sink)
    return _prune_and_number(builder, input_ids, sinks, values, n_in)


def reachable(edges, start, *, backward: bool = False) -> set[int]:
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
