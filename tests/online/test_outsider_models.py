"""Step functions written the way other code bases write them (snnTorch, Norse, spyx, Rockpool, BrainPy, Lava,
SpikingJelly, PyTorch-style RNN cells), trained online against BPTT in float64 with live spikes.

None of these use :mod:`plastix.neurons`: state layouts (arrays, tuples, NamedTuples, dicts, ``(n, 2)``
compartment leaves, integer and boolean counters), surrogate spikes (``custom_jvp``, ``custom_vjp``,
straight-through), matrix products (``W @ x``, ``x @ W.T``, ``einsum``, ``dot_general``, low rank, fused gates)
and control flow (``lax.cond``, ``lax.select``, inner ``fori_loop`` / ``scan``) are written from scratch.

* ``rtrl`` must equal BPTT for every model;
* for every feed-forward model (a neuron's state depends on its own past state and on the input only, however
  the drive is mixed within the step) ``diagonal`` and ``eprop`` must equal BPTT;
* for recurrent models ``diagonal``'s gradient must be at least as aligned with BPTT as the documented rule
  ``G_t = D(H_t) G_{t-1} + F_t`` written densely here with ``jax.jacrev``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.flatten_util import ravel_pytree

import plastix.online as po

TOL = dict(atol=1e-6, rtol=1e-6)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


# ------------------------------------------------------------------------------------------ surrogate spikes
@jax.custom_jvp
def superspike(x):
    """Heaviside forward, SuperSpike (fast sigmoid) pseudo-derivative (Zenke & Ganguli 2018)."""
    return jnp.where(x > 0, 1.0, 0.0).astype(x.dtype)


@superspike.defjvp
def _superspike_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    return superspike(x), x_dot / (1.0 + 5.0 * jnp.abs(x)) ** 2


@jax.custom_jvp
def triangle_spike(x):
    return (x >= 0).astype(x.dtype)


@triangle_spike.defjvp
def _triangle_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    return triangle_spike(x), x_dot * jnp.maximum(0.0, 1.0 - jnp.abs(x))


@jax.custom_vjp
def atan_spike(mem_shift):
    """snnTorch style: a Heaviside whose backward pass is the arctan surrogate (a custom VJP, no JVP rule)."""
    return (mem_shift > 0).astype(mem_shift.dtype)


def _atan_fwd(mem_shift):
    return atan_spike(mem_shift), mem_shift


def _atan_bwd(mem_shift, grad_output):
    alpha = 2.0
    return (grad_output * (alpha / 2) / (1 + (jnp.pi / 2 * alpha * mem_shift) ** 2),)


atan_spike.defvjp(_atan_fwd, _atan_bwd)


def straight_through(x, k=4.0):
    """spyx-like: the forward value is the step, the gradient is the sigmoid's (no custom rule at all)."""
    soft = jax.nn.sigmoid(k * x)
    return soft + lax.stop_gradient((x > 0).astype(x.dtype) - soft)


@jax.custom_jvp
def multi_spike(v):
    """Rockpool-like: the number of threshold crossings in one step (0..3) with a piecewise-linear gradient."""
    return jnp.clip(jnp.floor(v), 0.0, 3.0)


@multi_spike.defjvp
def _multi_spike_jvp(primals, tangents):
    (v,), (v_dot,) = primals, tangents
    return multi_spike(v), v_dot * jnp.where((v > 0.5) & (v < 3.5), 0.8, 0.0)


# ----------------------------------------------------------------------------------------------- helpers
class Case(NamedTuple):
    step: Callable
    params: Any
    state0: Any
    xs: Any
    targets: Any
    loss: Callable
    spikes: Callable | None  # (new_state, out) -> spikes of one step, None for rate-coded models


def mse(out, target):
    return jnp.sum((out - target) ** 2)


def mse_first(out, target):
    return jnp.sum((out[0] - target) ** 2)


def normal(seed, shape, scale=1.0, dtype=jnp.float64):
    fan_in = shape[-1] if len(shape) else 1
    return (scale * jax.random.normal(jax.random.PRNGKey(seed), shape) / np.sqrt(fan_in)).astype(dtype)


def poisson(seed, steps, m, p=0.4):
    return (jax.random.uniform(jax.random.PRNGKey(1000 + seed), (steps, m)) < p).astype(jnp.float64)


def gaussian_targets(seed, steps, c):
    return jax.random.normal(jax.random.PRNGKey(2000 + seed), (steps, c))


FEEDFORWARD: dict[str, Callable[[], Case]] = {}
RECURRENT: dict[str, Callable[[], Case]] = {}
SPIKING: set[str] = set()


def feedforward(spiking=True):
    def register(fn):
        FEEDFORWARD[fn.__name__] = fn
        if spiking:
            SPIKING.add(fn.__name__)
        return fn
    return register


def recurrent(spiking=True):
    def register(fn):
        RECURRENT[fn.__name__] = fn
        if spiking:
            SPIKING.add(fn.__name__)
        return fn
    return register


@functools.cache
def build(name) -> Case:
    return (FEEDFORWARD | RECURRENT)[name]()


def activity(case, params, state0, xs):
    """Fraction of nonzero spikes over the sequence (traceable)."""
    def body(state, x):
        new, out = case.step(params, state, x)
        return new, case.spikes(new, out)

    _, zs = lax.scan(body, state0, xs)
    return jnp.mean(zs != 0)


def run_together(case, runs):
    """Evaluate ``{key: f(params, state0, xs, targets)}`` in one compiled program (one XLA compilation per model
    keeps the file fast). If that fails, each is run on its own and a failing one is reported as its exception."""
    args = (case.params, case.state0, case.xs, case.targets)
    try:
        return jax.jit(lambda *a: {k: f(*a) for k, f in runs.items()})(*args)
    except Exception:
        out = {}
        for k, f in runs.items():
            try:
                out[k] = f(*args)
            except Exception as e:  # noqa: BLE001 - reported per mode below
                out[k] = e
        return out


def vg(case, mode, **kw):
    return po.value_and_grad(case.step, case.loss, mode, **kw)


def mismatches(got, ref_loss, ref, **tol) -> list[str]:
    """What differs from the reference, one short line each (empty when equal within the tolerances)."""
    if isinstance(got, Exception):
        return [f"{type(got).__name__}: {str(got).strip().splitlines()[0][:200] if str(got).strip() else ''}"]
    tol = TOL | tol
    loss, grads = got
    found = []
    if not np.allclose(loss, ref_loss, rtol=1e-10, atol=0):
        found.append(f"loss {float(loss):.10g} vs {float(ref_loss):.10g}")
    for (path, g), r in zip(jax.tree.flatten_with_path(grads)[0], jax.tree.leaves(ref)):
        g, r = np.asarray(g, np.float64), np.asarray(r, np.float64)
        if g.shape != r.shape:
            found.append(f"{jax.tree_util.keystr(path)} shape {g.shape} vs {r.shape}")
        elif not np.allclose(g, r, **tol):
            rel = np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-300)
            found.append(f"{jax.tree_util.keystr(path)} relative error {rel:.3g}")
    return found


def assert_all_match(results, ref_loss, ref, modes, **tol):
    problems = {mode: mismatches(results[mode], ref_loss, ref, **tol) for mode in modes}
    for mode, found in problems.items():
        print(f"{mode}: {'OK' if not found else '; '.join(found)}")
    assert not any(problems.values()), " | ".join(f"{m}: {'; '.join(p)}" for m, p in problems.items() if p)


def reference(results):
    ref = results["bptt"]
    if isinstance(ref, Exception):
        raise ref
    return ref


def flat(tree):
    return ravel_pytree(jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), tree))[0]


def cosine(a, b):
    a, b = flat(a), flat(b)
    return float(jnp.vdot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


# ===================================================================================== feed-forward models
# ---------------------------------------------------------------------------------- LIF resets (snnTorch)
@feedforward()
def leaky_zero_reset_detached():
    """snnTorch ``Leaky(reset_mechanism="zero")``: the reset comes from the previous membrane, detached."""
    n, m, c, steps, beta, thr = 5, 4, 3, 12, 0.9, 1.0

    def step(params, mem, x):
        reset = lax.stop_gradient(superspike(mem - thr))
        base = beta * mem + params["fc1"] @ x
        mem = base - reset * base
        spk = superspike(mem - thr)
        return mem, (params["fc2"] @ spk, spk)

    params = {"fc1": normal(1, (n, m), 2.5), "fc2": normal(2, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(1, steps, m), gaussian_targets(1, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def lif_zero_reset_through_spike():
    """Norse-like ``v <- (1 - z) v`` after the spike, the gradient flowing through the reset."""
    n, m, c, steps = 6, 4, 3, 11
    dt_over_tau = 0.25

    def step(params, v, x):
        v = v + dt_over_tau * (-v + params["w_in"] @ x)
        z = superspike(v - 0.6)
        v = (1.0 - z) * v
        return v, (params["w_out"] @ z, z)

    params = {"w_in": normal(3, (n, m), 5.0), "w_out": normal(4, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(2, steps, m, 0.5), gaussian_targets(2, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def lif_subtract_detached():
    n, m, c, steps = 5, 3, 2, 13

    def step(params, mem, x):
        mem = 0.85 * mem + params["W"] @ x
        spk = superspike(mem - 1.0)
        mem = mem - lax.stop_gradient(spk) * 1.0
        return mem, (params["V"] @ spk, spk)

    params = {"W": normal(5, (n, m), 2.5), "V": normal(6, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(3, steps, m), gaussian_targets(3, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def lif_subtract_through_spike():
    n, m, c, steps, thr = 4, 5, 3, 12, 0.8

    def step(params, mem, x):
        mem = 0.9 * mem + params["W"] @ x
        spk = superspike(mem - thr)
        mem = mem - spk * thr
        return mem, (params["V"] @ spk, spk)

    params = {"W": normal(7, (n, m), 2.0), "V": normal(8, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(4, steps, m), gaussian_targets(4, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def lif_hard_reset_where():
    """Hard reset written with ``jnp.where`` (no gradient through the reset value), triangle surrogate."""
    n, m, c, steps, v_th, v_reset = 5, 4, 3, 12, 1.0, -0.2

    def step(params, v, x):
        v = 0.8 * v + params["W"] @ x + 0.1
        z = triangle_spike(v - v_th)
        v = jnp.where(v > v_th, v_reset, v)
        return v, (params["Wo"] @ z, z)

    params = {"W": normal(9, (n, m), 2.0), "Wo": normal(10, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(5, steps, m), gaussian_targets(5, steps, c), mse_first,
                lambda s, o: o[1])


class Leaky:
    """A tiny object-style neuron (like an ``nn.Module`` holding its hyper-parameters)."""

    def __init__(self, beta=0.9, threshold=1.0, spike_grad=superspike, reset_mechanism="subtract"):
        self.beta, self.threshold, self.spike_grad, self.reset_mechanism = beta, threshold, spike_grad, reset_mechanism

    def __call__(self, input_, mem):
        reset = lax.stop_gradient(self.spike_grad(mem - self.threshold))
        if self.reset_mechanism == "subtract":
            mem = self.beta * mem + input_ - reset * self.threshold
        else:
            mem = (self.beta * mem + input_) * (1.0 - reset)
        spk = self.spike_grad(mem - self.threshold)
        return spk, mem


@feedforward()
def module_style_leaky():
    n, m, c, steps = 5, 4, 3, 12
    lif1 = Leaky(beta=0.8, threshold=0.9)

    def step(params, mem, x):
        cur1 = params["fc1"] @ x
        spk1, mem1 = lif1(cur1, mem)
        return mem1, (params["fc2"] @ spk1, spk1)

    params = {"fc1": normal(11, (n, m), 2.0), "fc2": normal(12, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(6, steps, m), gaussian_targets(6, steps, c), mse_first,
                lambda s, o: o[1])


def _generic_lif(params, v, x, *, beta, threshold):
    v = beta * v + params["W"] @ x
    z = superspike(v - threshold)
    return v - lax.stop_gradient(z) * threshold, (params["Wo"] @ z, z)


@feedforward()
def partial_hyperparameters():
    """The step is a ``functools.partial`` with keyword hyper-parameters."""
    n, m, c, steps = 6, 3, 2, 12
    step = functools.partial(_generic_lif, beta=0.75, threshold=0.7)
    params = {"W": normal(13, (n, m), 1.8), "Wo": normal(14, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(7, steps, m), gaussian_targets(7, steps, c), mse_first,
                lambda s, o: o[1])


# -------------------------------------------------------------------------------------- CUBA, synaptic
class LIFFeedForwardState(NamedTuple):
    v: jax.Array
    i: jax.Array


@feedforward()
def norse_cuba_namedtuple():
    """Norse ``LIFFeedForwardCell``-like: Euler step of v and i, jump of i by the input, hard reset to v_reset."""
    n, m, c, steps = 5, 4, 3, 12
    dt, tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset = 1e-3, 200.0, 100.0, 0.0, 1.0, 0.0

    def step(params, state, x):
        v_decayed = state.v + dt * tau_mem_inv * ((v_leak - state.v) + state.i)
        i_decayed = state.i - dt * tau_syn_inv * state.i
        z_new = superspike(v_decayed - v_th)
        v_new = (1 - z_new) * v_decayed + z_new * v_reset
        i_new = i_decayed + params["input_weights"] @ x
        return LIFFeedForwardState(v_new, i_new), (params["readout"] @ z_new, z_new)

    params = {"input_weights": normal(15, (n, m), 6.0), "readout": normal(16, (c, n))}
    return Case(step, params, LIFFeedForwardState(jnp.zeros(n), jnp.zeros(n)), poisson(8, steps, m, 0.5),
                gaussian_targets(8, steps, c), mse_first, lambda s, o: o[1])


@feedforward(spiking=False)
def norse_leaky_integrator():
    """Norse ``LICell``-like non-spiking leaky integrator (current and voltage), read out from v."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, state, x):
        v, i = state
        v_new = v + 0.2 * (-v + i)
        i_new = 0.7 * i + params["w"] @ x
        return (v_new, i_new), params["r"] @ v_new

    params = {"w": normal(17, (n, m), 1.5), "r": normal(18, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(9, steps, m), gaussian_targets(9, steps, c),
                mse, None)


@feedforward()
def snntorch_synaptic_tuple():
    n, m, c, steps, alpha, beta = 5, 4, 3, 12, 0.7, 0.8

    def step(params, state, x):
        syn, mem = state
        reset = lax.stop_gradient(superspike(mem - 1.0))
        syn = alpha * syn + params["fc1"] @ x
        mem = beta * mem + syn - reset
        spk = superspike(mem - 1.0)
        return (syn, mem), (params["fc2"] @ spk, spk)

    params = {"fc1": normal(19, (n, m), 1.4), "fc2": normal(20, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(10, steps, m), gaussian_targets(10, steps, c),
                mse_first, lambda s, o: o[1])


@feedforward()
def dict_state_learned_decays():
    """A dict state, per-neuron decays ``sigmoid(param)`` for both the current and the membrane."""
    n, m, c, steps = 6, 4, 3, 12

    def step(params, state, x):
        alpha, beta = jax.nn.sigmoid(params["syn_logit"]), jax.nn.sigmoid(params["mem_logit"])
        i = alpha * state["i"] + params["W"] @ x
        v = beta * state["v"] + (1 - beta) * 3.0 * i
        z = superspike(v - 1.0)
        return {"v": v - lax.stop_gradient(z), "i": i}, (params["Wo"] @ z, z)

    params = {"W": normal(21, (n, m), 2.0), "Wo": normal(22, (c, n)), "syn_logit": jnp.linspace(0.5, 1.5, n),
              "mem_logit": jnp.linspace(1.0, 2.5, n)}
    state = {"v": jnp.zeros(n), "i": jnp.zeros(n)}
    return Case(step, params, state, poisson(11, steps, m), gaussian_targets(11, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def spyx_cuba_clipped_decays():
    """spyx ``CuBaLIF``-like: decays stored raw and clipped to [0, 1]; reset from the previous step's spike."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, state, x):
        V, syn = state
        beta, alpha = jnp.clip(params["beta"], 0, 1), jnp.clip(params["alpha"], 0, 1)
        spikes = superspike(V - 1.0)
        syn = alpha * syn + params["W"] @ x
        V = beta * V + syn - lax.stop_gradient(spikes) * 1.0
        return (V, syn), (params["Wo"] @ spikes, spikes)

    params = {"W": normal(23, (n, m), 1.2), "Wo": normal(24, (c, n)), "beta": jnp.full(n, 0.8),
              "alpha": jnp.asarray(0.6)}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(12, steps, m), gaussian_targets(12, steps, c),
                mse_first, lambda s, o: o[1])


@feedforward()
def lava_cuba():
    """Lava ``LIF`` process (CUBA): u, v with du, dv, a learned bias and reset to 0."""
    n, m, c, steps, du, dv, vth = 5, 4, 3, 13, 0.3, 0.2, 1.0

    def step(params, state, a_in):
        u, v = state
        u = u * (1 - du) + params["weights"] @ a_in
        v = v * (1 - dv) + u + params["bias"]
        s_out = superspike(v - vth)
        v = jnp.where(v > vth, 0.0, v)
        return (u, v), (params["out"] @ s_out, s_out)

    params = {"weights": normal(25, (n, m), 0.8), "bias": jnp.full(n, 0.05), "out": normal(26, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(13, steps, m), gaussian_targets(13, steps, c),
                mse_first, lambda s, o: o[1])


@feedforward()
def rockpool_multispike():
    """Rockpool ``LIFJax``-like: exp(-dt/tau) decays from learned time constants, several spikes per step."""
    n, m, c, steps, dt = 5, 4, 3, 12, 1e-3

    def step(params, state, x):
        isyn, vmem = state
        alpha, beta = jnp.exp(-dt / params["tau_syn"]), jnp.exp(-dt / params["tau_mem"])
        isyn = alpha * isyn + params["w_in"] @ x
        vmem = beta * vmem + isyn + params["bias"]
        spikes = multi_spike(vmem)
        vmem = vmem - spikes
        return (isyn, vmem), (params["w_out"] @ spikes, spikes)

    params = {"w_in": normal(27, (n, m), 2.5), "w_out": normal(28, (c, n)), "tau_syn": jnp.full(n, 5e-3),
              "tau_mem": jnp.linspace(8e-3, 2e-2, n), "bias": jnp.zeros(n)}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(14, steps, m), gaussian_targets(14, steps, c),
                mse_first, lambda s, o: o[1])


# ------------------------------------------------------------------------------------- adaptation, COBA
@feedforward()
def alif_bellec():
    """Bellec et al. ALIF: threshold ``b0 + beta_a * a`` with the adaptation variable as a second leaf."""
    n, m, c, steps, alpha, rho, beta_a = 5, 4, 3, 13, 0.9, 0.8, 0.5

    def step(params, state, x):
        v, a = state
        thr = 1.0 + beta_a * a
        v = alpha * v + params["W_in"] @ x
        z = superspike((v - thr) / thr)
        v = v - lax.stop_gradient(z * thr)
        a = rho * a + z
        return (v, a), (params["W_out"] @ z, z)

    params = {"W_in": normal(29, (n, m), 3.0), "W_out": normal(30, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(15, steps, m), gaussian_targets(15, steps, c),
                mse_first, lambda s, o: o[1])


@feedforward()
def alif_dict_learned_adaptation():
    n, m, c, steps = 6, 4, 3, 12

    def step(params, state, x):
        rho = jax.nn.sigmoid(params["rho_logit"])
        thr = params["b0"] + params["beta"] * state["b"]
        v = 0.9 * state["v"] + params["W"] @ x
        z = superspike(v - thr)
        return {"v": v - z * thr, "b": rho * state["b"] + (1 - rho) * z}, (params["Wo"] @ z, z)

    params = {"W": normal(31, (n, m), 2.5), "Wo": normal(32, (c, n)), "rho_logit": jnp.linspace(1.0, 3.0, n),
              "beta": jnp.full(n, 1.5), "b0": jnp.asarray(1.0)}
    return Case(step, params, {"b": jnp.zeros(n), "v": jnp.zeros(n)}, poisson(16, steps, m),
                gaussian_targets(16, steps, c), mse_first, lambda s, o: o[1])


@feedforward()
def coba_reversal_potentials():
    """Conductance-based LIF: excitatory/inhibitory conductances driving v towards reversal potentials."""
    n, m, c, steps = 5, 4, 3, 12
    e_leak, e_exc, e_inh, dt_c, g_leak = 0.0, 3.0, -1.0, 0.25, 1.0

    def step(params, state, x):
        v, g_e, g_i = state
        g_e = 0.7 * g_e + jax.nn.softplus(params["w_exc"]) @ x
        g_i = 0.8 * g_i + jax.nn.softplus(params["w_inh"]) @ x
        v = v + dt_c * (g_leak * (e_leak - v) + g_e * (e_exc - v) + g_i * (e_inh - v))
        spike = superspike(v - 1.0)
        v = v * (1 - lax.stop_gradient(spike))
        return (v, g_e, g_i), (params["readout"] @ spike, spike)

    params = {"w_exc": normal(33, (n, m), 1.0) - 1.0, "w_inh": normal(34, (n, m), 1.0) - 1.5,
              "readout": normal(35, (c, n))}
    return Case(step, params, (jnp.zeros(n),) * 3, poisson(17, steps, m, 0.5), gaussian_targets(17, steps, c),
                mse_first, lambda s, o: o[1])


@feedforward()
def alpha_synapse_two_stage():
    """Alpha-shaped PSC as two cascaded exponentials (j drives i drives v)."""
    n, m, c, steps, decay = 5, 4, 3, 12, 0.7

    def step(params, state, x):
        i, j, v = state
        j = decay * j + params["W"] @ x
        i = decay * i + (1 - decay) * j * 2.0
        v = 0.85 * v + i
        z = superspike(v - 1.0)
        v = v - lax.stop_gradient(z)
        return (i, j, v), (params["Wo"] @ z, z)

    params = {"W": normal(36, (n, m), 2.5), "Wo": normal(37, (c, n))}
    return Case(step, params, (jnp.zeros(n),) * 3, poisson(18, steps, m), gaussian_targets(18, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def snntorch_alpha_exc_inh():
    """snnTorch ``Alpha``-like: excitatory and inhibitory synaptic currents with different decays."""
    n, m, c, steps, alpha, beta = 5, 4, 3, 12, 0.85, 0.6

    def step(params, state, x):
        syn_exc, syn_inh, mem = state
        cur = params["fc"] @ x
        syn_exc = alpha * syn_exc + cur
        syn_inh = beta * syn_inh - cur
        mem = 0.5 * mem + 1.5 * (syn_exc + syn_inh)
        spk = superspike(mem - 0.5)
        mem = mem - lax.stop_gradient(spk) * 0.5
        return (syn_exc, syn_inh, mem), (params["out"] @ spk, spk)

    params = {"fc": normal(38, (n, m), 2.5), "out": normal(39, (c, n))}
    return Case(step, params, (jnp.zeros(n),) * 3, poisson(19, steps, m), gaussian_targets(19, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def adex_clipped_exponential():
    """Adaptive exponential IF in normalised units; the exponential term's argument is clipped."""
    n, m, c, steps = 5, 4, 3, 12
    dt_tau, dt_tau_w, v_t, delta_t, a, b = 0.3, 0.1, 0.6, 0.2, 0.1, 0.3

    def step(params, state, x):
        v, w = state
        exp_term = delta_t * jnp.exp(jnp.clip((v - v_t) / delta_t, -10.0, 2.0))
        v = v + dt_tau * (-v + exp_term - w + params["W"] @ x)
        w = w + dt_tau_w * (a * v - w)
        z = superspike(v - 1.0)
        v = (1 - z) * v
        w = w + b * z
        return (v, w), (params["Wo"] @ z, z)

    params = {"W": normal(40, (n, m), 5.0), "Wo": normal(41, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(20, steps, m, 0.5),
                gaussian_targets(20, steps, c), mse_first, lambda s, o: o[1])


@feedforward()
def izhikevich_regular_spiking():
    n, m, c, steps, dt = 5, 4, 3, 12, 0.5
    a, b, c_reset, d = 0.02, 0.2, -65.0, 8.0

    def step(params, state, x):
        v, u = state
        current = params["W"] @ x
        v = v + dt * (0.04 * v ** 2 + 5 * v + 140 - u + current)
        u = u + dt * a * (b * v - u)
        fired = superspike((v - 30.0) / 30.0)
        v = jnp.where(v >= 30.0, c_reset, v)
        u = u + d * fired
        return (v, u), (params["Wo"] @ fired, fired)

    params = {"W": normal(42, (n, m), 120.0), "Wo": normal(43, (c, n))}
    s0 = (jnp.full(n, -65.0), jnp.full(n, -13.0))
    return Case(step, params, s0, poisson(21, steps, m, 0.6), gaussian_targets(21, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def izhikevich_fori_substeps():
    """Izhikevich integrated with 3 Euler sub-steps in an inner ``lax.fori_loop``."""
    n, m, c, steps, dt = 5, 4, 3, 12, 0.5

    def step(params, state, x):
        current = params["W"] @ x

        def sub(_, carry):
            v, u, count = carry
            v = v + dt / 3 * (0.04 * v * v + 5 * v + 140 - u + current)
            u = u + dt / 3 * 0.02 * (0.2 * v - u)
            fired = superspike((v - 30.0) / 30.0)
            v = jnp.where(v >= 30.0, -65.0, v)
            return v, u + 8.0 * fired, count + fired

        v, u, count = lax.fori_loop(0, 3, sub, (state[0], state[1], jnp.zeros_like(state[0])))
        return (v, u), (params["Wo"] @ count, count)

    params = {"W": normal(44, (n, m), 150.0), "Wo": normal(45, (c, n))}
    s0 = (jnp.full(n, -65.0), jnp.full(n, -13.0))
    return Case(step, params, s0, poisson(22, steps, m, 0.6), gaussian_targets(22, steps, c), mse_first,
                lambda s, o: o[1])


# ------------------------------------------------------------------------------------- short-term plasticity
@feedforward()
def tsodyks_markram_per_synapse():
    """Tsodyks-Markram STP per synapse: u and x of shape (n, m) (neuron axis first), learned U per input."""
    n, m, c, steps = 4, 5, 3, 12
    tau_f = jnp.linspace(3.0, 8.0, n)[:, None]
    tau_d = jnp.linspace(4.0, 2.0, n)[:, None]

    def step(params, state, s_in):
        u, x_res, v = state
        U = jax.nn.sigmoid(params["U_logit"])
        u = u + (U - u) / tau_f
        x_res = x_res + (1 - x_res) / tau_d
        u = u + U * (1 - u) * s_in
        release = u * x_res * s_in
        x_res = x_res - release
        v = 0.8 * v + jnp.sum(params["W"] * release, axis=1)
        z = superspike(v - 1.0)
        v = v - lax.stop_gradient(z)
        return (u, x_res, v), (params["Wo"] @ z, z)

    params = {"W": normal(46, (n, m), 8.0) + 1.0, "U_logit": jnp.linspace(-1.0, 0.5, m), "Wo": normal(47, (c, n))}
    s0 = (jnp.full((n, m), 0.2), jnp.ones((n, m)), jnp.zeros(n))
    return Case(step, params, s0, poisson(23, steps, m, 0.5), gaussian_targets(23, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def tsodyks_markram_outgoing():
    """STP on each neuron's outgoing spikes: (u, x) per neuron scale what the readout sees."""
    n, m, c, steps, U = 5, 4, 3, 12, 0.3

    def step(params, state, x):
        v, u, r = state
        v = 0.85 * v + params["W"] @ x
        z = superspike(v - 1.0)
        v = v - lax.stop_gradient(z)
        u = u + (U - u) / 5.0 + U * (1 - u) * z
        psr = u * r * z
        r = r + (1 - r) / 3.0 - psr
        return (v, u, r), (params["Wo"] @ psr, z)

    params = {"W": normal(48, (n, m), 2.5), "Wo": normal(49, (c, n))}
    s0 = (jnp.zeros(n), jnp.full(n, U), jnp.ones(n))
    return Case(step, params, s0, poisson(24, steps, m), gaussian_targets(24, steps, c), mse_first,
                lambda s, o: o[1])


# -------------------------------------------------------------------------------------------- sigma-delta
@feedforward()
def lava_sigma_delta():
    """Lava-like sigma-delta: sigma integrates (leakily), ReLU activation, graded delta events above threshold."""
    n, m, c, steps, thr = 5, 4, 3, 12, 0.3

    def step(params, state, x):
        sigma, act_ref = state
        sigma = 0.8 * sigma + params["W"] @ x
        act = jax.nn.relu(sigma)
        delta = act - act_ref
        s_out = jnp.where(jnp.abs(delta) > thr, delta, 0.0)
        return (sigma, act_ref + s_out), (params["Wo"] @ s_out, s_out)

    params = {"W": normal(50, (n, m), 1.5), "Wo": normal(51, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(25, steps, m), gaussian_targets(25, steps, c),
                mse_first, lambda s, o: o[1])


@feedforward()
def sigma_delta_learned_threshold():
    """Sigma-delta with a learned per-neuron threshold through a surrogate gate and a residue leaf."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, state, x):
        sigma, ref, residue = state
        sigma = sigma + params["W"] @ x - 0.1 * sigma
        delta = jnp.tanh(sigma) - ref + residue
        event = delta * superspike(jnp.abs(delta) - params["theta"])
        return (sigma, ref + event, 0.5 * (delta - event)), (params["Wo"] @ event, event)

    params = {"W": normal(52, (n, m), 1.5), "theta": jnp.full(n, 0.25), "Wo": normal(53, (c, n))}
    return Case(step, params, (jnp.zeros(n),) * 3, poisson(26, steps, m), gaussian_targets(26, steps, c), mse_first,
                lambda s, o: o[1])


# -------------------------------------------------------------------------------- two-compartment neurons
@feedforward()
def dendrite_one_leaf():
    """Soma and dendrite as one ``(n, 2)`` leaf: ``[:, 0]`` soma, ``[:, 1]`` dendrite."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, comp, x):
        soma, dend = comp[:, 0], comp[:, 1]
        dend_new = 0.8 * dend + params["W_dend"] @ x + 0.2 * (soma - dend)
        soma_new = 0.85 * soma + 0.6 * jnp.tanh(dend) + params["W_soma"] @ x
        spk = superspike(soma_new - 1.0)
        soma_new = soma_new - lax.stop_gradient(spk)
        return jnp.stack([soma_new, dend_new], axis=-1), (params["Wo"] @ spk, spk)

    params = {"W_dend": normal(54, (n, m), 2.0), "W_soma": normal(55, (n, m), 1.0), "Wo": normal(56, (c, n))}
    return Case(step, params, jnp.zeros((n, 2)), poisson(27, steps, m), gaussian_targets(27, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def dendrite_two_leaves():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, state, x):
        soma, dend = state
        dend = 0.75 * dend + params["Wd"] @ x - 0.1 * soma
        soma = 0.9 * soma + params["g"] * (dend - soma) * 0.5 + 0.3 * params["Ws"] @ x
        spk = superspike(soma - 0.8)
        soma = soma * (1 - lax.stop_gradient(spk))
        return (soma, dend), (params["Wo"] @ spk, spk)

    params = {"Wd": normal(57, (n, m), 3.0), "Ws": normal(58, (n, m), 2.0), "g": jnp.linspace(0.5, 1.5, n),
              "Wo": normal(59, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(28, steps, m), gaussian_targets(28, steps, c),
                mse_first, lambda s, o: o[1])


@feedforward()
def dendrite_one_leaf_learned_coupling():
    """``(n, 2)`` leaf updated with ``.at[].set``, per-neuron learned coupling, PyTorch-style ``x @ W.T``."""
    n, m, c, steps = 6, 3, 2, 12

    def step(params, comp, x):
        soma, dend = comp[..., 0], comp[..., 1]
        coupling = jax.nn.softplus(params["coupling"])
        new_dend = 0.7 * dend + x @ params["dend_weight"].T
        new_soma = 0.8 * soma + coupling * jax.nn.sigmoid(4.0 * (dend - 0.5))
        spk = superspike(new_soma - 1.0)
        comp = comp.at[:, 0].set(new_soma - lax.stop_gradient(spk)).at[:, 1].set(new_dend)
        return comp, (spk @ params["out_weight"].T, spk)

    params = {"dend_weight": normal(60, (n, m), 2.0), "coupling": jnp.linspace(-0.5, 1.0, n),
              "out_weight": normal(61, (c, n))}
    return Case(step, params, jnp.zeros((n, 2)), poisson(29, steps, m, 0.5), gaussian_targets(29, steps, c),
                mse_first, lambda s, o: o[1])


# ------------------------------------------------------------------------------- learned decay / threshold
@feedforward()
def spikingjelly_plif():
    """SpikingJelly ``ParametricLIFNode``: ``v += (x - (v - v_reset)) * sigmoid(w)``, hard reset, detach_reset."""
    n, m, c, steps, v_reset = 5, 4, 3, 12, 0.0

    def step(params, v, x):
        v = v + (params["fc"] @ x - (v - v_reset)) * jax.nn.sigmoid(params["w"])
        spike = superspike(v - 1.0)
        spike_d = lax.stop_gradient(spike)
        v = (1.0 - spike_d) * v + spike_d * v_reset
        return v, (params["head"] @ spike, spike)

    params = {"fc": normal(62, (n, m), 4.0), "w": jnp.asarray(-0.5), "head": normal(63, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(30, steps, m, 0.5), gaussian_targets(30, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def learned_threshold_and_bias():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, v, x):
        v = 0.9 * v + params["W"] @ x + params["b"]
        z = superspike((v - params["threshold"]) / params["threshold"])
        v = v - z * params["threshold"]
        return v, (params["Wo"] @ z, z)

    params = {"W": normal(64, (n, m), 2.5), "b": jnp.full(n, 0.05), "threshold": jnp.linspace(0.8, 1.4, n),
              "Wo": normal(65, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(31, steps, m), gaussian_targets(31, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def float32_params_float64_state():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, v, x):
        v = params["beta"] * v + params["W"] @ x
        z = superspike(v - 1.0)
        v = v - lax.stop_gradient(z)
        return v, (params["Wo"] @ z, z)

    params = {"W": normal(66, (n, m), 2.5, jnp.float32), "Wo": normal(67, (c, n), 1.0, jnp.float32),
              "beta": jnp.asarray(0.85, jnp.float32)}
    return Case(step, params, jnp.zeros(n, jnp.float64), poisson(32, steps, m), gaussian_targets(32, steps, c),
                mse_first, lambda s, o: o[1])


@feedforward()
def nonnegative_membrane():
    """A membrane floored at 0 (``jax.nn.relu``), inhibitory and excitatory inputs."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, v, x):
        v = jax.nn.relu(0.9 * v + params["W"] @ x)
        z = superspike(v - 1.0)
        return v - lax.stop_gradient(z), (params["Wo"] @ z, z)

    params = {"W": normal(68, (n, m), 2.5) + 0.3, "Wo": normal(69, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(33, steps, m), gaussian_targets(33, steps, c), mse_first,
                lambda s, o: o[1])


# ---------------------------------------------------------------------------------- ways to multiply
@feedforward()
def torch_linear_convention():
    """``nn.Linear`` convention: ``x @ W.T + b`` with W of shape (out, in)."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, mem, x):
        cur = x @ params["fc1.weight"].T + params["fc1.bias"]
        mem = 0.8 * mem + cur
        spk = superspike(mem - 1.0)
        mem = mem - lax.stop_gradient(spk)
        return mem, {"logits": spk @ params["fc2.weight"].T + params["fc2.bias"], "spk": spk}

    params = {"fc1.weight": normal(70, (n, m), 2.0), "fc1.bias": jnp.full(n, 0.1),
              "fc2.weight": normal(71, (c, n)), "fc2.bias": jnp.zeros(c)}
    loss = lambda out, target: 0.5 * jnp.mean((out["logits"] - target) ** 2)
    return Case(step, params, jnp.zeros(n), poisson(34, steps, m), gaussian_targets(34, steps, c), loss,
                lambda s, o: o["spk"])


@feedforward()
def einsum_drive():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, v, x):
        v = 0.85 * v + jnp.einsum("nm,m->n", params["W"], x)
        z = superspike(v - 1.0)
        v = v - lax.stop_gradient(z)
        return v, (jnp.einsum("n,cn->c", z, params["Wo"]), z)

    params = {"W": normal(72, (n, m), 2.5), "Wo": normal(73, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(35, steps, m), gaussian_targets(35, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def dot_general_drive():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, v, x):
        # W stored (in, out), contracted on its first axis
        drive = lax.dot_general(x, params["W"], (((0,), (0,)), ((), ())))
        v = 0.85 * v + drive
        z = superspike(v - 1.0)
        v = v - lax.stop_gradient(z)
        return v, (lax.dot_general(params["Wo"], z, (((1,), (0,)), ((), ()))), z)

    params = {"W": normal(74, (n, m), 2.5).T, "Wo": normal(75, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(36, steps, m), gaussian_targets(36, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def low_rank_drive():
    n, m, c, steps, r = 6, 5, 3, 12, 2

    def step(params, v, x):
        v = 0.85 * v + params["A"] @ (params["B"] @ x)
        z = superspike(v - 1.0)
        v = v - lax.stop_gradient(z)
        return v, (params["Wo"] @ z, z)

    params = {"A": normal(76, (n, r), 2.0), "B": normal(77, (r, m), 2.0), "Wo": normal(78, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(37, steps, m), gaussian_targets(37, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def fused_gates_split():
    """A gated spiking unit: one fused weight ``x @ W`` split into four gates (no recurrence between neurons)."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, v, x):
        i, f, g, o = jnp.split(x @ params["W"] + params["b"], 4)
        v = jax.nn.sigmoid(f) * v + jax.nn.sigmoid(i) * 2.0 * jnp.tanh(g)
        z = superspike(v - 1.0)
        v = v - lax.stop_gradient(z)
        return v, (params["Wo"] @ (z * jax.nn.sigmoid(o)), z)

    params = {"W": normal(79, (m, 4 * n), 3.0), "b": jnp.zeros(4 * n).at[n:2 * n].set(1.0),
              "Wo": normal(80, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(38, steps, m), gaussian_targets(38, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def bias_only_params():
    """Only per-neuron biases are trained; the input weights are a fixed constant; the output is the spikes."""
    n, m, steps = 5, 4, 12
    w_fixed = normal(81, (n, m), 2.0)

    def step(params, v, x):
        v = 0.85 * v + w_fixed @ x + params["bias"]
        z = superspike(v - 1.0)
        return v - lax.stop_gradient(z), z

    targets = (jax.random.uniform(jax.random.PRNGKey(82), (steps, n)) < 0.3).astype(jnp.float64)
    return Case(step, {"bias": jnp.linspace(-0.1, 0.2, n)}, jnp.zeros(n), poisson(39, steps, m), targets, mse,
                lambda s, o: o)


@feedforward()
def embedding_tokens():
    """Integer token input indexing an embedding table that drives the neurons."""
    n, vocab, c, steps = 5, 7, 3, 12

    def step(params, v, token):
        v = 0.8 * v + params["embed"][token]
        z = superspike(v - 1.0)
        v = v - lax.stop_gradient(z)
        return v, (params["Wo"] @ z, z)

    params = {"embed": normal(83, (vocab, n), 1.2), "Wo": normal(84, (c, n))}
    tokens = jax.random.randint(jax.random.PRNGKey(85), (steps,), 0, vocab)
    return Case(step, params, jnp.zeros(n), tokens, gaussian_targets(40, steps, c), mse_first, lambda s, o: o[1])


# ----------------------------------------------------------------------------------------- surrogates
@feedforward()
def custom_vjp_atan_spike():
    """snnTorch-style surrogate: ``custom_vjp`` Heaviside with an arctan backward."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, mem, x):
        mem = 0.9 * mem + params["fc1"] @ x
        spk = atan_spike(mem - 1.0)
        mem = mem - lax.stop_gradient(spk)
        return mem, (params["fc2"] @ spk, spk)

    params = {"fc1": normal(86, (n, m), 2.5), "fc2": normal(87, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(41, steps, m), gaussian_targets(41, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def straight_through_spike():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, mem, x):
        mem = 0.9 * mem + params["W"] @ x
        spk = straight_through(mem - 1.0)
        mem = mem - spk
        return mem, (params["Wo"] @ spk, spk)

    params = {"W": normal(88, (n, m), 2.5), "Wo": normal(89, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(42, steps, m), gaussian_targets(42, steps, c), mse_first,
                lambda s, o: o[1])


# --------------------------------------------------------------------------------------- control flow
@feedforward()
def lax_cond_skip_silent_input():
    """Event-driven: ``lax.cond`` skips the synaptic product when no input spike arrived."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, v, x):
        v = lax.cond(jnp.sum(x) > 0, lambda v: 0.9 * v + params["W"] @ x, lambda v: 0.9 * v, v)
        z = superspike(v - 1.0)
        v = v - lax.stop_gradient(z)
        return v, (params["Wo"] @ z, z)

    params = {"W": normal(90, (n, m), 2.5), "Wo": normal(91, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(43, steps, m, 0.25), gaussian_targets(43, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def lax_select_reset():
    n, m, c, steps, thr = 5, 4, 3, 12, 1.0

    def step(params, v, x):
        v = 0.85 * v + params["W"] @ x
        z = superspike(v - thr)
        v = lax.select(v > thr, v - thr, v)
        return v, (params["Wo"] @ z, z)

    params = {"W": normal(92, (n, m), 2.5), "Wo": normal(93, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(44, steps, m), gaussian_targets(44, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def inner_scan_substeps():
    """Three Euler sub-steps per time step in an inner ``lax.scan``; the readout sees the spike count."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, v, x):
        current = params["W"] @ x

        def substep(v, _):
            v = v + 0.3 * (current - v)
            z = superspike(v - 1.0)
            return v - lax.stop_gradient(z), z

        v, zs = lax.scan(substep, v, None, length=3)
        count = jnp.sum(zs, axis=0)
        return v, (params["Wo"] @ count, count)

    params = {"W": normal(94, (n, m), 4.0), "Wo": normal(95, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(45, steps, m), gaussian_targets(45, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def inner_fori_cuba_substeps():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, state, x):
        i, v = state
        i = i + params["W"] @ x

        def body(_, carry):
            i, v, z_acc = carry
            i = 0.8 * i
            v = 0.8 * v + i
            z = superspike(v - 1.0)
            return i, v - lax.stop_gradient(z), z_acc + z

        i, v, z = lax.fori_loop(0, 3, body, (i, v, jnp.zeros_like(v)))
        return (i, v), (params["Wo"] @ z, z)

    params = {"W": normal(96, (n, m), 1.5), "Wo": normal(97, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(46, steps, m), gaussian_targets(46, steps, c),
                mse_first, lambda s, o: o[1])


@feedforward()
def integer_refractory_counter():
    """An ``int32`` refractory counter in the state: the neuron ignores input for 2 steps after a spike."""
    n, m, c, steps, t_ref = 5, 4, 3, 13, 2

    def step(params, state, x):
        v, ref = state
        active = ref == 0
        v = jnp.where(active, 0.9 * v + params["W"] @ x, 0.0)
        z = superspike(v - 1.0) * active
        v = v - lax.stop_gradient(z)
        ref = jnp.where(z > 0, t_ref, jnp.maximum(ref - 1, 0)).astype(jnp.int32)
        return (v, ref), (params["Wo"] @ z, z)

    params = {"W": normal(98, (n, m), 3.0), "Wo": normal(99, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n, jnp.int32)), poisson(47, steps, m, 0.5),
                gaussian_targets(47, steps, c), mse_first, lambda s, o: o[1])


@feedforward()
def brainpy_bool_refractory():
    """BrainPy-like LIF: exponential-Euler update, ``t_last_spike`` and a boolean ``refractory`` flag; the input
    is a dict carrying the spikes and the current time."""
    n, m, c, steps, dt, tau, tau_ref = 5, 4, 3, 12, 1.0, 5.0, 1.5

    def step(params, state, inp):
        v, t_last, refractory = state
        t = inp["t"]
        refractory = (t - t_last) <= tau_ref
        v_new = v * jnp.exp(-dt / tau) + params["W"] @ inp["spikes"] * (1 - jnp.exp(-dt / tau)) * 4.0
        v = jnp.where(refractory, v, v_new)
        spike = superspike(v - 1.0)
        fired = v > 1.0
        t_last = jnp.where(fired, t, t_last)
        v = jnp.where(fired, 0.0, v)
        return (v, t_last, jnp.logical_or(refractory, fired)), (params["Wo"] @ spike, spike)

    params = {"W": normal(100, (n, m), 3.0), "Wo": normal(101, (c, n))}
    xs = {"spikes": poisson(48, steps, m, 0.5), "t": jnp.arange(steps) * dt}
    s0 = (jnp.zeros(n), jnp.full(n, -1e7), jnp.zeros(n, bool))
    return Case(step, params, s0, xs, gaussian_targets(48, steps, c), mse_first, lambda s, o: o[1])


@feedforward()
def scalar_clock_in_state():
    """A global clock kept as a 0-d float leaf of the state; the input gain ramps with it."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, state, x):
        v, t = state
        gain = 1.0 + 0.05 * t
        v = 0.85 * v + gain * (params["W"] @ x)
        z = superspike(v - 1.0)
        return (v - lax.stop_gradient(z), t + 1.0), (params["Wo"] @ z, z)

    params = {"W": normal(116, (n, m), 2.0), "Wo": normal(117, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(())), poisson(57, steps, m), gaussian_targets(57, steps, c),
                mse_first, lambda s, o: o[1])


# ---------------------------------------------------------------------------------- drives mixed in-step
@feedforward()
def convolve_drive():
    """A learned 1-D kernel convolved along the input (``jnp.convolve``, same size), per-neuron gain."""
    n, c, steps = 5, 3, 12

    def step(params, v, x):
        drive = jnp.convolve(x, params["kernel"], mode="same") * params["gain"]
        v = 0.85 * v + drive
        z = superspike(v - 1.0)
        return v - lax.stop_gradient(z), (params["Wo"] @ z, z)

    params = {"kernel": jnp.array([0.6, 1.0, 0.4]), "gain": jnp.linspace(0.5, 0.9, n), "Wo": normal(102, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(49, steps, n), gaussian_targets(49, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def conv_general_dilated_channels():
    """``lax.conv_general_dilated``: 1 input channel, 2 output channels, kernel 2, VALID: 2 x 3 = 6 neurons."""
    m, c, steps = 4, 3, 12
    n = 2 * (m - 1)

    def step(params, v, x):
        y = lax.conv_general_dilated(x[None, None, :], params["kernel"], (1,), "VALID")  # (1, 2, m - 1)
        v = 0.8 * v + y.reshape(-1) + params["bias"]
        z = superspike(v - 1.0)
        return v - lax.stop_gradient(z), (params["Wo"] @ z, z)

    params = {"kernel": normal(103, (2, 1, 2), 1.0) + 0.1, "bias": jnp.full(n, -0.2), "Wo": normal(104, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(50, steps, m, 0.5), gaussian_targets(50, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def shifted_slices_shared_kernel():
    """A convolution written by hand: shifted slices of the input times taps of one shared kernel."""
    m, k, c, steps = 5, 2, 3, 12
    n = m - k + 1

    def step(params, v, x):
        drive = sum(params["taps"][j] * x[j:j + n] for j in range(k))
        v = 0.8 * v + drive
        z = superspike(v - 1.0)
        return v - lax.stop_gradient(z), (params["Wo"] @ z, z)

    params = {"taps": jnp.array([0.7, 0.5]), "Wo": normal(105, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(51, steps, m, 0.5), gaussian_targets(51, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def max_pool_reduce_window():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, v, x):
        pre = params["W"] @ x  # (2n,)
        drive = lax.reduce_window(pre, -jnp.inf, lax.max, (2,), (2,), "VALID")
        v = 0.8 * v + drive
        z = superspike(v - 1.0)
        return v - lax.stop_gradient(z), (params["Wo"] @ z, z)

    params = {"W": normal(106, (2 * n, m), 2.0), "Wo": normal(107, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(52, steps, m), gaussian_targets(52, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def reshape_mean_pool():
    n, m, c, steps = 4, 5, 3, 12

    def step(params, v, x):
        drive = (params["W"] @ x).reshape(n, 3).mean(axis=-1)
        v = 0.85 * v + drive
        z = superspike(v - 1.0)
        return v - lax.stop_gradient(z), (params["Wo"] @ z, z)

    params = {"W": normal(108, (3 * n, m), 3.0), "Wo": normal(109, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(53, steps, m), gaussian_targets(53, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def layer_norm_drive():
    n, m, c, steps = 6, 4, 3, 12

    def step(params, v, x):
        h = params["W"] @ x + params["b"]
        mu = jnp.mean(h)
        var = jnp.mean((h - mu) ** 2)
        h = (h - mu) / jnp.sqrt(var + 1e-5) * params["ln_scale"] + params["ln_bias"]
        v = 0.8 * v + h
        z = superspike(v - 1.0)
        return v - lax.stop_gradient(z), (params["Wo"] @ z, z)

    params = {"W": normal(110, (n, m), 1.0), "b": jnp.linspace(-0.5, 0.5, n), "ln_scale": jnp.full(n, 0.8),
              "ln_bias": jnp.full(n, 0.2), "Wo": normal(111, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(54, steps, m), gaussian_targets(54, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def standardize_drive():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, v, x):
        v = 0.8 * v + 0.7 * jax.nn.standardize(params["W"] @ x + params["b"]) + 0.2
        z = superspike(v - 1.0)
        return v - lax.stop_gradient(z), (params["Wo"] @ z, z)

    params = {"W": normal(112, (n, m), 1.0), "b": jnp.linspace(-0.4, 0.4, n), "Wo": normal(113, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(55, steps, m), gaussian_targets(55, steps, c), mse_first,
                lambda s, o: o[1])


@feedforward()
def softmax_drive():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, v, x):
        v = 0.8 * v + 1.5 * n * jax.nn.softmax(params["W"] @ x) * 0.4
        z = superspike(v - 1.0)
        return v - lax.stop_gradient(z), (params["Wo"] @ z, z)

    params = {"W": normal(114, (n, m), 3.0), "Wo": normal(115, (c, n))}
    return Case(step, params, jnp.zeros(n), poisson(56, steps, m), gaussian_targets(56, steps, c), mse_first,
                lambda s, o: o[1])


# ======================================================================================== recurrent models
@recurrent(spiking=False)
def minimal_rnn():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, h, x):
        h = jnp.tanh(params["W"] @ x + params["R"] @ h + params["b"])
        return h, params["Wo"] @ h

    params = {"W": normal(120, (n, m), 1.5), "R": normal(121, (n, n), 1.2), "b": jnp.zeros(n),
              "Wo": normal(122, (c, n))}
    return Case(step, params, jnp.zeros(n), jax.random.normal(jax.random.PRNGKey(123), (steps, m)),
                gaussian_targets(60, steps, c), mse, None)


@recurrent(spiking=False)
def gru_cell():
    """PyTorch ``GRUCell`` equations with fused input and hidden weights split into (r, z, n)."""
    n, m, c, steps = 4, 3, 2, 11

    def step(params, h, x):
        gi = params["weight_ih"] @ x + params["bias_ih"]
        gh = params["weight_hh"] @ h + params["bias_hh"]
        i_r, i_z, i_n = jnp.split(gi, 3)
        h_r, h_z, h_n = jnp.split(gh, 3)
        r = jax.nn.sigmoid(i_r + h_r)
        z = jax.nn.sigmoid(i_z + h_z)
        cand = jnp.tanh(i_n + r * h_n)
        h = (1 - z) * cand + z * h
        return h, params["head"] @ h

    params = {"weight_ih": normal(124, (3 * n, m), 1.5), "weight_hh": normal(125, (3 * n, n), 1.5),
              "bias_ih": jnp.zeros(3 * n), "bias_hh": jnp.linspace(-0.2, 0.2, 3 * n), "head": normal(126, (c, n))}
    return Case(step, params, jnp.zeros(n), jax.random.normal(jax.random.PRNGKey(127), (steps, m)),
                gaussian_targets(61, steps, c), mse, None)


@recurrent(spiking=False)
def lstm_cell():
    """LSTM with state ``(h, c)``; gates from ``x @ W_ih.T + h @ W_hh.T + b`` split into (i, f, g, o)."""
    n, m, c_out, steps = 4, 3, 2, 11

    def step(params, state, x):
        h, c = state
        gates = x @ params["W_ih"].T + h @ params["W_hh"].T + params["b"]
        i, f, g, o = jnp.split(gates, 4)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), params["W_out"] @ h

    params = {"W_ih": normal(128, (4 * n, m), 1.5), "W_hh": normal(129, (4 * n, n), 1.5),
              "b": jnp.zeros(4 * n).at[n:2 * n].set(1.0), "W_out": normal(130, (c_out, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), jax.random.normal(jax.random.PRNGKey(131), (steps, m)),
                gaussian_targets(62, steps, c_out), mse, None)


@recurrent()
def snntorch_rleaky():
    """snnTorch ``RLeaky``-like: state (mem, spk), recurrent ``R @ spk``, detached subtractive reset."""
    n, m, c, steps, beta = 5, 4, 3, 12, 0.85

    def step(params, state, x):
        mem, spk = state
        reset = lax.stop_gradient(spk)
        mem = beta * mem + params["fc"] @ x + params["recurrent"] @ spk - reset
        spk = superspike(mem - 1.0)
        return (mem, spk), params["out"] @ spk

    params = {"fc": normal(132, (n, m), 2.5), "recurrent": normal(133, (n, n), 1.0), "out": normal(134, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(63, steps, m), gaussian_targets(63, steps, c),
                mse, lambda s, o: s[1])


@recurrent()
def recurrent_alif_compartment_leaf():
    """Recurrent ALIF with one ``(n, 2)`` leaf ``[v, a]``; the previous spike is recomputed from it."""
    n, m, c, steps = 5, 4, 3, 12

    def step(params, va, x):
        v, a = va[:, 0], va[:, 1]
        z_prev = superspike(v - (1.0 + a))
        v = 0.9 * (v - lax.stop_gradient(z_prev) * (1.0 + a)) + params["W"] @ x + params["R"] @ z_prev
        z = superspike(v - (1.0 + a))
        a = 0.8 * a + 0.3 * z
        return jnp.stack([v, a], axis=1), (params["Wo"] @ z, z)

    params = {"W": normal(135, (n, m), 3.0), "R": normal(136, (n, n), 1.0), "Wo": normal(137, (c, n))}
    return Case(step, params, jnp.zeros((n, 2)), poisson(64, steps, m), gaussian_targets(64, steps, c), mse_first,
                lambda s, o: o[1])


@recurrent()
def snntorch_rsynaptic():
    n, m, c, steps = 5, 4, 3, 12

    def step(params, state, x):
        syn, mem = state
        spk_prev = superspike(mem - 1.0)
        syn = 0.6 * syn + params["fc"] @ x + params["rec"] @ spk_prev
        mem = 0.8 * mem + syn - lax.stop_gradient(spk_prev)
        spk = superspike(mem - 1.0)
        return (syn, mem), (params["out"] @ spk, spk)

    params = {"fc": normal(138, (n, m), 1.5), "rec": normal(139, (n, n), 0.8), "out": normal(140, (c, n))}
    return Case(step, params, (jnp.zeros(n), jnp.zeros(n)), poisson(65, steps, m), gaussian_targets(65, steps, c),
                mse_first, lambda s, o: o[1])


class LSNNState(NamedTuple):
    z: jax.Array
    v: jax.Array
    i: jax.Array
    b: jax.Array


@recurrent()
def norse_lsnn():
    """Norse ``LSNNRecurrentCell``-like: NamedTuple (z, v, i, b), recurrent current, adaptive threshold."""
    n, m, c, steps = 5, 4, 3, 12
    dt_mem, dt_syn, dt_adapt, beta = 0.6, 0.3, 0.1, 0.8

    def step(params, s, x):
        v_decayed = s.v + dt_mem * (-s.v + s.i)
        i_decayed = s.i - dt_syn * s.i
        b_decayed = s.b - dt_adapt * (s.b - 1.0)
        z_new = superspike(v_decayed - b_decayed)
        v_new = (1 - z_new) * v_decayed
        i_new = i_decayed + params["input_weights"] @ x + params["recurrent_weights"] @ s.z
        b_new = b_decayed + z_new * dt_adapt * beta
        return LSNNState(z_new, v_new, i_new, b_new), (params["readout"] @ z_new, z_new)

    params = {"input_weights": normal(141, (n, m), 9.0), "recurrent_weights": normal(142, (n, n), 1.5),
              "readout": normal(143, (c, n))}
    s0 = LSNNState(jnp.zeros(n), jnp.zeros(n), jnp.zeros(n), jnp.ones(n))
    return Case(step, params, s0, poisson(66, steps, m, 0.5), gaussian_targets(66, steps, c), mse_first,
                lambda s, o: o[1])


FF_NAMES, REC_NAMES = sorted(FEEDFORWARD), sorted(RECURRENT)
SPIKING_NAMES = sorted(SPIKING)


# =============================================================================================== tests
RATE = (0.01, 0.7)


def check_alive_and_trainable(name, results, ref):
    if name in SPIKING:
        rate = float(results["rate"])
        print(f"{name}: spike rate {rate:.3f}")
        assert RATE[0] <= rate <= RATE[1], rate
    dead = [jax.tree_util.keystr(p) for p, g in jax.tree.flatten_with_path(ref)[0] if not np.any(np.asarray(g))]
    assert not dead, f"parameters without a BPTT gradient (a broken model): {dead}"


@pytest.mark.parametrize("name", FF_NAMES)
def test_feedforward_model_every_mode_equals_bptt(name):
    """rtrl, diagonal and eprop all equal BPTT (loss rtol 1e-10, gradients atol 1e-6 rtol 1e-6)."""
    case = build(name)
    runs = {mode: vg(case, mode) for mode in po.MODES}
    if name in SPIKING:
        runs["rate"] = lambda p, s, x, t: activity(case, p, s, x)
    results = run_together(case, runs)
    ref_loss, ref = reference(results)
    check_alive_and_trainable(name, results, ref)
    assert_all_match(results, ref_loss, ref, ("rtrl", "diagonal", "eprop"))


def batch_of_two(case):
    """The model's sequence and the same sequence reversed in time, as a time-major batch of 2."""
    stack = lambda a, b: jnp.stack([a, b], axis=1)
    xs = jax.tree.map(lambda v: stack(v, jnp.flip(v, 0)), case.xs)
    ts = jax.tree.map(lambda v: stack(v, jnp.flip(v, 0)), case.targets)
    s0 = jax.tree.map(lambda v: jnp.stack([v, v]), case.state0)
    return case._replace(state0=s0, xs=xs, targets=ts)


BATCHED = ["alif_bellec", "dendrite_one_leaf", "coba_reversal_potentials", "layer_norm_drive",
           "dict_state_learned_decays"]


@pytest.mark.parametrize("name", BATCHED)
def test_batched_diagonal_equals_vmap_then_sum(name):
    case = batch_of_two(build(name))
    per_example = jax.vmap(vg(case, "diagonal"), in_axes=(None, 0, 1, 1))
    summed = lambda *a: jax.tree.map(lambda v: jnp.sum(v, axis=0), per_example(*a))
    results = run_together(case, {"vmap": summed, "batched": vg(case, "diagonal", batched=True)})
    ref_loss, ref = results["vmap"]
    assert_all_match(results, ref_loss, ref, ("batched",))


CHUNKED = ["snntorch_synaptic_tuple", "learned_threshold_and_bias", "dendrite_two_leaves",
           "tsodyks_markram_per_synapse"]


@pytest.mark.parametrize("name", CHUNKED)
def test_diagonal_chunk_one_equals_default_chunk(name):
    """One chunk of all steps (the default for T < 128) = chunks of 5 (the last one masked) = step by step."""
    case = build(name)
    runs = {"default": vg(case, "diagonal"), "chunk=1": vg(case, "diagonal", chunk=1),
            "chunk=5": vg(case, "diagonal", chunk=5)}
    results = run_together(case, runs)
    ref_loss, ref = results["default"]
    assert_all_match(results, ref_loss, ref, ("chunk=1", "chunk=5"))


# ----------------------------------------------------------------------------- dense diagonal reference
def dense_diagonal_rule(case, params, state0, xs, targets):
    """The documented diagonal rule with dense Jacobians (``jax.jacrev``) of the flattened state and parameters.

    Per step, with ``s = s_{t-1}``: ``dℓ_t/dθ = ∂ℓ_t/∂θ|_s + ∂ℓ_t/∂s · G_{t-1}``, then ``G_t = D(H_t) G_{t-1} + F_t``
    with ``H_t = ∂s_t/∂s``, ``F_t = ∂s_t/∂θ`` and ``D`` keeping the entries between elements of the same neuron
    (first axis of every state leaf, across leaves and trailing compartment axes), zeroing all others.
    """
    theta, unravel_params = ravel_pytree(params)
    s0, unravel_state = ravel_pytree(state0)
    neuron_of = lambda v: jnp.broadcast_to(jnp.arange(v.shape[0]).reshape((-1,) + (1,) * (v.ndim - 1)), v.shape)
    neuron = ravel_pytree(jax.tree.map(lambda v: neuron_of(v).astype(jnp.float64), state0))[0]
    same_neuron = neuron[:, None] == neuron[None, :]

    def new_state(theta, s, x):
        return ravel_pytree(case.step(unravel_params(theta), unravel_state(s), x)[0])[0]

    def step_loss(theta, s, x, target):
        return case.loss(case.step(unravel_params(theta), unravel_state(s), x)[1], target)

    def body(carry, inputs):
        s, G, grad = carry
        x, target = inputs
        dl_dtheta, dl_ds = jax.grad(step_loss, argnums=(0, 1))(theta, s, x, target)
        grad = grad + dl_dtheta + dl_ds @ G
        H, F = jax.jacrev(new_state, argnums=(1, 0))(theta, s, x)
        G = jnp.where(same_neuron, H, 0.0) @ G + F
        return (new_state(theta, s, x), G, grad), jnp.asarray(0.0)

    start = (s0, jnp.zeros((s0.size, theta.size), theta.dtype), jnp.zeros_like(theta))
    (_, _, grad), _ = lax.scan(body, start, (xs, targets))
    return unravel_params(grad)


@pytest.mark.parametrize("name", ["alif_bellec", "dendrite_one_leaf", "dendrite_one_leaf_learned_coupling"])
def test_dense_reference_is_exact_for_feedforward_models(name):
    """Self-check of the reference: without cross-neuron coupling the dense diagonal rule is BPTT."""
    case = build(name)
    results = run_together(case, {"bptt": vg(case, "bptt"),
                                  "dense": lambda *a: (jnp.zeros(()), dense_diagonal_rule(case, *a))})
    ref_loss, ref = reference(results)
    dense = reference({"bptt": results["dense"]})
    assert_all_match({"dense": (ref_loss, dense[1])}, ref_loss, ref, ("dense",))


@pytest.mark.parametrize("name", REC_NAMES)
def test_recurrent_model_rtrl_exact_and_diagonal_at_least_the_dense_rule(name):
    """rtrl equals BPTT; diagonal's gradient (all parameters) is at least as aligned with BPTT as the documented
    diagonal rule computed densely."""
    case = build(name)
    runs = {mode: vg(case, mode) for mode in ("bptt", "rtrl", "diagonal")}
    runs["dense"] = lambda *a: (jnp.zeros(()), dense_diagonal_rule(case, *a))
    if name in SPIKING:
        runs["rate"] = lambda p, s, x, t: activity(case, p, s, x)
    results = run_together(case, runs)
    ref_loss, ref = reference(results)
    check_alive_and_trainable(name, results, ref)
    assert_all_match(results, ref_loss, ref, ("rtrl",))
    diagonal = results["diagonal"]
    if isinstance(diagonal, Exception):
        raise diagonal
    np.testing.assert_allclose(diagonal[0], ref_loss, rtol=1e-10)
    dense = reference({"bptt": results["dense"]})
    got, want = cosine(diagonal[1], ref), cosine(dense[1], ref)
    print(f"{name}: diagonal cosine to BPTT {got:.6f}, dense diagonal rule {want:.6f}")
    assert got >= want - 1e-6, f"diagonal cosine {got:.6f} < dense diagonal rule {want:.6f}"
