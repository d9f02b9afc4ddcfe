"""ALIF: the step equals the documented equations (NumPy) over several steps; spikes raise the threshold."""

import jax
import jax.numpy as jnp
import numpy as np

from plastix.neurons import alif_step, make_spike

SPIKE = make_spike("fast_sigmoid", 25.0)


def reference(W, xs, beta, rho, adaptation, threshold):
    u, a, out = np.zeros(W.shape[0]), np.zeros(W.shape[0]), []
    for x in xs:
        u = beta * u + W @ x
        theta = threshold + adaptation * a
        z = (u - theta > 0).astype(np.float64)
        u = u - theta * z
        a = rho * a + (1 - rho) * z
        out.append((u.copy(), a.copy(), z))
    return out


def test_steps_match_the_equations_and_spikes_adapt():
    rng = np.random.default_rng(0)
    W = rng.normal(0.6, 0.5, (6, 4))
    xs = (rng.random((8, 4)) < 0.6).astype(np.float64)
    hyper = {"beta": 0.8, "rho": 0.9, "adaptation": 0.7, "threshold": 1.0}
    step = jax.jit(lambda p, s, x: alif_step(p, s, x, spike_fn=SPIKE, **hyper))
    state, params = (jnp.zeros(6), jnp.zeros(6)), {"W": jnp.asarray(W, jnp.float32)}
    for t, (u, a, z) in enumerate(reference(W, xs, **hyper)):
        state, spikes = step(params, state, jnp.asarray(xs[t], jnp.float32))
        np.testing.assert_array_equal(spikes, z, err_msg=f"step {t}")
        np.testing.assert_allclose(state[0], u, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state[1], a, rtol=1e-5, atol=1e-6)
    assert float(state[1].max()) > 0  # some neuron spiked, so its threshold is up


def test_adaptation_in_params_is_used_and_trained():
    params = {"W": jnp.ones((2, 1)), "adaptation": jnp.array(5.0)}
    (u, a), z = alif_step(params, (jnp.full(2, 0.5), jnp.array([0.0, 0.2])), jnp.ones(1), spike_fn=SPIKE)
    # u = 0.9*0.5 + 1 = 1.45; thresholds 1 and 1 + 5*0.2 = 2: only the first neuron spikes
    np.testing.assert_array_equal(z, [1.0, 0.0])
    g = jax.jit(jax.grad(lambda p: alif_step(p, (jnp.full(2, 0.5), jnp.array([0.0, 0.2])), jnp.ones(1),
                                             spike_fn=SPIKE)[1].sum()))(params)
    assert float(g["adaptation"]) < 0  # a higher adaptation lowers the surrogate spike output
