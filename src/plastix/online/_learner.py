"""A true online learner: traces and weights are updated while the sequence runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ._checks import check_step
from ._modes import Mode, get_mode
from ._plan import DEFAULT_MAX_TRACE_SIZE, TracePlan, bounded_plan
from ._update import Program, online_step

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


@dataclass(frozen=True, eq=False)
class Learner:
    """Online gradient-based plasticity for a step function, with an optax optimizer.

    A pure ``init``/``update`` pair, like an optax ``GradientTransformation``: the :class:`LearnerState` carries
    everything ``update`` needs; the trace plan is derived from its shapes (and cached).

    Args:
        step: ``step(params, state, x) -> (new_state, out)`` for one example, plain JAX.
        loss: ``loss(out, target) -> scalar`` for one example and one step.
        optimizer: an ``optax.GradientTransformation``.
        mode: an online mode: ``"rtrl"``, ``"diagonal"`` or ``"eprop"``.
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

    step: Callable
    loss: Callable
    optimizer: optax.GradientTransformation
    mode: str | Mode = "diagonal"
    _: KW_ONLY
    every: int = 1
    order: Any = "rev"
    feedback: Any = None
    max_trace_size: int | None = DEFAULT_MAX_TRACE_SIZE
    drop: Any = ()

    def __post_init__(self):
        get_mode(self.mode, online=True, who="Learner")
        if not (isinstance(self.every, int) and self.every >= 1):
            raise ValueError(f"every must be a positive number of steps, got {self.every!r}")

    def plan(self, params, state, x) -> TracePlan:
        """The trace plan for a batch's shapes (``state`` and ``x`` with their leading batch axis; cached)."""
        example = jax.tree.map(lambda v: v[0], (state, x))
        return bounded_plan(self.step, params, *example, self.mode, order=self.order,
                            max_trace_size=self.max_trace_size, drop=self.drop)

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
        traces = self.plan(params, state, x).zeros(jax.tree.leaves(state)[0].shape[0])
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
            TypeError: ``carry`` is not a :class:`LearnerState`.
            ValueError: ``step`` returns a state of another structure, shape or dtype, or ``loss`` is not
                scalar.
        """
        if not isinstance(carry, LearnerState):
            raise TypeError(f"Learner.update: carry must be the LearnerState returned by Learner.init or "
                            f"Learner.update, got {type(carry).__name__}")
        params = carry.params
        check_step(self.step, self.loss, params, *jax.tree.map(lambda v: v[0], (carry.state, x, target)))
        program = Program(self.step, self.loss, self.plan(params, carry.state, x), self.order, self.feedback)
        r = online_step(program, params, carry.state, carry.traces, x, target)
        return self._apply(carry, r.new_state, r.traces, r.grads, r.values.shape[0]), {"loss": jnp.mean(r.values),
                                                                                       "out": r.out}

    def _apply(self, carry: LearnerState, state, traces, grads: list, batch: int) -> LearnerState:
        """Accumulate the batch's mean gradient and apply the optimizer every ``every`` steps."""
        params = carry.params
        leaves, treedef = jax.tree.flatten(params)
        grads = jax.tree.unflatten(treedef, [(g / batch).astype(p.dtype) for g, p in zip(grads, leaves)])
        acc = jax.tree.map(jnp.add, carry.grads, grads)
        count = carry.count + 1
        apply = count % self.every == 0
        updates, opt_state = self.optimizer.update(acc, carry.opt_state, params)
        choose = lambda new, old: jax.tree.map(lambda a, b: jnp.where(apply, a, b), new, old)
        params = choose(optax.apply_updates(params, updates), params)
        opt_state = choose(opt_state, carry.opt_state)
        acc = jax.tree.map(lambda a: jnp.where(apply, jnp.zeros_like(a), a), acc)
        return LearnerState(params, opt_state, state, traces, acc, count)
