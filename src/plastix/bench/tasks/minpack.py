"""MINPACK-2 problems: human heart dipole and propane combustion (TASKS.md sections 4 and 5)."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["human_heart_dipole", "human_heart_dipole_args", "propane_combustion", "propane_combustion_args"]

# Quirk of the reference: all measured sums are 1 (MINPACK-2 uses data values).
SIGMA_MX = SIGMA_MY = SIGMA_A = SIGMA_B = SIGMA_C = SIGMA_D = SIGMA_E = SIGMA_F = 1.0


def human_heart_dipole(x1, x2, x3, x4, x5, x6, x7, x8):
    """Eight scalars to the eight residuals (f1, ..., f8); every power x_k^2 is evaluated where it appears."""
    f1 = (x1 + x2) - SIGMA_MX
    f2 = (x3 + x4) - SIGMA_MY
    f3 = (((x5 * x1 + x6 * x2) - x7 * x3) - x8 * x4) - SIGMA_A
    f4 = (((x7 * x1 + x8 * x2) + x5 * x3) + x6 * x4) - SIGMA_B
    x57 = x5**2 - x7**2
    x68 = x6**2 - x8**2
    f5 = (((x1 * x57 - ((2.0 * x3) * x5) * x7) + x2 * x68) - ((2.0 * x4) * x6) * x8) - SIGMA_C
    # quirk: MINPACK-2 has +2*x1*x5*x7 and +2*x2*x6*x8 here; the reference subtracts both
    f6 = (((x3 * x57 - ((2.0 * x1) * x5) * x7) + x4 * x68) - ((2.0 * x2) * x6) * x8) - SIGMA_D
    x557 = x5 * (x5**2 - 3.0 * x7**2)
    x775 = x7 * (x7**2 - 3.0 * x5**2)
    x668 = x6 * (x6**2 - 3.0 * x8**2)
    x886 = x8 * (x8**2 - 3.0 * x6**2)
    f7 = (((x1 * x557 + x3 * x775) + x2 * x668) + x4 * x886) - SIGMA_E
    f8 = (((x3 * x557 - x1 * x775) + x4 * x668) - x2 * x886) - SIGMA_E  # quirk: sigma_E, not sigma_F
    return f1, f2, f3, f4, f5, f6, f7, f8


def human_heart_dipole_args():
    """The example input: eight float32 scalars, all 0.15."""
    return tuple(jnp.asarray(0.15, jnp.float32) for _ in range(8))


# Quirk of the reference: the equilibrium constants K5..K10 are left out (set to 1).
P = 40.0
R = 10.0


def propane_combustion(x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11):
    """Eleven scalars to the eleven residuals (f1, ..., f11) of the full formulation."""
    px11 = jnp.sqrt(P / x11)
    f1 = (x1 + x4) - 3.0
    f2 = ((((((2.0 * x1 + x2) + x4) + x7) + x8) + x9) + 2.0 * x10) - R
    f3 = (((2.0 * x2 + 2.0 * x5) + x6) + x7) - 8.0
    f4 = (2.0 * x3 + x9) - 4.0 * R  # 4*R folded to the constant 40
    f5 = x2 * x4 - x1 * x5
    f6 = jnp.sqrt(x2 * x4) - (jnp.sqrt(x1) * px11) * x6
    f7 = jnp.sqrt(x1 * x2) - (jnp.sqrt(x4) * x7) * px11
    f8 = x1 - ((x4 * x8) * P) / x11
    f9 = x1 * jnp.sqrt(x3) - (x4 * x9) * px11
    f10 = x1**2 - (((x4**2) * x10) * P) / x11
    f11 = x11 - x1 - x2 - x3 - x4 - x5 - x6 - x7 - x8 - x9 - x10
    return f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11


def propane_combustion_args():
    """The example input: eleven float32 scalars, all 0.15."""
    return tuple(jnp.asarray(0.15, jnp.float32) for _ in range(11))
