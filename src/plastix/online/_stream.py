"""Loss and gradient of a sequence that arrives in segments: the online pass, resumable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any

import jax
import jax.numpy as jnp

from ._checks import check_chunk, check_sequence, check_step
from ._loop import StreamCarry, run_pass, start_carry
from ._modes import Mode, get_mode
from ._plan import DEFAULT_MAX_TRACE_SIZE, TracePlan, bounded_plan
from ._update import Program

__all__ = ["Stream"]


@dataclass(frozen=True, eq=False)
class Stream:
    """The online pass of :func:`plastix.online.value_and_grad`, fed one segment of the sequence at a time.

    A pure ``init``/``update`` pair: the :class:`StreamCarry` holds the network state, the eligibility traces and
    the running sums, so feeding a sequence in segments of any lengths gives the same loss and gradient as one
    call on the whole sequence, and neither memory nor compiled code depends on the sequence's length: the
    inputs of step ``t`` need to exist only while their segment runs (read from disk, drawn from a generator,
    received from a sensor). The trace plan is derived from the shapes of the arguments (and cached).

    Args:
        step: ``step(params, state, x) -> (new_state, out)``, one time step in plain JAX (one example).
        loss: ``loss(out, target) -> scalar``, the loss of one step.
        mode: an online mode: ``"rtrl"``, ``"diagonal"`` or ``"eprop"``.
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

    step: Callable
    loss: Callable
    mode: str | Mode = "diagonal"
    _: KW_ONLY
    order: Any = "rev"
    max_trace_size: int | None = DEFAULT_MAX_TRACE_SIZE
    drop: Any = ()
    feedback: Any = None
    batched: bool = False
    chunk: int = 128

    def __post_init__(self):
        get_mode(self.mode, online=True, who="Stream")
        check_chunk(self.chunk)

    def _example(self, tree):
        return jax.tree.map(lambda v: v[0], tree) if self.batched else tree

    def plan(self, params, state, x) -> TracePlan:
        """The trace plan for one example's shapes (cached)."""
        return bounded_plan(self.step, params, state, x, self.mode, order=self.order,
                            max_trace_size=self.max_trace_size, drop=self.drop)

    def init(self, params, state0, x, target) -> StreamCarry:
        """Start a pass.

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
        loss_dtype = check_step(self.step, self.loss, params, s0, x0, t0)
        lead = (lambda v: jnp.expand_dims(v, 0)) if not self.batched else jnp.copy  # a carry may be donated
        return start_carry(self.plan(params, s0, x0), params, jax.tree.map(lead, state0), loss_dtype)

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
            TypeError: ``carry`` is not a :class:`StreamCarry`.
            ValueError: ``step`` returns a state of another structure, shape or dtype, or ``loss`` is not scalar.
        """
        if not isinstance(carry, StreamCarry):
            raise TypeError(f"Stream.update: carry must be the StreamCarry returned by Stream.init or "
                            f"Stream.update, got {type(carry).__name__}")
        check_sequence(carry.state if self.batched else jax.tree.map(lambda v: v[0], carry.state), xs, targets,
                       batched=self.batched)
        first = (lambda v: v[0, 0]) if self.batched else (lambda v: v[0])
        s0, x0 = jax.tree.map(lambda v: v[0], carry.state), jax.tree.map(first, xs)
        check_step(self.step, self.loss, params, s0, x0, jax.tree.map(first, targets))
        program = Program(self.step, self.loss, self.plan(params, s0, x0), self.order, self.feedback, self.chunk,
                          self.batched)
        return run_pass(program, params, carry, xs, targets)
