"""Recurrent LIF and leaky RNN: the steps equal the documented equations (NumPy) over several steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plastix.neurons import leaky_rnn_step, make_spike, recurrent_lif_step

SPIKE = make_spike("fast_sigmoid", 25.0)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_recurrent_lif_matches_the_equations(reset):
    rng = np.random.default_rng(2)
    W, R = rng.normal(0.5, 0.5, (6, 3)), rng.normal(0.0, 0.8, (6, 6))
    xs = (rng.random((8, 3)) < 0.6).astype(np.float64)
    beta, threshold = 0.85, 1.0
    params = {"W": jnp.asarray(W, jnp.float32), "R": jnp.asarray(R, jnp.float32)}
    step = jax.jit(lambda p, s, x: recurrent_lif_step(p, s, x, beta=beta, threshold=threshold, reset=reset,
                                                      spike_fn=SPIKE))
    state, u, z, total = (jnp.zeros(6), jnp.zeros(6)), np.zeros(6), np.zeros(6), 0.0
    for t, x in enumerate(xs):
        u = beta * u + W @ x + R @ z
        z = (u - threshold > 0).astype(np.float64)
        u = u - threshold * z if reset == "subtract" else u * (1 - z)
        state, spikes = step(params, state, jnp.asarray(x, jnp.float32))
        np.testing.assert_array_equal(spikes, z, err_msg=f"step {t}")
        np.testing.assert_array_equal(state[1], z)
        np.testing.assert_allclose(state[0], u, rtol=1e-5, atol=1e-5)
        total += z.sum()
    assert 0 < total < 6 * len(xs)


def test_recurrence_carries_the_previous_spikes():
    """With R = 0 the layer is a feed-forward LIF; a recurrent weight moves the next potential by R @ z."""
    params = {"W": jnp.array([[2.0], [0.0]]), "R": jnp.array([[0.0, 0.0], [0.7, 0.0]])}
    state, _ = recurrent_lif_step(params, (jnp.zeros(2), jnp.zeros(2)), jnp.ones(1), spike_fn=SPIKE)
    (u, z), _ = recurrent_lif_step(params, state, jnp.zeros(1), beta=0.5, spike_fn=SPIKE)
    np.testing.assert_allclose(u, [0.5, 0.7], rtol=1e-6)  # neuron 0 spiked at step 1 (u: 2 -> 1); neuron 1 got 0.7


def test_leaky_rnn_matches_the_equation():
    rng = np.random.default_rng(3)
    W, R, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 4)), rng.normal(size=4)
    params = {k: jnp.asarray(v, jnp.float32) for k, v in {"W": W, "R": R, "b": b}.items()}
    h, hj = np.zeros(4), jnp.zeros(4)
    for x in rng.normal(size=(5, 3)):
        h = 0.8 * h + 0.2 * np.tanh(W @ x + R @ h + b)
        hj, out = leaky_rnn_step(params, hj, jnp.asarray(x, jnp.float32), alpha=0.2)
        np.testing.assert_allclose(hj, h, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(hj, out)
