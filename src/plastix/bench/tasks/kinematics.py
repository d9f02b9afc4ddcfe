"""Forward kinematics of a 6-joint robot arm: position and Tait-Bryan angles (TASKS.md section 3)."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["robot_arm_6dof", "robot_arm_6dof_args"]

A1, A2, A3 = 175.0, 890.0, 50.0
D1, D4, D6 = 575.0, 1035.0, 185.0


def _s(a, b):
    """sin(a + b), each call evaluating its own cosines and sines (nothing shared)."""
    return jnp.cos(a) * jnp.sin(b) + jnp.sin(a) * jnp.cos(b)


def _c(a, b):
    """cos(a + b), each call evaluating its own cosines and sines (nothing shared)."""
    return jnp.cos(a) * jnp.cos(b) - jnp.sin(a) * jnp.sin(b)


def robot_arm_6dof(t1, t2, t3, t4, t5, t6):
    """Six joint angles (scalars) to (px, py, pz, z, y_, z__)."""
    c1, c2, c4, c5, c6 = jnp.cos(t1), jnp.cos(t2), jnp.cos(t4), jnp.cos(t5), jnp.cos(t6)
    c23 = _c(t2, t3)
    s1, s2, s4, s5, s6 = jnp.sin(t1), jnp.sin(t2), jnp.sin(t4), jnp.sin(t5), jnp.sin(t6)
    s23 = _s(t2, t3)
    ax = s5 * ((c1 * c23) * c4 + s1 * s4) + (c1 * s23) * c5
    ay = s5 * ((s1 * c23) * c4 - c1 * s4) + (s1 * s23) * c5
    az = (s23 * c4) * s5 - c23 * c5
    nz = c6 * (c23 * s5 + (s23 * c4) * c5) - (s23 * s4) * s6
    oz = (-s6) * (c23 * s5 + (s23 * c4) * c5) - (s23 * s4) * c6  # the bracket is recomputed
    z = jnp.arctan2(ay, ax)
    y_ = jnp.arctan2(jnp.sqrt(1.0 - az**2), az)
    z__ = jnp.arctan2(oz, -nz)
    x1 = D6 * (s5 * ((c1 * c23) * c4 + s1 * s4) + (c1 * s23) * c5)  # recomputes d6*ax
    x2 = c1 * (((A1 + A2 * c2) + A3 * c23) + D4 * s23)
    px = x1 + x2
    # quirk (sign inconsistency): "+ c1*s4" here but "- c1*s4" in ay, so y1 is not d6*ay
    y1 = D6 * (s5 * ((s1 * c23) * c4 + c1 * s4) + (s1 * s23) * c5)
    y2 = s1 * (((A1 + A2 * c2) + A3 * c23) + D4 * s23)  # recomputed, not shared with x2
    py = y1 + y2
    pz = (((A2 * s2 + D1) + A3 * s23) - D4 * c23) + D6 * ((s23 * c4) * s5 - c23 * c5)  # recomputes az
    return px, py, pz, z, y_, z__


def robot_arm_6dof_args():
    """The example input: six float32 scalars, all 0.02."""
    return tuple(jnp.asarray(0.02, jnp.float32) for _ in range(6))
