"""The trace modes as data: each mode is the part of ``H = ds'/ds`` it keeps, and nothing else.

A mode's eligibility traces follow ``G_t = H̃_t G_{t-1} + F̃_t``, where ``H̃`` and ``F̃`` are what the mode keeps of
the step's exact Jacobians (:class:`._jacobians.StepJacobians`). Adding a mode is one :class:`Mode` entry in
:data:`MODES`; planning, the online pass, :class:`~plastix.online.Learner`, :class:`~plastix.online.Stream`,
``describe`` and the CLI read it from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._jacobians import StepJacobians, neuron_block

__all__ = ["MODES", "Mode", "get_mode", "neuron_block_of"]


def _all_of_H(jac: StepJacobians):
    return jac.H


def neuron_block_of(jac: StepJacobians, a: int, b: int):
    """Each neuron's own block of ``H[a][b]`` (all its compartments) if leaves ``a`` and ``b`` are of one layer
    (joined by a neuron-local path), else ``None``."""
    h = jac.H[a][b]
    if h is not None and (a == b or jac.H_local[a][b] is not None or jac.H_local[b][a] is not None):
        return neuron_block(h)
    return None


def _neuron_blocks_of_H(jac: StepJacobians):
    """Each neuron's own block of ``H`` (all its compartments), between leaves of one layer."""
    n = len(jac.H)
    return [[neuron_block_of(jac, a, b) for b in range(n)] for a in range(n)]


def _local_paths_of_H(jac: StepJacobians):
    return jac.H_local


@dataclass(frozen=True)
class Mode:
    """One way of computing a sequence's gradient.

    Attributes:
        name: the name users pass (``mode="diagonal"``).
        keep_H: the part of ``H`` the traces follow, from the step's Jacobians; ``None`` for a mode without
            traces (``bptt``).
        layered: the mode works layer by layer: it needs the neuron-local blocks of the step's Jacobians, and a
            parameter's path into another layer's neurons is left to the learning signal of the same step
            (``F`` without cross-layer paths); otherwise every path of ``F`` is traced.
        exact: the gradient equals BPTT for every step function.
        summary: one line for the docs and the CLI's help.
    """

    name: str
    keep_H: Callable[[StepJacobians], list] | None
    layered: bool
    exact: bool
    summary: str

    @property
    def online(self) -> bool:
        """Whether the mode runs forward in time with traces (``False`` for ``bptt``)."""
        return self.keep_H is not None

    def F(self, jac: StepJacobians):
        """The part of ``F = ds'/dθ`` the traces follow."""
        return jac.F_layer if self.layered else jac.F

    def H(self, jac: StepJacobians):
        """The part of ``H = ds'/ds`` the traces follow."""
        return self.keep_H(jac)

    def check(self, params, state) -> None:
        """Raise a one-line ``ValueError`` where the mode does not fit a step of these parameters and state (a
        :class:`plastix.online.Rule` naming a state leaf the step has not); the built-in modes fit every step."""

    def untraced_names(self) -> tuple[str, ...]:
        """Parameters (names as :func:`~plastix.online.parameter_names`) that carry no trace by the mode's own
        definition (as with ``drop=``); none for the built-in modes, see :class:`plastix.online.Rule`."""
        return ()

    def stored_dtype(self, dtype) -> np.dtype:
        """The dtype a trace computed in ``dtype`` is stored in between steps: ``dtype`` itself for the built-in
        modes; a :class:`plastix.online.Rule` may round stored traces to a narrower one."""
        return np.dtype(dtype)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Mode({self.name!r})"


MODES: dict[str, Mode] = {mode.name: mode for mode in (
    Mode("bptt", None, layered=False, exact=True,
         summary="backpropagation through time: jax.value_and_grad through lax.scan (the reference)"),
    Mode("rtrl", _all_of_H, layered=False, exact=True,
         summary="real-time recurrent learning: all of H, every block a parameter reaches (equals BPTT)"),
    Mode("diagonal", _neuron_blocks_of_H, layered=True, exact=False,
         summary="each neuron's own block of H (D-RTRL / SnAp-1): exact for layers without recurrent coupling"),
    Mode("eprop", _local_paths_of_H, layered=True, exact=False,
         summary="H without paths from one neuron to another (e-prop)"),
)}


def get_mode(mode: str | Mode, *, online: bool = False, who: str = "mode") -> Mode:
    """The :class:`Mode` for a name (or the mode itself), with a one-line error for anything else.

    Args:
        online: refuse a mode without traces (``bptt``), for what runs forward in time.
        who: how the error names the caller (``"Stream"``).
    """
    if isinstance(mode, Mode):
        found = mode
    elif isinstance(mode, str) and mode in MODES:
        found = MODES[mode]
    else:
        choices = [m for m, spec in MODES.items() if spec.online or not online]
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(choices)}")
    if online and not found.online:
        raise ValueError(f"{who}: mode {found.name!r} keeps no traces (it needs the whole sequence): use "
                         f"plastix.online.value_and_grad(step, loss, {found.name!r})")
    return found
