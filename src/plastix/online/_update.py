"""One step of online learning for a batch: the learning signal, the gradient from the traces, the trace update."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._chunked import GroupLayout, col_factor, group_factors, row_factor, row_key
from ._jacobians import batch_vjp, step_jacobians
from ._plan import TracePlan, conform, trace_update
from ._signal import folded_params, learning_signal

__all__ = ["Program", "StepResult", "online_step"]


@dataclass(frozen=True, eq=False)
class Program:
    """An online computation, fixed before it runs: the step, its loss, the plan and how traces advance.

    Attributes:
        step: ``step(params, state, x) -> (new_state, out)`` for one example.
        loss: ``loss(out, target) -> scalar`` for one example and one step.
        plan: the :class:`~plastix.online.TracePlan` of ``step``.
        order: elimination order for the step's Jacobians.
        feedback: ``None`` or fixed feedback matrices (see :func:`plastix.online.random_feedback`).
        chunk: the blocks of ``plan.chunks`` are advanced once per chunk of this many steps; ``1`` advances every
            trace at every step.
        batched: a pass's inputs carry a batch axis after the time axis (else each step gets one of size 1).
        has_aux: ``loss`` returns ``(value, aux)``; the pass sums ``aux`` over time, per example.
    """

    step: Callable
    loss: Callable
    plan: TracePlan
    order: Any = "rev"
    feedback: Any = None
    chunk: int = 1
    batched: bool = True
    has_aux: bool = False

    @property
    def chunked(self) -> dict:
        """The blocks advanced in chunks, with their layouts."""
        return self.plan.chunks if self.chunk > 1 else {}


class StepResult(NamedTuple):
    """One step for a batch.

    Attributes:
        new_state, out: the step's results (leading batch axis).
        traces: the traces after the step (the chunked blocks unchanged).
        values: the loss per example.
        aux: the loss's aux per example (``None`` without ``has_aux``).
        grads: the gradient contributions of the step, summed over the batch, one per parameter leaf.
        pieces: for the chunked blocks, what :func:`._chunked.chunk_end` needs (see :func:`online_step`).
    """

    new_state: Any
    traces: dict
    values: jax.Array
    aux: Any
    grads: list
    out: Any
    pieces: dict


def _next_traces(program: Program, params, state, traces, x):
    """``G_t = H_t G_{t-1} + F_t`` for one example, in the plan's layouts.

    For the chunked blocks the trace is left as it is and their factors (see :mod:`._chunked`) are returned
    instead: ``{block: (h_t, x_t, a_t or None)}`` and ``{(parameter, leaves): (M_t, f_t, x_t)}`` for groups.
    """
    plan, chunked = program.plan, program.chunked
    jac = step_jacobians(program.step, params, state, x, order=program.order, local=plan.mode.layered)
    H, F = plan.mode.H(jac), plan.mode.F(jac)
    plain = [k for k in plan.blocks if k not in chunked]
    update = trace_update(H, F, traces, plain)
    new = dict(traces) | {k: conform(update[k], plan.templates[k]) for k in plain}
    pieces, groups = {}, {}
    for (a, p), layout in chunked.items():
        template = plan.templates[(a, p)]
        if isinstance(layout, GroupLayout):
            if a == layout.leaves[0]:
                groups[(p, layout.leaves)] = group_factors(layout, H, F, plan.templates, jac.factors)
        elif layout.scaled:
            J, E = jac.factors[(a, p)]
            pieces[(a, p)] = (row_factor(H[a][a], template, layout), col_factor(E, template, layout),
                              row_factor(J, template, layout))
        else:
            pieces[(a, p)] = (row_factor(H[a][a], template, layout), col_factor(F[a][p], template, layout), None)
    return new, (pieces, groups)


def online_step(program: Program, params, state, traces, x, target) -> StepResult:
    """One step of online learning for a batch (leading axis of ``state``, ``traces``, ``x``, ``target``).

    The learning signal comes from one reverse pass through the step (``l·∂out/∂θ`` and ``l·∂out/∂s``: the
    error backpropagated through the layers within the step); the traces carry the past (the contribution
    of step ``t`` uses the traces of step ``t-1``). With ``feedback`` that reverse pass runs with the given
    fixed matrices in place of the corresponding parameters (feedback alignment).

    The gradient contributions are *summed over the batch*, each contracted over the batch in one product (a
    matrix product for a low-rank trace), so no per-example gradient is ever formed. The chunked blocks are
    neither advanced nor contracted; for them ``pieces`` holds what :func:`._chunked.chunk_end` needs, each
    array once: ``"rows"`` (``h_t`` by :func:`._chunked.row_key`), ``"cols"`` (``x_t`` by block), ``"scale"``
    (``a_t`` of ``F_t = a_t ⊗ x_t`` by block, for scaled layouts), ``"signal"`` (``L_t`` by state leaf) and
    ``"delta"`` (the new state's cotangent ``δ_t`` by state leaf, for the folded parameters of
    :attr:`TracePlan.folds`, whose within-step gradient ``δ_t ⊗ x_t`` is left to the chunk) and ``"group"``
    (``(M_t, f_t, x_t)`` by ``(parameter, leaves)`` for the blocks of a :class:`._chunked.GroupLayout`).
    """
    plan, chunked = program.plan, program.chunked

    def loss_fn(out):
        values, aux = (lambda r: r if program.has_aux else (r, None))(jax.vmap(program.loss)(out, target))
        return jnp.sum(values), (values, aux)

    folded = folded_params(plan, chunked, params, program.feedback)
    sig = learning_signal(program.step, loss_fn, params, state, x, program.feedback, folded)
    grads = list(sig.grads)
    for (a, p), g in traces.items():
        if (a, p) not in chunked:
            grads[p] = grads[p] + batch_vjp(sig.signal[a], g).astype(grads[p].dtype)
    new_traces, (factors, groups) = jax.vmap(lambda s, tr, x: _next_traces(program, params, s, tr, x))(
        state, traces, x)
    pieces = {"rows": {}, "cols": {}, "scale": {}, "signal": {}, "delta": {}, "group": groups}
    for (a, p), (h, f, scale) in factors.items():
        pieces["rows"].setdefault(row_key((a, p), plan.templates[(a, p)], chunked[(a, p)]), h)
        pieces["cols"][(a, p)] = f
        if scale is not None:
            pieces["scale"][(a, p)] = scale
    for (a, p) in chunked:
        pieces["signal"][a] = sig.signal[a]
        if p in folded:
            pieces["delta"][a] = sig.delta[a]
    return StepResult(sig.new_state, new_traces, *sig.values, grads, sig.out, pieces)
