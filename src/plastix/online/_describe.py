"""A readable account of what plastix derived from a step function."""

from __future__ import annotations

import jax

from ._jacobians import is_neuron_local, step_jacobians
from ._traces import MODES, check_mode, parameter_names, plan_traces

__all__ = ["describe"]


def describe(step, params, state, x, mode: str | None = None, *, order="rev", drop=(), file=None) -> str:
    """Print (and return) the structure derived from ``step(params, state, x) -> (new_state, out)``.

    Lists the state variables, which blocks of ``H = ds'/ds`` are local to a neuron (the first axis of a state
    leaf) or couple different neurons, and for each mode every parameter's traced blocks with their layout and
    stored size and whether the block's recurrence acts per neuron (then ``value_and_grad`` advances it in
    chunks), and for every parameter without a trace, why.

    Args:
        step: ``step(params, state, x) -> (new_state, out)`` for one time step of one example.
        params: parameter pytree (floating-point leaves).
        state: state pytree at one step (floating-point leaves, no batch axis).
        x: input of one step (no batch or time axis).
        mode: one mode, or ``None`` for ``"rtrl"``, ``"diagonal"`` and ``"eprop"``.
        drop: as for :func:`plastix.online.value_and_grad`.
        order: elimination order for the step's Jacobians, as for :func:`plastix.jacve`.
        file: text stream to print to (``None``: ``sys.stdout``).

    Returns:
        The printed text (without the trailing newline).

    Raises:
        RuntimeError: a trace layout does not reach a fixed point (see :func:`plan_traces`).
        ValueError, TypeError, NotImplementedError: as :func:`plastix.jacve` when tracing ``step``.

    Example:
        >>> plastix.online.describe(step, params, state0, x[0])
        state variables (2):
        ...
    """
    modes = MODES[1:] if mode is None else (mode,)
    for m in modes:
        check_mode(m)
    jac = step_jacobians(step, params, state, x, order=order, local=True)
    state_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree.flatten_with_path(state)[0]]
    names = parameter_names(params)
    state_leaves = jax.tree.leaves(state)
    lines = [f"state variables ({len(state_leaves)}; neuron axis first, trailing axes are compartments):"]
    lines += [f"  s{a} {path or '<state>'}: shape {tuple(v.shape)} {v.dtype}"
              + ("" if jax.numpy.issubdtype(v.dtype, jax.numpy.floating) else " (not differentiated)")
              for a, (path, v) in enumerate(zip(state_paths, state_leaves))]
    lines.append("H = d state' / d state:")
    for a in range(len(jac.H)):
        for b in range(len(jac.H)):
            h = jac.H[a][b]
            if h is None:
                continue
            if is_neuron_local(h):
                kind = "local (each neuron to itself)"
            elif jac.H_local[a][b] is not None:
                kind = "cross-neuron, with a local part"
            else:
                kind = "cross-neuron"
            lines.append(f"  s{a} <- s{b}: {kind}; {h.kind}, stores {h.stored_size}")
    for m in modes:
        if m == "bptt":
            lines.append("mode 'bptt': no traces (backpropagation through the whole sequence)")
            continue
        plan = plan_traces(step, params, state, x, m, order=order, drop=drop)
        lines.append(f"traces in mode {m!r}: {plan.stored_size:,} numbers per example")
        for (a, p), t in plan.templates.items():
            chunked = "advanced in chunks" if (a, p) in plan.chunks else "advanced step by step"
            lines.append(f"  d s{a} / d {names[p]}: {t.kind} {t.out_shape}x{t.in_shape}, stores {t.stored_size:,}; "
                         f"{chunked}")
        for p, name in enumerate(names):
            if all(k[1] != p for k in plan.blocks):
                lines.append(f"  {name}: no trace, {_why_untraced(jac, plan, p)}")
    text = "\n".join(lines)
    print(text, file=file)
    return text


def _why_untraced(jac, plan, p: int) -> str:
    if p in plan.dropped:
        return "dropped by request (drop=...): learns from its within-step gradient only (an approximation)"
    if any(row[p] is not None for row in jac.F):
        return ("reaches the state only through another layer's new state: a cross-layer path, which this mode "
                "leaves to the learning signal of the same step (an approximation by the mode's definition)")
    return "does not reach the state: its gradient is within the step (exact)"
