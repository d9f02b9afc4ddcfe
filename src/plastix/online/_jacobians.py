"""The sparse Jacobians of one time step: H = ds'/ds, F = ds'/dθ, and the same step cut at its new state.

Conventions (see the guide): the first axis of a state leaf (per example) is the *neuron*, trailing axes are
compartments of that neuron; a scalar leaf is one neuron. State leaves that are not floating point (counters,
flags) are carried without a tangent, as BPTT carries them: they have no rows or columns in ``H`` and ``F``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
from jax.extend.core import Literal

from ..ad import Axis, Graph, Partial, build_graph, canonical, compose, eliminate, is_local, reachable, resolve_order

__all__ = ["StepJacobians", "step_jacobians", "is_local", "is_neuron_local", "neuron_block", "batch_vjp",
           "split_step", "is_float"]

def is_float(leaf) -> bool:
    """Whether a state or parameter leaf is differentiated (a floating-point array)."""
    return jnp.issubdtype(jnp.result_type(leaf), jnp.floating)


@dataclass(frozen=True)
class StepJacobians:
    """Blocks of one step's state Jacobians, indexed by flat leaf positions (``None`` = structurally zero).

    ``H[a][b] = ds'_a/ds_b`` and ``F[a][p] = ds'_a/dθ_p`` (all paths: exact). With ``local``:

    * ``H_local``: ``H`` accumulated only along edges that map each neuron to itself (used by ``eprop``);
    * ``F_layer``: ``F`` without the cross-layer paths, those that reach a state leaf through the neurons of
      another *layer* (leaves joined by neuron-local paths form one layer; see :func:`_layer_blocks`);
    * ``factors``: ``{(a, p): (J, E)}`` for a parameter that enters the step through one edge ``E = ∂v/∂θ_p``
      (a weight in ``W @ x``): ``J = ∂s'_a/∂v`` along the same paths as ``F_layer`` (as ``F`` without
      ``local``), so ``F_layer[a][p] = J·E`` (what lets a trace through a reset be advanced in chunks).
    """

    H: list[list[Partial | None]]
    F: list[list[Partial | None]]
    H_local: list[list[Partial | None]] | None
    F_layer: list[list[Partial | None]] | None
    factors: dict = field(default_factory=dict)


def is_neuron_local(p: Partial) -> bool:
    """True when ``p`` maps each neuron (first axis) only to the same neuron; scalars are one neuron."""
    if not p.out_shape or not p.in_shape:
        return not p.out_shape and not p.in_shape
    a, b = p.out_axes[0], p.in_axes[0]
    return p.out_shape[0] == p.in_shape[0] and p.same_positions(a, b)  # also maps written as arrays (x.at[:, k])


def neuron_block(p: Partial) -> Partial | None:
    """The part of a state-to-state partial that maps each neuron to itself (all compartments of the neuron).

    ``None`` when the two leaves have different numbers of neurons. Structured where the neuron axes are plain
    labels (``R ⊙ z'`` keeps ``diag(R) ⊙ z'``); dense per neuron otherwise.
    """
    if not p.out_shape or not p.in_shape:
        return p if p.out_shape == p.in_shape else None
    if p.out_shape[0] != p.in_shape[0]:
        return None
    if is_neuron_local(p):
        return p
    a, b = p.out_axes[0], p.in_axes[0]
    axes = p.out_axes + p.in_axes
    if a.index is None and b.index is None:
        i, j = a.labels[0], b.labels[0]
        if all(j not in x.labels for x in axes[:len(p.out_axes)] + p.in_axes[1:]) and \
                all(x.index is None for x in axes if i in x.labels):
            return _merge_labels(p, i, j)
    return _dense_neuron_block(p)


def _merge_labels(p: Partial, i: int, j: int) -> Partial:
    """``p`` with the in-neuron label ``j`` set equal to the out-neuron label ``i`` (the diagonal in i, j)."""
    labels, val = list(p.val_labels), p.val
    if j in labels and i in labels:
        val = jnp.diagonal(val, axis1=labels.index(i), axis2=labels.index(j))
        labels = [x for x in labels if x not in (i, j)] + [i]
    elif j in labels:
        labels[labels.index(j)] = i
    sizes = {k: v for k, v in p.sizes.items() if k != j}
    in_axes = (Axis((i,)),) + p.in_axes[1:]
    return canonical(p.replace(sizes=sizes, in_axes=in_axes, val_labels=labels, val=val))


def _dense_neuron_block(p: Partial) -> Partial:
    n, ca, cb = p.out_shape[0], p.out_shape[1:], p.in_shape[1:]
    dense = p.todense().reshape(n, math.prod(ca), n, math.prod(cb))
    block = jnp.einsum("iaib->iab", dense).reshape((n,) + ca + cb)
    out_labels = tuple(range(1 + len(ca)))
    in_labels = (0,) + tuple(range(1 + len(ca), 1 + len(ca) + len(cb)))
    sizes = dict(zip(out_labels + in_labels[1:], (n,) + ca + cb))
    return p.replace(sizes=sizes, out_axes=tuple(Axis((x,)) for x in out_labels),
                     in_axes=tuple(Axis((x,)) for x in in_labels), val_labels=out_labels + in_labels[1:], val=block)


def batch_vjp(cotangents, p: Partial):
    """``sum_b cotangents[b] · p_b`` for a partial whose stored values have a leading batch axis ``b``.

    Args:
        cotangents: array of shape ``(batch,) + p.out_shape``.
        p: a partial with ``val`` of shape ``(batch,) + per-example value shape``.

    Returns:
        A dense array of ``p.in_shape``: the products summed over the batch in one contraction.
    """
    ct = jnp.asarray(cotangents, p.dtype)
    labels = tuple(range(len(p.out_shape)))
    ct = Partial(out_shape=(), in_shape=p.out_shape, sizes=dict(zip(labels, p.out_shape)), out_axes=(),
                 in_axes=tuple(Axis((x,)) for x in labels), val_labels=labels, val=ct, dtype=p.dtype)
    product, _ = compose(ct, p, batch_sum=True)
    return jnp.zeros(p.in_shape, p.dtype) if product is None else product.todense()


class _StepArgs:
    """The flat leaves of ``(params, state, x)`` and which of them are differentiated."""

    def __init__(self, params, state, x):
        self.params, self.state = jax.tree.leaves(params), jax.tree.leaves(state)
        self.tree = jax.tree.structure((params, state, x))
        self.flat = jax.tree.leaves((params, state, x))
        self.floats = [k for k, v in enumerate(self.state) if is_float(v)]

    def call(self, step, params, float_state):
        """``step``'s new float state leaves, with the non-float state leaves and ``x`` held fixed."""
        state = list(self.state)
        for k, v in zip(self.floats, float_state):
            state[k] = v
        flat = list(params) + state + self.flat[len(self.params) + len(state):]
        new_state, _ = step(*jax.tree.unflatten(self.tree, flat))
        leaves = jax.tree.leaves(new_state)
        return [leaves[k] for k in self.floats]


def _graph(fun: Callable, dyn: list) -> Graph:
    return build_graph(jax.make_jaxpr(fun)(*dyn), list(dyn))


def _order_for(order):
    """A named order applies to any graph; an explicit one belongs to the step's main graph only."""
    return order if isinstance(order, str) else "rev"


def _eliminated_from(g: Graph, edges: dict, starts, order) -> dict:
    """The accumulated ``{(start, output): Partial}`` of ``g`` restricted to ``edges`` downstream of ``starts``
    (which act as inputs, also where they are intermediate vertices of ``g``)."""
    derived = reachable(edges, starts)
    info = dict(g.info) | {v: replace(g.info[v], role="input") for v in starts}
    sub = Graph(starts, g.outputs, {k: e for k, e in edges.items() if k[0] in derived}, info, g.values)
    eliminated, _ = eliminate(sub, resolve_order(sub, _order_for(order)))
    return eliminated


def _local_blocks(g: Graph, starts: list[int], order) -> list[list[Partial | None]]:
    """Blocks ``[output][start]`` accumulated only along neuron-local edges downstream of ``starts``."""
    edges = _eliminated_from(g, _neuron_local_edges(g, starts), starts, order)
    return [[edges.get((s, o)) for s in starts] for o in g.outputs]


def _neuron_local_edges(g: Graph, starts) -> dict:
    """The edges downstream of the state vertices ``starts`` that map each neuron only to the same neuron.

    The neuron axis is followed from vertex to vertex (axis 0 of a state; the axis of a later value that carries
    the same index), so ``(A @ c.T).T`` on a compartment leaf stays local while ``W @ z`` does not. A vertex
    keeps the neuron axis of its first local in-edge; an edge that maps it elsewhere is not local.
    """
    axis: dict[int, int | None] = {s: (0 if g.info[s].shape else None) for s in starts}
    local = {}
    for (u, w) in sorted(g.edges, key=lambda k: (k[0], k[1])):  # ids are in forward order
        if u not in axis:
            continue
        p = g.edges[(u, w)]
        k = _carried_axis(p, axis[u])
        if k is False or axis.setdefault(w, k) != k:
            continue
        local[(u, w)] = p
    return local


def _carried_axis(p: Partial, k: int | None):
    """The output axis of ``p`` that carries input axis ``k`` index for index (``None`` for a scalar neuron),
    or ``False``."""
    if k is None:
        return None if not p.out_shape else False
    source = p.in_axes[k]
    for j, target in enumerate(p.out_axes):
        if p.out_shape[j] == p.in_shape[k] and p.same_positions(source, target):
            return j
    return False


def _expand(rows, floats: list[int], n: int, cols: int | None = None):
    """Blocks over float leaves placed at their positions among all ``n`` state leaves (``None`` elsewhere)."""
    out = [[None] * (n if cols is None else cols) for _ in range(n)]
    for i, a in enumerate(floats):
        for j, block in enumerate(rows[i]):
            out[a][j if cols is not None else floats[j]] = block
    return out


def step_jacobians(step, params, state, x, *, order="rev", local: bool = False) -> StepJacobians:
    """Trace ``step(params, state, x) -> (new_state, out)`` and eliminate the graph of its new state once.

    Args:
        local: also accumulate ``H_local`` and ``F_layer`` (see :class:`StepJacobians`).
    """
    args = _StepArgs(params, state, x)
    n_params, n_state = len(args.params), len(args.state)
    float_state = [args.state[k] for k in args.floats]
    g = _graph(lambda *dyn: args.call(step, dyn[:n_params], dyn[n_params:]), args.params + float_state)
    edges, _ = eliminate(g, resolve_order(g, order))
    ins = g.inputs
    H = _expand([[edges.get((ins[n_params + j], o)) for j in range(len(float_state))] for o in g.outputs],
                args.floats, n_state)
    F = _expand([[edges.get((ins[p], o)) for p in range(n_params)] for o in g.outputs], args.floats, n_state,
                n_params)
    if not local:
        factors = _factors(g, n_params, [(g.edges, range(len(float_state)))], order)
        return StepJacobians(H, F, None, None, {(args.floats[j], p): f for (j, p), f in factors.items()})
    local_rows = _local_blocks(g, ins[n_params:], order)
    layers = _layers(local_rows)
    F_layer, edge_sets = F, [(g.edges, range(len(layers)))]
    if len(set(layers)) > 1:
        rows, edge_sets = _layer_blocks(g, n_params, layers, order)
        F_layer = _expand(rows, args.floats, n_state, n_params)
    factors = {(args.floats[j], p): f for (j, p), f in _factors(g, n_params, edge_sets, order).items()}
    return StepJacobians(H, F, _expand(local_rows, args.floats, n_state), F_layer, factors)


def _factors(g: Graph, n_params: int, edge_sets, order) -> dict:
    """``{(float leaf, parameter): (J, E)}`` where the parameter reaches the state through a chain of single edges
    (``W -> W.T -> x @ W.T``) whose end ``v`` has the leaf's shape: ``E = ∂v/∂θ_p``, ``J = ∂s'/∂v``."""
    found = {}
    for p, pid in enumerate(g.inputs[:n_params]):
        for edges, leaves in edge_sets:
            chain = _single_edge_chain(edges, pid)
            for j in leaves:
                shape = g.info[g.outputs[j]].shape
                v, E = next(((v, E) for v, E in chain if g.info[v].shape == shape), (None, None))
                if v is not None:
                    found[(j, p)] = (_eliminated_from(g, edges, [v], order).get((v, g.outputs[j])), E)
    return found


def _single_edge_chain(edges, start: int, hops: int = 4) -> list:
    """``[(v, ∂v/∂start)]`` along the path from ``start`` while each vertex has exactly one out-edge."""
    out: dict[int, list] = {}
    for (u, w), p in edges.items():
        out.setdefault(u, []).append((w, p))
    chain, u, acc = [], start, None
    for _ in range(hops):
        if len(out.get(u, [])) != 1:
            break
        w, p = out[u][0]
        acc = p if acc is None else compose(p, acc)[0]
        if acc is None:
            break
        chain.append((w, acc))
        u = w
    return chain


def _layers(local_rows) -> list[int]:
    """A layer id per float state leaf: leaves joined by a neuron-local path (in either direction) share one."""
    layer = list(range(len(local_rows)))

    def root(a):
        while layer[a] != a:
            a = layer[a]
        return a

    for a, row in enumerate(local_rows):
        for b, block in enumerate(row):
            if block is not None:
                layer[root(a)] = root(b)
    return [root(a) for a in range(len(layer))]


def _layer_blocks(g: Graph, n_params: int, layers: list[int], order):
    """``F`` blocks ``[float leaf][parameter]`` without cross-layer paths, and per layer the edges they use.

    A layer's *cone* is what its state reaches along neuron-local edges: its neurons' own values (membrane,
    spikes, new state). A path into leaf ``a`` through another layer's cone (outside ``a``'s own) carries the
    parameter's influence through that layer's neurons: it is cut.
    """
    state_ids = g.inputs[n_params:]
    local_edges = _neuron_local_edges(g, state_ids)
    cones = {layer: reachable(local_edges, [state_ids[j] for j, m in enumerate(layers) if m == layer])
             for layer in set(layers)}
    rows: list[list[Partial | None]] = [[] for _ in layers]
    edge_sets = []
    for layer in set(layers):
        blocked = set().union(*(c for other, c in cones.items() if other != layer)) - cones[layer]
        kept = {k: p for k, p in g.edges.items() if k[0] not in blocked and k[1] not in blocked}
        edge_sets.append((kept, [j for j, m in enumerate(layers) if m == layer]))
        edges = _eliminated_from(g, kept, g.inputs[:n_params], order)
        for j, out in enumerate(g.outputs):
            if layers[j] == layer:
                rows[j] = [edges.get((i, out)) for i in g.inputs[:n_params]]
    return rows, edge_sets


def split_step(step, params, state, x):
    """``step`` split at its new state: ``out = readout(θ, s, x, s')`` with ``s' = new_state(θ, s, x)``.

    ``readout`` evaluates the step's jaxpr with every use of a new-state value read from its argument ``s'``
    instead, so its derivative in ``s'`` is the cotangent of the new state (``δ = ∂ℓ/∂s'``) and its derivatives
    in ``θ``, ``s`` and ``x`` are the paths that bypass the new state. ``readout(θ, s, x, new_state(θ, s, x))``
    equals ``out`` for any step, so the chain rule through the two pieces is exact.

    Args:
        step: ``step(params, state, x) -> (new_state, out)`` for one example.
        params, state, x: arguments of one example (arrays or ``jax.ShapeDtypeStruct``).

    Returns:
        ``(new_state_fn, readout_fn)``: ``new_state_fn(params, state, x)`` and
        ``readout_fn(params, state, x, new_state) -> out``.
    """
    flat, in_tree = jax.tree.flatten((params, state, x))
    closed, shapes = jax.make_jaxpr(lambda *a: step(*jax.tree.unflatten(in_tree, a)), return_shape=True)(*flat)
    state_tree, out_tree = jax.tree.structure(shapes[0]), jax.tree.structure(shapes[1])
    jaxpr, n_state = closed.jaxpr, state_tree.num_leaves
    overrides = {}
    for k, var in enumerate(jaxpr.outvars[:n_state]):
        if not isinstance(var, Literal):
            overrides.setdefault(var, k)

    def readout(params, state, x, new_state):
        new_leaves = jax.tree.leaves(new_state)
        env = {}

        def write(var, value):
            env[var] = new_leaves[overrides[var]] if var in overrides else value

        def read(var):
            return var.val if isinstance(var, Literal) else env[var]

        for var, value in zip(jaxpr.constvars, closed.consts):
            write(var, value)
        for var, value in zip(jaxpr.invars, jax.tree.leaves((params, state, x))):
            write(var, value)
        for eqn in jaxpr.eqns:
            outs = eqn.primitive.bind(*map(read, eqn.invars), **eqn.primitive.get_bind_params(eqn.params))
            for var, value in zip(eqn.outvars, outs if eqn.primitive.multiple_results else [outs]):
                write(var, value)
        return jax.tree.unflatten(out_tree, [read(v) for v in jaxpr.outvars[n_state:]])

    return (lambda params, state, x: step(params, state, x)[0]), readout
