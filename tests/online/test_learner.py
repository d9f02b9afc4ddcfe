"""The online Learner: window gradients equal BPTT through the whole history; weights change online."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

import plastix.online as po
from plastix.neurons import lif_step, make_spike

T, B, N, M, C = 20, 3, 6, 4, 2
SPIKE = make_spike("fast_sigmoid", 4.0)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def step(params, u, x):
    u, z = lif_step(params, u, x, spike_fn=SPIKE, detach_reset=False)
    return u, params["Wo"] @ z


def mse(out, target):
    return jnp.sum((out - target) ** 2)


def setup(seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    params = {"W": 2.5 * jax.random.normal(k[0], (N, M)) / np.sqrt(M), "Wo": jax.random.normal(k[1], (C, N))}
    xs = (jax.random.uniform(k[2], (T, B, M)) < 0.5).astype(jnp.float64)
    ts = jax.random.normal(k[3], (T, B, C))
    return params, xs, ts


@jax.jit
def windowed_bptt(params, xs, ts, t0, t1):
    """Mean over the batch of d/dθ Σ_{t0 <= t < t1} ℓ_t, through the whole history from t = 0 (one compilation
    for every window: the steps outside it are masked out of the loss)."""

    def total(params):
        def one(x_seq, t_seq):
            def body(u, inputs):
                x, target = inputs
                u, out = step(params, u, x)
                return u, mse(out, target)

            _, losses = lax.scan(body, jnp.zeros(N), (x_seq, t_seq))
            steps = jnp.arange(losses.shape[0])
            return jnp.sum(jnp.where((steps >= t0) & (steps < t1), losses, 0.0))

        return jnp.mean(jax.vmap(one, in_axes=1)(xs, ts))

    return jax.grad(total)(params)


@pytest.mark.parametrize("window", [2, 5])
def test_window_gradients_equal_bptt_of_the_window(window):
    """Accumulated online gradients over a short window equal BPTT of that window's losses through the
    whole history (the traces carry everything before the window)."""
    params, xs, ts = setup()
    learner = po.Learner(step, mse, optax.sgd(0.0), mode="diagonal", every=10 ** 9)
    carry = learner.init(params, jnp.zeros((B, N)), xs[0])
    update = jax.jit(learner.update)
    rate, u = [], jnp.zeros((B, N))
    at_start = carry.grads
    for t in range(T):
        v = 0.9 * u + xs[t] @ params["W"].T
        rate.append(jnp.mean(v > 1.0))
        u = v - (v > 1.0)
        carry, _ = update(carry, xs[t], ts[t])
        if (t + 1) % window == 0:
            got = jax.tree.map(jnp.subtract, carry.grads, at_start)
            ref = windowed_bptt(params, xs, ts, t + 1 - window, t + 1)
            for k in ref:
                np.testing.assert_allclose(got[k], ref[k], atol=1e-6, rtol=1e-6, err_msg=f"window to {t}: {k}")
            at_start = carry.grads
    assert 0.01 <= float(np.mean(rate)) <= 0.6


def test_updates_happen_every_k_steps():
    params, xs, ts = setup()
    learner = po.Learner(step, mse, optax.sgd(0.1), mode="diagonal", every=3)
    carry = learner.init(params, jnp.zeros((B, N)), xs[0])
    for t in range(7):
        previous = carry.params["W"]
        carry, _ = learner.update(carry, xs[t], ts[t])
        assert np.allclose(previous, carry.params["W"]) == ((t + 1) % 3 != 0)


def test_weights_change_every_step_and_the_loss_falls():
    params, xs, ts = setup(1)
    targets = jnp.broadcast_to(jnp.array([1.0, -1.0]), (T, B, C))
    learner = po.Learner(step, mse, optax.adam(0.05), mode="diagonal")
    carry = learner.init(params, jnp.zeros((B, N)), xs[0])
    update = jax.jit(learner.update)
    losses = []
    for epoch in range(4):
        carry = carry._replace(state=jnp.zeros((B, N)), traces=jax.tree.map(jnp.zeros_like, carry.traces))
        total = 0.0
        for t in range(T):
            previous = carry.params["W"]
            carry, metrics = update(carry, xs[t], targets[t])
            total += float(metrics["loss"])
            assert epoch > 0 or t == 0 or not np.allclose(previous, carry.params["W"])
        losses.append(total)
    assert losses[-1] < 0.7 * losses[0], losses


def test_learner_rejects_bad_configuration():
    with pytest.raises(ValueError, match="bptt"):
        po.Learner(step, mse, optax.sgd(0.1), mode="bptt")
    with pytest.raises(ValueError, match="every"):
        po.Learner(step, mse, optax.sgd(0.1), every=0)


def test_feedback_equal_to_the_readout_is_the_exact_signal_and_random_feedback_differs():
    params, xs, ts = setup(2)
    u0 = jnp.zeros(N)
    exact = po.value_and_grad(step, mse, "diagonal")(params, u0, xs[:, 0], ts[:, 0])[1]
    same = po.value_and_grad(step, mse, "diagonal", feedback={"W": None, "Wo": params["Wo"]})(
        params, u0, xs[:, 0], ts[:, 0])[1]
    for k in exact:
        np.testing.assert_allclose(same[k], exact[k], atol=1e-12)
    feedback = po.random_feedback(jax.random.PRNGKey(7), params, lambda path: "Wo" in path)
    assert feedback["W"] is None and feedback["Wo"].shape == params["Wo"].shape
    aligned = po.value_and_grad(step, mse, "diagonal", feedback=feedback)(params, u0, xs[:, 0], ts[:, 0])[1]
    np.testing.assert_allclose(aligned["Wo"], exact["Wo"], atol=1e-12)
    assert not np.allclose(aligned["W"], exact["W"])


def test_random_feedback_learns():
    params, xs, ts = setup(1)
    targets = jnp.broadcast_to(jnp.array([1.0, -1.0]), (T, B, C))
    feedback = po.random_feedback(jax.random.PRNGKey(3), params, lambda path: "Wo" in path)
    learner = po.Learner(step, mse, optax.adam(0.05), mode="diagonal", feedback=feedback)
    carry = learner.init(params, jnp.zeros((B, N)), xs[0])
    update = jax.jit(learner.update)
    losses = []
    for _ in range(4):
        carry = carry._replace(state=jnp.zeros((B, N)), traces=jax.tree.map(jnp.zeros_like, carry.traces))
        total = 0.0
        for t in range(T):
            carry, metrics = update(carry, xs[t], targets[t])
            total += float(metrics["loss"])
        losses.append(total)
    assert losses[-1] < 0.7 * losses[0], losses
