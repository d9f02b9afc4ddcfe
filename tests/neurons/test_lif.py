import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from plastix.neurons import init_linear, lif_step, make_spike, readout_step

SPIKE = make_spike("fast_sigmoid", slope=25.0)


def setup(n=5, m=3, seed=0):
    rng = np.random.default_rng(seed)
    params = {"W": jnp.asarray(rng.normal(size=(n, m)), jnp.float32)}
    u = jnp.asarray(rng.uniform(-0.5, 1.5, size=n), jnp.float32)
    x = jnp.asarray(rng.random(m) < 0.5, jnp.float32)
    return params, u, x


def test_init_linear():
    p = jax.jit(lambda k: init_linear(k, 400, 300, gain=2.0))(jax.random.PRNGKey(0))
    assert p["W"].shape == (300, 400) and p["W"].dtype == jnp.float32
    assert float(jnp.std(p["W"])) == pytest.approx(2.0 / 20.0, rel=0.05)
    with pytest.raises(ValueError, match="positive"):
        init_linear(jax.random.PRNGKey(0), 0, 3)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_step_matches_formula(reset):
    params, u, x = setup()
    beta, thr = 0.8, 0.7
    step = jax.jit(lambda p, u, x: lif_step(p, u, x, beta=beta, threshold=thr, reset=reset, spike_fn=SPIKE))
    new_u, z = step(params, u, x)
    pre = beta * np.asarray(u) + np.asarray(params["W"]) @ np.asarray(x)
    spikes = (pre - thr > 0).astype(np.float32)
    expected = pre - thr * spikes if reset == "subtract" else pre * (1 - spikes)
    np.testing.assert_allclose(z, spikes)
    np.testing.assert_allclose(new_u, expected, rtol=1e-6, atol=1e-6)
    assert 0 < spikes.sum() < spikes.size  # the check is not vacuous


def test_batched_equals_vmap():
    params, _, _ = setup(n=6, m=4)
    rng = np.random.default_rng(1)
    us, xs = jnp.asarray(rng.normal(size=(8, 6)), jnp.float32), jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)
    step = lambda u, x: lif_step(params, u, x, spike_fn=SPIKE)
    batched = jax.jit(step)(us, xs)
    mapped = jax.jit(jax.vmap(step))(us, xs)
    for a, b in zip(batched, mapped):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_state_jacobian_is_per_neuron_decay():
    params, u, x = setup()
    beta = 0.9
    H = jax.jit(jax.jacobian(lambda u: lif_step(params, u, x, beta=beta, spike_fn=SPIKE)[0]))(u)
    np.testing.assert_allclose(H, beta * np.eye(u.size), atol=1e-7)
    # without detaching the reset, the surrogate enters the diagonal (still per neuron)
    H2 = jax.jit(jax.jacobian(lambda u: lif_step(params, u, x, beta=beta, spike_fn=SPIKE, detach_reset=False)[0]))(u)
    np.testing.assert_allclose(H2 - np.diag(np.diag(H2)), 0, atol=1e-7)


def test_surrogate_gradient_reaches_weights():
    params, u, x = setup()
    g = jax.jit(jax.grad(lambda p: lif_step(p, u, x, spike_fn=SPIKE)[1].sum()))(params)
    assert g["W"].shape == params["W"].shape
    assert float(jnp.abs(g["W"]).sum()) > 0
    # input columns that did not spike get no gradient
    np.testing.assert_array_equal(g["W"][:, np.asarray(x) == 0], 0)


def test_readout_step():
    params = {"W": jnp.arange(6.0).reshape(2, 3)}
    v, z = jnp.array([1.0, -1.0]), jnp.array([1.0, 0.0, 1.0])
    new_v, out = readout_step(params, v, z, kappa=0.5)
    np.testing.assert_allclose(new_v, [0.5 + 2.0, -0.5 + 8.0])
    np.testing.assert_array_equal(new_v, out)
    np.testing.assert_allclose(readout_step(params, v, z, kappa=0.0)[0], [2.0, 8.0])


def test_pure_step_scans_like_a_loop():
    params, u0, _ = setup(n=4, m=3)
    xs = jnp.asarray(np.random.default_rng(3).random((10, 3)) < 0.6, jnp.float32)
    step = jax.jit(lambda u, x: lif_step(params, u, x, beta=0.9, threshold=0.5, spike_fn=SPIKE))
    u_scan, z_scan = jax.jit(lambda u0, xs: lax.scan(step, u0, xs))(u0, xs)
    u, zs = u0, []
    for x in xs:
        u, z = step(u, x)
        zs.append(z)
    np.testing.assert_allclose(u_scan, u, rtol=1e-6)
    np.testing.assert_allclose(z_scan, jnp.stack(zs))
    assert float(z_scan.sum()) > 0


def test_default_spike_and_bad_reset():
    params, u, x = setup()
    default = jax.jit(lambda u: lif_step(params, u, x)[1])(u)
    np.testing.assert_allclose(default, jax.jit(lambda u: lif_step(params, u, x, spike_fn=SPIKE)[1])(u))
    with pytest.raises(ValueError, match="unknown reset 'hard'.*'subtract', 'zero'"):
        lif_step(params, u, x, reset="hard")
