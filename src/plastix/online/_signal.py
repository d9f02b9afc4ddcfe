"""The learning signal of one step: the loss's error pulled back through the step, exact or with fixed feedback."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._jacobians import split_step

__all__ = ["Signal", "folded_params", "learning_signal", "random_feedback"]


class Signal(NamedTuple):
    """What one reverse pass through a step gives, for a batch (lists are per leaf).

    Attributes:
        new_state, out: the step's results.
        values: what ``loss_fn`` returns beside the total (per-example losses, and any aux).
        grads: ``∂ℓ/∂θ`` within the step, summed over the batch.
        signal: the learning signal ``∂ℓ/∂s`` per state leaf.
        delta: the new state's cotangent ``δ = ∂ℓ/∂s'`` per state leaf.
    """

    new_state: Any
    out: Any
    values: jax.Array
    grads: list
    signal: list
    delta: list


def learning_signal(step, loss_fn, params, state, x, feedback, folded) -> Signal:
    """Loss, ``∂ℓ/∂θ`` within the step, the learning signal and the new state's cotangent, for a batch.

    The step is split at its new state (:func:`._jacobians.split_step`): the loss's cotangent ``δ = ∂ℓ/∂s'``
    comes from the readout, and is pulled back through the state update to the signal ``∂ℓ/∂s`` and to
    ``δ·∂s'/∂θ``. For the parameters in ``folded`` that last product is left out: the chunked trace update adds
    it with its own matrix product (``δ_t ⊗ x_t`` next to the trace's ``B_t ⊗ x_t``). ``loss_fn(out)`` returns
    ``(total, values)`` (``values`` any pytree, returned as it is). With ``feedback`` the signal and ``δ`` come
    from a second reverse pass with the fixed matrices in place of the corresponding parameters (feedback
    alignment); those parameters keep their exact gradient.

    Returns:
        A :class:`Signal`.
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
    return Signal(new_state, out, values, grads, signal, delta)


def _replaced(params, feedback) -> list[bool]:
    """Per parameter leaf: whether ``feedback`` replaces it in the backward pass."""
    if feedback is None:
        return [False] * len(jax.tree.leaves(params))
    return jax.tree.leaves(jax.tree.map(lambda p, b: b is not None, params, feedback, is_leaf=lambda v: v is None))


def folded_params(plan, chunked, params, feedback) -> frozenset[int]:
    """The parameters of :attr:`TracePlan.folds` whose blocks are chunked: their within-step gradient joins the
    chunk's product (not for a parameter replaced by fixed feedback: it keeps its exact within-step gradient)."""
    replaced = _replaced(params, feedback)
    chunked_params = {p for (_, p) in chunked}
    return frozenset(p for p in plan.folds if p in chunked_params and not replaced[p])


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
