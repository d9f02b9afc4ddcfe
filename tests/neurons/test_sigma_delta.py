"""Sigma-delta neurons: the step equals the documented equations (NumPy); events only past the threshold."""

import jax
import jax.numpy as jnp
import numpy as np

from plastix.neurons import make_spike, sigma_delta_step

SPIKE = make_spike("fast_sigmoid", 25.0)


def test_steps_match_the_equations():
    rng = np.random.default_rng(4)
    W = rng.normal(0.0, 0.3, (6, 3))
    xs = rng.normal(0.0, 1.0, (10, 3))
    threshold = 0.2
    step = jax.jit(lambda p, s, x: sigma_delta_step(p, s, x, threshold=threshold, spike_fn=SPIKE))
    params, state = {"W": jnp.asarray(W, jnp.float32)}, (jnp.zeros(6), jnp.zeros(6))
    sigma, ref, sent, silent = np.zeros(6), np.zeros(6), 0, 0
    for t, x in enumerate(xs):
        sigma = sigma + W @ x
        delta = np.maximum(sigma, 0) - ref
        events = delta * (np.abs(delta) - threshold > 0)
        ref = ref + events
        state, out = step(params, state, jnp.asarray(x, jnp.float32))
        np.testing.assert_allclose(out, events, rtol=1e-5, atol=1e-6, err_msg=f"step {t}")
        np.testing.assert_allclose(state[0], sigma, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state[1], ref, rtol=1e-5, atol=1e-5)
        sent += int(np.count_nonzero(events))
        silent += int(np.count_nonzero((events == 0) & (delta != 0)))
    assert sent > 0 and silent > 0  # both branches were taken


def test_reference_tracks_the_activation_within_the_threshold():
    """After every step the reference differs from relu(sigma) by at most the threshold."""
    params = {"W": jnp.eye(2)}
    state = (jnp.zeros(2), jnp.zeros(2))
    for x in np.random.default_rng(5).normal(size=(20, 2)):
        state, _ = sigma_delta_step(params, state, jnp.asarray(x, jnp.float32), threshold=0.3, spike_fn=SPIKE)
        assert float(jnp.max(jnp.abs(jax.nn.relu(state[0]) - state[1]))) <= 0.3 + 1e-6
