"""Roe approximate Riemann fluxes of the Euler equations (TASKS.md sections 1 and 2).

Both functions keep the reference's quirks (gamma = 0.5, missing absolute values, recomputed square roots)
so that their computational graphs are comparable with the AlphaGrad benchmark graphs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["roe_flux_1d", "roe_flux_1d_args", "roe_flux_3d", "roe_flux_3d_single", "roe_flux_3d_args"]

# Quirk of the reference: gamma = 0.5 (air is 1.4), so gamma - 1 is negative.
GAMMA = 0.5


# ------------------------------------------------------------------------------------------------ 1-D
def _pressure(u0, u1, u2):
    return (GAMMA - 1.0) * (u2 - (0.5 * u1**2) / u0)


def _enthalpy(u0, u2, p):
    return (u2 + p) / u0


def _flux(u0, u1, u2, p):
    v = u1 / u0  # recomputed: the caller already has this velocity
    return u1, p + u1 * v, v * (p + u2)


def roe_flux_1d(ul0, ul1, ul2, ur0, ur1, ur2):
    """1-D Roe flux: six scalar inputs (left and right density, momentum, energy), three scalar outputs."""
    du0 = ur0 - ul0
    ulr0 = jnp.sqrt(ul0 * ur0)
    w1 = jnp.sqrt(ul0) + jnp.sqrt(ur0)
    vl = ul1 / ul0
    pl = _pressure(ul0, ul1, ul2)
    hl = _enthalpy(ul0, ul2, pl)
    vr = ur1 / ur0
    pr = _pressure(ur0, ur1, ur2)
    hr = _enthalpy(ur0, ur2, pr)
    dp = pr - pl
    dv = vr - vl
    u = (jnp.sqrt(ul0) * vl + jnp.sqrt(ur0) * vr) / w1  # square roots recomputed
    h = (jnp.sqrt(ul0) * hl + jnp.sqrt(ur0) * hr) / w1  # square roots recomputed
    q2 = u**2
    a2 = (GAMMA - 1.0) * (h - 0.5 * q2)
    a = jnp.sqrt(a2)
    lp = jnp.abs(u + a)
    l = jnp.abs(u)  # noqa: E741
    ln = jnp.abs(u)  # quirk: Roe's scheme has |u - a| here; the reference takes |u| again (a separate abs)
    n = a * ulr0
    c0 = (du0 - dp / a2) * l
    c1 = (dv + dp / n) * lp
    c2 = (dv - dp / n) * ln
    fl0, fl1, fl2 = _flux(ul0, ul1, ul2, pl)
    fr0, fr1, fr2 = _flux(ur0, ur1, ur2, pr)
    f0 = fl0 + fr0
    f1 = fl1 + fr1
    f2 = fl2 + fr2
    c = (0.5 * ulr0) / a
    df0 = (c0 + c * c1) - c * c2
    df1 = (c0 * u + (c * c1) * (u + a)) - (c * c2) * (u - a)
    df2 = ((c0 * 0.5) * q2 + (c * c1) * (h + u * a)) - (c * c2) * (h - u * a)
    return 0.5 * (f0 - df0), 0.5 * (f1 - df1), 0.5 * (f2 - df2)


def roe_flux_1d_args():
    """The example input: six float32 scalars."""
    return tuple(jnp.asarray(v, jnp.float32) for v in (0.01, 0.02, 0.02, 0.01, 0.03, 0.03))


# ------------------------------------------------------------------------------------------------ 3-D
def _pressure3(u0, m, e):
    return (GAMMA - 1.0) * (e - (0.5 * jnp.sum(m**2)) / u0)


def _enthalpy3(u0, e, p):
    return (e + p) / u0


def _flux3(u0, m, v, e, p):
    mass = m[0:1]
    # quirk: m * v is elementwise ([rho u^2, rho v^2, rho w^2]); the x-flux would be rho*u*[u, v, w]
    momentum = jnp.concatenate([p, jnp.zeros(2, p.dtype)]) + m * v
    energy = v[0:1] * (p + e)
    return mass, momentum, energy


def roe_flux_3d_single(ul0, ul, ul4, ur0, ur, ur4):
    """3-D Roe flux in x for one example: shapes (1,), (3,), (1,) per side; outputs (1,), (3,), (1,)."""
    du0 = ur0 - ul0
    du = ur - ul
    du1, du2, du3 = du[0:1], du[1:2], du[2:3]
    du4 = ur4 - ul4
    vl = ul / ul0
    vr = ur / ur0
    w1 = jnp.sqrt(ul0) + jnp.sqrt(ur0)
    uvw = (jnp.sqrt(ul0) * vl + jnp.sqrt(ur0) * vr) / w1  # square roots recomputed
    u, v, w = uvw[0:1], uvw[1:2], uvw[2:3]
    pl = _pressure3(ul0, ul, ul4)
    hl = _enthalpy3(ul0, ul4, pl)
    pr = _pressure3(ur0, ur, ur4)
    hr = _enthalpy3(ur0, ur4, pr)
    h = (jnp.sqrt(ul0) * hl + jnp.sqrt(ur0) * hr) / w1  # square roots recomputed
    q2 = jnp.sum(uvw**2)
    a2 = (GAMMA - 1.0) * (h - 0.5 * q2)
    a = jnp.sqrt(a2)
    # quirk: the reference says "take the absolute of the eigenvalues" but takes none
    lp = u + a
    l = u  # noqa: E741
    lm = u - a
    c3 = (((GAMMA - 1.0) / a2) * (((h - q2) * du0 + jnp.dot(uvw, du)) - du4)) * l
    c2 = (du3 / w - du1) * l  # quirk: not the textbook Roe wave strength
    c1 = (du2 / v - du0) * l  # quirk: not the textbook Roe wave strength
    k1 = du0 - c3  # c3 already includes the factor l
    k2 = (du1 - u * du0) / a
    c0 = (0.5 * (k1 - k2)) * lm
    c4 = (0.5 * (k1 + k2)) * lp
    fl0, fl, fl4 = _flux3(ul0, ul, vl, ul4, pl)
    fr0, fr, fr4 = _flux3(ur0, ur, vr, ur4, pr)
    f0 = fl0 + fr0
    f = fl + fr
    f4 = fl4 + fr4
    df0 = (c0 + c3) + c4 * lp  # quirk: c4 already contains lp, so lp is applied twice
    df1 = (c0 * lm + c3 * u) + c4 * lp
    df2 = ((c0 * v + c1 * v) + c3 * v) + c4 * v
    df3 = ((c0 * w + c2 * w) + c3 * w) + c4 * w
    df4 = (((c0 * (h - u * a) + c1 * v**2) + c2 * w**2) + (c3 * 0.5) * q2) + c4 * (h + u * a)
    df = jnp.concatenate([df1, df2, df3])
    return 0.5 * (f0 - df0), 0.5 * (f - df), 0.5 * (f4 - df4)


# AlphaGrad differentiates the vmapped function (batch 1).
roe_flux_3d = jax.vmap(roe_flux_3d_single)

def roe_flux_3d_args():
    """The example input with the batch axis: shapes (1,1), (1,3), (1,1), (1,1), (1,3), (1,1)."""
    per_example = ([0.1], [0.1, 0.2, 0.3], [0.5], [0.2], [0.2, 0.2, 0.4], [0.6])
    return tuple(jnp.asarray([v], jnp.float32) for v in per_example)
