"""Eligibility traces ``G_t = H_t G_{t-1} + F_t`` derived from the sparse Jacobians of a step function.

For a step ``(new_state, out) = step(params, state, x)`` and a per-step loss ``loss(out, target)``::

    dℓ_t/dθ = l_t · (∂out_t/∂θ + ∂out_t/∂s_{t-1} · G_{t-1}),     l_t = ∂ℓ_t/∂out_t,
    G_t = H_t · G_{t-1} + F_t,    H_t = ∂s_t/∂s_{t-1},    F_t = ∂s_t/∂θ.

``G`` is kept per (state leaf, parameter leaf) block as a structured :class:`~plastix.ad.Partial` whose layout
is the fixed point of the update above, so for a weight ``W`` of shape (n, m) driving n neurons the block
stores n·m numbers, and nothing grows with the number of steps. The modes differ only in the part of ``H``
they keep and so in which blocks have traces:

* ``rtrl``: all of ``H``, every block a parameter can reach: exact (equals BPTT);
* ``diagonal``: each neuron's own entries of ``H`` (D-RTRL / SnAp-1); blocks only where the trace is no
  larger than its parameter or its state (local blocks). Exact for layers without recurrent coupling;
* ``eprop``: ``H`` without any path that crosses from one neuron to another (e-prop), same blocks.

In ``diagonal`` and ``eprop`` a parameter's influence on *another* layer's state is not traced; it reaches the
loss only through the same step (``∂out_t/∂θ`` and the learning signal through the layers at step ``t``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ..ad._partial import Partial, add, canonical, compose, structure_key
from ._chunked import chunk_end, chunk_layout, chunk_recursion, col_factor, row_factor, row_key
from ._jacobians import StepJacobians, batch_vjp, neuron_block, split_step, step_jacobians

__all__ = ["MODES", "StreamCarry", "TracePlan", "value_and_grad", "plan_traces", "online_step_batch",
           "random_feedback", "start_carry", "bounded_plan", "parameter_names", "DEFAULT_MAX_TRACE_SIZE"]

MODES = ("bptt", "rtrl", "diagonal", "eprop")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")


def effective_H(jac: StepJacobians, mode: str):
    """The part of ``H`` a mode keeps (see the module docstring)."""
    if mode == "rtrl":
        return jac.H
    if mode == "eprop":
        return jac.H_local
    n = len(jac.H)
    kept = [[None] * n for _ in range(n)]
    for a in range(n):
        for b in range(n):
            h = jac.H[a][b]
            if h is not None and (a == b or jac.H_local[a][b] is not None or jac.H_local[b][a] is not None):
                kept[a][b] = neuron_block(h)
    return kept


def effective_F(jac: StepJacobians, mode: str):
    """The part of ``F`` a mode keeps: all of it in ``rtrl``; in ``diagonal`` and ``eprop`` the paths through the
    neurons of another layer are left to the learning signal of the same step."""
    return jac.F if mode == "rtrl" else jac.F_layer


def _traced_blocks(H, F, dropped: frozenset) -> list[tuple[int, int]]:
    """The (state leaf, parameter leaf) pairs that carry a trace: every block the mode's ``H`` and ``F`` reach,
    except for the parameters in ``dropped``."""
    n_state, n_params = len(F), len(F[0]) if F else 0
    keep = {(a, p) for a in range(n_state) for p in range(n_params) if F[a][p] is not None and p not in dropped}
    changed = True
    while changed:
        changed = False
        for a in range(n_state):
            for b in range(n_state):
                if H[a][b] is None:
                    continue
                for p in range(n_params):
                    if (b, p) in keep and (a, p) not in keep:
                        keep.add((a, p))
                        changed = True
    return sorted(keep)


def _trace_update(H, F, G, blocks):
    """``H · G + F`` for every traced block (``None`` where structurally zero)."""
    new = {}
    for (a, p) in blocks:
        acc = F[a][p]
        for b in range(len(H)):
            if H[a][b] is None or G.get((b, p)) is None:
                continue
            term, _ = compose(H[a][b], G[(b, p)])
            if term is not None:
                acc = term if acc is None else add(acc, term)
        new[(a, p)] = acc
    return new


def _key(p: Partial | None):
    if p is None:
        return None
    c = canonical(p)
    return structure_key(c), c.val_labels


def _merge(t: Partial | None, u: Partial | None) -> Partial | None:
    if t is None or u is None:
        return t if u is None else u
    return add(t, u)


@dataclass(frozen=True)
class TracePlan:
    """What a mode traces for a step: the blocks, their layouts (zero-valued templates) and their sizes.

    ``chunks`` maps the blocks advanced in chunks to their :class:`._chunked.ChunkLayout`; ``folds`` holds the
    chunked blocks ``(a, p)`` whose parameter reaches the new state only through state leaf ``a``, so its
    within-step gradient can be folded into the chunk's matrix product.
    """

    mode: str
    blocks: tuple[tuple[int, int], ...]
    templates: dict
    chunks: dict = field(default_factory=dict)
    folds: frozenset = frozenset()
    dropped: frozenset = frozenset()

    def zeros(self, batch: int | None = None) -> dict:
        """Traces at t = 0 (with a leading axis of size ``batch`` on the stored values if given)."""
        lead = () if batch is None else (batch,)
        return {k: Partial(t.out_shape, t.in_shape, t.sizes, t.out_axes, t.in_axes, t.val_labels,
                           jnp.zeros(lead + t.val.shape, t.val.dtype), t.dtype) for k, t in self.templates.items()}

    @property
    def stored_size(self) -> int:
        return sum(t.stored_size for t in self.templates.values())


def plan_traces(step, params, state, x, mode: str, *, order="rev", drop=()) -> TracePlan:
    """Find the traced blocks and the fixed-point layout of every trace, from shapes alone.

    The step is evaluated abstractly (``jax.eval_shape``): no array values are computed, only the structure
    of ``H = ds'/ds`` and ``F = ds'/dθ``, from which each trace's layout is iterated to its fixed point.

    Args:
        step: ``step(params, state, x) -> (new_state, out)`` for one time step of one example.
        params: parameter pytree (floating-point leaves); only shapes and dtypes are used.
        state: state pytree at one step (floating-point leaves, no batch axis).
        x: input of one step (no batch or time axis).
        mode: ``"rtrl"``, ``"diagonal"`` or ``"eprop"``.
        order: elimination order for the step's Jacobians, as for :func:`plastix.jacve`.
        drop: parameters (names as in :func:`parameter_names`) that carry no trace by request: they learn from
            their within-step gradient only (an explicit approximation, reported by ``describe``).

    Returns:
        A :class:`TracePlan`: the traced ``(state leaf, parameter leaf)`` blocks, a zero-valued template
        :class:`~plastix.ad.Partial` per block (its layout), the blocks advanced in chunks, and
        ``stored_size`` (numbers stored per example).

    Raises:
        ValueError: ``mode`` is not one of ``"rtrl"``, ``"diagonal"``, ``"eprop"``, or ``drop`` names no
            parameter.
        RuntimeError: the trace layout does not reach a fixed point within 8 iterations.
        ValueError, TypeError, NotImplementedError: as :func:`plastix.jacve` when tracing ``step``.

    Example:
        >>> plan = plastix.online.plan_traces(step, params, state0, x[0], "diagonal")
        >>> plan.stored_size, plan.blocks
    """
    if mode not in MODES[1:]:
        raise ValueError(f"plan_traces: unknown mode {mode!r}; expected one of {', '.join(MODES[1:])} "
                         f"('bptt' keeps no traces)")
    dropped = dropped_params(params, drop)
    found = {}

    def probe(params, state, x):
        jac = step_jacobians(step, params, state, x, order=order, local=mode != "rtrl")
        H, F = effective_H(jac, mode), effective_F(jac, mode)
        blocks = _traced_blocks(H, F, dropped)
        templates = {k: F[k[0]][k[1]] for k in blocks}
        for _ in range(8):
            update = _trace_update(H, F, templates, blocks)
            merged = {k: _merge(templates[k], update[k]) for k in blocks}
            if all(_key(merged[k]) == _key(templates[k]) for k in blocks):
                break
            templates = merged
        else:
            raise RuntimeError("plastix.online: the trace layout did not reach a fixed point in 8 steps")
        for k in blocks:
            t = canonical(templates[k])
            if t.val is None:
                t = Partial(t.out_shape, t.in_shape, t.sizes, t.out_axes, t.in_axes, (), jnp.ones((), t.dtype),
                            t.dtype)
            found[k] = t
        found["blocks"] = blocks
        found["chunks"] = {k: chunk_layout(k, H, F, blocks, found[k], jac.factors.get(k)) for k in blocks}
        found["sources"] = {p: [a for a in range(len(jac.F)) if jac.F[a][p] is not None] for (_, p) in blocks}
        return 0

    jax.eval_shape(probe, params, state, x)
    blocks = tuple(found.pop("blocks"))
    chunks = {k: layout for k, layout in found.pop("chunks").items() if layout is not None}
    sources = found.pop("sources")
    folds = frozenset((a, p) for (a, p) in chunks if sources[p] == [a])
    templates = {k: Partial(t.out_shape, t.in_shape, t.sizes, t.out_axes, t.in_axes, t.val_labels,
                            jax.ShapeDtypeStruct(t.val.shape, t.val.dtype), t.dtype) for k, t in found.items()}
    return TracePlan(mode, blocks, templates, chunks, folds, dropped)


def parameter_names(params) -> list[str]:
    """The name of every parameter leaf: its key path joined by ``/`` (``{"hidden": [{"W": ..}]}`` gives
    ``"hidden/0/W"``), or ``"<params>"`` for a lone array."""
    names = []
    for path, _ in jax.tree.flatten_with_path(params)[0]:
        keys = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        names.append("/".join(keys) or "<params>")
    return names


def dropped_params(params, drop) -> frozenset[int]:
    """Leaf indices of the parameters named in ``drop`` (a name, or its ``jax.tree_util.keystr`` path)."""
    if isinstance(drop, str):
        drop = (drop,)
    names = parameter_names(params)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree.flatten_with_path(params)[0]]
    unknown = [d for d in drop if d not in names and d not in paths]
    if unknown:
        raise ValueError(f"drop: no parameter named {', '.join(map(repr, unknown))}; the parameters are "
                         f"{', '.join(map(repr, names))}")
    return frozenset(k for k, (n, p) in enumerate(zip(names, paths)) if n in drop or p in drop)


def conform(p: Partial | None, template: Partial) -> Partial:
    """``p`` expressed in the layout of ``template`` (a trace must keep its layout across steps)."""
    shape, dtype = template.val.shape, template.val.dtype
    if p is None:
        val = jnp.zeros(shape, dtype)
    else:
        c = canonical(p)
        if structure_key(c) != structure_key(template):
            if template.kind != "dense":
                raise RuntimeError(f"plastix.online: a trace left its layout: {c!r} vs {template!r}")
            c = Partial.dense(c.todense(), c.out_shape, c.in_shape)
        labels = template.val_labels
        if c.val is None:
            val = jnp.ones(shape, dtype)
        else:
            sizes = [c.sizes[x] if x in c.val_labels else 1 for x in labels]
            val = jnp.broadcast_to(c.val.astype(dtype).reshape(sizes), shape)
    return Partial(template.out_shape, template.in_shape, template.sizes, template.out_axes, template.in_axes,
                   template.val_labels, val, template.dtype)


def _signal(step, loss_fn, params, state, x, feedback, folded):
    """Loss, ``∂ℓ/∂θ`` within the step, the learning signal and the new state's cotangent, for a batch.

    The step is split at its new state (:func:`._jacobians.split_step`): the loss's cotangent ``δ = ∂ℓ/∂s'``
    comes from the readout, and is pulled back through the state update to the signal ``∂ℓ/∂s`` and to
    ``δ·∂s'/∂θ``. For the parameters in ``folded`` that last product is left out: the chunked trace update adds
    it with its own matrix product (``δ_t ⊗ x_t`` next to the trace's ``B_t ⊗ x_t``). ``loss_fn(out)`` returns
    ``(total, values)``. With ``feedback`` the signal and ``δ`` come from a second reverse pass with the fixed
    matrices in place of the corresponding parameters (feedback alignment); those parameters keep their exact
    gradient.

    Returns:
        ``(new_state, out, values, grads, signal, delta)`` with ``grads``, ``signal`` and ``delta`` as lists of
        leaves.
    """
    one = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape[1:], v.dtype), (state, x))
    new_state_fn, readout_fn = split_step(step, params, *one)
    batch = lambda f, *axes: jax.vmap(f, in_axes=(None, 0, 0) + axes)

    def backward(p):
        new_state, state_pullback = jax.vjp(lambda p, s: batch(new_state_fn)(p, s, x), p, state)
        out, out_pullback = jax.vjp(lambda p, s, n: batch(readout_fn, 0)(p, s, x, n), p, state, new_state)
        return new_state, out, state_pullback, out_pullback

    def pull(state_pullback, out_pullback):
        direct, signal, delta = out_pullback(l_out)
        through_state, state_signal = state_pullback(delta)
        grads = [d if k in folded else d + t
                 for k, (d, t) in enumerate(zip(jax.tree.leaves(direct), jax.tree.leaves(through_state)))]
        signal = [a if a.dtype == jax.dtypes.float0 else a + b
                  for a, b in zip(jax.tree.leaves(signal), jax.tree.leaves(state_signal))]
        return grads, signal, jax.tree.leaves(delta)

    new_state, out, state_pullback, out_pullback = backward(params)
    (_, values), l_out = jax.value_and_grad(loss_fn, has_aux=True)(out)
    grads, signal, delta = pull(state_pullback, out_pullback)
    if feedback is not None:
        aligned_params = jax.tree.map(lambda p, b: p if b is None else jnp.asarray(b, jnp.result_type(p)), params,
                                      feedback, is_leaf=lambda v: v is None)
        aligned, signal, delta = pull(*backward(aligned_params)[2:])
        grads = [g if r else a for g, a, r in zip(grads, aligned, _replaced(params, feedback))]
    return new_state, out, values, grads, signal, delta


def _next_traces(step, plan: TracePlan, params, state, traces, x, order, chunked=()):
    """``G_t = H_t G_{t-1} + F_t`` for one example, in the plan's layouts.

    For the blocks in ``chunked`` the trace is left as it is and ``(h_t, x_t)`` (see :mod:`._chunked`) is
    returned instead. Returns ``(traces, {block: (h_t, x_t)})``.
    """
    jac = step_jacobians(step, params, state, x, order=order, local=plan.mode != "rtrl")
    H, F = effective_H(jac, plan.mode), effective_F(jac, plan.mode)
    plain = [k for k in plan.blocks if k not in chunked]
    update = _trace_update(H, F, traces, plain)
    new = dict(traces) | {k: conform(update[k], plan.templates[k]) for k in plain}
    pieces = {}
    for (a, p) in chunked:
        template, layout = plan.templates[(a, p)], plan.chunks[(a, p)]
        if layout.scaled:
            J, E = jac.factors[(a, p)]
            pieces[(a, p)] = (row_factor(H[a][a], template, layout), col_factor(E, template, layout),
                              row_factor(J, template, layout))
        else:
            pieces[(a, p)] = (row_factor(H[a][a], template, layout), col_factor(F[a][p], template, layout), None)
    return new, pieces


def _replaced(params, feedback) -> list[bool]:
    """Per parameter leaf: whether ``feedback`` replaces it in the backward pass."""
    if feedback is None:
        return [False] * len(jax.tree.leaves(params))
    return jax.tree.leaves(jax.tree.map(lambda p, b: b is not None, params, feedback, is_leaf=lambda v: v is None))


def _folded(plan: TracePlan, chunked, params, feedback) -> dict[int, int]:
    """``{parameter: state leaf}`` for the chunked blocks whose within-step gradient joins the chunk's product
    (not for a parameter replaced by fixed feedback: it keeps its exact within-step gradient)."""
    replaced = _replaced(params, feedback)
    return {p: a for (a, p) in plan.folds if (a, p) in chunked and not replaced[p]}


def online_step_batch(step, loss, plan: TracePlan, params, state, traces, x, target, *, order="rev",
                      feedback=None, chunked=()):
    """One step of online learning for a batch (leading axis of ``state``, ``traces``, ``x``, ``target``).

    The learning signal comes from one reverse pass through the step (``l·∂out/∂θ`` and ``l·∂out/∂s``: the
    error backpropagated through the layers within the step); the traces carry the past (the contribution
    of step ``t`` uses the traces of step ``t-1``). With ``feedback`` (see :func:`value_and_grad`) that reverse
    pass runs with the given fixed matrices in place of the corresponding parameters (feedback alignment).

    Returns per-example losses and outputs and the gradient contributions *summed over the batch*, each
    contracted over the batch in one product (a matrix product for a low-rank trace), so no per-example
    gradient is ever formed. The blocks in ``chunked`` are neither advanced nor contracted; for them the
    returned ``pieces`` hold what :func:`._chunked.chunk_end` needs, each array once: ``"rows"`` (``h_t`` by
    :func:`._chunked.row_key`), ``"cols"`` (``x_t`` by block), ``"scale"`` (``a_t`` of ``F_t = a_t ⊗ x_t`` by
    block, for scaled layouts), ``"signal"`` (``L_t`` by state leaf) and
    ``"delta"`` (the new state's cotangent ``δ_t`` by state leaf, for the folded parameters of
    :attr:`TracePlan.folds`, whose within-step gradient ``δ_t ⊗ x_t`` is left to the chunk).

    Returns:
        ``(new_state, new_traces, losses, grads, out, pieces)``.
    """
    loss_fn = lambda out: (lambda v: (jnp.sum(v), v))(jax.vmap(loss)(out, target))
    folded = _folded(plan, chunked, params, feedback)
    new_state, out, values, grads, signals, deltas = _signal(step, loss_fn, params, state, x, feedback, folded)
    for (a, p), g in traces.items():
        if (a, p) not in chunked:
            grads[p] = grads[p] + batch_vjp(signals[a], g).astype(grads[p].dtype)
    next_one = lambda s, tr, x: _next_traces(step, plan, params, s, tr, x, order, chunked)
    new_traces, factors = jax.vmap(next_one)(state, traces, x)
    pieces = {"rows": {}, "cols": {}, "scale": {}, "signal": {}, "delta": {}}
    for (a, p), (h, f, scale) in factors.items():
        pieces["rows"].setdefault(row_key((a, p), plan.templates[(a, p)], chunked[(a, p)]), h)
        pieces["cols"][(a, p)] = f
        if scale is not None:
            pieces["scale"][(a, p)] = scale
        pieces["signal"][a] = signals[a]
        if folded.get(p) == a:
            pieces["delta"][a] = deltas[a]
    return new_state, new_traces, values, grads, out, pieces


def check_step(step, loss, params, state, x, target):
    """Clear errors for a step whose new state does not match its state, or a non-scalar loss.

    Returns:
        The dtype of the loss.
    """
    try:
        result = jax.eval_shape(step, params, state, x)
    except (TypeError, ValueError) as e:
        shapes = jax.tree.map(jnp.shape, x)
        raise ValueError(f"step(params, state, x) failed on one step of xs (x with shapes {shapes}); xs must have a "
                         f"leading time axis (and a batch axis after it with batched=True): {e}") from e
    if not (isinstance(result, tuple | list) and len(result) == 2):
        got = f"a {type(result).__name__} of {len(result)}" if isinstance(result, tuple | list) else "one value"
        raise ValueError(f"step(params, state, x) must return a pair (new_state, out), got {got}")
    new_state, out = result
    s_leaves, s_tree = jax.tree.flatten_with_path(state)
    n_leaves, n_tree = jax.tree.flatten_with_path(new_state)
    if jax.tree.structure(state) != jax.tree.structure(new_state):
        raise ValueError(f"step must return a new state with the structure of the state: expected "
                         f"{jax.tree.structure(state)}, got {jax.tree.structure(new_state)}")
    for (path, s), (_, n) in zip(s_leaves, n_leaves):
        if jnp.shape(s) != n.shape or jnp.result_type(s) != n.dtype:
            raise ValueError(f"state leaf {jax.tree_util.keystr(path) or '<state>'}: step returns shape "
                             f"{n.shape} dtype {n.dtype}, expected shape {jnp.shape(s)} dtype {jnp.result_type(s)}")
    value = jax.eval_shape(loss, out, target)
    if not (hasattr(value, "shape") and value.shape == ()):
        raise ValueError(f"loss(out, target) must return a scalar, got {getattr(value, 'shape', type(value))}")
    return value.dtype


def check_sequence(state0, xs, targets, *, batched: bool) -> None:
    """Clear errors for inputs without a time (and batch) axis, an empty sequence, or mismatched lengths."""
    lead = 2 if batched else 1
    axes = "(T, B, ...)" if batched else "(T, ...)"
    for name, tree in (("xs", xs), ("targets", targets)):
        leaves = jax.tree.flatten_with_path(tree)[0]
        if not leaves:
            raise ValueError(f"{name} is empty: expected arrays with a leading time axis {axes}")
        for path, v in leaves:
            if jnp.ndim(v) < lead:
                raise ValueError(f"{name}{jax.tree_util.keystr(path)} has shape {jnp.shape(v)}: expected a leading "
                                 f"time axis{' and a batch axis' if batched else ''} {axes}")
    lengths = {f"{name}{jax.tree_util.keystr(path)}": jnp.shape(v)[0] for name, tree in (("xs", xs),
               ("targets", targets)) for path, v in jax.tree.flatten_with_path(tree)[0]}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"xs and targets must have the same number of time steps, got "
                         f"{', '.join(f'{k}: {n}' for k, n in lengths.items())}")
    if next(iter(lengths.values())) == 0:
        raise ValueError("xs has no time steps (T = 0): expected at least one step")
    if batched:
        sizes = {f"state0{jax.tree_util.keystr(p)}": jnp.shape(v)[0] if jnp.ndim(v) else None
                 for p, v in jax.tree.flatten_with_path(state0)[0]}
        sizes |= {f"{name}{jax.tree_util.keystr(p)}": jnp.shape(v)[1] for name, tree in (("xs", xs),
                  ("targets", targets)) for p, v in jax.tree.flatten_with_path(tree)[0]}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"batched=True needs one batch size (state0 leaves (B, ...), xs and targets (T, B, "
                             f"...)), got {', '.join(f'{k}: {n}' for k, n in sizes.items())}")


DEFAULT_MAX_TRACE_SIZE = 2 ** 27


def bounded_plan(step, params, state, x, mode: str, *, order, max_trace_size: int | None, drop=()) -> TracePlan:
    """:func:`plan_traces`, refused when its traces store more than ``max_trace_size`` numbers per example."""
    plan = plan_traces(step, params, state, x, mode, order=order, drop=drop)
    if max_trace_size is not None and plan.stored_size > max_trace_size:
        state_names = [jax.tree_util.keystr(p) or "<state>" for p, _ in jax.tree.flatten_with_path(state)[0]]
        names = parameter_names(params)
        largest = sorted(plan.templates.items(), key=lambda kv: -kv[1].stored_size)[:3]
        blocks = "; ".join(f"state {state_names[a]} / parameter {names[p]!r}: {t.stored_size:,} ({t.kind})"
                           for (a, p), t in largest)
        raise ValueError(f"mode {mode!r} needs traces of {plan.stored_size:,} numbers per example, more than "
                         f"max_trace_size={max_trace_size:,} (largest blocks: {blocks}); ways out: a smaller "
                         f"model, mode 'bptt' (no traces), drop=[{names[largest[0][0][1]]!r}] to learn that "
                         f"parameter from its within-step gradient only, or a larger max_trace_size")
    return plan


def value_and_grad(step: Callable, loss: Callable, mode: str = "diagonal", *, order="rev",
                   max_trace_size: int | None = DEFAULT_MAX_TRACE_SIZE, drop=(), feedback=None,
                   batched: bool = False, chunk: int = 128) -> Callable:
    """Loss and gradient of a recurrent step function over a sequence, computed online.

    Args:
        step: ``step(params, state, x) -> (new_state, out)``, one time step in plain JAX (one example).
        loss: ``loss(out, target) -> scalar``, the loss of one step.
        mode: ``"bptt"`` (reference: ``jax.value_and_grad`` through ``lax.scan``), ``"rtrl"``, ``"diagonal"``
            or ``"eprop"``.
        order: elimination order for the step's Jacobians.
        max_trace_size: refuse, before anything runs, a plan whose traces store more numbers than this per
            example (``None``: no limit). The modes never drop a trace to save memory.
        drop: names of parameters (see :func:`parameter_names`) that carry no trace by explicit request: they
            learn from their within-step gradient only; ``describe`` reports them.
        feedback: ``None`` for the exact (symmetric) learning signal, or a pytree with the structure of
            ``params`` holding a fixed array (e.g. from :func:`random_feedback`) for each parameter whose
            transpose is replaced in the backward pass, ``None`` elsewhere.
        batched: the inputs carry a batch axis (``state0`` leaves ``(B, ...)``, ``xs`` and ``targets`` leaves
            ``(T, B, ...)``, time-major) and the results are summed over it. Equal to ``jax.vmap`` of the
            unbatched function followed by a sum, but faster: each step's gradient is contracted over the batch
            in one product instead of being formed per example.
        chunk: traces whose recurrence acts per neuron (``G_t[r, c] = h_t[r] G_{t-1}[r, c] + x_t[c]``, e.g. a
            weight into LIF neurons) are advanced exactly once per chunk of steps with matrix products, from
            the chunk's stored factors per example (see ``plastix.online._chunked``). The ``T`` steps are cut
            into ``ceil(T / chunk)`` equal chunks; ``1`` advances every trace at every step. Memory stays
            independent of the sequence length either way.

    Returns:
        ``vg(params, state0, xs, targets) -> (total_loss, grads)`` where ``xs`` and ``targets`` have a leading
        time axis, ``total_loss = sum_t loss(out_t, target_t)`` (also summed over the batch if ``batched``) and
        ``grads`` has the structure of ``params``. Jittable; the unbatched form is ``jax.vmap``-able.

    Raises:
        ValueError: unknown mode, state/step mismatch, non-scalar loss, traces above ``max_trace_size``, or a
            ``chunk`` below 1.
    """
    check_mode(mode)
    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk must be a positive number of steps, got {chunk!r}")
    first = (lambda v: v[0, 0]) if batched else (lambda v: v[0])

    def vg(params, state0, xs, targets):
        check_sequence(state0, xs, targets, batched=batched)
        x0, t0 = jax.tree.map(first, xs), jax.tree.map(first, targets)
        s0 = jax.tree.map(lambda v: v[0], state0) if batched else state0
        loss_dtype = check_step(step, loss, params, s0, x0, t0)
        if not batched:  # a batch of one: the same code path (inputs get their batch axis step by step)
            state0 = jax.tree.map(lambda v: jnp.expand_dims(v, 0), state0)
        if mode == "bptt":
            step_b = lambda p, s, x: jax.vmap(step, in_axes=(None, 0, 0))(p, s, x)
            if not batched:
                return _bptt(step, loss, params, s0, xs, targets)
            return _bptt(step_b, lambda out, t: jnp.sum(jax.vmap(loss)(out, t)), params, state0, xs, targets)
        plan = bounded_plan(step, params, s0, x0, mode, order=order, max_trace_size=max_trace_size, drop=drop)
        carry = _online(step, loss, plan, params, start_carry(plan, params, state0, loss_dtype), xs, targets,
                        order=order, feedback=feedback, chunked=plan.chunks if chunk > 1 else {}, chunk=chunk,
                        batched=batched)
        return carry.total, carry.grads

    return vg


class StreamCarry(NamedTuple):
    """What an online pass carries from one segment of a sequence to the next (a pytree).

    Attributes:
        state: the network state after the last step (with the leading batch axis, also of size 1 unbatched).
        traces: the eligibility traces after the last step, ``{(state leaf, parameter leaf): Partial}``.
        total: the summed loss so far.
        grads: the summed gradient so far, with the structure of ``params``.
    """

    state: Any
    traces: Any
    total: jax.Array
    grads: Any


def start_carry(plan: TracePlan, params, state0, loss_dtype) -> StreamCarry:
    """The carry before the first step: ``state0`` (batched), zero traces, zero loss and gradients."""
    total = jnp.zeros((), loss_dtype)
    return StreamCarry(state0, plan.zeros(jax.tree.leaves(state0)[0].shape[0]), total,
                       jax.tree.map(jnp.zeros_like, params))


def _online(step, loss, plan: TracePlan, params, carry: StreamCarry, xs, targets, *, order, feedback, chunked, chunk,
            batched) -> StreamCarry:
    """The online pass over a time-major batch from ``carry``: equal chunks of at most ``chunk`` steps, each closed
    by :func:`chunk_end`, all in one loop.

    ``T`` steps are cut into ``ceil(T / chunk)`` chunks of ``K = ceil(T / count)`` steps; the last window starts
    at ``T - K`` and masks the steps the previous chunk already took (fewer than one per chunk). Without
    ``batched`` the inputs have no batch axis and get one of size 1 at each step.
    """
    treedef = jax.tree.structure(params)
    steps = jax.tree.leaves(xs)[0].shape[0]
    count = -(-steps // chunk) if chunked else 1
    size = -(-steps // count)
    masked = count * size > steps
    folded = _folded(plan, chunked, params, feedback)

    def one_step(carry, inputs):
        state, traces, total, grads = carry
        (x, target), live = inputs
        if not batched:
            x, target = jax.tree.map(lambda v: jnp.expand_dims(v, 0), (x, target))
        new_state, new_traces, value, step_grads, _, pieces = online_step_batch(
            step, loss, plan, params, state, traces, x, target, order=order, feedback=feedback, chunked=chunked)
        if masked:
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(live, a, b), new, old)
            new_state, new_traces = keep(new_state, state), keep(new_traces, traces)
            value, step_grads = jnp.where(live, value, 0), [jnp.where(live, g, 0) for g in step_grads]
            fill = {"rows": 1, "cols": 0, "scale": 0, "signal": 0, "delta": 0}
            pieces = {kind: {k: jnp.where(live, v, fill[kind]) for k, v in group.items()}
                      for kind, group in pieces.items()}
        grads = [g + s.astype(g.dtype) for g, s in zip(grads, step_grads)]
        return (new_state, new_traces, total + jnp.sum(value), grads), pieces

    def run_chunk(k, carry):
        start = jnp.minimum(k * size, steps - size)
        window = jax.tree.map(lambda v: lax.dynamic_slice_in_dim(v, start, size), (xs, targets))
        live = jnp.arange(size) >= k * size - start
        carry, pieces = lax.scan(one_step, carry, (window, live))
        state, traces, total, grads = carry
        traces, grads = dict(traces), list(grads)
        recursions, coefficients = {}, {}
        for (a, p), x in pieces["cols"].items():
            template, layout = plan.templates[(a, p)], chunked[(a, p)]
            key = row_key((a, p), template, layout)
            if key not in recursions:
                recursions[key] = chunk_recursion(pieces["rows"][key], pieces["signal"][a])
            fold = folded.get(p) == a
            if (key, fold) not in coefficients:
                b_k = recursions[key][3]
                coefficients[(key, fold)] = b_k + pieces["delta"][a] if fold else b_k
            traces[(a, p)], g = chunk_end(traces[(a, p)], recursions[key], x, coefficients[(key, fold)], template,
                                          layout, pieces["scale"].get((a, p)))
            grads[p] = grads[p] + g.astype(grads[p].dtype)
        return state, traces, total, grads

    start = (carry.state, carry.traces, carry.total, treedef.flatten_up_to(carry.grads))
    state, traces, total, grads = lax.fori_loop(0, count, run_chunk, start)
    return StreamCarry(state, traces, total, jax.tree.unflatten(treedef, grads))


def _bptt(step, loss, params, state0, xs, targets):
    def total_loss(params):
        def body(state, inputs):
            x, target = inputs
            state, out = step(params, state, x)
            return state, loss(out, target)

        _, losses = lax.scan(body, state0, (xs, targets))
        return jnp.sum(losses)

    return jax.value_and_grad(total_loss)(params)


def random_feedback(key: jax.Array, params, select: Callable[[str], bool], *, scale: float = 1.0):
    """Fixed random feedback matrices for the parameters whose key path satisfies ``select``.

    Args:
        key: PRNG key.
        params: the parameter pytree.
        select: predicate on ``jax.tree_util.keystr`` of a leaf's path, e.g. ``lambda p: "readout" in p``.
        scale: the matrices are Gaussian with standard deviation ``scale / sqrt(fan_in)``.

    Returns:
        A pytree like ``params`` with random arrays at the selected leaves and ``None`` elsewhere, for the
        ``feedback`` argument of :func:`value_and_grad` and :class:`Learner`.
    """
    leaves, treedef = jax.tree.flatten_with_path(params)
    keys = jax.random.split(key, max(1, len(leaves)))
    out = []
    for k, (path, leaf) in zip(keys, leaves):
        if select(jax.tree_util.keystr(path)):
            fan_in = jnp.shape(leaf)[-1] if jnp.ndim(leaf) else 1
            out.append(scale / math.sqrt(fan_in) * jax.random.normal(k, jnp.shape(leaf), jnp.result_type(leaf)))
        else:
            out.append(None)
    return jax.tree.unflatten(treedef, out)
