"""A true online learner: traces and weights are updated while the sequence runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ._traces import DEFAULT_MAX_TRACE_SIZE, TracePlan, bounded_plan, check_mode, check_step, online_step_batch

__all__ = ["Learner", "LearnerState"]


class LearnerState(NamedTuple):
    """Everything an online learner carries from one step to the next (a pytree).

    ``state`` and ``traces`` have a leading batch axis; ``grads`` accumulates the current window.
    """

    params: Any
    opt_state: Any
    state: Any
    traces: Any
    grads: Any
    count: jax.Array


class Learner:
    """Online gradient-based plasticity for a step function, with an optax optimizer.

    Args:
        step: ``step(params, state, x) -> (new_state, out)`` for one example, plain JAX.
        loss: ``loss(out, target) -> scalar`` for one example and one step.
        optimizer: an ``optax.GradientTransformation``.
        mode: ``"rtrl"``, ``"diagonal"`` or ``"eprop"``.
        every: apply the accumulated gradient every ``every`` steps (1 = plasticity at every step).
        order: elimination order for the step's Jacobians.
        feedback: ``None`` (exact learning signal) or fixed feedback matrices, see
            :func:`plastix.online.random_feedback`.
        max_trace_size, drop: as for :func:`plastix.online.value_and_grad`.

    Raises:
        ValueError: unknown ``mode``, ``mode="bptt"`` (not online; use :func:`plastix.online.value_and_grad`),
            or ``every`` below 1.

    Example:
        >>> learner = Learner(step, loss, optax.adam(1e-3), mode="diagonal")
        >>> carry = learner.init(params, state0, xs[0])
        >>> carry, metrics = learner.update(carry, xs[t], targets[t])
    """

    def __init__(self, step: Callable, loss: Callable, optimizer: optax.GradientTransformation,
                 mode: str = "diagonal", *, every: int = 1, order="rev", feedback=None,
                 max_trace_size: int | None = DEFAULT_MAX_TRACE_SIZE, drop=()):
        check_mode(mode)
        if mode == "bptt":
            raise ValueError("Learner is online; mode 'bptt' needs the whole sequence: use "
                             "plastix.online.value_and_grad(step, loss, 'bptt')")
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.step, self.loss, self.optimizer = step, loss, optimizer
        self.mode, self.every, self.order, self.feedback = mode, every, order, feedback
        self.max_trace_size, self.drop = max_trace_size, drop
        self.plan: TracePlan | None = None

    def init(self, params, state, x) -> LearnerState:
        """Start learning.

        Args:
            params: parameters (no batch axis).
            state: initial network state with a leading batch axis.
            x: one batched input, used only for its shape.

        Returns:
            The initial :class:`LearnerState`: zero traces and accumulated gradients, the optimizer state.

        Raises:
            RuntimeError: the trace layout does not reach a fixed point (see :func:`plan_traces`).
            ValueError: traces above ``max_trace_size`` or an unknown name in ``drop``.
        """
        example = jax.tree.map(lambda v: v[0], (state, x))
        self.plan = bounded_plan(self.step, params, example[0], example[1], self.mode, order=self.order,
                                 max_trace_size=self.max_trace_size, drop=self.drop)
        batch = jax.tree.leaves(state)[0].shape[0]
        traces = self.plan.zeros(batch)
        return LearnerState(params, self.optimizer.init(params), state, traces,
                            jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.int32))

    def update(self, carry: LearnerState, x, target) -> tuple[LearnerState, dict]:
        """One time step for a batch: advance the state and traces, accumulate, maybe update the weights.

        Args:
            carry: the :class:`LearnerState` from :meth:`init` or the previous :meth:`update`.
            x: this step's input with a leading batch axis.
            target: this step's target with a leading batch axis.

        Returns:
            The new carry and ``{"loss": mean loss of this step, "out": the batch's outputs}``.

        Raises:
            RuntimeError: :meth:`init` was not called first.
            ValueError: ``step`` returns a state of another structure, shape or dtype, or ``loss`` is not
                scalar.
        """
        if self.plan is None:
            raise RuntimeError("call Learner.init before Learner.update")
        params = carry.params
        check_step(self.step, self.loss, params, jax.tree.map(lambda v: v[0], carry.state),
                   jax.tree.map(lambda v: v[0], x), jax.tree.map(lambda v: v[0], target))

        state, traces, values, grads, outs, _ = online_step_batch(self.step, self.loss, self.plan, params,
                                                                  carry.state, carry.traces, x, target,
                                                                  order=self.order, feedback=self.feedback)
        leaves, treedef = jax.tree.flatten(params)
        batch = values.shape[0]
        grads = jax.tree.unflatten(treedef, [(g / batch).astype(p.dtype) for g, p in zip(grads, leaves)])
        acc = jax.tree.map(jnp.add, carry.grads, grads)
        count = carry.count + 1
        apply = count % self.every == 0
        updates, opt_state = self.optimizer.update(acc, carry.opt_state, params)
        new_params = optax.apply_updates(params, updates)
        choose = lambda new, old: jax.tree.map(lambda a, b: jnp.where(apply, a, b), new, old)
        params = choose(new_params, params)
        opt_state = choose(opt_state, carry.opt_state)
        acc = jax.tree.map(lambda a: jnp.where(apply, jnp.zeros_like(a), a), acc)
        carry = LearnerState(params, opt_state, state, traces, acc, count)
        return carry, {"loss": jnp.mean(values), "out": outs}
