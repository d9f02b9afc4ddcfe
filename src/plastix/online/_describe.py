"""A readable account of what plastix derived from a step function."""

from __future__ import annotations

import jax

from ._jacobians import is_local, step_jacobians
from ._traces import MODES, plan_traces

__all__ = ["describe"]


def describe(step, params, state, x, *, order="rev", file=None) -> str:
    """Print (and return) the structure derived from ``step(params, state, x) -> (new_state, out)``.

    Lists the state variables, which blocks of ``H = ds'/ds`` are local to a neuron or couple different
    neurons, and for every mode each parameter's traced blocks with their layout and stored size, and
    whether the block's recurrence acts per neuron (then ``value_and_grad`` advances it in chunks).

    Args:
        step: ``step(params, state, x) -> (new_state, out)`` for one time step of one example.
        params: parameter pytree (floating-point leaves).
        state: state pytree at one step (floating-point leaves, no batch axis).
        x: input of one step (no batch or time axis).
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
    jac = step_jacobians(step, params, state, x, order=order, local=True)
    state_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree.flatten_with_path(state)[0]]
    param_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree.flatten_with_path(params)[0]]
    state_leaves = jax.tree.leaves(state)
    lines = [f"state variables ({len(state_leaves)}):"]
    lines += [f"  s{a} {path or '<state>'}: shape {tuple(v.shape)}" for a, (path, v) in
              enumerate(zip(state_paths, state_leaves))]
    lines.append("H = d state' / d state:")
    for a in range(len(jac.H)):
        for b in range(len(jac.H)):
            h = jac.H[a][b]
            if h is None:
                continue
            if is_local(h):
                kind = "local (each neuron to itself)"
            elif jac.H_local[a][b] is not None:
                kind = "cross-neuron, with a local part"
            else:
                kind = "cross-neuron"
            lines.append(f"  s{a} <- s{b}: {kind}; {h.kind}, stores {h.stored_size}")
    for mode in MODES[1:]:
        plan = plan_traces(step, params, state, x, mode, order=order)
        lines.append(f"traces in mode {mode!r}: {plan.stored_size:,} numbers per example")
        for (a, p), t in plan.templates.items():
            chunked = ", per-neuron recurrence (advanced in chunks)" if (a, p) in plan.chunks else ""
            lines.append(f"  d s{a} / d {param_paths[p] or '<params>'}: {t.kind} {t.out_shape}x{t.in_shape}, "
                         f"stores {t.stored_size:,}{chunked}")
        untraced = [param_paths[p] for p in range(len(param_paths)) if all(k[1] != p for k in plan.blocks)]
        if untraced:
            lines.append(f"  no trace (reach the loss within a step only): {', '.join(untraced)}")
    text = "\n".join(lines)
    print(text, file=file)
    return text
