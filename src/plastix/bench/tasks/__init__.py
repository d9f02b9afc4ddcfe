"""The ten AlphaGrad AD benchmark tasks (specified as mathematics in TASKS.md), as plain JAX functions.

Each :class:`Task` holds the function AlphaGrad differentiates (already vmapped with batch 1 where AlphaGrad
vmaps it), its example inputs as float32 arrays in the shapes AlphaGrad passes, and ``argnums`` covering
every positional input. ``names()`` lists them in TASKS.md order; ``get(name)`` returns one.

Example:
    >>> task = plastix.bench.tasks.get("RoeFlux_1d")
    >>> jac = plastix.jacve(task.fun, task.argnums, order="rev")(*task.args)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache

from . import deep_learning, economics, kinematics, minpack, randoms, roe
from .randoms import random_function

__all__ = ["Task", "TaskName", "get", "names", "random_function"]


@dataclass(frozen=True)
class Task:
    """One benchmark task.

    Attributes:
        name: the task's name as in TASKS.md and AlphaGrad.
        fun: the function differentiated (vmapped over a leading batch axis of length 1 where AlphaGrad vmaps).
        args: example inputs, float32 arrays, in the shapes passed to ``fun``.
        argnums: the differentiated positional inputs (all of them).
        note: remarks on the example input (NaNs, exactly-zero derivatives) and on ``valid_args``.
        valid_args: for a task whose example input gives NaN or inf, an input of the same shapes where the
            function and its Jacobian are finite; ``None`` otherwise.
    """

    name: str
    fun: Callable
    args: tuple
    argnums: tuple[int, ...]
    note: str = ""
    valid_args: tuple | None = field(default=None, repr=False)


def _all(args) -> tuple[int, ...]:
    return tuple(range(len(args)))


def _task(name, fun, args, note="", valid_args=None) -> Task:
    return Task(name, fun, args, _all(args), note, valid_args)


_BUILDERS: dict[str, Callable[[], Task]] = {
    "RoeFlux_1d": lambda: _task("RoeFlux_1d", roe.roe_flux_1d, roe.roe_flux_1d_args(),
                                "6 scalars -> 3 scalars; no vmap; finite at the example input (pl = 0 exactly)."),
    "RoeFlux_3d": lambda: _task("RoeFlux_3d", roe.roe_flux_3d, roe.roe_flux_3d_args(),
                                "vmapped, batch 1; finite at the example input; dF1, dF2, dF4 cancel to ~0, so "
                                "phi0 and phi4 carry float32 rounding noise of ~1e-7."),
    "RobotArm_6DOF": lambda: _task("RobotArm_6DOF", kinematics.robot_arm_6dof, kinematics.robot_arm_6dof_args(),
                                   "6 scalars -> 6 scalars; no vmap; finite at the example input."),
    "HumanHeartDipole": lambda: _task("HumanHeartDipole", minpack.human_heart_dipole,
                                      minpack.human_heart_dipole_args(),
                                      "8 scalars -> 8 scalars; no vmap; finite at the example input."),
    "PropaneCombustion": lambda: _task("PropaneCombustion", minpack.propane_combustion,
                                       minpack.propane_combustion_args(),
                                       "11 scalars -> 11 scalars; no vmap; finite at the example input."),
    "BlackScholes_Jacobian": lambda: _task(
        "BlackScholes_Jacobian", economics.black_scholes_jacobian, economics.black_scholes_jacobian_args(),
        "vmapped, batch 1; the first-order greeks by reverse elimination in plain JAX; its Jacobian is the "
        "Hessian of the price; finite at the example input."),
    "f": lambda: _task("f", randoms.f, randoms.f_args(),
                       "no vmap; finite at the example input (inputs share one PRNG key: v4 = v0 reshaped); "
                       "v47 is a stop_gradient."),
    "g": lambda: _task("g", randoms.g, randoms.g_args(),
                       "vmapped, batch 1; at the example input (all 0.15) 15 of the 20 outputs are NaN and v112 "
                       "is +inf (v24 = atan(0.15) - 1 < 0 under a real power; v21 = 0). valid_args = (v0..v14) = "
                       "(0.5, 0.3, -2, 0.1, 0.5, 0.5, -0.5, 1, 1.2, 1.7, 5, 0.5, 1, 1.2, 0.5) is a point where "
                       "g and its Jacobian are finite.",
                       valid_args=randoms.g_valid_args()),
    "Perceptron": lambda: _task("Perceptron", deep_learning.perceptron, deep_learning.perceptron_args(),
                                "vmapped, batch 1 over x and y only; gamma = 0, beta = 1 make the loss independent "
                                "of x, W1 and b1 (their derivatives are exactly 0); finite at the example input."),
    "Encoder": lambda: _task("Encoder", deep_learning.encoder, deep_learning.encoder_args(),
                             "no vmap; gamma = 0, beta = 1 make every derivative before block 2's gamma1 exactly "
                             "0 (only y, W2, b2, gamma1, beta1 matter); finite at the example input."),
}


def names() -> list[str]:
    """Task names in TASKS.md order."""
    return list(_BUILDERS)


@cache
def get(name: str) -> Task:
    """The task called ``name``; ``KeyError`` listing the valid names otherwise."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; valid names: {', '.join(_BUILDERS)}") from None
    return builder()


TaskName = StrEnum("TaskName", {name: name for name in names()})  # the task names as command-line choices
