"""Loss and gradient of a sequence that arrives in segments: the online pass, resumable."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._traces import (
    DEFAULT_MAX_TRACE_SIZE,
    StreamCarry,
    TracePlan,
    _online,
    bounded_plan,
    check_mode,
    check_sequence,
    check_step,
    start_carry,
)

__all__ = ["Stream"]


class Stream:
    """The online pass of :func:`plastix.online.value_and_grad`, fed one segment of the sequence at a time.

    The carry between segments is the network state, the eligibility traces and the running sums, so feeding a
    sequence in segments of any lengths gives the same loss and gradient as one call on the whole sequence, and
    neither memory nor compiled code depends on the sequence's length: the inputs of step ``t`` need to exist
    only while their segment runs (read from disk, drawn from a generator, received from a sensor).

    Args:
        step: ``step(params, state, x) -> (new_state, out)``, one time step in plain JAX (one example).
        loss: ``loss(out, target) -> scalar``, the loss of one step.
        mode: ``"rtrl"``, ``"diagonal"`` or ``"eprop"``.
        order, max_trace_size, drop, feedback, batched, chunk: as for :func:`plastix.online.value_and_grad`; each
            segment is cut into chunks of at most ``chunk`` steps.

    Raises:
        ValueError: unknown ``mode``, ``mode="bptt"`` (it needs the whole sequence), or ``chunk`` below 1.

    Example:
        >>> stream = Stream(step, loss, "diagonal", batched=True)
        >>> carry = stream.init(params, state0, xs[0], targets[0])
        >>> for xs_k, targets_k in segments:  # time-major pieces of the sequence
        ...     carry = update(params, carry, xs_k, targets_k)  # update = jax.jit(stream.update)
        >>> carry.total, carry.grads  # == value_and_grad(step, loss, "diagonal", batched=True)(params, state0, ...)
    """

    def __init__(self, step: Callable, loss: Callable, mode: str = "diagonal", *, order="rev",
                 max_trace_size: int | None = DEFAULT_MAX_TRACE_SIZE, drop=(), feedback=None, batched: bool = False,
                 chunk: int = 128):
        check_mode(mode)
        if mode == "bptt":
            raise ValueError("Stream is online; mode 'bptt' needs the whole sequence: use "
                             "plastix.online.value_and_grad(step, loss, 'bptt')")
        if not (isinstance(chunk, int) and chunk >= 1):
            raise ValueError(f"chunk must be a positive number of steps, got {chunk!r}")
        self.step, self.loss, self.mode = step, loss, mode
        self.order, self.max_trace_size, self.drop, self.feedback = order, max_trace_size, drop, feedback
        self.batched, self.chunk = batched, chunk
        self.plan: TracePlan | None = None
        self._planned_for = None

    def _example(self, tree):
        return jax.tree.map(lambda v: v[0], tree) if self.batched else tree

    def init(self, params, state0, x, target) -> StreamCarry:
        """Start a pass (the traces are planned on the first call and again only for other shapes).

        Args:
            params: parameters.
            state0: initial network state (leaves ``(B, ...)`` if ``batched``).
            x: the input of one step (``(B, ...)`` if ``batched``), used for its shapes only.
            target: the target of one step, likewise.

        Returns:
            The :class:`StreamCarry` before the first step: zero traces, loss and gradients.

        Raises:
            ValueError: state/step mismatch, a non-scalar loss or traces above ``max_trace_size``.
        """
        s0, x0, t0 = self._example(state0), self._example(x), self._example(target)
        shapes = jax.tree.map(lambda v: jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v)), (params, s0, x0, t0))
        loss_dtype = check_step(self.step, self.loss, params, s0, x0, t0)
        if self.plan is None or shapes != self._planned_for:
            self.plan = bounded_plan(self.step, params, s0, x0, self.mode, order=self.order,
                                     max_trace_size=self.max_trace_size, drop=self.drop)
            self._planned_for = shapes
        lead = (lambda v: jnp.expand_dims(v, 0)) if not self.batched else jnp.copy  # a carry may be donated
        return start_carry(self.plan, params, jax.tree.map(lead, state0), loss_dtype)

    def update(self, params, carry: StreamCarry, xs, targets) -> StreamCarry:
        """Run the next segment of the sequence.

        Args:
            params: parameters (the same for the whole sequence: this accumulates one gradient).
            carry: from :meth:`init` or the previous :meth:`update`.
            xs: the segment's inputs with a leading time axis (time-major ``(K, B, ...)`` if ``batched``).
            targets: the segment's targets, likewise.

        Returns:
            The carry after the segment; ``carry.total`` and ``carry.grads`` hold the sums over all steps so far.

        Raises:
            RuntimeError: :meth:`init` was not called first.
            ValueError: ``step`` returns a state of another structure, shape or dtype, or ``loss`` is not scalar.
        """
        if self.plan is None:
            raise RuntimeError("call Stream.init before Stream.update")
        check_sequence(carry.state if self.batched else jax.tree.map(lambda v: v[0], carry.state), xs, targets,
                       batched=self.batched)
        first = (lambda v: v[0, 0]) if self.batched else (lambda v: v[0])
        check_step(self.step, self.loss, params, jax.tree.map(lambda v: v[0], carry.state),
                   jax.tree.map(first, xs), jax.tree.map(first, targets))
        chunked = self.plan.chunks if self.chunk > 1 else {}
        return _online(self.step, self.loss, self.plan, params, carry, xs, targets, order=self.order,
                       feedback=self.feedback, chunked=chunked, chunk=self.chunk, batched=self.batched)
