"""A readable account of what plastix derived from a step function."""

from __future__ import annotations

import jax

from ._jacobians import is_neuron_local, step_jacobians
from ._modes import MODES, get_mode
from ._plan import parameter_names, plan_traces

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
    modes = [m for m in MODES.values() if m.online] if mode is None else [get_mode(mode)]
    jac = step_jacobians(step, params, state, x, order=order, local=True)
    lines = _state_lines(state) + _H_lines(jac)
    for m in modes:
        lines += _mode_lines(step, params, state, x, m, jac, order=order, drop=drop)
    text = "\n".join(lines)
    print(text, file=file)
    return text


def _state_lines(state) -> list[str]:
    leaves = jax.tree.flatten_with_path(state)[0]
    lines = [f"state variables ({len(leaves)}; neuron axis first, trailing axes are compartments):"]
    return lines + [f"  s{a} {jax.tree_util.keystr(path) or '<state>'}: shape {tuple(v.shape)} {v.dtype}"
                    + ("" if jax.numpy.issubdtype(v.dtype, jax.numpy.floating) else " (not differentiated)")
                    for a, (path, v) in enumerate(leaves)]


def _H_lines(jac) -> list[str]:
    lines = ["H = d state' / d state:"]
    for a, row in enumerate(jac.H):
        for b, h in enumerate(row):
            if h is None:
                continue
            if is_neuron_local(h):
                kind = "local (each neuron to itself)"
            elif jac.H_local[a][b] is not None:
                kind = "cross-neuron, with a local part"
            else:
                kind = "cross-neuron"
            lines.append(f"  s{a} <- s{b}: {kind}; {h.kind}, stores {h.stored_size}")
    return lines


def _mode_lines(step, params, state, x, mode, jac, *, order, drop) -> list[str]:
    if not mode.online:
        return [f"mode {mode.name!r}: no traces ({mode.summary})"]
    names = parameter_names(params)
    plan = plan_traces(step, params, state, x, mode, order=order, drop=drop)
    lines = [f"traces in mode {mode.name!r}: {plan.stored_size:,} numbers per example"]
    for (a, p), t in plan.templates.items():
        chunked = ("advanced in chunks" if (a, p) in plan.chunks
                   else f"advanced step by step: {plan.unchunked[(a, p)]}")
        lines.append(f"  d s{a} / d {names[p]}: {t.kind} {t.out_shape}x{t.in_shape}, stores {t.stored_size:,}; "
                     f"{chunked}")
    return lines + [f"  {name}: no trace, {_why_untraced(jac, plan, p, name)}" for p, name in enumerate(names)
                    if all(k[1] != p for k in plan.blocks)]


def _why_untraced(jac, plan, p: int, name: str) -> str:
    if name in plan.mode.untraced_names():
        return f"untraced by the rule {plan.mode}: learns from its within-step gradient only (an approximation)"
    if p in plan.dropped:
        return "dropped by request (drop=...): learns from its within-step gradient only (an approximation)"
    if any(row[p] is not None for row in jac.F):
        return ("reaches the state only through another layer's new state: a cross-layer path, which this mode "
                "leaves to the learning signal of the same step (an approximation by the mode's definition)")
    return "does not reach the state: its gradient is within the step (exact)"
