"""The online pass over a sequence (in chunks, resumable) and :func:`value_and_grad`, with BPTT as its reference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ._checks import check_chunk, check_sequence, check_step
from ._chunked import chunk_end, chunk_recursion, group_end, row_key
from ._modes import Mode, get_mode
from ._plan import DEFAULT_MAX_TRACE_SIZE, TracePlan, bounded_plan
from ._signal import folded_params
from ._update import Program, online_step

__all__ = ["StreamCarry", "run_pass", "start_carry", "value_and_grad"]


class StreamCarry(NamedTuple):
    """What an online pass carries from one segment of a sequence to the next (a pytree).

    Attributes:
        state: the network state after the last step (with the leading batch axis, also of size 1 unbatched).
        traces: the eligibility traces after the last step, ``{(state leaf, parameter leaf): Partial}``.
        total: the summed loss so far.
        grads: the summed gradient so far, with the structure of ``params``.
        aux: with ``has_aux``, the loss's aux summed over the steps so far, per example; else ``None``.
    """

    state: Any
    traces: Any
    total: jax.Array
    grads: Any
    aux: Any = None


def start_carry(plan: TracePlan, params, state0, loss_dtype, aux=None) -> StreamCarry:
    """The carry before the first step: ``state0`` (batched), zero traces, loss and gradients, and zeros of the
    shapes of ``aux`` (per example, with the batch axis) if given."""
    total = jnp.zeros((), loss_dtype)
    zeros = None if aux is None else jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), aux)
    return StreamCarry(state0, plan.zeros(jax.tree.leaves(state0)[0].shape[0]), total,
                       jax.tree.map(jnp.zeros_like, params), zeros)


_IDLE = {"rows": 1, "cols": 0, "scale": 0, "signal": 0, "delta": 0}  # a masked step's pieces change nothing


def _idle(pieces: dict, live) -> dict:
    """The pieces of a step, replaced where ``live`` is false by those of a step that changes nothing."""
    out = {kind: {k: jnp.where(live, v, _IDLE[kind]) for k, v in group.items()}
           for kind, group in pieces.items() if kind != "group"}
    eye = lambda M: jnp.eye(M.shape[1], dtype=M.dtype)[None, :, :, None]
    out["group"] = {k: (jnp.where(live, M, eye(M)), jnp.where(live, f, 0), jnp.where(live, x, 0))
                    for k, (M, f, x) in pieces["group"].items()}
    return out


def _step_fn(program: Program, params, masked: bool):
    """The scan body of one step: state, traces and the running sums, masked where ``live`` is false."""

    def one_step(carry, inputs):
        state, traces, total, grads, aux = carry
        (x, target), live = inputs
        if not program.batched:
            x, target = jax.tree.map(lambda v: jnp.expand_dims(v, 0), (x, target))
        r = online_step(program, params, state, traces, x, target)
        new_state, new_traces, value, step_aux, step_grads, pieces = r.new_state, r.traces, r.values, r.aux, \
            r.grads, r.pieces
        if masked:
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(live, a, b), new, old)
            new_state, new_traces = keep(new_state, state), keep(new_traces, traces)
            value, step_grads = jnp.where(live, value, 0), [jnp.where(live, g, 0) for g in step_grads]
            step_aux = jax.tree.map(lambda a: jnp.where(live, a, 0), step_aux)
            pieces = _idle(pieces, live)
        grads = [g + s.astype(g.dtype) for g, s in zip(grads, step_grads)]
        aux = jax.tree.map(lambda a, b: a + b.astype(a.dtype), aux, step_aux)
        return (new_state, new_traces, total + jnp.sum(value), grads, aux), pieces

    return one_step


def _stacked(by_leaf: dict, leaves) -> jax.Array:
    """``(K, batch, k, r)``: the leaves' ``(K, batch, *shape)`` arrays with their rows flattened, stacked."""
    return jnp.stack([by_leaf[a].reshape(by_leaf[a].shape[:2] + (-1,)) for a in leaves], 2)


def _close_chunk(program: Program, pieces: dict, traces: dict, grads: list, folded: frozenset):
    """Advance every chunked trace over the chunk just run and add the chunk's gradient (``chunk_end``)."""
    plan, traces, grads = program.plan, dict(traces), list(grads)
    recursions, coefficients = {}, {}
    for (a, p), x in pieces["cols"].items():
        template, layout = plan.templates[(a, p)], program.chunked[(a, p)]
        key = row_key((a, p), template, layout)
        if key not in recursions:
            recursions[key] = chunk_recursion(pieces["rows"][key], pieces["signal"][a])
        fold = p in folded
        if (key, fold) not in coefficients:
            b_k = recursions[key][3]
            coefficients[(key, fold)] = b_k + pieces["delta"][a] if fold else b_k
        traces[(a, p)], g = chunk_end(traces[(a, p)], recursions[key], x, coefficients[(key, fold)], template,
                                      layout, pieces["scale"].get((a, p)))
        grads[p] = grads[p] + g.astype(grads[p].dtype)
    for (p, leaves), factors in pieces["group"].items():
        group = program.chunked[(leaves[0], p)]
        delta = _stacked(pieces["delta"], leaves) if p in folded else None
        new, g = group_end(group, traces, plan.templates, factors, _stacked(pieces["signal"], leaves), delta)
        traces |= new
        grads[p] = grads[p] + g.astype(grads[p].dtype)
    return traces, grads


def run_pass(program: Program, params, carry: StreamCarry, xs, targets) -> StreamCarry:
    """The online pass over a time-major sequence from ``carry``: equal chunks of at most ``program.chunk``
    steps, each closed by :func:`._chunked.chunk_end`, all in one loop.

    ``T`` steps are cut into ``ceil(T / chunk)`` chunks of ``K = ceil(T / count)`` steps; the last window starts
    at ``T - K`` and masks the steps the previous chunk already took (fewer than one per chunk).
    """
    treedef = jax.tree.structure(params)
    steps = jax.tree.leaves(xs)[0].shape[0]
    count = -(-steps // program.chunk) if program.chunked else 1
    size = -(-steps // count)
    one_step = _step_fn(program, params, masked=count * size > steps)
    folded = folded_params(program.plan, program.chunked, params, program.feedback)

    def run_chunk(k, carry):
        start = jnp.minimum(k * size, steps - size)
        window = jax.tree.map(lambda v: lax.dynamic_slice_in_dim(v, start, size), (xs, targets))
        live = jnp.arange(size) >= k * size - start
        (state, traces, total, grads, aux), pieces = lax.scan(one_step, carry, (window, live))
        traces, grads = _close_chunk(program, pieces, traces, grads, folded)
        return state, traces, total, grads, aux

    start = (carry.state, carry.traces, carry.total, treedef.flatten_up_to(carry.grads), carry.aux)
    state, traces, total, grads, aux = lax.fori_loop(0, count, run_chunk, start)
    return StreamCarry(state, traces, total, jax.tree.unflatten(treedef, grads), aux)


def _bptt(step, loss, params, state0, xs, targets, has_aux: bool):
    def total_loss(params):
        def body(state, inputs):
            x, target = inputs
            state, out = step(params, state, x)
            value, aux = loss(out, target) if has_aux else (loss(out, target), None)
            return state, (value, aux)

        _, (losses, aux) = lax.scan(body, state0, (xs, targets))
        return jnp.sum(losses), jax.tree.map(lambda a: jnp.sum(a, axis=0), aux)

    (total, aux), grads = jax.value_and_grad(total_loss, has_aux=True)(params)
    return ((total, aux), grads) if has_aux else (total, grads)


def _batched_bptt(step, loss, params, state0, xs, targets, has_aux: bool):
    step_b = lambda p, s, x: jax.vmap(step, in_axes=(None, 0, 0))(p, s, x)

    def loss_b(out, target):
        per = jax.vmap(loss)(out, target)
        return (jnp.sum(per[0]), per[1]) if has_aux else jnp.sum(per)

    return _bptt(step_b, loss_b, params, state0, xs, targets, has_aux)


def _aux_zeros(step, loss, params, state, x, target, batch: int):
    """Shapes of the loss's aux for ``batch`` examples (``jax.eval_shape`` of one)."""
    out = jax.eval_shape(step, params, state, x)[1]
    one = jax.eval_shape(loss, out, target)[1]
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct((batch,) + a.shape, a.dtype), one)


def _online_value_and_grad(program: Program, params, state0, xs, targets, example):
    """The online pass of :func:`value_and_grad` from a batched ``state0``; ``example = (s0, x0, t0, loss_dtype)``
    of one example, for the aux's shapes."""
    s0, x0, t0, loss_dtype = example
    batch = jax.tree.leaves(state0)[0].shape[0]
    aux = _aux_zeros(program.step, program.loss, params, s0, x0, t0, batch) if program.has_aux else None
    carry = run_pass(program, params, start_carry(program.plan, params, state0, loss_dtype, aux), xs, targets)
    if not program.has_aux:
        return carry.total, carry.grads
    aux_sum = carry.aux if program.batched else jax.tree.map(lambda a: a[0], carry.aux)
    return (carry.total, aux_sum), carry.grads


def value_and_grad(step: Callable, loss: Callable, mode: str | Mode = "diagonal", *, order="rev",
                   max_trace_size: int | None = DEFAULT_MAX_TRACE_SIZE, drop=(), feedback=None,
                   batched: bool = False, chunk: int = 128, has_aux: bool = False) -> Callable:
    """Loss and gradient of a recurrent step function over a sequence, computed online.

    Args:
        step: ``step(params, state, x) -> (new_state, out)``, one time step in plain JAX (one example).
        loss: ``loss(out, target) -> scalar``, the loss of one step.
        mode: a name of :data:`plastix.online.MODES`: ``"bptt"`` (reference: ``jax.value_and_grad`` through
            ``lax.scan``), ``"rtrl"``, ``"diagonal"`` or ``"eprop"``.
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
        has_aux: ``loss`` returns ``(value, aux)`` (as with ``jax.value_and_grad``); ``aux`` is summed over the
            steps, per example (e.g. log-probabilities whose time average gives a sequence's prediction), so
            metrics need no second forward pass.

    Returns:
        ``vg(params, state0, xs, targets) -> (total_loss, grads)`` where ``xs`` and ``targets`` have a leading
        time axis, ``total_loss = sum_t loss(out_t, target_t)`` (also summed over the batch if ``batched``) and
        ``grads`` has the structure of ``params``; with ``has_aux``, ``((total_loss, aux_sum), grads)`` where
        ``aux_sum`` has the leaves of ``aux`` summed over time (with the batch axis first if ``batched``).
        Jittable; the unbatched form is ``jax.vmap``-able.

    Raises:
        ValueError: unknown mode, state/step mismatch, non-scalar loss, traces above ``max_trace_size``, ``chunk``.
    """
    mode = get_mode(mode)
    check_chunk(chunk)
    first = (lambda v: v[0, 0]) if batched else (lambda v: v[0])

    def vg(params, state0, xs, targets):
        check_sequence(state0, xs, targets, batched=batched)
        x0, t0 = jax.tree.map(first, xs), jax.tree.map(first, targets)
        s0 = jax.tree.map(lambda v: v[0], state0) if batched else state0
        loss_dtype = check_step(step, loss, params, s0, x0, t0, has_aux=has_aux)
        if not mode.online:
            bptt = _batched_bptt if batched else _bptt
            return bptt(step, loss, params, state0, xs, targets, has_aux)
        if not batched:  # a batch of one: the same code path (inputs get their batch axis step by step)
            state0 = jax.tree.map(lambda v: jnp.expand_dims(v, 0), state0)
        plan = bounded_plan(step, params, s0, x0, mode, order=order, max_trace_size=max_trace_size, drop=drop)
        program = Program(step, loss, plan, order, feedback, chunk, batched, has_aux)
        return _online_value_and_grad(program, params, state0, xs, targets, (s0, x0, t0, loss_dtype))

    return vg
