"""Two-compartment neuron: the step equals the documented equations (NumPy); the soma spikes through tanh."""

import jax
import jax.numpy as jnp
import numpy as np

from plastix.neurons import dendritic_step, make_spike

SPIKE = make_spike("fast_sigmoid", 25.0)


def test_steps_match_the_equations():
    rng = np.random.default_rng(1)
    W = rng.normal(0.4, 0.6, (5, 3))
    xs = (rng.random((8, 3)) < 0.7).astype(np.float64)
    alpha, beta, coupling, threshold = 0.7, 0.85, 1.5, 1.0
    step = jax.jit(lambda p, s, x: dendritic_step(p, s, x, alpha=alpha, beta=beta, coupling=coupling,
                                                  threshold=threshold, spike_fn=SPIKE))
    params, state = {"W": jnp.asarray(W, jnp.float32)}, (jnp.zeros(5), jnp.zeros(5))
    d, u, total = np.zeros(5), np.zeros(5), 0.0
    for t, x in enumerate(xs):
        d = alpha * d + W @ x
        u = beta * u + coupling * np.tanh(d)
        z = (u - threshold > 0).astype(np.float64)
        u = u - threshold * z
        state, spikes = step(params, state, jnp.asarray(x, jnp.float32))
        np.testing.assert_array_equal(spikes, z, err_msg=f"step {t}")
        np.testing.assert_allclose(state[0], d, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state[1], u, rtol=1e-5, atol=1e-5)
        total += z.sum()
    assert 0 < total < 5 * len(xs)


def test_coupling_saturates():
    """However strong the dendritic drive, the soma gains at most `coupling` per step."""
    params = {"W": jnp.full((1, 1), 1e3)}
    (d, u), z = dendritic_step(params, (jnp.zeros(1), jnp.zeros(1)), jnp.ones(1), coupling=0.5, spike_fn=SPIKE)
    assert float(d[0]) == 1e3 and float(u[0]) == 0.5 and float(z[0]) == 0.0
