"""Every neuron model of the zoo, trained online, against BPTT in float64 with live activity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import plastix.online as po
from plastix.neurons.alif import alif_step
from plastix.neurons.dendritic import dendritic_step
from plastix.neurons.lif import lif_step
from plastix.neurons.recurrent import leaky_rnn_step, recurrent_lif_step
from plastix.neurons.sigma_delta import sigma_delta_step
from plastix.neurons.surrogate import make_spike

T, N, M, C = 22, 6, 5, 3
SPIKE = make_spike("sigmoid", 3.0)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _w(key, shape, scale):
    return scale * jax.random.normal(jax.random.PRNGKey(key), shape) / np.sqrt(shape[-1])


def _zeros(k):
    return tuple(jnp.zeros(N) for _ in range(k)) if k > 1 else jnp.zeros(N)


FEEDFORWARD = {
    "lif-subtract": (lambda p, s, x: lif_step(p, s, x, spike_fn=SPIKE), {}, 1, 2.5),
    "lif-zero-through-reset": (lambda p, s, x: lif_step(p, s, x, reset="zero", spike_fn=SPIKE, detach_reset=False),
                               {}, 1, 2.5),
    "lif-trainable": (lambda p, s, x: lif_step(p, s, x, beta=p["beta"], threshold=p["threshold"], spike_fn=SPIKE),
                      {"beta": jnp.asarray(0.85), "threshold": jnp.linspace(0.8, 1.2, N)}, 1, 2.5),
    "alif": (lambda p, s, x: alif_step(p, s, x, spike_fn=SPIKE), {}, 2, 3.0),
    "alif-trainable": (lambda p, s, x: alif_step(p, s, x, spike_fn=SPIKE, detach_reset=False),
                       {"rho": jnp.full(N, 0.9), "adaptation": jnp.asarray(0.3), "beta": jnp.asarray(0.9)}, 2, 3.0),
    "sigma-delta": (lambda p, s, x: sigma_delta_step(p, s, x, spike_fn=SPIKE), {"threshold": jnp.asarray(0.2)}, 2,
                    1.0),
    "dendritic": (lambda p, s, x: dendritic_step(p, s, x, spike_fn=SPIKE), {"coupling": jnp.full(N, 1.5)}, 2, 2.0),
    "leaky-integrator": (lambda p, s, x: leaky_rnn_step(p, s, x), {"alpha": jnp.asarray(0.3)}, 1, 1.0),
}


def network(layer):
    def step(params, state, x):
        state, z = layer(params, state, x)
        return state, params["Wo"] @ z

    return step


def mse(out, target):
    return jnp.sum((out - target) ** 2)


def sequences(seed):
    k = jax.random.split(jax.random.PRNGKey(seed), 2)
    return (jax.random.uniform(k[0], (T, M)) < 0.4).astype(jnp.float64), jax.random.normal(k[1], (T, C))


def activity(layer, params, s0, xs):
    def body(state, x):
        state, z = layer(params, state, x)
        return state, z

    _, zs = lax.scan(body, s0, xs)
    return float(jnp.mean(zs != 0))


def close(got, ref):
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], atol=1e-6, rtol=1e-6, err_msg=k)


@pytest.mark.parametrize("name", sorted(FEEDFORWARD))
def test_feedforward_models_are_exact_online(name):
    layer, extra, n_state, scale = FEEDFORWARD[name]
    params = {"W": _w(1, (N, M), scale), "Wo": _w(2, (C, N), 1.0)} | extra
    s0 = _zeros(n_state)
    xs, ts = sequences(3)
    rate = activity(layer, params, s0, xs)
    if name != "leaky-integrator":
        assert 0.01 <= rate <= 0.6, rate
    step = network(layer)
    _, ref = po.value_and_grad(step, mse, "bptt")(params, s0, xs, ts)
    assert all(float(jnp.abs(ref[k]).max()) > 0 for k in ref), "a parameter gets no gradient"
    for mode in ("diagonal", "eprop"):
        _, got = jax.jit(po.value_and_grad(step, mse, mode))(params, s0, xs, ts)
        close(got, ref)


RECURRENT = {
    "recurrent-lif": (lambda p, s, x: recurrent_lif_step(p, s, x, spike_fn=SPIKE), 2, 2.5),
    "leaky-rnn": (lambda p, s, x: leaky_rnn_step(p, s, x, alpha=0.5), 1, 1.5),
}


@pytest.mark.parametrize("name", sorted(RECURRENT))
def test_recurrent_models_rtrl_is_exact(name):
    layer, n_state, scale = RECURRENT[name]
    params = {"W": _w(1, (N, M), scale), "R": _w(4, (N, N), 1.0), "Wo": _w(2, (C, N), 1.0)}
    s0 = _zeros(n_state)
    xs, ts = sequences(5)
    if name == "recurrent-lif":
        rate = activity(layer, params, s0, xs)
        assert 0.01 <= rate <= 0.6, rate
    step = network(layer)
    _, ref = po.value_and_grad(step, mse, "bptt")(params, s0, xs, ts)
    _, got = jax.jit(po.value_and_grad(step, mse, "rtrl"))(params, s0, xs, ts)
    close(got, ref)
    for mode in ("diagonal", "eprop"):
        _, approx = jax.jit(po.value_and_grad(step, mse, mode))(params, s0, xs, ts)
        sims = {k: float(jnp.vdot(approx[k], ref[k]) / jnp.linalg.norm(approx[k]) / jnp.linalg.norm(ref[k]))
                for k in ("W", "R")}
        print(f"{name} {mode}: cosine to BPTT {sims}")
        np.testing.assert_allclose(approx["Wo"], ref["Wo"], atol=1e-6)
