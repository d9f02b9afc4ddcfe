"""Clear, one-line errors for a step function and its sequence before anything is traced or run."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["check_chunk", "check_sequence", "check_step"]


def check_chunk(chunk) -> None:
    """A chunk length is a positive number of steps."""
    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk must be a positive number of steps, got {chunk!r}")


def check_step(step, loss, params, state, x, target, *, has_aux: bool = False):
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
    if has_aux:
        if not (isinstance(value, tuple | list) and len(value) == 2):
            raise ValueError(f"with has_aux=True, loss(out, target) must return a pair (value, aux), got "
                             f"{type(value).__name__}")
        value = value[0]
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
