"""The sparse Jacobians of one time step: H = ds'/ds, F = ds'/dθ, and the same step cut at its new state.

Conventions (see the guide): the first axis of a state leaf (per example) is the *neuron*, trailing axes are
compartments of that neuron; a scalar leaf is one neuron. State leaves that are not floating point (counters,
flags) are carried without a tangent, as BPTT carries them: they have no rows or columns in ``H`` and ``F``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.extend.core import Literal

from ..ad._eliminate import eliminate, resolve_order
from ..ad._graph import Graph, build_graph, reachable
from ..ad._partial import Axis, Partial, canonical, compose
from ..ad._partial import add as _add
from ..ad._rules import bind

__all__ = ["StepJacobians", "step_jacobians", "is_local", "is_neuron_local", "neuron_block", "batch_vjp",
           "split_step", "kept_F", "is_float"]

_CALLS = ("jit", "pjit", "closed_call", "core_call", "checkpoint", "remat", "remat2", "name")


def is_float(leaf) -> bool:
    """Whether a state or parameter leaf is differentiated (a floating-point array)."""
    return jnp.issubdtype(jnp.result_type(leaf), jnp.floating)


@dataclass(frozen=True)
class StepJacobians:
    """Blocks of one step's state Jacobians, indexed by flat leaf positions (``None`` = structurally zero).

    ``H[a][b] = ds'_a/ds_b`` and ``F[a][p] = ds'_a/dθ_p`` (all paths: exact). With ``local``:

    * ``H_local``: ``H`` accumulated only along edges that map each neuron to itself (used by ``eprop``);
    * ``cut``: the step cut at its new state, ``s' = f(θ, s, x, ŝ')`` where every use of a new state's value
      *inside* the step reads ``ŝ'`` instead: ``(F_direct, C, C_local)`` with ``F_direct = ∂f/∂θ``,
      ``C = ∂f/∂ŝ'`` and ``C_local`` its neuron-local paths; ``None`` when no new state is read inside the step
      (then ``F`` is ``F_direct``). See :func:`kept_F`.
    """

    H: list[list[Partial | None]]
    F: list[list[Partial | None]]
    H_local: list[list[Partial | None]] | None
    cut: tuple | None = None


def is_local(p: Partial) -> bool:
    """True when ``p`` maps every element to the element at the same index (an elementwise partial)."""
    if p.out_shape != p.in_shape:
        return False
    return all(a.index is None and b.index is None and a.labels == b.labels for a, b in zip(p.out_axes, p.in_axes))


def is_neuron_local(p: Partial) -> bool:
    """True when ``p`` maps each neuron (first axis) only to the same neuron; scalars are one neuron."""
    if not p.out_shape or not p.in_shape:
        return not p.out_shape and not p.in_shape
    a, b = p.out_axes[0], p.in_axes[0]
    return p.out_shape[0] == p.in_shape[0] and a.index is None and b.index is None and a.labels == b.labels


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
    return canonical(Partial(p.out_shape, p.in_shape, sizes, p.out_axes, in_axes, labels, val, p.dtype))


def _dense_neuron_block(p: Partial) -> Partial:
    n, ca, cb = p.out_shape[0], p.out_shape[1:], p.in_shape[1:]
    dense = p.todense().reshape(n, math.prod(ca), n, math.prod(cb))
    block = jnp.einsum("iaib->iab", dense).reshape((n,) + ca + cb)
    out_labels = tuple(range(1 + len(ca)))
    in_labels = (0,) + tuple(range(1 + len(ca), 1 + len(ca) + len(cb)))
    sizes = dict(zip(out_labels + in_labels[1:], (n,) + ca + cb))
    return Partial(p.out_shape, p.in_shape, sizes, tuple(Axis((x,)) for x in out_labels),
                   tuple(Axis((x,)) for x in in_labels), out_labels + in_labels[1:], block, p.dtype)


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
    ct = Partial((), p.out_shape, dict(zip(labels, p.out_shape)), (),
                 tuple(Axis((x,)) for x in labels), labels, ct, p.dtype)
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


def _local_blocks(g: Graph, starts: list[int], order) -> list[list[Partial | None]]:
    """Blocks ``[output][start]`` accumulated only along neuron-local edges downstream of ``starts``."""
    derived = reachable(g.edges, starts)
    kept = {k: p for k, p in g.edges.items() if k[0] in derived and is_neuron_local(p)}
    pruned = Graph(starts, g.outputs, kept, g.info, g.values)
    edges, _ = eliminate(pruned, resolve_order(pruned, _order_for(order)))
    return [[edges.get((s, o)) for s in starts] for o in g.outputs]


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
        local: also accumulate ``H_local`` and the step cut at its new state (see :class:`StepJacobians`).
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
        return StepJacobians(H, F, None)
    H_local = _expand(_local_blocks(g, ins[n_params:], order), args.floats, n_state)
    return StepJacobians(H, F, H_local, _cut_jacobians(step, args, order))


def _cut_jacobians(step, args: _StepArgs, order):
    """``(F_direct, C, C_local)`` of the step cut at its new state, or ``None`` when nothing reads a new state."""
    cut = _cut_step(step, args)
    if cut is None:
        return None
    n_params, n_float = len(args.params), len(args.floats)
    hats = args.call(step, args.params, [args.state[k] for k in args.floats])  # the new state: the cut's point
    g = _graph(cut, args.params + hats)
    edges, _ = eliminate(g, resolve_order(g, _order_for(order)))
    ins, n_state = g.inputs, len(args.state)
    F_direct = _expand([[edges.get((ins[p], o)) for p in range(n_params)] for o in g.outputs], args.floats,
                       n_state, n_params)
    C = _expand([[edges.get((ins[n_params + j], o)) for j in range(n_float)] for o in g.outputs], args.floats,
                n_state)
    C_local = _expand(_local_blocks(g, ins[n_params:], order), args.floats, n_state)
    return F_direct, C, C_local


def _inline(jaxpr, consts, args):
    """Evaluate a jaxpr with the bodies of nested calls (``jit``, ``closed_call``, ...) evaluated in place."""
    env = {}
    read = lambda v: v.val if isinstance(v, Literal) else env[v]
    for v, c in zip(jaxpr.constvars, consts):
        env[v] = c
    for v, a in zip(jaxpr.invars, args):
        env[v] = a
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        inner = _inner(eqn)
        outs = _inline(inner.jaxpr, inner.consts, invals) if inner is not None else \
            bind(eqn.primitive, eqn.params, invals)
        for v, o in zip(eqn.outvars, outs):
            env[v] = o
    return [read(v) for v in jaxpr.outvars]


def _inner(eqn):
    if eqn.primitive.name not in _CALLS:
        return None
    for key in ("jaxpr", "call_jaxpr"):
        j = eqn.params.get(key)
        if j is not None:
            return j if hasattr(j, "consts") else jax.extend.core.ClosedJaxpr(j, [])
    return None


def _cut_step(step, args: _StepArgs):
    """``cut(*param_leaves, *hats) -> new float state leaves``, where each use inside the step of a float new
    state's value reads its ``hat`` instead; ``None`` when no new state value is used inside the step."""
    n_params = len(args.params)
    floats = args.floats

    def new_state(*flat):
        return args.call(step, flat[:n_params], [flat[n_params + k] for k in floats])

    closed = jax.make_jaxpr(new_state)(*args.flat)
    flat_jaxpr = jax.make_jaxpr(lambda *a: _inline(closed.jaxpr, closed.consts, a))(*args.flat)
    jaxpr = flat_jaxpr.jaxpr
    produced = {v for eqn in jaxpr.eqns for v in eqn.outvars}
    cut = {}
    for k, var in enumerate(jaxpr.outvars):
        if not isinstance(var, Literal) and var in produced:
            cut.setdefault(var, k)
    if not any(v in cut for eqn in jaxpr.eqns for v in eqn.invars if not isinstance(v, Literal)):
        return None

    def fun(*dyn):
        params, hats = dyn[:n_params], dyn[n_params:]
        env = {}
        read = lambda v: v.val if isinstance(v, Literal) else env[v]
        use = lambda v: hats[cut[v]] if not isinstance(v, Literal) and v in cut else read(v)
        for v, c in zip(jaxpr.constvars, flat_jaxpr.consts):
            env[v] = c
        for v, a in zip(jaxpr.invars, list(params) + args.flat[n_params:]):
            env[v] = a
        for eqn in jaxpr.eqns:
            for v, o in zip(eqn.outvars, bind(eqn.primitive, eqn.params, [use(v) for v in eqn.invars])):
                env[v] = o
        return [read(v) for v in jaxpr.outvars]

    return fun


def kept_F(jac: StepJacobians, keep: Callable) -> list[list[Partial | None]]:
    """``F`` along the paths a mode keeps: ``F_direct + Σ_b keep(C[a][b], C_local[a][b]) · F_kept[b]``.

    A path from a parameter that reaches state leaf ``a`` through another leaf's *new* value ``s'_b`` follows the
    coupling ``C[a][b]``; ``keep`` returns the part of it the mode keeps (``None`` drops the path).
    """
    if jac.cut is None:
        return jac.F
    F_direct, C, C_local = jac.cut
    rows: dict[int, list] = {}

    def row(a):
        if a not in rows:
            acc = list(F_direct[a])
            for b in range(len(C)):
                c = None if C[a][b] is None else keep(C[a][b], C_local[a][b])
                if c is None:
                    continue
                for p, f in enumerate(row(b)):
                    if f is not None:
                        term, _ = compose(c, f)
                        acc[p] = term if acc[p] is None else (acc[p] if term is None else _add(acc[p], term))
            rows[a] = acc
        return rows[a]

    return [row(a) for a in range(len(F_direct))]


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
